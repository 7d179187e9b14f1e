//! How long `gatehouse serve` takes to become healthy (`/healthz` answers 200), from spawning the release binary,
//! against a baseline measured in the same run: an empty site of 100 turnstiles.
//!
//! 1. **baseline**: 100 turnstiles, empty data directory (median of 3 boots, each in a fresh directory);
//! 2. **10k devices**: 10,000 turnstiles, first boot (commissions every one) and second boot (recovers 10,000
//!    streams);
//! 3. **10M events**: a journal of N events (default 10,000,000) over 120 turnstiles, every snapshot deleted (as
//!    after an upgrade that changed the state schema: each stream is replayed), booted twice that way (the file
//!    as the page cache happens to hold it, then warm), then again with the snapshots the last boot saved.
//!
//! The 10M journal is written with a plain batched rusqlite insert, rows as the journal writer writes them, and
//! cached under `target/bench-startup-N/`. Its `views.db` checkpoints are set to the journal's head, so boot
//! measures recovery, not the projectors catching up (which happens after boot, in the background, anyway).
//! Targets (issue "boot bounded"): 10k devices healthy within 1.5 s; 10M events within 10 s without snapshots
//! and 2 s with them. Run with `cargo bench --bench startup`; `GATEHOUSE_BENCH_EVENTS` changes N.

mod support;

use anyhow::Context;
use gatehouse::codec;
use gatehouse::db::StoragePaths;
use gatehouse::domain::{Commissioned, DeviceDetails, DeviceEvent, DeviceKind, Direction, PassageRecorded};
use jiff::Timestamp;
use rusqlite::params;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::server::{Server, build_server, target_dir};
use support::{env_count, rate, secs};

const BASELINE_TURNSTILES: usize = 100;
const MANY_DEVICES: usize = 10_000;
const JOURNAL_TURNSTILES: usize = 120;
const BUILD_BATCH: usize = 50_000;

fn config(turnstiles: usize, port: u16) -> String {
    let mut text = format!(
        "[site]\nname = \"Bench site\"\ntimezone = \"Europe/Berlin\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [mqtt]\nlisten = \"127.0.0.1:0\"\nrequire_auth = false\n\n[storage]\ndir = \"data\"\n"
    );
    for i in 0..turnstiles {
        let _ = write!(
            text,
            "\n[[turnstile]]\nid = \"T{i}\"\nname = \"Turnstile {i}\"\nzone = \"Zone {}\"\n",
            i % 10
        );
    }
    text
}

/// Boots the server in `root` and stops it again; the time to healthy.
fn boot(binary: &Path, root: &Path, turnstiles: usize) -> anyhow::Result<Duration> {
    let server = Server::start(binary, root, &|port| config(turnstiles, port))?;
    let took = server.boot;
    server.stop()?;
    Ok(took)
}

fn fresh(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n = env_count("GATEHOUSE_BENCH_EVENTS", 10_000_000)?;
    let root = target_dir()?.join(format!("bench-startup-{n}"));
    std::fs::create_dir_all(&root)?;
    println!("startup: time from spawning `gatehouse serve` to /healthz 200");
    let binary = build_server()?;

    // 1. The baseline: a small site with nothing recorded yet.
    let mut baseline = Vec::new();
    for run in 0..3 {
        let dir = root.join(format!("baseline-{run}"));
        fresh(&dir)?;
        baseline.push(boot(&binary, &dir, BASELINE_TURNSTILES)?);
    }
    baseline.sort();
    let baseline = baseline[1];
    println!(
        "  baseline, {BASELINE_TURNSTILES} turnstiles, empty: {} (median of 3)",
        secs(baseline)
    );
    let ratio = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64();

    // 2. Ten thousand devices.
    let many = root.join("many-devices");
    fresh(&many)?;
    let first = boot(&binary, &many, MANY_DEVICES)?;
    let second = boot(&binary, &many, MANY_DEVICES)?;
    println!(
        "  {MANY_DEVICES} turnstiles, first boot (commissions them): {} = {:.1}x baseline",
        secs(first),
        ratio(first)
    );
    println!(
        "  {MANY_DEVICES} turnstiles, second boot (recovers them): {} = {:.1}x baseline (target 1.5 s)",
        secs(second),
        ratio(second)
    );

    // 3. A long journal, without and then with snapshots.
    let site = root.join("journal");
    let paths = StoragePaths::new(site.join("data"));
    build_journal(&site, &paths, n)?;
    // Twice without snapshots: first with the file as the page cache holds it (cold after a reboot or a big
    // build), then warm; the disk's speed makes the difference.
    let mut without = Vec::new();
    for _ in 0..2 {
        rusqlite::Connection::open(paths.journal())?.execute("DELETE FROM snapshots", [])?;
        without.push(boot(&binary, &site, JOURNAL_TURNSTILES)?);
    }
    let snapshots: i64 =
        rusqlite::Connection::open(paths.journal())?.query_row("SELECT COUNT(*) FROM snapshots", [], |r| r.get(0))?;
    let with = boot(&binary, &site, JOURNAL_TURNSTILES)?;
    for (run, took) in ["as cached", "warm"].iter().zip(&without) {
        println!(
            "  {} events, {JOURNAL_TURNSTILES} turnstiles, no snapshots ({run}): {} = {:.1}x baseline \
             ({} events/s replayed; target 10 s)",
            rate(n as f64),
            secs(*took),
            ratio(*took),
            rate(n as f64 / took.as_secs_f64())
        );
    }
    println!(
        "  {} events, {JOURNAL_TURNSTILES} turnstiles, with the {snapshots} snapshots the first boot saved: {} = \
         {:.1}x baseline (target 2 s)",
        rate(n as f64),
        secs(with),
        ratio(with)
    );
    Ok(())
}

/// N events over the turnstiles (each `Commissioned` first, then passages round the turnstiles), unless the
/// cache already holds them.
fn build_journal(site: &Path, paths: &StoragePaths, n: usize) -> anyhow::Result<()> {
    let marker = site.join("journal.complete");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == n.to_string()) {
        println!("  journal: cached ({} events)", rate(n as f64));
        return Ok(());
    }
    fresh(site)?;
    paths.prepare()?;
    gatehouse::db::upgrade_journal(&paths.journal())?;
    let started = Instant::now();
    let conn = rusqlite::Connection::open(paths.journal())?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
    let start = Timestamp::now().as_microsecond() - 365 * 86_400_000_000;
    let step = (365 * 86_400_000_000 / n.max(1) as i64).max(1);
    let mut versions = vec![0i64; JOURNAL_TURNSTILES];
    let mut pending = 0;
    for position in 1..=n as i64 {
        if pending == 0 {
            conn.execute_batch("BEGIN")?;
        }
        let index = (position as usize - 1) % JOURNAL_TURNSTILES;
        let at = Timestamp::from_microsecond(start + position * step)?;
        let event = if versions[index] == 0 {
            DeviceEvent::Commissioned(Commissioned {
                kind: DeviceKind::Turnstile,
                details: DeviceDetails {
                    name: format!("Turnstile {index}"),
                    zone: format!("Zone {}", index % 10),
                    ..DeviceDetails::default()
                },
                watches: vec![],
                at,
            })
        } else {
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction: if position % 2 == 0 {
                    Direction::In
                } else {
                    Direction::Out
                },
                at,
                during_fault: false,
                during_lockout: false,
                seq: None,
            })
        };
        versions[index] += 1;
        let encoded = codec::encode_event(&event);
        conn.prepare_cached(
            "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at,
                                 recorded_at, causation, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
        )?
        .execute(params![
            position,
            format!("T{index}"),
            versions[index],
            encoded.event_type,
            encoded.schema,
            encoded.format,
            at.as_microsecond(),
            at.as_microsecond() + 20_000,
            encoded.payload,
        ])?;
        pending += 1;
        if pending >= BUILD_BATCH {
            conn.execute_batch("COMMIT")?;
            pending = 0;
        }
    }
    if pending > 0 {
        conn.execute_batch("COMMIT")?;
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    // The read tables are not what boot is about: say they are at the head, so the projectors idle.
    let mut views = rusqlite::Connection::open(paths.views())?;
    gatehouse::db::migrate_views(&mut views)?;
    for name in gatehouse::projection::names() {
        views.execute(
            "INSERT OR REPLACE INTO projector_checkpoints (projection, position, updated_at, last_error)
             VALUES (?1, ?2, 0, NULL)",
            params![name, n as i64],
        )?;
    }
    let wall = started.elapsed();
    println!(
        "  journal: built {} events in {} ({} events/s)",
        rate(n as f64),
        secs(wall),
        rate(n as f64 / wall.as_secs_f64())
    );
    std::fs::write(&marker, format!("{n}\n"))?;
    Ok(())
}
