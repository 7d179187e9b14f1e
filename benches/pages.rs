//! Report pages over a year of data: N events (default 10,000,000) for a site of 100 turnstiles in 10 zones and
//! 20 cameras, one year up to yesterday in the site's time zone (Europe/Berlin), then the real server under `wrk`:
//!
//! 1. **build**: the journal written with a plain batched rusqlite insert into a fresh `journal.db`, rows exactly
//!    as the journal writer writes them (`codec::encode_event`, causation NULL); every device's `Commissioned`
//!    first. Passages follow a weekday rush-hour shape in local time (weekends quieter), cameras see known and
//!    unknown faces, devices report and clear faults and go offline and come back. Seeded, so every run builds the
//!    same journal. Cached under `target/bench-pages-N/` (a marker file says it is complete), so re-runs skip it;
//!
//! 2. **project**: `projection::catch_up` of every projection into `views.db`, timed per projection (that is the
//!    rebuild speed). Cached too, keyed by the view migrations and projection sources, so a changed read model is
//!    projected again;
//!
//! 3. **serve**: the release binary `gatehouse serve` with that data directory and an API token, and per URL: one
//!    plain request that must answer 200 (timed as "first": nothing is kept from an earlier request yet), then `wrk` (2 threads, 8 connections, `--latency`) for a few seconds.
//!    `/healthz` (public, trivial) is the baseline: ratios are p99 / its p99 from the same run. Target: every
//!    report page and the dashboard answer within 20 ms at p99 (a CSV export, a 1.6 MB download, is shown for
//!    reference with its throughput);
//!
//! 4. the server's peak RSS (VmHWM) before it is stopped;
//!
//! 5. **archive** (`GATEHOUSE_BENCH_ARCHIVE=0` skips it): a copy of the data directory archives the whole year
//!    (`gatehouse archive --before`: events per second, `journal.db` before and after), then the report URLs
//!    are loaded again and their p99 compared with the p99 before archiving from the same run.
//!
//! Needs `wrk` on PATH (`apt-get install wrk`). Run with `cargo bench --bench pages`; `GATEHOUSE_BENCH_EVENTS`
//! (default 10,000,000) and `GATEHOUSE_BENCH_SECS` (seconds of load per URL, default 10) change the size.

mod support;

use support::server::{Server, build_server, target_dir};
use support::{env_count, ms, rate, secs};

use anyhow::{Context, anyhow, bail, ensure};
use gatehouse::codec;
use gatehouse::config::Synchronous;
use gatehouse::db::StoragePaths;
use gatehouse::domain::{
    CameOnline, Commissioned, Confidence, DeviceDetails, DeviceEvent, DeviceId, DeviceKind, Direction, FaultCleared,
    FaultCode, FaultReported, PassageRecorded, RecognitionRecorded, SubjectId, WentOffline,
};
use gatehouse::journal::JournalReader;
use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use rusqlite::params;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TURNSTILES: usize = 100;
const ZONES: usize = 10;
const CAMERAS: usize = 20;
/// Known people the cameras can recognize.
const SUBJECTS: usize = 2000;
/// Share of the events that are recognitions (the rest, apart from a few thousand faults and outages, passages).
const RECOGNITION_SHARE: f64 = 0.1;
const TIMEZONE: &str = "Europe/Berlin";
/// Rows per transaction while building the journal.
const BUILD_BATCH: usize = 50_000;
/// wrk's load: two threads (two cores), eight connections in all.
const WRK_THREADS: usize = 2;
const WRK_CONNECTIONS: usize = 8;
/// Target: every report page within 20 ms at p99 under that load.
const TARGET_P99: Duration = Duration::from_millis(20);

/// Passages per local hour of a weekday, relative: quiet nights, a morning and an evening rush, a lunch bump.
const WEEKDAY_SHAPE: [f64; 24] = [
    0.02, 0.01, 0.01, 0.01, 0.03, 0.15, 0.6, 1.7, 2.3, 1.3, 0.7, 0.7, 1.0, 0.9, 0.7, 0.8, 1.5, 2.1, 1.3, 0.6, 0.35,
    0.2, 0.1, 0.05,
];
/// Weekends see a quarter of a weekday's traffic, spread over the day.
const WEEKEND_FACTOR: f64 = 0.25;

fn main() -> anyhow::Result<()> {
    let n = env_count("GATEHOUSE_BENCH_EVENTS", 10_000_000)?;
    let load_secs = env_count("GATEHOUSE_BENCH_SECS", 10)?;
    ensure!(n >= 10_000, "GATEHOUSE_BENCH_EVENTS must be at least 10,000");
    ensure!(load_secs > 0, "GATEHOUSE_BENCH_SECS must be at least 1");
    let wrk_version = Command::new("wrk").arg("--version").output();
    ensure!(
        wrk_version.is_ok(),
        "wrk is not installed (apt-get install -y wrk): this benchmark loads the pages with it"
    );

    let tz = TimeZone::get(TIMEZONE)?;
    let site = Site::new();
    let root = target_dir()?.join(format!("bench-pages-{n}"));
    let paths = StoragePaths::new(root.join("data"));
    println!(
        "gatehouse pages benchmark: {n} events, {TURNSTILES} turnstiles in {ZONES} zones and {CAMERAS} cameras, \
         one year in {TIMEZONE}; data in {}",
        root.display()
    );

    let binary = build_server()?;
    let year = journal(&root, &paths, &site, n, &tz)?;
    project(&root, &paths, &tz)?;

    let from = year.from.to_string();
    let to = year.to.to_string();
    let span = format!("from={from}&to={to}");
    let urls = [
        "/healthz".to_owned(),
        format!("/reports/traffic?{span}&bucket=day"),
        format!("/reports/traffic?{span}&bucket=day&format=csv"),
        format!("/reports/traffic?{span}&bucket=day&zone=Zone%203"),
        format!("/reports/equipment?{span}"),
        format!("/reports/recognitions?{span}&bucket=day"),
        "/".to_owned(),
    ];

    let token = gatehouse::auth::create_token(
        &gatehouse::auth::open(&paths.journal())?,
        "bench",
        gatehouse::auth::Role::Manager,
    )?;
    let head_before = JournalReader::open(&paths.journal())?.head()?;
    let server = Server::start(&binary, &root, &|port| site.config(port))?;
    let head_after = JournalReader::open(&paths.journal())?.head()?;
    println!(
        "  server up in {} (boot appended {} events), loading each URL for {load_secs} s",
        secs(server.boot),
        head_after - head_before
    );

    let mut results = Vec::new();
    for url in &urls {
        // The first request of a URL works everything out (nothing kept from an earlier request yet).
        let first_started = Instant::now();
        let (status, bytes) = server.get(url, &token)?;
        let first = first_started.elapsed();
        ensure!(
            status == 200,
            "GET {url} answered {status}, not 200 (server log: {})",
            server.log.display()
        );
        let measured = wrk(server.port, url, &token, load_secs)?;
        println!(
            "  {url}: first {}, then {} req/s, p99 {} ({bytes} bytes)",
            ms(first),
            rate(measured.requests_per_sec),
            ms(measured.p99)
        );
        results.push((url.clone(), bytes, first, measured));
    }
    let rss = server.peak_rss();
    server.stop()?;

    let baseline_p99 = results[0].3.p99;
    println!();
    println!("N (events)             {:>12}", year.events);
    println!("period                 {from} to {to} ({TIMEZONE})");
    println!("wrk                    {WRK_THREADS} threads, {WRK_CONNECTIONS} connections, {load_secs} s per URL");
    println!();
    table_row(["URL", "bytes", "first", "req/s", "p50", "p99", "p99/base", "target", ""]);
    let mut export_rate = 0.0;
    for (i, (url, bytes, first, m)) in results.iter().enumerate() {
        let is_baseline = i == 0;
        // A CSV export is a download, not a page: measured and shown (with its throughput), held to no page target.
        let is_export = url.ends_with("format=csv");
        // A page that completed no request at all within the run has no p99 worth the name: missed.
        let ok = m.requests > 0 && m.errors == 0 && m.p99 < TARGET_P99;
        let short = url.replace(&span, "Y");
        table_row([
            &short,
            &bytes.to_string(),
            &ms(*first),
            &rate(m.requests_per_sec),
            &ms(m.p50),
            &ms(m.p99),
            &if is_baseline {
                "1.0".to_owned()
            } else {
                format!("{:.1}", m.p99.as_secs_f64() / baseline_p99.as_secs_f64())
            },
            if is_baseline {
                "baseline"
            } else if is_export {
                "export"
            } else {
                "< 20 ms"
            },
            if is_baseline {
                ""
            } else if is_export {
                export_rate = m.requests_per_sec * *bytes as f64 / 1e6;
                ""
            } else if ok {
                "ok"
            } else {
                "MISSED"
            },
        ]);
        if m.errors > 0 || m.requests == 0 {
            println!(
                "    ({} requests completed, {} errors or non-2xx responses)",
                m.requests, m.errors
            );
        }
    }
    println!("(Y = {span}; first = the URL's first request, before anything was kept)");
    if export_rate > 0.0 {
        println!("CSV export under the same load: {export_rate:.0} MB/s");
    }
    println!();
    println!("server peak RSS: {rss}");
    if env_count("GATEHOUSE_BENCH_ARCHIVE", 1)? > 0 {
        archive_the_year(
            &binary,
            &root,
            &site,
            &urls[1..],
            &results[1..],
            &token,
            load_secs,
            &year,
        )?;
    }
    Ok(())
}

/// Phase 5, unless `GATEHOUSE_BENCH_ARCHIVE=0`: a copy of the data directory archives the whole year with
/// `gatehouse archive --before` (events per second, `journal.db` before and after), then the same report URLs
/// are loaded again: their p99 after archiving against their p99 before, from this run.
#[allow(clippy::too_many_arguments)]
fn archive_the_year(
    binary: &Path,
    root: &Path,
    site: &Site,
    urls: &[String],
    before: &[(String, usize, Duration, Load)],
    token: &str,
    load_secs: usize,
    year: &Year,
) -> anyhow::Result<()> {
    let copy = root.join("archived");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join("data"))?;
    for file in ["journal.db", "journal.db-wal", "views.db", "views.db-wal"] {
        let from = root.join("data").join(file);
        if from.exists() {
            std::fs::copy(&from, copy.join("data").join(file))?;
        }
    }
    std::fs::write(copy.join("config.toml"), site.config(0))?;
    let size = |file: &str| std::fs::metadata(copy.join("data").join(file)).map_or(0, |m| m.len());
    let journal_before = size("journal.db") + size("journal.db-wal");
    let day_after = year.to.tomorrow()?.to_string();
    let started = Instant::now();
    let output = Command::new(binary)
        .arg("--config")
        .arg(copy.join("config.toml"))
        .args(["archive", "--before", &day_after])
        .output()?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "gatehouse archive failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let archived: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("archived ")?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    let journal_after = size("journal.db") + size("journal.db-wal");
    let archive_bytes: u64 = std::fs::read_dir(copy.join("archive"))
        .map(|dir| dir.flatten().map(|f| f.metadata().map_or(0, |m| m.len())).sum())
        .unwrap_or(0);
    println!();
    println!(
        "archive: {archived} events in {} ({} events/s); journal.db {:.1} MB -> {:.1} MB; archive files {:.1} MB",
        secs(took),
        rate(archived as f64 / took.as_secs_f64()),
        journal_before as f64 / 1e6,
        journal_after as f64 / 1e6,
        archive_bytes as f64 / 1e6
    );
    for line in stdout.lines().filter(|l| l.starts_with("held back")) {
        println!("  {line}");
    }
    let server = Server::start(binary, &copy, &|port| site.config(port))?;
    let span = format!("from={}&to={}", year.from, year.to);
    table_row([
        "URL, after archiving",
        "",
        "",
        "req/s",
        "p50",
        "p99",
        "was p99",
        "ratio",
        "",
    ]);
    for (url, (_, _, _, was)) in urls.iter().zip(before) {
        let (status, _) = server.get(url, token)?;
        ensure!(status == 200, "GET {url} after archiving answered {status}");
        let now = wrk(server.port, url, token, load_secs)?;
        table_row([
            &url.replace(&span, "Y"),
            "",
            "",
            &rate(now.requests_per_sec),
            &ms(now.p50),
            &ms(now.p99),
            &ms(was.p99),
            &format!("{:.2}", now.p99.as_secs_f64() / was.p99.as_secs_f64().max(1e-6)),
            "",
        ]);
    }
    server.stop()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// The site

struct Device {
    id: DeviceId,
    kind: DeviceKind,
    details: DeviceDetails,
    watches: Vec<DeviceId>,
}

/// Turnstiles `T0..T99` (zone `Zone {i % 10}`), then cameras `C0..C19`, each watching two turnstiles of its zone.
struct Site {
    devices: Vec<Device>,
}

impl Site {
    fn new() -> Site {
        let id = |s: String| DeviceId::parse(&s).expect("a valid device id");
        let mut devices = Vec::with_capacity(TURNSTILES + CAMERAS);
        for i in 0..TURNSTILES {
            devices.push(Device {
                id: id(format!("T{i}")),
                kind: DeviceKind::Turnstile,
                details: DeviceDetails {
                    name: format!("Turnstile {i}"),
                    zone: format!("Zone {}", i % ZONES),
                    ..DeviceDetails::default()
                },
                watches: vec![],
            });
        }
        for i in 0..CAMERAS {
            let zone = i % ZONES;
            devices.push(Device {
                id: id(format!("C{i}")),
                kind: DeviceKind::Camera,
                details: DeviceDetails {
                    name: format!("Camera {i}"),
                    zone: format!("Zone {zone}"),
                    ..DeviceDetails::default()
                },
                watches: vec![id(format!("T{zone}")), id(format!("T{}", zone + ZONES))],
            });
        }
        Site { devices }
    }

    fn config(&self, port: u16) -> String {
        let mut text = format!(
            "[site]\nname = \"Bench site\"\ntimezone = \"{TIMEZONE}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:0\"\nrequire_auth = false\n\n[storage]\ndir = \"data\"\n"
        );
        for d in &self.devices {
            let table = match d.kind {
                DeviceKind::Turnstile => "turnstile",
                DeviceKind::Camera => "camera",
            };
            let _ = write!(
                text,
                "\n[[{table}]]\nid = \"{}\"\nname = \"{}\"\nzone = \"{}\"\n",
                d.id, d.details.name, d.details.zone
            );
            if d.kind == DeviceKind::Camera {
                let watches: Vec<String> = d.watches.iter().map(|w| format!("\"{w}\"")).collect();
                let _ = writeln!(text, "watches = [{}]", watches.join(", "));
            }
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Building the journal

/// The year the journal covers, in local dates, and how many events it holds.
struct Year {
    from: Date,
    to: Date,
    events: u64,
}

/// splitmix64: small, fast and good enough for traffic that must only look plausible and be the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A device event in time order, for device `dev` (index into the site's devices).
struct Planned {
    at: i64,
    dev: usize,
    what: What,
}

enum What {
    Passage(Direction),
    Recognition(Option<usize>, f64),
    Fault(usize),
    Clear(usize),
    Offline,
    Online,
}

const TURNSTILE_FAULTS: [(&str, &str); 4] = [
    ("JAM", "rotor blocked"),
    ("DOOR_FORCED", "wing pushed open against the drive"),
    ("SENSOR", "optical barrier dirty"),
    ("POWER", "supply voltage low"),
];
const CAMERA_FAULTS: [(&str, &str); 2] = [("LENS_DIRTY", "image contrast low"), ("IR_FAIL", "IR illuminator off")];

/// The journal for `n` events, built unless the cache has it; the period it covers comes from the cache marker.
fn journal(root: &Path, paths: &StoragePaths, site: &Site, n: usize, tz: &TimeZone) -> anyhow::Result<Year> {
    let marker = root.join("journal.complete");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut parts = text.split_whitespace();
        if let (Some(from), Some(to), Some(events)) = (parts.next(), parts.next(), parts.next()) {
            println!("  journal: cached ({events} events, {from} to {to})");
            return Ok(Year {
                from: from.parse()?,
                to: to.parse()?,
                events: events.parse()?,
            });
        }
    }
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("{}: cannot remove", root.display()))?;
    }
    paths.prepare()?;
    let started = Instant::now();
    let year = build_journal(paths, site, n, tz)?;
    let wall = started.elapsed();
    println!(
        "  journal: built {} events in {} ({} events/s)",
        year.events,
        secs(wall),
        rate(year.events as f64 / wall.as_secs_f64())
    );
    std::fs::write(&marker, format!("{} {} {}\n", year.from, year.to, year.events))?;
    Ok(year)
}

fn build_journal(paths: &StoragePaths, site: &Site, n: usize, tz: &TimeZone) -> anyhow::Result<Year> {
    let mut rng = Rng(0x6761_7465_686f_7573);
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let to = today.yesterday()?;
    let mut from = today;
    for _ in 0..365 {
        from = from.yesterday()?;
    }
    let start = from
        .to_zoned_datetime(tz.clone())?
        .start_of_day()?
        .timestamp()
        .as_microsecond();
    let end = today
        .to_zoned_datetime(tz.clone())?
        .start_of_day()?
        .timestamp()
        .as_microsecond();
    const HOUR: i64 = 3_600_000_000;
    const MINUTE: i64 = 60_000_000;

    // The hours of the year (real hours: a daylight-saving day has 23 or 25) and their share of the traffic.
    let hours: Vec<(i64, f64)> = (0..)
        .map(|h| start + h * HOUR)
        .take_while(|&at| at < end)
        .map(|at| {
            let local = Timestamp::from_microsecond(at)
                .expect("within range")
                .to_zoned_datetime(tz.clone());
            let weekend = matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday);
            let weight = WEEKDAY_SHAPE[local.hour() as usize];
            (at, if weekend { weight * WEEKEND_FACTOR } else { weight })
        })
        .collect();
    let total_weight: f64 = hours.iter().map(|h| h.1).sum();

    // Faults and outages per device: a fault about every ten days, an outage about every two weeks (fewer when
    // N is small, so passages stay the bulk).
    let devices = site.devices.len();
    let faults_per_device = (n / 20_000).clamp(1, 36);
    let outages_per_device = (n / 30_000).clamp(1, 24);
    let mut specials = Vec::new();
    for dev in 0..devices {
        let codes = if dev < TURNSTILES {
            TURNSTILE_FAULTS.len()
        } else {
            CAMERA_FAULTS.len()
        };
        for (count, min, max, kind) in [
            (faults_per_device, 2 * MINUTE, 180 * MINUTE, 0),
            (outages_per_device, MINUTE, 90 * MINUTE, 1),
        ] {
            // Episodes in slots of equal length, so one never overlaps the next.
            let slot = (end - start) / count as i64;
            for k in 0..count as i64 {
                let length = min + rng.below((max - min) as u64) as i64;
                let opened = start + k * slot + rng.below((slot - length - MINUTE).max(1) as u64) as i64;
                let (first, second) = if kind == 0 {
                    let code = rng.below(codes as u64) as usize;
                    (What::Fault(code), What::Clear(code))
                } else {
                    (What::Offline, What::Online)
                };
                specials.push(Planned {
                    at: opened,
                    dev,
                    what: first,
                });
                specials.push(Planned {
                    at: opened + length,
                    dev,
                    what: second,
                });
            }
        }
    }
    specials.sort_by_key(|p| p.at);

    let initial = 2 * devices;
    let remaining = n.saturating_sub(initial + specials.len()) as f64;
    let recognitions_total = (remaining * RECOGNITION_SHARE).round();
    let passages_total = remaining - recognitions_total;

    let conn = gatehouse::db::open(&paths.journal(), Synchronous::Normal)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let mut writer = RowWriter {
        conn: &conn,
        position: 0,
        versions: vec![0; devices],
        pending: 0,
    };

    // Every device commissioned and online a day before the year starts.
    let before = start - 24 * HOUR;
    for (dev, d) in site.devices.iter().enumerate() {
        let event = DeviceEvent::Commissioned(Commissioned {
            kind: d.kind,
            details: d.details.clone(),
            watches: d.watches.clone(),
            at: ts(before),
        });
        writer.write(site, dev, &event)?;
    }
    for dev in 0..devices {
        writer.write(site, dev, &DeviceEvent::CameOnline(CameOnline { at: ts(before + 1) }))?;
    }

    // Each person sealed once, as ingest would the first time a camera names them.
    let vault = gatehouse::privacy::SubjectVault::open(&paths.journal())?;
    let subjects: Vec<gatehouse::domain::Subject> = (0..SUBJECTS)
        .map(|i| vault.seal(&SubjectId::parse(&format!("P-{:04}", 1000 + i)).expect("a valid subject")))
        .collect::<anyhow::Result<_>>()?;
    let turnstile_codes: Vec<FaultCode> = TURNSTILE_FAULTS
        .iter()
        .map(|(c, _)| FaultCode::parse(c).expect("a valid code"))
        .collect();
    let camera_codes: Vec<FaultCode> = CAMERA_FAULTS
        .iter()
        .map(|(c, _)| FaultCode::parse(c).expect("a valid code"))
        .collect();
    let mut online = vec![true; devices];
    let mut open_fault: Vec<Option<usize>> = vec![None; devices];
    let mut next_special = 0;
    let (mut cum_weight, mut passages_done, mut recognitions_done) = (0.0, 0.0_f64, 0.0_f64);
    let mut planned = Vec::new();
    for &(hour_start, weight) in &hours {
        cum_weight += weight;
        let share = cum_weight / total_weight;
        let passages = (passages_total * share).round() - passages_done;
        let recognitions = (recognitions_total * share).round() - recognitions_done;
        passages_done += passages;
        recognitions_done += recognitions;
        let local_hour = Timestamp::from_microsecond(hour_start)?
            .to_zoned_datetime(tz.clone())
            .hour();
        // Mornings come in, evenings go out.
        let p_in = match local_hour {
            0..=11 => 0.8,
            12..=14 => 0.5,
            _ => 0.2,
        };
        planned.clear();
        for _ in 0..passages as u64 {
            let direction = if rng.unit() < p_in {
                Direction::In
            } else {
                Direction::Out
            };
            planned.push(Planned {
                at: hour_start + rng.below(HOUR as u64) as i64,
                dev: rng.below(TURNSTILES as u64) as usize,
                what: What::Passage(direction),
            });
        }
        for _ in 0..recognitions as u64 {
            let what = if rng.unit() < 0.7 {
                // Some people pass often, most rarely: squaring skews towards low subject numbers.
                let s = (rng.unit() * rng.unit() * SUBJECTS as f64) as usize;
                What::Recognition(Some(s), 0.75 + rng.unit() * 0.24)
            } else {
                What::Recognition(None, 0.3 + rng.unit() * 0.4)
            };
            planned.push(Planned {
                at: hour_start + rng.below(HOUR as u64) as i64,
                dev: TURNSTILES + rng.below(CAMERAS as u64) as usize,
                what,
            });
        }
        while next_special < specials.len() && specials[next_special].at < hour_start + HOUR {
            let s = &specials[next_special];
            let what = match s.what {
                What::Fault(c) => What::Fault(c),
                What::Clear(c) => What::Clear(c),
                What::Offline => What::Offline,
                What::Online => What::Online,
                What::Passage(_) | What::Recognition(..) => unreachable!("only faults and outages are special"),
            };
            planned.push(Planned {
                at: s.at,
                dev: s.dev,
                what,
            });
            next_special += 1;
        }
        planned.sort_by_key(|p| p.at);

        for p in &planned {
            let at = ts(p.at);
            let mut dev = p.dev;
            let event = match &p.what {
                What::Passage(direction) => {
                    // An unreachable turnstile sends nothing: its passage is counted by the next one that works.
                    while !online[dev] {
                        dev = (dev + 1) % TURNSTILES;
                    }
                    DeviceEvent::PassageRecorded(PassageRecorded {
                        direction: *direction,
                        at,
                        during_fault: open_fault[dev].is_some(),
                        during_lockout: false,
                        seq: None,
                    })
                }
                What::Recognition(subject, confidence) => {
                    while !online[dev] {
                        dev = TURNSTILES + (dev - TURNSTILES + 1) % CAMERAS;
                    }
                    DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                        subject: subject.map(|s| subjects[s].clone()),
                        confidence: Confidence::new(*confidence).expect("within 0..=1"),
                        at,
                        seq: None,
                    })
                }
                What::Fault(c) => {
                    if open_fault[dev].is_some() {
                        continue;
                    }
                    open_fault[dev] = Some(*c);
                    let (code, detail) = if dev < TURNSTILES {
                        (turnstile_codes[*c].clone(), TURNSTILE_FAULTS[*c].1)
                    } else {
                        (camera_codes[*c].clone(), CAMERA_FAULTS[*c].1)
                    };
                    DeviceEvent::FaultReported(FaultReported {
                        code,
                        detail: detail.to_owned(),
                        at,
                        seq: None,
                    })
                }
                What::Clear(c) => {
                    if open_fault[dev] != Some(*c) {
                        continue;
                    }
                    open_fault[dev] = None;
                    let code = if dev < TURNSTILES {
                        turnstile_codes[*c].clone()
                    } else {
                        camera_codes[*c].clone()
                    };
                    DeviceEvent::FaultCleared(FaultCleared { code, at, seq: None })
                }
                What::Offline => {
                    if !online[dev] {
                        continue;
                    }
                    online[dev] = false;
                    DeviceEvent::WentOffline(WentOffline { at })
                }
                What::Online => {
                    if online[dev] {
                        continue;
                    }
                    online[dev] = true;
                    DeviceEvent::CameOnline(CameOnline { at })
                }
            };
            writer.write(site, dev, &event)?;
        }
        if writer.position % 1_000_000 < planned.len() as i64 && writer.position >= 1_000_000 {
            println!("    {} events written", writer.position / 1_000_000 * 1_000_000);
        }
    }
    writer.finish()?;
    drop(conn);
    let events = JournalReader::open(&paths.journal())?.head()?;
    Ok(Year { from, to, events })
}

/// Appends rows the way the journal writer does, in transactions of `BUILD_BATCH` rows.
struct RowWriter<'c> {
    conn: &'c rusqlite::Connection,
    position: i64,
    versions: Vec<i64>,
    pending: usize,
}

impl RowWriter<'_> {
    fn write(&mut self, site: &Site, dev: usize, event: &DeviceEvent) -> anyhow::Result<()> {
        if self.pending == 0 {
            self.conn.execute_batch("BEGIN")?;
        }
        self.position += 1;
        self.versions[dev] += 1;
        let encoded = codec::encode_event(event);
        let occurred_at = gatehouse::domain::DomainEvent::occurred_at(event).as_microsecond();
        self.conn
            .prepare_cached(
                "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at,
                                     recorded_at, causation, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
            )?
            .execute(params![
                self.position,
                site.devices[dev].id.as_str(),
                self.versions[dev],
                encoded.event_type,
                encoded.schema,
                encoded.format,
                occurred_at,
                // Committed a little after the device saw it, as a gateway's round trip takes.
                occurred_at + 20_000,
                encoded.payload,
            ])?;
        self.pending += 1;
        if self.pending >= BUILD_BATCH {
            self.conn.execute_batch("COMMIT")?;
            self.pending = 0;
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.pending > 0 {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).expect("within jiff's range")
}

// ---------------------------------------------------------------------------------------------------------------
// Projecting

/// Catches every projection up into `views.db`, unless the cache holds views projected by the same read models.
fn project(root: &Path, paths: &StoragePaths, tz: &TimeZone) -> anyhow::Result<()> {
    let marker = root.join("views.complete");
    let fingerprint = read_model_fingerprint()?;
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == fingerprint) {
        println!("  views: cached (read models unchanged)");
        return Ok(());
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", paths.views().display()));
        if file.exists() {
            std::fs::remove_file(&file)?;
        }
    }
    let mut views = gatehouse::db::open(&paths.views(), Synchronous::Normal)?;
    gatehouse::db::migrate_views(&mut views)?;
    let reader = JournalReader::open(&paths.journal())?;
    let head = reader.head()?;
    for mut projection in gatehouse::projection::all(tz) {
        let started = Instant::now();
        let position = gatehouse::projection::catch_up(
            projection.as_mut(),
            &reader,
            &mut views,
            gatehouse::config::OnError::Park,
            |_| {},
        )?;
        let wall = started.elapsed();
        ensure!(
            position == head,
            "{} stopped at {position} of {head}",
            projection.name()
        );
        println!(
            "  projected {:<14} {head} events in {} ({} events/s)",
            projection.name(),
            secs(wall),
            rate(head as f64 / wall.as_secs_f64())
        );
    }
    std::fs::write(&marker, format!("{fingerprint}\n"))?;
    Ok(())
}

/// Changes whenever a view migration or a projection's source changes, so cached views are never stale.
fn read_model_fingerprint() -> anyhow::Result<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["migrations/views", "src/projection"] {
        for entry in std::fs::read_dir(manifest.join(dir))? {
            files.push(entry?.path());
        }
    }
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file)?.hash(&mut hasher);
    }
    Ok(format!("{:016x}", hasher.finish()))
}

// ---------------------------------------------------------------------------------------------------------------
// wrk

struct Load {
    /// Requests completed in the run.
    requests: u64,
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Socket errors, timeouts and non-2xx/3xx responses.
    errors: u64,
}

fn wrk(port: u16, path: &str, token: &str, secs: usize) -> anyhow::Result<Load> {
    let output = Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "10s", "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .context("cannot run wrk (apt-get install -y wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed for {path}: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output for {path}:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Load> {
    let mut load = Load {
        requests: 0,
        requests_per_sec: f64::NAN,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        errors: 0,
    };
    let (mut p50, mut p99) = (None, None);
    for line in text.lines().map(str::trim) {
        if let Some((count, _)) = line.split_once(" requests in ") {
            // "1234 requests in 10.00s, 5.67MB read"
            load.requests = count.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            load.requests_per_sec = rest.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = Some(wrk_duration(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = Some(wrk_duration(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.errors += rest.trim().parse::<u64>()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                if let Some(count) = part.split_whitespace().nth(1) {
                    load.errors += count.parse::<u64>()?;
                }
            }
        }
    }
    load.p50 = p50.context("no 50% line")?;
    load.p99 = p99.context("no 99% line")?;
    ensure!(load.requests_per_sec.is_finite(), "no Requests/sec line");
    Ok(load)
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`, `1.50m`.
fn wrk_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| anyhow!("{text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => bail!("unknown unit {other:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// One line of the results table; empty trailing cells leave no trailing spaces.
fn table_row(cells: [&str; 9]) {
    let line = format!(
        "{:<44}{:>10}{:>11}{:>9}{:>11}{:>11}{:>10}{:>10}{:>8}",
        cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7], cells[8]
    );
    println!("{}", line.trim_end());
}
