//! A manager takes a turnstile out of service and its gateway hears it: from the device page and the command line
//! (with and without a running server) to a `LockedOut` event with its actor, to the retained, versioned command
//! a subscribed gateway receives (mosquitto_sub and rumqttc, across reconnects and restarts), to the dashboard,
//! and back with an unlock. With an external broker (Mosquitto) the command is retained there and never ingested
//! back.

use crate::helpers::*;
use gatehouse::auth::Role;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

const COMMAND_TOPIC: &str = "gatehouse/turnstile/T1/command";

/// A site whose embedded endpoint listens on a port known before it starts (so gateways can reconnect to it
/// after a restart).
fn site_on(port: u16) -> Site {
    Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), ONE_TURNSTILE_ONE_CAMERA)
}

/// The command document a gateway received.
fn command(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).unwrap_or_else(|e| panic!("command is JSON ({e}): {payload:?}"))
}

/// `mosquitto_sub` subscribed to T1's command topic, printing each payload on a line; stops after `count`.
fn mosquitto_sub(port: u16, client_id: &str, count: usize) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-i", client_id])
        .args(["-t", COMMAND_TOPIC, "-C", &count.to_string(), "-W", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (scripts/test installs it)")
}

/// Waits for a `mosquitto_sub` off the actix thread and returns the documents it printed.
async fn documents(child: Child) -> Vec<serde_json::Value> {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "mosquitto_sub: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| command(line.as_bytes()))
        .collect()
}

/// A rumqttc gateway whose event loop runs in a task of its own, reporting SUBACKs and the PUBLISHes it gets.
/// With `manual_acks`, it acknowledges a command only when the test says so.
struct Gateway {
    client: AsyncClient,
    packets: mpsc::UnboundedReceiver<Packet>,
}

fn gateway(port: u16, client_id: &str, clean_session: bool) -> Gateway {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(clean_session);
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (tx, packets) = mpsc::unbounded_channel();
    actix_web::rt::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(packet @ (Packet::Publish(_) | Packet::SubAck(_)))) => {
                    if tx.send(packet).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                // Disconnected (by the test, or the server stopped): this gateway is done; tests reconnect with
                // a new one, as a rebooted gateway would.
                Err(_) => break,
            }
        }
    });
    Gateway { client, packets }
}

impl Gateway {
    async fn next(&mut self) -> Packet {
        tokio::time::timeout(Duration::from_secs(20), self.packets.recv())
            .await
            .expect("a packet in time")
            .expect("the event loop runs")
    }

    async fn next_command(&mut self) -> Publish {
        loop {
            if let Packet::Publish(publish) = self.next().await {
                assert_eq!(publish.topic, COMMAND_TOPIC);
                assert_eq!(publish.qos, QoS::AtLeastOnce, "commands come at QoS 1");
                return publish;
            }
        }
    }
}

fn lock_events(site: &Site) -> Vec<String> {
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    dump(
        &conn,
        "SELECT event_type, actor FROM events WHERE event_type IN ('LockedOut', 'Unlocked') ORDER BY position",
    )
}

#[test]
fn a_manager_locks_a_turnstile_out_from_its_page_the_gateway_hears_it_and_the_dashboard_shows_it() {
    let port = free_port();
    let site = site_on(port);
    let journal = site.paths().journal();
    with_server(site.config(), async |_state, addr| {
        // The gateway is subscribed before anything happens: it gets the current state (unlocked), the lock-out
        // and the unlock, in that order, each with a higher version.
        let gateway = mosquitto_sub(port, "gateway-hall-a", 3);
        // The whole conversation is blocking HTTP: off the actix thread, which must keep serving.
        let site_journal = journal.clone();
        tokio::task::spawn_blocking(move || manager_conversation(&site_journal, addr))
            .await
            .unwrap();
        let seen = documents(gateway).await;
        let locked: Vec<bool> = seen.iter().map(|d| d["locked"].as_bool().unwrap()).collect();
        assert_eq!(locked, [false, true, false], "{seen:?}");
        assert_eq!(seen[1]["reason"], "floor cleaning until 10");
        let versions: Vec<u64> = seen.iter().map(|d| d["version"].as_u64().unwrap()).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "versions only grow: {versions:?}"
        );
        assert!(seen[1]["at"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok());
    });
    assert_eq!(lock_events(&site), ["LockedOut|user:ana", "Unlocked|user:ana"]);
}

/// What the manager does and sees on the pages, from signing in to the unlock.
fn manager_conversation(journal: &std::path::Path, addr: std::net::SocketAddr) {
    let lock_events = || {
        let conn = rusqlite::Connection::open(journal).unwrap();
        dump(
            &conn,
            "SELECT event_type FROM events WHERE event_type IN ('LockedOut', 'Unlocked')",
        )
    };
    let manager = Session::sign_in(journal, addr, "ana", Role::Manager);
    let page = manager.get(addr, "/devices/T1");
    assert!(page.body.contains("action=\"/devices/T1/lock-out\""), "{}", page.body);
    assert!(
        !manager.get(addr, "/devices/C1").body.contains("lock-out"),
        "a camera cannot be locked out"
    );

    // A lock-out needs a reason: nothing is recorded without one.
    let refused = manager.post(addr, "/devices/T1/lock-out", "reason=+");
    assert_eq!(refused.status, 303);
    let page = manager.get(addr, refused.header("location").unwrap());
    assert!(
        page.body.contains("not locked out: a lock-out needs a reason"),
        "{}",
        page.body
    );
    assert!(lock_events().is_empty());

    let locked = manager.post(addr, "/devices/T1/lock-out", "reason=floor+cleaning+until+10");
    assert_eq!(locked.status, 303);
    let location = locked.header("location").unwrap().to_owned();
    assert!(location.starts_with("/devices/T1?notice="), "{location}");
    // Read-your-writes: the page the manager is sent back to already shows it.
    let page = manager.get(addr, &location);
    assert!(
        page.body.contains("T1 is locked out: floor cleaning until 10"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("by user:ana: floor cleaning until 10"),
        "{}",
        page.body
    );
    assert!(page.body.contains("action=\"/devices/T1/unlock\""));
    let dashboard = manager.get(addr, "/live/dashboard");
    assert!(dashboard.body.contains("locked out"), "{}", dashboard.body);

    // API tokens only read.
    let bearer = format!("Bearer {}", token_for(addr));
    let by_token = http(
        addr,
        "POST",
        "/devices/T1/unlock",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "csrf=x",
    );
    assert_eq!(by_token.status, 403);

    let unlocked = manager.post(addr, "/devices/T1/unlock", "");
    let page = manager.get(addr, unlocked.header("location").unwrap());
    assert!(page.body.contains("T1 is unlocked"), "{}", page.body);
    assert!(page.body.contains("not locked out"));
}

#[test]
fn the_command_line_locks_out_through_a_running_server_and_a_late_subscriber_gets_the_state() {
    let port = free_port();
    let site = site_on(port);
    let journal = site.paths().journal();
    gatehouse::auth::add_user(
        &gatehouse::auth::open(&journal).unwrap(),
        "ben",
        Role::Manager,
        "a password",
    )
    .unwrap();
    with_app(site.config(), async |_app| {
        let cli = tokio::task::spawn_blocking({
            let dir = site.dir.path().to_owned();
            move || {
                Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                    .current_dir(dir)
                    .args(["--as", "ben", "lock-out", "T1", "--reason", "fire drill"])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&cli.stdout);
        assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
        assert!(stdout.contains("T1 is locked out: fire drill (by user:ben"), "{stdout}");

        // A gateway that subscribes afterwards gets the state in force at once.
        let late = documents(mosquitto_sub(port, "late-gateway", 1)).await;
        assert_eq!(late[0]["locked"], true);
        assert_eq!(late[0]["reason"], "fire drill");

        // Only exact command topics of configured turnstiles may be subscribed to.
        let mut curious = gateway(port, "curious", true);
        curious
            .client
            .subscribe_many(
                [
                    "gatehouse/#",
                    "gatehouse/turnstile/T1/passage",
                    "gatehouse/turnstile/T9/command",
                    COMMAND_TOPIC,
                ]
                .map(|t| rumqttc::SubscribeFilter::new(t.to_owned(), QoS::AtLeastOnce)),
            )
            .await
            .unwrap();
        match curious.next().await {
            Packet::SubAck(ack) => assert_eq!(
                ack.return_codes,
                [
                    rumqttc::SubscribeReasonCode::Failure,
                    rumqttc::SubscribeReasonCode::Failure,
                    rumqttc::SubscribeReasonCode::Failure,
                    rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce),
                ]
            ),
            other => panic!("expected a SUBACK, got {other:?}"),
        }
        let retained = curious.next_command().await;
        assert!(retained.retain, "the state delivered on subscribe is flagged retained");
        assert_eq!(command(&retained.payload)["locked"], true);
    });
    // Refusals are clear, and exit 1.
    let camera = site.gatehouse(&["lock-out", "C1", "--reason", "x"]);
    assert_eq!(camera.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&camera.stderr).contains("C1: a camera cannot be locked out"));
    let no_reason = site.gatehouse(&["lock-out", "T1", "--reason", ""]);
    assert_eq!(no_reason.status.code(), Some(2));
    assert_eq!(lock_events(&site), ["LockedOut|user:ben"]);
}

#[test]
fn a_persistent_gateway_gets_what_it_did_not_acknowledge_after_reconnects_and_restarts() {
    let port = free_port();
    let site = site_on(port);
    with_app(site.config(), async |_app| {
        let mut first = gateway(port, "cabinet-7", false);
        // Subscribed at once after the start, possibly before the read model holds T1's first state.
        first.client.subscribe(COMMAND_TOPIC, QoS::AtLeastOnce).await.unwrap();
        match first.next().await {
            Packet::SubAck(ack) => {
                assert_eq!(
                    ack.return_codes,
                    [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
                )
            }
            other => panic!("expected a SUBACK, got {other:?}"),
        }
        let unacknowledged = first.next_command().await;
        assert_eq!(command(&unacknowledged.payload)["locked"], false);
        // The gateway goes away without acknowledging; on its return (same session, no new SUBSCRIBE) it gets
        // the state again, and acknowledges it this time.
        first.client.disconnect().await.unwrap();
        drop(first);
        let mut again = gateway(port, "cabinet-7", false);
        let resent = again.next_command().await;
        assert_eq!(command(&resent.payload), command(&unacknowledged.payload));
        again.client.ack(&resent).await.unwrap();
        again.client.disconnect().await.unwrap();
    });
    // While Gatehouse is down, a manager locks the turnstile out from the command line (a core of its own).
    let cli = site.gatehouse(&["lock-out", "T1", "--reason", "barrier repair"]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    // After the restart the gateway's session still has its subscription: it hears the lock-out without
    // subscribing again.
    with_app(site.config(), async |_app| {
        let mut back = gateway(port, "cabinet-7", false);
        let state = back.next_command().await;
        let document = command(&state.payload);
        assert_eq!(document["locked"], true, "{document}");
        assert_eq!(document["reason"], "barrier repair");
        back.client.ack(&state).await.unwrap();
    });
}

#[test]
fn with_an_external_broker_the_command_is_retained_there_and_not_ingested_back() {
    let broker = Mosquitto::start();
    let broker_port = broker.port;
    let site = Site::with_mqtt(&format!("broker = \"{}\"", broker.url()), ONE_TURNSTILE_ONE_CAMERA);
    let journal = site.paths().journal();
    gatehouse::auth::add_user(
        &gatehouse::auth::open(&journal).unwrap(),
        "cleo",
        Role::Manager,
        "a password",
    )
    .unwrap();
    let events_before_restart = with_app(site.config(), async |app| {
        // The unlocked state is published on connect.
        let first = documents(mosquitto_sub(broker_port, "watcher-1", 1)).await;
        assert_eq!(first[0]["locked"], false);
        let done = gatehouse::requests::carry_out(
            &app.state().registry,
            &app.state().vault,
            &gatehouse::requests::OperatorCommand::lock_out("T1", "wet floor").unwrap(),
            gatehouse::journal::Actor::user("cleo"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(done.text, "T1 is locked out: wet floor");
        // A gateway subscribing later gets the retained lock-out from the broker itself.
        let journal = journal.clone();
        eventually_blocking(move || {
            let seen = std::process::Command::new("mosquitto_sub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &broker_port.to_string(),
                    "-t",
                    COMMAND_TOPIC,
                    "-C",
                    "1",
                    "-W",
                    "5",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&seen.stdout).contains("\"locked\":true")
        })
        .await;
        // Gatehouse's own subscription got the command back from the broker: acknowledged, never an event or
        // a dead letter. A sentinel published after it is recorded only once the command has been dealt with.
        let sentinel_journal = journal.clone();
        tokio::task::spawn_blocking(move || sentinel_recorded(broker_port, &sentinel_journal, "T1"))
            .await
            .unwrap();
        assert_eq!(query_i64(&journal, "SELECT COUNT(*) FROM dead_letters"), 0);
        query_i64(&journal, NOT_SENTINELS)
    });
    // A restart publishes every state again (retained, so the same document) and ingests none of it.
    with_app(site.config(), async |_app| {
        let seen = documents(mosquitto_sub(broker_port, "watcher-2", 1)).await;
        assert_eq!(seen[0]["locked"], true);
        let journal = site.paths().journal();
        tokio::task::spawn_blocking(move || sentinel_recorded(broker_port, &journal, "T1"))
            .await
            .unwrap();
    });
    assert_eq!(
        query_i64(&site.paths().journal(), "SELECT COUNT(*) FROM dead_letters"),
        0
    );
    assert_eq!(query_i64(&site.paths().journal(), NOT_SENTINELS), events_before_restart);
}

/// Events other than the sentinels the tests published to know their counts are final (and the forced-passage
/// alarm a sentinel on a locked-out turnstile raises, whenever the alarms policy gets to it).
const NOT_SENTINELS: &str = "SELECT COUNT(*) FROM events WHERE (causation IS NULL OR causation NOT LIKE 'sentinel-%') \
                             AND stream_id NOT LIKE 'alarm:%'";

/// Polls a blocking check off the actix thread until it holds (up to 20 s).
async fn eventually_blocking(check: impl Fn() -> bool + Send + Sync + 'static) {
    let check = std::sync::Arc::new(check);
    for _ in 0..40 {
        let c = check.clone();
        if tokio::task::spawn_blocking(move || c()).await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the check never held");
}
