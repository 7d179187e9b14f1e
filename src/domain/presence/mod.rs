//! People's presence: one aggregate per identified subject, its stream named by the subject's pseudonym
//! (`presence:ps-…`), so forgetting a person later means forgetting a key, not rewriting streams. It records each
//! passage a face identified (who, which way, which turnstile and zone, how sure) and follows whether the person
//! is inside and where. Entering a zone one is already inside, or leaving one never entered, is an anti-passback
//! violation: recorded beside the passage, never refused (the rotation happened). Someone not seen for
//! `[identification] presence_timeout` is no longer counted inside. `matching` joins faces and rotations.

pub mod matching;

use super::aggregate::{Aggregate, DomainEvent};
use super::time::timestamp;
use super::{Confidence, DeviceId, Direction, Subject};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The presence aggregate; its streams are `presence:ps-<32 hex>`.
pub struct Presence;

/// A passage a recognition identified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageIdentified {
    pub subject: Subject,
    pub turnstile: DeviceId,
    pub camera: DeviceId,
    pub zone: String,
    pub direction: Direction,
    pub confidence: Confidence,
    /// The rotation's device time.
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// Why a passage breaks anti-passback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Violation {
    /// Came in to a zone the person was already inside.
    AlreadyInside,
    /// Went out of a zone the person was not inside.
    NeverEntered,
}

impl Violation {
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::AlreadyInside => "already_inside",
            Violation::NeverEntered => "never_entered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AntiPassbackViolated {
    pub zone: String,
    pub direction: Direction,
    pub violation: Violation,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The person was not seen for the presence timeout: no longer counted inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceTimedOut {
    pub zone: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The person was forgotten (GDPR erasure): their key is destroyed, so nothing recorded about them can be read as
/// them any more. The event names nobody: its stream is the pseudonym, which from now on reads as "forgotten".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectForgotten {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PresenceEvent {
    PassageIdentified(PassageIdentified),
    AntiPassbackViolated(AntiPassbackViolated),
    TimedOut(PresenceTimedOut),
    Forgotten(SubjectForgotten),
}

impl DomainEvent for PresenceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PresenceEvent::PassageIdentified(_) => "PassageIdentified",
            PresenceEvent::AntiPassbackViolated(_) => "AntiPassbackViolated",
            PresenceEvent::TimedOut(_) => "PresenceTimedOut",
            PresenceEvent::Forgotten(_) => "SubjectForgotten",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            PresenceEvent::PassageIdentified(e) => e.at,
            PresenceEvent::AntiPassbackViolated(e) => e.at,
            PresenceEvent::TimedOut(e) => e.at,
            PresenceEvent::Forgotten(e) => e.at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PresenceCommand {
    /// A recognition identified this passage.
    Pass(PassageIdentified),
    /// Time passed: if the person has not been seen since `unseen_since`, they are no longer inside.
    TimeOut { unseen_since: Timestamp, at: Timestamp },
    /// An admin erases the person (once; forgetting again changes nothing).
    Forget { at: Timestamp },
}

/// Where a person is, as far as their identified passages say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inside {
    pub zone: String,
    /// When they came in.
    #[serde(with = "timestamp")]
    pub since: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceState {
    pub subject: Option<Subject>,
    pub inside: Option<Inside>,
    /// The last identified passage: when and at which turnstile.
    pub last_seen: Option<(Timestamp, DeviceId)>,
    /// The person was forgotten.
    pub forgotten: bool,
}

/// Presence never refuses: every passage happened. The type says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceRejection {}

impl Aggregate for Presence {
    const KIND: &'static str = "presence";
    const STATE_SCHEMA: u32 = 2; // 2: subjects sealed (pseudonym + encrypted identifier)
    type Command = PresenceCommand;
    type Event = PresenceEvent;
    type State = PresenceState;
    type Rejection = PresenceRejection;

    fn decide(state: &PresenceState, command: &PresenceCommand) -> Result<Vec<PresenceEvent>, PresenceRejection> {
        match command {
            PresenceCommand::Pass(passage) => {
                let inside_here = state.inside.as_ref().is_some_and(|inside| inside.zone == passage.zone);
                let violation = match passage.direction {
                    Direction::In if inside_here => Some(Violation::AlreadyInside),
                    Direction::Out if !inside_here => Some(Violation::NeverEntered),
                    _ => None,
                };
                let mut events = vec![PresenceEvent::PassageIdentified(passage.clone())];
                if let Some(violation) = violation {
                    events.push(PresenceEvent::AntiPassbackViolated(AntiPassbackViolated {
                        zone: passage.zone.clone(),
                        direction: passage.direction,
                        violation,
                        at: passage.at,
                    }));
                }
                Ok(events)
            }
            PresenceCommand::TimeOut { unseen_since, at } => {
                let unseen = state.last_seen.as_ref().is_none_or(|(seen, _)| seen <= unseen_since);
                match &state.inside {
                    Some(inside) if unseen => Ok(vec![PresenceEvent::TimedOut(PresenceTimedOut {
                        zone: inside.zone.clone(),
                        at: *at,
                    })]),
                    _ => Ok(vec![]),
                }
            }
            PresenceCommand::Forget { .. } if state.forgotten => Ok(vec![]),
            PresenceCommand::Forget { at } => Ok(vec![PresenceEvent::Forgotten(SubjectForgotten { at: *at })]),
        }
    }

    fn evolve(mut state: PresenceState, event: &PresenceEvent) -> PresenceState {
        match event {
            PresenceEvent::PassageIdentified(e) => {
                state.subject = Some(e.subject.clone());
                // A late recognition can identify an older passage: the latest one decides where they are.
                if state.last_seen.as_ref().is_some_and(|(seen, _)| *seen > e.at) {
                    return state;
                }
                state.last_seen = Some((e.at, e.turnstile.clone()));
                state.inside = match e.direction {
                    Direction::In => match state.inside.take() {
                        // Already inside this zone (anti-passback): they came in earlier.
                        Some(inside) if inside.zone == e.zone => Some(inside),
                        _ => Some(Inside {
                            zone: e.zone.clone(),
                            since: e.at,
                        }),
                    },
                    Direction::Out => None,
                };
            }
            PresenceEvent::AntiPassbackViolated(_) => {}
            PresenceEvent::TimedOut(_) => state.inside = None,
            PresenceEvent::Forgotten(_) => state.forgotten = true,
        }
        state
    }
}

#[cfg(test)]
mod tests;
