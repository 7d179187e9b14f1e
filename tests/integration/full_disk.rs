//! When the journal cannot write (a full disk, a dead writer), nothing is acknowledged and nothing acknowledged is
//! lost: the embedded endpoint hangs up unacknowledged, the external subscription re-opens its session, `/healthz`
//! says why, and ingestion resumes by itself once the journal can write again. The full disk is real: a small
//! tmpfs mounted over the data directory and filled up (`scripts/soak` runs many fill/free cycles).

use crate::helpers::*;
use crate::load::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ONE_TURNSTILE: &str = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";

/// Caps journal.db at its current size, so commits that need another page fail with "database or disk is full".
fn cap_journal(state: &gatehouse::web::AppState) {
    let pages = query_i64(&state.paths.journal(), "PRAGMA page_count");
    state.writer.set_max_page_count(pages as u64);
}

#[test]
fn a_journal_failure_closes_embedded_connections_unacknowledged_and_the_resent_messages_are_recorded_once() {
    let site = Site::new(ONE_TURNSTILE);
    with_app(site.config(), async |app| {
        let state = app.state();
        let endpoint = state.embedded_mqtt.clone().expect("embedded endpoint");
        cap_journal(state);
        let gateway = Gateway::sending(app.mqtt_addr().unwrap().port(), 3000);
        // The first commit that needs a page fails; every connection sending then is closed, so the gateway
        // keeps coming back with what it has not had acknowledged.
        eventually("the gateway was hung up on and reconnected", || {
            state.writer_stats.failing().is_some() && endpoint.connections.load(Ordering::Relaxed) >= 3
        })
        .await;
        // A small group may still fit in a page's free space, so acknowledgements slow to a trickle rather than
        // stop at once (the tmpfs test below shows them stop); what must hold is that each one was committed.
        assert!(gateway.acked() < 3000, "the cap never bit");
        assert_acknowledged_count_recorded(&site, &gateway);
        let failing = state.writer_stats.failing().unwrap_or_default();
        assert!(failing.contains("the disk is full"), "{failing}");
        // Room again: the gateway's re-sends go through, each message once.
        state.writer.set_max_page_count(u32::MAX as u64);
        tokio::task::spawn_blocking(move || gateway.finish()).await.unwrap();
        assert_eq!(state.writer_stats.failing(), None);
    });
    assert_messages_recorded_once(&site, 3000);
}

#[test]
fn a_journal_failure_reopens_the_external_session_and_the_broker_redelivers_what_was_not_acknowledged() {
    let broker = Mosquitto::start();
    let site = Site::with_mqtt(&format!("broker = \"{}\"", broker.url()), ONE_TURNSTILE);
    let journal = site.paths().journal();
    with_app(site.config(), async |app| {
        let state = app.state();
        let status = app.external_status().expect("external mode");
        // Wait until the subscription is in place (a probe is recorded), then cap the journal.
        let port = broker.port;
        let probe_journal = journal.clone();
        tokio::task::spawn_blocking(move || sentinel_recorded(port, &probe_journal, "T1"))
            .await
            .unwrap();
        cap_journal(state);
        let gateway = Gateway::sending(port, 3000);
        eventually("gatehouse re-opened its session after failing to commit", || {
            state.writer_stats.failing().is_some() && status.reconnects.load(Ordering::Relaxed) >= 2
        })
        .await;
        let recorded = query_i64(&journal, "SELECT COUNT(*) FROM events");
        assert!(recorded < 3000, "the cap never bit: {recorded} events recorded");
        state.writer.set_max_page_count(u32::MAX as u64);
        // Mosquitto took every message from the gateway; now it redelivers until gatehouse has all of them.
        tokio::task::spawn_blocking(move || gateway.finish()).await.unwrap();
        let sentinel_journal = journal.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while query_i64(
                &sentinel_journal,
                "SELECT COUNT(*) FROM events WHERE causation LIKE 'crash-%' AND event_type = 'PassageRecorded'",
            ) < 3000
            {
                assert!(
                    Instant::now() < deadline,
                    "not every message was redelivered and recorded"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            // Anything still on its way arrives before this one.
            sentinel_recorded(port, &sentinel_journal, "T1");
        })
        .await
        .unwrap();
    });
    assert_messages_recorded_once(&site, 3000);
}

#[test]
fn a_stopped_journal_writer_is_named_on_healthz_and_gets_no_message_acknowledged() {
    let port = free_port();
    let site = Site::with_mqtt(&format!("listen = \"127.0.0.1:{port}\""), ONE_TURNSTILE);
    with_server(site.config(), async |state, addr| {
        assert_eq!(get(addr, "/healthz").await.0, 200);
        state.writer.stop();
        // The writer's end drops the head's sender: that is what /healthz looks at.
        eventually("the writer thread ended", || state.committed.has_changed().is_err()).await;
        let (status, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("journal: writer has stopped"), "{body}");
        // A gateway's message gets no PUBACK: the endpoint hangs up and the gateway keeps it.
        let outcome = tokio::task::spawn_blocking(move || {
            let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            use std::io::{Read, Write};
            // CONNECT (MQTT 3.1.1, clean session, client id "g"), then a QoS 1 PUBLISH with packet id 1.
            client
                .write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'g'])
                .unwrap();
            let topic = b"gatehouse/turnstile/T1/passage";
            let payload = br#"{"msg_id":"after-stop","direction":"in"}"#;
            let mut publish = vec![0x32, (2 + topic.len() + 2 + payload.len()) as u8, 0, topic.len() as u8];
            publish.extend_from_slice(topic);
            publish.extend_from_slice(&[0, 1]);
            publish.extend_from_slice(payload);
            client.write_all(&publish).unwrap();
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer);
            answer
        })
        .await
        .unwrap();
        // CONNACK (accepted) and then DISCONNECT: never a PUBACK (0x40).
        assert_eq!(&outcome[..4], &[0x20, 0x02, 0x00, 0x00], "{outcome:?}");
        assert!(
            !outcome[4..].starts_with(&[0x40]),
            "a PUBACK with no writer to commit it: {outcome:?}"
        );
    });
    assert_eq!(
        query_i64(
            &site.paths().journal(),
            "SELECT COUNT(*) FROM events WHERE causation = 'after-stop'"
        ),
        0
    );
}

/// A tmpfs of `megabytes` mounted on `dir` for the test's life (the tests run as root, as `scripts/test` does).
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(dir: &std::path::Path, megabytes: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount is installed");
        assert!(
            mounted.status.success(),
            "cannot mount a tmpfs (the full-disk test needs root): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        Tmpfs { dir: dir.to_owned() }
    }

    /// Grows a filler file until the filesystem says it is full (big writes first, then small ones for the rest).
    fn fill(dir: &std::path::Path) {
        use std::io::Write;
        let mut filler = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("filler"))
            .unwrap();
        for size in [1024 * 1024, 4096] {
            let chunk = vec![0u8; size];
            while filler.write_all(&chunk).and_then(|_| filler.sync_all()).is_ok() {}
        }
    }

    /// Fills the filesystem and keeps it full, as another program writing would: space SQLite gives back (a
    /// write-ahead log truncated) is taken again within milliseconds. Dropping the guard frees it all.
    fn keep_full(&self) -> Filler {
        Tmpfs::fill(&self.dir);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let dir = self.dir.clone();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_millis(5)) {
                Tmpfs::fill(&dir);
            }
            std::fs::remove_file(dir.join("filler")).unwrap();
        });
        Filler {
            stop,
            thread: Some(thread),
        }
    }
}

/// The filesystem kept full; see [`Tmpfs::keep_full`].
struct Filler {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// How many fill/free cycles: 1 in the tests, more from `scripts/soak` (`GATEHOUSE_SOAK_FULL_DISKS`).
fn cycles() -> u64 {
    std::env::var("GATEHOUSE_SOAK_FULL_DISKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[test]
fn a_full_disk_stops_pubacks_loses_nothing_and_ingestion_resumes_by_itself_when_space_is_freed() {
    let (mqtt, http_port) = (free_port(), free_port());
    let site = Site::new("");
    std::fs::write(
        site.config_path(),
        format!(
            "[site]\nname = \"Full Disk\"\ntimezone = \"Europe/Berlin\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
             [storage]\ndir = \"data\"\n\n[mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nrequire_auth = false\n\n{ONE_TURNSTILE}"
        ),
    )
    .unwrap();
    // Roomy enough for the write-ahead logs to grow between two truncations while the backlog pours in after
    // the disk was freed (see `gatehouse::checkpointer`), small enough to fill in a moment.
    let disk = Tmpfs::mount(&site.paths().dir, 128);
    let server = Server::start(&site);
    wait_for_port(mqtt);
    wait_for_port(http_port);
    let web: std::net::SocketAddr = ([127, 0, 0, 1], http_port).into();
    let healthz = || http(web, "GET", "/healthz", &[], "");
    // Before: a thousand messages recorded while there is room.
    Gateway::sending(mqtt, 1000).finish();
    let cycles = cycles();
    const PER_CYCLE: u64 = 2000;
    for cycle in 0..cycles {
        // An emptied write-ahead log must grow for the next commit, so the full disk bites at once rather than
        // after the space a log keeps for reuse is used up.
        for db in [site.paths().journal(), site.paths().views()] {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        let filler = disk.keep_full();
        let gateway = Gateway::sending_from(mqtt, 1000 + cycle * PER_CYCLE, PER_CYCLE);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let health = healthz();
            if health.status == 503 && health.body.contains("journal: cannot write: the disk is full") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: the full disk never showed on /healthz ({} of {PER_CYCLE} acknowledged): {} {}",
                gateway.acked(),
                health.status,
                health.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // A commit may still squeeze into space a log had kept; then PUBACKs stop for good.
        let deadline = Instant::now() + Duration::from_secs(60);
        let acked = loop {
            let acked = gateway.acked();
            std::thread::sleep(Duration::from_millis(1500));
            if gateway.acked() == acked {
                break acked;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: PUBACKs never stopped while the disk was full"
            );
        };
        assert!(
            acked < PER_CYCLE,
            "cycle {cycle}: everything was acknowledged while the disk was full"
        );
        assert_eq!(healthz().status, 503, "cycle {cycle}: /healthz while the disk is full");
        assert_acknowledged_count_recorded(&site, &gateway);
        // Room again, and nothing else to do: the writer's next commit works, the gateway's re-sends go through.
        drop(filler);
        gateway.finish();
    }
    let messages = 1000 + cycles * PER_CYCLE;
    let deadline = Instant::now() + Duration::from_secs(60);
    while healthz().status != 200 {
        assert!(
            Instant::now() < deadline,
            "/healthz never recovered: {}",
            healthz().body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    for db in [site.paths().journal(), site.paths().views()] {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "{}", db.display());
    }
    assert_messages_recorded_once(&site, messages);
    drop(disk);
    println!(
        "soak: full disk, {cycles} fill/free cycles under QoS 1 load: {messages} messages sent, {messages} counted"
    );
}
