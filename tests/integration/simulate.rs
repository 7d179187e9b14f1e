//! The traffic simulator (`gatehouse::simulate::run`) against a real mosquitto broker: everything it publishes is
//! acknowledged, reaches a subscriber under the configured devices' topics and parses as a device message; the
//! demo feed stops when asked; an unreachable broker is reported.

use crate::helpers::*;
use gatehouse::config::Config;
use gatehouse::domain::{DeviceId, DeviceKind};
use gatehouse::simulate::{SimulateOptions, run};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;

fn options(port: u16, rate: f64, duration: Option<Duration>) -> SimulateOptions {
    SimulateOptions {
        rate,
        duration,
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        topic_prefix: "gatehouse".into(),
        seed: Some(42),
        progress: false,
    }
}

/// A message as a subscriber saw it.
struct Received {
    topic: String,
    payload: Vec<u8>,
}

/// Subscribes to everything under `gatehouse/` with QoS 1 and returns once the broker confirmed the
/// subscription, so nothing published afterwards can be missed.
async fn subscribe(port: u16) -> (AsyncClient, mpsc::UnboundedReceiver<Received>) {
    let mut options = MqttOptions::new("simulate-test-subscriber", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    // Polled in a task of its own: awaiting the client in the polling task deadlocks (rumqttc #263).
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(subscribed) = subscribed_tx.take() {
                        let _ = subscribed.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let received = Received {
                        topic: publish.topic,
                        payload: publish.payload.to_vec(),
                    };
                    if tx.send(received).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.subscribe("gatehouse/#", QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), subscribed)
        .await
        .expect("the broker confirms the subscription")
        .unwrap();
    (client, rx)
}

fn lookup(config: &Config) -> HashMap<DeviceId, DeviceKind> {
    config.device_ids().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_traffic_reaches_a_real_broker_acknowledged() {
    let broker = Mosquitto::start();
    let site = Site::new(TWO_TURNSTILES_ONE_CAMERA);
    let config = site.config();
    let (_subscriber, mut received) = subscribe(broker.port).await;

    let report = run(
        &config,
        options(broker.port, 200.0, Some(Duration::from_secs(2))),
        std::future::pending(),
    )
    .await
    .expect("the simulation runs");

    assert_eq!(report.acked, report.sent, "{report}");
    // 3 status messages plus 200/s for 2 s; a busy machine may publish fewer before the deadline, never more.
    assert!((50..=403).contains(&report.sent), "{report}");
    assert_eq!(report.by_message.values().sum::<u64>(), report.sent, "{report}");
    assert_eq!(report.by_message["status"], 3, "{report}");
    assert!(report.by_message["passage"] > report.sent / 2, "{report}");
    assert!(report.duplicates < report.sent / 10, "{report}");

    // The subscriber gets every message, duplicates included (the broker does not dedupe; Gatehouse does).
    let devices = lookup(&config);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..report.sent {
        let message = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("the subscriber receives every acknowledged message")
            .expect("the subscriber is running");
        gatehouse::ingest::parse(
            "gatehouse",
            &message.topic,
            &message.payload,
            jiff::Timestamp::now(),
            Default::default(),
            |id| devices.get(id).copied(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", message.topic));
        let kind = message.topic.rsplit('/').next().unwrap().to_owned();
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(kinds, report.by_message);

    // The status messages were retained: a subscriber arriving later still learns every device is online.
    let late = tokio::task::spawn_blocking(move || {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-t", "gatehouse/+/+/status", "-v", "-C", "3", "-W", "10"])
            .output()
            .expect("mosquitto_sub runs (apt-get install -y mosquitto-clients)")
    })
    .await
    .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&late.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "gatehouse/camera/C1/status online",
            "gatehouse/turnstile/T1/status online",
            "gatehouse/turnstile/T2/status online"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_feed_publishes_until_stopped() {
    let broker = Mosquitto::start();
    let config = Site::new(TWO_TURNSTILES_ONE_CAMERA).config();
    // Long enough that a slow connect still leaves time to publish.
    let stop = tokio::time::sleep(Duration::from_secs(3));

    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run(&config, options(broker.port, 50.0, None), stop),
    )
    .await
    .expect("the simulation ends soon after stop")
    .expect("the simulation runs");

    assert_eq!(report.acked, report.sent, "{report}");
    assert!(report.sent > 3, "statuses and some traffic: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_reported() {
    let config = Site::new(TWO_TURNSTILES_ONE_CAMERA).config();
    let port = free_port();

    let error = run(
        &config,
        options(port, 10.0, Some(Duration::from_secs(1))),
        std::future::pending(),
    )
    .await
    .expect_err("nothing listens on the port");

    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot connect to mqtt broker 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}
