//! Facts never vanish: every message without `msg_id` is a fact, and the only repeat dropped is a protocol
//! redelivery (PUBLISH with DUP set) of a packet recorded moments ago, which holds across a restart. Device time
//! out of bounds is a dead letter that says which bound and by how much; `seq` jumps count as lost messages.

use crate::helpers::*;
use gatehouse::dead_letters::{self, Which};
use gatehouse::journal::Actor;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

fn passages(site: &Site) -> i64 {
    query_i64(
        &site.paths().journal(),
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
}

/// A gateway speaking MQTT 3.1.1 byte by byte, so a test can set the DUP flag a real client sets after a reconnect.
struct RawGateway(TcpStream);

impl RawGateway {
    fn connect(addr: SocketAddr, client_id: &str) -> RawGateway {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
        body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
        body.extend_from_slice(client_id.as_bytes());
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        stream.write_all(&packet).unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
        RawGateway(stream)
    }

    /// Publishes at QoS 1 and waits for the PUBACK of `packet_id`.
    fn publish(&mut self, topic: &str, payload: &[u8], packet_id: u16, dup: bool) {
        let mut body = Vec::new();
        body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&packet_id.to_be_bytes());
        body.extend_from_slice(payload);
        let mut packet = vec![if dup { 0x3a } else { 0x32 }, body.len() as u8];
        packet.extend(body);
        self.0.write_all(&packet).unwrap();
        let mut puback = [0u8; 4];
        self.0.read_exact(&mut puback).unwrap();
        assert_eq!(
            puback,
            [0x40, 2, (packet_id >> 8) as u8, packet_id as u8],
            "PUBACK of {packet_id}"
        );
    }
}

#[test]
fn fifty_identical_passages_without_msg_id_are_fifty_passages() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let port = app.mqtt_addr().unwrap().port();
        let lines = vec![r#"{"direction":"in"}"#.to_owned(); 50];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &lines))
            .await
            .unwrap();
        assert_eq!(passages(&site), 50, "every message without msg_id is a fact");
        // mosquitto_pub sends no client id: the gateway is named by its address.
        let actors = dump(
            &rusqlite::Connection::open(site.paths().journal()).unwrap(),
            "SELECT DISTINCT actor FROM events WHERE event_type = 'PassageRecorded'",
        );
        assert!(
            actors.len() == 1 && actors[0].starts_with("gateway:anonymous@127.0.0.1:"),
            "{actors:?}"
        );
    });
}

#[test]
fn a_dup_redelivery_of_a_recorded_packet_is_dropped_even_after_a_restart() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let topic = "gatehouse/turnstile/T1/passage";
    let payload = br#"{"direction":"in"}"#;
    with_app(site.config(), async |app| {
        let addr = app.mqtt_addr().unwrap();
        tokio::task::spawn_blocking(move || {
            let mut gateway = RawGateway::connect(addr, "pi-3");
            gateway.publish(topic, payload, 7, false);
            // The same packet again with DUP set: the gateway did not see the PUBACK before a reconnect.
            let mut again = RawGateway::connect(addr, "pi-3");
            again.publish(topic, payload, 7, true);
            // A new message reusing packet id 7 (ids wrap) without DUP is a new fact.
            again.publish(topic, payload, 7, false);
        })
        .await
        .unwrap();
    });
    assert_eq!(passages(&site), 2);
    with_app(site.config(), async |app| {
        let addr = app.mqtt_addr().unwrap();
        tokio::task::spawn_blocking(move || {
            let mut gateway = RawGateway::connect(addr, "pi-3");
            gateway.publish(topic, payload, 7, true);
            // DUP on a packet never recorded (it was lost before we read it) is recorded.
            gateway.publish(topic, payload, 8, true);
        })
        .await
        .unwrap();
    });
    assert_eq!(passages(&site), 3, "the redelivery was recognised across the restart");
    let actors = dump(
        &rusqlite::Connection::open(site.paths().journal()).unwrap(),
        "SELECT DISTINCT actor FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert_eq!(actors, ["gateway:pi-3"]);
}

#[test]
fn a_dead_letter_redriven_twice_yields_its_events_once() {
    let site = Site::new("");
    let received = at("2026-11-30T12:00:00Z");
    with_app(site.config(), async |app| {
        let outcome = app
            .state()
            .ingestor
            .ingest(gatehouse::ingest::Received::once(
                "gatehouse/turnstile/T1/passage",
                br#"{"direction":"in"}"#,
                received,
                Actor::gateway("pi-3"),
            ))
            .await
            .unwrap();
        assert!(matches!(outcome, gatehouse::ingest::Ingested::DeadLettered { .. }));
    });
    site.write_config(TWO_TURNSTILES_ONE_CAMERA);
    let config = site.config();
    // A crash between the re-drive and its mark: the letter is re-driven, then requested again by hand.
    gatehouse::cli::dead_letters::redrive(config.clone(), Which::One(1), &Actor::cli()).unwrap();
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    conn.execute_batch("UPDATE dead_letters SET status = 'redrive_requested' WHERE id = 1")
        .unwrap();
    drop(conn);
    let letters = gatehouse::cli::dead_letters::redrive(config, Which::One(1), &Actor::user("ana")).unwrap();
    assert_eq!(
        letters[0].outcome.as_deref(),
        Some("duplicate: the message was already recorded")
    );
    assert_eq!(passages(&site), 1);
    let causation = dump(
        &rusqlite::Connection::open(site.paths().journal()).unwrap(),
        "SELECT causation || ' ' || actor FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert_eq!(causation, ["dead_letter:1 cli:".to_owned() + &whoami()]);
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

#[test]
fn device_time_out_of_bounds_is_a_dead_letter_and_seq_jumps_count_as_lost() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let port = app.mqtt_addr().unwrap().port();
        let now = jiff::Timestamp::now();
        let ahead = now + jiff::SignedDuration::from_mins(20);
        let lines = vec![
            format!(r#"{{"direction":"in","at":"{ahead}"}}"#),
            r#"{"direction":"in","at":"-009999-01-02T01:59:59Z"}"#.to_owned(),
            r#"{"direction":"in","seq":1}"#.to_owned(),
            r#"{"direction":"in","seq":2}"#.to_owned(),
            r#"{"direction":"in","seq":6}"#.to_owned(),
        ];
        tokio::task::spawn_blocking(move || mosquitto_pub_lines(port, "gatehouse/turnstile/T1/passage", &lines))
            .await
            .unwrap();
    });
    let letters = dead_letters::list(&site.paths().journal(), false).unwrap();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("ahead of the receive time") && reasons[0].contains("max_clock_skew 5m"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("behind the receive time") && reasons[1].contains("max_backdate 30d"),
        "{reasons:?}"
    );
    assert_eq!(passages(&site), 3);

    let output = site.gatehouse(&["state", "T1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let state: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(state["state"]["common"]["lost_messages"], 3, "{state}");
    assert_eq!(state["state"]["common"]["last_seq"], 6, "{state}");
}

#[test]
fn the_device_page_and_metrics_show_lost_messages_and_clock_skew() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let counted = |seq: u64, when: &str| {
        gatehouse::domain::DeviceEvent::PassageRecorded(gatehouse::domain::PassageRecorded {
            direction: gatehouse::domain::Direction::In,
            at: at(when),
            during_fault: false,
            during_lockout: false,
            seq: Some(seq),
        })
    };
    seed(
        &site.paths(),
        &[(
            "T1",
            vec![
                commissioned(
                    gatehouse::domain::DeviceKind::Turnstile,
                    "North",
                    "Hall A",
                    "2026-11-30T07:00:00Z",
                ),
                counted(10, "2026-11-30T08:00:00Z"),
                counted(11, "2026-11-30T08:00:01Z"),
                counted(15, "2026-11-30T08:00:02Z"),
                // A late one of the gap arrives after all: one fewer lost.
                counted(13, "2026-11-30T08:00:03Z"),
            ],
        )],
    );
    with_server(site.config(), async |state, addr| {
        settle(state).await;
        let (_, metrics) = get(addr, "/metrics").await;
        assert!(
            metrics.contains("gatehouse_device_lost_messages{device=\"T1\"} 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("gatehouse_device_clock_skew_seconds{device=\"T1\"}"),
            "{metrics}"
        );
        let (status, page) = get(addr, "/devices/T1").await;
        assert_eq!(status, 200);
        assert!(page.contains("<dd class=\"num lost-messages\">2 "), "{page}");
        assert!(page.contains("the device clock was"), "{page}");
        let (_, events) = get(addr, "/events?stream=T1").await;
        assert!(
            events.contains("<td data-label=\"By\" class=\"actor\">config</td>"),
            "{events}"
        );
    });
}

#[test]
fn a_redrive_from_the_command_line_records_who_did_it() {
    let site = Site::new("");
    with_app(site.config(), async |app| {
        app.state()
            .ingestor
            .ingest(gatehouse::ingest::Received::once(
                "gatehouse/turnstile/T1/passage",
                br#"{"msg_id":"m-1","direction":"in"}"#,
                jiff::Timestamp::now(),
                Actor::gateway("pi-3"),
            ))
            .await
            .unwrap();
    });
    site.write_config(TWO_TURNSTILES_ONE_CAMERA);
    let unknown = site.gatehouse(&["dead-letters", "--redrive", "1", "--as", "ghost"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("--as ghost: no such user"),
        "{unknown:?}"
    );
    let conn = gatehouse::auth::open(&site.paths().journal()).unwrap();
    gatehouse::auth::add_user(&conn, "ana", gatehouse::auth::Role::Manager, "long enough password").unwrap();
    drop(conn);
    let output = site.gatehouse(&["dead-letters", "--redrive", "1", "--as", "ana"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    assert_eq!(
        dump(
            &conn,
            "SELECT causation || ' ' || actor FROM events WHERE event_type = 'PassageRecorded'"
        ),
        ["m-1 user:ana"]
    );
    assert_eq!(
        dump(&conn, "SELECT actor || ' ' || redrive_by FROM dead_letters"),
        ["gateway:pi-3 user:ana"]
    );
}
