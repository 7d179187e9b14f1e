//! `equipment`: what the equipment report needs to judge each device's health over a period: fault episodes
//! (opened, cleared) and availability intervals (online/offline, start and end).
//!
//! Device times can run backwards (a gateway clock corrected, the offline policy's server time followed by a
//! message stamped earlier by the device), so every new boundary is clamped to the latest one already recorded:
//! intervals stay back to back and never overlap, and an episode never clears before it opened.

use super::{ApplyError, Projection};
use crate::domain::{DeviceEvent, DomainEvent};
use crate::journal::StoredEvent;
use rusqlite::{Connection, OptionalExtension, params};

pub struct EquipmentProjection;

impl EquipmentProjection {
    pub fn new() -> Self {
        Self
    }
}

impl Default for EquipmentProjection {
    fn default() -> Self {
        Self::new()
    }
}

/// Availability as the interval table records it; `None` is "unknown" (no interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Online,
    Offline,
}

impl Availability {
    fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Offline => "offline",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "online" => Some(Availability::Online),
            "offline" => Some(Availability::Offline),
            _ => None,
        }
    }
}

/// Ends the device's current interval at `at` and, when `next` is known, opens the next one there.
fn switch_interval(tx: &Connection, id: &str, next: Option<Availability>, at: i64) -> rusqlite::Result<()> {
    let current: Option<String> = tx
        .prepare_cached("SELECT state FROM equipment_availability WHERE device_id = ?1 AND ended_at IS NULL")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if next.is_some() && current.as_deref().and_then(Availability::parse) == next {
        return Ok(());
    }
    let latest: Option<i64> = tx
        .prepare_cached("SELECT MAX(COALESCE(ended_at, started_at)) FROM equipment_availability WHERE device_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let at = latest.map_or(at, |latest| latest.max(at));
    // An interval that would end where it started has no length: drop it rather than keep an empty row (and
    // so the next interval can start at the same instant).
    tx.prepare_cached(
        "DELETE FROM equipment_availability WHERE device_id = ?1 AND ended_at IS NULL AND started_at = ?2",
    )?
    .execute(params![id, at])?;
    tx.prepare_cached("UPDATE equipment_availability SET ended_at = ?2 WHERE device_id = ?1 AND ended_at IS NULL")?
        .execute(params![id, at])?;
    if let Some(next) = next {
        tx.prepare_cached(OPEN_INTERVAL)?
            .execute(params![id, next.as_str(), at])?;
    }
    Ok(())
}

/// Opens device `?1`'s interval in state `?2` at `?3`, with the device's time online and time known in all its
/// earlier (closed) intervals: the equipment report then gets a device's uptime over any period from the two
/// intervals at the period's ends instead of summing every interval in between. Intervals only ever open after
/// the latest one, so these sums never change once written.
pub(crate) const OPEN_INTERVAL: &str =
    "INSERT INTO equipment_availability (device_id, state, started_at, ended_at, online_before, known_before)
     SELECT ?1, ?2, ?3, NULL,
            COALESCE(SUM(CASE WHEN state = 'online' THEN ended_at - started_at ELSE 0 END), 0),
            COALESCE(SUM(ended_at - started_at), 0)
     FROM equipment_availability WHERE device_id = ?1 AND started_at < ?3 AND ended_at IS NOT NULL
     ON CONFLICT (device_id, started_at) DO UPDATE SET state = excluded.state, ended_at = NULL,
         online_before = excluded.online_before, known_before = excluded.known_before";

fn remembered_availability(tx: &Connection, id: &str) -> rusqlite::Result<Option<Availability>> {
    let stored: Option<String> = tx
        .prepare_cached("SELECT availability FROM equipment_devices WHERE device_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(stored.as_deref().and_then(Availability::parse))
}

impl Projection for EquipmentProjection {
    fn name(&self) -> &'static str {
        "equipment"
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "Commissioned",
            "DetailsChanged",
            "Decommissioned",
            "CameOnline",
            "WentOffline",
            "FaultReported",
            "FaultCleared",
        ])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["equipment_devices", "equipment_faults", "equipment_availability"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let Some((id, event)) = stored.device() else {
            return Ok(());
        };
        match event {
            DeviceEvent::Commissioned(e) => {
                tx.prepare_cached(
                    "INSERT INTO equipment_devices (device_id, kind, name, zone, availability, decommissioned_at)
                     VALUES (?1, ?2, ?3, ?4, 'unknown', NULL)
                     ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                         zone = excluded.zone, decommissioned_at = NULL",
                )?
                .execute(params![id, e.kind.as_str(), e.details.name, e.details.zone])?;
                // The aggregate keeps its availability across a decommissioning and reports no change when it
                // comes back, so the interval resumes in the state it remembers.
                if let Some(state) = remembered_availability(tx, id)? {
                    switch_interval(tx, id, Some(state), e.at.as_microsecond())?;
                }
            }
            DeviceEvent::DetailsChanged(e) => {
                tx.prepare_cached("UPDATE equipment_devices SET name = ?2, zone = ?3 WHERE device_id = ?1")?
                    .execute(params![id, e.details.name, e.details.zone])?;
            }
            DeviceEvent::Decommissioned(e) => {
                // Out of service is neither up nor down: end the interval without starting another.
                switch_interval(tx, id, None, e.at.as_microsecond())?;
                tx.prepare_cached("UPDATE equipment_devices SET decommissioned_at = ?2 WHERE device_id = ?1")?
                    .execute(params![id, e.at.as_microsecond()])?;
            }
            DeviceEvent::CameOnline(_) | DeviceEvent::WentOffline(_) => {
                let state = if matches!(event, DeviceEvent::CameOnline(_)) {
                    Availability::Online
                } else {
                    Availability::Offline
                };
                switch_interval(tx, id, Some(state), event.occurred_at().as_microsecond())?;
                tx.prepare_cached("UPDATE equipment_devices SET availability = ?2 WHERE device_id = ?1")?
                    .execute(params![id, state.as_str()])?;
            }
            DeviceEvent::FaultReported(e) => {
                // A report and an all-clear at the same instant followed by a new report: one episode, open.
                tx.prepare_cached(
                    "INSERT INTO equipment_faults (device_id, code, detail, opened_at, cleared_at)
                     VALUES (?1, ?2, ?3, ?4, NULL)
                     ON CONFLICT (device_id, code, opened_at) DO UPDATE SET detail = excluded.detail,
                                                                           cleared_at = NULL",
                )?
                .execute(params![id, e.code.as_str(), e.detail, e.at.as_microsecond()])?;
            }
            DeviceEvent::FaultCleared(e) => {
                tx.prepare_cached(
                    "UPDATE equipment_faults SET cleared_at = MAX(opened_at, ?3)
                     WHERE device_id = ?1 AND code = ?2 AND cleared_at IS NULL",
                )?
                .execute(params![id, e.code.as_str(), e.at.as_microsecond()])?;
            }
            DeviceEvent::WatchesChanged(_)
            | DeviceEvent::PassageRecorded(_)
            | DeviceEvent::LockedOut(_)
            | DeviceEvent::Unlocked(_)
            | DeviceEvent::RecognitionRecorded(_)
            | DeviceEvent::MessageCounted(_)
            | DeviceEvent::FactVoided(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn views() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate_views(&mut conn).unwrap();
        conn
    }

    fn intervals(conn: &Connection) -> Vec<(String, i64, Option<i64>)> {
        let mut stmt = conn
            .prepare("SELECT state, started_at, ended_at FROM equipment_availability ORDER BY started_at")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn availability_intervals_follow_each_other_without_gaps() {
        let mut conn = views();
        let tx = conn.transaction().unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 10).unwrap();
        switch_interval(&tx, "T1", Some(Availability::Offline), 30).unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 45).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            intervals(&conn),
            [
                ("online".into(), 10, Some(30)),
                ("offline".into(), 30, Some(45)),
                ("online".into(), 45, None)
            ]
        );
    }

    #[test]
    fn a_transition_stamped_before_the_last_one_is_moved_up_to_it() {
        let mut conn = views();
        let tx = conn.transaction().unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 10).unwrap();
        switch_interval(&tx, "T1", Some(Availability::Offline), 50).unwrap();
        // The device's own clock says 40, but the offline mark at 50 is already recorded.
        switch_interval(&tx, "T1", Some(Availability::Online), 40).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            intervals(&conn),
            [("online".into(), 10, Some(50)), ("online".into(), 50, None)]
        );
    }

    #[test]
    fn a_repeated_state_continues_the_current_interval() {
        let mut conn = views();
        let tx = conn.transaction().unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 10).unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 20).unwrap();
        tx.commit().unwrap();
        assert_eq!(intervals(&conn), [("online".into(), 10, None)]);
    }

    fn stored(position: u64, event: DeviceEvent) -> StoredEvent {
        StoredEvent::of_device(position, "T1", position, event)
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(seconds).unwrap()
    }

    fn apply_all(conn: &mut Connection, events: Vec<DeviceEvent>) {
        let tx = conn.transaction().unwrap();
        let mut projection = EquipmentProjection::new();
        for (i, event) in events.into_iter().enumerate() {
            projection.apply(&tx, &stored(i as u64 + 1, event)).unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn a_recommissioned_device_resumes_the_availability_it_had_when_it_was_retired() {
        use crate::domain::*;
        let commissioned = |s| {
            DeviceEvent::Commissioned(Commissioned {
                kind: DeviceKind::Turnstile,
                details: DeviceDetails::default(),
                watches: vec![],
                at: at(s),
            })
        };
        let mut conn = views();
        apply_all(
            &mut conn,
            vec![
                commissioned(0),
                DeviceEvent::CameOnline(CameOnline { at: at(10) }),
                DeviceEvent::Decommissioned(Decommissioned { at: at(20) }),
                commissioned(30),
            ],
        );
        let s = 1_000_000;
        assert_eq!(
            intervals(&conn),
            [("online".into(), 10 * s, Some(20 * s)), ("online".into(), 30 * s, None)]
        );
        let decommissioned: Option<i64> = conn
            .query_row("SELECT decommissioned_at FROM equipment_devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(decommissioned, None);
    }

    #[test]
    fn a_fault_episode_runs_from_its_report_to_its_all_clear_and_never_ends_before_it_began() {
        use crate::domain::*;
        let jam = || FaultCode::parse("JAM").unwrap();
        let mut conn = views();
        apply_all(
            &mut conn,
            vec![
                DeviceEvent::FaultReported(FaultReported {
                    code: jam(),
                    detail: "stuck".into(),
                    at: at(100),
                    seq: None,
                }),
                DeviceEvent::FaultCleared(FaultCleared {
                    code: jam(),
                    at: at(90),
                    seq: None,
                }),
                DeviceEvent::FaultReported(FaultReported {
                    code: jam(),
                    detail: "again".into(),
                    at: at(200),
                    seq: None,
                }),
            ],
        );
        let mut stmt = conn
            .prepare("SELECT detail, opened_at, cleared_at FROM equipment_faults ORDER BY opened_at")
            .unwrap();
        let episodes: Vec<(String, i64, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let s = 1_000_000;
        assert_eq!(
            episodes,
            [
                ("stuck".into(), 100 * s, Some(100 * s)),
                ("again".into(), 200 * s, None)
            ]
        );
    }

    #[test]
    fn decommissioning_ends_the_interval_and_leaves_the_time_after_it_unknown() {
        let mut conn = views();
        let tx = conn.transaction().unwrap();
        switch_interval(&tx, "T1", Some(Availability::Offline), 10).unwrap();
        switch_interval(&tx, "T1", None, 20).unwrap();
        switch_interval(&tx, "T1", Some(Availability::Online), 20).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            intervals(&conn),
            [("offline".into(), 10, Some(20)), ("online".into(), 20, None)]
        );
    }
}
