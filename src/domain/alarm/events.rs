//! Alarm events: every step of an alarm's life, each body its own struct stored under a stable type name with a
//! schema version (see `codec::alarm`).

use super::values::{AlarmSource, AlarmType, Severity};
use crate::domain::aggregate::DomainEvent;
use crate::domain::time::timestamp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub enum AlarmEvent {
    Raised(AlarmRaised),
    Repeated(AlarmRepeated),
    Reactivated(AlarmReactivated),
    Acknowledged(AlarmAcknowledged),
    Cleared(AlarmCleared),
}

/// Trouble was first seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRaised {
    pub alarm_type: AlarmType,
    pub source: AlarmSource,
    pub severity: Severity,
    /// The zone of the device involved, when there is one (notification channels filter by it).
    pub zone: Option<String>,
    /// What happened, in words.
    pub detail: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The same trouble again while the alarm is active: counted, never a second alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRepeated {
    pub detail: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The trouble came back soon after the alarm cleared (within `[alarms] reopen_within`): the same alarm again,
/// active and waiting to be acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmReactivated {
    pub detail: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// Someone took note of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmAcknowledged {
    pub by: String,
    pub note: Option<String>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The alarm is over: cleared by someone, or by itself when its condition ended (`by` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmCleared {
    pub by: Option<String>,
    pub note: Option<String>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

impl DomainEvent for AlarmEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AlarmEvent::Raised(_) => "AlarmRaised",
            AlarmEvent::Repeated(_) => "AlarmRepeated",
            AlarmEvent::Reactivated(_) => "AlarmReactivated",
            AlarmEvent::Acknowledged(_) => "AlarmAcknowledged",
            AlarmEvent::Cleared(_) => "AlarmCleared",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            AlarmEvent::Raised(e) => e.at,
            AlarmEvent::Repeated(e) => e.at,
            AlarmEvent::Reactivated(e) => e.at,
            AlarmEvent::Acknowledged(e) => e.at,
            AlarmEvent::Cleared(e) => e.at,
        }
    }
}
