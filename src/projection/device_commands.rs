//! `device_commands`: the desired state of every turnstile, which Gatehouse publishes on its `command` topic
//! (SPEC §3): locked or not, why, since when, and a version that only grows (the stream version of the event
//! that set it). A commissioned turnstile starts unlocked, so a gateway always has a state to apply.

use super::{ApplyError, Projection};
use crate::domain::{DeviceEvent, DeviceKind};
use crate::journal::StoredEvent;
use rusqlite::{Connection, params};

pub struct DeviceCommandsProjection;

impl Projection for DeviceCommandsProjection {
    /// Turnstiles hear their lock and unlock from this table's board: it must not lag behind a burst.
    fn is_urgent(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "device_commands"
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Commissioned", "LockedOut", "Unlocked", "Decommissioned"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["device_commands"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let Some((id, event)) = stored.device() else {
            return Ok(());
        };
        let (version, position) = (stored.version as i64, stored.position as i64);
        match event {
            DeviceEvent::Commissioned(e) if e.kind == DeviceKind::Turnstile => {
                // A re-commissioned turnstile keeps a lock-out it had (the turnstile's state does too).
                tx.prepare_cached(
                    "INSERT INTO device_commands (device_id, version, locked, reason, at, position, active)
                     VALUES (?1, ?2, 0, '', ?3, ?4, 1)
                     ON CONFLICT (device_id) DO UPDATE SET active = 1, version = excluded.version,
                         position = excluded.position",
                )?
                .execute(params![id, version, e.at.as_microsecond(), position])?;
            }
            DeviceEvent::LockedOut(e) => {
                tx.prepare_cached(
                    "UPDATE device_commands SET version = ?2, locked = 1, reason = ?3, at = ?4, position = ?5
                     WHERE device_id = ?1",
                )?
                .execute(params![id, version, e.reason, e.at.as_microsecond(), position])?;
            }
            DeviceEvent::Unlocked(e) => {
                tx.prepare_cached(
                    "UPDATE device_commands SET version = ?2, locked = 0, reason = '', at = ?3, position = ?4
                     WHERE device_id = ?1",
                )?
                .execute(params![id, version, e.at.as_microsecond(), position])?;
            }
            DeviceEvent::Decommissioned(_) => {
                tx.prepare_cached(
                    "UPDATE device_commands SET version = ?2, active = 0, position = ?3 WHERE device_id = ?1",
                )?
                .execute(params![id, version, position])?;
            }
            _ => {}
        }
        Ok(())
    }
}
