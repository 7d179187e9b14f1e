//! An external broker's devices spread over several subscriber sessions (a real Mosquitto, with its default
//! in-flight window of 20): every message recorded once and each device's in the order it was published, also
//! what the broker kept while Gatehouse was down; an unknown device reported by its status; and sessions a larger
//! or smaller `subscriber_sessions` left behind drained and deleted, so switching back and forth loses and
//! doubles nothing.

use crate::helpers::*;
use std::sync::atomic::Ordering;

const DEVICES: usize = 6;

fn devices() -> String {
    (0..DEVICES)
        .map(|i| format!("[[turnstile]]\nid = \"T{i}\"\nname = \"Gate {i}\"\nzone = \"Hall\"\n"))
        .collect()
}

fn mqtt(broker: &Mosquitto, sessions: usize) -> String {
    format!("broker = \"{}\"\nsubscriber_sessions = {sessions}", broker.url())
}

/// Every device's passages `{tag}-T{d}-{i}` for `i` in `range`, published by one `mosquitto_pub` per device, all
/// devices at once.
fn publish_all(port: u16, tag: &str, range: std::ops::Range<usize>) {
    let publishers: Vec<_> = (0..DEVICES)
        .map(|d| {
            let lines: Vec<String> = range
                .clone()
                .map(|i| format!(r#"{{"msg_id":"{tag}-T{d}-{i:05}","direction":"in"}}"#))
                .collect();
            std::thread::spawn(move || mosquitto_pub_lines(port, &format!("gatehouse/turnstile/T{d}/passage"), &lines))
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
}

fn passages(site: &Site) -> i64 {
    query_i64(
        &site.paths().journal(),
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
}

/// Each device's passages (sentinels left out) are recorded once each, in the order its gateway published them.
fn assert_once_and_in_order(site: &Site, expected_per_device: usize) {
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    for d in 0..DEVICES {
        let ids = dump(
            &conn,
            &format!(
                "SELECT causation FROM events WHERE stream_id = 'T{d}' AND event_type = 'PassageRecorded' \
                 AND causation NOT LIKE 'sentinel-%' ORDER BY version"
            ),
        );
        assert_eq!(ids.len(), expected_per_device, "T{d}: {} passages", ids.len());
        // Tags sort in publishing order (a-, b-, c-), and numbers are zero-padded.
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "T{d}'s passages out of order or doubled");
    }
}

#[test]
fn devices_spread_over_sessions_keep_their_order_also_for_what_the_broker_kept_while_gatehouse_was_down() {
    let broker = Mosquitto::start_with("max_inflight_messages 20\n");
    let site = Site::with_mqtt(&mqtt(&broker, 3), &devices());
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        assert_eq!(status.sessions, 4, "three device sessions and discovery");
        eventually("every session is connected and subscribed", || status.connected()).await;
        let port = broker.port;
        tokio::task::spawn_blocking(move || publish_all(port, "a", 0..300))
            .await
            .unwrap();
        eventually("1,800 passages recorded", || passages(&site) == 1800).await;
    });
    // Down: the gateways keep publishing, and Mosquitto keeps it for each device's session.
    publish_all(broker.port, "b", 0..100);
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        eventually("what the broker kept is recorded", || passages(&site) == 2400).await;
        assert!(status.connected());
        let (port, journal) = (broker.port, site.paths().journal());
        tokio::task::spawn_blocking(move || sentinel_recorded(port, &journal, "T0"))
            .await
            .unwrap();
    });
    assert_once_and_in_order(&site, 400);
}

#[test]
fn with_several_sessions_an_unknown_device_is_reported_by_its_status() {
    let broker = Mosquitto::start();
    let site = Site::with_mqtt(&mqtt(&broker, 2), &devices());
    with_server(site.config(), async |state, addr| {
        let status = state.external_mqtt.clone().expect("external mode");
        eventually("every session is connected and subscribed", || status.connected()).await;
        let (code, metrics) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(metrics.contains("gatehouse_mqtt_sessions 3\n"), "{metrics}");
        assert!(metrics.contains("gatehouse_mqtt_sessions_connected 3\n"), "{metrics}");
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
        mosquitto_pub_lines(broker.port, "gatehouse/turnstile/GHOST/status", &["online".to_owned()]);
        // A configured device's status goes to its own session only: discovery acknowledges its copy unread.
        mosquitto_pub_lines(broker.port, "gatehouse/turnstile/T1/status", &["online".to_owned()]);
        let journal = site.paths().journal();
        eventually("the unknown device is a dead letter", || {
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM dead_letters WHERE topic = 'gatehouse/turnstile/GHOST/status' \
                 AND reason LIKE 'unknown device \"GHOST\"%'",
            ) == 1
        })
        .await;
        let (port, sentinels) = (broker.port, journal.clone());
        tokio::task::spawn_blocking(move || sentinel_recorded(port, &sentinels, "T1"))
            .await
            .unwrap();
        assert_eq!(
            query_i64(&journal, "SELECT COUNT(*) FROM dead_letters"),
            1,
            "only the unknown device"
        );
    });
}

#[test]
fn sessions_left_over_by_another_setting_are_drained_and_deleted_so_nothing_is_lost_or_doubled() {
    let broker = Mosquitto::start();
    let site = Site::with_mqtt(&mqtt(&broker, 4), &devices());
    let port = broker.port;
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        eventually("four sessions and discovery subscribed", || status.connected()).await;
    });
    // Kept by Mosquitto for the four device sessions; then the site goes down to one session.
    publish_all(port, "a", 0..50);
    site.write_config_with_mqtt(&mqtt(&broker, 1), &devices());
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        eventually("one session subscribed", || status.connected()).await;
        eventually("what the four sessions held is recorded", || passages(&site) == 300).await;
        // Four device sessions and discovery were found at the broker; the other probes found nothing.
        eventually("the left-over sessions are drained and deleted", || {
            status.retired.load(Ordering::Relaxed) == 5
        })
        .await;
        tokio::task::spawn_blocking(move || publish_all(port, "b", 0..20))
            .await
            .unwrap();
        eventually("new passages through the one session", || passages(&site) == 420).await;
    });
    // Kept by Mosquitto for the one session; back to three sessions.
    publish_all(port, "c", 0..30);
    site.write_config_with_mqtt(&mqtt(&broker, 3), &devices());
    with_app(site.config(), async |app| {
        let status = app.external_status().expect("external mode");
        eventually("what the one session held is recorded", || passages(&site) == 600).await;
        eventually("the one session is drained and deleted", || {
            status.retired.load(Ordering::Relaxed) == 1
        })
        .await;
        // Had the four sessions of the first run survived, they would deliver these a second time.
        let journal = site.paths().journal();
        tokio::task::spawn_blocking(move || {
            publish_all(port, "d", 0..10);
            for d in 0..DEVICES {
                sentinel_recorded(port, &journal, &format!("T{d}"));
            }
        })
        .await
        .unwrap();
    });
    assert_once_and_in_order(&site, 110);
}
