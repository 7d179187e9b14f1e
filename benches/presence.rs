//! What identified passages, presence and occupancy cost per passage, in one run on the same journal:
//!
//! 1. **rebuild**: the read models rebuilt from position 0 with the `presence` and `occupancy` projectors, against
//!    the same rebuild without them (the baseline);
//! 2. **policies**: every event of the journal read and decided by the identification and occupancy policies,
//!    against the rebuild with the new projectors (they must decide at least twice as fast) and against reading
//!    the same events without deciding anything (their cost per passage).
//!
//! The journal: `GATEHOUSE_BENCH_PASSAGES` (default 200,000) passages over 100 turnstiles, 10 cameras each
//! watching 10 of them, 30 % of the passages with a recognition of a known person just before, and the identified
//! passages the identification policy recorded for them on the people's presence streams.
//!
//! Run with `cargo bench --bench presence`.

mod support;

use support::{env_count, rate, secs};

use anyhow::ensure;
use gatehouse::codec;
use gatehouse::config::{Config, OnError, Synchronous};
use gatehouse::db::StoragePaths;
use gatehouse::domain::presence::{PassageIdentified, PresenceEvent};
use gatehouse::domain::*;
use gatehouse::journal::{Actor, AppendRequest, JournalReader, JournalWriter};
use gatehouse::policy::Policy;
use jiff::{SignedDuration, Timestamp};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const TURNSTILES: usize = 100;
const CAMERAS: usize = 10;
const PEOPLE: usize = 2000;
/// Targets: the new projectors may cost the rebuild at most half its rate, and the new policies must decide
/// events at least twice as fast as the rebuild (with them) applies them, so they never hold the followers back.
const TARGET_REBUILD_RATIO: f64 = 0.5;
const TARGET_POLICY_RATIO: f64 = 2.0;

fn main() -> anyhow::Result<()> {
    let passages = env_count("GATEHOUSE_BENCH_PASSAGES", 200_000)?;
    let dir = tempfile::tempdir()?;
    let config = site_config(dir.path())?;
    let paths = StoragePaths::new(dir.path().join("data"));
    let seeded = Instant::now();
    let events = seed(&paths, &config, passages)?;
    println!(
        "gatehouse presence benchmark: {passages} passages, {events} events in all (seeded in {})",
        secs(seeded.elapsed())
    );

    let tz = config.site.timezone.clone();
    let without: Vec<Box<dyn gatehouse::projection::Projection>> = gatehouse::projection::all(&tz)
        .into_iter()
        .filter(|p| !matches!(p.name(), "presence" | "occupancy"))
        .collect();
    let rebuild = |projections| {
        let started = Instant::now();
        gatehouse::projection::rebuild::rebuild(
            projections,
            &paths.journal(),
            &paths.views(),
            &paths.dir.join("archive"),
            OnError::Stop,
            |_, _| {},
        )?;
        anyhow::Ok(started.elapsed())
    };
    let baseline = rebuild(without)?;
    let with = rebuild(gatehouse::projection::all(&tz))?;
    let views = rusqlite::Connection::open(paths.views())?;
    let identified: i64 = views.query_row("SELECT COUNT(*) FROM identified_passages", [], |r| r.get(0))?;
    ensure!(identified > 0, "the rebuild identified nobody");

    let read_only = policy_pass(&paths, &config, false)?;
    let decided = policy_pass(&paths, &config, true)?;
    let per_passage = |d: Duration| d.as_secs_f64() * 1e6 / passages as f64;
    let rebuild_ratio = baseline.as_secs_f64() / with.as_secs_f64();
    let policy_micros = per_passage(decided.saturating_sub(read_only));
    let policy_ratio = with.as_secs_f64() / decided.as_secs_f64();
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!(
        "{:<44} {:>10} {:>14} {:>12}",
        "measurement", "wall", "events/s", "target"
    );
    for (name, wall) in [
        ("rebuild without presence, occupancy", baseline),
        ("rebuild with them", with),
        ("read every event (baseline)", read_only),
        ("read + identification, occupancy policies", decided),
    ] {
        println!(
            "{name:<44} {:>10} {:>14}",
            secs(wall),
            rate(events as f64 / wall.as_secs_f64())
        );
    }
    println!(
        "{:<44} {:>10} {:>14.3} {:>12} {}",
        "rebuild rate ratio with / without",
        "",
        rebuild_ratio,
        format!(">= {TARGET_REBUILD_RATIO}"),
        verdict(rebuild_ratio >= TARGET_REBUILD_RATIO)
    );
    println!(
        "{:<44} {:>10} {:>14.3} {:>12} {}",
        "policy rate / rebuild rate (with them)",
        "",
        policy_ratio,
        format!(">= {TARGET_POLICY_RATIO}"),
        verdict(policy_ratio >= TARGET_POLICY_RATIO)
    );
    println!(
        "  per passage: the projectors {:.2} µs, the policies {policy_micros:.2} µs; {identified} identified passages",
        per_passage(with.saturating_sub(baseline))
    );
    Ok(())
}

fn site_config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut text = String::from("[storage]\ndir = \"data\"\nsynchronous = \"normal\"\n[mqtt]\nrequire_auth = false\n");
    for t in 0..TURNSTILES {
        let _ = write!(
            text,
            "\n[[turnstile]]\nid = \"T{t}\"\nname = \"T{t}\"\nzone = \"Zone {}\"\n",
            t / 10
        );
    }
    for c in 0..CAMERAS {
        let watches: Vec<String> = (0..10).map(|i| format!("\"T{}\"", c * 10 + i)).collect();
        let _ = write!(
            text,
            "\n[[camera]]\nid = \"C{c}\"\nname = \"C{c}\"\nzone = \"Zone {c}\"\nwatches = [{}]\n",
            watches.join(", ")
        );
    }
    Config::parse(&text, "config.toml", dir).map_err(|e| anyhow::anyhow!("{e}"))
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("a bench device id")
}

/// Writes the journal; returns how many events it holds.
fn seed(paths: &StoragePaths, config: &Config, passages: usize) -> anyhow::Result<usize> {
    paths.prepare()?;
    let mut conn = gatehouse::db::open(&paths.journal(), Synchronous::Full)?;
    gatehouse::db::migrate_journal(&mut conn)?;
    let vault = gatehouse::privacy::SubjectVault::on(conn)?;
    let start = Timestamp::now() - SignedDuration::from_hours(2);
    // Every event in journal order, as the site would record them: each face just before its rotation, and the
    // identified passage the policy records right after.
    let mut ordered: Vec<(StreamName, codec::EncodedEvent)> = Vec::new();
    let details = |name: String, zone: String| DeviceDetails {
        name,
        zone,
        serial: None,
        model: None,
        manufacturer: None,
    };
    for turnstile in &config.turnstiles {
        let event = DeviceEvent::Commissioned(Commissioned {
            kind: DeviceKind::Turnstile,
            details: details(turnstile.id.to_string(), turnstile.details.zone.clone()),
            watches: vec![],
            at: start,
        });
        ordered.push((StreamName::parse(turnstile.id.as_str())?, codec::encode_event(&event)));
    }
    for camera in &config.cameras {
        let event = DeviceEvent::Commissioned(Commissioned {
            kind: DeviceKind::Camera,
            details: details(camera.id.to_string(), camera.details.zone.clone()),
            watches: camera.watches.clone(),
            at: start,
        });
        ordered.push((StreamName::parse(camera.id.as_str())?, codec::encode_event(&event)));
    }
    for n in 0..passages {
        let t = n % TURNSTILES;
        let at = start + SignedDuration::from_millis(n as i64 * 20);
        let direction = if (n / TURNSTILES).is_multiple_of(2) {
            Direction::In
        } else {
            Direction::Out
        };
        let turnstile = StreamName::parse(&format!("T{t}"))?;
        let rotation = DeviceEvent::PassageRecorded(PassageRecorded {
            direction,
            at,
            during_fault: false,
            during_lockout: false,
            seq: None,
        });
        if n % 10 < 3 {
            let identifier = SubjectId::parse(&format!("P-{}", n / 10 % PEOPLE)).map_err(|e| anyhow::anyhow!(e))?;
            let subject = vault.seal(&identifier)?;
            let face = DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject: Some(subject.clone()),
                confidence: Confidence::new(0.95).expect("a confidence"),
                at: at - SignedDuration::from_millis(300),
                seq: None,
            });
            ordered.push((StreamName::parse(&format!("C{}", t / 10))?, codec::encode_event(&face)));
            ordered.push((turnstile, codec::encode_event(&rotation)));
            let identified = PresenceEvent::PassageIdentified(PassageIdentified {
                subject: subject.clone(),
                turnstile: id(&format!("T{t}")),
                camera: id(&format!("C{}", t / 10)),
                zone: format!("Zone {}", t / 10),
                direction,
                confidence: Confidence::new(0.95).expect("a confidence"),
                at,
            });
            let person = StreamName::of(Presence::KIND, subject.pseudonym.as_str())?;
            ordered.push((person, codec::encode_event(&identified)));
        } else {
            ordered.push((turnstile, codec::encode_event(&rotation)));
        }
    }
    let total = ordered.len();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (writer, thread) = JournalWriter::open(&paths.journal(), Synchronous::Normal)?;
        let mut versions: std::collections::HashMap<String, u64> = Default::default();
        // Appends in flight at once (different streams' appends share group commits); one stream's in order.
        let mut pending = futures_util::stream::FuturesOrdered::new();
        for (stream, event) in ordered {
            let version = versions.entry(stream.to_string()).or_default();
            let expected_version = *version;
            *version += 1;
            pending.push_back(writer.append(AppendRequest {
                stream,
                expected_version,
                events: vec![event],
                causation: None,
                actor: Actor::config(),
                delivery: None,
            }));
            if pending.len() >= 256 {
                use futures_util::StreamExt;
                if let Some(outcome) = pending.next().await {
                    outcome?;
                }
            }
        }
        use futures_util::StreamExt;
        while let Some(outcome) = pending.next().await {
            outcome?;
        }
        drop(writer);
        thread.join();
        anyhow::Ok(())
    })?;
    Ok(total)
}

/// Reads every event of the journal in follower-sized batches and, with `decide`, lets the identification and
/// occupancy policies decide each; returns the wall time.
fn policy_pass(paths: &StoragePaths, config: &Config, decide: bool) -> anyhow::Result<Duration> {
    let reader = JournalReader::open(&paths.journal())?;
    let mut policies: Vec<Box<dyn Policy>> = vec![
        Box::new(gatehouse::policy::IdentificationPolicy::new(config)),
        Box::new(gatehouse::policy::OccupancyPolicy::new(config)),
    ];
    let started = Instant::now();
    let (mut after, mut orders) = (0, 0usize);
    loop {
        let batch = reader.events_after(after, 1000)?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        if decide {
            for event in &batch {
                for policy in &mut policies {
                    orders += policy.react(event).map_err(|e| anyhow::anyhow!(e))?.len();
                }
            }
        }
    }
    ensure!(!decide || orders > 0, "the policies decided nothing");
    Ok(started.elapsed())
}
