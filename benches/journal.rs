//! Journal throughput: N passages over D turnstiles through the real actor path (registry → device actor →
//! group-committing journal writer, `synchronous = full`), against a plain batched rusqlite insert of the same
//! rows, then a full replay of the journal into turnstile states.
//!
//! Run with `cargo bench --bench journal`; `GATEHOUSE_BENCH_EVENTS` (default 1,000,000) and
//! `GATEHOUSE_BENCH_DEVICES` (default 1000) change the size.

mod support;

use support::{env_count, peak_rss, rate, secs};

use anyhow::ensure;
use futures_util::StreamExt;
use gatehouse::actors::CommandOutcome;
use gatehouse::codec;
use gatehouse::config::{Config, Synchronous};
use gatehouse::db::StoragePaths;
use gatehouse::domain::{
    Aggregate, CameOnline, Commissioned, DeviceCommand, DeviceDetails, DeviceEvent, DeviceId, DeviceKind, Direction,
    PassageRecorded, Turnstile, TurnstileState,
};
use gatehouse::journal::{JournalReader, JournalWriter};
use jiff::Timestamp;
use rusqlite::params;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Commands outstanding at once, as an ingest with a bounded in-flight window keeps them: enough to fill two
/// of the writer's 4096-request groups, so the writer always has the next group waiting while it commits.
const WINDOW: usize = 8192;
/// The baseline's transaction size: the same as the writer's largest group (`MAX_BATCH` in `writer.rs`).
const BASELINE_BATCH: usize = 4096;
/// Targets: the actor path may cost at most a fifth of raw SQLite's throughput, and a restart or rebuild must
/// replay at least a million events per second.
const TARGET_RATIO: f64 = 0.8;
const TARGET_REPLAY: f64 = 1_000_000.0;

fn main() -> anyhow::Result<()> {
    let n = env_count("GATEHOUSE_BENCH_EVENTS", 1_000_000)?;
    let d = env_count("GATEHOUSE_BENCH_DEVICES", 1000)?;
    ensure!(
        n > 0 && d > 0,
        "GATEHOUSE_BENCH_EVENTS and GATEHOUSE_BENCH_DEVICES must be at least 1"
    );
    let workload = Workload::new(n, d);

    println!("gatehouse journal benchmark: {n} passages over {d} turnstiles, synchronous = full");
    let actor_dir = tempfile::tempdir()?;
    let actor = actor_path(&workload, actor_dir.path())?;
    println!("  actor path done in {}", secs(actor.measured.wall));
    let baseline_dir = tempfile::tempdir()?;
    let baseline = baseline(&workload, baseline_dir.path())?;
    println!("  baseline done in {}", secs(baseline.wall));
    let replay = replay(&workload, &actor.journal)?;
    println!("  replay done in {}", secs(replay.wall));

    let ratio = actor.measured.rate() / baseline.rate();
    let replay_rate = replay.rate();
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!("N (passages)      {n:>12}");
    println!("D (turnstiles)    {d:>12}");
    println!("in-flight window  {WINDOW:>12}");
    println!();
    row(["measurement", "events", "wall", "events/s", "target", ""]);
    for (name, m) in [
        ("actor path (append)", &actor.measured),
        ("baseline (raw rusqlite)", &baseline),
    ] {
        let events = m.events.to_string();
        row([name, &events, &secs(m.wall), &rate(m.rate()), "", ""]);
    }
    row([
        "ratio actor / baseline",
        "",
        "",
        &format!("{ratio:.3}"),
        &format!(">= {TARGET_RATIO}"),
        verdict(ratio >= TARGET_RATIO),
    ]);
    row([
        "replay (fold all)",
        &replay.events.to_string(),
        &secs(replay.wall),
        &rate(replay_rate),
        &format!(">= {}", rate(TARGET_REPLAY)),
        verdict(replay_rate >= TARGET_REPLAY),
    ]);
    println!();
    println!(
        "actor path: {} commits, {:.0} events per commit",
        actor.commits,
        actor.measured.events as f64 / actor.commits.max(1) as f64
    );
    println!("peak RSS: {}", peak_rss());
    Ok(())
}

/// What both write paths produce: N passages round-robin over D turnstiles, each from its own message id.
struct Workload {
    n: usize,
    devices: Vec<DeviceId>,
    start: Timestamp,
}

impl Workload {
    fn new(n: usize, d: usize) -> Self {
        let devices = (0..d)
            .map(|i| DeviceId::parse(&format!("T{i}")).expect("T<number> is a valid device id"))
            .collect();
        Self {
            n,
            devices,
            start: "2026-03-01T06:00:00Z".parse().expect("a valid instant"),
        }
    }

    fn device(&self, i: usize) -> &DeviceId {
        &self.devices[i % self.devices.len()]
    }

    /// Every other round goes out, so both counters move and the sanity check sees both.
    fn direction(&self, i: usize) -> Direction {
        if (i / self.devices.len()).is_multiple_of(2) {
            Direction::In
        } else {
            Direction::Out
        }
    }

    /// One microsecond apart: distinct, increasing device times.
    fn at(&self, i: usize) -> Timestamp {
        self.start + Duration::from_micros(i as u64)
    }

    fn msg_id(i: usize) -> String {
        format!("m{i}")
    }

    /// The first message of each device also brings it online (a `CameOnline` before the passage).
    fn is_first_for_device(&self, i: usize) -> bool {
        i < self.devices.len()
    }

    /// Events the journal gains from the N commands: N passages plus one `CameOnline` per device heard from.
    fn expected_events(&self) -> u64 {
        (self.n + self.n.min(self.devices.len())) as u64
    }

    fn config_text(&self) -> String {
        // `dir` is relative, so it resolves against the temp dir passed to `Config::parse`: no path quoting.
        let mut text = String::from("[storage]\ndir = \"data\"\n");
        for (i, id) in self.devices.iter().enumerate() {
            let _ = write!(
                text,
                "\n[[turnstile]]\nid = \"{id}\"\nname = \"Turnstile {i}\"\nzone = \"Zone {}\"\n",
                i % 10
            );
        }
        text
    }
}

struct Measured {
    events: u64,
    wall: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }
}

struct ActorRun {
    measured: Measured,
    commits: u64,
    /// Kept for the replay, which folds exactly what this run wrote.
    journal: std::path::PathBuf,
}

/// The real path: config → storage → writer thread → device actors, commands through the registry.
fn actor_path(workload: &Workload, dir: &Path) -> anyhow::Result<ActorRun> {
    let config = Config::parse(&workload.config_text(), "config.toml", dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let paths = StoragePaths::new(&config.storage.dir);
    paths.prepare()?;
    let journal = paths.journal();
    let (writer, writer_thread) = JournalWriter::open(&journal, config.storage.synchronous)?;
    let stats = writer.stats();
    let system = actix_web::rt::System::new();
    let (wall, head_before, commits_before, replies) = system.block_on(async {
        // Boot commissions every device (D `Commissioned` events); that is not part of the measurement.
        let registry = gatehouse::actors::start_devices(&config, writer.clone(), &journal, Default::default()).await?;
        let head_before = JournalReader::open(&journal)?.head()?;
        let commits_before = stats.commits();
        let registry = &registry;
        let started = Instant::now();
        let replies = futures_util::stream::iter(0..workload.n)
            .map(|i| async move {
                let command = DeviceCommand::RecordPassage {
                    direction: workload.direction(i),
                    at: workload.at(i),
                    seq: None,
                };
                let meta = gatehouse::actors::Meta {
                    causation: Some(Workload::msg_id(i)),
                    actor: gatehouse::journal::Actor::gateway("bench"),
                    delivery: None,
                };
                let outcome = registry
                    .execute_device(workload.device(i).as_str(), command, meta)
                    .await;
                (i, outcome)
            })
            .buffer_unordered(WINDOW)
            .fold(Replies::default(), |mut replies, (i, outcome)| async move {
                replies.check(workload, i, outcome);
                replies
            })
            .await;
        anyhow::Ok((started.elapsed(), head_before, commits_before, replies))
    })?;
    // Dropping the system drops the actors and their writer handles; with ours gone the writer finishes.
    drop(system);
    let commits = stats.commits() - commits_before;
    drop(writer);
    writer_thread.join();

    ensure!(
        replies.failures.is_empty(),
        "{} commands failed, first: {}",
        replies.failures.len(),
        replies.failures[0]
    );
    ensure!(
        replies.commands == workload.n,
        "{} replies for {} commands",
        replies.commands,
        workload.n
    );
    let head_after = JournalReader::open(&journal)?.head()?;
    let appended = head_after - head_before;
    ensure!(
        appended == workload.expected_events() && replies.events == appended,
        "journal grew by {appended}, replies counted {}, expected {}",
        replies.events,
        workload.expected_events()
    );
    Ok(ActorRun {
        measured: Measured { events: appended, wall },
        commits,
        journal,
    })
}

/// Tallies replies; each must be durable with exactly the events the workload implies.
#[derive(Default)]
struct Replies {
    commands: usize,
    events: u64,
    failures: Vec<String>,
}

impl Replies {
    fn check(
        &mut self,
        workload: &Workload,
        i: usize,
        outcome: Result<CommandOutcome, gatehouse::actors::CommandError>,
    ) {
        self.commands += 1;
        // A device's first passage also records it coming online: 2 events; every later one exactly 1.
        let expected = if workload.is_first_for_device(i) { 2 } else { 1 };
        match outcome {
            Ok(CommandOutcome::Recorded {
                events,
                position: Some(_),
            }) if events == expected => self.events += events as u64,
            other => self
                .failures
                .push(format!("command {i}: expected {expected} events, got {other:?}")),
        }
    }
}

/// The same rows, inserted by hand: one connection, prepared cached statements, fixed-size transactions.
/// Same columns and statements as `write_group` in `src/journal/writer.rs`, so the difference to the actor
/// path is what the actors, channels and the writer's bookkeeping cost.
fn baseline(workload: &Workload, dir: &Path) -> anyhow::Result<Measured> {
    let mut conn = gatehouse::db::open(&dir.join("journal.db"), Synchronous::Full)?;
    gatehouse::db::migrate_journal(&mut conn)?;
    const INSERT_EVENT: &str = "INSERT INTO events (position, stream_id, version, event_type, schema, format, \
                                occurred_at, recorded_at, causation, payload, actor) \
                                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    const INSERT_PROCESSED: &str = "INSERT OR IGNORE INTO processed_messages (stream_id, msg_id, position) \
                                    VALUES (?1, ?2, ?3)";

    // Untimed, like the actor path's boot: every stream starts with its `Commissioned` at version 1.
    let mut position: i64 = 0;
    let mut versions = vec![0_i64; workload.devices.len()];
    {
        let tx = conn.transaction()?;
        {
            let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
            let now = Timestamp::now().as_microsecond();
            for (k, id) in workload.devices.iter().enumerate() {
                let event = DeviceEvent::Commissioned(Commissioned {
                    kind: DeviceKind::Turnstile,
                    details: DeviceDetails {
                        name: format!("Turnstile {k}"),
                        zone: format!("Zone {}", k % 10),
                        ..DeviceDetails::default()
                    },
                    watches: vec![],
                    at: Timestamp::now(),
                });
                position += 1;
                versions[k] += 1;
                insert_row(&mut insert_event, position, id, versions[k], &event, now, None)?;
            }
        }
        tx.commit()?;
    }
    let head_before = position;

    let started = Instant::now();
    let mut i = 0;
    while i < workload.n {
        let end = (i + BASELINE_BATCH).min(workload.n);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
            let mut insert_processed = tx.prepare_cached(INSERT_PROCESSED)?;
            let recorded_at = Timestamp::now().as_microsecond();
            for i in i..end {
                let k = i % workload.devices.len();
                let id = &workload.devices[k];
                let at = workload.at(i);
                let msg_id = Workload::msg_id(i);
                let mut events = Vec::with_capacity(2);
                if workload.is_first_for_device(i) {
                    events.push(DeviceEvent::CameOnline(CameOnline { at }));
                }
                events.push(DeviceEvent::PassageRecorded(PassageRecorded {
                    direction: workload.direction(i),
                    at,
                    during_fault: false,
                    during_lockout: false,
                    seq: None,
                }));
                let head = position + events.len() as i64;
                insert_processed.execute(params![id.as_str(), msg_id, head])?;
                for event in &events {
                    position += 1;
                    versions[k] += 1;
                    insert_row(
                        &mut insert_event,
                        position,
                        id,
                        versions[k],
                        event,
                        recorded_at,
                        Some(&msg_id),
                    )?;
                }
            }
        }
        tx.commit()?;
        i = end;
    }
    let wall = started.elapsed();
    let events = (position - head_before) as u64;
    ensure!(
        events == workload.expected_events(),
        "baseline wrote {events} events, expected {}",
        workload.expected_events()
    );
    Ok(Measured { events, wall })
}

fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    position: i64,
    stream: &DeviceId,
    version: i64,
    event: &DeviceEvent,
    recorded_at: i64,
    causation: Option<&str>,
) -> rusqlite::Result<()> {
    let encoded = codec::encode_event(event);
    stmt.execute(params![
        position,
        stream.as_str(),
        version,
        encoded.event_type,
        encoded.schema,
        encoded.format,
        encoded.occurred_at.as_microsecond(),
        recorded_at,
        causation,
        encoded.payload,
        "gateway:bench",
    ])?;
    Ok(())
}

/// What a restart without snapshots or a projection rebuild does: read and fold every event of the journal.
fn replay(workload: &Workload, journal: &Path) -> anyhow::Result<Measured> {
    let reader = JournalReader::open(journal)?;
    let mut states: HashMap<gatehouse::domain::StreamName, TurnstileState> =
        HashMap::with_capacity(workload.devices.len());
    let mut events = 0_u64;
    let started = Instant::now();
    reader.for_each_after(0, |stored| {
        events += 1;
        let gatehouse::codec::AnyEvent::Device(event) = &stored.event else {
            return Ok(());
        };
        let state = states.entry(stored.stream_id).or_default();
        *state = Turnstile::evolve(std::mem::take(state), event);
        Ok(())
    })?;
    let wall = started.elapsed();

    let passages: u64 = states.values().map(|s| s.passages_in + s.passages_out).sum();
    ensure!(
        passages == workload.n as u64,
        "replay counted {passages} passages, expected {}",
        workload.n
    );
    ensure!(
        states.len() == workload.devices.len(),
        "replay found {} streams, expected {}",
        states.len(),
        workload.devices.len()
    );
    Ok(Measured { events, wall })
}

/// One line of the results table; empty trailing cells leave no trailing spaces.
fn row(cells: [&str; 6]) {
    let line = format!(
        "{:<26}{:>10}{:>10}{:>14}{:>16}{:>8}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
    );
    println!("{}", line.trim_end());
}
