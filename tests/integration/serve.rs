//! `gatehouse serve` in-process: the config is reconciled into commissioning events, commands flow through
//! actors into the journal and out to the read tables, and the web server shows them.

use crate::helpers::*;
use gatehouse::domain::*;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use gatehouse::journal::JournalReader;

fn event_types(site: &Site, device: &str) -> Vec<String> {
    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    reader
        .stream_events(&id(device), 0)
        .unwrap()
        .into_iter()
        .map(|e| e.event_type.to_owned())
        .collect()
}

#[test]
fn devices_in_the_config_are_commissioned_changed_and_decommissioned_as_the_config_changes() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |_| {});
    assert_eq!(event_types(&site, "T1"), ["Commissioned"]);
    assert_eq!(event_types(&site, "C1"), ["Commissioned"]);

    // A restart with the same config records nothing new.
    with_app(site.config(), async |_| {});
    assert_eq!(event_types(&site, "T1"), ["Commissioned"]);

    // T1 renamed, C1 watches another turnstile, T2 removed.
    site.write_config(
        r#"
[[turnstile]]
id = "T1"
name = "Hall A north (main)"
zone = "Hall A"

[[turnstile]]
id = "T3"
name = "New gate"
zone = "Hall C"

[[camera]]
id = "C1"
name = "Hall A entrance"
zone = "Hall A"
watches = ["T3"]
"#,
    );
    with_app(site.config(), async |app| {
        let registry = &app.state().registry;
        let gone = registry
            .execute_device(
                "T2",
                DeviceCommand::RecordPassage {
                    direction: Direction::In,
                    at: at("2026-03-01T09:00:00Z"),
                    seq: None,
                },
                test_meta(None),
            )
            .await;
        assert_eq!(
            gone.unwrap_err().to_string(),
            "rejected: device is decommissioned and accepts nothing"
        );
        let unknown = registry
            .execute_device(
                "T9",
                DeviceCommand::RecordHeartbeat {
                    at: at("2026-03-01T09:00:00Z"),
                },
                test_meta(None),
            )
            .await;
        assert_eq!(unknown.unwrap_err().to_string(), "unknown device \"T9\"");
    });
    assert_eq!(event_types(&site, "T1"), ["Commissioned", "DetailsChanged"]);
    assert_eq!(event_types(&site, "T2"), ["Commissioned", "Decommissioned"]);
    assert_eq!(event_types(&site, "T3"), ["Commissioned"]);
    assert_eq!(event_types(&site, "C1"), ["Commissioned", "WatchesChanged"]);
}

#[test]
fn a_passage_shows_on_the_dashboard_and_healthz_says_ok() {
    clear_of_local_midnight();
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));

        let now = jiff::Timestamp::now();
        for direction in [Direction::In, Direction::In, Direction::Out] {
            let command = DeviceCommand::RecordPassage {
                direction,
                at: now,
                seq: None,
            };
            state
                .registry
                .execute_device("T1", command, test_meta(None))
                .await
                .unwrap();
        }
        let fault = DeviceCommand::ReportFault {
            code: FaultCode::parse("JAM").unwrap(),
            detail: "<script>alert(1)</script>".into(),
            at: now,
            seq: None,
        };
        state
            .registry
            .execute_device("T2", fault, test_meta(None))
            .await
            .unwrap();
        settle(state).await;

        let (status, page) = get(addr, "/").await;
        assert_eq!(status, 200);
        assert!(page.contains("<strong>2</strong> in, <strong>1</strong> out"), "{page}");
        assert!(page.contains("2 in · 1 out today"), "{page}");
        assert!(page.contains(r#"class="tile online" id="device-T1""#), "{page}");
        assert!(page.contains("fault: JAM"), "{page}");
    });
}

#[test]
fn an_empty_site_says_how_to_add_devices() {
    let site = Site::new("");
    with_server(site.config(), async |_, addr| {
        let (status, page) = get(addr, "/").await;
        assert_eq!(status, 200);
        assert!(page.contains("No devices yet: add a"), "{page}");
    });
}

#[test]
fn healthz_names_the_mqtt_connection_when_the_broker_is_unreachable() {
    let nobody = free_port();
    let site = Site::with_mqtt(
        &format!("broker = \"mqtt://127.0.0.1:{nobody}\""),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    with_server(site.config(), async |_, addr| {
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            "mqtt: not connected to the broker (see the log for why; retrying)\n"
        );
    });
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |_| {
        let second = site.gatehouse(&["serve"]);
        assert_eq!(second.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(
            stderr.ends_with("data: another gatehouse is running on this data directory\n"),
            "{stderr}"
        );
    });
}

#[test]
fn a_device_silent_for_offline_after_is_marked_offline_and_comes_back_with_its_next_message() {
    let site = Site::new(&format!(
        "[devices]\noffline_after = \"3s\"\n{TWO_TURNSTILES_ONE_CAMERA}"
    ));
    let journal = site.paths().journal();
    let types = |device: &str| event_types(&site, device);
    with_app(site.config(), async |app| {
        let ingestor = &app.state().ingestor;
        let now = jiff::Timestamp::now();
        ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/heartbeat",
                b"{}",
                now,
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        assert_eq!(types("T1"), ["Commissioned", "CameOnline"]);
        eventually("T1 was marked offline after three seconds of silence", || {
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM events WHERE stream_id = 'T1' AND event_type = 'WentOffline'",
            ) == 1
        })
        .await;
        ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/heartbeat",
                b"{}",
                jiff::Timestamp::now(),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
    });
    assert_eq!(types("T1"), ["Commissioned", "CameOnline", "WentOffline", "CameOnline"]);
    // T2 was never heard from: "unknown", never "offline".
    assert_eq!(types("T2"), ["Commissioned"]);
}

#[test]
fn the_live_fragment_answers_304_until_something_new_is_projected() {
    clear_of_local_midnight();
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        let bearer = format!("Bearer {}", token_for(addr));
        let fetch = move |etag: Option<String>| {
            let bearer = bearer.clone();
            tokio::task::spawn_blocking(move || {
                let mut headers = vec![("Authorization", bearer.as_str())];
                let tag;
                if let Some(etag) = etag {
                    tag = etag;
                    headers.push(("If-None-Match", tag.as_str()));
                }
                http(addr, "GET", "/live/dashboard", &headers, "")
            })
        };
        // Start from a settled page: every follower the tag names has applied the start-up (commissioning) events.
        settle(state).await;
        let first = fetch(None).await.unwrap();
        assert_eq!(first.status, 200);
        let etag = first.header("etag").unwrap().to_owned();
        assert!(first.body.contains("<strong>0</strong> in"), "{}", first.body);
        assert_eq!(fetch(Some(etag.clone())).await.unwrap().status, 304);

        let now = jiff::Timestamp::now();
        state
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T2/passage",
                br#"{"direction":"in"}"#,
                now,
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        // The ETag follows the projectors' announced positions, so wait for those rather than for the row.
        settle(state).await;
        let changed = fetch(Some(etag.clone())).await.unwrap();
        assert_eq!(changed.status, 200);
        assert_ne!(changed.header("etag").unwrap(), etag);
        assert!(
            changed
                .body
                .contains("</td><td class=\"num\">1</td><td class=\"num\">0</td></tr>")
                && changed.body.contains("<td>Hall B</td>"),
            "{}",
            changed.body
        );
    });
}

#[test]
fn while_devices_recover_the_web_answers_503_with_progress_then_hands_the_socket_over() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let progress = std::sync::Arc::new(gatehouse::actors::RecoveryProgress::at(37, 120));
        let recovering = gatehouse::web::recovering::serve_while_recovering(&listener, progress).unwrap();
        let (health, page) = tokio::task::spawn_blocking(move || {
            (
                http(addr, "GET", "/healthz", &[], ""),
                http(addr, "GET", "/reports/traffic", &[], ""),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            (health.status, health.body.as_str()),
            (503, "recovering: 37 of 120 devices\n")
        );
        assert_eq!(page.status, 503);
        assert_eq!(page.header("retry-after"), Some("2"));
        recovering.stop(true).await;
        // The same socket, now served by another server: nothing was closed in between.
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new().route("/healthz", actix_web::web::get().to(|| async { "ok\n" }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let health = tokio::task::spawn_blocking(move || http(addr, "GET", "/healthz", &[], ""))
            .await
            .unwrap();
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        handle.stop(true).await;
    });
}

#[test]
fn healthz_says_the_journal_cannot_write_while_it_cannot_and_recovers_by_itself() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        // Another process holds journal.db's write lock past the writer's busy timeout: commits fail.
        let lock = WriteLock::hold(&journal).await;
        let message = |n: u32| {
            let payload = format!(r#"{{"msg_id":"h{n}","direction":"in"}}"#);
            let ingestor = state.ingestor.clone();
            async move {
                ingestor
                    .ingest(gatehouse::ingest::Received::once(
                        "gatehouse/turnstile/T1/passage",
                        payload.as_bytes(),
                        jiff::Timestamp::now(),
                        gatehouse::journal::Actor::gateway("test"),
                    ))
                    .await
            }
        };
        assert!(
            message(1).await.is_err(),
            "nothing could be stored, so nothing is acknowledged"
        );
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("journal: cannot write"), "{body}");
        lock.release().await;
        assert!(message(2).await.is_ok());
        // Followers that hit the lock too (the notifier writes its outbox to journal.db) report it until their
        // next step succeeds, moments later: healthy again by itself, without a restart.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (status, body) = get(addr, "/healthz").await;
            if (status, body.trim()) == (200, "ok") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still unhealthy: {status} {body}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}
