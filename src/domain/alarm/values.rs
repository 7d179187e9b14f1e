//! The values an alarm is made of: its number, severity, type and source.

use crate::domain::{DeviceId, Subject};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An alarm's number as people say it (`A-000003`); its stream is `alarm:A-000003`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlarmNumber(u64);

impl AlarmNumber {
    pub fn new(number: u64) -> Self {
        Self(number)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Reads `A-000003` (or `A-3`) back.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.strip_prefix("A-")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .map(Self)
            .ok_or_else(|| format!("{s:?} is not an alarm number (A-000001)"))
    }
}

impl fmt::Display for AlarmNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "A-{:06}", self.0)
    }
}

/// How urgent an alarm is; ordered, so `Critical > Major > Minor > Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Warning,
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::Major, Severity::Minor, Severity::Warning];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|severity| severity.as_str() == s)
            .ok_or_else(|| format!("severity {s:?} is not one of critical, major, minor, warning"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of trouble an alarm is about. One active alarm per (source, type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmType {
    /// A subject on the watch list was recognized.
    WatchedSubjectSeen,
    /// A turnstile rotated while a manager had it locked out.
    ForcedPassage,
    /// A device has been offline longer than `[alarms] offline_after`.
    DeviceOffline,
    /// A fault has been open longer than `[alarms] fault_open_after`.
    FaultOpen,
    /// A gateway's sequence numbers skipped: messages were lost on the way.
    LostMessages,
    /// Dead letters from one sender faster than `[alarms] dead_letter_rate` a minute.
    DeadLetterFlood,
    /// A zone holds more people than its `[[zone]] capacity`.
    OverCapacity,
    /// Rotations one way on a watched turnstile within `tailgate_window` with at most one face among them.
    Tailgating,
}

impl AlarmType {
    pub const ALL: [AlarmType; 8] = [
        AlarmType::WatchedSubjectSeen,
        AlarmType::ForcedPassage,
        AlarmType::DeviceOffline,
        AlarmType::FaultOpen,
        AlarmType::LostMessages,
        AlarmType::DeadLetterFlood,
        AlarmType::OverCapacity,
        AlarmType::Tailgating,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmType::WatchedSubjectSeen => "watched_subject_seen",
            AlarmType::ForcedPassage => "forced_passage",
            AlarmType::DeviceOffline => "device_offline",
            AlarmType::FaultOpen => "fault_open",
            AlarmType::LostMessages => "lost_messages",
            AlarmType::DeadLetterFlood => "dead_letter_flood",
            AlarmType::OverCapacity => "over_capacity",
            AlarmType::Tailgating => "tailgating",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        AlarmType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("alarm type {s:?} is unknown"))
    }

    /// Whether the trouble lasts until something ends it (a device back online), rather than being one moment.
    /// Such an alarm clears itself when its condition ends, and nobody may clear it while the condition holds.
    pub fn lasts(self) -> bool {
        matches!(
            self,
            AlarmType::DeviceOffline | AlarmType::FaultOpen | AlarmType::OverCapacity
        )
    }
}

impl fmt::Display for AlarmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alarm is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmSource {
    Device(DeviceId),
    Subject(Subject),
    /// A gateway identity or an anonymous sender (`gateway:NAME`, `mqtt:CLIENT`).
    Sender(String),
    /// A zone as config.toml names it.
    Zone(String),
}

impl fmt::Display for AlarmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlarmSource::Device(id) => write!(f, "device {id}"),
            AlarmSource::Subject(subject) => write!(f, "subject {subject}"),
            AlarmSource::Sender(sender) => write!(f, "{sender}"),
            AlarmSource::Zone(zone) => write!(f, "zone {zone}"),
        }
    }
}
