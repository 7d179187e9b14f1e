//! `occupancy`: each zone's count of people (in minus out at its turnstiles, never below zero; set to zero by the
//! daily reset and to a manager's number by a correction), and every change with its time, for the day report.
//! The same rules as [`Counts`](crate::domain::occupancy::Counts), kept in SQL so a rotation costs one update.

use super::{ApplyError, Projection};
use crate::codec::AnyEvent;
use crate::domain::occupancy::OccupancyEvent;
use crate::domain::{DeviceEvent, DeviceKind, Direction, FactVoided, VoidedFact};
use crate::journal::StoredEvent;
use rusqlite::{Connection, OptionalExtension, params};

pub struct OccupancyProjection;

fn record(tx: &Connection, position: i64, zone: &str, at: i64, count: i64, cause: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO occupancy (zone, count, changed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (zone) DO UPDATE SET count = excluded.count, changed_at = excluded.changed_at",
    )?
    .execute(params![zone, count, at])?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO occupancy_changes (position, zone, at, count, cause) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![position, zone, at, count, cause])?;
    Ok(())
}

impl Projection for OccupancyProjection {
    fn name(&self) -> &'static str {
        "occupancy"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["occupancy_devices", "occupancy", "occupancy_changes"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let (position, at) = (stored.position as i64, stored.recorded_at.as_microsecond());
        if let Some((device, event)) = stored.device() {
            match event {
                DeviceEvent::Commissioned(e) if e.kind == DeviceKind::Turnstile => {
                    tx.prepare_cached("INSERT OR REPLACE INTO occupancy_devices (device, zone) VALUES (?1, ?2)")?
                        .execute(params![device, e.details.zone])?;
                }
                DeviceEvent::DetailsChanged(e) => {
                    tx.prepare_cached("UPDATE occupancy_devices SET zone = ?2 WHERE device = ?1")?
                        .execute(params![device, e.details.zone])?;
                }
                DeviceEvent::PassageRecorded(e) => {
                    let zone: Option<String> = tx
                        .prepare_cached("SELECT zone FROM occupancy_devices WHERE device = ?1")?
                        .query_row([device], |r| r.get(0))
                        .optional()?;
                    let Some(zone) = zone else { return Ok(()) };
                    let count: i64 = tx
                        .prepare_cached("SELECT count FROM occupancy WHERE zone = ?1")?
                        .query_row([&zone], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0);
                    let count = match e.direction {
                        Direction::In => count.saturating_add(1),
                        Direction::Out => (count - 1).max(0),
                    };
                    record(tx, position, &zone, at, count, "passage")?;
                }
                DeviceEvent::FactVoided(FactVoided {
                    position: voided,
                    fact: VoidedFact::Passage { direction, .. },
                    ..
                }) => {
                    // The zone the passage was counted in, when it was counted (by its position: the device
                    // may be in another zone now).
                    let zone: Option<String> = tx
                        .prepare_cached("SELECT zone FROM occupancy_changes WHERE position = ?1 AND cause = 'passage'")?
                        .query_row([*voided as i64], |r| r.get(0))
                        .optional()?;
                    let Some(zone) = zone else { return Ok(()) };
                    // A reset or a manager's count after it already replaced what it added.
                    let replaced: bool = tx
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM occupancy_changes
                                            WHERE zone = ?1 AND position > ?2 AND cause IN ('reset', 'correction'))",
                        )?
                        .query_row(params![zone, *voided as i64], |r| r.get(0))?;
                    if replaced {
                        return Ok(());
                    }
                    let count: i64 = tx
                        .prepare_cached("SELECT count FROM occupancy WHERE zone = ?1")?
                        .query_row([&zone], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0);
                    let count = match direction {
                        Direction::In => (count - 1).max(0),
                        Direction::Out => count.saturating_add(1),
                    };
                    record(tx, position, &zone, at, count, "void")?;
                }
                _ => {}
            }
            return Ok(());
        }
        match &stored.event {
            AnyEvent::Occupancy(OccupancyEvent::Reset(_)) => {
                let zones: Vec<String> = tx
                    .prepare_cached("SELECT zone FROM occupancy WHERE count <> 0")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for zone in zones {
                    record(tx, position, &zone, at, 0, "reset")?;
                }
            }
            AnyEvent::Occupancy(OccupancyEvent::Corrected(e)) => {
                record(
                    tx,
                    position,
                    &e.zone,
                    at,
                    e.count.min(i64::MAX as u64) as i64,
                    "correction",
                )?;
            }
            _ => {}
        }
        Ok(())
    }
}
