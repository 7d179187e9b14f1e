//! The alarm pages over HTTP: `/alarms` lists a raised alarm active first with its CSV, a manager acknowledges and
//! clears it with the form (CSRF checked, read-your-writes), and the banner fragment every page polls shows an
//! unacknowledged critical alarm until someone acknowledges it.

use crate::helpers::*;
use gatehouse::auth::Role;

#[test]
fn a_forced_passage_shows_on_alarms_and_the_banner_until_a_manager_acknowledges_it() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    with_server(site.config(), async |state, addr| {
        let (_, empty) = get(addr, "/alarms").await;
        assert!(empty.contains("No alarms yet."), "{empty}");
        assert_eq!(get(addr, "/live/alarm-banner").await.1.trim(), "");
        gatehouse::requests::carry_out(
            &state.registry,
            &state.vault,
            &gatehouse::requests::OperatorCommand::lock_out("T1", "wet floor").unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await
        .unwrap();
        let passages = vec![
            r#"{"msg_id":"p1","direction":"in"}"#.to_owned(),
            r#"{"msg_id":"p2","direction":"out"}"#.to_owned(),
        ];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &passages))
            .await
            .unwrap();
        settle(state).await;
        let (status, page) = get(addr, "/alarms").await;
        assert_eq!(status, 200);
        assert!(
            page.contains(r#"<tr id="A-000001" class="severity-critical">"#),
            "{page}"
        );
        assert!(page.contains("forced passage") && page.contains("device T1"), "{page}");
        let (_, csv) = get(addr, "/alarms?format=csv").await;
        let csv: Vec<&str> = csv.lines().collect();
        assert_eq!(
            csv[0],
            "id,type,severity,source,state,acknowledged_by,first_seen,last_seen,count"
        );
        assert!(
            csv[1].starts_with("A-000001,forced_passage,critical,device T1,active_unacknowledged,,"),
            "{csv:?}"
        );
        assert!(csv[1].ends_with(",2"), "two rotations, one alarm: {csv:?}");
        let (_, banner) = get(addr, "/live/alarm-banner").await;
        assert!(
            banner.contains("A-000001 critical:") && banner.contains("(2×)"),
            "{banner}"
        );

        let (_, dashboard) = get(addr, "/").await;
        assert!(
            dashboard.contains("1 active alarm, 1 unacknowledged</a>"),
            "{dashboard}"
        );
        // The list's table is live: the page polls its fragment, 304 until the alarms change.
        assert!(page.contains(r#"data-live="/live/alarms""#), "{page}");
        let (first, again) = tokio::task::spawn_blocking(move || {
            let bearer = format!("Bearer {}", token_for(addr));
            let first = http(addr, "GET", "/live/alarms", &[("Authorization", &bearer)], "");
            let etag = first.header("etag").unwrap_or_default().to_owned();
            let headers = [("Authorization", bearer.as_str()), ("If-None-Match", etag.as_str())];
            (first, http(addr, "GET", "/live/alarms", &headers, ""))
        })
        .await
        .unwrap();
        assert!(
            first.body.contains(r#"<tr id="A-000001" class="severity-critical">"#),
            "{}",
            first.body
        );
        assert!(!first.body.contains("<html"), "a fragment, not a page");
        assert_eq!(again.status, 304);
        let journal = site.paths().journal();
        let session = tokio::task::spawn_blocking(move || {
            let session = Session::sign_in(&journal, addr, "cleo", Role::Manager);
            let forged = http(
                addr,
                "POST",
                "/alarms/A-000001/step",
                &[
                    ("Cookie", session.cookie.as_str()),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                "csrf=forged&step=ack",
            );
            let acked = session.post(
                addr,
                "/alarms/A-000001/step",
                "step=ack&note=guard+on+the+way&back=list",
            );
            (
                forged.status,
                acked.header("location").unwrap_or_default().to_owned(),
                session,
            )
        })
        .await
        .unwrap();
        let (forged, location, session) = session;
        assert_eq!(forged, 403);
        assert!(
            location.starts_with("/alarms?notice=A-000001%20acknowledged"),
            "{location}"
        );
        // Read-your-writes: the list and the banner show it at once.
        let (_, page) = get(addr, "/alarms").await;
        assert!(
            page.contains("active, acknowledged") && page.contains("user:cleo"),
            "{page}"
        );
        assert_eq!(get(addr, "/live/alarm-banner").await.1.trim(), "");
        let (_, dashboard) = get(addr, "/live/dashboard").await;
        assert!(dashboard.contains(">1 active alarm</a>"), "{dashboard}");
        let cleared = tokio::task::spawn_blocking(move || {
            session
                .post(addr, "/alarms/A-000001/step", "step=clear")
                .header("location")
                .unwrap_or_default()
                .to_owned()
        })
        .await
        .unwrap();
        assert!(
            cleared.starts_with("/alarms/A-000001?notice=A-000001%20cleared"),
            "{cleared}"
        );
        let (_, one) = get(addr, "/alarms/A-000001").await;
        for step in ["raised", "acknowledged", "guard on the way", "cleared", "user:cleo"] {
            assert!(one.contains(step), "{step} in {one}");
        }
        let (_, active) = get(addr, "/alarms?active=1").await;
        assert!(active.contains("No active alarms."), "{active}");
    });
}

#[test]
fn the_alarm_report_counts_alarms_by_type_severity_and_zone_with_times_to_acknowledge() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    let added = site.gatehouse(&["watch", "add", "P-1", "--list", "banned", "--severity", "major"]);
    assert!(added.status.success());
    with_server(site.config(), async |state, addr| {
        let (_, empty) = get(addr, "/reports/alarms?from=2020-01-01&to=2020-01-02").await;
        assert!(empty.contains("No alarm was raised in this period."), "{empty}");

        gatehouse::requests::carry_out(
            &state.registry,
            &state.vault,
            &gatehouse::requests::OperatorCommand::lock_out("T1", "wet floor").unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await
        .unwrap();
        let passages = vec![r#"{"msg_id":"p1","direction":"in"}"#.to_owned()];
        let seen = vec![r#"{"msg_id":"r1","subject":"P-1","confidence":0.9}"#.to_owned()];
        let counted = vec![
            r#"{"msg_id":"s1","direction":"in","seq":1}"#.to_owned(),
            r#"{"msg_id":"s2","direction":"in","seq":4}"#.to_owned(),
        ];
        tokio::task::spawn_blocking(move || {
            mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &passages);
            mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &seen);
            mosquitto_pub_lines(port, "gatehouse/turnstile/T2/passage", &counted);
        })
        .await
        .unwrap();
        settle(state).await;
        gatehouse::requests::carry_out(
            &state.registry,
            &state.vault,
            &gatehouse::requests::OperatorCommand::alarm("A-000001", "ack", None).unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await
        .unwrap();
        settle(state).await;

        let (status, page) = get(addr, "/reports/alarms").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("3 alarms raised"), "{page}");
        assert!(
            page.contains(r#"<svg"#) && page.contains("2 critical or major and 1 minor or warning alarms raised"),
            "{page}"
        );
        let (_, csv) = get(addr, "/reports/alarms?format=csv").await;
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows[0],
            "type,severity,zone,raised,active,acknowledged,cleared,mean_seconds_to_acknowledge,mean_seconds_to_clear"
        );
        // The most severe first, each with its zone; only the forced passage was acknowledged.
        assert!(
            rows[1].starts_with("forced_passage,critical,Hall A,1,1,1,0,"),
            "{rows:?}"
        );
        assert!(rows[1].ends_with(','), "never cleared: {rows:?}");
        assert_eq!(rows[2], "watched_subject_seen,major,Hall A,1,1,0,0,,");
        assert_eq!(rows[3], "lost_messages,minor,Hall B,1,1,0,0,,");
        assert_eq!(rows.len(), 4, "{rows:?}");
        // By zone: T1 and C1 are in Hall A, T2 in Hall B.
        let zones = page.split("alarms-by-zone").nth(1).unwrap_or_default();
        assert!(zones.contains("<td>Hall A</td><td class=\"num\">2</td>"), "{zones}");
        assert!(zones.contains("<td>Hall B</td><td class=\"num\">1</td>"), "{zones}");
    });
}

#[test]
fn an_admin_keeps_the_watch_list_on_its_page_and_a_listed_subject_seen_raises_an_alarm() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), TWO_TURNSTILES_ONE_CAMERA);
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        let (admin, manager_status) = tokio::task::spawn_blocking(move || {
            let admin = Session::sign_in(&journal, addr, "ada", Role::Admin);
            let empty = admin.get(addr, "/admin/watch-list");
            assert!(empty.body.contains("Nobody is on the watch list"), "{}", empty.body);
            let manager = Session::sign_in(&journal, addr, "max", Role::Manager);
            (admin, manager.get(addr, "/admin/watch-list").status)
        })
        .await
        .unwrap();
        assert_eq!(manager_status, 403, "managers see alarms; admins keep the list");
        let admin = std::sync::Arc::new(admin);
        let session = admin.clone();
        let (added, refused, listed) = tokio::task::spawn_blocking(move || {
            let added = session.post(
                addr,
                "/admin/watch-list",
                "subject=P-1042&list=banned&severity=critical&note=shoplifting%2C+twice&until=2099-12-31",
            );
            let refused = session.post(addr, "/admin/watch-list", "subject=P-7&list=banned&severity=urgent");
            let listed = session.get(addr, "/admin/watch-list");
            (
                added.header("location").unwrap_or_default().to_owned(),
                refused.header("location").unwrap_or_default().to_owned(),
                listed.body,
            )
        })
        .await
        .unwrap();
        assert!(added.starts_with("/admin/watch-list?notice="), "{added}");
        assert!(refused.contains("nothing%20added"), "{refused}");
        assert!(
            listed.contains(r#"<tr id="watch-P-1042" class="severity-critical"><td>P-1042</td><td>banned</td>"#),
            "{listed}"
        );
        assert!(
            listed.contains("shoplifting, twice") && listed.contains("user:ada"),
            "{listed}"
        );
        assert!(!listed.contains("P-7"), "{listed}");

        // The policy heard of it: a sighting raises a critical alarm.
        let seen = vec![r#"{"msg_id":"r1","subject":"P-1042","confidence":0.9}"#.to_owned()];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/camera/C1/recognition", &seen))
            .await
            .unwrap();
        settle(state).await;
        let (_, alarms) = get(addr, "/alarms?format=csv").await;
        assert!(
            alarms.contains("A-000001,watched_subject_seen,critical,subject P-1042,active_unacknowledged"),
            "{alarms}"
        );

        let session = admin.clone();
        let (csv, after) = tokio::task::spawn_blocking(move || {
            let csv = session.get(addr, "/admin/watch-list?format=csv").body;
            session.post(addr, "/admin/watch-list/remove", "subject=P-1042");
            (csv, session.get(addr, "/admin/watch-list").body)
        })
        .await
        .unwrap();
        let csv: Vec<&str> = csv.lines().collect();
        assert_eq!(csv[0], "subject,list,severity,until,note,changed_by,changed_at");
        assert!(
            csv[1].starts_with("P-1042,banned,critical,2099-12-31,\"shoplifting, twice\",user:ada,"),
            "{csv:?}"
        );
        assert!(after.contains("Nobody is on the watch list"), "{after}");
    });
    // The command line reads the same list from the journal: the removal was recorded.
    let listed = site.gatehouse(&["watch", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).trim().is_empty());
}
