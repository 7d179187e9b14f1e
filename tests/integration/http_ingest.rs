//! HTTP ingest for gateways without MQTT: a gateway identity's `http_token` posts its devices' messages one by one
//! or as a backlog batch; the same parser, dead letters and de-duplication by `msg_id` as MQTT, each answer after
//! the commit, and clear refusals for what a client must fix.

use crate::helpers::*;

/// `gatehouse gateway add NAME --devices DEVICES`: the http_token it printed.
fn http_token(site: &Site, name: &str, devices: &str) -> String {
    let output = site.gatehouse(&["gateway", "add", name, "--devices", devices]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("http_token="))
        .expect("an http_token line")
        .to_owned()
}

fn passages(journal: &std::path::Path) -> i64 {
    query_i64(
        journal,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
}

#[test]
fn a_gateway_posts_its_devices_messages_once_each_and_is_told_what_became_of_them() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let token = http_token(&site, "door-pi", "T1");
    let bearer = format!("Bearer {token}");
    let journal = site.paths().journal();
    with_server(site.config(), async |_state, addr| {
        // Blocking HTTP calls stay off the server's own thread.
        let bearer = bearer.clone();
        let journal = journal.clone();
        let person = format!("Bearer {}", token_for(addr));
        tokio::task::spawn_blocking(move || {
            let auth = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
            let post = |path: &str, body: &str| http(addr, "POST", path, &auth, body);
            let first = post("/ingest/turnstile/T1/passage", r#"{"msg_id":"h-1","direction":"in"}"#);
            assert_eq!(first.status, 200, "{}", first.body);
            assert_eq!(first.body, r#"{"outcome":"event","reason":null}"#);
            // The answer came after the commit: the passage is in the journal now.
            assert_eq!(passages(&journal), 1);
            let again = post("/ingest/turnstile/T1/passage", r#"{"msg_id":"h-1","direction":"in"}"#);
            assert_eq!(again.body, r#"{"outcome":"duplicate","reason":null}"#);
            let bad = post(
                "/ingest/turnstile/T1/passage",
                r#"{"msg_id":"h-2","direction":"sideways"}"#,
            );
            assert_eq!(bad.status, 200);
            assert!(
                bad.body.contains(r#""outcome":"dead_letter""#) && bad.body.contains("direction"),
                "{}",
                bad.body
            );
            let no_id = post("/ingest/turnstile/T1/passage", r#"{"direction":"in"}"#);
            assert_eq!(no_id.status, 400);
            assert!(no_id.body.contains("msg_id is required"), "{}", no_id.body);
            let other = post("/ingest/turnstile/T2/passage", r#"{"msg_id":"h-3","direction":"in"}"#);
            assert_eq!(other.status, 403);
            assert!(
                other.body.contains("may not report for device \"T2\""),
                "{}",
                other.body
            );
            let anonymous = http(
                addr,
                "POST",
                "/ingest/turnstile/T1/passage",
                &[],
                r#"{"msg_id":"h-4","direction":"in"}"#,
            );
            assert_eq!(anonymous.status, 401);
            let wrong = http(
                addr,
                "POST",
                "/ingest/turnstile/T1/passage",
                &[("Authorization", "Bearer gwt_nope")],
                r#"{"msg_id":"h-4","direction":"in"}"#,
            );
            assert_eq!(wrong.status, 401);
            let huge = format!(r#"{{"msg_id":"h-5","direction":"in","pad":"{}"}}"#, "x".repeat(100_000));
            assert_eq!(post("/ingest/turnstile/T1/passage", &huge).status, 413);
            // A person's API token is not a gateway's.
            let by_person = http(
                addr,
                "POST",
                "/ingest/turnstile/T1/passage",
                &[("Authorization", person.as_str())],
                r#"{"msg_id":"h-6","direction":"in"}"#,
            );
            assert_eq!(by_person.status, 401);
            assert_eq!(passages(&journal), 1);

            // A backlog: one outcome line per line, in order.
            let lines = [
                r#"{"topic":"turnstile/T1/passage","payload":{"msg_id":"b-1","direction":"in"}}"#,
                r#"{"topic":"turnstile/T1/passage","payload":{"msg_id":"h-1","direction":"in"}}"#,
                r#"{"topic":"turnstile/T2/passage","payload":{"msg_id":"b-2","direction":"in"}}"#,
                r#"{"topic":"turnstile/T1/passage","payload":{"direction":"out"}}"#,
                r#"not json"#,
                r#"{"topic":"turnstile/T1/passage","payload":{"msg_id":"b-3","direction":"out"}}"#,
            ];
            let batch = post("/ingest/batch", &lines.join("\n"));
            assert_eq!(batch.status, 200, "{}", batch.body);
            let outcomes: Vec<String> = batch
                .body
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(
                outcomes,
                ["event", "duplicate", "forbidden", "rejected", "rejected", "event"]
            );
            // Availability is plain text, with no msg_id, one by one or in a batch.
            let status = post("/ingest/turnstile/T1/status", "offline");
            assert_eq!(status.body, r#"{"outcome":"event","reason":null}"#);
            let back = post("/ingest/batch", r#"{"topic":"turnstile/T1/status","payload":"online"}"#);
            assert!(back.body.contains(r#""outcome":"event""#), "{}", back.body);
            assert_eq!(passages(&journal), 3);
            // Sent again whole (a retry after a lost answer): nothing doubles.
            let retry = post("/ingest/batch", &lines.join("\n"));
            assert!(
                retry.body.lines().next().unwrap().contains("duplicate"),
                "{}",
                retry.body
            );
            assert_eq!(passages(&journal), 3);
            let actor: String = rusqlite::Connection::open(&journal)
                .unwrap()
                .query_row(
                    "SELECT actor FROM events WHERE event_type = 'PassageRecorded' ORDER BY position LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(actor, "gateway:door-pi");
        })
        .await
        .unwrap();
    });
}
