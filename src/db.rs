//! Opening the two SQLite files with the right pragmas and bringing their schemas up to date from the numbered
//! SQL files in `migrations/`, and the data directory's lock (one running core per directory).

use crate::config::Synchronous;
use anyhow::Context;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const JOURNAL_FILE: &str = "journal.db";
pub const VIEWS_FILE: &str = "views.db";

/// How long a connection waits for another's write lock before giving up. Writers here are short transactions,
/// so a wait this long means something is stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn journal_migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/journal/0001_events.sql")),
        M::up(include_str!("../migrations/journal/0002_dead_letters.sql")),
        M::up(include_str!("../migrations/journal/0003_dead_letter_redrive.sql")),
        M::up(include_str!("../migrations/journal/0004_auth.sql")),
        M::up(include_str!("../migrations/journal/0005_event_core.sql")),
        M::up(include_str!("../migrations/journal/0006_operator_requests.sql")),
        M::up(include_str!("../migrations/journal/0007_gateways.sql")),
        M::up(include_str!("../migrations/journal/0008_user_disable.sql")),
        M::up(include_str!("../migrations/journal/0009_notifications.sql")),
        M::up(include_str!("../migrations/journal/0010_dead_letter_senders.sql")),
        M::up(include_str!("../migrations/journal/0011_forwarder.sql")),
        M::up(include_str!("../migrations/journal/0012_archival.sql")),
        M::up(include_str!("../migrations/journal/0013_subject_vault.sql")),
        M::up(include_str!("../migrations/journal/0014_message_ids_by_position.sql")),
        M::up(include_str!("../migrations/journal/0015_message_ids_keyed_by_id.sql")),
    ])
}

fn views_migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/views/0001_read_models.sql")),
        M::up(include_str!("../migrations/views/0002_reports.sql")),
        M::up(include_str!("../migrations/views/0003_traffic_daily.sql")),
        M::up(include_str!("../migrations/views/0004_report_rollups.sql")),
        M::up(include_str!("../migrations/views/0005_parked_events.sql")),
        M::up(include_str!("../migrations/views/0006_device_messages.sql")),
        M::up(include_str!("../migrations/views/0007_desired_state.sql")),
        M::up(include_str!("../migrations/views/0008_work_orders.sql")),
        M::up(include_str!("../migrations/views/0009_alarms.sql")),
        M::up(include_str!("../migrations/views/0010_watch_list.sql")),
        M::up(include_str!("../migrations/views/0011_presence.sql")),
        M::up(include_str!("../migrations/views/0012_occupancy.sql")),
    ])
}

/// Paths of the databases under `[storage].dir`.
#[derive(Debug, Clone)]
pub struct StoragePaths {
    pub dir: PathBuf,
}

impl StoragePaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }
    pub fn views(&self) -> PathBuf {
        self.dir.join(VIEWS_FILE)
    }
    /// Creates the directory and both databases with their current schemas.
    pub fn prepare(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("{}: cannot create the storage directory", self.dir.display()))?;
        let mut journal = open(&self.journal(), Synchronous::Full)?;
        migrate_journal(&mut journal)?;
        let mut views = open(&self.views(), Synchronous::Normal)?;
        migrate_views(&mut views)?;
        Ok(())
    }
}

/// Taken by this process's writers of `views.db` (projectors, policies, parking, rebuild swaps) around each write
/// transaction. SQLite lets one writer in at a time and makes the others poll with growing sleeps (1, 2, 5, 10 ms
/// …); with a projector per read model all woken by the same commit, those sleeps were most of the time from a
/// commit to its rows being visible. Queued on this lock they go one after the other without sleeping. Writers in
/// other processes (`gatehouse rebuild` beside `serve`) still meet SQLite's own lock and its busy timeout.
/// A rebuild's side database (another file) needs no turn: `None` for any connection not to a `views.db`.
pub fn views_writer(conn: &Connection) -> Option<std::sync::MutexGuard<'static, ()>> {
    static VIEWS_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let live = conn.path().is_some_and(|path| Path::new(path).ends_with(VIEWS_FILE));
    // A panic while holding it leaves nothing half-done: SQLite rolled that transaction back.
    live.then(|| VIEWS_WRITER.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Opens a read-write connection in WAL mode, so readers never block the writer and vice versa.
pub fn open(path: &Path, synchronous: Synchronous) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("{}: cannot open database", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Takes effect only on a new, empty file (an existing one keeps its mode): archival can then give freed
    // pages back to the file system (`PRAGMA incremental_vacuum`) without a full VACUUM.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .with_context(|| format!("{}: cannot switch to WAL mode", path.display()))?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The journal's indexes are touched in stream order, not insert order: with SQLite's default 2 MiB page
    // cache a large group commit spills dirty pages mid-transaction and re-reads them (measured: 13 GB read
    // for 1M events). 64 MiB is allocated only as used.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // Checkpoint the WAL less often (~40 MiB instead of 4 MiB): each checkpoint runs on the committing thread
    // and costs an fsync, so fewer, larger ones keep group commits short.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // When a commit starts the log over, it cuts the file back to this size (see `crate::checkpointer`).
    conn.pragma_update(None, "journal_size_limit", crate::checkpointer::WAL_LIMIT as i64)?;
    Ok(conn)
}

/// Opens a connection that only reads: the CLI's `events` and `state`, projectors' journal reads, pages.
pub fn open_readonly(path: &Path) -> anyhow::Result<Connection> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        anyhow::bail!(
            "{}: no such database (has `gatehouse serve` run with this config?)",
            path.display()
        );
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("{}: cannot open database", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Brings an existing `journal.db` up to this release's schema, so read-only commands (`events`, `state`) work on a
/// journal an older release wrote and no newer server has opened yet. A no-op when it is current; a missing file
/// is left for the reader to report.
pub fn upgrade_journal(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        migrate_journal(&mut open(path, Synchronous::Full)?)?;
    }
    Ok(())
}

pub fn migrate_journal(conn: &mut Connection) -> anyhow::Result<()> {
    journal_migrations()
        .to_latest(conn)
        .context("journal.db: cannot apply migrations")
}

pub fn migrate_views(conn: &mut Connection) -> anyhow::Result<()> {
    views_migrations()
        .to_latest(conn)
        .context("views.db: cannot apply migrations")
}

/// Name of the lock file in `[storage].dir`: one running core per data directory.
pub const LOCK_FILE: &str = "gatehouse.lock";

/// Takes the data directory's lock, so two servers (or a server and a one-off command) never write the same
/// journal. The OS releases it when the process dies, even by SIGKILL.
pub fn lock_data_dir(paths: &StoragePaths) -> anyhow::Result<std::fs::File> {
    try_lock_data_dir(paths)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: another gatehouse is running on this data directory",
            paths.dir.display()
        )
    })
}

/// The data directory's lock, or `None` when another process (a running server) holds it.
pub fn try_lock_data_dir(paths: &StoragePaths) -> anyhow::Result<Option<std::fs::File>> {
    let path = paths.dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open lock file", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("{}: cannot lock", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::journal_migrations().validate().unwrap();
        super::views_migrations().validate().unwrap();
    }
}
