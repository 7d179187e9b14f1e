//! Keeps each database's write-ahead log small: a thread of its own per file copies the WAL back into the file
//! every second, and restarts it when it has grown past [`WAL_LIMIT`].
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses its threshold, stalling that commit for tens
//! of milliseconds; a PASSIVE checkpoint here runs beside the writers instead and never blocks them. But a passive
//! checkpoint can only restart the log when no reader holds an older snapshot, and under steady load some follower
//! always does, so the log grows without end (measured: views.db-wal at 41 MB after 3,000 passages, until it
//! filled a small disk). Past the limit a RESTART checkpoint waits (up to the busy timeout) for those readers to
//! move on, so the next commit writes from the start of the file again, and cuts the file back to the limit
//! (`journal_size_limit`, set in `crate::db::open`). The log is not emptied (TRUNCATE) because writing over pages
//! the file already has is cheaper than growing it: under a 30k messages/s burst the journal writes ~150 MB/s of
//! log, and allocating every block anew was a fifth of the writer thread.

use crate::config::Synchronous;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// How often the WAL is copied back into its database.
const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A log larger than this is truncated rather than only copied back.
pub const WAL_LIMIT: u64 = 16 * 1024 * 1024;

/// The running checkpointer; it stops when this is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

/// Starts checkpointing the database at `path` on a thread named `{name}-checkpointer`.
pub fn spawn(path: &Path, name: &str) -> anyhow::Result<Checkpointer> {
    let conn = crate::db::open(path, Synchronous::Full)?;
    let wal = wal_path(path);
    let (stop, stopped) = mpsc::channel::<()>();
    let thread_name = format!("{name}-checkpointer");
    let what = name.to_owned();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                let grown = std::fs::metadata(&wal).map(|m| m.len() > WAL_LIMIT).unwrap_or(false);
                let mode = if grown { "RESTART" } else { "PASSIVE" };
                match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                    row.get::<_, i64>(0)
                }) {
                    Ok(0) if grown => tracing::debug!(database = %what, "write-ahead log restarted"),
                    // 1: readers or a writer kept it busy past the timeout; the next round tries again.
                    Ok(_) => {}
                    Err(error) => tracing::warn!(database = %what, %error, "checkpoint failed; retrying"),
                }
            }
        })
        .with_context(|| format!("cannot start the {thread_name} thread"))?;
    Ok(Checkpointer { _stop: stop })
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}
