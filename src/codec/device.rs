//! How device events become bytes and back: each body under its type name, with the schema version it was
//! written in. Schema 2 added `seq` to the four device-message events; their schema 1 bodies upcast to "no seq".
//! Recognitions (schema 3) and voided facts (schema 2) carry sealed subjects; older ones are rewritten once
//! (`super::reseal`).

use super::{DecodeError, EventCodec, decode, encode};
use crate::domain::*;
use jiff::Timestamp;
use serde::Deserialize;

/// The schema each device event type is written with now.
fn current_schema(event_type: &str) -> u32 {
    match event_type {
        "PassageRecorded" | "FaultReported" | "FaultCleared" => 2,
        // 3: the subject sealed (super::reseal).
        "RecognitionRecorded" => 3,
        "FactVoided" => 2,
        _ => 1,
    }
}

/// Schema 1 bodies of the events that gained `seq` in schema 2.
mod v1 {
    use super::*;
    use crate::domain::time::timestamp;

    #[derive(Deserialize)]
    pub struct PassageRecorded {
        pub direction: Direction,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
        pub during_fault: bool,
        pub during_lockout: bool,
    }

    #[derive(Deserialize)]
    pub struct FaultReported {
        pub code: FaultCode,
        pub detail: String,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub struct FaultCleared {
        pub code: FaultCode,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }
}

/// Upcasts a schema 1 body of a type that gained `seq`: the old event simply had none.
fn upcast_v1(event_type: &str, payload: &[u8]) -> Result<Option<DeviceEvent>, DecodeError> {
    Ok(Some(match event_type {
        "PassageRecorded" => {
            let old: v1::PassageRecorded = decode(payload, event_type)?;
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction: old.direction,
                at: old.at,
                during_fault: old.during_fault,
                during_lockout: old.during_lockout,
                seq: None,
            })
        }
        "FaultReported" => {
            let old: v1::FaultReported = decode(payload, event_type)?;
            DeviceEvent::FaultReported(FaultReported {
                code: old.code,
                detail: old.detail,
                at: old.at,
                seq: None,
            })
        }
        "FaultCleared" => {
            let old: v1::FaultCleared = decode(payload, event_type)?;
            DeviceEvent::FaultCleared(FaultCleared {
                code: old.code,
                at: old.at,
                seq: None,
            })
        }
        _ => return Ok(None),
    }))
}

impl EventCodec for DeviceEvent {
    fn encode_body(&self) -> (u32, Vec<u8>) {
        let payload = match self {
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
            DeviceEvent::MessageCounted(b) => encode(b),
            DeviceEvent::FactVoided(b) => encode(b),
        };
        (current_schema(self.event_type()), payload)
    }

    fn decode_body(event_type: &str, schema: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        let current = current_schema(event_type);
        if schema > current {
            return Err(DecodeError::UnknownSchema {
                event_type: event_type.to_owned(),
                schema,
            });
        }
        if super::reseal::sealed_since(event_type).is_some_and(|sealed| schema < sealed) {
            return Err(DecodeError::WrittenInClear {
                event_type: event_type.to_owned(),
                schema,
            });
        }
        if schema < current {
            return match (schema, upcast_v1(event_type, payload)?) {
                (1, Some(event)) => Ok(event),
                _ => Err(DecodeError::UnknownSchema {
                    event_type: event_type.to_owned(),
                    schema,
                }),
            };
        }
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
            "MessageCounted" => DeviceEvent::MessageCounted(decode(payload, event_type)?),
            "FactVoided" => DeviceEvent::FactVoided(decode(payload, event_type)?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        };
        Ok(event)
    }

    fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
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
            DeviceEvent::MessageCounted(b) => serde_json::to_value(b),
            DeviceEvent::FactVoided(b) => serde_json::to_value(b),
        }
    }
}
