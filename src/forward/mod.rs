//! The forwarder: a follower of the journal that sends every event, as the CloudEvents document of SPEC §5, to a
//! NATS JetStream stream in journal order with de-duplicated re-sends, so a company's `gatehouse hq` sees all its
//! sites (the limits of "exactly once, in order" are in `forwarder`'s notes and the README).
//! The site never waits for it: ingestion goes on while the cluster is away and the forwarder catches up.
//!
//! `cloudevent` is the contract (pure), `nats` the connection and the stream, `forwarder` the loop, and this file
//! the progress the rest of the program shows (`/healthz`, `/admin/projections`, `/metrics`).

pub mod cloudevent;
mod forwarder;
pub mod nats;

pub use forwarder::Forwarder;

use crate::journal::Position;
use std::sync::Mutex;

/// How the forwarder is doing, as the pages and `/metrics` show it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub stream: String,
    pub subject: String,
    /// The last position the stream confirmed.
    pub forwarded_up_to: Position,
    pub journal_head: Position,
    /// When the oldest event the stream has not confirmed yet was recorded (`None`: nothing waits).
    pub waiting_since: Option<jiff::Timestamp>,
    /// Connected and the stream answering.
    pub connected: bool,
    /// Why the last attempt failed (it is retried).
    pub last_error: Option<String>,
    /// Forwarding stopped for good: what an operator must fix.
    pub stopped: Option<String>,
}

impl Progress {
    pub fn lag_events(&self) -> u64 {
        self.journal_head.saturating_sub(self.forwarded_up_to)
    }

    pub fn lag_seconds(&self, now: jiff::Timestamp) -> f64 {
        match self.waiting_since {
            Some(since) if self.lag_events() > 0 => {
                (now.as_millisecond() - since.as_millisecond()).max(0) as f64 / 1000.0
            }
            _ => 0.0,
        }
    }

    /// What `/healthz` says of it: `None` when all is well.
    pub fn trouble(&self) -> Option<String> {
        if let Some(stopped) = &self.stopped {
            return Some(format!("forwarder stopped: {stopped}"));
        }
        if !self.connected {
            let why = self.last_error.as_deref().unwrap_or("connecting");
            return Some(format!("forwarder: {} events waiting: {why}", self.lag_events()));
        }
        None
    }
}

/// Shared between the forwarder and the pages.
#[derive(Debug, Default)]
pub struct ForwardStatus(Mutex<Progress>);

impl ForwardStatus {
    pub fn progress(&self) -> Progress {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        if let Ok(mut progress) = self.0.lock() {
            change(&mut progress);
        }
    }
}
