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
