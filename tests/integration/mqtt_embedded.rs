//! The embedded MQTT endpoint with real clients over TCP: rumqttc (MQTT 3.1.1) and mosquitto_pub (3.1.1 and 5).
//! A PUBACK arrives only after the journal holds the message's effect.

use crate::helpers::*;
use gatehouse::journal::JournalReader;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// A rumqttc client whose event loop runs in its own task and reports every PUBACK and SUBACK it receives.
struct TestClient {
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<Packet>,
}

fn connect(addr: SocketAddr, client_id: &str) -> TestClient {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (tx, acks) = mpsc::unbounded_channel();
    // Poll in a task of its own: awaiting a publish in the polling task deadlocks (rumqttc #263).
    actix_web::rt::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(packet @ (Packet::PubAck(_) | Packet::SubAck(_)))) => {
                    if tx.send(packet).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    TestClient { client, acks }
}

async fn next_ack(client: &mut TestClient) -> Packet {
    tokio::time::timeout(Duration::from_secs(20), client.acks.recv())
        .await
        .expect("an ack in time")
        .expect("ack")
}

fn passages(site: &Site) -> i64 {
    query_i64(
        &site.paths().journal(),
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
}

#[test]
fn a_puback_arrives_only_after_the_passage_is_in_the_journal() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let mut gateway = connect(app.mqtt_addr().unwrap(), "gateway-1");
        for n in 1..=20 {
            let payload = format!(r#"{{"msg_id":"g1-{n}","direction":"in"}}"#);
            gateway
                .client
                .publish("gatehouse/turnstile/T1/passage", QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            assert!(matches!(next_ack(&mut gateway).await, Packet::PubAck(_)));
            // Read the journal the moment the ack arrives: the event must already be committed.
            assert_eq!(passages(&site), n, "passage {n} durable before its PUBACK");
        }
    });
}

#[test]
fn acks_come_back_in_arrival_order_and_bad_messages_are_acknowledged_as_dead_letters() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let mut gateway = connect(app.mqtt_addr().unwrap(), "gateway-2");
        let messages: [(&str, &str); 5] = [
            ("gatehouse/turnstile/T1/passage", r#"{"msg_id":"a","direction":"in"}"#),
            (
                "gatehouse/turnstile/T1/passage",
                r#"{"msg_id":"b","direction":"diagonal"}"#,
            ),
            ("gatehouse/turnstile/T2/passage", r#"{"msg_id":"c","direction":"out"}"#),
            ("gatehouse/turnstile/NOPE/passage", r#"{"msg_id":"d","direction":"in"}"#),
            (
                "gatehouse/camera/C1/recognition",
                r#"{"msg_id":"e","subject":"P-7","confidence":0.9}"#,
            ),
        ];
        for (topic, payload) in messages {
            gateway
                .client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        let mut pkids = Vec::new();
        for _ in 0..5 {
            match next_ack(&mut gateway).await {
                Packet::PubAck(ack) => pkids.push(ack.pkid),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(pkids, [1, 2, 3, 4, 5], "PUBACKs in the order the messages arrived");
    });
    assert_eq!(passages(&site), 2);
    assert_eq!(
        query_i64(&site.paths().journal(), "SELECT COUNT(*) FROM dead_letters"),
        2
    );
}

#[test]
fn subscriptions_to_anything_but_a_turnstiles_command_topic_are_refused() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let mut client = connect(app.mqtt_addr().unwrap(), "curious");
        client.client.subscribe("gatehouse/#", QoS::AtLeastOnce).await.unwrap();
        match next_ack(&mut client).await {
            Packet::SubAck(ack) => assert_eq!(ack.return_codes, [rumqttc::SubscribeReasonCode::Failure]),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn a_gateway_that_vanishes_has_its_last_will_recorded() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let addr = app.mqtt_addr().unwrap();
        // A raw connection, so it can vanish without DISCONNECT (a client library would say goodbye).
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut connect = rumqttc::Connect::new("cabinet-7");
            connect.keep_alive = 30;
            connect.last_will = Some(LastWill::new(
                "gatehouse/turnstile/T1/status",
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
            let mut online = rumqttc::Publish::new("gatehouse/turnstile/T1/status", QoS::AtLeastOnce, "online");
            online.pkid = 1;
            let mut bytes = bytes::BytesMut::new();
            rumqttc::Packet::Connect(connect).write(&mut bytes, 1 << 20).unwrap();
            rumqttc::Packet::Publish(online).write(&mut bytes, 1 << 20).unwrap();
            let mut socket = std::net::TcpStream::connect(addr).unwrap();
            socket.write_all(&bytes).unwrap();
            // CONNACK (4 bytes) and PUBACK (4 bytes), then vanish.
            let mut answer = [0u8; 8];
            socket.read_exact(&mut answer).unwrap();
            assert_eq!(answer, [0x20, 2, 0, 0, 0x40, 2, 0, 1]);
        })
        .await
        .unwrap();
        let journal = site.paths().journal();
        eventually("the last will marked T1 offline", || {
            query_i64(
                &journal,
                "SELECT COUNT(*) FROM events WHERE stream_id = 'T1' AND event_type = 'WentOffline'",
            ) == 1
        })
        .await;
    });
    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    let types: Vec<String> = reader
        .stream_events(&id("T1"), 0)
        .unwrap()
        .into_iter()
        .map(|e| e.event_type.to_owned())
        .collect();
    assert_eq!(types, ["Commissioned", "CameOnline", "WentOffline"]);
}

#[test]
fn mosquitto_pub_over_mqtt_3_1_1_and_5_is_recorded() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    with_app(site.config(), async |app| {
        let addr = app.mqtt_addr().unwrap();
        for (version, msg_id) in [("mqttv311", "v3"), ("mqttv5", "v5")] {
            let payload = format!(r#"{{"msg_id":"{msg_id}","direction":"in"}}"#);
            let output = tokio::task::spawn_blocking(move || {
                std::process::Command::new("mosquitto_pub")
                    .args([
                        "-h",
                        &addr.ip().to_string(),
                        "-p",
                        &addr.port().to_string(),
                        "-V",
                        version,
                        "-q",
                        "1",
                    ])
                    .args([
                        "-i",
                        &format!("pub-{msg_id}"),
                        "-t",
                        "gatehouse/turnstile/T2/passage",
                        "-m",
                        &payload,
                    ])
                    .output()
                    .expect("mosquitto_pub is installed (scripts/test installs it)")
            })
            .await
            .unwrap();
            assert!(
                output.status.success(),
                "{version}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    });
    let reader = JournalReader::open(&site.paths().journal()).unwrap();
    let causes: Vec<Option<String>> = reader
        .stream_events(&id("T2"), 0)
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "PassageRecorded")
        .map(|e| e.causation)
        .collect();
    assert_eq!(causes, [Some("v3".to_owned()), Some("v5".to_owned())]);
}

#[test]
fn no_puback_while_the_journal_cannot_commit_and_one_as_soon_as_it_can() {
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let journal = site.paths().journal();
    with_app(site.config(), async |app| {
        let mut gateway = connect(app.mqtt_addr().unwrap(), "held-gateway");
        // Another process's write lock on journal.db: the writer cannot commit until it is released.
        let lock = WriteLock::hold(&journal).await;
        gateway
            .client
            .publish(
                "gatehouse/turnstile/T1/passage",
                QoS::AtLeastOnce,
                false,
                r#"{"msg_id":"held-1","direction":"in"}"#,
            )
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_millis(1500), gateway.acks.recv()).await;
        assert!(
            early.is_err(),
            "a PUBACK came while nothing could be committed: {early:?}"
        );
        lock.release().await;
        assert!(matches!(next_ack(&mut gateway).await, Packet::PubAck(_)));
        assert_eq!(passages(&site), 1);
    });
}
