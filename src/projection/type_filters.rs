//! Proof that every projection naming its event types (`Projection::event_types`) builds the same tables from
//! those events alone as from every event: the filter its projector reads with may skip nothing it needs.

use super::{Projection, all};
use crate::domain::*;
use crate::journal::StoredEvent;
use jiff::Timestamp;
use rusqlite::Connection;

fn views() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::db::migrate_views(&mut conn).unwrap();
    conn
}

/// Minute `m` after 2026-03-01T09:00Z.
fn at(m: i64) -> Timestamp {
    Timestamp::from_second(1_772_355_600 + m * 60).unwrap()
}

/// A device's life that touches every device event type: commissioned as `kind`, working, failing, locked,
/// voided facts, retired and commissioned again.
fn life(kind: DeviceKind) -> Vec<DeviceEvent> {
    let details = |name: &str| DeviceDetails {
        name: name.into(),
        zone: "Hall A".into(),
        ..DeviceDetails::default()
    };
    let watched = vec![DeviceId::parse("T1").unwrap()];
    let subject = Subject::parse("P-1").ok();
    let confidence = Confidence::new(0.9).unwrap();
    let passage = |m, direction| {
        DeviceEvent::PassageRecorded(PassageRecorded {
            direction,
            at: at(m),
            during_fault: false,
            during_lockout: false,
            seq: None,
        })
    };
    let recognition = |m| {
        DeviceEvent::RecognitionRecorded(RecognitionRecorded {
            subject: subject.clone(),
            confidence,
            at: at(m),
            seq: None,
        })
    };
    let code = FaultCode::parse("JAM").unwrap();
    vec![
        DeviceEvent::Commissioned(Commissioned {
            kind,
            details: details("North"),
            watches: if kind == DeviceKind::Camera {
                watched.clone()
            } else {
                Vec::new()
            },
            at: at(0),
        }),
        DeviceEvent::CameOnline(CameOnline { at: at(1) }),
        passage(2, Direction::In),
        recognition(3),
        DeviceEvent::DetailsChanged(DetailsChanged {
            details: details("North gate"),
            at: at(4),
        }),
        DeviceEvent::WatchesChanged(WatchesChanged {
            watches: watched,
            at: at(5),
        }),
        DeviceEvent::FaultReported(FaultReported {
            code: code.clone(),
            detail: "arm stuck".into(),
            at: at(6),
            seq: None,
        }),
        passage(7, Direction::Out),
        DeviceEvent::LockedOut(LockedOut {
            reason: "fire drill".into(),
            at: at(8),
        }),
        recognition(9),
        DeviceEvent::MessageCounted(MessageCounted { seq: 7, at: at(10) }),
        DeviceEvent::FaultCleared(FaultCleared {
            code,
            at: at(11),
            seq: None,
        }),
        DeviceEvent::Unlocked(Unlocked { at: at(12) }),
        DeviceEvent::WentOffline(WentOffline { at: at(13) }),
        DeviceEvent::FactVoided(FactVoided {
            position: 4,
            fact: VoidedFact::Recognition {
                subject: subject.clone(),
                confidence,
                at: at(3),
            },
            reason: "the wrong person".into(),
            at: at(14),
        }),
        DeviceEvent::FactVoided(FactVoided {
            position: 3,
            fact: VoidedFact::Passage {
                direction: Direction::In,
                at: at(2),
            },
            reason: "a test rotation".into(),
            at: at(15),
        }),
        DeviceEvent::CameOnline(CameOnline { at: at(16) }),
        DeviceEvent::Decommissioned(Decommissioned { at: at(17) }),
        DeviceEvent::Commissioned(Commissioned {
            kind,
            details: details("North again"),
            watches: Vec::new(),
            at: at(18),
        }),
        passage(19, Direction::In),
    ]
}

/// A turnstile's and a camera's lives as one journal, their events interleaved.
fn journal() -> Vec<StoredEvent> {
    let turnstile = life(DeviceKind::Turnstile);
    let camera = life(DeviceKind::Camera);
    let mut events = Vec::new();
    for (version, (t, c)) in turnstile.into_iter().zip(camera).enumerate() {
        for (device, event) in [("T1", t), ("C1", c)] {
            let position = events.len() as u64 + 1;
            events.push(StoredEvent::of_device(position, device, version as u64 + 1, event));
        }
    }
    events
}

/// Every row of the projection's tables, as text, sorted.
fn tables(conn: &Connection, projection: &dyn Projection) -> Vec<String> {
    let mut rows = Vec::new();
    for table in projection.tables() {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let cells: Vec<String> = (0..columns).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
            rows.push(format!("{table}: {}", cells.join(", ")));
        }
    }
    rows.sort();
    rows
}

/// The projection's tables after each event of the journal, applying only those `keep` lets through (as its
/// projector would; all in one transaction).
fn project(
    mut projection: Box<dyn Projection>,
    journal: &[StoredEvent],
    keep: impl Fn(&StoredEvent) -> bool,
) -> Vec<Vec<String>> {
    let mut conn = views();
    let mut tx = conn.transaction().unwrap();
    let mut after_each = Vec::new();
    for event in journal {
        if keep(event) {
            let failed = super::apply_one(projection.as_mut(), &mut tx, event).unwrap();
            assert_eq!(
                failed,
                None,
                "{} applies position {}",
                projection.name(),
                event.position
            );
        }
        after_each.push(tables(&tx, projection.as_ref()));
    }
    after_each
}

#[test]
fn the_journal_here_holds_every_device_event_type() {
    let mut seen: Vec<&str> = journal().iter().map(|e| e.event_type).collect();
    seen.sort_unstable();
    seen.dedup();
    let mut every = DEVICE_EVENT_TYPES.to_vec();
    every.sort_unstable();
    assert_eq!(seen, every);
}

#[test]
fn a_projection_builds_the_same_tables_from_the_event_types_it_names_as_from_every_event() {
    let journal = journal();
    let tz = jiff::tz::TimeZone::UTC;
    let mut filtered = 0;
    for (everything, only_its_types) in all(&tz).into_iter().zip(all(&tz)) {
        let Some(types) = everything.event_types() else {
            continue;
        };
        filtered += 1;
        let name = everything.name();
        for t in types {
            assert!(
                DEVICE_EVENT_TYPES.contains(t),
                "{name} names {t:?}, which is no event type"
            );
        }
        let from_all = project(everything, &journal, |_| true);
        assert!(
            from_all.last().is_some_and(|rows| !rows.is_empty()),
            "{name} wrote nothing: the comparison would prove nothing"
        );
        let from_its_types = project(only_its_types, &journal, |e| types.contains(&e.event_type));
        for (position, (expected, got)) in from_all.iter().zip(&from_its_types).enumerate() {
            assert_eq!(got, expected, "{name}, after position {}", position + 1);
        }
    }
    assert!(
        filtered >= 3,
        "device_commands, recognitions and equipment name their types"
    );
}
