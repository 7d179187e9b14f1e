//! Nothing acknowledged is lost: a gateway publishes thousands of QoS 1 messages with unique msg_ids, re-sending
//! whatever was not acknowledged (as rumqttc does after a reconnect), while the server is killed with SIGKILL
//! several times mid-stream — and in external mode Mosquitto is restarted too. Afterwards the journal holds every
//! message exactly once.

use crate::helpers::*;
use crate::load::*;
use std::time::{Duration, Instant};

const MESSAGES: u64 = 3000;

/// How many times to kill (or restart) under load: 3 in the tests, many more from `scripts/soak`
/// (`GATEHOUSE_SOAK_KILLS`, `GATEHOUSE_SOAK_RESTARTS`), which prints the figures.
fn soak(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ONE_TURNSTILE: &str = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";

#[test]
fn killing_the_server_mid_stream_loses_and_doubles_nothing_with_the_embedded_endpoint() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), ONE_TURNSTILE);
    let mut server = Server::start(&site);
    wait_for_port(port);
    let kills = soak("GATEHOUSE_SOAK_KILLS", 3);
    // About a thousand messages per kill, so every kill lands mid-stream.
    let messages = MESSAGES.max(kills * 1000);
    let gateway = Gateway::sending(port, messages);
    for kill in 1..=kills {
        gateway.wait_until_acked(messages * kill / (kills + 1));
        server.kill_and_restart();
    }
    gateway.finish();
    drop(server);
    assert_messages_recorded_once(&site, messages);
    println!("soak: embedded, {kills} SIGKILLs under QoS 1 load: {messages} messages sent, {messages} counted");
}

#[test]
fn killing_the_server_and_restarting_mosquitto_mid_stream_loses_and_doubles_nothing() {
    let mut broker = Mosquitto::start();
    let site = Site::with_mqtt(&format!("broker = \"{}\"", broker.url()), ONE_TURNSTILE);
    let mut server = Server::start(&site);
    // Messages published before gatehouse first subscribed have no session to be queued for: wait until a
    // probe (a passage T1 cannot have, so it lands as a dead letter, not a passage) has gone through T1's session.
    let journal = site.paths().journal();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The server creates journal.db a moment before its tables: until then the count is "not yet", not an error.
    while try_query_i64(&journal, "SELECT COUNT(*) FROM dead_letters").unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "gatehouse never subscribed at mosquitto");
        mosquitto_pub_lines(
            broker.port,
            "gatehouse/turnstile/T1/passage",
            &[r#"{"direction":"sideways"}"#.to_owned()],
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each round: the server is killed, then Mosquitto restarted.
    let rounds = soak("GATEHOUSE_SOAK_RESTARTS", 1);
    let messages = MESSAGES.max(rounds * 1000);
    let gateway = Gateway::sending(broker.port, messages);
    let steps = 2 * rounds + 1;
    for round in 0..rounds {
        gateway.wait_until_acked(messages * (2 * round + 1) / (steps + 1));
        server.kill_and_restart();
        gateway.wait_until_acked(messages * (2 * round + 2) / (steps + 1));
        broker.restart();
    }
    gateway.wait_until_acked(messages * steps / (steps + 1));
    server.kill_and_restart();
    gateway.finish();
    // Mosquitto acknowledged everything to the gateway; wait until gatehouse has recorded all of it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let recorded = || {
        query_i64(
            &journal,
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
        )
    };
    while recorded() < messages as i64 {
        assert!(
            Instant::now() < deadline,
            "gatehouse recorded {} of {messages} messages",
            recorded()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Redeliveries still on their way arrive before a message published now: they must be dropped as duplicates.
    sentinel_recorded(broker.port, &journal, "T1");
    drop(server);
    assert_messages_recorded_once(&site, messages);
    println!(
        "soak: external, {rounds} Mosquitto restarts and {} SIGKILLs under QoS 1 load: {messages} messages sent, \
         {messages} counted",
        rounds + 1
    );
}

#[test]
fn sigterm_and_ctrl_c_under_load_exit_0_and_keep_every_acknowledged_message() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), ONE_TURNSTILE);
    let mut server = Server::start(&site);
    wait_for_port(port);
    // Enough that a stop lands while messages are still arriving.
    let messages = 40_000;
    let gateway = Gateway::sending(port, messages);
    for (quarter, signal) in [(1, "TERM"), (3, "INT")] {
        gateway.wait_until_acked(messages * quarter / 4);
        let status = server.stop_with(signal);
        assert!(status.success(), "SIG{signal} under load: {status}");
        // The server is gone: no acknowledgement can come any more.
        assert!(gateway.acked() < messages, "stopped mid-stream");
        assert_acknowledged_recorded(&site, &gateway);
        server.spawn();
    }
    gateway.finish();
    drop(server);
    assert_messages_recorded_once(&site, messages);
    let conn = rusqlite::Connection::open(site.paths().journal()).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
