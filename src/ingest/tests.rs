//! The edge's corpus: every malformed or invalid message gets its specific reason; valid ones become commands.

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
fn every_bad_message_gets_its_specific_reason() {
    let huge = format!(r#"{{"direction":"in","pad":"{}"}}"#, "x".repeat(MAX_PAYLOAD));
    let long_detail = format!(r#"{{"code":"JAM","detail":"{}"}}"#, "d".repeat(1001));
    let corpus: Vec<(&str, &[u8], &str)> = vec![
        (
            "gatehouse/turnstile/T1/passage",
            huge.as_bytes(),
            "payload is 65563 bytes, over the 64 KiB limit",
        ),
        (
            "other/turnstile/T1/passage",
            b"{}",
            "topic \"other/turnstile/T1/passage\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/turnstile/T1",
            b"{}",
            "topic \"gatehouse/turnstile/T1\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/turnstile/T1/passage/extra",
            b"{}",
            "topic \"gatehouse/turnstile/T1/passage/extra\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouseX/turnstile/T1/passage",
            b"{}",
            "topic \"gatehouseX/turnstile/T1/passage\" is not {prefix}/{turnstile|camera}/{device_id}/{message}",
        ),
        (
            "gatehouse/elevator/E1/passage",
            b"{}",
            "unknown device kind \"elevator\" in topic: expected turnstile or camera",
        ),
        (
            "gatehouse/turnstile/T 1/passage",
            b"{}",
            "invalid device id in topic: device id \"T 1\" may only contain letters, digits, '_' and '-'",
        ),
        (
            "gatehouse/turnstile//passage",
            b"{}",
            "invalid device id in topic: device id is empty",
        ),
        (
            "gatehouse/turnstile/T9/passage",
            b"{}",
            "unknown device \"T9\": add it to config.toml and re-drive",
        ),
        (
            "gatehouse/camera/T1/recognition",
            b"{}",
            "device \"T1\" is a turnstile, but the topic says camera",
        ),
        (
            "gatehouse/turnstile/T1/recognition",
            b"{}",
            "unknown message \"recognition\" for a turnstile",
        ),
        (
            "gatehouse/camera/C1/passage",
            b"{}",
            "unknown message \"passage\" for a camera",
        ),
        (
            "gatehouse/turnstile/T1/reboot",
            b"{}",
            "unknown message \"reboot\" for a turnstile",
        ),
        ("gatehouse/turnstile/T1/passage", b"\xff\xfe", "payload is not UTF-8"),
        (
            "gatehouse/turnstile/T1/passage",
            b"{\"direction\":",
            "payload is not valid JSON: EOF while parsing a value at line 1 column 13",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"",
            "payload is not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"[1,2]",
            "payload is not a JSON object",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            b"\"in\"",
            "payload is not a JSON object",
        ),
        ("gatehouse/turnstile/T1/passage", b"{}", "field \"direction\": missing"),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"sideways"}"#,
            "field \"direction\": direction \"sideways\" is not \"in\" or \"out\"",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":1}"#,
            "field \"direction\": expected a string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":"yesterday"}"#,
            "field \"at\": \"yesterday\" is not an RFC 3339 timestamp",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":1700000000}"#,
            "field \"at\": expected an RFC 3339 string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","msg_id":42}"#,
            "field \"msg_id\": expected a string, found a number",
        ),
        (
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","msg_id":""}"#,
            "field \"msg_id\": must be 1 to 128 characters",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"detail":"no code"}"#,
            "field \"code\": missing",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":""}"#,
            "field \"code\": fault code is empty",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":"JAM 2"}"#,
            "field \"code\": fault code \"JAM 2\" contains spaces or control characters",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            br#"{"code":"JAM","detail":{"a":1}}"#,
            "field \"detail\": expected a string, found an object",
        ),
        (
            "gatehouse/turnstile/T1/fault",
            long_detail.as_bytes(),
            "field \"detail\": longer than 1000 characters",
        ),
        (
            "gatehouse/turnstile/T1/fault_cleared",
            br#"{"code":null}"#,
            "field \"code\": missing",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"confidence":0.5}"#,
            "field \"subject\": missing (use null when nobody was recognized)",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":7,"confidence":0.5}"#,
            "field \"subject\": expected a string or null, found a number",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":"","confidence":0.5}"#,
            "field \"subject\": subject is empty",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null}"#,
            "field \"confidence\": missing",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":"high"}"#,
            "field \"confidence\": expected a number, found a string",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":1.5}"#,
            "field \"confidence\": 1.5 is outside 0..=1",
        ),
        (
            "gatehouse/camera/C1/recognition",
            br#"{"subject":null,"confidence":-0.1}"#,
            "field \"confidence\": -0.1 is outside 0..=1",
        ),
        (
            "gatehouse/camera/C1/status",
            b"rebooting",
            "status payload \"rebooting\" is neither online nor offline",
        ),
    ];
    assert!(corpus.len() >= 30);
    for (topic, payload, reason) in corpus {
        assert_eq!(
            try_parse(topic, payload),
            Err(reason.to_owned()),
            "{topic} {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(60)])
        );
    }
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
