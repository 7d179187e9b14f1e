//! Gateways sign in: with `require_auth` (the default) the embedded endpoint admits only gateway identities made by
//! `gatehouse gateway add`, each may publish only for its own devices (anything else is a dead letter, never an
//! event) and subscribe only to their command topics; a session is taken over only by the same identity. Also the
//! endpoint's limits: the protocol level, max_connections, and the dead-letter quota and payload prefix.

use crate::helpers::*;
use gatehouse::ingest::Received;
use gatehouse::journal::Actor;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;

fn secured_site(port: u16, extra: &str) -> Site {
    Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = true\n{extra}"),
        TWO_TURNSTILES_ONE_CAMERA,
    )
}

/// `gatehouse gateway add NAME --devices DEVICES`: the password it printed.
fn add_gateway(site: &Site, name: &str, devices: &str) -> String {
    let output = site.gatehouse(&["gateway", "add", name, "--devices", devices]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], format!("mqtt_username={name}"));
    assert!(lines[2].starts_with("http_token=gwt_"), "{stdout}");
    lines[1].strip_prefix("mqtt_password=").unwrap().to_owned()
}

/// mosquitto_pub of one QoS 1 message; whether the broker accepted it, and what it printed.
async fn mosquitto_pub(port: u16, login: Option<(&str, &str)>, topic: &str, payload: &str) -> (bool, String) {
    let mut command = Command::new("mosquitto_pub");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]);
    if let Some((user, password)) = login {
        command.args(["-u", user, "-P", password]);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A rumqttc gateway that reports its SUBACKs and how its connection ended.
struct Gateway {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Packet, String>>,
}

fn gateway(port: u16, client_id: &str, login: (&str, &str)) -> Gateway {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_credentials(login.0, login.1);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (tx, events) = mpsc::unbounded_channel();
    actix_web::rt::spawn(async move {
        loop {
            let event = match eventloop.poll().await {
                Ok(Event::Incoming(packet @ (Packet::ConnAck(_) | Packet::SubAck(_)))) => Ok(packet),
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => Err(format!("refused: {code:?}")),
                Err(error) => Err(error.to_string()),
            };
            let end = event.is_err();
            if tx.send(event).is_err() || end {
                break;
            }
        }
    });
    Gateway { client, events }
}

async fn next(gateway: &mut Gateway) -> Result<Packet, String> {
    tokio::time::timeout(Duration::from_secs(20), gateway.events.recv())
        .await
        .expect("an answer in time")
        .expect("the event loop reports")
}

#[test]
fn serve_refuses_to_start_without_a_gateway_identity_and_says_how_to_add_one() {
    let site = secured_site(free_port(), "");
    let output = site.gatehouse(&["serve"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("require_auth is on and no gateway may sign in") && stderr.contains("gatehouse gateway add"),
        "{stderr}"
    );
}

#[test]
fn only_a_signed_in_gateway_may_publish_and_only_for_its_own_devices() {
    let port = free_port();
    let site = secured_site(port, "");
    let password = add_gateway(&site, "pi-1", "T1");
    let journal = site.paths().journal();
    with_app(site.config(), async |_app| {
        let passage = r#"{"direction":"in"}"#;
        let (ok, why) = mosquitto_pub(port, None, "gatehouse/turnstile/T1/passage", passage).await;
        assert!(!ok && why.contains("Connection Refused"), "anonymous: {why}");
        let (ok, why) = mosquitto_pub(port, Some(("pi-1", "wrong")), "gatehouse/turnstile/T1/passage", passage).await;
        assert!(
            !ok && why.contains("bad user name or password"),
            "wrong password: {why}"
        );
        let (ok, why) = mosquitto_pub(
            port,
            Some(("pi-1", &password)),
            "gatehouse/turnstile/T1/passage",
            passage,
        )
        .await;
        assert!(ok, "{why}");
        // Its own turnstile: an event with the gateway as its actor. Another's: a dead letter, never an event.
        let (ok, why) = mosquitto_pub(
            port,
            Some(("pi-1", &password)),
            "gatehouse/turnstile/T2/passage",
            passage,
        )
        .await;
        assert!(ok, "acknowledged: {why}");
        let sql = "SELECT actor FROM events WHERE event_type = 'PassageRecorded'";
        let actors = dump(&rusqlite::Connection::open(&journal).unwrap(), sql);
        assert_eq!(actors, ["gateway:pi-1"]);
        let reasons = dump(
            &rusqlite::Connection::open(&journal).unwrap(),
            "SELECT reason FROM dead_letters",
        );
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].starts_with("gateway pi-1 may not report for device T2"),
            "{reasons:?}"
        );

        // It may subscribe to its own turnstile's commands only.
        let mut pi = gateway(port, "pi-1-commands", ("pi-1", &password));
        assert!(matches!(next(&mut pi).await, Ok(Packet::ConnAck(_))));
        for topic in ["gatehouse/turnstile/T1/command", "gatehouse/turnstile/T2/command"] {
            pi.client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        }
        let mut granted = Vec::new();
        while granted.len() < 2 {
            if let Ok(Packet::SubAck(ack)) = next(&mut pi).await {
                granted.extend(ack.return_codes.iter().map(|c| format!("{c:?}")));
            }
        }
        assert_eq!(granted, ["Success(AtLeastOnce)", "Failure"]);
    });
}

#[test]
fn a_session_is_taken_over_by_the_same_gateway_only() {
    let port = free_port();
    let site = secured_site(port, "");
    let first = add_gateway(&site, "pi-1", "T1");
    let second = add_gateway(&site, "pi-2", "T2");
    with_app(site.config(), async |_app| {
        let mut old = gateway(port, "gate-a", ("pi-1", &first));
        assert!(matches!(next(&mut old).await, Ok(Packet::ConnAck(_))));
        // Another identity cannot take the client id.
        let mut intruder = gateway(port, "gate-a", ("pi-2", &second));
        let refused = next(&mut intruder).await;
        assert!(
            matches!(&refused, Err(why) if why.contains("BadClientId")),
            "{refused:?}"
        );
        // The same identity can: the old connection is closed.
        let mut new = gateway(port, "gate-a", ("pi-1", &first));
        assert!(matches!(next(&mut new).await, Ok(Packet::ConnAck(_))));
        assert!(next(&mut old).await.is_err(), "the old connection was closed");
    });
}

/// A CONNECT with this protocol level and one-letter client id, no credentials.
fn raw_connect(level: u8, client: u8) -> Vec<u8> {
    vec![
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', level, 0x02, 0x00, 0x3C, 0x00, 0x01, client,
    ]
}

fn answer(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn an_unsupported_protocol_level_gets_connack_0x01_and_max_connections_holds() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = false\nmax_connections = 2"),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    with_app(site.config(), async |_app| {
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(&raw_connect(6, b'v')).unwrap();
            assert_eq!(
                answer(&mut stream),
                [0x20, 0x02, 0x00, 0x01],
                "CONNACK 'unacceptable protocol version'"
            );

            // Two connections open; a third is closed at once.
            let mut open = Vec::new();
            // (Distinct client ids: a second CONNECT with the same one would take the first one's session over.)
            for client in [b'a', b'b'] {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.write_all(&raw_connect(4, client)).unwrap();
                let mut connack = [0u8; 4];
                stream.read_exact(&mut connack).unwrap();
                assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
                open.push(stream);
            }
            let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = third.write_all(&raw_connect(4, b'c'));
            assert_eq!(answer(&mut third), Vec::<u8>::new(), "closed without an answer");
            // One leaves: there is room again.
            drop(open.pop());
            let mut again = Vec::new();
            for _ in 0..100 {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.write_all(&raw_connect(4, b'd')).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut connack = [0u8; 4];
                if stream.read_exact(&mut connack).is_ok() {
                    again.push(connack);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(again, [[0x20, 0x02, 0x00, 0x00]]);
        })
        .await
        .unwrap();
    });
}

#[test]
fn dead_letters_past_the_quota_are_counted_not_stored_and_a_big_payload_keeps_a_prefix() {
    let site = Site::with_mqtt(
        "listen = \"127.0.0.1:0\"\ndead_letter_quota = 3",
        TWO_TURNSTILES_ONE_CAMERA,
    );
    let journal = site.paths().journal();
    with_server(site.config(), async |state, addr| {
        let now = jiff::Timestamp::now();
        for n in 0..5 {
            let payload = format!("not json {n}");
            let outcome = state
                .ingestor
                .ingest(Received::once(
                    "gatehouse/turnstile/T1/passage",
                    payload.as_bytes(),
                    now,
                    Actor::gateway("chatty"),
                ))
                .await
                .unwrap();
            let kept = matches!(outcome, gatehouse::ingest::Ingested::DeadLettered { .. });
            assert_eq!(kept, n < 3, "letter {n}: {outcome:?}");
        }
        let (_, metrics) = get(addr, "/metrics").await;
        assert!(
            metrics.contains("gatehouse_dead_letters_over_quota_total 2"),
            "{metrics}"
        );
        // Another sender has a quota of its own; a 100 KB payload keeps its first 4 KiB, its size and digest.
        let big = vec![b'x'; 100_000];
        state
            .ingestor
            .ingest(Received::once(
                "gatehouse/turnstile/T1/passage",
                &big,
                now,
                Actor::gateway("big"),
            ))
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(&journal).unwrap();
        let (reason, kept): (String, i64) = conn
            .query_row(
                "SELECT reason, length(payload) FROM dead_letters ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, 4096);
        assert!(reason.contains("payload of 100000 bytes, SHA-256 "), "{reason}");
        assert_eq!(query_i64(&journal, "SELECT COUNT(*) FROM dead_letters"), 4);
    });
}

#[test]
fn an_admin_adds_a_gateway_on_its_page_and_it_signs_in_with_what_the_page_showed_once() {
    let port = free_port();
    let site = secured_site(port, "");
    // serve needs one identity to start; the page adds the second.
    add_gateway(&site, "first", "T1");
    let journal = site.paths().journal();
    with_server(site.config(), async |_state, addr| {
        let journal = journal.clone();
        let (answer, manager_status) = tokio::task::spawn_blocking(move || {
            let admin = Session::sign_in(&journal, addr, "ada", gatehouse::auth::Role::Admin);
            let manager = Session::sign_in(&journal, addr, "mia", gatehouse::auth::Role::Manager);
            let manager_status = manager.get(addr, "/admin/gateways").status;
            let answer = admin.post(addr, "/admin/gateways", "name=pi-2&devices=T2%2C+C1");
            let page = admin.get(addr, "/admin/gateways").body;
            assert!(
                page.contains(r#"<tr id="gateway-pi-2"><td>pi-2</td><td>C1, T2</td>"#),
                "{page}"
            );
            assert!(!page.contains("mqtt_password="), "the secrets are shown only once");
            (answer, manager_status)
        })
        .await
        .unwrap();
        assert_eq!(manager_status, 403, "managers do not manage gateways");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let password = answer
            .body
            .split("mqtt_password=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the page shows the password")
            .to_owned();
        let (ok, why) = mosquitto_pub(
            port,
            Some(("pi-2", &password)),
            "gatehouse/turnstile/T2/passage",
            r#"{"direction":"in"}"#,
        )
        .await;
        assert!(ok, "{why}");
    });
}

#[test]
fn the_endpoint_also_speaks_mqtt_over_tls_on_the_same_port() {
    let port = free_port();
    let site = secured_site(port, "tls_cert = \"gatehouse.crt\"\ntls_key = \"gatehouse.key\"");
    let (cert, key) = (
        site.dir.path().join("gatehouse.crt"),
        site.dir.path().join("gatehouse.key"),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let password = add_gateway(&site, "pi-1", "T1");
    let journal = site.paths().journal();
    with_app(site.config(), async |_app| {
        let publish = |tls: bool, msg_id: &str| {
            let mut command = Command::new("mosquitto_pub");
            command.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"]);
            command.args(["-u", "pi-1", "-P", &password, "-t", "gatehouse/turnstile/T1/passage"]);
            command.args(["-m", &format!(r#"{{"msg_id":"{msg_id}","direction":"in"}}"#)]);
            if tls {
                command.arg("--cafile").arg(&cert);
            }
            command
        };
        for (tls, msg_id) in [(true, "over-tls"), (false, "plain")] {
            let mut command = publish(tls, msg_id);
            let output = tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "tls {tls}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let recorded = dump(
            &rusqlite::Connection::open(&journal).unwrap(),
            "SELECT causation FROM events WHERE event_type = 'PassageRecorded' ORDER BY position",
        );
        assert_eq!(recorded, ["over-tls", "plain"]);
    });
}

#[test]
fn a_packet_that_trickles_in_for_longer_than_30_s_closes_its_connection() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = false"),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    with_app(site.config(), async |_app| {
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(&raw_connect(4, b't')).unwrap();
            let mut connack = [0u8; 4];
            stream.read_exact(&mut connack).unwrap();
            // The start of a PUBLISH that announces 127 bytes, then nothing (keep-alive is 60 s: 90 s of silence
            // would be allowed, a half-sent packet only 30 s).
            stream.write_all(&[0x32, 0x7F, 0x00]).unwrap();
            let started = std::time::Instant::now();
            stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            assert!(
                read.is_ok() && rest.is_empty(),
                "closed, not timed out: {read:?} {rest:?}"
            );
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_secs(29) && waited < Duration::from_secs(60),
                "{waited:?}"
            );
        })
        .await
        .unwrap();
    });
}

#[test]
fn qos_2_is_refused_and_a_silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let port = free_port();
    let site = Site::with_mqtt(
        &format!("listen = \"127.0.0.1:{port}\"\nrequire_auth = false"),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    with_app(site.config(), async |_app| {
        tokio::task::spawn_blocking(move || {
            // QoS 2: the connection is closed, nothing is recorded.
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(&raw_connect(4, b'q')).unwrap();
            let mut connack = [0u8; 4];
            stream.read_exact(&mut connack).unwrap();
            let topic = b"gatehouse/turnstile/T1/passage";
            let payload = br#"{"direction":"in"}"#;
            let mut publish = vec![0x34, (2 + topic.len() + 2 + payload.len()) as u8, 0, topic.len() as u8];
            publish.extend_from_slice(topic);
            publish.extend_from_slice(&[0x00, 0x07]);
            publish.extend_from_slice(payload);
            stream.write_all(&publish).unwrap();
            assert_eq!(answer(&mut stream), Vec::<u8>::new(), "closed, no PUBREC");

            // Keep-alive 1 s, then silence: closed after 1.5 s, not left open.
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut connect = raw_connect(4, b'k');
            connect[10..12].copy_from_slice(&[0x00, 0x01]);
            stream.write_all(&connect).unwrap();
            stream.read_exact(&mut connack).unwrap();
            let started = std::time::Instant::now();
            assert_eq!(answer(&mut stream), Vec::<u8>::new());
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_millis(1400) && waited < Duration::from_secs(10),
                "{waited:?}"
            );
        })
        .await
        .unwrap();
    });
    assert_eq!(
        query_i64(
            &site.paths().journal(),
            "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'"
        ),
        0
    );
}
