//! A real `gatehouse serve` process that tests can kill, and a real gateway (rumqttc, QoS 1, persistent session)
//! publishing thousands of passages and re-sending whatever was not acknowledged: the load under which the crash,
//! soak and full-disk tests prove that nothing acknowledged is lost or counted twice.

use crate::helpers::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `gatehouse serve` as a separate process, so it can be killed for real.
pub struct Server {
    site_dir: std::path::PathBuf,
    /// `serve`, or `hq` for the network view.
    command: &'static str,
    child: Option<Child>,
}

impl Server {
    pub fn start(site: &Site) -> Server {
        Server::start_in(site.dir.path(), "serve")
    }

    /// `gatehouse COMMAND` with `dir/config.toml`.
    pub fn start_in(dir: &std::path::Path, command: &'static str) -> Server {
        let mut server = Server {
            site_dir: dir.to_owned(),
            command,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .current_dir(&self.site_dir)
            .arg(self.command)
            .stdout(Stdio::null())
            // Every run's log in one file, shown if the test fails (a hang is otherwise silent).
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.site_dir.join("serve.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown code runs, whatever was mid-transaction is rolled back by SQLite.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGKILL, and stay down until [`Server::spawn`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Server {
    /// Sends `signal` (`TERM`, `INT`) as a service manager or Ctrl-C would, and waits for the process to end.
    pub fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 60 s of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.site_dir.join("serve.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- the server's log, last lines ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Packet ids the test gateway's client may have in flight.
const INFLIGHT: u16 = 50;

/// A gateway publishing `MESSAGES` passages with QoS 1 on its own thread; counts PUBACKs.
pub struct Gateway {
    first: u64,
    messages: u64,
    acked: Arc<AtomicU64>,
    /// Which messages (by index) have been acknowledged: packet ids are matched to messages as they go out.
    pub acked_messages: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// A gateway publishing `messages` passages, `crash-0` onwards.
    pub fn sending(port: u16, messages: u64) -> Gateway {
        Gateway::sending_from(port, 0, messages)
    }

    /// A gateway (a client id of its own) publishing `messages` passages, `crash-{first}` onwards.
    pub fn sending_from(port: u16, first: u64, messages: u64) -> Gateway {
        let acked = Arc::new(AtomicU64::new(0));
        let counter = acked.clone();
        let acked_messages = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let which = acked_messages.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut options = MqttOptions::new(format!("crash-gateway-{first}"), "127.0.0.1", port);
                // A persistent session: after a reconnect the client re-sends every unacknowledged message.
                options.set_clean_session(false);
                options.set_keep_alive(Duration::from_secs(5));
                options.set_inflight(INFLIGHT);
                let (client, mut eventloop) = AsyncClient::new(options, 100);
                // Never more unacknowledged messages than packet ids: rumqttc 0.25 re-sends what was in flight
                // and in its request channel after a reconnect without checking its window, and a message whose
                // packet id collides with one still in flight is stashed in a single slot that the next collision
                // overwrites, so a backlog larger than the window lost a message now and then (bytebeamio/rumqtt
                // #1056 is the same slot). A gateway losing messages would make the server look guilty.
                let window = Arc::new(tokio::sync::Semaphore::new(usize::from(INFLIGHT) - 10));
                let permits = window.clone();
                // Publishing and polling in separate tasks (rumqttc #263).
                tokio::spawn(async move {
                    for i in first..first + messages {
                        match permits.acquire().await {
                            Ok(permit) => permit.forget(),
                            Err(_) => return,
                        }
                        let payload = format!(r#"{{"msg_id":"crash-{i}","direction":"in"}}"#);
                        if client
                            .publish("gatehouse/turnstile/T1/passage", QoS::AtLeastOnce, false, payload)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                // Long enough for a soak's hundred restarts; it ends as soon as everything is acknowledged.
                let deadline = Instant::now() + Duration::from_secs(1800);
                // A packet id in flight names the message it was first sent with; a re-send reuses it.
                let (mut in_flight, mut next) = (std::collections::HashMap::new(), first);
                while counter.load(Ordering::SeqCst) < messages && Instant::now() < deadline {
                    match eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                            in_flight.entry(pkid).or_insert_with(|| {
                                next += 1;
                                next - 1
                            });
                        }
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            window.add_permits(1);
                            if let Some(message) = in_flight.remove(&ack.pkid) {
                                which.lock().unwrap().insert(message);
                            }
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        // The server or broker is gone: wait a little and reconnect on the next poll.
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
        });
        Gateway {
            first,
            messages,
            acked,
            acked_messages,
            thread: Some(thread),
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn wait_until_acked(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} messages acknowledged; {}",
                self.acked(),
                {
                    let acked = self.acked_messages.lock().unwrap();
                    let missing: Vec<u64> = (self.first..self.first + self.messages)
                        .filter(|m| !acked.contains(m))
                        .take(5)
                        .collect();
                    format!("{} matched to a message; not acknowledged: {missing:?}", acked.len())
                }
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn finish(mut self) {
        self.wait_until_acked(self.messages);
        self.thread.take().unwrap().join().unwrap();
    }
}

pub fn assert_messages_recorded_once(site: &Site, messages: u64) {
    let journal = site.paths().journal();
    let passages = query_i64(
        &journal,
        "SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded' AND causation LIKE 'crash-%'",
    );
    let distinct = query_i64(
        &journal,
        "SELECT COUNT(DISTINCT causation) FROM events WHERE event_type = 'PassageRecorded' AND causation LIKE 'crash-%'",
    );
    assert_eq!(
        (passages, distinct),
        (messages as i64, messages as i64),
        "passages counted = messages sent"
    );
}

/// At least as many of the gateway's messages are in the journal as it saw acknowledged. After many reconnects
/// rumqttc hands a packet id still waiting to be re-sent to a new message too (its in-flight table is emptied on
/// each disconnect), so which message an acknowledgement belonged to is only known for a connection that never
/// dropped ([`assert_acknowledged_recorded`]); the count holds regardless.
pub fn assert_acknowledged_count_recorded(site: &Site, gateway: &Gateway) {
    let acked = gateway.acked() as i64;
    let (first, last) = (gateway.first, gateway.first + gateway.messages);
    let recorded = query_i64(
        &site.paths().journal(),
        &format!(
            "SELECT COUNT(DISTINCT causation) FROM events WHERE event_type = 'PassageRecorded' \
             AND CAST(substr(causation, 7) AS INTEGER) BETWEEN {first} AND {last} - 1 AND causation LIKE 'crash-%'"
        ),
    );
    assert!(
        recorded >= acked,
        "{acked} acknowledged but only {recorded} in the journal"
    );
}

/// Every message the gateway saw acknowledged is in the journal, message by message.
pub fn assert_acknowledged_recorded(site: &Site, gateway: &Gateway) {
    let acked: Vec<u64> = gateway.acked_messages.lock().unwrap().iter().copied().collect();
    // One read of the journal's causations (an indexed lookup per message would scan the table each time).
    let recorded: std::collections::HashSet<String> = dump(
        &rusqlite::Connection::open(site.paths().journal()).unwrap(),
        "SELECT causation FROM events WHERE event_type = 'PassageRecorded'",
    )
    .into_iter()
    .collect();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|i| !recorded.contains(&format!("crash-{i}")))
        .collect();
    assert!(!acked.is_empty());
    assert_eq!(
        missing,
        Vec::<u64>::new(),
        "acknowledged but not in the journal (of {})",
        acked.len()
    );
}
