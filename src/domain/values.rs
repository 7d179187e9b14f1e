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
/// `ps-` and 32 lowercase hex digits (the first 128 bits of HMAC-SHA256 of the subject under the site's key).
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
