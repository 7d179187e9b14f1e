//! End-to-end durable ingestion over MQTT: QoS 1 passages from gateway-like publishers (rumqttc, one thread and
//! current-thread runtime each) until they are durable in the journal (`synchronous = full`), in one run:
//!
//! 1. **embedded**: publishers connect to gatehouse's own endpoint, which acknowledges a message only after the
//!    journal committed it, so the rate is PUBACKs received per second from the first publish to the last PUBACK;
//! 2. **mosquitto alone**: the same publishers publish to a fresh `mosquitto`, a plain QoS 1 subscriber counts what
//!    it receives; this is the ceiling an external broker puts on ingestion on this machine;
//! 3. **external**: gatehouse subscribes at another fresh `mosquitto` and the same publishers publish there; the
//!    rate is messages committed (and acknowledged to the broker) per second from the first publish. Phases 2 and
//!    3 alternate for `GATEHOUSE_BENCH_ROUNDS` rounds (default 5) with Mosquitto's window unlimited, then as many
//!    at its default (20); the ratio is of the two medians (one run of either varies by ±15 % on two busy cores).
//!    Gatehouse runs with its default `subscriber_sessions` (2); `GATEHOUSE_BENCH_SESSIONS` sets another;
//! 4. **latency at 1,000 messages/s** (embedded): one paced publisher; per message the time from publish to its
//!    PUBACK (durable) and to the moment every projector has applied its journal position (visible in the read
//!    models, `device_status` and `traffic`).
//!
//! 5. **fault-heavy, policies off and on** (embedded): a stream where every fifth message is a fault or its clear,
//!    with the maintenance policy opening and annotating work orders, against the same stream with no policies.
//! 6. **watched recognitions** (embedded): a stream where every tenth message is a camera recognizing one of 50
//!    subjects, with those subjects on the watch list (alarms raised and counted) against an empty watch list;
//!    and, paced at 20 recognitions/s of distinct watched subjects, the time from publish to the signed webhook
//!    arriving at a receiver in the bench.
//!
//! Every run checks the journal holds exactly the passages sent. Needs `mosquitto` and `mosquitto_pub` on PATH.
//!
//! Run with `cargo bench --bench ingest`; `GATEHOUSE_BENCH_MESSAGES` (default 200,000),
//! `GATEHOUSE_BENCH_PUBLISHERS` (default 4), `GATEHOUSE_BENCH_LATENCY_SECS` (default 10) and `GATEHOUSE_BENCH_ROUNDS`
//! (default 5) change the size.

mod support;

use support::{env_count, ms, peak_rss, rate, secs};

use anyhow::{Context, anyhow, ensure};
use gatehouse::app::Application;
use gatehouse::config::Config;
use gatehouse::db::StoragePaths;
use gatehouse::journal::Position;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, watch};

/// Turnstiles in the site; message `g` goes to `T{g % DEVICES}`, so every device actor has work.
const DEVICES: usize = 100;
/// QoS 1 messages each publisher keeps unacknowledged: just under the embedded endpoint's `MAX_IN_FLIGHT` (1024),
/// so the endpoint never stops reading a connection, and deep enough to fill the writer's commit groups.
const PUBLISHER_INFLIGHT: u16 = 1000;
/// Targets: embedded ingestion durable at 40k events/s on 2 cores; through Mosquitto at least 80% of what
/// Mosquitto alone delivers to one subscriber, with its in-flight window unlimited and at its default.
const TARGET_EMBEDDED: f64 = 40_000.0;
const TARGET_EXTERNAL_RATIO: f64 = 0.8;
/// Durable ingestion of a fault-heavy stream with the policies running, against the same without them.
const TARGET_POLICY_RATIO: f64 = 0.9;
/// Durable ingestion with 10 % watched recognitions, against the same stream with an empty watch list.
const TARGET_WATCHED_RATIO: f64 = 0.9;
/// The latency run's pace.
const LATENCY_RATE: u64 = 1000;
/// Cameras in the site (C0…), for the recognitions of the watched-recognitions runs.
const CAMERAS: usize = 10;
/// Distinct subjects the watched-recognitions stream names, all on the watch list in the watched runs.
const WATCHED_SUBJECTS: usize = 50;
/// The webhook latency run: recognitions of distinct watched subjects per second, and how many.
const ALARM_RATE: u64 = 20;
const ALARM_MESSAGES: usize = 200;
/// Upper bound on any single wait, so a stuck run fails with a message instead of hanging.
const DEADLINE: Duration = Duration::from_secs(300);

fn main() -> anyhow::Result<()> {
    let n = env_count("GATEHOUSE_BENCH_MESSAGES", 200_000)?;
    let k = env_count("GATEHOUSE_BENCH_PUBLISHERS", 4)?;
    let latency_secs = env_count("GATEHOUSE_BENCH_LATENCY_SECS", 10)?;
    let rounds = env_count("GATEHOUSE_BENCH_ROUNDS", 5)?;
    ensure!(
        n >= DEVICES && k > 0 && latency_secs > 0 && rounds > 0,
        "GATEHOUSE_BENCH_MESSAGES must be at least {DEVICES}, the other sizes at least 1"
    );

    println!(
        "gatehouse ingest benchmark: {n} QoS 1 passages from {k} publishers over {DEVICES} turnstiles, \
         synchronous = full; external broker: subscriber_sessions = {}",
        std::env::var("GATEHOUSE_BENCH_SESSIONS").unwrap_or_else(|_| "default".into())
    );
    // Peak RSS after each phase shows which one grew the process.
    let only = std::env::var("GATEHOUSE_BENCH_ONLY").unwrap_or_default();
    let phase = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    if !only.is_empty() {
        return phases(n, k, latency_secs, rounds, &phase);
    }
    let embedded = embedded(n, k)?;
    println!("  embedded done in {} (peak RSS {})", secs(embedded.wall), peak_rss());
    let unlimited = external_rounds(n, k, Window::Unlimited, rounds)?;
    println!(
        "  mosquitto alone and external, window unlimited, {rounds} rounds done (peak RSS {})",
        peak_rss()
    );
    let default = external_rounds(n, k, Window::Default, rounds)?;
    println!(
        "  mosquitto alone and external, window 20, {rounds} rounds done (peak RSS {})",
        peak_rss()
    );
    let latency = latency(latency_secs * LATENCY_RATE as usize)?;
    println!("  latency done (peak RSS {})", peak_rss());
    // Policies off and on, alternately, twice each; the better run of each (the noise is the machine's).
    let mut without = Vec::new();
    let mut with = Vec::new();
    for (round, (off, on)) in [("nopol-a", "pol-a"), ("nopol-b", "pol-b")].into_iter().enumerate() {
        without.push(fault_heavy_run(n, k, false, off)?);
        with.push(fault_heavy_run(n, k, true, on)?);
        println!("  fault-heavy round {} done (peak RSS {})", round + 1, peak_rss());
    }
    let best = |runs: Vec<WithPolicies>| {
        runs.into_iter()
            .max_by(|a, b| a.ingest.rate().total_cmp(&b.ingest.rate()))
            .expect("two runs")
    };
    let (without, with) = (best(without), best(with));
    let policy_ratio = with.ingest.rate() / without.ingest.rate();
    let (unwatched, watched, alarms) = watched_rounds(n, k)?;
    let watched_ratio = watched.ingest.rate() / unwatched.ingest.rate();
    let to_webhook = alarm_latency(ALARM_MESSAGES)?;
    println!("  alarms done (peak RSS {})", peak_rss());

    println!();
    println!("N (messages)          {n:>12}");
    println!("K (publishers)        {k:>12}");
    println!("publisher in-flight   {PUBLISHER_INFLIGHT:>12}");
    println!();
    row(["measurement", "messages", "wall", "events/s", "target", ""]);
    row([
        "embedded (PUBACK = durable)",
        &embedded.messages.to_string(),
        &secs(embedded.wall),
        &rate(embedded.rate()),
        &format!(">= {}", rate(TARGET_EMBEDDED)),
        verdict(embedded.rate() >= TARGET_EMBEDDED),
    ]);
    external_rows(
        (
            "mosquitto alone (received)",
            "external (durable)",
            "ratio external / mosquitto",
        ),
        &unlimited,
        true,
    );
    external_rows(
        (
            "mosquitto alone, window 20",
            "external, window 20",
            "ratio external / mosquitto, 20",
        ),
        &default,
        false,
    );
    println!(
        "  medians of {rounds} alternating rounds; ratio per round {} (unlimited window), {} (window 20)",
        unlimited.ratio_range(),
        default.ratio_range()
    );
    println!(
        "  events per journal commit: {:.0} (unlimited window), {:.0} (window 20); read tables caught up {} and {} \
         after the last commit",
        unlimited.external.mean_group,
        default.external.mean_group,
        secs(unlimited.external.views_caught_up_after),
        secs(default.external.views_caught_up_after)
    );
    row([
        "fault-heavy, no policies",
        &without.ingest.messages.to_string(),
        &secs(without.ingest.wall),
        &rate(without.ingest.rate()),
        "",
        "",
    ]);
    row([
        "fault-heavy, policies on",
        &with.ingest.messages.to_string(),
        &secs(with.ingest.wall),
        &rate(with.ingest.rate()),
        "",
        "",
    ]);
    row([
        "ratio policies on / off",
        "",
        "",
        &format!("{policy_ratio:.3}"),
        &format!(">= {TARGET_POLICY_RATIO}"),
        verdict(policy_ratio >= TARGET_POLICY_RATIO),
    ]);
    println!(
        "  with policies: {} work orders opened; the policy had acted on everything {} after the last PUBACK",
        with.work_orders,
        with.caught_up_after.map(secs).unwrap_or_default()
    );
    for (name, m) in [
        ("10 % recognitions, none watched", &unwatched.ingest),
        ("10 % recognitions, all watched", &watched.ingest),
    ] {
        row([name, &m.messages.to_string(), &secs(m.wall), &rate(m.rate()), "", ""]);
    }
    row([
        "ratio watched / unwatched",
        "",
        "",
        &format!("{watched_ratio:.3}"),
        &format!(">= {TARGET_WATCHED_RATIO}"),
        verdict(watched_ratio >= TARGET_WATCHED_RATIO),
    ]);
    println!(
        "  watched: {alarms} alarms raised, counting every sighting; the alarms policy had every event {} after \
         the last PUBACK (none watched: {})",
        secs(watched.caught_up_after),
        secs(unwatched.caught_up_after)
    );
    println!();
    println!(
        "latency at {} messages/s, embedded, {} messages:",
        rate(LATENCY_RATE as f64),
        latency.messages
    );
    row(["", "", "p50", "p99", "max", ""]);
    for (name, sample) in [
        ("publish -> PUBACK (durable)", &latency.acked),
        ("publish -> visible in views", &latency.visible),
    ] {
        row([name, "", &ms(sample.p50), &ms(sample.p99), &ms(sample.max), ""]);
    }
    println!();
    println!("watched recognition -> signed webhook received, {ALARM_RATE}/s, {ALARM_MESSAGES} alarms:");
    row(["", "", "p50", "p99", "max", ""]);
    row([
        "publish -> webhook",
        "",
        &ms(to_webhook.p50),
        &ms(to_webhook.p99),
        &ms(to_webhook.max),
        "",
    ]);
    println!();
    println!(
        "peak RSS (gatehouse and publishers; mosquitto not included): {}",
        peak_rss()
    );
    Ok(())
}

/// Only the phases `GATEHOUSE_BENCH_ONLY` names (comma-separated: external, latency, policies, alarms), each printed as it ends: for
/// working on one figure without waiting for the others.
fn phases(n: usize, k: usize, latency_secs: usize, rounds: usize, phase: &dyn Fn(&str) -> bool) -> anyhow::Result<()> {
    if phase("external") {
        // The external path against Mosquitto's own relay rate, with an unlimited window and with the default
        // one (20 messages in flight per session, what operators run).
        for window in [Window::Unlimited, Window::Default] {
            let rounds = external_rounds(n, k, window, rounds)?;
            println!(
                "{window:?} window: mosquitto alone {} events/s, external (durable) {} events/s: ratio {:.3} \
                 (medians; per round {}; {:.0} events per commit; read tables caught up {} after the last commit)",
                rate(rounds.relay.rate()),
                rate(rounds.external.durable.rate()),
                rounds.ratio(),
                rounds.ratio_range(),
                rounds.external.mean_group,
                secs(rounds.external.views_caught_up_after)
            );
        }
    }
    if phase("latency") {
        let latency = latency(latency_secs * LATENCY_RATE as usize)?;
        for (name, sample) in [
            ("publish -> PUBACK", &latency.acked),
            ("publish -> visible", &latency.visible),
        ] {
            println!(
                "{name:<20} p50 {} p99 {} max {}",
                ms(sample.p50),
                ms(sample.p99),
                ms(sample.max)
            );
        }
    }
    if phase("alarms") {
        let (unwatched, watched, alarms) = watched_rounds(n, k)?;
        println!(
            "10 % recognitions: none watched {} events/s, all watched {} events/s ({alarms} alarms): ratio {:.3}; \
             alarms policy caught up {} after the last PUBACK (none watched: {})",
            rate(unwatched.ingest.rate()),
            rate(watched.ingest.rate()),
            watched.ingest.rate() / unwatched.ingest.rate(),
            secs(watched.caught_up_after),
            secs(unwatched.caught_up_after)
        );
        let to_webhook = alarm_latency(ALARM_MESSAGES)?;
        println!(
            "publish -> webhook    p50 {} p99 {} max {}",
            ms(to_webhook.p50),
            ms(to_webhook.p99),
            ms(to_webhook.max)
        );
    }
    if phase("policies") {
        for policies in [false, true] {
            let run = fault_heavy_run(n, k, policies, if policies { "pol" } else { "nopol" })?;
            println!(
                "fault-heavy, policies {}: {} events/s, {} work orders, caught up after {}",
                if policies { "on " } else { "off" },
                rate(run.ingest.rate()),
                run.work_orders,
                run.caught_up_after.map(secs).unwrap_or_default()
            );
        }
    }
    Ok(())
}

struct Measured {
    messages: usize,
    wall: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64()
    }
}

/// Embedded endpoint: every PUBACK a publisher receives means the passage is committed to the journal.
fn embedded(n: usize, k: usize) -> anyhow::Result<Measured> {
    let site = Site::new()?;
    let config = site.config("listen = \"127.0.0.1:0\"")?;
    let measured = with_app(config, async |app| {
        let port = app.mqtt_addr().context("embedded mode has an MQTT address")?.port();
        let bursts = join_async(spawn_publishers(port, k, n, "emb")).await;
        let (started, finished) = span(&bursts);
        anyhow::Ok(Measured {
            messages: n,
            wall: finished - started,
        })
    })?;
    site.check_journal(n, 0)?;
    Ok(measured)
}

/// A fault-heavy stream into the embedded endpoint, with the program's policies running or none: how much the
/// maintenance policy (work orders for faults) costs durable ingestion. With policies, also how long after the last
/// PUBACK the policy had acted on everything, and how many work orders it opened.
struct WithPolicies {
    ingest: Measured,
    caught_up_after: Option<Duration>,
    work_orders: i64,
}

fn fault_heavy_run(n: usize, k: usize, policies: bool, run: &'static str) -> anyhow::Result<WithPolicies> {
    let site = Site::new()?;
    let config = site.config("listen = \"127.0.0.1:0\"")?;
    let chosen = if policies {
        gatehouse::policy::all(&config)
    } else {
        Vec::new()
    };
    let (ingest, caught_up_after) = with_app_of(config, chosen, async |app| {
        let port = app.mqtt_addr().context("embedded mode has an MQTT address")?.port();
        let bursts = join_async(spawn_publishers_of(port, k, n, run, fault_heavy)).await;
        let (started, finished) = span(&bursts);
        let caught_up_after = match app.state().projectors.iter().find(|p| p.name == "policy:maintenance") {
            Some(policy) => {
                // The policy's own orders move the head on: wait until it holds still.
                loop {
                    let head = *app.state().committed.borrow();
                    ensure!(policy.wait_for(head, DEADLINE).await, "the policy did not catch up");
                    if *app.state().committed.borrow() == head {
                        break;
                    }
                }
                Some(finished.elapsed())
            }
            None => None,
        };
        anyhow::Ok((
            Measured {
                messages: n,
                wall: finished - started,
            },
            caught_up_after,
        ))
    })?;
    let work_orders = read_only(&site.paths().journal())?.query_row(
        "SELECT COUNT(*) FROM events WHERE event_type = 'WorkOrderOpened'",
        [],
        |r| r.get(0),
    )?;
    ensure!(
        policies == (work_orders > 0),
        "{work_orders} work orders opened with policies {policies}"
    );
    Ok(WithPolicies {
        ingest,
        caught_up_after,
        work_orders,
    })
}

/// Every tenth message a camera recognizing one of `WATCHED_SUBJECTS` subjects, the rest passages.
fn watched_mix(run: &'static str, g: usize) -> (String, String) {
    if !g.is_multiple_of(10) {
        return passage(run, g);
    }
    let (camera, subject) = (g / 10 % CAMERAS, g / 10 % WATCHED_SUBJECTS);
    (
        format!("gatehouse/camera/C{camera}/recognition"),
        format!(r#"{{"msg_id":"{run}-{g}","subject":"W-{subject}","confidence":0.95}}"#),
    )
}

/// Puts subjects `W-0` … `W-{count - 1}` on the watch list, critical, as an admin would.
async fn watch_subjects(app: &Application, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        let state = app.state();
        let identifier = gatehouse::domain::SubjectId::parse(&format!("W-{i}")).map_err(|e| anyhow!(e))?;
        let entry = gatehouse::domain::watch_list::WatchEntry::parse(
            state.vault.seal(&identifier)?,
            "bench",
            "critical",
            None,
            None,
        )
        .map_err(|e| anyhow!(e))?;
        let command = gatehouse::requests::OperatorCommand::Watch {
            change: gatehouse::requests::WatchChange::add(entry),
        };
        gatehouse::requests::carry_out(
            &state.registry,
            &state.vault,
            &command,
            gatehouse::journal::Actor::cli(),
            None,
        )
        .await
        .map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

/// The watched-recognitions stream with an empty watch list and with its subjects watched, alternately, twice
/// each; the better run of each, and how many alarms the watched one raised.
fn watched_rounds(n: usize, k: usize) -> anyhow::Result<(Watched, Watched, i64)> {
    let mut unwatched: Vec<(Watched, i64)> = Vec::new();
    let mut watched: Vec<(Watched, i64)> = Vec::new();
    for (off, on) in [("unw-a", "wat-a"), ("unw-b", "wat-b")] {
        unwatched.push(watched_run(n, k, false, off)?);
        watched.push(watched_run(n, k, true, on)?);
    }
    let best = |runs: Vec<(Watched, i64)>| {
        runs.into_iter()
            .max_by(|a, b| a.0.ingest.rate().total_cmp(&b.0.ingest.rate()))
            .expect("two runs")
    };
    let ((unwatched, none), (watched, alarms)) = (best(unwatched), best(watched));
    ensure!(none == 0, "{none} alarms with nobody watched");
    Ok((unwatched, watched, alarms))
}

/// One watched-recognitions run: its ingestion, and how long after the last PUBACK the alarms policy had acted on
/// every event.
struct Watched {
    ingest: Measured,
    caught_up_after: Duration,
}

fn watched_run(n: usize, k: usize, watch: bool, run: &'static str) -> anyhow::Result<(Watched, i64)> {
    let site = Site::new()?;
    let config = site.config_with("listen = \"127.0.0.1:0\"", "\n[identification]\nmin_confidence = 0.8\n")?;
    let ingest = with_app(config, async |app| {
        if watch {
            watch_subjects(app, WATCHED_SUBJECTS).await?;
        }
        let port = app.mqtt_addr().context("embedded mode has an MQTT address")?.port();
        let bursts = join_async(spawn_publishers_of(port, k, n, run, watched_mix)).await;
        let (started, finished) = span(&bursts);
        let policy = app
            .state()
            .projectors
            .iter()
            .find(|p| p.name == "policy:alarms")
            .context("the alarms policy runs")?;
        // The policy's own alarms move the head on: wait until it holds still, so the count below is final.
        loop {
            let head = *app.state().committed.borrow();
            ensure!(
                policy.wait_for(head, DEADLINE).await,
                "the alarms policy did not catch up"
            );
            if *app.state().committed.borrow() == head {
                break;
            }
        }
        // Ingestion is the rate (the alarms policy follows the journal; it never slows a gateway down); how
        // long after the last PUBACK every sighting was on its alarm says whether the policy keeps up.
        anyhow::Ok(Watched {
            ingest: Measured {
                messages: n,
                wall: finished - started,
            },
            caught_up_after: finished.elapsed(),
        })
    })?;
    let conn = read_only(&site.paths().journal())?;
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let recognitions = count("SELECT COUNT(*) FROM events WHERE event_type = 'RecognitionRecorded'")?;
    ensure!(
        recognitions == n.div_ceil(10) as i64,
        "{recognitions} recognitions recorded, {} sent",
        n.div_ceil(10)
    );
    let alarms = count("SELECT COUNT(*) FROM events WHERE event_type = 'AlarmRaised'")?;
    let sightings = count("SELECT COUNT(*) FROM events WHERE event_type IN ('AlarmRaised', 'AlarmRepeated')")?;
    ensure!(
        !watch || sightings == recognitions,
        "{sightings} sightings counted on alarms, {recognitions} recognitions of watched subjects"
    );
    Ok((ingest, alarms))
}

/// Recognitions of distinct watched subjects, paced at `ALARM_RATE`; for each, the time from its publish to the
/// signed webhook of its alarm arriving at a receiver in the bench (which answers 204 at once).
fn alarm_latency(m: usize) -> anyhow::Result<Sample> {
    let receiver = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", receiver.local_addr()?);
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for stream in receiver.incoming().flatten() {
            let arrived_tx = arrived_tx.clone();
            std::thread::spawn(move || serve_webhooks(stream, &arrived_tx));
        }
    });
    let site = Site::new()?;
    let channel =
        format!("\n[[notify.webhook]]\nname = \"bench\"\nurl = \"{url}\"\nsecret = \"whsec_{BENCH_WEBHOOK_SECRET}\"\n");
    let config = site.config_with("listen = \"127.0.0.1:0\"", &channel)?;
    fn distinct(run: &'static str, g: usize) -> (String, String) {
        (
            format!("gatehouse/camera/C{}/recognition", g % CAMERAS),
            format!(r#"{{"msg_id":"{run}-{g}","subject":"W-{g}","confidence":0.95}}"#),
        )
    }
    let published = with_app(config, async |app| {
        watch_subjects(app, m).await?;
        let port = app.mqtt_addr().context("embedded mode has an MQTT address")?.port();
        let times =
            tokio::task::spawn_blocking(move || paced_publisher_of(port, m, ALARM_RATE, ("alarm", distinct))).await?;
        // Every webhook in before the app stops, waited for off the actix thread, which must keep running.
        let got = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + DEADLINE;
            let mut got = Vec::with_capacity(m);
            while got.len() < m {
                let left = deadline.saturating_duration_since(Instant::now());
                match arrived.recv_timeout(left) {
                    Ok(arrival) => got.push(arrival),
                    Err(_) => anyhow::bail!("only {} of {m} webhooks arrived", got.len()),
                }
            }
            Ok(got)
        })
        .await??;
        anyhow::Ok((times, got))
    })?;
    let (times, got) = published;
    let mut latencies = Vec::with_capacity(m);
    for (at, body) in got {
        let document: serde_json::Value = serde_json::from_str(&body)?;
        let source = document["data"]["source"].as_str().unwrap_or_default();
        let subject: usize = source
            .strip_prefix("subject W-")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("a webhook about {source:?}"))?;
        let sent = times.get(subject).context("a webhook for a subject never sent")?.0;
        latencies.push(at.saturating_duration_since(sent));
    }
    Ok(Sample::of(latencies))
}

/// The bench receiver's webhook secret (base64, after `whsec_`).
const BENCH_WEBHOOK_SECRET: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Reads HTTP/1.1 requests off one connection (the notifier keeps it alive), records each body with its arrival
/// time when its Standard Webhooks signature holds, and answers 204.
fn serve_webhooks(stream: std::net::TcpStream, arrived: &std::sync::mpsc::Sender<(Instant, String)>) {
    use base64::Engine;
    use std::io::{BufRead, BufReader, Read, Write};
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(BENCH_WEBHOOK_SECRET) else {
        return;
    };
    let key = key.as_slice();
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut headers = std::collections::HashMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let name = name.to_ascii_lowercase();
                if name == "content-length" {
                    length = value.trim().parse().unwrap_or(0);
                }
                headers.insert(name, value.trim().to_owned());
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        let body = String::from_utf8_lossy(&body).into_owned();
        // Only a webhook whose signature holds counts as arrived.
        let header = |name: &str| headers.get(name).map(String::as_str).unwrap_or_default();
        let timestamp = header("webhook-timestamp").parse().unwrap_or_default();
        if gatehouse::notify::webhook::sign(key, header("webhook-id"), timestamp, &body) == header("webhook-signature")
        {
            let _ = arrived.send((at, body));
        }
        if writer
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Mosquitto's relay and the external path, measured alternately: the median run of each and every round's ratio.
struct Rounds {
    relay: Measured,
    external: External,
    ratios: Vec<f64>,
}

impl Rounds {
    /// The external path's median rate over Mosquitto's median relay rate.
    fn ratio(&self) -> f64 {
        self.external.durable.rate() / self.relay.rate()
    }

    fn ratio_range(&self) -> String {
        let low = self.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = self.ratios.iter().copied().fold(0.0, f64::max);
        format!("{low:.2}-{high:.2}")
    }
}

/// `rounds` times Mosquitto alone then the external path, with the same window. Alternating spreads whatever
/// else the machine does over both, and medians drop the odd run a busy neighbour slowed.
fn external_rounds(n: usize, k: usize, window: Window, rounds: usize) -> anyhow::Result<Rounds> {
    let mut relays = Vec::with_capacity(rounds);
    let mut externals = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let relay = mosquitto_alone(n, k, window)?;
        let external = external(n, k, window)?;
        ratios.push(external.durable.rate() / relay.rate());
        relays.push(relay);
        externals.push(external);
    }
    relays.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    externals.sort_by(|a, b| a.durable.rate().total_cmp(&b.durable.rate()));
    let median = rounds / 2;
    Ok(Rounds {
        relay: relays.swap_remove(median),
        external: externals.swap_remove(median),
        ratios,
    })
}

/// Mosquitto's own QoS 1 throughput from the same publishers to one subscriber: the ceiling for external mode.
fn mosquitto_alone(n: usize, k: usize, window: Window) -> anyhow::Result<Measured> {
    let broker = Mosquitto::start(window)?;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let port = broker.port;
    let subscriber = std::thread::Builder::new()
        .name("subscriber".into())
        .spawn(move || subscriber(port, n, ready_tx))?;
    ready
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow!("the subscriber did not subscribe at mosquitto within 30 s"))?;
    let bursts = join_all(spawn_publishers(broker.port, k, n, "alone"));
    let last_received = join_all(vec![subscriber]).remove(0);
    let (started, _) = span(&bursts);
    Ok(Measured {
        messages: n,
        wall: last_received - started,
    })
}

/// A plain QoS 1 subscriber to `gatehouse/#` with automatic acknowledgements; returns when the n-th message came.
fn subscriber(port: u16, n: usize, ready: std::sync::mpsc::Sender<()>) -> Instant {
    let runtime = current_thread_runtime();
    runtime.block_on(async move {
        let mut options = MqttOptions::new("bench-subscriber", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        client
            .subscribe("gatehouse/#", QoS::AtLeastOnce)
            .await
            .expect("the subscribe request is queued");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut received = 0;
        let mut ready = Some(ready);
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => panic!("subscriber: received only {received} of {n} messages in {DEADLINE:?}"),
                Ok(Err(error)) => panic!("subscriber: connection failed after {received} of {n} messages: {error}"),
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                    received += 1;
                    if received == n {
                        return Instant::now();
                    }
                }
                Ok(Ok(_)) => {}
            }
        }
    })
}

struct External {
    /// Committed in the journal (and acknowledged to Mosquitto).
    durable: Measured,
    /// What the publishers saw: Mosquitto's PUBACKs, sent before gatehouse has the message.
    handed_off: Measured,
    /// Events per journal commit, on average over the run: how much each fsync carried.
    mean_group: f64,
    /// How long after the last commit every projector and policy had applied everything.
    views_caught_up_after: Duration,
}

/// Gatehouse subscribed at Mosquitto; the publishers publish to Mosquitto. Rate: messages committed per second.
fn external(n: usize, k: usize, window: Window) -> anyhow::Result<External> {
    let broker = Mosquitto::start(window)?;
    let site = Site::new()?;
    let sessions = match std::env::var("GATEHOUSE_BENCH_SESSIONS") {
        Ok(n) => format!("\nsubscriber_sessions = {n}"),
        Err(_) => String::new(),
    };
    let config = site.config(&format!("broker = \"mqtt://127.0.0.1:{}\"{sessions}", broker.port))?;
    let port = broker.port;
    let external = with_app(config, async |app| {
        let status = app.external_status().context("external mode has a status")?;
        // Messages published before gatehouse's subscriptions exist are not queued for it: wait until every
        // session has its subscriptions acknowledged, then probe (an unknown device's status, which the discovery
        // session turns into a dead letter, not a passage) until one has been committed and acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !status.connected() {
            ensure!(Instant::now() < deadline, "gatehouse never subscribed at mosquitto");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let journal = site.paths().journal();
        loop {
            tokio::task::spawn_blocking(move || probe(port)).await??;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let letters: i64 = read_only(&journal)?.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
            if letters > 0 {
                break;
            }
            ensure!(Instant::now() < deadline, "gatehouse never subscribed at mosquitto");
        }
        let acked_before = status.acked.load(Ordering::SeqCst);
        let publishers = spawn_publishers(port, k, n, "ext");
        // The subscriber counts a message as acked right after its commit; polling that counter every
        // millisecond costs nothing, unlike counting journal rows.
        let deadline = Instant::now() + DEADLINE;
        let target = acked_before + n as u64;
        while status.acked.load(Ordering::SeqCst) < target {
            ensure!(
                Instant::now() < deadline,
                "gatehouse committed only {} of {n} messages in {DEADLINE:?}",
                status.acked.load(Ordering::SeqCst) - acked_before
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let committed = Instant::now();
        let stats = &app.state().writer_stats;
        let mean_group = stats.events() as f64 / stats.commits().max(1) as f64;
        // Projectors yield the CPU to ingestion during the burst; they catch up after it. How long that takes is
        // part of the figure (and the next phase must not start with this one's catching up in the background).
        let head = *app.state().committed.borrow();
        for follower in &app.state().projectors {
            ensure!(
                follower.wait_for(head, DEADLINE).await,
                "{} did not catch up with the journal",
                follower.name
            );
        }
        let views_caught_up_after = committed.elapsed();
        let bursts = join_async(publishers).await;
        let (started, handed_off) = span(&bursts);
        anyhow::Ok(External {
            durable: Measured {
                messages: n,
                wall: committed - started,
            },
            handed_off: Measured {
                messages: n,
                wall: handed_off - started,
            },
            mean_group,
            views_caught_up_after,
        })
    })?;
    site.check_journal(n, 1)?;
    Ok(external)
}

/// One QoS 1 status of an unknown device, through `mosquitto_pub`.
fn probe(port: u16) -> anyhow::Result<()> {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "gatehouse/turnstile/PROBE/status", "-m", "online"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("mosquitto_pub is installed (apt-get install mosquitto-clients)")?;
    ensure!(status.success(), "mosquitto_pub failed: {status}");
    Ok(())
}

/// Percentiles of one latency sample.
struct Sample {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Sample {
    fn of(mut values: Vec<Duration>) -> Sample {
        values.sort_unstable();
        // Nearest rank: the smallest value at least p% of the sample does not exceed.
        let rank = |p: usize| values[(values.len() * p).div_ceil(100).max(1) - 1];
        Sample {
            p50: rank(50),
            p99: rank(99),
            max: values[values.len() - 1],
        }
    }
}

struct Latency {
    messages: usize,
    acked: Sample,
    visible: Sample,
}

/// One publisher paced at `LATENCY_RATE` for `m` messages to the embedded endpoint. For each message: when it was
/// published, when its PUBACK came, and when every projector had applied its journal position. Positions come from
/// the journal afterwards (by msg_id), and each projector's progress is recorded as it happens, on a thread of its
/// own, so the visibility time of each message is read off those timelines.
fn latency(m: usize) -> anyhow::Result<Latency> {
    let site = Site::new()?;
    let config = site.config("listen = \"127.0.0.1:0\"")?;
    let journal = site.paths().journal();
    let latency = with_app(config, async |app| {
        let port = app.mqtt_addr().context("embedded mode has an MQTT address")?.port();
        let projectors: Vec<_> = app.state().projectors.iter().map(|h| h.position.clone()).collect();
        ensure!(!projectors.is_empty(), "the app runs no projectors");
        let (target_tx, target) = watch::channel(Position::MAX);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let follower = std::thread::Builder::new()
            .name("projector-follower".into())
            .spawn(move || follow_projectors(projectors, target, ready_tx))?;
        ready.await.context("the projector follower started")?;

        let publisher = std::thread::Builder::new()
            .name("paced-publisher".into())
            .spawn(move || paced_publisher(port, m))?;
        let sent = join_async(vec![publisher]).await.remove(0);

        let positions = tokio::task::spawn_blocking(move || message_positions(&journal, m)).await??;
        let last = positions.iter().copied().max().context("at least one message")?;
        target_tx.send_replace(last);
        let timelines = join_async(vec![follower]).await.remove(0);

        let mut acked = Vec::with_capacity(m);
        let mut visible = Vec::with_capacity(m);
        for ((published, puback), position) in sent.into_iter().zip(positions) {
            acked.push(puback - published);
            // Visible once the slowest projector got there: the first recorded instant at or past the position.
            let mut seen = published;
            for timeline in &timelines {
                let i = timeline.partition_point(|&(_, p)| p < position);
                let (at, _) = timeline
                    .get(i)
                    .with_context(|| format!("a projector never reached position {position}"))?;
                seen = seen.max(*at);
            }
            visible.push(seen - published);
        }
        anyhow::Ok(Latency {
            messages: m,
            acked: Sample::of(acked),
            visible: Sample::of(visible),
        })
    })?;
    site.check_journal(m, 0)?;
    Ok(latency)
}

/// Records every projector's position as it moves, until all reach the target (sent once the run is over).
/// Says `ready` once the starting positions are recorded, so no message can be applied before the first entry.
fn follow_projectors(
    projectors: Vec<watch::Receiver<Position>>,
    target: watch::Receiver<Position>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Vec<Vec<(Instant, Position)>> {
    current_thread_runtime().block_on(async move {
        let followers: Vec<_> = projectors
            .into_iter()
            .map(|position| {
                let mut timeline = Vec::with_capacity(16 * 1024);
                timeline.push((Instant::now(), *position.borrow()));
                (timeline, position)
            })
            .collect();
        let _ = ready.send(());
        let tasks: Vec<_> = followers
            .into_iter()
            .map(|(timeline, position)| tokio::spawn(follow(timeline, position, target.clone())))
            .collect();
        let mut timelines = Vec::new();
        for task in tasks {
            timelines.push(task.await.expect("a projector follower panicked"));
        }
        timelines
    })
}

async fn follow(
    mut timeline: Vec<(Instant, Position)>,
    mut position: watch::Receiver<Position>,
    mut target: watch::Receiver<Position>,
) -> Vec<(Instant, Position)> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now = *position.borrow_and_update();
        if timeline.last().is_none_or(|&(_, last)| now > last) {
            timeline.push((Instant::now(), now));
        }
        if now >= *target.borrow_and_update() {
            return timeline;
        }
        tokio::select! {
            changed = position.changed() => if changed.is_err() {
                panic!("a projector stopped at position {now}")
            },
            changed = target.changed() => if changed.is_err() {
                // The run was abandoned; what was recorded is all there will be.
                return timeline;
            },
            _ = tokio::time::sleep_until(deadline) => panic!("a projector stayed at position {now} for {DEADLINE:?}"),
        }
    }
}

/// Publishes `m` passages at `LATENCY_RATE`; per message the instant it was published and the instant of its PUBACK.
fn paced_publisher(port: u16, m: usize) -> Vec<(Instant, Instant)> {
    paced_publisher_of(port, m, LATENCY_RATE, ("lat", passage))
}

/// [`paced_publisher`] of `m` messages made by `message`, `per_second` of them a second.
fn paced_publisher_of(
    port: u16,
    m: usize,
    per_second: u64,
    (run, message): (&'static str, MessageOf),
) -> Vec<(Instant, Instant)> {
    current_thread_runtime().block_on(async move {
        let (client, mut eventloop) = connect(port, format!("bench-paced-{run}")).await;
        let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let publishing = client.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
            for seq in 0..m {
                tick.tick().await;
                let (topic, payload) = message(run, seq);
                let _ = sent_tx.send(Instant::now());
                if publishing
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        // The endpoint acknowledges in arrival order, so the k-th PUBACK belongs to the k-th publish; the packet ids
        // the event loop reports for outgoing publishes prove it.
        let mut pkids = VecDeque::new();
        let mut times = Vec::with_capacity(m);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while times.len() < m {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => panic!("paced publisher: only {} of {m} PUBACKs in {DEADLINE:?}", times.len()),
                Ok(Err(error)) => panic!(
                    "paced publisher: connection failed after {} PUBACKs: {error}",
                    times.len()
                ),
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => pkids.push_back(pkid),
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    let acked = Instant::now();
                    assert_eq!(pkids.pop_front(), Some(ack.pkid), "PUBACKs arrive in publish order");
                    let published = sent.try_recv().expect("a PUBACK follows its publish");
                    times.push((published, acked));
                }
                Ok(Ok(_)) => {}
            }
        }
        disconnect(&client, &mut eventloop).await;
        times
    })
}

/// Each latency message's journal position (of its `PassageRecorded`), indexed by its sequence number.
fn message_positions(journal: &std::path::Path, m: usize) -> anyhow::Result<Vec<Position>> {
    let conn = read_only(journal)?;
    let mut positions = vec![0; m];
    let mut statement = conn.prepare(
        "SELECT causation, position FROM events WHERE event_type = 'PassageRecorded' AND causation LIKE 'lat-%'",
    )?;
    let mut rows = statement.query([])?;
    let mut found = 0;
    while let Some(row) = rows.next()? {
        let causation: String = row.get(0)?;
        let seq: usize = causation["lat-".len()..].parse()?;
        positions[seq] = row.get::<_, i64>(1)? as Position;
        found += 1;
    }
    ensure!(found == m, "the journal holds {found} of the {m} latency messages");
    Ok(positions)
}

/// What every publisher reports: when it sent its first message and when its last PUBACK came.
struct Burst {
    started: Instant,
    finished: Instant,
}

/// The earliest start and the latest finish.
fn span(bursts: &[Burst]) -> (Instant, Instant) {
    let started = bursts.iter().map(|b| b.started).min().expect("at least one publisher");
    let finished = bursts.iter().map(|b| b.finished).max().expect("at least one publisher");
    (started, finished)
}

/// `k` publishers on their own threads sharing `n` passages; message `g` goes to `T{g % DEVICES}` with msg_id
/// `{run}-{g}`. All connect first, then start together.
/// What message `g` of a run is: its topic and payload.
type MessageOf = fn(&'static str, usize) -> (String, String);

/// Passages only, message `g` to `T{g % DEVICES}`.
fn passage(run: &'static str, g: usize) -> (String, String) {
    (topic(g), format!(r#"{{"msg_id":"{run}-{g}","direction":"in"}}"#))
}

/// A fault-heavy stream: of every ten messages to a turnstile one reports a fault (one of four codes) and one
/// reports it cleared, the rest are passages. Each fault opens a work order or finds one still to do; each clear
/// is noted on its order: the maintenance policy has work for every fifth message.
fn fault_heavy(run: &'static str, g: usize) -> (String, String) {
    let device = g % DEVICES;
    let round = g / DEVICES;
    let code = format!("JAM{}", round / 10 % 4);
    match round % 10 {
        0 => (
            format!("gatehouse/turnstile/T{device}/fault"),
            format!(r#"{{"msg_id":"{run}-{g}","code":"{code}","detail":"bench"}}"#),
        ),
        1 => (
            format!("gatehouse/turnstile/T{device}/fault_cleared"),
            format!(r#"{{"msg_id":"{run}-{g}","code":"{code}"}}"#),
        ),
        _ => passage(run, g),
    }
}

fn spawn_publishers(port: u16, k: usize, n: usize, run: &'static str) -> Vec<JoinHandle<Burst>> {
    spawn_publishers_of(port, k, n, run, passage)
}

fn spawn_publishers_of(port: u16, k: usize, n: usize, run: &'static str, message: MessageOf) -> Vec<JoinHandle<Burst>> {
    let start = Arc::new(Barrier::new(k));
    (0..k)
        .map(|p| {
            let start = start.clone();
            // Publisher p sends messages p, p + k, p + 2k, ...
            let messages: Vec<usize> = (p..n).step_by(k).collect();
            std::thread::Builder::new()
                .name(format!("{run}-publisher-{p}"))
                .spawn(move || publisher(port, format!("bench-{run}-{p}"), (run, message), messages, &start))
                .expect("a publisher thread starts")
        })
        .collect()
}

fn publisher(
    port: u16,
    client_id: String,
    (run, message): (&'static str, MessageOf),
    messages: Vec<usize>,
    start: &Barrier,
) -> Burst {
    current_thread_runtime().block_on(async move {
        let count = messages.len();
        let (client, mut eventloop) = connect(port, client_id.clone()).await;
        tokio::time::timeout(Duration::from_secs(30), start.wait())
            .await
            .unwrap_or_else(|_| panic!("{client_id}: the other publishers did not connect within 30 s"));
        let started = Instant::now();
        // Publishing and polling in separate tasks: awaiting a publish in the task that polls the event loop
        // deadlocks once the request channel is full (rumqttc #263).
        let publishing = client.clone();
        tokio::spawn(async move {
            for g in messages {
                let (topic, payload) = message(run, g);
                if publishing
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut acked = 0;
        while acked < count {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => panic!("{client_id}: only {acked} of {count} PUBACKs in {DEADLINE:?}"),
                Ok(Err(error)) => panic!("{client_id}: connection failed after {acked} of {count} PUBACKs: {error}"),
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
            }
        }
        let finished = Instant::now();
        disconnect(&client, &mut eventloop).await;
        Burst { started, finished }
    })
}

fn topic(g: usize) -> String {
    format!("gatehouse/turnstile/T{}/passage", g % DEVICES)
}

/// A clean-session QoS 1 client, connected (CONNACK received) within 30 s.
async fn connect(port: u16, client_id: String) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id.clone(), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_inflight(PUBLISHER_INFLIGHT);
    let (client, mut eventloop) = AsyncClient::new(options, usize::from(PUBLISHER_INFLIGHT));
    let connected = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    match connected {
        Ok(Ok(())) => (client, eventloop),
        Ok(Err(error)) => panic!("{client_id}: cannot connect to 127.0.0.1:{port}: {error}"),
        Err(_) => panic!("{client_id}: no CONNACK from 127.0.0.1:{port} within 30 s"),
    }
}

/// Leaves with a DISCONNECT, so the embedded endpoint sees a clean goodbye rather than a lost gateway.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs a whole Gatehouse in its own actix system for the duration of `f`, then stops it and waits until the
/// journal writer has finished.
fn with_app<T>(config: Config, f: impl AsyncFnOnce(&Application) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let policies = gatehouse::policy::all(&config);
    with_app_of(config, policies, f)
}

/// [`with_app`] with these policies.
fn with_app_of<T>(
    config: Config,
    policies: Vec<Box<dyn gatehouse::policy::Policy>>,
    f: impl AsyncFnOnce(&Application) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let system = actix_web::rt::System::new();
    let outcome = system.block_on(async move {
        let app = Application::build_with_policies(config, policies).await?;
        let result = f(&app).await;
        anyhow::Ok((result, app.stop()))
    });
    // Dropping the system drops the actors and their writer handles; then the writer thread can finish.
    drop(system);
    let (result, stopped) = outcome?;
    stopped.join();
    result
}

/// Waits for threads off the actix thread, which must keep running gatehouse meanwhile. A thread's panic is
/// passed on.
async fn join_async<T: Send + 'static>(threads: Vec<JoinHandle<T>>) -> Vec<T> {
    tokio::task::spawn_blocking(move || join_all(threads))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn join_all<T>(threads: Vec<JoinHandle<T>>) -> Vec<T> {
    threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect()
}

/// A site in a temporary directory: `DEVICES` turnstiles, HTTP on port 0, the journal at `synchronous = full`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> anyhow::Result<Site> {
        Ok(Site {
            dir: tempfile::tempdir()?,
        })
    }

    /// The config with `mqtt` as its `[mqtt]` section.
    fn config(&self, mqtt: &str) -> anyhow::Result<Config> {
        self.config_with(mqtt, "")
    }

    /// [`Site::config`] with `CAMERAS` cameras and `extra` (TOML tables) at the end.
    fn config_with(&self, mqtt: &str, extra: &str) -> anyhow::Result<Config> {
        // `dir` is relative, so it resolves against the temp dir passed to `Config::parse`: no path quoting.
        // The publishers connect without an identity, as gateways of a site with require_auth off.
        let mut text = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = \"data\"\n\n[mqtt]\n{mqtt}\nrequire_auth = false\n"
        );
        for i in 0..DEVICES {
            let _ = write!(
                text,
                "\n[[turnstile]]\nid = \"T{i}\"\nname = \"Turnstile {i}\"\nzone = \"Zone {}\"\n",
                i % 10
            );
        }
        if !extra.is_empty() {
            for i in 0..CAMERAS {
                let _ = write!(
                    text,
                    "\n[[camera]]\nid = \"C{i}\"\nname = \"Camera {i}\"\nzone = \"Zone {i}\"\n"
                );
            }
            text.push_str(extra);
        }
        Config::parse(&text, "config.toml", self.dir.path()).map_err(|e| anyhow!("{e}"))
    }

    fn paths(&self) -> StoragePaths {
        StoragePaths::new(self.dir.path().join("data"))
    }

    /// The journal holds exactly `passages` passages, and at least `min_dead_letters` dead letters (probes).
    fn check_journal(&self, passages: usize, min_dead_letters: i64) -> anyhow::Result<()> {
        let conn = read_only(&self.paths().journal())?;
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let recorded = count("SELECT COUNT(*) FROM events WHERE event_type = 'PassageRecorded'")?;
        let distinct = count("SELECT COUNT(DISTINCT causation) FROM events WHERE event_type = 'PassageRecorded'")?;
        ensure!(
            recorded == passages as i64 && distinct == recorded,
            "the journal holds {recorded} passages ({distinct} distinct msg_ids), expected {passages}"
        );
        let letters = count("SELECT COUNT(*) FROM dead_letters")?;
        ensure!(
            letters >= min_dead_letters && (min_dead_letters > 0 || letters == 0),
            "the journal holds {letters} dead letters, expected {}",
            if min_dead_letters > 0 { "only probes" } else { "none" }
        );
        Ok(())
    }
}

fn read_only(path: &std::path::Path) -> anyhow::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("{}: cannot open", path.display()))
}

/// A real Mosquitto on a free port, killed on drop. No persistence (nothing here outlives the run); no limits on
/// queued or in-flight QoS 1 messages, so Mosquitto neither drops nor throttles anything. `user root`: started as
/// root, Mosquitto would otherwise switch to its own user; ignored otherwise.
struct Mosquitto {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Mosquitto's per-session in-flight window: unlimited, or its default (20), which is what operators run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Unlimited,
    Default,
}

impl Mosquitto {
    fn start(window: Window) -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let inflight = match window {
            Window::Unlimited => "max_inflight_messages 0\n",
            Window::Default => "",
        };
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n\
             max_queued_messages 0\n{inflight}"
        );
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("mosquitto is installed (apt-get install mosquitto)")?;
        let broker = Mosquitto { port, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(Instant::now() < deadline, "mosquitto does not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the results table; empty trailing cells leave no trailing spaces.
/// The table's rows for one window: Mosquitto's relay, the durable rate (and what the publishers saw, when
/// `handed_off` is asked for), each the median of its rounds, and their ratio against the target. `names`: the
/// three rows' labels.
fn external_rows(names: (&str, &str, &str), rounds: &Rounds, handed_off: bool) {
    let (relay, durable, ratio_name) = names;
    let mut rows = vec![(relay, &rounds.relay), (durable, &rounds.external.durable)];
    if handed_off {
        rows.push(("  publishers' PUBACKs", &rounds.external.handed_off));
    }
    for (name, m) in rows {
        row([name, &m.messages.to_string(), &secs(m.wall), &rate(m.rate()), "", ""]);
    }
    let ratio = rounds.ratio();
    row([
        ratio_name,
        "",
        "",
        &format!("{ratio:.3}"),
        &format!(">= {TARGET_EXTERNAL_RATIO}"),
        verdict(ratio >= TARGET_EXTERNAL_RATIO),
    ]);
}

/// A target's cell: met or not.
fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn row(cells: [&str; 6]) {
    let line = format!(
        "{:<30}{:>10}{:>10}{:>12}{:>14}{:>8}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    );
    println!("{}", line.trim_end());
}
