//! The device page, the event browser and `/metrics` against a real server: what they show must be what the
//! journal holds (now and as of a past instant), device-sent text must arrive escaped, bad query parameters get a
//! 400 that says what is wrong, and the metrics must match what was fed in.

use crate::helpers::*;
use gatehouse::domain::*;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use gatehouse::journal::JournalReader;
use std::time::Duration;

/// The numbers in `<tr id="{prefix}N">` rows, in page order.
fn row_ids(body: &str, prefix: &str) -> Vec<u64> {
    let marker = format!("<tr id=\"{prefix}");
    body.split(&marker)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// The "older" link's target, unescaped, if the page has one.
fn older_link(body: &str) -> Option<String> {
    let (before, _) = body.split_once("\" rel=\"next\"")?;
    let href = before.rsplit("href=\"").next()?;
    Some(href.replace("&#38;", "&").replace("&amp;", "&"))
}

/// The value of the sample `name{labels...}` in a Prometheus text page, whatever the label order.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().unwrap())
    })
}

/// Whether `raw` appears HTML-escaped (askama writes `<` as `&#60;`; `&lt;` would do as well).
fn shown_as_text(body: &str, raw: &str) -> bool {
    let numeric = raw.replace('<', "&#60;").replace('>', "&#62;");
    let named = raw.replace('<', "&lt;").replace('>', "&gt;");
    body.contains(&numeric) || body.contains(&named)
}

fn fault(code: &str, detail: &str, when: &str) -> DeviceEvent {
    DeviceEvent::FaultReported(FaultReported {
        code: FaultCode::parse(code).unwrap(),
        detail: detail.into(),
        at: at(when),
        seq: None,
    })
}

/// T1's morning on 2026-03-01 (Europe/Berlin is UTC+1 then): commissioned 08:00, online 09:00, a JAM from 10:15
/// to 11:00, locked out for cleaning at 11:30. Versions 1 to 8.
fn t1_morning() -> Vec<DeviceEvent> {
    vec![
        commissioned(DeviceKind::Turnstile, "Hall A north", "Hall A", "2026-03-01T07:00:00Z"),
        DeviceEvent::CameOnline(CameOnline {
            at: at("2026-03-01T08:00:00Z"),
        }),
        passage(Direction::In, "2026-03-01T08:30:00Z"),
        fault("JAM", "arm stuck", "2026-03-01T09:15:00Z"),
        passage(Direction::Out, "2026-03-01T09:20:00Z"),
        DeviceEvent::FaultCleared(FaultCleared {
            code: FaultCode::parse("JAM").unwrap(),
            at: at("2026-03-01T10:00:00Z"),
            seq: None,
        }),
        DeviceEvent::LockedOut(LockedOut {
            reason: "cleaning".into(),
            at: at("2026-03-01T10:30:00Z"),
        }),
        passage(Direction::In, "2026-03-01T10:45:00Z"),
    ]
}

#[test]
fn the_device_page_shows_the_live_state_and_pages_through_the_timeline() {
    clear_of_local_midnight();
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let mut history = vec![commissioned(
        DeviceKind::Turnstile,
        "Hall A north",
        "Hall A",
        "2026-03-01T07:00:00Z",
    )];
    for n in 0..60 {
        let direction = if n % 2 == 0 { Direction::In } else { Direction::Out };
        history.push(passage(direction, &format!("2026-03-01T09:{n:02}:00Z")));
    }
    seed(&site.paths(), &[("T1", history)]);
    with_server(site.config(), async |state, addr| {
        // Now, with no "at": the passage counts for today, and the unit comes online first (versions 62, 63).
        state
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/passage",
                br#"{"msg_id":"p-now","direction":"in"}"#,
                jiff::Timestamp::now(),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        settle(state).await;

        let (status, body) = get(addr, "/devices/T1").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Hall A north"), "{body}");
        assert!(body.contains("Live status now"), "{body}");
        assert!(
            body.contains(r#"<dd class="availability online">online</dd>"#),
            "{body}"
        );
        assert!(body.contains("1 in · 0 out"), "today's passages: {body}");
        assert!(body.contains("not locked out"), "{body}");

        let first = row_ids(&body, "v");
        assert_eq!(first, (14..=63).rev().collect::<Vec<_>>(), "newest first, 50 per page");
        assert!(body.contains("<dt>direction</dt><dd>in</dd>"), "decoded fields: {body}");
        let older = older_link(&body).expect("an older page");
        assert_eq!(older, "/devices/T1?before=14");

        let (status, body) = get(addr, &older).await;
        assert_eq!(status, 200);
        assert_eq!(row_ids(&body, "v"), (1..=13).rev().collect::<Vec<_>>());
        assert!(older_link(&body).is_none(), "the first event ends the timeline");
        assert!(
            body.contains("<dt>kind</dt><dd>turnstile</dd>"),
            "Commissioned's fields: {body}"
        );
        assert!(body.contains("Newest events"), "a way back: {body}");

        // A cursor past the beginning shows a helpful end rather than an error.
        let (status, body) = get(addr, "/devices/T1?before=1").await;
        assert_eq!(status, 200);
        assert!(body.contains("No older events"), "{body}");
    });
}

#[test]
fn the_device_page_as_of_an_instant_shows_exactly_the_state_folded_up_to_then() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    seed(&site.paths(), &[("T1", t1_morning())]);
    with_server(site.config(), async |_, addr| {
        let journal = JournalReader::open(&site.paths().journal()).unwrap();

        // 10:30 in the site's time zone: the JAM is open, nobody has locked the unit out yet.
        let (status, body) = get(addr, "/devices/T1?as_of=2026-03-01T10:30").await;
        assert_eq!(status, 200, "{body}");
        let (state, version) = gatehouse::history::fold_device(&journal, &id("T1"), Some(at("2026-03-01T09:30:00Z")))
            .unwrap()
            .unwrap();
        assert_eq!(version, 5);
        assert_eq!(
            state
                .common()
                .open_faults
                .keys()
                .map(FaultCode::as_str)
                .collect::<Vec<_>>(),
            ["JAM"]
        );
        assert!(
            body.contains("As of <strong>2026-03-01 10:30:00</strong> (Europe/Berlin)"),
            "{body}"
        );
        assert!(body.contains("up to event version 5 of 8"), "{body}");
        assert!(body.contains("online since 2026-03-01 09:00:00"), "{body}");
        assert!(
            body.contains("<strong>JAM</strong>: arm stuck (since 2026-03-01 10:15:00)"),
            "{body}"
        );
        assert!(body.contains("not locked out"), "{body}");
        assert!(body.contains("<dt>Passages in</dt><dd class=\"num\">1 "), "{body}");
        assert!(body.contains("<dt>Passages out</dt><dd class=\"num\">1 "), "{body}");
        assert_eq!(row_ids(&body, "v"), [5, 4, 3, 2, 1], "the timeline up to then");
        assert!(
            body.contains(r#"value="2026-03-01T10:30:00""#),
            "the form shows the instant: {body}"
        );

        // The same instant as RFC 3339 means the same thing.
        let (_, utc) = get(addr, "/devices/T1?as_of=2026-03-01T09:30:00Z").await;
        assert!(utc.contains("up to event version 5 of 8"), "{utc}");

        // 11:40 (given with its offset): the JAM was cleared at 11:00, the lock-out came at 11:30, the last
        // passage (11:45) not yet.
        let (status, body) = get(addr, "/devices/T1?as_of=2026-03-01T11:40:00%2B01:00").await;
        assert_eq!(status, 200, "{body}");
        let (state, version) = gatehouse::history::fold_device(&journal, &id("T1"), Some(at("2026-03-01T10:40:00Z")))
            .unwrap()
            .unwrap();
        assert!(state.common().open_faults.is_empty());
        assert_eq!(version, 7);
        assert!(body.contains("up to event version 7 of 8"), "{body}");
        assert!(
            body.contains("<dt>Open faults</dt><dd class=\"faults\">none</dd>"),
            "{body}"
        );
        assert!(
            body.contains("locked out since 2026-03-01 11:30:00: cleaning"),
            "{body}"
        );
        assert_eq!(row_ids(&body, "v"), [7, 6, 5, 4, 3, 2, 1]);

        // Before the device existed.
        let (status, body) = get(addr, "/devices/T1?as_of=2026-03-01T06:00:00Z").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Nothing was recorded for T1 yet"), "{body}");
        assert!(row_ids(&body, "v").is_empty());

        // Paging within the past keeps the instant.
        let (_, body) = get(addr, "/devices/T1?as_of=2026-03-01T09:30:00Z&before=3").await;
        assert_eq!(row_ids(&body, "v"), [2, 1]);
        assert!(body.contains("up to event version 5 of 8"), "{body}");
    });
}

#[test]
fn an_unknown_device_is_a_404_and_bad_parameters_are_a_400_that_says_why() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |_, addr| {
        let (status, body) = get(addr, "/devices/T9").await;
        assert_eq!(status, 404);
        assert!(body.contains("no device T9: devices come from config.toml"), "{body}");

        let (status, body) = get(addr, "/devices/%3Cscript%3Ex").await;
        assert_eq!(status, 404);
        assert!(!body.contains("<script>x"), "the id is escaped: {body}");

        let (status, body) = get(addr, "/devices/T1?as_of=yesterday").await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            "as_of: \"yesterday\" is not an instant: expected RFC 3339 like 2026-03-01T09:00:00Z or a local 2026-03-01T09:00"
        );
        let (status, body) = get(addr, "/devices/T1?before=ten").await;
        assert_eq!(status, 400);
        assert_eq!(body, "before: \"ten\" is not a whole number like 120");

        let (status, body) = get(addr, "/events?type=Exploded").await;
        assert_eq!(status, 400);
        assert!(
            body.starts_with("type: \"Exploded\" is not an event type; expected one of Commissioned"),
            "{body}"
        );
        let (status, body) = get(addr, "/events?after=-1").await;
        assert_eq!(status, 400);
        assert_eq!(body, "after: \"-1\" is not a whole number like 120");
        let (status, body) = get(addr, "/events?stream=T%201").await;
        assert_eq!(status, 400);
        assert!(body.starts_with("stream: stream name \"T 1\""), "{body}");

        // Empty fields from a submitted form mean "no filter", not an error.
        let (status, _) = get(addr, "/events?stream=&type=&after=").await;
        assert_eq!(status, 200);
        let (status, _) = get(addr, "/devices/T1?as_of=").await;
        assert_eq!(status, 200);
    });
}

#[test]
fn the_event_browser_lists_newest_first_filters_pages_and_escapes_what_devices_sent() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let mut t1 = vec![commissioned(
        DeviceKind::Turnstile,
        "Hall A north",
        "Hall A",
        "2026-03-01T07:00:00Z",
    )];
    for n in 0..130 {
        t1.push(passage(
            Direction::In,
            &format!("2026-03-01T08:{:02}:{:02}Z", n / 60, n % 60),
        ));
    }
    seed(&site.paths(), &[("T1", t1)]);
    with_server(site.config(), async |state, addr| {
        let fault =
            br#"{"msg_id":"f-1","at":"2026-03-01T12:00:00Z","code":"<b>JAM</b>","detail":"<script>alert(1)</script>"}"#;
        state
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T2/fault",
                fault,
                at("2026-03-01T12:00:05Z"),
                Actor::gateway("test"),
            ))
            .await
            .unwrap();
        settle(state).await;
        let head = *state.committed.borrow();

        let (status, body) = get(addr, "/events").await;
        assert_eq!(status, 200, "{body}");
        let page = row_ids(&body, "event-");
        assert_eq!(page.len(), 100);
        assert_eq!(page[0], head, "newest first");
        assert!(page.windows(2).all(|w| w[0] > w[1]), "descending: {page:?}");
        assert!(body.contains(r#"<a href="/devices/T1">T1</a>"#), "{body}");
        assert!(body.contains("<dt>direction</dt><dd>in</dd>"), "{body}");
        assert!(body.contains("<dt>during_fault</dt><dd>false</dd>"), "{body}");

        // What the device sent is shown, as text.
        assert!(!body.contains("<script>alert"), "unescaped device text: {body}");
        assert!(!body.contains("<b>JAM"), "unescaped device text: {body}");
        assert!(shown_as_text(&body, "<script>alert(1)</script>"), "{body}");

        let older = older_link(&body).expect("an older page");
        assert_eq!(older, format!("/events?before={}", page[99]));
        let (_, body) = get(addr, &older).await;
        let rest = row_ids(&body, "event-");
        assert_eq!(rest.first(), Some(&(page[99] - 1)));
        assert_eq!(rest.last(), Some(&1));
        assert_eq!(page.len() + rest.len(), head as usize, "every event exactly once");
        assert!(older_link(&body).is_none());

        let (_, body) = get(addr, "/events?stream=T2").await;
        assert!(!body.contains(r#"<a href="/devices/T1">"#), "{body}");
        assert!(body.contains("FaultReported") && body.contains("CameOnline"), "{body}");

        let (_, body) = get(addr, "/events?type=FaultReported").await;
        let faults = row_ids(&body, "event-");
        // The newest device event; the maintenance policy's work order for it comes after.
        assert_eq!(faults.len(), 1, "one FaultReported: {faults:?}");
        assert!(
            faults[0] >= head - 2,
            "the newest device event: {faults:?}, head {head}"
        );
        assert!(body.contains(r#"<option value="FaultReported" selected>"#), "{body}");

        let (_, body) = get(addr, &format!("/events?after={}", head - 5)).await;
        assert_eq!(row_ids(&body, "event-"), ((head - 4)..=head).rev().collect::<Vec<_>>());

        let (_, body) = get(addr, "/events?stream=T1&before=120").await;
        assert_eq!(row_ids(&body, "event-"), (20..=119).rev().collect::<Vec<_>>());
        assert_eq!(
            older_link(&body).unwrap(),
            "/events?stream=T1&before=20",
            "filters are kept"
        );

        let (_, body) = get(addr, "/events?type=Unlocked").await;
        assert!(body.contains("No events match these filters"), "{body}");

        // The device page escapes the same text, in its live status and its timeline.
        let (_, body) = get(addr, "/devices/T2").await;
        assert!(!body.contains("<script>alert") && !body.contains("<b>JAM"), "{body}");
        assert!(shown_as_text(&body, "<b>JAM</b>"), "{body}");
    });
}

#[test]
fn metrics_match_what_was_fed_in_and_time_each_route() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        let lines: Vec<String> = (0..5)
            .map(|n| format!(r#"{{"msg_id":"m-{n}","direction":"in"}}"#))
            .chain(["{oops".to_owned()])
            .collect();
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &lines))
            .await
            .unwrap();
        settle(state).await;
        for path in ["/", "/devices/T1", "/devices/T1", "/devices/T9", "/no/such/page"] {
            get(addr, path).await;
        }

        let head = *state.committed.borrow();
        // The last PUBACK may be counted just after mosquitto_pub has it; poll without blocking the actors.
        let mut text = String::new();
        for _ in 0..500 {
            text = get(addr, "/metrics").await.1;
            if sample(&text, "gatehouse_mqtt_acked_total", &[("mode", "embedded")]) == Some(6.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let value = |name: &str, labels: &[(&str, &str)]| {
            sample(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in:\n{text}"))
        };
        // Three commissionings, T1 coming online, five passages.
        assert_eq!(head, 9);
        assert_eq!(value("gatehouse_events_appended_total", &[]), head as f64);
        assert_eq!(value("gatehouse_journal_head_position", &[]), head as f64);
        let commits = value("gatehouse_journal_commits_total", &[]);
        assert!((1.0..=head as f64).contains(&commits), "{commits}");
        assert_eq!(value("gatehouse_mqtt_messages_total", &[("mode", "embedded")]), 6.0);
        assert_eq!(value("gatehouse_dead_letters_open", &[]), 1.0);
        for projection in ["device_status", "traffic"] {
            let labels = [("projection", projection)];
            assert_eq!(value("gatehouse_projector_position", &labels), head as f64);
            assert_eq!(value("gatehouse_projector_lag_events", &labels), 0.0);
            assert_eq!(value("gatehouse_projector_errors", &labels), 0.0);
        }

        let requests = |route: &str, status: &str| {
            value(
                "gatehouse_http_request_duration_seconds_count",
                &[("route", route), ("method", "GET"), ("status", status)],
            )
        };
        assert_eq!(requests("/devices/{id}", "200"), 2.0);
        assert_eq!(requests("/devices/{id}", "404"), 1.0);
        assert_eq!(requests("/", "200"), 1.0);
        assert_eq!(requests("unmatched", "404"), 1.0);
        assert!(
            !text.contains("/devices/T1") && !text.contains("/no/such"),
            "raw paths are no labels"
        );
        assert!(
            text.contains("gatehouse_http_request_duration_seconds_bucket{"),
            "{text}"
        );

        let response = tokio::task::spawn_blocking(move || {
            let bearer = format!("Bearer {}", token_for(addr));
            http(addr, "GET", "/metrics", &[("Authorization", &bearer)], "")
        })
        .await
        .unwrap();
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            response.headers
        );
    });
}
