//! `work_orders`: one row per work order with its current state, every step of its timeline with who took it,
//! and each turnstile's service meter (passages since its last resolved preventive order).

use super::{ApplyError, Projection};
use crate::domain::DeviceEvent;
use crate::domain::work_order::{WorkOrderEvent, WorkOrderKind};
use crate::journal::StoredEvent;
use rusqlite::{Connection, OptionalExtension, params};

pub struct WorkOrdersProjection;

impl Projection for WorkOrdersProjection {
    fn name(&self) -> &'static str {
        "work_orders"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["work_orders", "work_order_steps", "service_meters"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        if let Some((device, DeviceEvent::PassageRecorded(_))) = stored.device() {
            tx.prepare_cached(
                "INSERT INTO service_meters (device_id, passages) VALUES (?1, 1)
                 ON CONFLICT (device_id) DO UPDATE SET passages = passages + 1",
            )?
            .execute([device])?;
            return Ok(());
        }
        let Some((number, event)) = stored.work_order() else {
            return Ok(());
        };
        let (n, at, position) = (number.get() as i64, event_at(event), stored.position as i64);
        let (step, text) = match event {
            WorkOrderEvent::Opened(e) => {
                tx.prepare_cached(
                    "INSERT INTO work_orders (number, device_id, zone, kind, cause, title, state, opened_at, due_at,
                                              updated_at, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?7, ?9)",
                )?
                .execute(params![
                    n,
                    e.device.as_str(),
                    e.zone,
                    e.kind.as_str(),
                    e.cause.to_string(),
                    e.title,
                    at,
                    e.due_at.map(|t| t.as_microsecond()),
                    position
                ])?;
                ("opened", format!("{} ({})", e.title, e.cause))
            }
            WorkOrderEvent::Acknowledged(_) => {
                set_state(tx, n, "open", "acknowledged", at, position)?;
                ("acknowledged", String::new())
            }
            WorkOrderEvent::Assigned(e) => {
                tx.prepare_cached(
                    "UPDATE work_orders SET assignee = ?2, updated_at = ?3, position = ?4 WHERE number = ?1",
                )?
                .execute(params![n, e.technician.as_str(), at, position])?;
                ("assigned", e.technician.to_string())
            }
            WorkOrderEvent::Started(_) => {
                set_state(tx, n, "acknowledged", "in_progress", at, position)?;
                ("started", String::new())
            }
            WorkOrderEvent::Resolved(e) => {
                tx.prepare_cached(
                    "UPDATE work_orders SET state = 'resolved', resolved_at = ?2, closed_at = ?2, updated_at = ?2,
                                            position = ?3
                     WHERE number = ?1",
                )?
                .execute(params![n, at, position])?;
                reset_meter_if_serviced(tx, n, at)?;
                ("resolved", e.note.to_string())
            }
            WorkOrderEvent::Cancelled(e) => {
                tx.prepare_cached(
                    "UPDATE work_orders SET state = 'cancelled', closed_at = ?2, updated_at = ?2, position = ?3
                     WHERE number = ?1",
                )?
                .execute(params![n, at, position])?;
                ("cancelled", e.reason.to_string())
            }
            WorkOrderEvent::Commented(e) => {
                tx.prepare_cached("UPDATE work_orders SET updated_at = ?2, position = ?3 WHERE number = ?1")?
                    .execute(params![n, at, position])?;
                ("commented", e.text.to_string())
            }
            WorkOrderEvent::Reopened(e) => {
                tx.prepare_cached(
                    "UPDATE work_orders SET state = 'open', resolved_at = NULL, closed_at = NULL,
                                            reopened = reopened + 1, updated_at = ?2, position = ?3
                     WHERE number = ?1",
                )?
                .execute(params![n, at, position])?;
                ("reopened", e.reason.to_string())
            }
        };
        tx.prepare_cached(
            "INSERT INTO work_order_steps (number, position, at, step, actor, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![n, position, at, step, stored.actor_text(), text])?;
        Ok(())
    }
}

fn event_at(event: &WorkOrderEvent) -> i64 {
    use crate::domain::DomainEvent;
    event.occurred_at().as_microsecond()
}

/// The state column only moves along the order's life (`from` is the state the step leaves).
fn set_state(tx: &Connection, n: i64, from: &str, to: &str, at: i64, position: i64) -> Result<(), ApplyError> {
    tx.prepare_cached(
        "UPDATE work_orders SET state = ?3, updated_at = ?4, position = ?5 WHERE number = ?1 AND state = ?2",
    )?
    .execute(params![n, from, to, at, position])?;
    Ok(())
}

/// A resolved preventive order is its device's service: the meter starts again.
fn reset_meter_if_serviced(tx: &Connection, n: i64, at: i64) -> Result<(), ApplyError> {
    let device: Option<String> = tx
        .prepare_cached("SELECT device_id FROM work_orders WHERE number = ?1 AND kind = ?2")?
        .query_row(params![n, WorkOrderKind::Preventive.as_str()], |r| r.get(0))
        .optional()?;
    if let Some(device) = device {
        tx.prepare_cached(
            "INSERT INTO service_meters (device_id, passages, since, last_order) VALUES (?1, 0, ?2, ?3)
             ON CONFLICT (device_id) DO UPDATE SET passages = 0, since = excluded.since,
                 last_order = excluded.last_order",
        )?
        .execute(params![device, at, n])?;
    }
    Ok(())
}
