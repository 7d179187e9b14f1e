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
        eventually("gatehouse is connected to mosquitto", || status.connected()).await;
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
        eventually("connected", || status.connected()).await;
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

#[test]
fn an_external_broker_over_tls_with_credentials_is_subscribed_and_its_messages_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, passwd) = (
        dir.path().join("broker.crt"),
        dir.path().join("broker.key"),
        dir.path().join("passwd"),
    );
    // A CA and a broker certificate it signed (webpki refuses a self-signed CA certificate used as the server's).
    let (ca, ca_key, csr) = (
        dir.path().join("ca.crt"),
        dir.path().join("ca.key"),
        dir.path().join("broker.csr"),
    );
    let ext = dir.path().join("broker.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let made = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (scripts/test installs it)");
        assert!(
            made.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].map(std::ffi::OsStr::new);
    let os = std::ffi::OsStr::new;
    openssl(
        &[
            &[
                os("req"),
                os("-x509"),
                os("-days"),
                os("2"),
                os("-subj"),
                os("/CN=gatehouse test CA"),
            ][..],
            &ec,
            &[os("-keyout"), ca_key.as_os_str(), os("-out"), ca.as_os_str()],
        ]
        .concat(),
    );
    openssl(
        &[
            &[os("req"), os("-subj"), os("/CN=localhost")][..],
            &ec,
            &[os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()],
        ]
        .concat(),
    );
    openssl(&[
        os("x509"),
        os("-req"),
        os("-days"),
        os("2"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    for (n, (user, password)) in [("gatehouse", "site-secret"), ("gw", "gateway-secret")]
        .iter()
        .enumerate()
    {
        let mut command = std::process::Command::new("mosquitto_passwd");
        command.arg("-b");
        if n == 0 {
            command.arg("-c");
        }
        let made = command.arg(&passwd).args([user, password]).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\nallow_anonymous false\npassword_file {}\n\
             user root\nmax_inflight_messages 0\n",
            cert.display(),
            key.display(),
            passwd.display()
        ),
    )
    .unwrap();
    let mut broker = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto is installed");
    wait_for_port(port);

    let site = Site::with_mqtt(
        &format!("broker = \"mqtts://localhost:{port}\"\nusername = \"gatehouse\"\npassword = \"site-secret\""),
        TWO_TURNSTILES_ONE_CAMERA,
    );
    // The broker's certificate is trusted the way an operator would: through the system's certificate store,
    // which SSL_CERT_FILE names.
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(site.dir.path())
        .arg("serve")
        .env("SSL_CERT_FILE", &ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = site.paths().journal();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut n = 0;
    while try_query_i64(
        &journal,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'",
    )
    .unwrap_or(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "gatehouse never recorded a message from the TLS broker"
        );
        // Published until gatehouse has subscribed (messages before that have no session to wait in).
        let published = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-u",
                "gw",
                "-P",
                "gateway-secret",
            ])
            .arg("--cafile")
            .arg(&ca)
            .args([
                "-t",
                "gatehouse/turnstile/T1/passage",
                "-m",
                &format!(r#"{{"msg_id":"tls-{n}","direction":"in"}}"#),
            ])
            .output()
            .unwrap();
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
        n += 1;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    let actors = dump(
        &rusqlite::Connection::open(&journal).unwrap(),
        "SELECT DISTINCT actor FROM events WHERE event_type = 'PassageRecorded'",
    );
    assert_eq!(actors, ["broker:localhost"]);
}
