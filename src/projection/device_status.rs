//! `device_status`: one row per device with what the dashboard shows: kind, name, zone, availability, open
//! faults, lock-out, last event time and today's passages (in the site's time zone).

use super::{ApplyError, Projection, local};
use crate::domain::DeviceEvent;
use crate::journal::StoredEvent;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};

pub struct DeviceStatusProjection {
    tz: TimeZone,
}

impl DeviceStatusProjection {
    pub fn new(tz: TimeZone) -> Self {
        Self { tz }
    }
}

/// Updates the space-separated set of open fault codes.
fn with_fault(open: &str, code: &str, present: bool) -> String {
    let mut codes: Vec<&str> = open.split_whitespace().filter(|c| *c != code).collect();
    if present {
        codes.push(code);
    }
    codes.sort_unstable();
    codes.join(" ")
}

impl Projection for DeviceStatusProjection {
    fn name(&self) -> &'static str {
        "device_status"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["device_status"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let Some((id, event)) = stored.device() else {
            return Ok(());
        };
        let at = stored.occurred_at.as_microsecond();
        match event {
            DeviceEvent::Commissioned(e) => {
                tx.prepare_cached(
                    "INSERT INTO device_status (device_id, kind, name, zone, lifecycle, availability, open_faults,
                                                locked_out, last_event_at, passages_day, passages_today_in,
                                                passages_today_out)
                     VALUES (?1, ?2, ?3, ?4, 'active', 'unknown', '', 0, ?5, NULL, 0, 0)
                     ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                         zone = excluded.zone, lifecycle = 'active'",
                )?
                .execute(params![id, e.kind.as_str(), e.details.name, e.details.zone, at])?;
            }
            DeviceEvent::DetailsChanged(e) => {
                tx.prepare_cached("UPDATE device_status SET name = ?2, zone = ?3 WHERE device_id = ?1")?
                    .execute(params![id, e.details.name, e.details.zone])?;
            }
            DeviceEvent::Decommissioned(_) => {
                tx.prepare_cached("UPDATE device_status SET lifecycle = 'decommissioned' WHERE device_id = ?1")?
                    .execute([id])?;
            }
            DeviceEvent::PassageRecorded(e) => {
                let day = local(&self.tz, e.at).date().to_string();
                let (d_in, d_out) = match e.direction {
                    crate::domain::Direction::In => (1, 0),
                    crate::domain::Direction::Out => (0, 1),
                };
                // A new local day restarts the counters; a late event for an earlier day does not count "today".
                tx.prepare_cached(
                    "UPDATE device_status SET
                        passages_today_in = CASE WHEN passages_day = ?2 THEN passages_today_in + ?3
                                                 WHEN passages_day IS NULL OR passages_day < ?2 THEN ?3
                                                 ELSE passages_today_in END,
                        passages_today_out = CASE WHEN passages_day = ?2 THEN passages_today_out + ?4
                                                  WHEN passages_day IS NULL OR passages_day < ?2 THEN ?4
                                                  ELSE passages_today_out END,
                        passages_day = CASE WHEN passages_day IS NULL OR passages_day < ?2 THEN ?2
                                            ELSE passages_day END
                     WHERE device_id = ?1",
                )?
                .execute(params![id, day, d_in, d_out])?;
            }
            DeviceEvent::FaultReported(_) | DeviceEvent::FaultCleared(_) => {
                let (code, present) = match event {
                    DeviceEvent::FaultReported(e) => (e.code.as_str(), true),
                    DeviceEvent::FaultCleared(e) => (e.code.as_str(), false),
                    _ => unreachable!(),
                };
                let open: Option<String> = tx
                    .prepare_cached("SELECT open_faults FROM device_status WHERE device_id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?;
                if let Some(open) = open {
                    tx.prepare_cached("UPDATE device_status SET open_faults = ?2 WHERE device_id = ?1")?
                        .execute(params![id, with_fault(&open, code, present)])?;
                }
            }
            DeviceEvent::LockedOut(e) => {
                let by = stored.actor.as_ref().map(ToString::to_string);
                tx.prepare_cached(
                    "UPDATE device_status SET locked_out = 1, lock_reason = ?2, locked_since = ?3, locked_by = ?4
                     WHERE device_id = ?1",
                )?
                .execute(params![id, e.reason, e.at.as_microsecond(), by])?;
            }
            DeviceEvent::Unlocked(_) => {
                tx.prepare_cached(
                    "UPDATE device_status SET locked_out = 0, lock_reason = NULL, locked_since = NULL,
                                              locked_by = NULL
                     WHERE device_id = ?1",
                )?
                .execute([id])?;
            }
            DeviceEvent::WentOffline(_) | DeviceEvent::CameOnline(_) => {
                let availability = if matches!(event, DeviceEvent::CameOnline(_)) {
                    "online"
                } else {
                    "offline"
                };
                tx.prepare_cached("UPDATE device_status SET availability = ?2 WHERE device_id = ?1")?
                    .execute(params![id, availability])?;
            }
            DeviceEvent::FactVoided(e) => {
                if let crate::domain::VoidedFact::Passage { direction, at } = &e.fact {
                    let day = local(&self.tz, *at).date().to_string();
                    let (d_in, d_out) = match direction {
                        crate::domain::Direction::In => (1, 0),
                        crate::domain::Direction::Out => (0, 1),
                    };
                    // Only a passage of the day the counters are for takes one back.
                    tx.prepare_cached(
                        "UPDATE device_status SET passages_today_in = MAX(passages_today_in - ?3, 0),
                                                  passages_today_out = MAX(passages_today_out - ?4, 0)
                         WHERE device_id = ?1 AND passages_day = ?2",
                    )?
                    .execute(params![id, day, d_in, d_out])?;
                }
                // A correction is not news from the device: its last event stays what it was.
                return Ok(());
            }
            DeviceEvent::WatchesChanged(_) | DeviceEvent::RecognitionRecorded(_) | DeviceEvent::MessageCounted(_) => {}
        }
        tx.prepare_cached(
            "UPDATE device_status SET last_event_at = MAX(COALESCE(last_event_at, 0), ?2) WHERE device_id = ?1",
        )?
        .execute(params![id, at])?;
        if event.is_device_message() {
            let skew_ms = (stored.recorded_at.as_millisecond()).saturating_sub(stored.occurred_at.as_millisecond());
            tx.prepare_cached("UPDATE device_status SET clock_skew_ms = ?2 WHERE device_id = ?1")?
                .execute(params![id, skew_ms])?;
        }
        if let Some(seq) = event.seq() {
            let counted: Option<(Option<i64>, i64)> = tx
                .prepare_cached("SELECT last_seq, lost_messages FROM device_status WHERE device_id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((last, lost)) = counted {
                let (mut last, mut lost) = (last.map(|n| n as u64), lost as u64);
                crate::domain::count_seq(&mut last, &mut lost, seq);
                tx.prepare_cached("UPDATE device_status SET last_seq = ?2, lost_messages = ?3 WHERE device_id = ?1")?
                    .execute(params![id, last.map(|n| n as i64), lost as i64])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fault_codes_form_a_sorted_set() {
        assert_eq!(super::with_fault("", "JAM", true), "JAM");
        assert_eq!(super::with_fault("JAM", "DOOR", true), "DOOR JAM");
        assert_eq!(super::with_fault("DOOR JAM", "JAM", true), "DOOR JAM");
        assert_eq!(super::with_fault("DOOR JAM", "JAM", false), "DOOR");
        assert_eq!(super::with_fault("DOOR", "JAM", false), "DOOR");
    }
}
