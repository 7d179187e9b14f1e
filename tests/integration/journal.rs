//! The journal's guarantees: optimistic concurrency, dedupe of redeliveries, immutability, group commit and
//! commit notices.

use crate::helpers::*;
use gatehouse::config::Synchronous;
use gatehouse::domain::*;
use gatehouse::journal::{AppendError, AppendOutcome, AppendRequest, JournalReader, JournalWriter};

fn request(stream: &str, expected_version: u64, events: Vec<DeviceEvent>, causation: Option<&str>) -> AppendRequest {
    AppendRequest {
        stream: sid(stream),
        expected_version,
        events: events.iter().map(gatehouse::codec::encode_event).collect(),
        causation: causation.map(str::to_owned),
        actor: gatehouse::journal::Actor::gateway("test"),
        delivery: None,
    }
}

fn t1_commissioned() -> DeviceEvent {
    commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-03-01T08:00:00Z")
}

#[tokio::test]
async fn an_append_decided_on_a_stale_version_is_refused_and_writes_nothing() {
    let site = Site::new("");
    site.paths().prepare().unwrap();
    let (writer, _thread) = JournalWriter::open(&site.paths().journal(), Synchronous::Full).unwrap();
    let first = writer
        .append(request("T1", 0, vec![t1_commissioned()], None))
        .await
        .unwrap();
    assert_eq!(
        first,
        AppendOutcome::Appended {
            last_position: 1,
            version: 1
        }
    );

    let stale = writer
        .append(request(
            "T1",
            0,
            vec![passage(Direction::In, "2026-03-01T09:00:00Z")],
            None,
        ))
        .await;
    assert_eq!(
        stale,
        Err(AppendError::Conflict {
            stream: sid("T1"),
            expected: 0,
            actual: 1
        })
    );

    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    assert_eq!(reader.head().unwrap(), 1);
    assert_eq!(reader.stream_version(&id("T1")).unwrap(), 1);
}

#[tokio::test]
async fn a_redelivered_message_id_for_the_same_device_is_dropped() {
    let site = Site::new("");
    site.paths().prepare().unwrap();
    let (writer, _thread) = JournalWriter::open(&site.paths().journal(), Synchronous::Full).unwrap();
    writer
        .append(request("T1", 0, vec![t1_commissioned()], None))
        .await
        .unwrap();
    writer
        .append(request("T2", 0, vec![t1_commissioned()], None))
        .await
        .unwrap();
    let pass = || vec![passage(Direction::In, "2026-03-01T09:00:00Z")];

    let first = writer.append(request("T1", 1, pass(), Some("m-1"))).await.unwrap();
    assert_eq!(
        first,
        AppendOutcome::Appended {
            last_position: 3,
            version: 2
        }
    );
    // Redelivered: same id, same device, decided on the state after the first (as a restarted actor would).
    let again = writer.append(request("T1", 2, pass(), Some("m-1"))).await.unwrap();
    assert_eq!(again, AppendOutcome::Duplicate);
    // The same id from another device is another message.
    let other = writer.append(request("T2", 1, pass(), Some("m-1"))).await.unwrap();
    assert_eq!(
        other,
        AppendOutcome::Appended {
            last_position: 4,
            version: 2
        }
    );

    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    assert_eq!(reader.head().unwrap(), 4);
    let t1 = reader.stream_events(&id("T1"), 0).unwrap();
    assert_eq!(t1.len(), 2);
    assert_eq!(t1[1].causation.as_deref(), Some("m-1"));
}

#[test]
fn events_cannot_be_updated_or_deleted() {
    let site = Site::new("");
    seed(&site.paths(), &[("T1", vec![t1_commissioned()])]);
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    let update = conn.execute("UPDATE events SET event_type = 'Forged'", []).unwrap_err();
    assert!(
        update
            .to_string()
            .contains("events are append-only: UPDATE is not allowed"),
        "{update}"
    );
    let delete = conn.execute("DELETE FROM events", []).unwrap_err();
    assert!(
        delete
            .to_string()
            .contains("events are append-only: DELETE is not allowed"),
        "{delete}"
    );
    assert_eq!(query_i64(&site.paths().journal(), "SELECT COUNT(*) FROM events"), 1);
}

#[test]
fn the_message_ids_that_drop_redeliveries_cannot_be_updated_or_deleted_either() {
    let site = Site::new("");
    let t1 = vec![t1_commissioned()];
    seed(&site.paths(), &[("T1", t1)]);
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    conn.execute(
        "INSERT INTO processed_messages (stream_id, msg_id, position) VALUES ('T1', 'm-1', 1)",
        [],
    )
    .unwrap();
    for (sql, what) in [
        ("UPDATE processed_messages SET msg_id = 'forged'", "UPDATE"),
        ("DELETE FROM processed_messages", "DELETE"),
    ] {
        let refused = conn.execute(sql, []).unwrap_err().to_string();
        assert!(refused.contains(&format!("{what} is not allowed")), "{refused}");
    }
    assert_eq!(
        query_i64(&site.paths().journal(), "SELECT COUNT(*) FROM processed_messages"),
        1
    );
}

#[tokio::test]
async fn appends_that_arrive_together_are_committed_together_and_learn_their_positions() {
    let site = Site::new("");
    site.paths().prepare().unwrap();
    let (writer, _thread) = JournalWriter::open(&site.paths().journal(), Synchronous::Full).unwrap();
    let devices: Vec<String> = (0..200).map(|i| format!("T{i}")).collect();
    // Queue every append before awaiting any: they reach the writer together.
    let pending: Vec<_> = devices
        .iter()
        .map(|d| writer.append(request(d, 0, vec![t1_commissioned()], None)))
        .collect();
    let mut positions = Vec::new();
    for outcome in futures_util::future::join_all(pending).await {
        match outcome.unwrap() {
            AppendOutcome::Appended {
                last_position,
                version: 1,
            } => positions.push(last_position),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        positions,
        (1..=200).collect::<Vec<_>>(),
        "positions follow the order of the calls"
    );
    let commits = writer.stats().commits();
    assert!(commits < 50, "200 appends queued together took {commits} commits");
    assert_eq!(*writer.committed().borrow(), 200, "subscribers hear the committed head");
}

#[tokio::test]
async fn a_full_disk_fails_the_append_cleanly_and_the_writer_keeps_going() {
    let site = Site::new("");
    site.paths().prepare().unwrap();
    let (writer, _thread) = JournalWriter::open(&site.paths().journal(), Synchronous::Full).unwrap();
    writer
        .append(request("T1", 0, vec![t1_commissioned()], None))
        .await
        .unwrap();
    // Cap the file at its current size: the next append cannot grow it, as on a full disk.
    let pages = query_i64(&site.paths().journal(), "PRAGMA page_count");
    writer.set_max_page_count(pages as u64);
    let big = DeviceEvent::FaultReported(FaultReported {
        code: FaultCode::parse("JAM").unwrap(),
        detail: "x".repeat(200_000),
        at: at("2026-03-01T09:00:00Z"),
        seq: None,
    });
    let full = writer.append(request("T1", 1, vec![big], None)).await;
    assert!(
        matches!(&full, Err(AppendError::Storage(m)) if m.contains("disk is full")),
        "{full:?}"
    );
    // /healthz reads this: 503 "journal: cannot write: …" until a commit succeeds again.
    let failing = writer.stats().failing().unwrap_or_default();
    assert!(failing.contains("disk is full"), "{failing}");
    writer.set_max_page_count(u32::MAX as u64);
    let next = writer
        .append(request(
            "T1",
            1,
            vec![passage(Direction::In, "2026-03-01T09:01:00Z")],
            None,
        ))
        .await;
    assert_eq!(
        next,
        Ok(AppendOutcome::Appended {
            last_position: 2,
            version: 2
        })
    );
    assert_eq!(writer.stats().failing(), None, "writing again: healthy again");
}
