//! Retention (`[retention]`, `gatehouse archive`): moves the journal's oldest events into verifiable archive files
//! and out of `journal.db`, the one operation allowed to remove journal rows.
//!
//! Order of work, so nothing is lost at any crash: the events are written to archive files and the manifest,
//! durably, first (`files`); then, chunk by chunk, one transaction grants the removal of the chunk's positions,
//! puts each touched stream's state in place of its last archived event (`carry`: the stream stays recoverable
//! from the journal alone, whatever happens to snapshots), removes the chunk (and message ids too old to matter),
//! records how far the journal is archived and drops the grant. Only what every follower (projectors, policies,
//! the notifier, the forwarder) has applied is archived: none of them ever needs an archived event again. A run
//! that stopped half-way is finished by the next: files already written are not written again.
//!
//! It runs beside a serving core on a connection of its own: the journal writer appends at the head, archival
//! removes at the tail, and SQLite's lock orders the two.

pub mod carry;
pub mod figures;
pub mod files;
pub mod restore;

use crate::codec::{self, CARRIED_FORWARD};
use crate::config::Config;
use crate::db::StoragePaths;
use crate::domain::StreamName;
use crate::journal::{JournalReader, Position};
use anyhow::Context;
use base64::Engine;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

/// Events removed per transaction: short enough that the journal writer waits only a moment for each.
const CHUNK: u64 = 5_000;

/// What to archive: events recorded before an instant, and the oldest events while the journal is over a size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub recorded_before: Option<Timestamp>,
    pub max_journal_size: Option<u64>,
}

impl Limits {
    /// The limits `[retention]` sets, as of `now`.
    pub fn from_config(config: &crate::config::RetentionConfig, now: Timestamp) -> Limits {
        Limits {
            recorded_before: config
                .keep_events_for
                .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                .and_then(|d| now.checked_sub(d).ok()),
            max_journal_size: config.max_journal_size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.recorded_before.is_none() && self.max_journal_size.is_none()
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Archived {
    /// Events moved out of the journal by this run.
    pub events: u64,
    /// Archive files this run wrote.
    pub files: Vec<files::Entry>,
    /// Every event at or below this position is archived now.
    pub up_to: Position,
    /// The follower that kept archival from going as far as the limits asked, if one did.
    pub held_back_by: Option<String>,
    /// `journal.db`'s size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// How archival may give freed pages back to the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shrink {
    /// Only by incremental vacuum: a journal created before it was the default keeps its size (freed pages are
    /// reused by new events) rather than being locked for a full `VACUUM` while a server writes to it.
    Incremental,
    /// A journal created without incremental vacuum is switched to it with one full `VACUUM` (the command line,
    /// when no server holds the data directory).
    SwitchIfNeeded,
}

/// Archives what `limits` ask for, as far as every follower has got. `progress(done, total)` is called as
/// events are moved out.
pub fn run(
    config: &Config,
    limits: Limits,
    shrinking: Shrink,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<Archived> {
    let paths = StoragePaths::new(&config.storage.dir);
    let journal_path = paths.journal();
    let dir = &config.retention.archive_dir;
    // One run at a time (the timer, the button and the command line may all ask at once), and no rebuild reading
    // the archive while it changes.
    let _lock = lock(dir)?;
    remove_unfinished_files(dir)?;
    files::repair_manifest(dir)?;
    let journal = JournalReader::from_connection(crate::db::open(&journal_path, config.storage.synchronous)?);
    let conn = journal.connection();
    let bytes_before = file_size(&journal_path);
    let archived_up_to = archived_up_to(conn)?;
    let (followers_at, slowest) = followers_done(config, &paths, conn)?;
    let wanted = target(conn, limits, archived_up_to)?;
    let up_to = wanted.min(followers_at);
    let held_back_by = (up_to < wanted).then_some(slowest);
    let mut archived = Archived {
        up_to: archived_up_to.max(up_to),
        held_back_by,
        bytes_before,
        bytes_after: bytes_before,
        ..Default::default()
    };
    if up_to <= archived_up_to {
        archived.up_to = archived_up_to;
        return Ok(archived);
    }
    let total: u64 = conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM events WHERE position > ?1 AND position <= ?2 AND event_type <> '{CARRIED_FORWARD}'"
        ),
        params![archived_up_to as i64, up_to as i64],
        |r| r.get::<_, i64>(0),
    )? as u64;
    // 1. Files first: whatever a stopped run already wrote is not written again.
    let manifest = files::entries(dir)?;
    let written_up_to = manifest.last().map_or(0, |e| e.last_position).max(archived_up_to);
    let previous = manifest.last().map(|e| e.sha256.clone()).unwrap_or_default();
    archived.files = write_files(&journal, dir, written_up_to, up_to, previous)?;
    // 2. Then the rows, chunk by chunk.
    let max_backdate_cut = recorded_cut(
        conn,
        Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(config.devices.max_backdate).unwrap_or_default())
            .unwrap_or(Timestamp::UNIX_EPOCH),
        0,
    )?;
    let mut from = archived_up_to;
    while from < up_to {
        let to = (from + CHUNK).min(up_to);
        archived.events += remove_chunk(&journal, from, to, max_backdate_cut)?;
        progress(archived.events, total);
        from = to;
    }
    shrink(conn, shrinking)?;
    archived.bytes_after = file_size(&journal_path);
    tracing::info!(
        events = archived.events,
        up_to,
        files = archived.files.len(),
        bytes_before,
        bytes_after = archived.bytes_after,
        "archived old events"
    );
    Ok(archived)
}

/// Every event at or below this position is archived (0: none is).
pub fn archived_up_to(conn: &Connection) -> anyhow::Result<Position> {
    let up_to: i64 = conn.query_row("SELECT COALESCE(MAX(up_to), 0) FROM archive_runs", [], |r| r.get(0))?;
    Ok(up_to.max(0) as Position)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Holds `archive_dir/.lock` exclusively until dropped: one archival (or archive reader) at a time.
pub fn lock(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the archive directory", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    file.lock()
        .with_context(|| format!("{}: cannot lock", path.display()))?;
    Ok(file)
}

/// Files a stopped run left behind: a `.part` it had not finished, or a finished file whose manifest line it
/// never wrote (or that a torn line lost). The manifest never vouched for them, and no journal row goes before
/// its file is listed, so their events are all still in the journal: the next run writes them again.
fn remove_unfinished_files(dir: &std::path::Path) -> anyhow::Result<()> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let listed = files::entries(dir).unwrap_or_default();
    for file in listing.flatten() {
        let name = file.file_name().to_string_lossy().into_owned();
        let unlisted = name.ends_with(".jsonl.gz") && !listed.iter().any(|e| e.file == name);
        if name.ends_with(".part") || unlisted {
            tracing::info!(file = %name, "removing an archive file a stopped run left unlisted");
            std::fs::remove_file(file.path()).with_context(|| format!("{name}: cannot remove"))?;
        }
    }
    Ok(())
}

/// How far every follower has applied the journal, and which one is furthest behind.
fn followers_done(config: &Config, paths: &StoragePaths, journal: &Connection) -> anyhow::Result<(Position, String)> {
    let mut slowest: (Position, String) = (Position::MAX, String::new());
    let mut behind = |position: Position, name: String| {
        if position < slowest.0 {
            slowest = (position, name);
        }
    };
    let views = crate::db::open_readonly(&paths.views()).context("views.db: cannot read the followers' checkpoints")?;
    let mut followers: Vec<String> = crate::projection::names().into_iter().map(str::to_owned).collect();
    followers.extend(
        crate::policy::all(config)
            .iter()
            .map(|p| crate::policy::follower_name(p.name())),
    );
    for name in followers {
        behind(crate::projection::checkpoint(&views, &name)?, name);
    }
    if !config.notify.is_empty() {
        let at = journal
            .query_row("SELECT position FROM notifier_checkpoint WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0);
        behind(at.max(0) as Position, "the notifier".into());
    }
    // A parked event must stay where a re-drive can read it.
    let parked: Option<(i64, String)> = views
        .query_row(
            "SELECT position, follower FROM parked_events ORDER BY position LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((position, follower)) = parked {
        behind(
            (position.max(1) - 1) as Position,
            format!("{follower}'s parked event at position {position}"),
        );
    }
    if let Some(forward) = &config.forward {
        let at = journal
            .query_row(
                "SELECT position FROM forward_checkpoints WHERE subject = ?1",
                [&forward.subject],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0);
        behind(at.max(0) as Position, "the forwarder".into());
    }
    Ok(slowest)
}

/// The last position `limits` ask to archive (`archived` when they ask for nothing more).
fn target(conn: &Connection, limits: Limits, archived: Position) -> anyhow::Result<Position> {
    let mut up_to = archived;
    if let Some(before) = limits.recorded_before {
        up_to = up_to.max(recorded_cut(conn, before, archived)?);
    }
    if let Some(max) = limits.max_journal_size {
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let used = ((pages - free).max(0) * page_size) as u64;
        if used > max {
            // Down to 90 % of the cap, so the next run is not due at the next event.
            let to_free = used - max / 10 * 9;
            let live: i64 = conn.query_row(
                "SELECT COUNT(*) FROM events WHERE position > ?1",
                [archived as i64],
                |r| r.get(0),
            )?;
            if live > 0 {
                let per_event = (used / live as u64).max(1);
                let drop = to_free.div_ceil(per_event).min(live as u64);
                let cut: Option<i64> = conn
                    .query_row(
                        &format!(
                            "SELECT position FROM events WHERE position > ?1 AND event_type <> '{CARRIED_FORWARD}'
                             ORDER BY position LIMIT 1 OFFSET ?2"
                        ),
                        params![archived as i64, drop.saturating_sub(1) as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                up_to = up_to.max(cut.map_or(archived, |p| p.max(0) as Position));
            }
        }
    }
    Ok(up_to)
}

/// The last position recorded before `before`, from `after` on. Positions follow commit order and commits are
/// recorded as they happen, so the scan stops at the first younger event instead of reading the whole journal.
fn recorded_cut(conn: &Connection, before: Timestamp, after: Position) -> anyhow::Result<Position> {
    let first_younger: Option<i64> = conn
        .query_row(
            "SELECT position FROM events WHERE position > ?1 AND recorded_at >= ?2 ORDER BY position LIMIT 1",
            params![after as i64, before.as_microsecond()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match first_younger {
        Some(position) => (position.max(1) - 1) as Position,
        None => conn
            .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })?
            .max(0) as Position,
    })
}

/// Writes the events after `after` up to `up_to` to one archive file per month (UTC, by record time).
fn write_files(
    journal: &JournalReader,
    dir: &std::path::Path,
    after: Position,
    up_to: Position,
    mut previous: String,
) -> anyhow::Result<Vec<files::Entry>> {
    let mut written = Vec::new();
    if after >= up_to {
        return Ok(written);
    }
    let mut stmt = journal.connection().prepare(&format!(
        "SELECT position, stream_id, version, event_type, schema, format, occurred_at, recorded_at, causation, actor,
                payload
         FROM events WHERE position > ?1 AND position <= ?2 AND event_type <> '{CARRIED_FORWARD}' ORDER BY position"
    ))?;
    let mut rows = stmt.query(params![after as i64, up_to as i64])?;
    let mut current: Option<files::MonthWriter> = None;
    while let Some(row) = rows.next()? {
        let position = row.get::<_, i64>(0)?.max(0) as Position;
        let stream: String = row.get(1)?;
        let event_type: String = row.get(3)?;
        let (schema, format): (u32, u8) = (row.get(4)?, row.get(5)?);
        let recorded_at = crate::journal::from_micros(row.get(7)?);
        let payload: Vec<u8> = row.get(10)?;
        let month = recorded_at.strftime("%Y-%m").to_string();
        if current.as_ref().is_some_and(|w| w.month() != month)
            && let Some(done) = current.take()
        {
            let entry = done.finish(&previous)?;
            previous = entry.sha256.clone();
            written.push(entry);
        }
        let writer = match &mut current {
            Some(writer) => writer,
            None => current.insert(files::MonthWriter::create(dir, &month, position)?),
        };
        // The stored bytes as they were (so the archive can be read back exactly) and what they say.
        let data = StreamName::parse(&stream).map_err(|e| e.to_string()).and_then(|name| {
            codec::decode_any(&name, &event_type, schema, format, &payload).map_err(|e| e.to_string())
        });
        let line = serde_json::json!({
            "position": position,
            "stream": stream,
            "version": row.get::<_, i64>(2)?,
            "type": event_type,
            "schema": schema,
            "format": format,
            "occurred_at": crate::journal::from_micros(row.get(6)?).to_string(),
            "recorded_at": recorded_at.to_string(),
            "causation": row.get::<_, Option<String>>(8)?,
            "actor": row.get::<_, Option<String>>(9)?,
            "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
            "data": match &data { Ok(event) => event.to_json(), Err(_) => serde_json::Value::Null },
            "unreadable": data.err(),
        });
        writer.write(position, &line)?;
    }
    if let Some(done) = current.take() {
        written.push(done.finish(&previous)?);
    }
    Ok(written)
}

/// Removes the events after `from` up to `to` in one transaction, each touched stream's state carried forward
/// in place of its last one; returns how many events went.
fn remove_chunk(journal: &JournalReader, from: Position, to: Position, ids_cut: Position) -> anyhow::Result<u64> {
    let conn = journal.connection();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> anyhow::Result<u64> {
        conn.execute("INSERT INTO archive_grant (up_to) VALUES (?1)", [to as i64])?;
        let last_of_stream: Vec<(String, i64, i64, i64)> = {
            let mut stmt = conn.prepare(&format!(
                "SELECT stream_id, MAX(version), MAX(position), MAX(recorded_at) FROM events
                 WHERE position > ?1 AND position <= ?2 AND event_type <> '{CARRIED_FORWARD}' GROUP BY stream_id"
            ))?;
            let rows = stmt.query_map(params![from as i64, to as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut carried = Vec::with_capacity(last_of_stream.len());
        for (stream, version, position, recorded_at) in last_of_stream {
            let name = StreamName::parse(&stream)?;
            let state = carry::state_through(journal, &name, version.max(0) as u64)?;
            carried.push((stream, version, position, recorded_at, state));
        }
        let removed = conn.execute(
            &format!("DELETE FROM events WHERE position > ?1 AND position <= ?2 AND event_type <> '{CARRIED_FORWARD}'"),
            params![from as i64, to as i64],
        )? as u64;
        for (stream, version, position, recorded_at, state) in carried {
            // The state the stream had before is now folded into the new one.
            conn.execute(
                &format!("DELETE FROM events WHERE stream_id = ?1 AND event_type = '{CARRIED_FORWARD}'"),
                [&stream],
            )?;
            let encoded = state.encode();
            conn.execute(
                "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at,
                                     recorded_at, causation, payload, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, 'archival')",
                params![
                    position,
                    stream,
                    version,
                    encoded.event_type,
                    encoded.schema,
                    encoded.format,
                    encoded.occurred_at.as_microsecond(),
                    recorded_at,
                    encoded.payload
                ],
            )?;
        }
        // Message ids older than any message still accepted (max_backdate) can no longer catch a redelivery.
        conn.execute(
            "DELETE FROM processed_messages WHERE position <= ?1",
            [to.min(ids_cut) as i64],
        )?;
        conn.execute(
            "INSERT OR REPLACE INTO archive_runs (up_to, events, archived_at) VALUES (?1, ?2, ?3)",
            params![to as i64, removed as i64, Timestamp::now().as_microsecond()],
        )?;
        conn.execute("DELETE FROM archive_grant", [])?;
        Ok(removed)
    })();
    match result {
        Ok(removed) => {
            conn.execute_batch("COMMIT")?;
            Ok(removed)
        }
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Gives the freed pages back to the file system (see [`Shrink`]).
fn shrink(conn: &Connection, shrinking: Shrink) -> anyhow::Result<()> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    match (mode, shrinking) {
        (2, _) => {
            // Each step of the pragma frees one page: step it to the end (`execute_batch` steps once).
            let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
        }
        (_, Shrink::SwitchIfNeeded) => {
            tracing::info!("switching journal.db to incremental vacuum (once; a full VACUUM)");
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        }
        (_, Shrink::Incremental) => tracing::warn!(
            "journal.db predates incremental vacuum: the archived events' pages are reused by new events, but the \
             file keeps its size until `gatehouse archive` runs once while serve is stopped"
        ),
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// How often a serving core archives what `[retention]` asks for (the first time right after it starts).
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// While `serve` runs: archives what `[retention]` asks for every [`EVERY`], off the async executor. Nothing is
/// started when `[retention]` sets no limit.
pub fn spawn(config: std::sync::Arc<Config>) {
    if Limits::from_config(&config.retention, Timestamp::now()).is_empty() {
        return;
    }
    crate::inbox::spawn_polling("archive old events", EVERY, move || {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let limits = Limits::from_config(&config.retention, Timestamp::now());
                run(&config, limits, Shrink::Incremental, &mut |_, _| {}).map(|_| ())
            })
            .await?
        }
    });
}
