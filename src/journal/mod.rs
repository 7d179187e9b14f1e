//! The journal in `journal.db`: the append-only record of every aggregate's events. `writer` owns the only write
//! connection (group commit, optimistic concurrency, dedupe, "committed up to P" notices); `reader` answers
//! queries on separate read-only connections.

mod reader;
mod writer;

pub use reader::{JournalReader, Snapshot, UnreadableEvent};
pub use writer::{
    AppendError, AppendOutcome, AppendRequest, Delivery, JournalWriter, NewDeadLetter, SnapshotRequest, WriterStats,
    WriterThread,
};

use crate::codec::AnyEvent;
use crate::domain::{DeviceEvent, StreamName};
use jiff::Timestamp;
use std::fmt;

/// A journal position: 1, 2, 3 ... in commit order across all streams. 0 means "before the first event".
pub type Position = u64;

/// Who or what caused an event, as the journal's `actor` column records it: `user:NAME`, `cli:OSUSER`,
/// `gateway:NAME` (the MQTT client id until gateways have identities), `broker:HOST`, `policy:NAME`, `config`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor(std::sync::Arc<str>);

impl Actor {
    /// A signed-in web user.
    pub fn user(name: &str) -> Self {
        Self(format!("user:{name}").into())
    }
    /// Someone at the command line, by their operating-system user name.
    pub fn cli() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self(format!("cli:{name}").into())
    }
    /// A gateway connected to the embedded endpoint (its client id until gateways sign in).
    pub fn gateway(name: &str) -> Self {
        Self(format!("gateway:{name}").into())
    }
    /// Messages that came through an external broker.
    pub fn broker(host: &str) -> Self {
        Self(format!("broker:{host}").into())
    }
    /// A policy that turned an event into a command.
    pub fn policy(name: &str) -> Self {
        Self(format!("policy:{name}").into())
    }
    /// The difference between `config.toml` and the journal (commission, reconfigure, decommission).
    pub fn config() -> Self {
        Self("config".into())
    }
    /// Reads a stored actor back.
    pub fn from_stored(text: String) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Who sent it, as alarms name a sender: an anonymous MQTT client by its host, not by the port of one
    /// connection (a gateway that reconnects for every message is still one sender).
    pub fn sender(&self) -> &str {
        sender_of(&self.0)
    }
}

/// [`Actor::sender`] of a stored actor text.
pub fn sender_of(actor: &str) -> &str {
    match actor.split_once("anonymous@") {
        Some((_, peer)) if peer.contains(':') => actor.rsplit_once(':').map_or(actor, |(sender, _)| sender),
        _ => actor,
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event as stored, with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    pub stream_id: StreamName,
    pub version: u64,
    /// The stored type name (the decoded event's own).
    pub event_type: &'static str,
    pub schema: u32,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub causation: Option<String>,
    /// `None` for events written before the journal recorded actors.
    pub actor: Option<Actor>,
    pub event: AnyEvent,
}

impl StoredEvent {
    /// The device event this is, with the device's id, when it is one.
    pub fn device(&self) -> Option<(&str, &DeviceEvent)> {
        match &self.event {
            AnyEvent::Device(event) => Some((self.stream_id.id(), event)),
            _ => None,
        }
    }

    /// The work order event this is, with the order's number, when it is one.
    pub fn work_order(
        &self,
    ) -> Option<(
        crate::domain::work_order::WorkOrderNumber,
        &crate::domain::WorkOrderEvent,
    )> {
        match &self.event {
            AnyEvent::WorkOrder(event) => crate::domain::work_order::WorkOrderNumber::parse(self.stream_id.id())
                .ok()
                .map(|n| (n, event)),
            _ => None,
        }
    }

    /// Who or what caused it, as people read it.
    pub fn actor_text(&self) -> &str {
        self.actor.as_ref().map_or("unrecorded", Actor::as_str)
    }

    /// A device's event as read back from the journal, recorded when it occurred (unit tests of followers).
    #[cfg(test)]
    pub(crate) fn of_device(position: Position, device: &str, version: u64, event: DeviceEvent) -> Self {
        use crate::domain::DomainEvent;
        Self {
            position,
            stream_id: crate::domain::StreamName::parse(device).expect("a test's device id is valid"),
            version,
            event_type: event.event_type(),
            schema: 1,
            occurred_at: event.occurred_at(),
            recorded_at: event.occurred_at(),
            causation: None,
            actor: None,
            event: AnyEvent::Device(event),
        }
    }
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
            "actor": self.actor.as_ref().map(Actor::as_str),
            "data": self.event.to_json(),
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

#[cfg(test)]
mod sender_tests {
    #[test]
    fn an_anonymous_client_is_one_sender_per_host() {
        assert_eq!(
            super::sender_of("gateway:anonymous@127.0.0.1:39022"),
            "gateway:anonymous@127.0.0.1"
        );
        assert_eq!(
            super::sender_of("gateway:anonymous@[::1]:5000"),
            "gateway:anonymous@[::1]"
        );
        assert_eq!(super::sender_of("gateway:pi-3"), "gateway:pi-3");
    }
}
