//! Dead letters after the fact: listing them, discarding them, and re-driving them through the real pipeline,
//! both by a core the command starts itself and by a running server that picks up requests.

use crate::helpers::*;
use gatehouse::dead_letters::{self, DeadLetter, EMPTY_LISTING, Status, Which};
use gatehouse::ingest::Ingested;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use std::time::Duration;

const T9_PASSAGE: (&str, &[u8]) = ("gatehouse/turnstile/T9/passage", br#"{"msg_id":"n1","direction":"in"}"#);
const SIDEWAYS: (&str, &[u8]) = (
    "gatehouse/turnstile/T1/passage",
    br#"{"msg_id":"s1","direction":"sideways"}"#,
);
const UNKNOWN_T9: &str = "unknown device \"T9\": add it to config.toml and re-drive";
const NOT_IN_OR_OUT: &str = "field \"direction\": direction \"sideways\" is not \"in\" or \"out\"";

fn with_t9() -> String {
    format!("{TWO_TURNSTILES_ONE_CAMERA}\n[[turnstile]]\nid = \"T9\"\nname = \"Hall C\"\nzone = \"Hall C\"\n")
}

/// Feeds messages through a real core's pipeline and returns the dead letters' ids.
fn dead_letters_from(site: &Site, messages: &[(&str, &[u8])]) -> Vec<i64> {
    let received = at("2026-03-01T12:00:00Z");
    let outcomes = with_app(site.config(), async |app| {
        let mut outcomes = Vec::new();
        for (topic, payload) in messages {
            outcomes.push(
                app.state()
                    .ingestor
                    .ingest(Received::once(topic, payload, received, Actor::gateway("test")))
                    .await
                    .unwrap(),
            );
        }
        outcomes
    });
    outcomes
        .into_iter()
        .map(|o| match o {
            Ingested::DeadLettered { id, .. } => id,
            other => panic!("expected a dead letter, got {other:?}"),
        })
        .collect()
}

fn passages_of(site: &Site, device: &str) -> i64 {
    let journal = site.paths().journal();
    let conn = rusqlite::Connection::open(journal).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded' AND stream_id = ?1",
        [device],
        |r| r.get(0),
    )
    .unwrap()
}

fn letter(site: &Site, id: i64) -> DeadLetter {
    dead_letters::list(&site.paths().journal(), true)
        .unwrap()
        .into_iter()
        .find(|l| l.id == id)
        .unwrap_or_else(|| panic!("dead letter {id} is listed"))
}

fn table(letters: &[DeadLetter]) -> String {
    let mut out = Vec::new();
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    gatehouse::cli::dead_letters::print_table(letters, &tz, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn listing_shows_id_topic_reason_and_payload() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |_| {});
    let journal = site.paths().journal();
    assert_eq!(
        table(&dead_letters::list(&journal, false).unwrap()),
        format!("{EMPTY_LISTING}\n")
    );

    let ids = dead_letters_from(&site, &[SIDEWAYS, ("gatehouse/turnstile/T2/passage", b"not\njson")]);
    let letters = dead_letters::list(&journal, false).unwrap();
    assert_eq!(letters.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
    let printed = table(&letters);
    let rows: Vec<Vec<&str>> = printed.lines().map(cells).collect();
    assert_eq!(
        rows,
        [
            vec!["id", "received (Europe/Berlin)", "topic", "reason", "payload"],
            vec![
                "1",
                "2026-03-01 13:00:00",
                "gatehouse/turnstile/T1/passage",
                NOT_IN_OR_OUT,
                r#"{"msg_id":"s1","direction":"sideways"}"#
            ],
            vec![
                "2",
                "2026-03-01 13:00:00",
                "gatehouse/turnstile/T2/passage",
                "payload is not valid JSON: expected ident at line 1 column 2",
                r"not\njson"
            ],
        ]
    );
    let payload_column: Vec<Option<usize>> = printed.lines().map(|l| l.find("payload").or(l.find('{'))).collect();
    assert_eq!(payload_column[0], payload_column[1], "columns are aligned:\n{printed}");
}

/// A table line's cells: columns are separated by at least two spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[test]
fn a_letter_for_an_unknown_device_redrives_into_events_once_the_device_is_configured() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let [id] = dead_letters_from(&site, &[T9_PASSAGE])[..] else {
        unreachable!()
    };
    assert_eq!(letter(&site, id).reason, UNKNOWN_T9);

    site.write_config(&with_t9());
    let redriven = gatehouse::cli::dead_letters::redrive(site.config(), Which::One(id), &Actor::cli()).unwrap();

    assert_eq!(passages_of(&site, "T9"), 1);
    assert_eq!(redriven.len(), 1);
    let letter = &redriven[0];
    assert_eq!(
        (letter.id, letter.status, letter.outcome.as_deref(), letter.redriven_to),
        (id, Status::Redriven, Some("recorded 2 events"), None),
        "CameOnline and the passage"
    );
    assert!(letter.resolved_at.is_some());
    assert_eq!(
        table(&dead_letters::list(&site.paths().journal(), false).unwrap()),
        format!("{EMPTY_LISTING}\n")
    );
    let error = gatehouse::cli::dead_letters::redrive(site.config(), Which::One(id), &Actor::cli()).unwrap_err();
    assert_eq!(error.to_string(), format!("dead letter {id} is already redriven"));
    let error = gatehouse::cli::dead_letters::redrive(site.config(), Which::One(99), &Actor::cli()).unwrap_err();
    assert_eq!(error.to_string(), "dead letter 99 does not exist");
    assert_eq!(passages_of(&site, "T9"), 1, "nothing was re-driven twice");
}

#[test]
fn a_letter_that_is_still_bad_gets_a_new_dead_letter_linked_to_the_old() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let [old] = dead_letters_from(&site, &[SIDEWAYS])[..] else {
        unreachable!()
    };

    let redriven = gatehouse::cli::dead_letters::redrive(site.config(), Which::AllOpen, &Actor::cli()).unwrap();

    let new = old + 1;
    assert_eq!(
        redriven
            .iter()
            .map(|l| (l.id, l.status, l.outcome.clone(), l.redriven_to))
            .collect::<Vec<_>>(),
        [(
            old,
            Status::Redriven,
            Some(format!("dead letter {new}: {NOT_IN_OR_OUT}")),
            Some(new)
        )]
    );
    let open = dead_letters::list(&site.paths().journal(), false).unwrap();
    assert_eq!(open.len(), 1);
    let (old, new) = (letter(&site, old), &open[0]);
    assert_eq!(
        (
            new.id,
            new.status,
            &new.reason,
            &new.topic,
            &new.payload,
            new.received_at
        ),
        (
            old.id + 1,
            Status::Open,
            &old.reason,
            &old.topic,
            &old.payload,
            old.received_at
        ),
        "the new letter is the same message, received at the same time"
    );
    assert_eq!(passages_of(&site, "T1"), 0);
}

#[test]
fn discarding_hides_a_letter_from_the_default_listing() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let [kept, dropped] = dead_letters_from(&site, &[SIDEWAYS, T9_PASSAGE])[..] else {
        unreachable!()
    };
    let journal = site.paths().journal();

    dead_letters::discard(&journal, dropped).unwrap();

    let open: Vec<i64> = dead_letters::list(&journal, false)
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(open, [kept]);
    let all = dead_letters::list(&journal, true).unwrap();
    assert_eq!(
        all.iter().map(|l| (l.id, l.status)).collect::<Vec<_>>(),
        [(kept, Status::Open), (dropped, Status::Discarded)]
    );
    assert!(table(&all).contains("discarded"), "{}", table(&all));
    let error = dead_letters::discard(&journal, dropped).unwrap_err();
    assert_eq!(error.to_string(), format!("dead letter {dropped} is already discarded"));
    let error = dead_letters::discard(&journal, 42).unwrap_err();
    assert_eq!(error.to_string(), "dead letter 42 does not exist");
    let error = dead_letters::request_redrive(&journal, Which::One(dropped), &Actor::cli()).unwrap_err();
    assert_eq!(error.to_string(), format!("dead letter {dropped} is already discarded"));
    assert_eq!(
        dead_letters::request_redrive(&journal, Which::AllOpen, &Actor::cli()).unwrap(),
        [kept],
        "discarded stays out"
    );
}

#[test]
fn a_running_server_redrives_requested_letters() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let [first, second] = dead_letters_from(&site, &[T9_PASSAGE, T9_PASSAGE])[..] else {
        unreachable!()
    };
    site.write_config(&with_t9());
    let journal = site.paths().journal();
    let config = site.config();

    let (by_request, by_command) = with_app(site.config(), async |app| {
        dead_letters::spawn_redrive_loop(app.state().ingestor.clone(), journal.clone());
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || {
            let ids = dead_letters::request_redrive(&journal, Which::One(first), &Actor::cli()).unwrap();
            let by_request = dead_letters::wait_for_redrive(&journal, &ids, Duration::from_secs(20)).unwrap();
            // The command line's path: the server holds the data directory, so the command only asks and waits.
            let by_command = gatehouse::cli::dead_letters::redrive(config, Which::One(second), &Actor::cli()).unwrap();
            (by_request, by_command)
        })
        .await
        .unwrap()
    });

    assert_eq!(
        (by_request[0].id, by_request[0].status, by_request[0].outcome.as_deref()),
        (first, Status::Redriven, Some("recorded 2 events"))
    );
    // The same msg_id on the same device: the journal drops the redelivery.
    assert_eq!(
        (by_command[0].id, by_command[0].status, by_command[0].outcome.as_deref()),
        (
            second,
            Status::Redriven,
            Some("duplicate: the message was already recorded")
        )
    );
    assert_eq!(passages_of(&site, "T9"), 1);
}

#[test]
fn a_request_no_server_handles_times_out_and_running_the_command_again_finishes_it() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let [id] = dead_letters_from(&site, &[T9_PASSAGE])[..] else {
        unreachable!()
    };
    site.write_config(&with_t9());
    let journal = site.paths().journal();

    let ids = dead_letters::request_redrive(&journal, Which::AllOpen, &Actor::cli()).unwrap();
    let error = dead_letters::wait_for_redrive(&journal, &ids, Duration::from_millis(300)).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("the running server did not re-drive dead letter {id} within 300ms: is it healthy? (see /healthz)")
    );
    let error = dead_letters::discard(&journal, id).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("dead letter {id} is waiting to be re-driven and cannot be discarded")
    );

    let redriven = gatehouse::cli::dead_letters::redrive(site.config(), Which::One(id), &Actor::cli()).unwrap();
    assert_eq!(redriven[0].outcome.as_deref(), Some("recorded 2 events"));
    assert_eq!(passages_of(&site, "T9"), 1);
}

#[test]
fn letters_kept_before_redrive_requests_existed_survive_the_schema_change() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let paths = site.paths();
    std::fs::create_dir_all(&paths.dir).unwrap();
    // A journal as the release before re-drive requests left it: migrations 1 and 2, one discarded letter.
    let conn = rusqlite::Connection::open(paths.journal()).unwrap();
    conn.execute_batch(include_str!("../../migrations/journal/0001_events.sql"))
        .unwrap();
    conn.execute_batch(include_str!("../../migrations/journal/0002_dead_letters.sql"))
        .unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 2;
         INSERT INTO dead_letters (id, received_at, topic, payload, reason, status, resolved_at)
         VALUES (7, 1772366400000000, 'gatehouse/turnstile/T9/passage', x'7b7d', 'unknown device', 'discarded', 1);",
    )
    .unwrap();
    drop(conn);

    let letters = dead_letters::list(&paths.journal(), true).unwrap();

    assert_eq!(
        letters,
        [DeadLetter {
            id: 7,
            received_at: at("2026-03-01T12:00:00Z"),
            topic: "gatehouse/turnstile/T9/passage".into(),
            payload: b"{}".to_vec(),
            reason: "unknown device".into(),
            status: Status::Discarded,
            resolved_at: Some(jiff::Timestamp::from_microsecond(1).unwrap()),
            outcome: None,
            redriven_to: None,
            actor: None,
            redrive_by: None,
        }]
    );
    assert_eq!(
        query_i64(
            &paths.journal(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'dead_letters_open'"
        ),
        1,
        "the index is back"
    );
}
