//! The command line as scripts use it: exit codes, error lines, JSON output, time travel.

use crate::helpers::*;
use gatehouse::domain::*;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn check_config_prints_a_summary_of_the_site() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let output = site.gatehouse(&["check-config"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = stdout(&output);
    assert!(summary.contains("Test Station"), "{summary}");
    assert!(summary.contains("2 turnstiles, 1 camera"), "{summary}");
    assert!(summary.contains("watches T1"), "{summary}");
}

#[test]
fn a_config_error_names_file_line_and_column_and_exits_with_status_2() {
    let site = Site::new("");
    std::fs::write(
        site.config_path(),
        "[http]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n",
    )
    .unwrap();
    for command in [&["check-config"][..], &["serve"], &["events"]] {
        let output = site.gatehouse(command);
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        assert_eq!(
            stderr(&output),
            "gatehouse: config.toml:3:1: unknown key \"lisen\" in [http], expected one of: listen\n"
        );
    }
    let missing = site.gatehouse(&["-c", "nope.toml", "check-config"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).starts_with("gatehouse: nope.toml: cannot read: "),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_usage_error_exits_with_status_2() {
    let site = Site::new("");
    let output = site.gatehouse(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    let output = site.gatehouse(&["state", "T 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "gatehouse: T 1: device id \"T 1\" may only contain letters, digits, '_' and '-'\n"
    );
}

fn seed_history(site: &Site) {
    let jam = FaultCode::parse("JAM").unwrap();
    seed(
        &site.paths(),
        &[
            (
                "T1",
                vec![commissioned(
                    DeviceKind::Turnstile,
                    "North",
                    "Hall A",
                    "2026-03-01T08:00:00Z",
                )],
            ),
            (
                "T2",
                vec![commissioned(
                    DeviceKind::Turnstile,
                    "South",
                    "Hall B",
                    "2026-03-01T08:00:00Z",
                )],
            ),
            (
                "T1",
                vec![
                    DeviceEvent::CameOnline(CameOnline {
                        at: at("2026-03-01T09:00:00Z"),
                    }),
                    passage(Direction::In, "2026-03-01T09:00:00Z"),
                    DeviceEvent::FaultReported(FaultReported {
                        code: jam.clone(),
                        detail: "arm".into(),
                        at: at("2026-03-01T10:00:00Z"),
                        seq: None,
                    }),
                    passage(Direction::Out, "2026-03-01T10:30:00Z"),
                    DeviceEvent::FaultCleared(FaultCleared {
                        code: jam,
                        at: at("2026-03-01T11:00:00Z"),
                        seq: None,
                    }),
                ],
            ),
        ],
    );
}

#[test]
fn events_prints_json_lines_filtered_by_stream_and_position() {
    let site = Site::new("");
    seed_history(&site);
    let all = site.gatehouse(&["events"]);
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let lines: Vec<serde_json::Value> = stdout(&all).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7);
    let passage = &lines[3];
    assert_eq!(passage["position"], 4);
    assert_eq!(passage["stream"], "T1");
    assert_eq!(passage["version"], 3);
    assert_eq!(passage["type"], "PassageRecorded");
    assert_eq!(passage["occurred_at"], "2026-03-01T09:00:00Z");
    assert_eq!(passage["data"]["direction"], "in");
    assert!(
        passage["recorded_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );

    let t2 = stdout(&site.gatehouse(&["events", "--stream", "T2"]));
    let t2: Vec<&str> = t2.lines().collect();
    assert_eq!(t2.len(), 1);
    assert!(t2[0].contains(r#""stream":"T2""#));

    let after = site.gatehouse(&["events", "--after", "5"]);
    let positions: Vec<u64> = stdout(&after)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, [6, 7]);
}

#[test]
fn state_as_of_a_past_instant_folds_only_what_had_happened_by_then() {
    let site = Site::new("");
    seed_history(&site);
    let state = |args: &[&str]| -> serde_json::Value {
        let output = site.gatehouse(args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    let now = state(&["state", "T1"]);
    assert_eq!(now["state"]["kind"], "turnstile");
    assert_eq!(now["state"]["passages_in"], 1);
    assert_eq!(now["state"]["passages_out"], 1);
    assert_eq!(now["state"]["common"]["open_faults"], serde_json::json!({}));

    let during_fault = state(&["state", "T1", "--as-of", "2026-03-01T10:15:00Z"]);
    assert_eq!(during_fault["as_of"], "2026-03-01T10:15:00Z");
    assert_eq!(during_fault["version"], 4);
    assert_eq!(during_fault["state"]["passages_out"], 0);
    assert_eq!(
        during_fault["state"]["common"]["open_faults"]["JAM"]["since"],
        "2026-03-01T10:00:00Z"
    );
    assert_eq!(
        during_fault["state"]["common"]["availability"]["online"]["since"],
        "2026-03-01T09:00:00Z"
    );

    // A local time in the site's zone (Europe/Berlin, UTC+1 in March): 10:15 local is 09:15Z.
    let local = state(&["state", "T1", "--as-of", "2026-03-01T10:15"]);
    assert_eq!(local["as_of"], "2026-03-01T09:15:00Z");
    assert_eq!(local["state"]["passages_in"], 1);
    assert_eq!(local["state"]["common"]["open_faults"], serde_json::json!({}));

    let unknown = site.gatehouse(&["state", "T9"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        stderr(&unknown),
        "gatehouse: T9: unknown device: the journal has no events for it\n"
    );
    let bad_time = site.gatehouse(&["state", "T1", "--as-of", "yesterday"]);
    assert_eq!(bad_time.status.code(), Some(2));
    assert!(
        stderr(&bad_time).starts_with("gatehouse: --as-of\ngatehouse: \"yesterday\" is not an instant"),
        "{}",
        stderr(&bad_time)
    );
}

#[test]
fn simulate_publishes_to_the_running_server_and_reports_what_was_acknowledged() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = true"),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    let added = site.gatehouse(&["gateway", "add", "sim", "--devices", "T1,T2,C1"]);
    let password = stdout(&added)
        .lines()
        .find_map(|l| l.strip_prefix("mqtt_password=").map(str::to_owned))
        .expect("gateway add prints the password");
    let mut server = site.spawn_serve();
    wait_for_port(port);
    // Without signing in nothing is acknowledged; signed in as the gateway, everything is.
    let refused = site.gatehouse(&["simulate", "--rate", "50", "--duration", "1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let output = site.gatehouse(&[
        "simulate",
        "--rate",
        "200",
        "--duration",
        "2",
        "--username",
        "sim",
        "--password",
        &password,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = stdout(&output);
    let sent: u64 = report.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(report.contains(&format!("{sent} acknowledged")), "{report}");
    assert!(sent > 50, "{report}");
    let journal = site.paths().journal();
    // Exactly: every passage acknowledged is recorded, each repeat (a retrying gateway's) once.
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("passage "))
        .unwrap_or_else(|| panic!("{report}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap())
        .collect();
    let (passages, repeated) = (numbers[0], numbers.get(1).copied().unwrap_or(0));
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        (passages - repeated) as i64,
        "{report}"
    );
    // Simulated traffic is valid by construction: nothing became a dead letter.
    assert_eq!(query_i64(&journal, "SELECT COUNT(*) FROM dead_letters"), 0);
}

#[test]
fn dead_letters_lists_and_discards_from_the_command_line() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let never_ran = site.gatehouse(&["dead-letters"]);
    assert_eq!(never_ran.status.code(), Some(1));
    assert!(stderr(&never_ran).contains("no such database (has `gatehouse serve` run with this config?)"));
    with_app(site.config(), async |_| {});
    let empty = site.gatehouse(&["dead-letters"]);
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(
        stdout(&empty),
        "no dead letters: every message received so far became events\n"
    );
    with_app(site.config(), async |app| {
        let ingestor = &app.state().ingestor;
        ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/passage",
                b"{oops",
                at("2026-03-01T12:00:00Z"),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
    });
    let listed = stdout(&site.gatehouse(&["dead-letters"]));
    assert!(listed.contains("gatehouse/turnstile/T1/passage"), "{listed}");
    assert!(listed.contains("payload is not valid JSON"), "{listed}");
    assert!(listed.contains("{oops"), "{listed}");
    let discarded = site.gatehouse(&["dead-letters", "--discard", "1"]);
    assert_eq!(
        (discarded.status.code(), stdout(&discarded).as_str()),
        (Some(0), "dead letter 1 discarded\n")
    );
    let again = site.gatehouse(&["dead-letters", "--discard", "1"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(stderr(&again), "gatehouse: dead letter 1 is already discarded\n");
    let missing = site.gatehouse(&["dead-letters", "--redrive", "99"]);
    assert_eq!(stderr(&missing), "gatehouse: dead letter 99 does not exist\n");
}

#[test]
fn backup_copies_both_databases_consistently_while_the_server_ingests_throughout() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let target = site.dir.path().join("backup");
    let site_dir = site.dir.path().to_owned();
    let sent = with_app(site.config(), async |app| {
        // Ingestion runs before, during and after the backup.
        let ingestor = app.state().ingestor.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let feeding = actix_web::rt::spawn(async move {
            let mut n = 0;
            while !*stopped.borrow_and_update() || n < 200 {
                let payload = format!(r#"{{"msg_id":"b{n}","direction":"in"}}"#);
                let topic = if n % 2 == 0 {
                    "gatehouse/turnstile/T1/passage"
                } else {
                    "gatehouse/turnstile/T2/passage"
                };
                ingestor
                    .ingest(Received::once(
                        topic,
                        payload.as_bytes(),
                        jiff::Timestamp::now(),
                        Actor::gateway("test"),
                    ))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                .current_dir(site_dir)
                .args(["backup", "backup"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        stop.send_replace(true);
        let sent = feeding.await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(stdout(&output).contains("backed up journal.db"), "{}", stdout(&output));
        sent
    });
    let copy = target.join("journal.db");
    let copied = query_i64(
        &copy,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert!(
        copied > 0 && copied < sent as i64,
        "the copy is an instant during ingestion: {copied} of {sent}"
    );
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert!(!target.join("journal.db.partial").exists());
    // Every checkpoint in the copied views is at or behind the copied journal's head.
    let head = query_i64(&copy, "SELECT MAX(position) FROM events");
    let ahead = query_i64(
        &target.join("views.db"),
        &format!("SELECT COUNT(*) FROM projector_checkpoints WHERE position > {head}"),
    );
    assert_eq!(
        ahead, 0,
        "a views checkpoint is ahead of the journal copy (head {head})"
    );

    // Restored, the projectors catch up from the copy's checkpoints to the same rows as a fresh projection.
    let restored = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    restored.paths().prepare().unwrap();
    for file in ["journal.db", "views.db"] {
        std::fs::copy(target.join(file), restored.paths().dir.join(file)).unwrap();
    }
    let tables = [
        "SELECT device_id, passages_today_in, passages_today_out FROM device_status ORDER BY device_id",
        "SELECT * FROM traffic ORDER BY 1, 2, 3",
        "SELECT * FROM traffic_daily ORDER BY 1, 2",
    ];
    let caught_up = with_app(restored.config(), async |app| {
        settle(app.state()).await;
        let views = rusqlite::Connection::open(restored.paths().views()).unwrap();
        tables.iter().map(|sql| dump(&views, sql)).collect::<Vec<_>>()
    });
    let rebuilt = restored.gatehouse(&["rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    let views = rusqlite::Connection::open(restored.paths().views()).unwrap();
    let fresh: Vec<_> = tables.iter().map(|sql| dump(&views, sql)).collect();
    assert_eq!(caught_up, fresh);
    assert!(
        caught_up[0].iter().any(|row| !row.ends_with("|0|0")),
        "{:?}",
        caught_up[0]
    );
}

#[test]
fn serve_demo_makes_a_demo_admin_and_feeds_traffic_a_newcomer_can_see() {
    use std::io::BufRead;
    let mqtt_port = free_port();
    // As a newcomer's config has it: gateways must sign in; the demo makes its simulated gateway an identity.
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{mqtt_port}\"\nrequire_auth = true"),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(site.dir.path())
        .args(["serve", "--demo"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let password = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("gatehouse: demo: sign in as \"demo\" with password \"")
                .map(str::to_owned)
        })
        .expect("the demo prints how to sign in")
        .trim_end_matches('"')
        .to_owned();
    let journal = site.paths().journal();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while query_i64(
        &journal,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded' AND actor = 'gateway:demo'",
    ) == 0
    {
        assert!(std::time::Instant::now() < deadline, "the demo fed no passages");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    let conn = gatehouse::auth::open(&journal).unwrap();
    assert_eq!(
        gatehouse::auth::verify_password(&conn, "demo", &password).unwrap(),
        Some(gatehouse::auth::Role::Admin)
    );
}

#[test]
fn events_follow_prints_each_event_as_it_is_committed() {
    use std::io::BufRead;
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(site.dir.path())
            .args(["events", "--follow"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = follower.stdout.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Its first lines are the history (commissionings); a message committed now comes after them.
        let payload = br#"{"msg_id":"followed","direction":"in"}"#;
        app.state()
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/passage",
                payload,
                jiff::Timestamp::now(),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        let found = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                if line.contains("\"PassageRecorded\"") {
                    return Some(line);
                }
            }
            None
        })
        .await
        .unwrap();
        let _ = follower.kill();
        let _ = follower.wait();
        let line = found.expect("events --follow printed the new passage");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["actor"], "gateway:test");
        assert_eq!(event["stream"], "T1");
    });
}

#[test]
fn dead_letters_redrive_all_from_the_command_line_records_them_once_their_device_exists() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        for n in 0..2 {
            let payload = format!(r#"{{"msg_id":"late-{n}","direction":"in"}}"#);
            app.state()
                .ingestor
                .ingest(Received::once(
                    "gatehouse/turnstile/T9/passage",
                    payload.as_bytes(),
                    jiff::Timestamp::now(),
                    Actor::gateway("test"),
                ))
                .await
                .unwrap();
        }
    });
    // The installer adds the device it was meant for, then re-drives everything (no server running: the command
    // starts a core of its own).
    site.write_config(&format!(
        "{TWO_TURNSTILES_ONE_CAMERA}\n[[turnstile]]\nid = \"T9\"\nname = \"Late\"\nzone = \"Hall B\"\n"
    ));
    let output = site.gatehouse(&["dead-letters", "--redrive-all"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let journal = site.paths().journal();
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE stream_id = 'T9' AND event_type = 'PassageRecorded'"
        ),
        2
    );
    assert_eq!(
        query_i64(&journal, "SELECT COUNT(*) FROM dead_letters WHERE status = 'open'"),
        0
    );
    // Asked again, nothing is recorded twice.
    let again = site.gatehouse(&["dead-letters", "--redrive-all"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        2
    );
}

#[test]
fn simulate_publishes_to_the_broker_given_on_the_command_line() {
    let broker = Mosquitto::start();
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let output = site.gatehouse(&[
        "simulate",
        "--broker",
        &format!("mqtt://127.0.0.1:{}", broker.port),
        "--rate",
        "100",
        "--duration",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = stdout(&output);
    let sent: u64 = report.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        sent > 20 && report.contains(&format!("{sent} acknowledged")),
        "{report}"
    );
}
