//! `alarms`: one row per alarm with its current state, and every step of its life with who or what took it.

use super::{ApplyError, Projection};
use crate::domain::DomainEvent;
use crate::domain::alarm::{AlarmEvent, AlarmNumber, Severity};
use crate::journal::StoredEvent;
use rusqlite::{Connection, params};

pub struct AlarmsProjection;

/// 3 for critical down to 0 for warning: the order pages list them in.
pub fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::Critical => 3,
        Severity::Major => 2,
        Severity::Minor => 1,
        Severity::Warning => 0,
    }
}

impl Projection for AlarmsProjection {
    fn name(&self) -> &'static str {
        "alarms"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["alarms", "alarm_steps"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let crate::codec::AnyEvent::Alarm(event) = &stored.event else {
            return Ok(());
        };
        let number = AlarmNumber::parse(stored.stream_id.id()).map_err(ApplyError::Event)?;
        let (n, at, position) = (
            number.get() as i64,
            event.occurred_at().as_microsecond(),
            stored.position as i64,
        );
        let (step, text) = match event {
            AlarmEvent::Raised(e) => {
                tx.prepare_cached(
                    "INSERT INTO alarms (number, alarm_type, severity, severity_rank, source, zone, detail, active,
                                         first_seen, last_seen, count, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8, 1, ?9)",
                )?
                .execute(params![
                    n,
                    e.alarm_type.as_str(),
                    e.severity.as_str(),
                    severity_rank(e.severity),
                    e.source.to_string(),
                    e.zone,
                    e.detail,
                    at,
                    position
                ])?;
                ("raised", e.detail.clone())
            }
            AlarmEvent::Repeated(e) => {
                tx.prepare_cached(
                    "UPDATE alarms SET count = count + 1, last_seen = MAX(last_seen, ?2), detail = ?3, position = ?4
                     WHERE number = ?1",
                )?
                .execute(params![n, at, e.detail, position])?;
                // A thousand sightings are one line each on the alarm's page only when they change something;
                // the count says how many there were.
                return Ok(());
            }
            AlarmEvent::Reactivated(e) => {
                tx.prepare_cached(
                    "UPDATE alarms SET count = count + 1, last_seen = MAX(last_seen, ?2), detail = ?3, active = 1,
                                       acknowledged_by = NULL, acknowledged_at = NULL, cleared_at = NULL,
                                       position = ?4
                     WHERE number = ?1",
                )?
                .execute(params![n, at, e.detail, position])?;
                ("reactivated", e.detail.clone())
            }
            AlarmEvent::Acknowledged(e) => {
                tx.prepare_cached(
                    "UPDATE alarms SET acknowledged_by = ?2, acknowledged_at = ?3, position = ?4 WHERE number = ?1",
                )?
                .execute(params![n, e.by, at, position])?;
                ("acknowledged", e.note.clone().unwrap_or_default())
            }
            AlarmEvent::Cleared(e) => {
                tx.prepare_cached("UPDATE alarms SET active = 0, cleared_at = ?2, position = ?3 WHERE number = ?1")?
                    .execute(params![n, at, position])?;
                let words = match &e.by {
                    None => "its condition ended".to_owned(),
                    Some(_) => e.note.clone().unwrap_or_default(),
                };
                ("cleared", words)
            }
        };
        tx.prepare_cached(
            "INSERT INTO alarm_steps (number, position, at, step, actor, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![n, position, at, step, stored.actor_text(), text])?;
        Ok(())
    }
}
