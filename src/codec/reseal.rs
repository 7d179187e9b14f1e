//! Bodies written before identifiers were sealed, and the one-time rewrite that seals them. Their shapes are kept
//! here (with the identifier in clear, as `SubjectId`) only so [`reseal`] can read them: ordinary decoding of such a
//! body fails with [`super::DecodeError::WrittenInClear`], since nothing may read a person's identifier from the
//! journal any more.

use super::{DecodeError, decode, encode};
use crate::domain::alarm::{AlarmRaised, AlarmReactivated, AlarmRepeated, AlarmSource, AlarmType, Severity};
use crate::domain::presence::PassageIdentified;
use crate::domain::time::timestamp;
use crate::domain::watch_list::{WatchEntry, WatchEntryAdded, WatchEntryRemoved};
use crate::domain::*;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use std::collections::HashMap;

/// Each type whose bodies carry sealed subjects from a schema on, with that schema; older bodies carry them in
/// clear. Every type of the kinds that name people was bumped, so an alarm's acknowledgement has a new schema too
/// (same bytes).
pub const SEALED_SINCE: &[(&str, u32)] = &[
    ("RecognitionRecorded", 3),
    ("FactVoided", 2),
    ("WatchEntryAdded", 2),
    ("WatchEntryRemoved", 2),
    ("AlarmRaised", 2),
    ("AlarmRepeated", 2),
    ("AlarmReactivated", 2),
    ("AlarmAcknowledged", 2),
    ("AlarmCleared", 2),
    ("PassageIdentified", 2),
    ("AntiPassbackViolated", 2),
    ("PresenceTimedOut", 2),
];

/// The first schema of `event_type` with sealed subjects, if its kind names people.
pub fn sealed_since(event_type: &str) -> Option<u32> {
    SEALED_SINCE
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, schema)| *schema)
}

/// `text` with every whole-word occurrence of `word` replaced (an identifier `A` leaves "Hall A" alone only if it
/// is not a word of its own there: identifiers are matched where no letter or digit touches them).
pub fn replace_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let prev = rest[..at].chars().next_back().or(before);
        let next = rest[at + word.len()..].chars().next();
        let alone = !prev.is_some_and(char::is_alphanumeric) && !next.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if alone { with } else { word });
        before = word.chars().next_back();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

mod clear {
    //! The shapes as they were stored in clear.
    use super::*;

    #[derive(Deserialize)]
    pub struct RecognitionRecordedV1 {
        pub subject: Option<SubjectId>,
        pub confidence: Confidence,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub struct RecognitionRecordedV2 {
        pub subject: Option<SubjectId>,
        pub confidence: Confidence,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
        pub seq: Option<u64>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum VoidedFact {
        Passage {
            direction: Direction,
            #[serde(with = "timestamp")]
            at: Timestamp,
        },
        Recognition {
            subject: Option<SubjectId>,
            confidence: Confidence,
            #[serde(with = "timestamp")]
            at: Timestamp,
        },
    }

    #[derive(Deserialize)]
    pub struct FactVoided {
        pub position: u64,
        pub fact: VoidedFact,
        pub reason: String,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub struct WatchEntry {
        pub subject: SubjectId,
        pub list: String,
        pub severity: Severity,
        pub note: Option<String>,
        pub until: Option<Date>,
    }

    #[derive(Deserialize)]
    pub struct WatchEntryAdded {
        pub entry: WatchEntry,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub struct WatchEntryRemoved {
        pub subject: SubjectId,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub enum AlarmSource {
        Device(DeviceId),
        Subject(SubjectId),
        Sender(String),
        Zone(String),
    }

    #[derive(Deserialize)]
    pub struct AlarmRaised {
        pub alarm_type: AlarmType,
        pub source: AlarmSource,
        pub severity: Severity,
        pub zone: Option<String>,
        pub detail: String,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }

    #[derive(Deserialize)]
    pub struct PassageIdentified {
        pub subject: SubjectId,
        pub turnstile: DeviceId,
        pub camera: DeviceId,
        pub zone: String,
        pub direction: Direction,
        pub confidence: Confidence,
        #[serde(with = "timestamp")]
        pub at: Timestamp,
    }
}

/// Seals identifiers for the rewrite, and remembers which person each alarm stream is about, so a later
/// repetition's detail text loses the identifier too.
pub struct Resealer<'a> {
    seal: &'a mut dyn FnMut(&SubjectId) -> anyhow::Result<Subject>,
    alarm_subjects: HashMap<String, (SubjectId, Subject)>,
}

impl<'a> Resealer<'a> {
    pub fn new(seal: &'a mut dyn FnMut(&SubjectId) -> anyhow::Result<Subject>) -> Self {
        Self {
            seal,
            alarm_subjects: HashMap::new(),
        }
    }

    fn seal(&mut self, subject: &SubjectId) -> anyhow::Result<Subject> {
        (self.seal)(subject)
    }

    /// `text` with the stream's person's identifier replaced by their pseudonym.
    pub fn scrub(&self, stream: &str, text: String) -> String {
        match self.alarm_subjects.get(stream) {
            Some((plain, sealed)) => replace_word(&text, plain.as_str(), sealed.pseudonym.as_str()),
            None => text,
        }
    }

    /// The body rewritten with its identifiers sealed, at the schema that says so; `None` when the row needs no
    /// rewrite (a type that names nobody, or a body already sealed). Rows must come in journal order.
    pub fn reseal(
        &mut self,
        stream: &str,
        event_type: &str,
        schema: u32,
        payload: &[u8],
    ) -> anyhow::Result<Option<(u32, Vec<u8>)>> {
        let Some(sealed_since) = sealed_since(event_type) else {
            return Ok(None);
        };
        if schema >= sealed_since {
            return Ok(None);
        }
        let what = format!("{event_type} schema {schema} at {stream}");
        let body = match (event_type, schema) {
            ("RecognitionRecorded", 1 | 2) => {
                let (subject, confidence, at, seq) = if schema == 1 {
                    let old: clear::RecognitionRecordedV1 = decode(payload, &what)?;
                    (old.subject, old.confidence, old.at, None)
                } else {
                    let old: clear::RecognitionRecordedV2 = decode(payload, &what)?;
                    (old.subject, old.confidence, old.at, old.seq)
                };
                encode(&RecognitionRecorded {
                    subject: subject.map(|s| self.seal(&s)).transpose()?,
                    confidence,
                    at,
                    seq,
                })
            }
            ("FactVoided", 1) => {
                let old: clear::FactVoided = decode(payload, &what)?;
                let fact = match old.fact {
                    clear::VoidedFact::Passage { direction, at } => VoidedFact::Passage { direction, at },
                    clear::VoidedFact::Recognition {
                        subject,
                        confidence,
                        at,
                    } => VoidedFact::Recognition {
                        subject: subject.map(|s| self.seal(&s)).transpose()?,
                        confidence,
                        at,
                    },
                };
                encode(&FactVoided {
                    position: old.position,
                    fact,
                    reason: old.reason,
                    at: old.at,
                })
            }
            ("WatchEntryAdded", 1) => {
                let old: clear::WatchEntryAdded = decode(payload, &what)?;
                encode(&WatchEntryAdded {
                    entry: WatchEntry {
                        subject: self.seal(&old.entry.subject)?,
                        list: old.entry.list,
                        severity: old.entry.severity,
                        note: old.entry.note,
                        until: old.entry.until,
                    },
                    at: old.at,
                })
            }
            ("WatchEntryRemoved", 1) => {
                let old: clear::WatchEntryRemoved = decode(payload, &what)?;
                encode(&WatchEntryRemoved {
                    subject: self.seal(&old.subject)?,
                    at: old.at,
                })
            }
            ("AlarmRaised", 1) => {
                let old: clear::AlarmRaised = decode(payload, &what)?;
                let source = match old.source {
                    clear::AlarmSource::Device(id) => AlarmSource::Device(id),
                    clear::AlarmSource::Subject(plain) => {
                        let sealed = self.seal(&plain)?;
                        self.alarm_subjects.insert(stream.to_owned(), (plain, sealed.clone()));
                        AlarmSource::Subject(sealed)
                    }
                    clear::AlarmSource::Sender(sender) => AlarmSource::Sender(sender),
                    clear::AlarmSource::Zone(zone) => AlarmSource::Zone(zone),
                };
                let detail = self.scrub(stream, old.detail);
                encode(&AlarmRaised {
                    alarm_type: old.alarm_type,
                    source,
                    severity: old.severity,
                    zone: old.zone,
                    detail,
                    at: old.at,
                })
            }
            ("AlarmRepeated", 1) => {
                let old: AlarmRepeated = decode(payload, &what)?;
                encode(&AlarmRepeated {
                    detail: self.scrub(stream, old.detail),
                    at: old.at,
                })
            }
            ("AlarmReactivated", 1) => {
                let old: AlarmReactivated = decode(payload, &what)?;
                encode(&AlarmReactivated {
                    detail: self.scrub(stream, old.detail),
                    at: old.at,
                })
            }
            ("PassageIdentified", 1) => {
                let old: clear::PassageIdentified = decode(payload, &what)?;
                encode(&PassageIdentified {
                    subject: self.seal(&old.subject)?,
                    turnstile: old.turnstile,
                    camera: old.camera,
                    zone: old.zone,
                    direction: old.direction,
                    confidence: old.confidence,
                    at: old.at,
                })
            }
            // The rest name nobody: the same bytes under the new schema.
            ("AlarmAcknowledged" | "AlarmCleared" | "AntiPassbackViolated" | "PresenceTimedOut", 1) => payload.to_vec(),
            _ => {
                return Err(DecodeError::UnknownSchema {
                    event_type: event_type.to_owned(),
                    schema,
                }
                .into());
            }
        };
        Ok(Some((sealed_since, body)))
    }
}
