//! What `/admin/storage` shows: how big the databases are, what the journal still holds, what the archive holds,
//! and how long until `max_journal_size` at the current rate.

use super::files;
use crate::codec::CARRIED_FORWARD;
use crate::config::Config;
use crate::db::StoragePaths;
use rusqlite::{Connection, OptionalExtension};

#[derive(Debug, Default)]
pub struct Storage {
    /// `journal.db` with its write-ahead log.
    pub journal_bytes: u64,
    pub views_bytes: u64,
    /// Events still in the journal (carried-forward states not counted).
    pub live_events: u64,
    /// When the oldest of them was recorded (µs).
    pub oldest_live: Option<i64>,
    /// Every event at or below this position is archived.
    pub archived_up_to: u64,
    pub archived_events: u64,
    pub last_archived_at: Option<i64>,
    /// Events recorded in the last 24 hours.
    pub last_day_events: u64,
    pub archives: Vec<(files::Entry, u64)>,
    /// Days until `max_journal_size` at the last day's rate, when a cap is set and the journal grows.
    pub days_until_cap: Option<f64>,
}

fn size(path: &std::path::Path) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Reads the figures from a read-only journal connection, the files and the archive directory.
pub fn read(config: &Config, journal: &Connection) -> anyhow::Result<Storage> {
    let paths = StoragePaths::new(&config.storage.dir);
    let archived_up_to = super::archived_up_to(journal)?;
    let (archived_events, last_archived_at): (i64, Option<i64>) = journal.query_row(
        "SELECT COALESCE(SUM(events), 0), MAX(archived_at) FROM archive_runs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Above the archived position every position is still there (only archival removes rows, from the tail).
    let head: i64 = journal.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
    let oldest_live: Option<i64> = journal
        .query_row(
            &format!(
                "SELECT recorded_at FROM events WHERE position > ?1 AND event_type <> '{CARRIED_FORWARD}'
                 ORDER BY position LIMIT 1"
            ),
            [archived_up_to as i64],
            |r| r.get(0),
        )
        .optional()?;
    let day_ago = jiff::Timestamp::now().as_microsecond() - 86_400_000_000;
    let first_today: Option<i64> = journal
        .query_row(
            "SELECT position FROM events WHERE position > ?1 AND recorded_at >= ?2 ORDER BY position LIMIT 1",
            rusqlite::params![archived_up_to as i64, day_ago],
            |r| r.get(0),
        )
        .optional()?;
    let last_day_events = first_today.map_or(0, |first| (head - first + 1).max(0) as u64);
    let live_events = (head - archived_up_to as i64).max(0) as u64;
    let journal_bytes = size(&paths.journal());
    let archives = files::entries(&config.retention.archive_dir)?
        .into_iter()
        .map(|entry| {
            let bytes = std::fs::metadata(config.retention.archive_dir.join(&entry.file)).map_or(0, |m| m.len());
            (entry, bytes)
        })
        .collect();
    let days_until_cap = config.retention.max_journal_size.and_then(|cap| {
        let per_event = journal_bytes as f64 / live_events.max(1) as f64;
        let per_day = per_event * last_day_events as f64;
        (per_day > 0.0).then(|| (cap.saturating_sub(journal_bytes)) as f64 / per_day)
    });
    Ok(Storage {
        journal_bytes,
        views_bytes: size(&paths.views()),
        live_events,
        oldest_live,
        archived_up_to,
        archived_events: archived_events.max(0) as u64,
        last_archived_at,
        last_day_events,
        archives,
        days_until_cap,
    })
}
