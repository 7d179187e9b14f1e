//! Device actors recover exactly the state they had: from snapshots when those are usable, from the events
//! alone when they are not.

use crate::helpers::*;
use gatehouse::actors::CommandOutcome;
use gatehouse::domain::*;
use gatehouse::journal::JournalReader;

fn fault(code: &str, when: &str) -> DeviceCommand {
    DeviceCommand::ReportFault {
        code: FaultCode::parse(code).unwrap(),
        detail: "arm stuck".into(),
        at: at(when),
        seq: None,
    }
}

/// The state folded from every event of the stream, ignoring snapshots.
fn full_fold(reader: &JournalReader, device: &str) -> TurnstileState {
    let events = reader.stream_events(&id(device), 0).unwrap();
    Turnstile::fold(
        TurnstileState::default(),
        events.iter().filter_map(|e| e.device().map(|(_, event)| event)),
    )
}

#[test]
fn state_recovered_after_a_restart_equals_the_state_before() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let registry = app.state().registry.clone();
        for minute in 0..10 {
            let direction = if minute % 3 == 0 { Direction::Out } else { Direction::In };
            let command = DeviceCommand::RecordPassage {
                direction,
                at: at(&format!("2026-03-01T09:{minute:02}:00Z")),
                seq: None,
            };
            registry
                .execute_device("T1", command, test_meta(Some(&format!("p{minute}"))))
                .await
                .unwrap();
        }
        registry
            .execute_device("T1", fault("JAM", "2026-03-01T09:30:00Z"), test_meta(Some("f1")))
            .await
            .unwrap();
        let lock = DeviceCommand::LockOut {
            reason: "cleaning".into(),
            at: at("2026-03-01T09:31:00Z"),
        };
        registry.execute_device("T1", lock, test_meta(None)).await.unwrap();
    });

    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    let before = full_fold(&reader, "T1");
    assert_eq!((before.passages_in, before.passages_out), (6, 4));
    assert!(
        reader.snapshot(&sid("T1")).unwrap().is_some(),
        "snapshot_every = 3 took snapshots"
    );
    let recovered = gatehouse::actors::recover::<Turnstile>(&reader, &sid("T1")).unwrap();
    assert_eq!(recovered.state, before);

    // The restarted actor decides on the recovered state: the fault is still open, so a repeat adds nothing,
    // and an old message id is still known.
    with_app(site.config(), async |app| {
        let registry = app.state().registry.clone();
        let repeat = registry
            .execute_device("T1", fault("JAM", "2026-03-01T10:00:00Z"), test_meta(Some("f2")))
            .await
            .unwrap();
        assert!(
            matches!(repeat, CommandOutcome::Recorded { events: 0, .. }),
            "{repeat:?}"
        );
        let redelivered = DeviceCommand::RecordPassage {
            direction: Direction::In,
            at: at("2026-03-01T09:01:00Z"),
            seq: None,
        };
        assert_eq!(
            registry
                .execute_device("T1", redelivered, test_meta(Some("p1")))
                .await
                .unwrap(),
            CommandOutcome::Duplicate
        );
    });
    assert_eq!(full_fold(&reader, "T1"), before);
}

#[test]
fn a_snapshot_of_another_schema_or_undecodable_is_ignored_and_the_stream_replayed() {
    let site = Site::new("");
    let events = vec![
        commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-03-01T08:00:00Z"),
        passage(Direction::In, "2026-03-01T09:00:00Z"),
        passage(Direction::Out, "2026-03-01T09:01:00Z"),
    ];
    seed(&site.paths(), &[("T1", events)]);
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    let truth = full_fold(&reader, "T1");
    assert_eq!((truth.passages_in, truth.passages_out), (1, 1));

    let cases: [(u32, &[u8]); 2] = [
        (999, b"from a future version"),
        (Turnstile::STATE_SCHEMA, b"\xff\xff\xff garbage"),
    ];
    for (schema, bytes) in cases {
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (stream_id, version, state_schema, format, state, taken_at)
             VALUES ('T1', 2, ?1, 1, ?2, 0)",
            rusqlite::params![schema, bytes],
        )
        .unwrap();
        let recovered = gatehouse::actors::recover::<Turnstile>(&reader, &sid("T1")).unwrap();
        assert_eq!(recovered.state, truth, "snapshot schema {schema}");
        assert_eq!(recovered.version, 3);
    }
}

#[test]
fn a_start_that_replays_long_streams_saves_their_snapshots_so_the_next_start_does_not() {
    // Streams written without snapshots, as after an upgrade that changed the state schema (every snapshot
    // ignored): 100 passages on each of 12 turnstiles, replayed in one pass over the journal.
    let mut streams = Vec::new();
    let mut config = String::new();
    for n in 0..12 {
        let mut events = vec![commissioned(
            DeviceKind::Turnstile,
            "Gate",
            "Hall A",
            "2026-03-01T08:00:00Z",
        )];
        events.extend((0..100).map(|i| {
            passage(
                Direction::In,
                &format!("2026-03-01T{:02}:{:02}:00Z", 9 + i / 60, i % 60),
            )
        }));
        streams.push((format!("T{n}"), events));
        config.push_str(&format!(
            "[[turnstile]]\nid = \"T{n}\"\nname = \"Gate\"\nzone = \"Hall A\"\n\n"
        ));
    }
    let site = Site::new(&config);
    let streams: Vec<(&str, Vec<DeviceEvent>)> = streams.iter().map(|(id, e)| (id.as_str(), e.clone())).collect();
    seed(&site.paths(), &streams);
    let journal = site.paths().journal();
    assert_eq!(query_i64(&journal, "SELECT COUNT(*) FROM snapshots"), 0);

    let states = with_app(site.config(), async |app| {
        let mut states = Vec::new();
        for n in 0..12 {
            let outcome = app
                .state()
                .registry
                .execute_device(
                    &format!("T{n}"),
                    DeviceCommand::RecordHeartbeat {
                        at: at("2026-03-01T10:00:00Z"),
                    },
                    test_meta(None),
                )
                .await;
            assert!(outcome.is_ok(), "T{n} recovered and takes commands: {outcome:?}");
            states.push(full_fold(
                &JournalReader::open(&site.paths().journal()).unwrap(),
                &format!("T{n}"),
            ));
        }
        states
    });
    // Every stream replayed 101 events (more than snapshot_every = 3): each got a snapshot at its head.
    assert_eq!(
        query_i64(&journal, "SELECT COUNT(*) FROM snapshots WHERE version >= 101"),
        12,
        "a snapshot per replayed stream"
    );
    let reader = JournalReader::open(&journal).unwrap();
    for (n, truth) in states.iter().enumerate() {
        let recovered = gatehouse::actors::recover::<Turnstile>(&reader, &sid(&format!("T{n}"))).unwrap();
        assert_eq!(&recovered.state, truth, "T{n} from its new snapshot");
        assert!(
            recovered.replayed <= 3,
            "T{n} replays only what came after the snapshot"
        );
    }
}

#[test]
fn recovery_starts_from_a_usable_snapshot_and_ignores_one_ahead_of_the_journal() {
    let site = Site::new("");
    let events = vec![
        commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-03-01T08:00:00Z"),
        passage(Direction::In, "2026-03-01T09:00:00Z"),
        passage(Direction::In, "2026-03-01T09:01:00Z"),
    ];
    seed(&site.paths(), &[("T1", events)]);
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    let truth = full_fold(&reader, "T1");
    // A snapshot at version 2 that a replay could never produce (1,000 passages in), then one more event: a
    // recovery that used it shows 1,001, a full replay 2.
    let mut marked = Turnstile::fold(TurnstileState::default(), std::iter::empty());
    marked = Turnstile::evolve(
        marked,
        &commissioned(DeviceKind::Turnstile, "North", "Hall A", "2026-03-01T08:00:00Z"),
    );
    marked.passages_in = 1000;
    let (format, bytes) = gatehouse::codec::encode_state(&marked);
    let snapshot = |version: i64| {
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (stream_id, version, state_schema, format, state, taken_at)
             VALUES ('T1', ?1, ?2, ?3, ?4, 0)",
            rusqlite::params![version, Turnstile::STATE_SCHEMA, format, bytes],
        )
        .unwrap();
    };
    snapshot(2);
    let recovered = gatehouse::actors::recover::<Turnstile>(&reader, &sid("T1")).unwrap();
    assert_eq!(
        recovered.state.passages_in, 1001,
        "started from the snapshot, then folded the one later event"
    );
    assert_eq!((recovered.version, recovered.replayed), (3, 1));
    // A snapshot ahead of the journal (version 9 of a 3-event stream) is ignored: a full replay.
    snapshot(9);
    let recovered = gatehouse::actors::recover::<Turnstile>(&reader, &sid("T1")).unwrap();
    assert_eq!(recovered.state, truth);
    assert_eq!((recovered.version, recovered.replayed), (3, 3));
}
