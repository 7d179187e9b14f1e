//! The one place that knows how events and snapshots become bytes. Every stored payload carries a format byte
//! (`FORMAT_*`) and every event a schema version, so a later codec or a changed event shape can be added without
//! rewriting the journal: old rows keep their format and are upcast when read.

use crate::domain::*;
use serde::{Serialize, de::DeserializeOwned};

/// bincode 2.0.1 (pinned), standard configuration: varint integers, little endian.
pub const FORMAT_BINCODE2: u8 = 1;

/// The schema version new events are written with. Bump per type when its body changes and add an upcaster
/// arm in [`decode_event`] for the old version.
pub const EVENT_SCHEMA: u32 = 1;

/// Why stored bytes could not become a value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown payload format {0}")]
    UnknownFormat(u8),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
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
    // Encoding our own plain data types into a Vec cannot fail: no I/O, no unsupported serde features.
    bincode::serde::encode_to_vec(value, config()).expect("bincode encodes plain data into a Vec")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(value, _read)| value)
        .map_err(|source| DecodeError::Bincode {
            what: what.to_owned(),
            source,
        })
}

/// An event ready to store: its type name, schema version, format and body bytes.
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema: u32,
    pub format: u8,
    pub payload: Vec<u8>,
}

/// Encodes an event's body under its stable type name.
pub fn encode_event(event: &DeviceEvent) -> EncodedEvent {
    let payload = match event {
        DeviceEvent::Commissioned(b) => encode(b),
        DeviceEvent::DetailsChanged(b) => encode(b),
        DeviceEvent::WatchesChanged(b) => encode(b),
        DeviceEvent::Decommissioned(b) => encode(b),
        DeviceEvent::PassageRecorded(b) => encode(b),
        DeviceEvent::FaultReported(b) => encode(b),
        DeviceEvent::FaultCleared(b) => encode(b),
        DeviceEvent::LockedOut(b) => encode(b),
        DeviceEvent::Unlocked(b) => encode(b),
        DeviceEvent::WentOffline(b) => encode(b),
        DeviceEvent::CameOnline(b) => encode(b),
        DeviceEvent::RecognitionRecorded(b) => encode(b),
    };
    EncodedEvent {
        event_type: event.event_type(),
        schema: EVENT_SCHEMA,
        format: FORMAT_BINCODE2,
        payload,
    }
}

/// Decodes a stored event, upcasting older schema versions to the current shape. Every reader (recovery,
/// projectors, rebuild, the event browser) goes through here, so they all see the same events.
pub fn decode_event(event_type: &str, schema: u32, format: u8, payload: &[u8]) -> Result<DeviceEvent, DecodeError> {
    if format != FORMAT_BINCODE2 {
        return Err(DecodeError::UnknownFormat(format));
    }
    if schema > EVENT_SCHEMA {
        return Err(DecodeError::UnknownSchema {
            event_type: event_type.to_owned(),
            schema,
        });
    }
    // Schema 1 is the only one so far; an upcaster for an older schema would match on (event_type, schema) here.
    let event = match event_type {
        "Commissioned" => DeviceEvent::Commissioned(decode(payload, event_type)?),
        "DetailsChanged" => DeviceEvent::DetailsChanged(decode(payload, event_type)?),
        "WatchesChanged" => DeviceEvent::WatchesChanged(decode(payload, event_type)?),
        "Decommissioned" => DeviceEvent::Decommissioned(decode(payload, event_type)?),
        "PassageRecorded" => DeviceEvent::PassageRecorded(decode(payload, event_type)?),
        "FaultReported" => DeviceEvent::FaultReported(decode(payload, event_type)?),
        "FaultCleared" => DeviceEvent::FaultCleared(decode(payload, event_type)?),
        "LockedOut" => DeviceEvent::LockedOut(decode(payload, event_type)?),
        "Unlocked" => DeviceEvent::Unlocked(decode(payload, event_type)?),
        "WentOffline" => DeviceEvent::WentOffline(decode(payload, event_type)?),
        "CameOnline" => DeviceEvent::CameOnline(decode(payload, event_type)?),
        "RecognitionRecorded" => DeviceEvent::RecognitionRecorded(decode(payload, event_type)?),
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    Ok(event)
}

/// The JSON form of an event's body, for people and scripts (`gatehouse events`, the event browser).
pub fn event_json(event: &DeviceEvent) -> serde_json::Value {
    let value = match event {
        DeviceEvent::Commissioned(b) => serde_json::to_value(b),
        DeviceEvent::DetailsChanged(b) => serde_json::to_value(b),
        DeviceEvent::WatchesChanged(b) => serde_json::to_value(b),
        DeviceEvent::Decommissioned(b) => serde_json::to_value(b),
        DeviceEvent::PassageRecorded(b) => serde_json::to_value(b),
        DeviceEvent::FaultReported(b) => serde_json::to_value(b),
        DeviceEvent::FaultCleared(b) => serde_json::to_value(b),
        DeviceEvent::LockedOut(b) => serde_json::to_value(b),
        DeviceEvent::Unlocked(b) => serde_json::to_value(b),
        DeviceEvent::WentOffline(b) => serde_json::to_value(b),
        DeviceEvent::CameOnline(b) => serde_json::to_value(b),
        DeviceEvent::RecognitionRecorded(b) => serde_json::to_value(b),
    };
    value.expect("event bodies are plain data and always serialize to JSON")
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
            }),
            DeviceEvent::FaultReported(FaultReported {
                code: FaultCode::parse("JAM").unwrap(),
                detail: "arm".into(),
                at: at(),
            }),
            DeviceEvent::FaultCleared(FaultCleared {
                code: FaultCode::parse("JAM").unwrap(),
                at: at(),
            }),
            DeviceEvent::LockedOut(LockedOut {
                reason: "r".into(),
                at: at(),
            }),
            DeviceEvent::Unlocked(Unlocked { at: at() }),
            DeviceEvent::WentOffline(WentOffline { at: at() }),
            DeviceEvent::CameOnline(CameOnline { at: at() }),
            DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject: SubjectId::parse("P-1").ok(),
                confidence: Confidence::new(0.5).unwrap(),
                at: at(),
            }),
        ];
        for event in events {
            let stored = encode_event(&event);
            let back = decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
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
            decode_event("Unlocked", 1, 9, &stored.payload),
            Err(DecodeError::UnknownFormat(9))
        ));
        assert!(matches!(
            decode_event("Unlocked", 2, 1, &stored.payload),
            Err(DecodeError::UnknownSchema { .. })
        ));
        assert!(matches!(
            decode_event("Nope", 1, 1, &stored.payload),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode_event("FaultReported", 1, 1, &[0xff]),
            Err(DecodeError::Bincode { .. })
        ));
    }
}
