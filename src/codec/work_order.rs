//! How work order events become bytes and back: each body under its type name, all at schema 1.

use super::{DecodeError, EventCodec, decode, encode};
use crate::domain::work_order::*;

/// Every work order event type, its variant and body: the one list the three conversions below share.
macro_rules! work_order_bodies {
    ($apply:ident) => {
        $apply! {
            Opened => "WorkOrderOpened",
            Acknowledged => "WorkOrderAcknowledged",
            Assigned => "WorkOrderAssigned",
            Started => "WorkOrderStarted",
            Resolved => "WorkOrderResolved",
            Cancelled => "WorkOrderCancelled",
            Commented => "WorkOrderCommented",
            Reopened => "WorkOrderReopened",
        }
    };
}

const SCHEMA: u32 = 1;

impl EventCodec for WorkOrderEvent {
    fn encode_body(&self) -> (u32, Vec<u8>) {
        macro_rules! encode_arms {
            ($($variant:ident => $name:literal,)*) => {
                match self { $(WorkOrderEvent::$variant(body) => encode(body),)* }
            };
        }
        (SCHEMA, work_order_bodies!(encode_arms))
    }

    fn decode_body(event_type: &str, schema: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        if schema != SCHEMA {
            return Err(DecodeError::UnknownSchema {
                event_type: event_type.to_owned(),
                schema,
            });
        }
        macro_rules! decode_arms {
            ($($variant:ident => $name:literal,)*) => {
                match event_type {
                    $($name => Ok(WorkOrderEvent::$variant(decode(payload, event_type)?)),)*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            };
        }
        work_order_bodies!(decode_arms)
    }

    fn body_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        macro_rules! json_arms {
            ($($variant:ident => $name:literal,)*) => {
                match self { $(WorkOrderEvent::$variant(body) => serde_json::to_value(body),)* }
            };
        }
        work_order_bodies!(json_arms)
    }
}

/// The type names the codec stores are the ones the events give (checked in a test).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_event, encode_event};
    use crate::domain::{DeviceId, DomainEvent, FaultCode};

    #[test]
    fn every_work_order_event_survives_a_round_trip_under_its_own_name() {
        let at: jiff::Timestamp = "2026-03-01T09:00:00.5Z".parse().unwrap();
        let note = Note::parse("n", "n").unwrap();
        let events = [
            WorkOrderEvent::Opened(WorkOrderOpened {
                device: DeviceId::parse("T1").unwrap(),
                zone: "Hall A".into(),
                kind: WorkOrderKind::Corrective,
                cause: Cause::Fault {
                    code: FaultCode::parse("JAM").unwrap(),
                },
                title: "JAM".into(),
                due_at: Some(at),
                at,
            }),
            WorkOrderEvent::Acknowledged(WorkOrderAcknowledged { at }),
            WorkOrderEvent::Assigned(WorkOrderAssigned {
                technician: Technician::parse("Ana").unwrap(),
                at,
            }),
            WorkOrderEvent::Started(WorkOrderStarted { at }),
            WorkOrderEvent::Resolved(WorkOrderResolved { note: note.clone(), at }),
            WorkOrderEvent::Cancelled(WorkOrderCancelled {
                reason: note.clone(),
                at,
            }),
            WorkOrderEvent::Commented(WorkOrderCommented { text: note.clone(), at }),
            WorkOrderEvent::Reopened(WorkOrderReopened { reason: note, at }),
        ];
        for event in events {
            let stored = encode_event(&event);
            assert_eq!(stored.event_type, event.event_type());
            let back: WorkOrderEvent =
                decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
        assert!(decode_event::<WorkOrderEvent>("WorkOrderOpened", 2, 1, &[]).is_err());
    }
}
