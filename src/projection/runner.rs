//! Hosts each projection as an actor on its own thread (SQLite work is blocking) at a lower CPU priority, woken by
//! the journal writer's "committed up to P" notices, so read tables trail the journal by milliseconds. After a restart each projector
//! simply continues from its checkpoint.

use super::{Projection, catch_up, record_error};
use crate::config::OnError;
use crate::journal::{JournalReader, Position};
use actix::prelude::*;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The niceness of projector threads: when the CPU is short (a burst), acknowledging gateways goes first and read
/// tables fall behind, visibly (lag on `/admin/projections`), catching up as soon as the burst ends. With nothing
/// else to run a niced thread gets the whole CPU, so pages trail the journal by milliseconds as before. Measured in
/// the ingest bench's external phase (broker, publishers and Gatehouse on two cores): 0.42-0.53 of Mosquitto's
/// relay rate at 0, 0.53-0.61 at 5, 0.59-0.66 at 10.
const PROJECTOR_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's CPU priority to [`PROJECTOR_NICENESS`]. Linux only: there niceness is per thread;
/// elsewhere the same call would lower the whole process.
#[cfg(target_os = "linux")]
pub(crate) fn yield_to_ingestion() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours; `who` 0 is the calling thread.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, PROJECTOR_NICENESS) };
    if result != 0 {
        // Not allowed (a seccomp profile may refuse the call): the projector runs at normal priority.
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a projector thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn yield_to_ingestion() {}

/// The least time between two wake-ups of a projector that nothing waits on (see `start_projectors`).
const WAKE_INTERVAL: Duration = Duration::from_millis(10);

/// How soon a projector that failed tries again, even without a new commit.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// "Catch up with the journal."
#[derive(Message)]
#[rtype(result = "()")]
struct CatchUp;

struct ProjectorActor {
    projection: Box<dyn Projection>,
    journal: JournalReader,
    views: Connection,
    position: watch::Sender<Position>,
    last_error: Arc<Mutex<Option<String>>>,
    on_error: OnError,
}

impl Actor for ProjectorActor {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        if !self.projection.is_urgent() {
            yield_to_ingestion();
        }
    }
}

impl Handler<CatchUp> for ProjectorActor {
    type Result = ();

    fn handle(&mut self, _: CatchUp, _: &mut SyncContext<Self>) {
        let position = &self.position;
        let result = catch_up(
            self.projection.as_mut(),
            &self.journal,
            &mut self.views,
            self.on_error,
            |p| {
                position.send_replace(p);
            },
        );
        let mut last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => *last_error = None,
            Err(error) => {
                let text = format!("{error:#}");
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(projection = self.projection.name(), error = %text, "projector is stuck");
                }
                if let Err(e) = record_error(&self.views, self.projection.name(), &text) {
                    tracing::warn!(projection = self.projection.name(), error = %e, "cannot record projector error");
                }
                *last_error = Some(text);
            }
        }
    }
}

/// What the rest of the program can see of a running projector.
#[derive(Clone)]
pub struct ProjectorHandle {
    pub name: &'static str,
    /// The position applied so far (its checkpoint).
    pub position: watch::Receiver<Position>,
    /// Why the last catch-up failed, if it did.
    pub last_error: Arc<Mutex<Option<String>>>,
    /// For a policy that acts on time passing, on a virtual clock: the clock time it has last acted on.
    pub ticked: Option<watch::Receiver<jiff::Timestamp>>,
}

impl ProjectorHandle {
    /// Waits until the projector has applied `target`, or `timeout` passes. True when it got there: the basis of
    /// read-your-writes for pages.
    pub async fn wait_for(&self, target: Position, timeout: Duration) -> bool {
        let mut position = self.position.clone();
        tokio::time::timeout(timeout, position.wait_for(|p| *p >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts one actor per projection, each with its own journal and views connections, and wires it to the
/// writer's commit notices. Must run inside an actix system.
pub fn start_projectors(
    projections: Vec<Box<dyn Projection>>,
    journal_path: &Path,
    views_path: &Path,
    committed: watch::Receiver<Position>,
    on_error: OnError,
) -> anyhow::Result<Vec<ProjectorHandle>> {
    let mut handles = Vec::new();
    for projection in projections {
        let name = projection.name();
        let urgent = projection.is_urgent();
        let journal = JournalReader::open(journal_path)?;
        let views = crate::db::open(views_path, crate::config::Synchronous::Normal)?;
        let start = super::checkpoint(&views, name)?;
        let (position_tx, position) = watch::channel(start);
        let last_error = Arc::new(Mutex::new(None));
        let actor = ProjectorActor {
            projection,
            journal,
            views,
            position: position_tx,
            last_error: last_error.clone(),
            on_error,
        };
        // SyncArbiter wants a factory; the actor is built once, so hand it over through an Option.
        let slot = Mutex::new(Some(actor));
        let addr = SyncArbiter::start(1, move || {
            slot.lock()
                .expect("factory lock")
                .take()
                .expect("a projector actor is started exactly once")
        });
        let handle = ProjectorHandle {
            name,
            position,
            last_error,
            ticked: None,
        };
        let mut committed = committed.clone();
        let watcher = handle.clone();
        // A projector woken for every commit writes a views.db transaction per commit, and with ten of them a steady
        // 1,000 events/s became ten thousand commits a second on views.db; so commits made within a wake-up's
        // interval wait for the next one, together. Turnstiles wait on an urgent projection: it follows every commit.
        let interval = if urgent { Duration::ZERO } else { WAKE_INTERVAL };
        actix::spawn(async move {
            // Catch up with whatever was committed while we were down, then follow every commit.
            let _ = addr.try_send(CatchUp);
            loop {
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                let retry = watcher.error().is_some();
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep(RETRY_AFTER), if retry => {},
                }
                // A full mailbox already holds a CatchUp that will see this commit too.
                if let Err(SendError::Closed(_)) = addr.try_send(CatchUp) {
                    break;
                }
            }
        });
        handles.push(handle);
    }
    Ok(handles)
}
