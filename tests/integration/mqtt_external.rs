//! Ingestion through an external broker (a real Mosquitto): persistent session, acknowledgement after commit,
//! messages sent while gatehouse is down delivered when it returns.

use crate::helpers::*;

fn passages(site: &Site) -> i64 {
    query_i64(
        &site.paths().journal(),
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
}

fn payloads(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!(r#"{{"msg_id":"x{i}","direction":"in"}}"#))
        .collect()
}

#[test]
fn messages_published_while_gatehouse_is_down_are_recorded_when_it_returns() {
    let broker = Mosquitto::start();
    let site = Site::with_mqtt(&format!("broker = \"{}\"", broker.url()), TWO_TURNSTILES_ONE_CAMERA);
    let port = broker.port;
    // First run: gatehouse creates its persistent session and subscription.
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        eventually("gatehouse is connected to mosquitto", || {
            status.connected.load(std::sync::atomic::Ordering::Relaxed)
        })
        .await;
        // The subscription may trail the connection by a moment: publish until one probe arrives.
        let journal = site.paths().journal();
        let mut probe = 0;
        eventually("a probe message went through", || {
            probe += 1;
            mosquitto_pub_lines(
                port,
                "gatehouse/turnstile/T2/passage",
                &[format!(r#"{{"msg_id":"probe{probe}","direction":"out"}}"#)],
            );
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM events WHERE stream_id = 'T2' AND event_type = 'PassageRecorded'",
            ) > 0
        })
        .await;
    });
    // Down: a gateway keeps publishing; Mosquitto queues for our persistent session.
    mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &payloads(0..50));
    with_app(site.config(), async |_| {
        eventually("the 50 queued passages were recorded", || {
            query_i64(
                &site.paths().journal(),
                "SELECT COUNT(*) FROM events WHERE stream_id = 'T1' AND event_type = 'PassageRecorded'",
            ) == 50
        })
        .await;
    });
    let t1 = query_i64(
        &site.paths().journal(),
        "SELECT COUNT(DISTINCT causation) FROM events WHERE stream_id = 'T1' AND event_type = 'PassageRecorded'",
    );
    assert_eq!(t1, 50, "each message once");
    assert!(passages(&site) >= 51);
}

#[test]
fn bad_messages_through_the_broker_become_dead_letters_and_do_not_stop_ingestion() {
    let broker = Mosquitto::start();
    let site = Site::with_mqtt(&format!("broker = \"{}\"", broker.url()), TWO_TURNSTILES_ONE_CAMERA);
    let port = broker.port;
    with_app(site.config(), async |app| {
        let status = app.external_status().unwrap();
        eventually("connected", || {
            status.connected.load(std::sync::atomic::Ordering::Relaxed)
        })
        .await;
        let journal = site.paths().journal();
        let mut round = 0;
        eventually("good and bad messages were all handled", || {
            round += 1;
            let lines = vec![
                format!(r#"{{"msg_id":"r{round}-a","direction":"in"}}"#),
                "{broken json".to_owned(),
                format!(r#"{{"msg_id":"r{round}-b","direction":"up"}}"#),
                format!(r#"{{"msg_id":"r{round}-c","direction":"out"}}"#),
            ];
            mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &lines);
            std::thread::sleep(std::time::Duration::from_millis(200));
            query_i64(&journal, "SELECT COUNT(*) FROM events WHERE causation LIKE 'r%-c'") > 0
        })
        .await;
        assert!(
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM dead_letters WHERE reason LIKE 'payload is not valid JSON%'"
            ) >= 1
        );
        assert!(
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM dead_letters WHERE reason LIKE 'field \"direction\"%'"
            ) >= 1
        );
    });
}
