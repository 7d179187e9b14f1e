//! The shape every aggregate has: a kind name, commands, events, a state with its schema version and a
//! rejection, with all business rules in `decide` and none in `evolve`. Devices were the first kinds; every
//! later kind (work orders, alarms, the watch list, presence) implements the same trait and is hosted, stored
//! and decoded by the same code.

use jiff::Timestamp;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt;

/// What every stored fact can say about itself, whatever its aggregate.
pub trait DomainEvent: fmt::Debug + Clone + Send + 'static {
    /// The stable name stored in the journal's `event_type` column and shown to people. Unique across kinds.
    fn event_type(&self) -> &'static str;
    /// When the fact happened (device time for device messages, decision time otherwise).
    fn occurred_at(&self) -> Timestamp;
}

/// An aggregate as a pure decider.
pub trait Aggregate {
    /// The kind of its streams: `device` streams are named by the bare device id, every other kind's streams
    /// are `kind:id` (see [`StreamName`]).
    const KIND: &'static str;
    /// Version of `State`'s stored shape; a snapshot with another version is ignored and the stream replayed.
    const STATE_SCHEMA: u32;
    /// What its state is called where archival carries it forward: the kind, or the device kind for devices
    /// (turnstiles and cameras share the `device` streams but not their state's shape).
    const STATE_OF: &'static str = Self::KIND;
    type Command: fmt::Debug + Clone + Send + 'static;
    type Event: DomainEvent;
    type State: Clone + Default + fmt::Debug + Serialize + DeserializeOwned + Send + Unpin + 'static;
    type Rejection: std::error::Error + Clone + Send + 'static;

    /// Decides what a command means given the current state: the events to record, or why not.
    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Rejection>;
    /// Applies one recorded event. Infallible: the journal only holds facts.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds a sequence of events onto a state.
    fn fold<'a>(state: Self::State, events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(state, Self::evolve)
    }
}

/// The kind name of device streams, whose names are the bare device ids (as they always were).
pub const DEVICE_KIND: &str = "device";

/// A journal stream's name: `T1` for a device, `kind:id` for any other kind (`work_order:WO-000012`). The
/// same text is the `stream_id` column, `gatehouse state`'s argument and `events --stream`'s filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

/// Why a text is not a stream name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStreamName {
    #[error("stream name is empty")]
    Empty,
    #[error("stream name {0:?} is longer than 200 characters")]
    TooLong(String),
    #[error("stream name {0:?}: the kind before ':' must be lowercase letters and '_', the id after it not empty")]
    BadKind(String),
    #[error("stream name {0:?} contains spaces or control characters")]
    BadCharacter(String),
}

impl StreamName {
    pub const MAX_LEN: usize = 200;

    /// The stream of a device: its bare id.
    pub fn device(id: &super::DeviceId) -> Self {
        Self(id.as_str().to_owned())
    }

    /// The stream `kind:id` of an aggregate of another kind (or the bare id for [`DEVICE_KIND`]).
    pub fn of(kind: &str, id: &str) -> Result<Self, InvalidStreamName> {
        if kind == DEVICE_KIND {
            Self::parse(id)
        } else {
            Self::parse(&format!("{kind}:{id}"))
        }
    }

    /// Reads a stream name as people and stored rows write it.
    pub fn parse(s: &str) -> Result<Self, InvalidStreamName> {
        if s.is_empty() {
            return Err(InvalidStreamName::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidStreamName::TooLong(s.to_owned()));
        }
        // Bytes, not chars: this runs for every row read, and every byte of a multi-byte character is >= 0x80.
        if s.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(InvalidStreamName::BadCharacter(s.to_owned()));
        }
        if let Some((kind, id)) = s.split_once(':')
            && (kind.is_empty() || id.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(InvalidStreamName::BadKind(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The aggregate kind the stream belongs to.
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map_or(DEVICE_KIND, |(kind, _)| kind)
    }

    /// The instance id within its kind (`T1`, `WO-000012`).
    pub fn id(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(_, id)| id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for StreamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_id_is_a_device_and_other_kinds_are_prefixed() {
        let device = StreamName::parse("T1").unwrap();
        assert_eq!((device.kind(), device.id()), ("device", "T1"));
        let order = StreamName::of("work_order", "WO-000012").unwrap();
        assert_eq!(order.as_str(), "work_order:WO-000012");
        assert_eq!((order.kind(), order.id()), ("work_order", "WO-000012"));
        assert_eq!(StreamName::of("device", "T1").unwrap(), device);
        assert!(StreamName::parse("Bad:x").is_err());
        assert!(StreamName::parse(":x").is_err());
        assert!(StreamName::parse("alarm:").is_err());
        assert!(StreamName::parse("a b").is_err());
        assert!(StreamName::parse("").is_err());
    }
}
