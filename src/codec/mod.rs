//! The one place that knows how events and snapshots become bytes. Every stored payload carries a format byte
//! (`FORMAT_*`) and every event a schema version per type, so a later codec or a changed event shape can be
//! added without rewriting the journal: old rows keep their format and schema and are upcast when read.
//!
//! Each aggregate kind's events implement [`EventCodec`] in a module of their own (`device`); [`AnyEvent`] and
//! [`decode_any`] are the registry: the one list of kinds, chosen by the stream's kind.

mod alarm;
mod bodies;
mod device;
pub mod reseal;
mod schedule;
mod work_order;

use crate::domain::*;
use jiff::Timestamp;
pub use reseal::Resealer;
use serde::{Serialize, de::DeserializeOwned};

/// bincode 2.0.1 (pinned), standard configuration: varint integers, little endian.
pub const FORMAT_BINCODE2: u8 = 1;

/// Why stored bytes could not become a value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown payload format {0}")]
    UnknownFormat(u8),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unknown aggregate kind {0:?}")]
    UnknownKind(String),
    #[error(
        "{event_type} schema {schema} was written with the person's identifier in clear; the re-encryption at start \
         (privacy::reseal) rewrites it"
    )]
    WrittenInClear { event_type: String, schema: u32 },
    #[error("{event_type} schema {schema} is newer than this program understands")]
    UnknownSchema { event_type: String, schema: u32 },
    #[error("undecodable {what}: {source}")]
    Bincode {
        what: String,
        #[source]
        source: bincode::error::DecodeError,
    },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding our own plain data types into a Vec cannot fail (no I/O, no unsupported serde features); were it
    // ever to, an empty body fails loudly on decode instead of taking the process down.
    // Room for a typical event up front: grown from empty, a passage's body took three allocations.
    let mut body = Vec::with_capacity(64);
    match bincode::serde::encode_into_std_write(value, &mut body, config()) {
        Ok(_) => body,
        Err(_) => Vec::new(),
    }
}

/// The most a decode may claim to allocate. A corrupt length prefix in stored bytes otherwise asks for an
/// allocation of any size (found by fuzzing: "capacity overflow", a panic); with the limit it is an error. The
/// limit changes nothing in the format: bytes written without it read the same.
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<DECODE_LIMIT>())
        .map(|(value, _read)| value)
        .map_err(|source| DecodeError::Bincode {
            what: what.to_owned(),
            source,
        })
}

/// How one aggregate kind's events are stored: the body bytes with the schema version they are written in, the
/// way back (upcasting older schemas), and the JSON people and scripts see.
pub trait EventCodec: DomainEvent + Sized {
    /// The body and the schema version it is written with now.
    fn encode_body(&self) -> (u32, Vec<u8>);
    /// Reads a body of any schema version this program knows, upcast to the current shape.
    fn decode_body(event_type: &str, schema: u32, payload: &[u8]) -> Result<Self, DecodeError>;
    /// The body as JSON.
    fn body_json(&self) -> Result<serde_json::Value, serde_json::Error>;
}

/// An event ready to store: its type name, schema version, format, body bytes and when it happened.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema: u32,
    pub format: u8,
    pub payload: Vec<u8>,
    pub occurred_at: Timestamp,
}

/// Encodes an event of any kind.
pub fn encode_event<E: EventCodec>(event: &E) -> EncodedEvent {
    let (schema, payload) = event.encode_body();
    EncodedEvent {
        event_type: event.event_type(),
        schema,
        format: FORMAT_BINCODE2,
        payload,
        occurred_at: event.occurred_at(),
    }
}

/// Decodes a stored event of a known kind, upcasting older schema versions to the current shape.
pub fn decode_event<E: EventCodec>(
    event_type: &str,
    schema: u32,
    format: u8,
    payload: &[u8],
) -> Result<E, DecodeError> {
    if format != FORMAT_BINCODE2 {
        return Err(DecodeError::UnknownFormat(format));
    }
    E::decode_body(event_type, schema, payload)
}

/// An event of any aggregate kind, as followers (projectors, policies, the event browser) read the journal.
/// The registry of kinds: adding a kind adds its variant here and its arm in [`decode_any`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    Device(DeviceEvent),
    WorkOrder(WorkOrderEvent),
    Schedule(ScheduleEvent),
    Alarm(AlarmEvent),
    WatchList(WatchListEvent),
    Presence(PresenceEvent),
    Occupancy(OccupancyEvent),
    /// An aggregate's state as of its last archived event, standing in for the events archival moved out of the
    /// journal. Followers have nothing to do with it: they applied the events it replaces before archival ran.
    Carried(CarriedForward),
}

/// The stored event type of [`CarriedForward`], whatever the aggregate kind.
pub const CARRIED_FORWARD: &str = "StateCarriedForward";

/// An aggregate instance's state carried forward by archival: written in place of the last event it moved to
/// the archive (same stream, version and position), so the stream stays recoverable from the journal alone.
/// `state` is the aggregate's state in the codec of snapshots; `state_schema` says which shape it has, as for a
/// snapshot (a program whose state schema differs cannot start from it and says so).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CarriedForward {
    /// Which aggregate's state: a device kind (`turnstile`, `camera`) or the stream's kind (`work_order`, ...).
    pub of: String,
    pub state_schema: u32,
    /// When the last archived event occurred.
    #[serde(with = "crate::domain::time::timestamp")]
    pub at: Timestamp,
    pub state: Vec<u8>,
}

impl CarriedForward {
    /// The state of `A` it carries, when it carries `A`'s current state schema.
    pub fn state_of<A: Aggregate>(&self) -> anyhow::Result<A::State> {
        anyhow::ensure!(
            self.state_schema == A::STATE_SCHEMA,
            "the carried-forward {} state has state schema {}; this program reads {} (archived history needs the \
             program that archived it, or one that upcasts that state)",
            self.of,
            self.state_schema,
            A::STATE_SCHEMA
        );
        Ok(decode_state(FORMAT_BINCODE2, &self.state)?)
    }

    /// Stored as an event row.
    pub fn encode(&self) -> EncodedEvent {
        EncodedEvent {
            event_type: CARRIED_FORWARD,
            schema: 1,
            format: FORMAT_BINCODE2,
            payload: encode(self),
            occurred_at: self.at,
        }
    }
}

impl AnyEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            AnyEvent::Device(e) => e.event_type(),
            AnyEvent::WorkOrder(e) => e.event_type(),
            AnyEvent::Schedule(e) => e.event_type(),
            AnyEvent::Alarm(e) => e.event_type(),
            AnyEvent::WatchList(e) => e.event_type(),
            AnyEvent::Presence(e) => e.event_type(),
            AnyEvent::Occupancy(e) => e.event_type(),
            AnyEvent::Carried(_) => CARRIED_FORWARD,
        }
    }

    pub fn occurred_at(&self) -> Timestamp {
        match self {
            AnyEvent::Device(e) => e.occurred_at(),
            AnyEvent::WorkOrder(e) => e.occurred_at(),
            AnyEvent::Schedule(e) => e.occurred_at(),
            AnyEvent::Alarm(e) => e.occurred_at(),
            AnyEvent::WatchList(e) => e.occurred_at(),
            AnyEvent::Presence(e) => e.occurred_at(),
            AnyEvent::Occupancy(e) => e.occurred_at(),
            AnyEvent::Carried(e) => e.at,
        }
    }

    /// The body as JSON, for `gatehouse events` and the event browser.
    pub fn to_json(&self) -> serde_json::Value {
        let json = match self {
            AnyEvent::Device(e) => e.body_json(),
            AnyEvent::WorkOrder(e) => e.body_json(),
            AnyEvent::Schedule(e) => e.body_json(),
            AnyEvent::Alarm(e) => e.body_json(),
            AnyEvent::WatchList(e) => e.body_json(),
            AnyEvent::Presence(e) => e.body_json(),
            AnyEvent::Occupancy(e) => e.body_json(),
            AnyEvent::Carried(e) => Ok(serde_json::json!({
                "of": e.of,
                "state_schema": e.state_schema,
                "state_bytes": e.state.len(),
            })),
        };
        json.unwrap_or_else(|error| serde_json::json!({ "unprintable": error.to_string() }))
    }
}

/// Decodes a stored event by its stream's kind. Every reader of the journal goes through here (or through
/// [`decode_event`] for its own kind), so they all see the same upcast events.
pub fn decode_any(
    stream: &StreamName,
    event_type: &str,
    schema: u32,
    format: u8,
    payload: &[u8],
) -> Result<AnyEvent, DecodeError> {
    if event_type == CARRIED_FORWARD {
        if format != FORMAT_BINCODE2 {
            return Err(DecodeError::UnknownFormat(format));
        }
        if schema != 1 {
            return Err(DecodeError::UnknownSchema {
                event_type: event_type.to_owned(),
                schema,
            });
        }
        return decode(payload, CARRIED_FORWARD).map(AnyEvent::Carried);
    }
    match stream.kind() {
        DEVICE_KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::Device),
        WorkOrder::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::WorkOrder),
        MaintenanceSchedule::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::Schedule),
        Alarm::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::Alarm),
        WatchList::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::WatchList),
        Presence::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::Presence),
        Occupancy::KIND => decode_event(event_type, schema, format, payload).map(AnyEvent::Occupancy),
        other => Err(DecodeError::UnknownKind(other.to_owned())),
    }
}

/// The JSON form of a device event's body (tests, pages that show one device).
pub fn event_json(event: &DeviceEvent) -> serde_json::Value {
    AnyEvent::Device(event.clone()).to_json()
}

/// Encodes an aggregate state for a snapshot.
pub fn encode_state<S: Serialize>(state: &S) -> (u8, Vec<u8>) {
    (FORMAT_BINCODE2, encode(state))
}

/// Decodes a snapshot's state; the caller has already checked the state schema version.
pub fn decode_state<S: DeserializeOwned>(format: u8, bytes: &[u8]) -> Result<S, DecodeError> {
    if format != FORMAT_BINCODE2 {
        return Err(DecodeError::UnknownFormat(format));
    }
    decode(bytes, "snapshot state")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> jiff::Timestamp {
        "2026-03-01T09:00:00.123456Z".parse().unwrap()
    }

    #[test]
    fn every_event_type_survives_a_round_trip() {
        let id = DeviceId::parse("T1").unwrap();
        let events = [
            DeviceEvent::Commissioned(Commissioned {
                kind: DeviceKind::Camera,
                details: DeviceDetails {
                    name: "n".into(),
                    zone: "z".into(),
                    serial: Some("S".into()),
                    model: None,
                    manufacturer: Some("M".into()),
                },
                watches: vec![id.clone()],
                at: at(),
            }),
            DeviceEvent::DetailsChanged(DetailsChanged {
                details: DeviceDetails::default(),
                at: at(),
            }),
            DeviceEvent::WatchesChanged(WatchesChanged {
                watches: vec![id],
                at: at(),
            }),
            DeviceEvent::Decommissioned(Decommissioned { at: at() }),
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction: Direction::Out,
                at: at(),
                during_fault: true,
                during_lockout: false,
                seq: None,
            }),
            DeviceEvent::FaultReported(FaultReported {
                code: FaultCode::parse("JAM").unwrap(),
                detail: "arm".into(),
                at: at(),
                seq: None,
            }),
            DeviceEvent::FaultCleared(FaultCleared {
                code: FaultCode::parse("JAM").unwrap(),
                at: at(),
                seq: None,
            }),
            DeviceEvent::LockedOut(LockedOut {
                reason: "r".into(),
                at: at(),
            }),
            DeviceEvent::Unlocked(Unlocked { at: at() }),
            DeviceEvent::WentOffline(WentOffline { at: at() }),
            DeviceEvent::CameOnline(CameOnline { at: at() }),
            DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject: Subject::parse("P-1").ok(),
                confidence: Confidence::new(0.5).unwrap(),
                at: at(),
                seq: None,
            }),
            DeviceEvent::FactVoided(FactVoided {
                position: 7,
                fact: VoidedFact::Recognition {
                    subject: Subject::parse("P-1").ok(),
                    confidence: Confidence::new(0.5).unwrap(),
                    at: at(),
                },
                reason: "the wrong person".into(),
                at: at(),
            }),
            DeviceEvent::FactVoided(FactVoided {
                position: 8,
                fact: VoidedFact::Passage {
                    direction: Direction::In,
                    at: at(),
                },
                reason: "test rotation".into(),
                at: at(),
            }),
        ];
        for event in events {
            let stored = encode_event(&event);
            let back: DeviceEvent =
                decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn json_shows_instants_as_rfc3339() {
        let event = DeviceEvent::CameOnline(CameOnline { at: at() });
        assert_eq!(
            event_json(&event),
            serde_json::json!({"at": "2026-03-01T09:00:00.123456Z"})
        );
    }

    #[test]
    fn an_unknown_format_or_newer_schema_is_an_error_not_a_panic() {
        let stored = encode_event(&DeviceEvent::Unlocked(Unlocked { at: at() }));
        assert!(matches!(
            decode_event::<DeviceEvent>("Unlocked", 1, 9, &stored.payload),
            Err(DecodeError::UnknownFormat(9))
        ));
        assert!(matches!(
            decode_event::<DeviceEvent>("Unlocked", 2, 1, &stored.payload),
            Err(DecodeError::UnknownSchema { .. })
        ));
        assert!(matches!(
            decode_event::<DeviceEvent>("Nope", 1, 1, &stored.payload),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode_event::<DeviceEvent>("FaultReported", 2, 1, &[0xff]),
            Err(DecodeError::Bincode { .. })
        ));
    }
}
