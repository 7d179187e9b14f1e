//! Device messages through the real pipeline: valid ones become events exactly once, everything else becomes a
//! dead letter with its reason, and ingestion never stops.

use crate::helpers::*;
use gatehouse::ingest::Ingested;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use gatehouse::journal::JournalReader;

#[test]
fn bad_messages_become_dead_letters_while_valid_traffic_between_them_is_counted() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let received = at("2026-03-01T12:00:00Z");
    let outcomes = with_app(site.config(), async |app| {
        let ingestor = &app.state().ingestor;
        let messages: Vec<(&str, &[u8])> = vec![
            ("gatehouse/turnstile/T1/passage", br#"{"msg_id":"a1","direction":"in"}"#),
            (
                "gatehouse/turnstile/T1/passage",
                br#"{"msg_id":"a2","direction":"sideways"}"#,
            ),
            (
                "gatehouse/turnstile/T1/passage",
                br#"{"msg_id":"a3","direction":"out"}"#,
            ),
            ("gatehouse/turnstile/T9/passage", br#"{"msg_id":"a4","direction":"in"}"#),
            ("gatehouse/turnstile/T1/passage", br#"{"msg_id":"a1","direction":"in"}"#),
            (
                "gatehouse/camera/C1/recognition",
                br#"{"msg_id":"c1","subject":"P-1","confidence":0.97}"#,
            ),
            (
                "gatehouse/camera/C1/recognition",
                br#"{"msg_id":"c2","subject":null,"confidence":7}"#,
            ),
            ("gatehouse/turnstile/T2/passage", b"not json"),
            ("gatehouse/turnstile/T2/passage", br#"{"direction":"in"}"#),
        ];
        let mut outcomes = Vec::new();
        for (topic, payload) in messages {
            outcomes.push(
                ingestor
                    .ingest(Received::once(topic, payload, received, Actor::gateway("test")))
                    .await
                    .unwrap(),
            );
        }
        outcomes
    });
    let kinds: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ingested::Recorded { events, .. } => format!("recorded {events}"),
            Ingested::Duplicate => "duplicate".into(),
            Ingested::DeadLettered { reason, .. } => format!("dead: {reason}"),
            Ingested::OverQuota { reason } => format!("over quota: {reason}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "recorded 2", // CameOnline + PassageRecorded
            "dead: field \"direction\": direction \"sideways\" is not \"in\" or \"out\"",
            "recorded 1",
            "dead: unknown device \"T9\": add it to config.toml and re-drive",
            "duplicate",
            "recorded 2",
            "dead: field \"confidence\": 7 is outside 0..=1",
            "dead: payload is not valid JSON: expected ident at line 1 column 2",
            "recorded 2",
        ]
    );
    let journal = site.paths().journal();
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        3
    );
    assert_eq!(
        query_i64(&journal, "SELECT COUNT(*) FROM dead_letters WHERE status = 'open'"),
        4
    );
    let reader = JournalReader::open(&journal).unwrap();
    let t1 = reader.stream_events(&id("T1"), 0).unwrap();
    assert_eq!(
        t1.iter().filter(|e| e.causation.as_deref() == Some("a1")).count(),
        2,
        "CameOnline and the passage"
    );
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let (topic, payload): (String, Vec<u8>) = conn
        .query_row(
            "SELECT topic, payload FROM dead_letters WHERE reason LIKE 'payload is not valid JSON%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("gatehouse/turnstile/T2/passage", &b"not json"[..])
    );
}

#[test]
fn a_message_the_device_refuses_is_kept_with_the_devices_reason() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |_| {});
    // T2 removed from the config: decommissioned, but still known.
    site.write_config("[[turnstile]]\nid = \"T1\"\nname = \"Hall A north\"\nzone = \"Hall A\"\n");
    let outcome = with_app(site.config(), async |app| {
        app.state()
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T2/passage",
                br#"{"direction":"in"}"#,
                at("2026-03-01T12:00:00Z"),
                Actor::gateway("test"),
            ))
            .await
    });
    assert!(
        matches!(&outcome, Ok(Ingested::DeadLettered { reason, .. })
            if reason == "device T2 refused to record passage: device is decommissioned and accepts nothing"),
        "{outcome:?}"
    );
}
