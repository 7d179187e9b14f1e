//! How maintenance schedule events become bytes and back: each body under its type name, all at schema 1.

use super::{DecodeError, EventCodec, decode, encode};
use crate::domain::schedule::*;

const SCHEMA: u32 = 1;

impl EventCodec for ScheduleEvent {
    fn encode_body(&self) -> (u32, Vec<u8>) {
        let body = match self {
            ScheduleEvent::Created(b) => encode(b),
            ScheduleEvent::Changed(b) => encode(b),
            ScheduleEvent::Removed(b) => encode(b),
            ScheduleEvent::RunDue(b) => encode(b),
        };
        (SCHEMA, body)
    }

    fn decode_body(event_type: &str, schema: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if schema != SCHEMA {
            return Err(DecodeError::UnknownSchema {
                event_type: event_type.to_owned(),
                schema,
            });
        }
        Ok(match event_type {
            "ScheduleCreated" => ScheduleEvent::Created(decode(payload, event_type)?),
            "ScheduleChanged" => ScheduleEvent::Changed(decode(payload, event_type)?),
            "ScheduleRemoved" => ScheduleEvent::Removed(decode(payload, event_type)?),
            "ScheduleRunDue" => ScheduleEvent::RunDue(decode(payload, event_type)?),
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }

    fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            ScheduleEvent::Created(b) => serde_json::to_value(b),
            ScheduleEvent::Changed(b) => serde_json::to_value(b),
            ScheduleEvent::Removed(b) => serde_json::to_value(b),
            ScheduleEvent::RunDue(b) => serde_json::to_value(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_event, encode_event};
    use crate::domain::{DeviceId, DeviceKind, DomainEvent};

    #[test]
    fn every_schedule_event_survives_a_round_trip_under_its_own_name() {
        let at: jiff::Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        let spec = |target| ScheduleSpec {
            cron: "0 6 * * MON".into(),
            target,
            task: "t".into(),
        };
        let events = [
            ScheduleEvent::Created(ScheduleCreated {
                spec: spec(ScheduleTarget::Devices(vec![DeviceId::parse("T1").unwrap()])),
                at,
            }),
            ScheduleEvent::Changed(ScheduleChanged {
                spec: spec(ScheduleTarget::Kind(DeviceKind::Camera)),
                at,
            }),
            ScheduleEvent::Removed(ScheduleRemoved { at }),
            ScheduleEvent::RunDue(ScheduleRunDue {
                run_at: at,
                devices: vec![DeviceId::parse("T1").unwrap()],
                due_at: Some(at),
                task: "t".into(),
                at,
            }),
        ];
        for event in events {
            let stored = encode_event(&event);
            assert_eq!(stored.event_type, event.event_type());
            let back: ScheduleEvent =
                decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
    }
}
