//! The values a work order is made of: its number, kind, cause, status, a technician's name and a note.

use crate::domain::values::FaultCode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A work order's number, shown as `WO-000123`: sequential per site, handed out by the maintenance policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkOrderNumber(u64);

impl WorkOrderNumber {
    pub fn new(number: u64) -> Self {
        Self(number)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Reads `WO-000123` (also `wo-123`, the way people type it).
    pub fn parse(s: &str) -> Result<Self, String> {
        let digits = s
            .strip_prefix("WO-")
            .or_else(|| s.strip_prefix("wo-"))
            .ok_or_else(|| format!("{s:?} is not a work order number (WO-000123)"))?;
        match digits.parse::<u64>() {
            Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(n)),
            _ => Err(format!("{s:?} is not a work order number (WO-000123)")),
        }
    }
}

impl fmt::Display for WorkOrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WO-{:06}", self.0)
    }
}

/// Repair after something went wrong, or service before it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkOrderKind {
    Corrective,
    Preventive,
}

impl WorkOrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkOrderKind::Corrective => "corrective",
            WorkOrderKind::Preventive => "preventive",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "corrective" => Ok(WorkOrderKind::Corrective),
            "preventive" => Ok(WorkOrderKind::Preventive),
            other => Err(format!("kind {other:?} is not \"corrective\" or \"preventive\"")),
        }
    }
}

/// Why a work order was opened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The device reported this fault.
    Fault { code: FaultCode },
    /// A run of this maintenance schedule (`[[maintenance]] id`).
    Schedule { schedule: String },
    /// The device's service meter reached this many passages since its last service.
    ServiceMeter { passages: u64 },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Fault { code } => write!(f, "fault {code}"),
            Cause::Schedule { schedule } => write!(f, "schedule {schedule}"),
            Cause::ServiceMeter { passages } => write!(f, "service meter ({passages} passages)"),
        }
    }
}

/// Where a work order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    InProgress,
    Resolved,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::Acknowledged,
        Status::InProgress,
        Status::Resolved,
        Status::Cancelled,
    ];

    /// The word in the CLI, CSV and read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("state {s:?} is not one of open, acknowledged, in_progress, resolved, cancelled"))
    }

    /// Still waiting for a technician: neither resolved nor cancelled.
    pub fn is_active(self) -> bool {
        !matches!(self, Status::Resolved | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::InProgress => "in progress",
            other => other.as_str(),
        })
    }
}

/// A technician's name, as people write it (not necessarily a Gatehouse user): one line, 1 to 80 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Technician(String);

impl Technician {
    pub const MAX_CHARS: usize = 80;

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the technician's name is empty".into());
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "the technician's name is longer than {} characters",
                Self::MAX_CHARS
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("the technician's name must be one line".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Technician {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text people (or policies) add to a work order: a resolution note, a reason, a comment. Not empty, at most
/// 2,000 characters; line breaks are kept, other control characters refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Note(String);

impl Note {
    pub const MAX_CHARS: usize = 2000;

    /// `what` names the text in the error ("the note", "the reason").
    pub fn parse(s: &str, what: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!("{what} is longer than {} characters", Self::MAX_CHARS));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            return Err(format!("{what} contains control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_and_print_as_wo_and_six_digits() {
        let n = WorkOrderNumber::parse("WO-000123").unwrap();
        assert_eq!(n.get(), 123);
        assert_eq!(n.to_string(), "WO-000123");
        assert_eq!(WorkOrderNumber::parse("wo-7").unwrap().to_string(), "WO-000007");
        assert_eq!(WorkOrderNumber::new(1_234_567).to_string(), "WO-1234567");
        for bad in ["", "WO-", "WO-0", "WO--1", "WO-+1", "123", "WO-12a"] {
            assert!(WorkOrderNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn notes_and_names_are_checked_at_the_edge() {
        assert!(Note::parse("  ", "the note").is_err());
        assert!(Note::parse("a\u{7}b", "the note").is_err());
        assert_eq!(Note::parse(" two\nlines ", "the note").unwrap().as_str(), "two\nlines");
        assert!(Note::parse(&"x".repeat(2001), "the note").is_err());
        assert!(Technician::parse("Ana\nB").is_err());
        assert_eq!(Technician::parse(" Ana ").unwrap().as_str(), "Ana");
        assert_eq!(Status::parse("in_progress").unwrap(), Status::InProgress);
        assert!(Status::parse("done").is_err());
    }
}
