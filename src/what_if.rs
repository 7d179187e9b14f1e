//! `gatehouse what-if`: a scratch copy of the site as the journal had it at an instant, the injected device
//! messages fed through the normal ingest path (each at its own receive time), every projector and policy run on
//! the copy, and the resulting figures printed beside the real ones (or the normal pages served on the copy).
//! The live journal, read tables and archive are only read; the copy goes away afterwards.

use crate::app::Application;
use crate::codec::CARRIED_FORWARD;
use crate::config::{Broker, Config};
use crate::db::StoragePaths;
use crate::ingest::{Ingested, Received};
use crate::journal::Actor;
use anyhow::{Context, anyhow, bail};
use jiff::Timestamp;
use rusqlite::{Connection, params};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One injected device message: the MQTT topic (with or without the topic prefix), its payload, and when it
/// arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    pub topic: String,
    pub payload: Vec<u8>,
    pub at: Timestamp,
}

/// Reads `{"topic","payload","at"}` JSON lines (the payload an object or a string), in arrival order.
pub fn read_injections(text: &str, prefix: &str) -> anyhow::Result<Vec<Injected>> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow!("line {}: not a JSON object: {e}", n + 1))?;
        let topic = value["topic"]
            .as_str()
            .ok_or_else(|| anyhow!("line {}: no \"topic\"", n + 1))?;
        let topic = match topic.strip_prefix(prefix).and_then(|t| t.strip_prefix('/')) {
            Some(_) => topic.to_owned(),
            None => format!("{prefix}/{topic}"),
        };
        let payload = match &value["payload"] {
            serde_json::Value::String(text) => text.clone().into_bytes(),
            serde_json::Value::Null => bail!("line {}: no \"payload\"", n + 1),
            other => other.to_string().into_bytes(),
        };
        let at: Timestamp = value["at"]
            .as_str()
            .ok_or_else(|| anyhow!("line {}: no \"at\" (the RFC 3339 instant it arrives)", n + 1))?
            .parse()
            .map_err(|e| anyhow!("line {}: \"at\" is not an RFC 3339 instant: {e}", n + 1))?;
        lines.push(Injected { topic, payload, at });
    }
    // Stable: lines with the same instant keep their file order.
    lines.sort_by_key(|l| l.at);
    Ok(lines)
}

/// What feeding the injected messages did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fed {
    pub events: usize,
    pub duplicates: usize,
    /// Each dead letter's line (1-based, in arrival order) and reason.
    pub dead_letters: Vec<(usize, String)>,
}

/// Copies what the journal knew at `until` into a new data directory `scratch`: every event recorded by then
/// (with the state archival carried forward for older ones), the site's keys, users and gateways. Refuses an
/// instant before the archive cut (that history is no longer in the journal).
pub fn copy_journal(live: &StoragePaths, scratch: &StoragePaths, until: Timestamp) -> anyhow::Result<u64> {
    scratch.prepare()?;
    let reader = crate::journal::JournalReader::open(&live.journal())?;
    let cut: Option<i64> = reader.connection().query_row(
        &format!("SELECT MAX(recorded_at) FROM events WHERE event_type = '{CARRIED_FORWARD}'"),
        [],
        |r| r.get(0),
    )?;
    if let Some(cut) = cut
        && cut > until.as_microsecond()
    {
        bail!(
            "the journal's events before {} are archived: a what-if can start from then or later",
            crate::journal::from_micros(cut)
        );
    }
    drop(reader);
    let mut conn = crate::db::open(&scratch.journal(), crate::config::Synchronous::Normal)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    crate::db::migrate_journal(&mut conn)?;
    conn.execute("ATTACH DATABASE ?1 AS live", [live.journal().to_string_lossy()])?;
    let tx = conn.transaction()?;
    let copied = tx.execute(
        "INSERT INTO events SELECT * FROM live.events WHERE recorded_at <= ?1 ORDER BY position",
        [until.as_microsecond()],
    )? as u64;
    let head: i64 = tx.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
    tx.execute(
        "INSERT INTO processed_messages SELECT * FROM live.processed_messages WHERE position <= ?1",
        [head],
    )?;
    // Who may sign in to the served copy, its keys and people (the same pseudonyms, identifiers shown alike) and
    // its gateways.
    for table in ["site_keys", "subject_vault", "users", "api_tokens", "gateways"] {
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM live.sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )?;
        if exists {
            tx.execute_batch(&format!(
                "INSERT OR REPLACE INTO main.{table} SELECT * FROM live.{table}"
            ))?;
        }
    }
    tx.commit()?;
    conn.execute("DETACH DATABASE live", [])?;
    Ok(copied)
}

/// The configuration of the copy: its own data and archive directories, an embedded endpoint on a free port,
/// nothing sent anywhere (no forwarding, no notifications), no archival, the pages on `listen`.
pub fn scratch_config(config: &Config, dir: &Path, listen: Option<SocketAddr>, until: Timestamp) -> Config {
    let mut copy = config.clone();
    // Its timers run on the injected messages' clock, which starts at the instant the copy is of.
    copy.clock = crate::clock::Clock::virtual_at(until);
    copy.storage.dir = dir.join("data");
    copy.retention = crate::config::RetentionConfig {
        keep_events_for: None,
        max_journal_size: None,
        archive_dir: dir.join("archive"),
    };
    copy.mqtt.broker = Broker::Embedded;
    copy.mqtt.listen = ([127, 0, 0, 1], 0).into();
    copy.mqtt.require_auth = false;
    copy.mqtt.tls = None;
    copy.forward = None;
    copy.notify = Vec::new();
    copy.http.listen = listen.unwrap_or(([127, 0, 0, 1], 0).into());
    copy
}

/// Moves the copy's clock to `at` and lets time passing act: devices silent for `offline_after` go offline,
/// maintenance runs fall due, policies that act on time (the occupancy reset, alarms whose condition lasts) act;
/// returns once all that is applied.
pub async fn advance(app: &Application, at: Timestamp) -> anyhow::Result<()> {
    let state = app.state();
    state.config.clock.advance_to(at);
    state.registry.tick_devices(at).await;
    crate::maintenance::scheduler::run_due_until(&state.config, &state.registry, &state.paths.journal(), at).await?;
    for follower in &state.projectors {
        if let Some(ticked) = &follower.ticked {
            let mut ticked = ticked.clone();
            tokio::time::timeout(std::time::Duration::from_secs(120), ticked.wait_for(|t| *t >= at))
                .await
                .map_err(|_| anyhow!("{} did not act on the clock's move to {at}", follower.name))?
                .map_err(|_| anyhow!("{} stopped", follower.name))?;
        }
    }
    settle(app).await
}

/// Feeds `lines` through the copy's ingest path, each received at its own `at` after the clock has moved there.
pub async fn feed(app: &Application, start: Timestamp, lines: &[Injected]) -> anyhow::Result<Fed> {
    let mut fed = Fed::default();
    advance(app, start).await?;
    for (n, line) in lines.iter().enumerate() {
        advance(app, line.at).await?;
        let received = Received::once(
            &line.topic,
            &line.payload,
            line.at,
            Actor::from_stored("what-if".into()),
        );
        match app.state().ingestor.ingest(received).await? {
            Ingested::Recorded { events, .. } => fed.events += events,
            Ingested::Duplicate => fed.duplicates += 1,
            Ingested::DeadLettered { reason, .. } | Ingested::OverQuota { reason } => {
                fed.dead_letters.push((n + 1, reason))
            }
        }
    }
    Ok(fed)
}

/// Waits until every follower of the copy has applied its journal and nothing more comes (a policy's order
/// appends, then the followers apply that too).
pub async fn settle(app: &Application) -> anyhow::Result<()> {
    let state = app.state();
    loop {
        let head = *state.committed.borrow();
        for projector in &state.projectors {
            if !projector.wait_for(head, std::time::Duration::from_secs(600)).await {
                bail!("{} did not catch up with the copy's journal", projector.name);
            }
        }
        // A moment for what the last events call for to be ordered.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        if *state.committed.borrow() == head {
            return Ok(());
        }
    }
}

/// One figure, real and what-if.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub real: i64,
    pub what_if: i64,
}

/// The figures compared over the local days `from..=to`: passages in and out per zone, people inside per zone
/// now, recognitions (known, unknown), alarms raised and work orders opened.
pub fn figures(real: &Path, what_if: &Path, from: &str, to: &str) -> anyhow::Result<Vec<Figure>> {
    let (real, what_if) = (crate::db::open_readonly(real)?, crate::db::open_readonly(what_if)?);
    let mut names: Vec<String> = Vec::new();
    let mut values: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
    for (side, conn) in [(0, &real), (1, &what_if)] {
        let mut put = |name: String, value: i64| {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            let entry = values.entry(name).or_default();
            if side == 0 { entry.0 = value } else { entry.1 = value }
        };
        for (zone, inward, outward) in rows3(
            conn,
            "SELECT zone, COALESCE(SUM(passages_in), 0), COALESCE(SUM(passages_out), 0) FROM traffic_zone_daily
             WHERE local_date >= ?1 AND local_date <= ?2 GROUP BY zone ORDER BY zone",
            params![from, to],
        )? {
            put(format!("passages in, {zone}"), inward);
            put(format!("passages out, {zone}"), outward);
        }
        for (zone, count) in rows2(conn, "SELECT zone, count FROM occupancy ORDER BY zone", [])? {
            put(format!("inside now, {zone}"), count);
        }
        put(
            "devices offline now".into(),
            count(
                conn,
                "SELECT COUNT(*) FROM device_status WHERE availability = 'offline'",
            )?,
        );
        for (known, unknown) in rows2i(
            conn,
            "SELECT COALESCE(SUM(known), 0), COALESCE(SUM(unknown), 0) FROM recognitions_daily
             WHERE local_date >= ?1 AND local_date <= ?2",
            params![from, to],
        )? {
            put("faces recognized".into(), known);
            put("faces not recognized".into(), unknown);
        }
        put("alarms (all)".into(), count(conn, "SELECT COUNT(*) FROM alarms")?);
        put(
            "work orders (all)".into(),
            count(conn, "SELECT COUNT(*) FROM work_orders")?,
        );
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let (real, what_if) = values.get(&name).copied().unwrap_or_default();
            Figure { name, real, what_if }
        })
        .collect())
}

fn count(conn: &Connection, sql: &str) -> anyhow::Result<i64> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

fn rows3(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn rows2(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> anyhow::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn rows2i(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(p, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A scratch directory of its own under the system's temporary directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-what-if-{}-{}",
            std::process::id(),
            Timestamp::now().as_microsecond()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
