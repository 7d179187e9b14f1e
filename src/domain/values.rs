//! Small validated values carried by commands and events: direction, fault code, subject, confidence.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which way a person went through a turnstile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in" => Ok(Direction::In),
            "out" => Ok(Direction::Out),
            other => Err(format!("direction {other:?} is not \"in\" or \"out\"")),
        }
    }
}

/// A unit's malfunction code, such as `JAM`: 1 to 64 printable characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultCode(String);

impl FaultCode {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("fault code is empty".into());
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(format!("fault code is longer than {} characters", Self::MAX_LEN));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("fault code {s:?} contains spaces or control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whom a camera recognized, as the recognition system names people (`P-1042`): 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectId(String);

impl SubjectId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("subject is empty".into());
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(format!("subject is longer than {} characters", Self::MAX_LEN));
        }
        if s.chars().any(char::is_control) {
            return Err("subject contains control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's keyed pseudonym: what names a subject wherever it must outlive an event's own fields (a stream
/// name, anything forwarded off the site), so forgetting a person means destroying a key, not rewriting streams.
/// `ps-` and 32 lowercase hex digits: random for people first seen since identifiers are sealed, the first 128
/// bits of HMAC-SHA256 of the identifier under the site's key for people seen before (so their streams keep their
/// names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub const PREFIX: &'static str = "ps-";

    /// Reads a pseudonym back (from a stream name, a forwarded event).
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| format!("pseudonym {s:?} does not start with {:?}", Self::PREFIX))?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("pseudonym {s:?} is not ps- and 32 lowercase hex digits"));
        }
        Ok(Self(s.to_owned()))
    }

    /// Builds one from the digest bytes (the keyed hash lives outside the domain).
    pub fn from_digest(digest: &[u8; 16]) -> Self {
        Self(format!(
            "{}{}",
            Self::PREFIX,
            digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person as events carry them: the pseudonym names them (stream names, read-table keys, forwarded data) and
/// `sealed` holds their identifier encrypted under a key of their own, kept in the site's subject vault. Forgetting
/// the person destroys that key: every event keeps its shape, and the identifier can no longer be read anywhere.
///
/// Two `Subject`s are the same person when their pseudonyms are equal (each sealing uses a fresh nonce). In JSON
/// (pages, `gatehouse events`, forwarded data, archives) a subject is its pseudonym alone; the stored (binary) form
/// keeps the sealed bytes too.
#[derive(Debug, Clone)]
pub struct Subject {
    pub pseudonym: Pseudonym,
    pub sealed: Vec<u8>,
}

impl Subject {
    /// A subject known only by pseudonym (read back from JSON, or an identifier that can no longer be read).
    pub fn unsealed(pseudonym: Pseudonym) -> Self {
        Self {
            pseudonym,
            sealed: Vec::new(),
        }
    }

    pub fn as_str(&self) -> &str {
        self.pseudonym.as_str()
    }
}

impl PartialEq for Subject {
    fn eq(&self, other: &Self) -> bool {
        self.pseudonym == other.pseudonym
    }
}

impl Eq for Subject {}

impl PartialOrd for Subject {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Subject {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pseudonym.cmp(&other.pseudonym)
    }
}

#[cfg(test)]
impl Subject {
    /// A stand-in for tests of the pure domain: a pseudonym spelled from the name's bytes (`P-1` is
    /// `ps-502d31…`), nothing sealed.
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut digest = [0u8; 16];
        for (slot, byte) in digest.iter_mut().zip(name.bytes()) {
            *slot = byte;
        }
        Ok(Self::unsealed(Pseudonym::from_digest(&digest)))
    }

    /// The name a test [`Subject::parse`]d this subject from.
    pub fn test_name(&self) -> String {
        let hex = self.pseudonym.as_str().trim_start_matches(Pseudonym::PREFIX);
        (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .take_while(|b| *b != 0)
            .map(char::from)
            .collect()
    }
}

impl std::hash::Hash for Subject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pseudonym.hash(state);
    }
}

impl fmt::Display for Subject {
    /// The pseudonym: a subject's identifier is only ever shown after the vault opens it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pseudonym.as_str())
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSubject {
    pseudonym: Pseudonym,
    sealed: Vec<u8>,
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.pseudonym.serialize(serializer)
        } else {
            StoredSubject {
                pseudonym: self.pseudonym.clone(),
                sealed: self.sealed.clone(),
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Pseudonym::parse(&text)
                .map(Subject::unsealed)
                .map_err(serde::de::Error::custom)
        } else {
            let stored = StoredSubject::deserialize(deserializer)?;
            Ok(Subject {
                pseudonym: stored.pseudonym,
                sealed: stored.sealed,
            })
        }
    }
}

/// How sure a camera is of a recognition, within `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    /// `None` when the value is outside `0.0..=1.0` or not a number.
    pub fn new(value: f64) -> Option<Self> {
        (0.0..=1.0).contains(&value).then_some(Self(value))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}
