//! The journal in `journal.db`: the append-only record of every device event. `writer` owns the only write
//! connection (group commit, optimistic concurrency, dedupe, "committed up to P" notices); `reader` answers
//! queries on separate read-only connections.

mod reader;
mod writer;

pub use reader::{JournalReader, Snapshot};
pub use writer::{
    AppendError, AppendOutcome, AppendRequest, JournalWriter, NewDeadLetter, SnapshotRequest, WriterStats, WriterThread,
};

use crate::domain::{DeviceEvent, DeviceId};
use jiff::Timestamp;

/// A journal position: 1, 2, 3 ... in commit order across all streams. 0 means "before the first event".
pub type Position = u64;

/// An event as stored, with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    pub stream_id: DeviceId,
    pub version: u64,
    pub event_type: String,
    pub schema: u32,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub causation: Option<String>,
    pub event: DeviceEvent,
}

impl StoredEvent {
    /// The JSON line `gatehouse events` prints and the event browser shows.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "position": self.position,
            "stream": self.stream_id.as_str(),
            "version": self.version,
            "type": self.event_type,
            "schema": self.schema,
            "occurred_at": self.occurred_at.to_string(),
            "recorded_at": self.recorded_at.to_string(),
            "causation": self.causation,
            "data": crate::codec::event_json(&self.event),
        })
    }
}

pub(crate) fn micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

pub(crate) fn from_micros(micros: i64) -> Timestamp {
    // Values come from our own writer; an out-of-range one would mean a corrupted file, shown as the epoch
    // rather than a panic.
    Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
}
