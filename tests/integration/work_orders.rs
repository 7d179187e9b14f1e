//! Work orders end to end: a fault a gateway reports over MQTT opens one corrective order (a repeat does not open
//! another), a manager takes it through its life on the pages and the command line, a recurring fault reopens it,
//! a service meter opens a preventive order at its threshold and its resolution resets the meter, and the
//! maintenance policy's numbering survives a restart.

use crate::helpers::*;
use gatehouse::auth::Role;

const METERED_T1: &str = r#"
[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"
passages_between_service = 3
"#;

fn site() -> (Site, u16) {
    let port = free_port();
    (
        Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), METERED_T1),
        port,
    )
}

/// Publishes `payloads` to T1's `message` topic with QoS 1 (mosquitto_pub, off the actix thread).
async fn publish(port: u16, message: &str, payloads: &[&str]) {
    let topic = format!("gatehouse/turnstile/T1/{message}");
    let lines: Vec<String> = payloads.iter().map(|p| (*p).to_owned()).collect();
    tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, &topic, &lines))
        .await
        .unwrap();
}

fn orders(views: &std::path::Path) -> i64 {
    try_query_i64(views, "SELECT COUNT(*) FROM work_orders").unwrap_or(0)
}

fn state_of(views: &std::path::Path, number: i64) -> String {
    rusqlite::Connection::open(views)
        .and_then(|c| {
            c.query_row("SELECT state FROM work_orders WHERE number = ?1", [number], |r| {
                r.get::<_, String>(0)
            })
        })
        .unwrap_or_default()
}

/// Runs the real binary off the actix thread.
async fn cli(dir: std::path::PathBuf, args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(dir)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Submits a step on WO-000001 as `session` and returns the page it leads back to.
async fn step(session: &std::sync::Arc<Session>, addr: std::net::SocketAddr, fields: &str) -> String {
    let (session, fields) = (session.clone(), fields.to_owned());
    tokio::task::spawn_blocking(move || {
        let answer = session.post(addr, "/work-orders/WO-000001/step", &fields);
        assert_eq!(answer.status, 303, "{fields}: {}", answer.body);
        let location = answer.header("location").unwrap().to_owned();
        session.get(addr, &location).body
    })
    .await
    .unwrap()
}

#[test]
fn a_reported_fault_opens_one_order_that_a_manager_takes_through_its_life_and_a_recurrence_reopens() {
    let (site, port) = site();
    let (views, journal, dir) = (site.paths().views(), site.paths().journal(), site.dir.path().to_owned());
    with_server(site.config(), async |_state, addr| {
        // The fault, the same fault again while open, the unit reporting it cleared, and a new JAM episode while
        // the order is still to do: one order.
        publish(
            port,
            "fault",
            &[
                r#"{"msg_id":"f1","code":"JAM","detail":"arm stuck"}"#,
                r#"{"msg_id":"f2","code":"JAM"}"#,
            ],
        )
        .await;
        publish(port, "fault_cleared", &[r#"{"msg_id":"c1","code":"JAM"}"#]).await;
        publish(port, "fault", &[r#"{"msg_id":"f3","code":"JAM"}"#]).await;
        eventually("the order shows the device's clear", || {
            try_query_i64(&views, "SELECT COUNT(*) FROM work_order_steps WHERE step = 'commented'") == Some(1)
        })
        .await;
        eventually("the third fault message is ingested", || {
            try_query_i64(
                &journal,
                "SELECT COUNT(*) FROM events WHERE event_type = 'FaultReported'",
            ) == Some(2)
        })
        .await;
        let (status, list) = get(addr, "/work-orders").await;
        assert_eq!(status, 200);
        assert!(
            list.contains("WO-000001") && list.contains("JAM on T1 (Hall A north): arm stuck"),
            "{list}"
        );
        assert!(
            !list.contains("WO-000002"),
            "a repeated fault opened a second order: {list}"
        );
        assert_eq!(orders(&views), 1);
        let (_, csv) = get(addr, "/work-orders?format=csv").await;
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("id,device,kind,state,opened_at,due_at,assignee,resolved_at,title")
        );
        assert!(
            lines.next().unwrap().starts_with("WO-000001,T1,corrective,open,"),
            "{csv}"
        );

        // The report answers while an order is still open (not closed: no closing instant to count).
        let (status, report) = get(addr, "/reports/maintenance?format=csv").await;
        assert_eq!(status, 200, "{report}");
        assert!(
            report.lines().nth(1).is_some_and(|t1| t1.starts_with("T1,1,0,1,")),
            "{report}"
        );

        // The command line sees it while the server runs.
        let listed = cli(dir.clone(), &["work-orders", "--state", "open"]).await;
        let out = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        let fields: Vec<&str> = out.lines().next().unwrap_or_default().split('\t').collect();
        assert_eq!(&fields[..4], ["WO-000001", "T1", "corrective", "open"], "{out}");

        // A manager on the page: every step shows at once, refusals say why.
        let session = std::sync::Arc::new(
            tokio::task::spawn_blocking(move || Session::sign_in(&journal, addr, "mia", Role::Manager))
                .await
                .unwrap(),
        );
        let page = step(&session, addr, "step=start").await;
        assert!(page.contains("cannot be started (allowed when acknowledged)"), "{page}");
        let page = step(&session, addr, "step=ack").await;
        assert!(
            page.contains("WO-000001 acknowledged") && page.contains(r#"id="order-state" class="acknowledged""#),
            "{page}"
        );
        let page = step(&session, addr, "step=start").await;
        assert!(page.contains("assign a technician before starting"), "{page}");
        let page = step(&session, addr, "step=assign&text=Ana+Tech").await;
        assert!(page.contains("assigned to Ana Tech"), "{page}");
        step(&session, addr, "step=start").await;
        let page = step(&session, addr, "step=resolve&text=arm+replaced").await;
        assert!(
            page.contains(r#"class="resolved""#) && page.contains("arm replaced") && page.contains("user:mia"),
            "{page}"
        );
        assert_eq!(state_of(&views, 1), "resolved");
        // The maintenance report counts it: opened, closed, one failure, its repair time.
        let (status, report) = get(addr, "/reports/maintenance").await;
        assert_eq!(status, 200);
        assert!(
            report.contains(r#"<tr id="device-T1">"#) && report.contains("Work orders opened per day"),
            "{report}"
        );
        let (_, csv) = get(addr, "/reports/maintenance?format=csv").await;
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("device,opened,closed,failures,mtbf_seconds,mttr_seconds,preventive_resolved,preventive_on_time_pct")
        );
        let t1 = lines.next().unwrap_or_default();
        assert!(t1.starts_with("T1,1,1,1,") && t1.ends_with(",0,"), "{csv}");

        // The command line adds a comment through the running server, as the OS user.
        let commented = cli(
            dir.clone(),
            &["work-order", "WO-000001", "comment", "spare arm ordered"],
        )
        .await;
        assert!(
            commented.status.success(),
            "{}",
            String::from_utf8_lossy(&commented.stderr)
        );
        assert!(String::from_utf8_lossy(&commented.stdout).contains("comment added to WO-000001"));
        let refused = cli(dir.clone(), &["work-order", "WO-000001", "cancel", "--reason", "x"]).await;
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot be cancelled"));

        // The fault comes back within a day of the resolution: the same order reopens, its history kept.
        publish(port, "fault_cleared", &[r#"{"msg_id":"c2","code":"JAM"}"#]).await;
        publish(port, "fault", &[r#"{"msg_id":"f4","code":"JAM"}"#]).await;
        eventually("the order is reopened", || state_of(&views, 1) == "open").await;
        assert_eq!(orders(&views), 1);
        let (_, page) = get(addr, "/work-orders/WO-000001").await;
        assert!(
            page.contains("reopened") && page.contains("arm replaced") && page.contains("spare arm ordered"),
            "{page}"
        );
        // The dashboard counts it; the device page lists it.
        let (_, dashboard) = get(addr, "/").await;
        assert!(dashboard.contains("1 work order to do"), "{dashboard}");
        let (_, device) = get(addr, "/devices/T1").await;
        assert!(
            device.contains(r#"<a href="/work-orders/WO-000001">WO-000001</a>"#),
            "{device}"
        );
        let (_, metrics) = get(addr, "/metrics").await;
        assert!(
            metrics.contains(r#"gatehouse_work_orders_open{kind="corrective"} 1"#),
            "{metrics}"
        );
    });
    // The same order's state from the journal, as the CLI folds it.
    let state = site.gatehouse(&["state", "work_order:WO-000001"]);
    let text = String::from_utf8_lossy(&state.stdout);
    assert!(
        state.status.success() && text.contains("\"status\": \"open\"") && text.contains("\"reopened\": 1"),
        "{text}"
    );
}

#[test]
fn a_service_meter_opens_one_preventive_order_at_its_threshold_and_the_service_resets_it() {
    let (site, port) = site();
    let views = site.paths().views();
    let dir = site.dir.path().to_owned();
    with_server(site.config(), async |_state, addr| {
        let passages: Vec<String> = (0..4)
            .map(|n| format!(r#"{{"msg_id":"p{n}","direction":"in"}}"#))
            .collect();
        let passages: Vec<&str> = passages.iter().map(String::as_str).collect();
        publish(port, "passage", &passages).await;
        eventually("the meter has counted four passages", || {
            try_query_i64(&views, "SELECT passages FROM service_meters WHERE device_id = 'T1'") == Some(4)
        })
        .await;
        eventually("one preventive order", || orders(&views) == 1).await;
        let (_, device) = get(addr, "/devices/T1").await;
        assert!(
            device.contains("4 of 3 passages since it was first counted"),
            "{device}"
        );
        let (_, list) = get(addr, "/work-orders?kind=preventive").await;
        assert!(list.contains("Service T1 (Hall A north) after 3 passages"), "{list}");

        for args in [&["ack"][..], &["resolve", "--note", "rollers cleaned"]] {
            let mut all = vec!["work-order", "WO-000001"];
            all.extend_from_slice(args);
            let out = cli(dir.clone(), &all).await;
            assert!(
                out.status.success(),
                "{all:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eventually("the service reset the meter", || {
            try_query_i64(&views, "SELECT passages FROM service_meters WHERE device_id = 'T1'") == Some(0)
        })
        .await;
        let (_, device) = get(addr, "/devices/T1").await;
        assert!(device.contains("0 of 3 passages since the last service"), "{device}");
        // Three more: the next service is due.
        let more: Vec<String> = (4..7)
            .map(|n| format!(r#"{{"msg_id":"p{n}","direction":"out"}}"#))
            .collect();
        let more: Vec<&str> = more.iter().map(String::as_str).collect();
        publish(port, "passage", &more).await;
        eventually("a second preventive order", || orders(&views) == 2).await;
    });
}

#[test]
fn the_work_order_numbers_continue_after_a_restart_and_nothing_is_opened_twice() {
    let (site, port) = site();
    let views = site.paths().views();
    with_server(site.config(), async |_state, _addr| {
        publish(port, "fault", &[r#"{"msg_id":"f1","code":"JAM"}"#]).await;
        eventually("the first order", || orders(&views) == 1).await;
    });
    with_server(site.config(), async |_state, _addr| {
        // The same JAM still open: nothing; another code: the next number.
        publish(port, "fault", &[r#"{"msg_id":"f2","code":"SENSOR"}"#]).await;
        eventually("the second order", || orders(&views) == 2).await;
        let numbers = dump(
            &rusqlite::Connection::open(&views).unwrap(),
            "SELECT number, cause FROM work_orders ORDER BY number",
        );
        assert_eq!(numbers, ["1|fault JAM", "2|fault SENSOR"]);
    });
}

const SCHEDULED_T1: &str = r#"
[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"

[[maintenance]]
id = "daily-clean"
cron = "0 6 * * *"
devices = ["T1"]
task = "Clean sensors"
"#;

#[test]
fn a_schedule_run_missed_while_down_opens_one_order_and_a_run_while_it_is_open_is_noted_on_it() {
    use gatehouse::domain::schedule::*;
    let site = Site::new(SCHEDULED_T1);
    let (views, journal) = (site.paths().views(), site.paths().journal());
    // The schedule was created three days ago (three 06:00 runs missed since).
    let spec = ScheduleSpec {
        cron: "0 6 * * *".into(),
        target: ScheduleTarget::Devices(vec![id("T1")]),
        task: "Clean sensors".into(),
    };
    let created = ScheduleEvent::Created(ScheduleCreated {
        spec,
        at: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72),
    });
    seed_any(&site.paths(), &[("maintenance_schedule:daily-clean", vec![created])]);
    let runs = || {
        try_query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'ScheduleRunDue'",
        )
    };
    with_server(site.config(), async |state, addr| {
        eventually("one preventive order for the missed runs", || orders(&views) == 1).await;
        assert_eq!(runs(), Some(1), "one run made up, not three");
        let row = dump(
            &rusqlite::Connection::open(&views).unwrap(),
            "SELECT kind, cause, title, due_at IS NOT NULL FROM work_orders",
        );
        assert_eq!(
            row,
            ["preventive|schedule daily-clean|Clean sensors: T1 (Hall A north)|1"]
        );
        let (_, page) = get(addr, "/work-orders/WO-000001").await;
        assert!(page.contains("Due"), "{page}");
        // The next run comes while that order is still to do: noted on it, no second order.
        let run = ScheduleCommand::Run {
            run_at: jiff::Timestamp::now(),
            devices: vec![id("T1")],
            due_at: None,
            at: jiff::Timestamp::now(),
        };
        let meta = gatehouse::actors::Meta::by(gatehouse::journal::Actor::policy("schedule")).caused_by("test-run");
        state
            .registry
            .execute_or_start::<MaintenanceSchedule>("daily-clean", run, meta)
            .await
            .unwrap();
        eventually("the skipped run is noted on the open order", || {
            try_query_i64(
                &views,
                "SELECT COUNT(*) FROM work_order_steps WHERE number = 1 AND text LIKE '%run of schedule daily-clean was skipped%'",
            ) == Some(1)
        })
        .await;
        assert_eq!(orders(&views), 1);
    });
    // A restart makes up nothing more: the last run is recorded.
    with_server(site.config(), async |state, _addr| {
        settle(state).await;
        assert_eq!(runs(), Some(2));
        assert_eq!(orders(&views), 1);
    });
    // Removing the schedule from config.toml is recorded too.
    site.write_config(SCHEDULED_T1.split("[[maintenance]]").next().unwrap());
    with_app(site.config(), async |_app| {});
    assert_eq!(
        try_query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'ScheduleRemoved'"
        ),
        Some(1)
    );
}

#[test]
fn characters_that_hide_or_reorder_text_in_a_fault_detail_are_shown_as_escapes() {
    let site = Site::new(METERED_T1);
    with_server(site.config(), async |state, addr| {
        let payload = "{\"code\":\"JAM\",\"detail\":\"arm \u{202E}exe.gnp\u{200B}\"}";
        state
            .ingestor
            .ingest(gatehouse::ingest::Received::once(
                "gatehouse/turnstile/T1/fault",
                payload.as_bytes(),
                jiff::Timestamp::now(),
                gatehouse::journal::Actor::gateway("test"),
            ))
            .await
            .unwrap();
        settle(state).await;
        for page in [
            "/events",
            "/work-orders",
            "/work-orders/WO-000001",
            "/reports/equipment",
        ] {
            let (status, body) = get(addr, page).await;
            assert_eq!(status, 200, "{page}");
            assert!(
                !body.contains('\u{202E}') && !body.contains('\u{200B}'),
                "{page} shows the raw characters"
            );
            assert!(body.contains("arm \\u{202e}exe.gnp\\u{200b}"), "{page}: {body}");
        }
    });
}
