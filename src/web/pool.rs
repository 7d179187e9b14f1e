//! Read-only SQLite connections kept open between requests. Opening a connection per request re-reads the
//! schema and starts with an empty page cache, so a year-long report re-read its pages from the OS every time
//! (measured: a third of the traffic page's time); a kept connection also keeps its prepared statements.
//!
//! The pool is a stack of idle connections behind a mutex: a request takes one (or opens one when none is idle),
//! uses it on the blocking pool and puts it back. At most [`MAX_IDLE`] are kept; more are opened under a burst and
//! closed after it. A connection that was in use when its query panicked is dropped, never reused.

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Idle connections kept per database: the blocking pool rarely runs more report queries at once than this.
const MAX_IDLE: usize = 8;

/// How much of a database a read connection maps into memory instead of copying pages into its own cache: the
/// OS page cache is then shared by all connections (and with the projectors writing the same file).
const MMAP_BYTES: i64 = 1 << 30;

/// Read-only connections to one database file.
#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Opens nothing yet: connections are opened on first use (the file may not exist before the app starts).
    pub fn new(path: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `query` on an idle connection (or a new one). Blocking: call it from the blocking pool.
    pub fn with<T>(&self, query: impl FnOnce(&Connection) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let idle = self.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = query(&conn);
        // A failed query leaves the connection as usable as a successful one (statements are reset when their
        // handles drop), so it goes back either way.
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> anyhow::Result<Connection> {
        let conn = crate::db::open_readonly(&self.inner.path)?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        Ok(conn)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding this lock cannot leave the Vec half-changed (push and pop are whole), so a
        // poisoned lock is still good to use.
        self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_reused_and_sees_what_was_committed_after_it_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("views.db");
        let writer = crate::db::open(&path, crate::config::Synchronous::Normal).unwrap();
        writer.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let pool = ReadPool::new(path);
        let count =
            |pool: &ReadPool| pool.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(count(&pool).unwrap(), 0);
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_eq!(count(&pool).unwrap(), 1);
        assert_eq!(pool.idle().len(), 1, "the one connection went back to the pool");
    }

    #[test]
    fn a_failed_query_is_reported_and_the_pool_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("views.db");
        crate::db::open(&path, crate::config::Synchronous::Normal).unwrap();
        let pool = ReadPool::new(path);
        let error = pool
            .with(|c| Ok(c.execute_batch("SELECT * FROM missing")?))
            .unwrap_err();
        assert!(error.to_string().contains("no such table: missing"), "{error}");
        assert_eq!(
            pool.with(|c| Ok(c.query_row("SELECT 7", [], |r| r.get::<_, i64>(0))?))
                .unwrap(),
            7
        );
    }

    #[test]
    fn a_missing_database_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ReadPool::new(dir.path().join("views.db"));
        let error = pool.with(|_| Ok(())).unwrap_err();
        assert!(error.to_string().contains("views.db: no such database"), "{error}");
    }
}
