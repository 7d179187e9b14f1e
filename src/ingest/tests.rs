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
    parse("gatehouse", topic, payload, received(), ClockBounds::default(), lookup).map_err(|e| e.to_string())
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
            at: "2026-03-01T10:59:58Z".parse().unwrap(),
            seq: None,
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
            at: received(),
            seq: None,
        }
    );
    assert_eq!(unknown_face.msg_id, None, "without msg_id every message is a fact");

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
            at: received(),
            seq: None,
        }
    );
}

#[test]
fn messages_without_msg_id_are_each_a_fact_and_seq_is_read() {
    let a = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"in"}"#).unwrap();
    let b = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"in"}"#).unwrap();
    assert_eq!((a.msg_id, b.msg_id), (None, None));
    assert_eq!(payload_digest("t", b"x"), payload_digest("t", b"x"));
    assert_ne!(payload_digest("t", b"x"), payload_digest("t", b"y"));
    let counted = try_parse("gatehouse/turnstile/T1/passage", br#"{"direction":"in","seq":41}"#).unwrap();
    assert_eq!(counted.command.seq(), Some(41));
    for bad in [
        br#"{"direction":"in","seq":-1}"#.as_slice(),
        br#"{"direction":"in","seq":"7"}"#,
        br#"{"direction":"in","seq":1.5}"#,
    ] {
        let error = try_parse("gatehouse/turnstile/T1/passage", bad).unwrap_err();
        assert!(error.contains("field \"seq\""), "{error}");
    }
}

#[test]
fn device_time_out_of_bounds_is_refused_with_which_bound_and_by_how_much() {
    let ahead = try_parse(
        "gatehouse/turnstile/T1/passage",
        br#"{"direction":"in","at":"2026-03-01T12:07:30Z"}"#,
    )
    .unwrap_err();
    assert_eq!(
        ahead,
        "device time 2026-03-01T12:07:30Z is 7m 30s ahead of the receive time 2026-03-01T12:00:00Z, over \
         [devices] max_clock_skew 5m"
    );
    let far_past = try_parse(
        "gatehouse/turnstile/T1/passage",
        br#"{"direction":"in","at":"-009999-01-02T01:59:59Z"}"#,
    )
    .unwrap_err();
    assert!(
        far_past.contains("behind the receive time") && far_past.contains("max_backdate 30d"),
        "{far_past}"
    );
    let far_future = try_parse(
        "gatehouse/turnstile/T1/passage",
        br#"{"direction":"in","at":"9000-01-01T00:00:00Z"}"#,
    )
    .unwrap_err();
    assert!(far_future.contains("ahead of the receive time"), "{far_future}");
    // Within bounds: a little ahead, a week behind.
    assert!(
        try_parse(
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":"2026-03-01T12:04:00Z"}"#
        )
        .is_ok()
    );
    assert!(
        try_parse(
            "gatehouse/turnstile/T1/passage",
            br#"{"direction":"in","at":"2026-02-22T12:00:00Z"}"#
        )
        .is_ok()
    );
}

#[test]
fn fields_are_read_by_type_from_the_payload_text() {
    let passage = "gatehouse/turnstile/T1/passage";
    // Escaped strings are decoded; whitespace around the object and unknown fields of any shape are fine.
    let escaped = try_parse(
        passage,
        br#"  {"msg_id":"g\u002d1\n","direction":"\u0069n","extra":{"deep":[1,{"x":null}]}}  "#,
    )
    .unwrap();
    assert_eq!(escaped.msg_id.as_deref(), Some("g-1\n"));
    assert_eq!(
        escaped.command,
        DeviceCommand::RecordPassage {
            direction: Direction::In,
            at: received(),
            seq: None,
        }
    );
    // Each field's type is named in the reason.
    for (payload, reason) in [
        (
            r#"{"direction":7}"#,
            r#"field "direction": expected a string, found a number"#,
        ),
        (
            r#"{"direction":true}"#,
            r#"field "direction": expected a string, found a boolean"#,
        ),
        (
            r#"{"direction":["in"]}"#,
            r#"field "direction": expected a string, found an array"#,
        ),
        (r#"{"direction":null}"#, r#"field "direction": missing"#),
        (
            r#"{"direction":"in","msg_id":{}}"#,
            r#"field "msg_id": expected a string, found an object"#,
        ),
        (
            r#"{"direction":"in","msg_id":""}"#,
            r#"field "msg_id": must be 1 to 128 characters"#,
        ),
        (
            r#"{"direction":"in","at":5}"#,
            r#"field "at": expected an RFC 3339 string, found a number"#,
        ),
        (r#"[{"direction":"in"}]"#, "payload is not a JSON object"),
        (r#""in""#, "payload is not a JSON object"),
    ] {
        assert_eq!(try_parse(passage, payload.as_bytes()).unwrap_err(), reason, "{payload}");
    }
    for broken in [r#"{"direction":"in""#, r#"[1,"#, "", "{\"direction\":\"in\"} x"] {
        let error = try_parse(passage, broken.as_bytes()).unwrap_err();
        assert!(error.starts_with("payload is not valid JSON"), "{broken}: {error}");
    }
    // A recognition tells a subject that is null (nobody recognized) from one that is missing.
    let recognition = "gatehouse/camera/C1/recognition";
    assert!(try_parse(recognition, br#"{"subject":null,"confidence":1}"#).is_ok());
    assert_eq!(
        try_parse(recognition, br#"{"confidence":1}"#).unwrap_err(),
        r#"field "subject": missing (use null when nobody was recognized)"#
    );
    assert_eq!(
        try_parse(recognition, br#"{"subject":null,"confidence":"high"}"#).unwrap_err(),
        r#"field "confidence": expected a number, found a string"#
    );
    let named = try_parse(recognition, br#"{"subject":"P-\u0031","confidence":0.9}"#).unwrap();
    assert_eq!(named.identified.map(|s| s.to_string()).as_deref(), Some("P-1"));
}
