//! Alarms: trouble someone must hear of, with a severity and a life of its own. Active or cleared, and
//! unacknowledged or acknowledged, independently: an alarm whose condition ends clears itself and still waits for
//! someone to acknowledge it. Policies raise them (one alarm per source and type: a repeat is counted on the same
//! alarm, and trouble back soon after a clear reactivates it); people acknowledge and clear them. Every rule is in
//! [`Alarm::decide`].

mod events;
mod values;

pub use events::*;
pub use values::*;

use super::aggregate::Aggregate;
use super::time::{option_timestamp, timestamp};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The alarm aggregate; its streams are `alarm:A-000003`.
pub struct Alarm;

/// What policies and people ask of an alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmCommand {
    /// Trouble first seen (a policy, with a fresh number).
    Raise(AlarmRaised),
    /// The same trouble again: counted while active, reactivates a cleared alarm.
    Trigger { detail: String, at: Timestamp },
    /// The condition behind a lasting alarm ended (the device is back online): it clears itself.
    ConditionEnded { at: Timestamp },
    Acknowledge {
        by: String,
        note: Option<String>,
        at: Timestamp,
    },
    Clear {
        by: String,
        note: Option<String>,
        at: Timestamp,
    },
}

/// Why an alarm refused a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmRejection {
    #[error("there is no such alarm")]
    NotRaised,
    #[error("this alarm was raised already")]
    AlreadyRaised,
    #[error("this alarm is cleared already")]
    AlreadyCleared,
    #[error(
        "it cannot be cleared while its condition holds ({about} is still {what}); it clears itself when that ends"
    )]
    ConditionHolds { about: String, what: &'static str },
}

/// An alarm's facts as folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmState {
    pub alarm: Option<RaisedAlarm>,
}

/// Everything known about a raised alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaisedAlarm {
    pub alarm_type: AlarmType,
    pub source: AlarmSource,
    pub severity: Severity,
    pub zone: Option<String>,
    /// The latest trigger's words.
    pub detail: String,
    #[serde(with = "timestamp")]
    pub first_seen: Timestamp,
    #[serde(with = "timestamp")]
    pub last_seen: Timestamp,
    /// Triggers so far, the first included.
    pub count: u64,
    pub active: bool,
    /// Whether the trouble of a lasting alarm still goes on.
    pub condition_holds: bool,
    pub acknowledged: Option<Acknowledgement>,
    #[serde(with = "option_timestamp")]
    pub cleared_at: Option<Timestamp>,
}

/// Who took note of an alarm, when, and what they said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub note: Option<String>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

impl RaisedAlarm {
    /// `active_unacknowledged`, `active_acknowledged`, `cleared_unacknowledged` or `cleared_acknowledged`.
    pub fn state_name(&self) -> &'static str {
        match (self.active, self.acknowledged.is_some()) {
            (true, false) => "active_unacknowledged",
            (true, true) => "active_acknowledged",
            (false, false) => "cleared_unacknowledged",
            (false, true) => "cleared_acknowledged",
        }
    }
}

impl Aggregate for Alarm {
    const KIND: &'static str = "alarm";
    const STATE_SCHEMA: u32 = 2; // 2: subjects sealed (pseudonym + encrypted identifier)
    type Command = AlarmCommand;
    type Event = AlarmEvent;
    type State = AlarmState;
    type Rejection = AlarmRejection;

    fn decide(state: &AlarmState, command: &AlarmCommand) -> Result<Vec<AlarmEvent>, AlarmRejection> {
        use AlarmCommand as C;
        let Some(alarm) = &state.alarm else {
            return match command {
                C::Raise(raised) => Ok(vec![AlarmEvent::Raised(raised.clone())]),
                _ => Err(AlarmRejection::NotRaised),
            };
        };
        let event = match command {
            C::Raise(_) => return Err(AlarmRejection::AlreadyRaised),
            C::Trigger { detail, at } if alarm.active => AlarmEvent::Repeated(AlarmRepeated {
                detail: detail.clone(),
                at: *at,
            }),
            C::Trigger { detail, at } => AlarmEvent::Reactivated(AlarmReactivated {
                detail: detail.clone(),
                at: *at,
            }),
            C::ConditionEnded { at } if alarm.active => AlarmEvent::Cleared(AlarmCleared {
                by: None,
                note: None,
                at: *at,
            }),
            // Over already: nothing left to end.
            C::ConditionEnded { .. } => return Ok(vec![]),
            // Acknowledged once is enough; a second click changes nothing.
            C::Acknowledge { .. } if alarm.acknowledged.is_some() => return Ok(vec![]),
            C::Acknowledge { by, note, at } => AlarmEvent::Acknowledged(AlarmAcknowledged {
                by: by.clone(),
                note: note.clone(),
                at: *at,
            }),
            C::Clear { .. } if !alarm.active => return Err(AlarmRejection::AlreadyCleared),
            C::Clear { .. } if alarm.condition_holds => {
                return Err(AlarmRejection::ConditionHolds {
                    about: alarm.source.to_string(),
                    what: match alarm.alarm_type {
                        AlarmType::DeviceOffline => "offline",
                        AlarmType::OverCapacity => "over capacity",
                        _ => "faulty",
                    },
                });
            }
            C::Clear { by, note, at } => AlarmEvent::Cleared(AlarmCleared {
                by: Some(by.clone()),
                note: note.clone(),
                at: *at,
            }),
        };
        Ok(vec![event])
    }

    fn evolve(mut state: AlarmState, event: &AlarmEvent) -> AlarmState {
        if let AlarmEvent::Raised(raised) = event {
            state.alarm = Some(RaisedAlarm {
                alarm_type: raised.alarm_type,
                source: raised.source.clone(),
                severity: raised.severity,
                zone: raised.zone.clone(),
                detail: raised.detail.clone(),
                first_seen: raised.at,
                last_seen: raised.at,
                count: 1,
                active: true,
                condition_holds: raised.alarm_type.lasts(),
                acknowledged: None,
                cleared_at: None,
            });
            return state;
        }
        let Some(alarm) = state.alarm.as_mut() else {
            return state;
        };
        match event {
            AlarmEvent::Raised(_) => {}
            AlarmEvent::Repeated(e) => {
                alarm.count += 1;
                alarm.last_seen = alarm.last_seen.max(e.at);
                alarm.detail = e.detail.clone();
            }
            AlarmEvent::Reactivated(e) => {
                alarm.count += 1;
                alarm.last_seen = alarm.last_seen.max(e.at);
                alarm.detail = e.detail.clone();
                alarm.active = true;
                alarm.condition_holds = alarm.alarm_type.lasts();
                alarm.acknowledged = None;
                alarm.cleared_at = None;
            }
            AlarmEvent::Acknowledged(e) => {
                alarm.acknowledged = Some(Acknowledgement {
                    by: e.by.clone(),
                    note: e.note.clone(),
                    at: e.at,
                })
            }
            AlarmEvent::Cleared(e) => {
                alarm.active = false;
                alarm.condition_holds = false;
                alarm.cleared_at = Some(e.at);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests;
