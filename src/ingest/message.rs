//! The MQTT edge (SPEC §3): a topic and a payload become a typed device command, or a specific reason why not.
//! Nothing past this module sees raw topics or JSON.

use crate::domain::{DeviceCommand, DeviceId, DeviceKind, Direction, FaultCode, Subject, SubjectId};
use jiff::Timestamp;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Payloads larger than this are refused whole (SPEC §3).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// A device message that passed every check at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMessage {
    pub kind: DeviceKind,
    pub device: DeviceId,
    /// The gateway's `msg_id`, so redeliveries are dropped. Without one, every message is a fact (only a
    /// protocol redelivery of the same packet is dropped, see `Delivery`).
    pub msg_id: Option<String>,
    /// What to do. A recognition's subject is left out here (`None`) until [`DeviceMessage::seal`] puts the sealed
    /// one in: the identifier in clear never reaches a command.
    pub command: DeviceCommand,
    /// The identifier a recognition named, in clear, for sealing.
    pub identified: Option<SubjectId>,
}

impl DeviceMessage {
    /// The message with its recognition's subject sealed (by the subject vault) into the command.
    pub fn seal<E>(mut self, seal: impl FnOnce(&SubjectId) -> Result<Subject, E>) -> Result<Self, E> {
        if let (Some(identified), DeviceCommand::RecordRecognition { subject, .. }) =
            (self.identified.take(), &mut self.command)
        {
            *subject = Some(seal(&identified)?);
        }
        Ok(self)
    }
}

/// How far device time may stray from the receive time (`[devices] max_clock_skew` / `max_backdate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBounds {
    pub max_ahead: std::time::Duration,
    pub max_behind: std::time::Duration,
}

impl Default for ClockBounds {
    fn default() -> Self {
        Self {
            max_ahead: std::time::Duration::from_secs(5 * 60),
            max_behind: std::time::Duration::from_secs(30 * 86400),
        }
    }
}

/// A digest of topic and payload: with the client id and packet id, what identifies one protocol delivery.
pub fn payload_digest(topic: &str, payload: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(topic.as_bytes());
    hash.update([0]);
    hash.update(payload);
    let bytes = hash.finalize();
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
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
    #[error("device time {at} is {by} ahead of the receive time {received}, over [devices] max_clock_skew {limit}")]
    TooFarAhead {
        at: String,
        received: Timestamp,
        by: String,
        limit: String,
    },
    #[error("device time {at} is {by} behind the receive time {received}, over [devices] max_backdate {limit}")]
    TooFarBehind {
        at: String,
        received: Timestamp,
        by: String,
        limit: String,
    },
}

/// A duration as people read it in a reason: `7m 12s`, `3d 4h`, `19999y 2d`.
fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (years, rest) = (secs / (365 * 86400), secs % (365 * 86400));
    let (days, rest) = (rest / 86400, rest % 86400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    let parts = [(years, "y"), (days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")];
    let shown: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if shown.is_empty() {
        format!("{}ms", d.as_millis())
    } else {
        shown.join(" ")
    }
}

/// Checks device time against the receive time.
fn within_bounds(at: Timestamp, received_at: Timestamp, bounds: ClockBounds) -> Result<(), Unacceptable> {
    let ahead = at.as_microsecond().saturating_sub(received_at.as_microsecond());
    let to_duration = |micros: i64| std::time::Duration::from_micros(micros.unsigned_abs());
    if ahead > 0 && to_duration(ahead) > bounds.max_ahead {
        return Err(Unacceptable::TooFarAhead {
            at: at.to_string(),
            received: received_at,
            by: human(to_duration(ahead)),
            limit: human(bounds.max_ahead),
        });
    }
    if ahead < 0 && to_duration(ahead) > bounds.max_behind {
        return Err(Unacceptable::TooFarBehind {
            at: at.to_string(),
            received: received_at,
            by: human(to_duration(ahead)),
            limit: human(bounds.max_behind),
        });
    }
    Ok(())
}

fn bad(field: &'static str, problem: impl Into<String>) -> Unacceptable {
    Unacceptable::BadField {
        field,
        problem: problem.into(),
    }
}

/// A payload's fields, each borrowed raw from its text so that its type is checked with a specific reason. Other
/// fields are skipped without being kept: a message is parsed without building a JSON tree (building one, and
/// cloning it, was a tenth of the ingesting thread's time in the external-broker benchmark).
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow, deserialize_with = "present")]
    msg_id: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    at: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    seq: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    direction: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    code: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    detail: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    subject: Option<&'a RawValue>,
    #[serde(borrow, deserialize_with = "present")]
    confidence: Option<&'a RawValue>,
}

/// A field that is there, `null` included (`Option`'s own impl would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// A present field's value, read by its type.
enum Json<'a> {
    Null,
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    /// Anything else, by what it is called in a reason.
    Other(&'static str),
}

impl<'a> Json<'a> {
    /// Reads a raw value that the payload's parse already found valid.
    fn of(raw: &'a RawValue) -> Result<Self, Unacceptable> {
        let text = raw.get();
        let invalid = |e: serde_json::Error| Unacceptable::BadJson(e.to_string());
        Ok(match text.as_bytes().first() {
            Some(b'n') => Json::Null,
            Some(b't' | b'f') => Json::Other("a boolean"),
            Some(b'[') => Json::Other("an array"),
            Some(b'{') => Json::Other("an object"),
            // Borrowed unless it has escapes.
            Some(b'"') => Json::Text(match serde_json::from_str::<&str>(text) {
                Ok(borrowed) => Cow::Borrowed(borrowed),
                Err(_) => Cow::Owned(serde_json::from_str::<String>(text).map_err(invalid)?),
            }),
            _ => Json::Number(serde_json::from_str(text).map_err(invalid)?),
        })
    }

    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Text(_) => "a string",
            Json::Number(_) => "a number",
            Json::Other(name) => name,
        }
    }
}

/// Reads an optional field: absent and `null` are `None`.
fn optional(raw: Option<&RawValue>) -> Result<Option<Json<'_>>, Unacceptable> {
    match raw.map(Json::of).transpose()? {
        None | Some(Json::Null) => Ok(None),
        Some(value) => Ok(Some(value)),
    }
}

/// Reads an optional string field with a type check, so `"code": 7` is reported as such.
fn string_field<'a>(raw: Option<&'a RawValue>, field: &'static str) -> Result<Option<Cow<'a, str>>, Unacceptable> {
    match optional(raw)? {
        None => Ok(None),
        Some(Json::Text(s)) => Ok(Some(s)),
        Some(other) => Err(bad(field, format!("expected a string, found {}", other.type_name()))),
    }
}

fn required_string<'a>(raw: Option<&'a RawValue>, field: &'static str) -> Result<Cow<'a, str>, Unacceptable> {
    string_field(raw, field)?.ok_or_else(|| bad(field, "missing"))
}

/// Reads a payload's fields, telling text that is not JSON from JSON that is not an object.
fn fields(text: &str) -> Result<Fields<'_>, Unacceptable> {
    // A struct also deserializes from an array; only an object is a message.
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Err(Unacceptable::NotAnObject),
            Err(e) => Err(Unacceptable::BadJson(e.to_string())),
        };
    }
    serde_json::from_str(text).map_err(|e| Unacceptable::BadJson(e.to_string()))
}

/// Parses one MQTT message. `lookup` tells the kind of a configured device (None: unknown); device time is
/// judged against `received_at` (for a re-driven dead letter: when it was first received).
pub fn parse(
    topic_prefix: &str,
    topic: &str,
    payload: &[u8],
    received_at: Timestamp,
    bounds: ClockBounds,
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
            identified: None,
        });
    }
    if message == "heartbeat" {
        let command = DeviceCommand::RecordHeartbeat { at: received_at };
        return Ok(DeviceMessage {
            kind,
            device,
            msg_id: None,
            command,
            identified: None,
        });
    }

    let fields = fields(text)?;
    let mut identified = None;
    let msg_id = match optional(fields.msg_id)? {
        None => None,
        Some(Json::Text(s)) if !s.is_empty() && s.len() <= 128 => Some(s.into_owned()),
        Some(Json::Text(_)) => return Err(bad("msg_id", "must be 1 to 128 characters")),
        Some(other) => {
            return Err(bad("msg_id", format!("expected a string, found {}", other.type_name())));
        }
    };
    let at = match optional(fields.at)? {
        None => received_at,
        Some(Json::Text(s)) => s
            .parse::<Timestamp>()
            .map_err(|_| bad("at", format!("{s:?} is not an RFC 3339 timestamp")))?,
        Some(other) => {
            return Err(bad(
                "at",
                format!("expected an RFC 3339 string, found {}", other.type_name()),
            ));
        }
    };
    within_bounds(at, received_at, bounds)?;
    let seq = match optional(fields.seq)? {
        None => None,
        Some(Json::Number(n)) => match n.as_u64() {
            Some(seq) => Some(seq),
            None => return Err(bad("seq", format!("{n} is not a whole number from 0 up"))),
        },
        Some(other) => {
            return Err(bad(
                "seq",
                format!("expected a whole number, found {}", other.type_name()),
            ));
        }
    };

    let command = match (kind, message) {
        (DeviceKind::Turnstile, "passage") => {
            let direction = required_string(fields.direction, "direction")?;
            let direction = direction.parse::<Direction>().map_err(|e| bad("direction", e))?;
            DeviceCommand::RecordPassage { direction, at, seq }
        }
        (_, "fault") => {
            let code = FaultCode::parse(&required_string(fields.code, "code")?).map_err(|e| bad("code", e))?;
            let detail = string_field(fields.detail, "detail")?.unwrap_or_default().into_owned();
            if detail.chars().count() > 1000 {
                return Err(bad("detail", "longer than 1000 characters"));
            }
            DeviceCommand::ReportFault { code, detail, at, seq }
        }
        (_, "fault_cleared") => {
            let code = FaultCode::parse(&required_string(fields.code, "code")?).map_err(|e| bad("code", e))?;
            DeviceCommand::ClearFault { code, at, seq }
        }
        (DeviceKind::Camera, "recognition") => {
            identified = match fields.subject.map(Json::of).transpose()? {
                None => {
                    return Err(bad("subject", "missing (use null when nobody was recognized)"));
                }
                Some(Json::Null) => None,
                Some(Json::Text(s)) => Some(SubjectId::parse(&s).map_err(|e| bad("subject", e))?),
                Some(other) => {
                    return Err(bad(
                        "subject",
                        format!("expected a string or null, found {}", other.type_name()),
                    ));
                }
            };
            let confidence = match fields.confidence.map(Json::of).transpose()? {
                None => return Err(bad("confidence", "missing")),
                Some(Json::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                Some(other) => {
                    return Err(bad(
                        "confidence",
                        format!("expected a number, found {}", other.type_name()),
                    ));
                }
            };
            if !(0.0..=1.0).contains(&confidence) {
                return Err(bad("confidence", format!("{confidence} is outside 0..=1")));
            }
            DeviceCommand::RecordRecognition {
                subject: None,
                confidence,
                at,
                seq,
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
        msg_id,
        command,
        identified,
    })
}
