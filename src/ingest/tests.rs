//! The edge's valid cases; the corpus of bad messages runs end to end in tests/integration/bad_input.rs.

use super::message::*;
use crate::domain::*;
use jiff::Timestamp;

fn received() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn lookup(id: &DeviceId) -> Option<DeviceKind> {
    match id.as_str() {
        "T1" => Some(DeviceKind::Turnstile),
        "C1" => Some(DeviceKind::Camera),
        _ => None,
    }
}

fn try_parse(topic: &str, payload: &[u8]) -> Result<DeviceMessage, String> {
    parse("gatehouse", topic, payload, received(), lookup).map_err(|e| e.to_string())
}

#[test]
fn valid_messages_become_commands() {
    let passage = try_parse(
        "gatehouse/turnstile/T1/passage",
        br#"{"msg_id":"g-1","at":"2026-03-01T11:59:58+01:00","direction":"out","firmware":"2.1"}"#,
    )
    .unwrap();
    assert_eq!(passage.device.as_str(), "T1");
    assert_eq!(passage.msg_id.as_deref(), Some("g-1"));
    assert_eq!(
        passage.command,
        DeviceCommand::RecordPassage {
            direction: Direction::Out,
            at: "2026-03-01T10:59:58Z".parse().unwrap()
        }
    );

    let unknown_face = try_parse(
        "gatehouse/camera/C1/recognition",
        br#"{"subject":null,"confidence":0.2}"#,
    )
    .unwrap();
    assert_eq!(
        unknown_face.command,
        DeviceCommand::RecordRecognition {
            subject: None,
            confidence: 0.2,
            at: received()
        }
    );
    assert!(
        unknown_face.msg_id.unwrap().starts_with("sha256:"),
        "a digest stands in for a missing msg_id"
    );

    let status = try_parse("gatehouse/camera/C1/status", b"offline").unwrap();
    assert_eq!(
        status.command,
        DeviceCommand::ReportAvailability {
            online: false,
            at: received()
        }
    );
    assert_eq!(status.msg_id, None);
    let heartbeat = try_parse("gatehouse/turnstile/T1/heartbeat", b"whatever").unwrap();
    assert_eq!(heartbeat.command, DeviceCommand::RecordHeartbeat { at: received() });

    let fault = try_parse("gatehouse/turnstile/T1/fault", br#"{"code":"JAM"}"#).unwrap();
    assert_eq!(
        fault.command,
        DeviceCommand::ReportFault {
            code: FaultCode::parse("JAM").unwrap(),
            detail: String::new(),
            at: received()
        }
    );
}

#[test]
fn the_same_payload_on_the_same_topic_gets_the_same_digest() {
    let a = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"in"}"#).unwrap();
    let b = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"in"}"#).unwrap();
    let c = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"out"}"#).unwrap();
    assert_eq!(a.msg_id, b.msg_id);
    assert_ne!(a.msg_id, c.msg_id);
}
