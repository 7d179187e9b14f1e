//! The turnstile aggregate: counts passages, knows its faults and whether a manager locked it out.

use super::Device;
use super::aggregate::{Aggregate, DEVICE_KIND};
use super::command::{DeviceCommand, Rejection};
use super::device::{Common, Decision, count_message};
use super::event::*;
use super::ids::DeviceKind;
use super::time::timestamp;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A manager's lock-out in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOut {
    pub reason: String,
    #[serde(with = "timestamp")]
    pub since: Timestamp,
}

/// Everything a turnstile's decisions depend on, plus its lifetime counters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TurnstileState {
    pub common: Common,
    pub locked_out: Option<LockOut>,
    pub passages_in: u64,
    pub passages_out: u64,
}

/// The turnstile decider.
pub struct Turnstile;

impl Aggregate for Turnstile {
    const KIND: &'static str = DEVICE_KIND;
    /// Bump when `TurnstileState` changes shape: older snapshots are then ignored and streams replayed.
    const STATE_SCHEMA: u32 = 3;
    const STATE_OF: &'static str = "turnstile";
    type Command = DeviceCommand;
    type Event = DeviceEvent;
    type State = TurnstileState;
    type Rejection = Rejection;

    fn decide(state: &TurnstileState, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
        decide_turnstile(state, command).map(|events| count_message(command, events))
    }

    fn evolve(mut state: TurnstileState, event: &DeviceEvent) -> TurnstileState {
        state.common.evolve(event);
        match event {
            DeviceEvent::PassageRecorded(e) => match e.direction {
                super::Direction::In => state.passages_in += 1,
                super::Direction::Out => state.passages_out += 1,
            },
            DeviceEvent::LockedOut(e) => {
                state.locked_out = Some(LockOut {
                    reason: e.reason.clone(),
                    since: e.at,
                });
            }
            DeviceEvent::Unlocked(_) => state.locked_out = None,
            DeviceEvent::FactVoided(FactVoided {
                fact: VoidedFact::Passage { direction, .. },
                ..
            }) => match direction {
                super::Direction::In => state.passages_in = state.passages_in.saturating_sub(1),
                super::Direction::Out => state.passages_out = state.passages_out.saturating_sub(1),
            },
            _ => {}
        }
        state
    }
}

/// The rules of a turnstile's own commands, before the message counter is accounted for.
fn decide_turnstile(state: &TurnstileState, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
    let mut events = match state.common.decide(DeviceKind::Turnstile, &[], command) {
        Decision::Reject(rejection) => return Err(rejection),
        Decision::Events(events) => return Ok(events),
        Decision::KindSpecific { prefix } => prefix,
    };
    match command {
        DeviceCommand::RecordPassage { direction, at, seq } => {
            // Facts are never dropped: a rotation during a fault or a lock-out still happened.
            events.push(DeviceEvent::PassageRecorded(PassageRecorded {
                direction: *direction,
                at: *at,
                during_fault: !state.common.open_faults.is_empty(),
                during_lockout: state.locked_out.is_some(),
                seq: *seq,
            }));
        }
        DeviceCommand::LockOut { reason, at } => {
            if state.locked_out.is_none() {
                events.push(DeviceEvent::LockedOut(LockedOut {
                    reason: reason.clone(),
                    at: *at,
                }));
            }
        }
        DeviceCommand::Unlock { at } => {
            if state.locked_out.is_some() {
                events.push(DeviceEvent::Unlocked(Unlocked { at: *at }));
            }
        }
        other => {
            return Err(Rejection::WrongKind {
                kind: DeviceKind::Turnstile,
                command: other.name(),
            });
        }
    }
    Ok(events)
}

impl Device for Turnstile {
    const DEVICE_KIND: DeviceKind = DeviceKind::Turnstile;

    fn common(state: &TurnstileState) -> &Common {
        &state.common
    }
}
