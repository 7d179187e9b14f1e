//! How fast a site forwards its journal to a NATS JetStream cluster, and how fast `gatehouse hq` takes it in, on a
//! real three-node `nats-server` cluster on loopback (R3 stream), in one run:
//!
//! 1. **plain loop** (the baseline the issue names): async-nats publishing documents of the same size one at a
//!    time, each acknowledgement awaited before the next;
//! 2. **plain window**: the same publishes with 256 unacknowledged at once (the best a client can do);
//! 3. **forwarder**: the real forwarder reading the journal, building each CloudEvents document and publishing
//!    with its window, from position 0 to the head;
//! 4. **hq**: the network view's durable consumer committing every document to `hq.db` before acknowledging it.
//!
//! Targets: forwarder ≥ 0.8 × plain loop (the issue's), and reported against the plain window too.
//! `GATEHOUSE_BENCH_EVENTS` (default 20,000) passages. Run with `cargo bench --bench forward`.

mod support;

use support::{env_count, rate, secs};

use async_nats::jetstream;
use gatehouse::codec;
use gatehouse::config::{ForwardConfig, HqConfig, NatsConnection, NatsCredentials, Synchronous};
use gatehouse::db::StoragePaths;
use gatehouse::domain::*;
use gatehouse::journal::{Actor, AppendRequest, JournalWriter};
use jiff::{SignedDuration, Timestamp};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TURNSTILES: usize = 10;
const WINDOW: usize = 256;
const TARGET_RATIO: f64 = 0.8;

struct Cluster {
    children: Vec<Child>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_cluster() -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut children = Vec::new();
    for (i, (port, cluster)) in ports.iter().enumerate() {
        let routes: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (_, c))| format!("nats-route://127.0.0.1:{c}"))
            .collect();
        let config = dir.path().join(format!("n{i}.conf"));
        std::fs::write(
            &config,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: bench, listen: 127.0.0.1:{cluster}, routes: [{}] }}\n",
                dir.path().join(format!("n{i}")).display(),
                routes.join(", ")
            ),
        )?;
        children.push(
            Command::new("nats-server")
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    Ok(Cluster {
        children,
        urls: ports.iter().map(|(p, _)| format!("nats://127.0.0.1:{p}")).collect(),
        _dir: dir,
    })
}

fn main() -> anyhow::Result<()> {
    let events = env_count("GATEHOUSE_BENCH_EVENTS", 20_000)?;
    let cluster = start_cluster()?;
    let dir = tempfile::tempdir()?;
    let paths = StoragePaths::new(dir.path().join("data"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let head = seed(&paths, events).await?;
        let nats = NatsConnection {
            servers: cluster.urls.clone(),
            credentials: NatsCredentials::None,
        };
        let client = gatehouse::forward::nats::connect(&nats, "bench").await?;
        let js = gatehouse::forward::nats::jetstream(client.clone());
        // The meta leader needs a moment after the nodes start.
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            let settings = gatehouse::forward::nats::StreamSettings {
                name: "GATEHOUSE",
                publishes_to: "gatehouse.bench.events",
                subjects: vec!["gatehouse.*.events".into()],
                replicas: 3,
                keep_for: Duration::from_secs(3600),
            };
            match gatehouse::forward::nats::ensure_stream(&js, &settings).await {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(e),
            }
        };
        drop(stream);
        let size = document_size(&paths)?;
        println!("gatehouse forward benchmark: {head} events (documents of about {size} bytes), R3 stream on 3 nodes");

        let plain = plain_loop(&js, "gatehouse.plain.events", events, size, 1).await?;
        let windowed = plain_loop(&js, "gatehouse.window.events", events, size, WINDOW).await?;
        let forwarded = forward(&paths, &nats, head).await?;
        let consumed = consume(dir.path(), &nats, head).await?;

        let per_second = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
        let (plain_rate, window_rate) = (per_second(events as u64, plain), per_second(events as u64, windowed));
        let (forward_rate, hq_rate) = (per_second(head, forwarded), per_second(head, consumed));
        let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
        println!();
        println!("| run | time | events/s |");
        println!("|---|---:|---:|");
        println!(
            "| plain loop (publish, await ack) | {} | {} |",
            secs(plain),
            rate(plain_rate)
        );
        println!(
            "| plain window ({WINDOW} unacknowledged) | {} | {} |",
            secs(windowed),
            rate(window_rate)
        );
        println!(
            "| forwarder (journal → documents → stream) | {} | {} |",
            secs(forwarded),
            rate(forward_rate)
        );
        println!(
            "| hq consumer (stream → hq.db, ack after commit) | {} | {} |",
            secs(consumed),
            rate(hq_rate)
        );
        println!();
        let ratio = forward_rate / plain_rate;
        println!(
            "forwarder / plain loop: {ratio:.2} (target >= {TARGET_RATIO}) {}",
            verdict(ratio >= TARGET_RATIO)
        );
        println!("forwarder / plain window: {:.2}", forward_rate / window_rate);
        println!("hq consumer / forwarder: {:.2}", hq_rate / forward_rate);
        anyhow::Ok(())
    })
}

/// `events` passages over the turnstiles, committed through the real writer.
async fn seed(paths: &StoragePaths, events: usize) -> anyhow::Result<u64> {
    paths.prepare()?;
    let (writer, thread) = JournalWriter::open(&paths.journal(), Synchronous::Normal)?;
    let start = Timestamp::now() - SignedDuration::from_hours(1);
    // Each turnstile's commissioning is its stream's version 1.
    let mut versions = [1u64; TURNSTILES];
    let mut pending = futures_util::stream::FuturesOrdered::new();
    use futures_util::StreamExt;
    for t in 0..TURNSTILES {
        let event = DeviceEvent::Commissioned(Commissioned {
            kind: DeviceKind::Turnstile,
            details: DeviceDetails {
                name: format!("Gate {t}"),
                zone: "Hall A".into(),
                serial: None,
                model: None,
                manufacturer: None,
            },
            watches: vec![],
            at: start,
        });
        pending.push_back(writer.append(AppendRequest {
            stream: StreamName::parse(&format!("T{t}"))?,
            expected_version: 0,
            events: vec![codec::encode_event(&event)],
            causation: None,
            actor: Actor::config(),
            delivery: None,
        }));
    }
    for n in 0..events {
        let t = n % TURNSTILES;
        let event = DeviceEvent::PassageRecorded(PassageRecorded {
            direction: if n % 2 == 0 { Direction::In } else { Direction::Out },
            at: start + SignedDuration::from_millis(n as i64 * 10),
            during_fault: false,
            during_lockout: false,
            seq: Some(n as u64),
        });
        pending.push_back(writer.append(AppendRequest {
            stream: StreamName::parse(&format!("T{t}"))?,
            expected_version: versions[t],
            events: vec![codec::encode_event(&event)],
            causation: Some(format!("bench-{n}")),
            actor: Actor::gateway("bench"),
            delivery: None,
        }));
        versions[t] += 1;
        if pending.len() >= 256
            && let Some(outcome) = pending.next().await
        {
            outcome?;
        }
    }
    while let Some(outcome) = pending.next().await {
        outcome?;
    }
    let head = *writer.committed().borrow();
    drop(writer);
    thread.join();
    Ok(head)
}

/// The size of a typical forwarded document (the baseline publishes the same size).
fn document_size(paths: &StoragePaths) -> anyhow::Result<usize> {
    let reader = gatehouse::journal::JournalReader::open(&paths.journal())?;
    let events = reader.events_after(TURNSTILES as u64, 1)?;
    let stored = events
        .first()
        .ok_or_else(|| anyhow::anyhow!("no passage in the journal"))?;
    let mut devices = gatehouse::forward::cloudevent::Devices::default();
    devices.insert(
        stored.stream_id.id(),
        gatehouse::forward::cloudevent::DeviceContext {
            kind: DeviceKind::Turnstile,
            name: "Gate 0".into(),
            zone: "Hall A".into(),
        },
    );
    let site = gatehouse::forward::cloudevent::SiteIdentity {
        id: "bench".into(),
        timezone: "Europe/Berlin".into(),
    };
    let vault = gatehouse::privacy::SubjectVault::open(&paths.journal())?;
    let mut mentions = gatehouse::forward::cloudevent::Mentions::default();
    Ok(
        gatehouse::forward::cloudevent::document(&site, stored, &devices, &mut mentions, &vault)
            .to_string()
            .len(),
    )
}

/// async-nats alone: `count` messages of `size` bytes with message ids, `window` unacknowledged at most.
async fn plain_loop(
    js: &jetstream::Context,
    subject: &str,
    count: usize,
    size: usize,
    window: usize,
) -> anyhow::Result<Duration> {
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for n in 0..count {
        let ack = js
            .send_publish(
                subject.to_owned(),
                jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(format!("{subject}:{n}")),
            )
            .await?;
        acks.push_back(ack);
        if acks.len() >= window
            && let Some(ack) = acks.pop_front()
        {
            ack.await?;
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(started.elapsed())
}

/// The real forwarder from position 0 until the stream confirmed the head.
async fn forward(paths: &StoragePaths, nats: &NatsConnection, head: u64) -> anyhow::Result<Duration> {
    let (_tx, committed) = tokio::sync::watch::channel(head);
    let status = Arc::new(gatehouse::forward::ForwardStatus::default());
    let started = Instant::now();
    let task = gatehouse::forward::Forwarder {
        config: ForwardConfig {
            nats: nats.clone(),
            stream: "GATEHOUSE".into(),
            subject: "gatehouse.bench.events".into(),
            replicas: 3,
            keep_for: Duration::from_secs(3600),
            heartbeat_every: Duration::from_secs(30),
        },
        site: gatehouse::forward::cloudevent::SiteIdentity {
            id: "bench".into(),
            timezone: "Europe/Berlin".into(),
        },
        journal_path: paths.journal(),
        vault: gatehouse::privacy::SubjectVault::open(&paths.journal())?,
        committed,
        status: status.clone(),
    }
    .spawn();
    let deadline = Instant::now() + Duration::from_secs(600);
    while status.progress().forwarded_up_to < head {
        if let Some(stopped) = status.progress().stopped {
            anyhow::bail!("the forwarder stopped: {stopped}");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the forwarder did not finish: {:?}",
            status.progress()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    task.abort();
    Ok(elapsed)
}

/// The network view's consumer from the stream's start until it applied the site's head.
async fn consume(dir: &std::path::Path, nats: &NatsConnection, head: u64) -> anyhow::Result<Duration> {
    let hq_db = dir.join("hq.db");
    let status = Arc::new(gatehouse::hq::ConsumerStatus::default());
    let started = Instant::now();
    let task = tokio::spawn(gatehouse::hq::consume(
        HqConfig {
            nats: nats.clone(),
            stream: "GATEHOUSE".into(),
            subjects: "gatehouse.bench.events".into(),
            durable: "bench-hq".into(),
        },
        hq_db.clone(),
        status,
    ));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let applied: i64 = rusqlite::Connection::open(&hq_db)
            .and_then(|c| c.query_row("SELECT COALESCE(MAX(applied_up_to), 0) FROM sites", [], |r| r.get(0)))
            .unwrap_or(0);
        if applied as u64 >= head {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the consumer applied {applied} of {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    task.abort();
    Ok(elapsed)
}
