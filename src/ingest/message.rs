//! The MQTT edge (SPEC §3): a topic and a payload become a typed device command, or a specific reason why not.
//! Nothing past this module sees raw topics or JSON.

use crate::domain::{DeviceCommand, DeviceId, DeviceKind, Direction, FaultCode, SubjectId};
use jiff::Timestamp;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Payloads larger than this are refused whole (SPEC §3).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A device message that passed every check at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMessage {
    pub kind: DeviceKind,
    pub device: DeviceId,
    /// The gateway's `msg_id`, or a digest of topic and payload when it sent none, so redeliveries are dropped.
    /// `None` for `status` and `heartbeat`: they repeat the same bytes on purpose and only record changes.
    pub msg_id: Option<String>,
    pub command: DeviceCommand,
}

/// Why a message cannot become a command; the text is what the dead letter shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unacceptable {
    #[error("payload is {0} bytes, over the 64 KiB limit")]
    TooLarge(usize),
    #[error("topic {0:?} is not {{prefix}}/{{turnstile|camera}}/{{device_id}}/{{message}}")]
    BadTopic(String),
    #[error("unknown device kind {0:?} in topic: expected turnstile or camera")]
    UnknownKind(String),
    #[error("invalid device id in topic: {0}")]
    BadDeviceId(String),
    #[error("unknown device {0:?}: add it to config.toml and re-drive")]
    UnknownDevice(String),
    #[error("device {device:?} is a {actual}, but the topic says {claimed}")]
    KindMismatch {
        device: String,
        actual: DeviceKind,
        claimed: DeviceKind,
    },
    #[error("unknown message {message:?} for a {kind}")]
    UnknownMessage { kind: DeviceKind, message: String },
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is not valid JSON: {0}")]
    BadJson(String),
    #[error("payload is not a JSON object")]
    NotAnObject,
    #[error("field {field:?}: {problem}")]
    BadField { field: &'static str, problem: String },
    #[error("status payload {0:?} is neither online nor offline")]
    BadStatus(String),
}

fn bad(field: &'static str, problem: impl Into<String>) -> Unacceptable {
    Unacceptable::BadField {
        field,
        problem: problem.into(),
    }
}

/// Fields every JSON payload may carry.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    msg_id: Option<serde_json::Value>,
    #[serde(default)]
    at: Option<serde_json::Value>,
}

/// Reads an optional string field with a type check, so `"code": 7` is reported as such.
fn string_field(
    object: &serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<Option<String>, Unacceptable> {
    match object.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(field, format!("expected a string, found {}", json_type(other)))),
    }
}

fn required_string(
    object: &serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<String, Unacceptable> {
    string_field(object, field)?.ok_or_else(|| bad(field, "missing"))
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses one MQTT message. `lookup` tells the kind of a configured device (None: unknown).
pub fn parse(
    topic_prefix: &str,
    topic: &str,
    payload: &[u8],
    received_at: Timestamp,
    lookup: impl Fn(&DeviceId) -> Option<DeviceKind>,
) -> Result<DeviceMessage, Unacceptable> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Unacceptable::TooLarge(payload.len()));
    }
    let rest = topic
        .strip_prefix(topic_prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| Unacceptable::BadTopic(topic.to_owned()))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [kind, device, message] = parts[..] else {
        return Err(Unacceptable::BadTopic(topic.to_owned()));
    };
    let kind = match kind {
        "turnstile" => DeviceKind::Turnstile,
        "camera" => DeviceKind::Camera,
        other => return Err(Unacceptable::UnknownKind(other.to_owned())),
    };
    let device = DeviceId::parse(device).map_err(|e| Unacceptable::BadDeviceId(e.to_string()))?;
    match lookup(&device) {
        None => return Err(Unacceptable::UnknownDevice(device.to_string())),
        Some(actual) if actual != kind => {
            return Err(Unacceptable::KindMismatch {
                device: device.to_string(),
                actual,
                claimed: kind,
            });
        }
        Some(_) => {}
    }
    let text = std::str::from_utf8(payload).map_err(|_| Unacceptable::NotUtf8)?;
    let digest = || {
        let mut hash = Sha256::new();
        hash.update(topic.as_bytes());
        hash.update([0]);
        hash.update(payload);
        let bytes = hash.finalize();
        format!(
            "sha256:{}",
            bytes.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>()
        )
    };

    // `status` is plain text (gateways set it retained and as their Last Will); `heartbeat` takes anything.
    if message == "status" {
        let online = match text.trim() {
            "online" => true,
            "offline" => false,
            other => return Err(Unacceptable::BadStatus(other.chars().take(64).collect())),
        };
        let command = DeviceCommand::ReportAvailability {
            online,
            at: received_at,
        };
        return Ok(DeviceMessage {
            kind,
            device,
            msg_id: None,
            command,
        });
    }
    if message == "heartbeat" {
        let command = DeviceCommand::RecordHeartbeat { at: received_at };
        return Ok(DeviceMessage {
            kind,
            device,
            msg_id: None,
            command,
        });
    }

    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Unacceptable::BadJson(e.to_string()))?;
    let serde_json::Value::Object(object) = value else {
        return Err(Unacceptable::NotAnObject);
    };
    let envelope: Envelope = serde_json::from_value(serde_json::Value::Object(object.clone()))
        .map_err(|e| Unacceptable::BadJson(e.to_string()))?;
    let msg_id = match envelope.msg_id {
        None | Some(serde_json::Value::Null) => digest(),
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 128 => s,
        Some(serde_json::Value::String(_)) => {
            return Err(bad("msg_id", "must be 1 to 128 characters"));
        }
        Some(other) => {
            return Err(bad("msg_id", format!("expected a string, found {}", json_type(&other))));
        }
    };
    let at = match envelope.at {
        None | Some(serde_json::Value::Null) => received_at,
        Some(serde_json::Value::String(s)) => s
            .parse::<Timestamp>()
            .map_err(|_| bad("at", format!("{s:?} is not an RFC 3339 timestamp")))?,
        Some(other) => {
            return Err(bad(
                "at",
                format!("expected an RFC 3339 string, found {}", json_type(&other)),
            ));
        }
    };

    let command = match (kind, message) {
        (DeviceKind::Turnstile, "passage") => {
            let direction = required_string(&object, "direction")?;
            let direction = direction.parse::<Direction>().map_err(|e| bad("direction", e))?;
            DeviceCommand::RecordPassage { direction, at }
        }
        (_, "fault") => {
            let code = FaultCode::parse(&required_string(&object, "code")?).map_err(|e| bad("code", e))?;
            let detail = string_field(&object, "detail")?.unwrap_or_default();
            if detail.chars().count() > 1000 {
                return Err(bad("detail", "longer than 1000 characters"));
            }
            DeviceCommand::ReportFault { code, detail, at }
        }
        (_, "fault_cleared") => {
            let code = FaultCode::parse(&required_string(&object, "code")?).map_err(|e| bad("code", e))?;
            DeviceCommand::ClearFault { code, at }
        }
        (DeviceKind::Camera, "recognition") => {
            let subject = match object.get("subject") {
                None => {
                    return Err(bad("subject", "missing (use null when nobody was recognized)"));
                }
                Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(SubjectId::parse(s).map_err(|e| bad("subject", e))?),
                Some(other) => {
                    return Err(bad(
                        "subject",
                        format!("expected a string or null, found {}", json_type(other)),
                    ));
                }
            };
            let confidence = match object.get("confidence") {
                None => return Err(bad("confidence", "missing")),
                Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                Some(other) => {
                    return Err(bad(
                        "confidence",
                        format!("expected a number, found {}", json_type(other)),
                    ));
                }
            };
            if !(0.0..=1.0).contains(&confidence) {
                return Err(bad("confidence", format!("{confidence} is outside 0..=1")));
            }
            DeviceCommand::RecordRecognition {
                subject,
                confidence,
                at,
            }
        }
        (kind, other) => {
            return Err(Unacceptable::UnknownMessage {
                kind,
                message: other.to_owned(),
            });
        }
    };
    Ok(DeviceMessage {
        kind,
        device,
        msg_id: Some(msg_id),
        command,
    })
}
