//! The camera aggregate: records recognitions and knows which turnstiles it watches.

use super::Device;
use super::aggregate::{Aggregate, DEVICE_KIND};
use super::command::{DeviceCommand, Rejection};
use super::device::{Common, Decision, count_message};
use super::event::*;
use super::ids::{DeviceId, DeviceKind};
use super::values::Confidence;
use serde::{Deserialize, Serialize};

/// Everything a camera's decisions depend on, plus its lifetime counters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CameraState {
    pub common: Common,
    pub watches: Vec<DeviceId>,
    pub recognized: u64,
    pub unrecognized: u64,
}

/// The camera decider.
pub struct Camera;

impl Aggregate for Camera {
    const KIND: &'static str = DEVICE_KIND;
    /// Bump when `CameraState` changes shape: older snapshots are then ignored and streams replayed.
    const STATE_SCHEMA: u32 = 3;
    const STATE_OF: &'static str = "camera";
    type Command = DeviceCommand;
    type Event = DeviceEvent;
    type State = CameraState;
    type Rejection = Rejection;

    fn decide(state: &CameraState, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
        decide_camera(state, command).map(|events| count_message(command, events))
    }

    fn evolve(mut state: CameraState, event: &DeviceEvent) -> CameraState {
        state.common.evolve(event);
        match event {
            DeviceEvent::Commissioned(e) => state.watches = e.watches.clone(),
            DeviceEvent::WatchesChanged(e) => state.watches = e.watches.clone(),
            DeviceEvent::RecognitionRecorded(e) => match e.subject {
                Some(_) => state.recognized += 1,
                None => state.unrecognized += 1,
            },
            DeviceEvent::FactVoided(FactVoided {
                fact: VoidedFact::Recognition { subject, .. },
                ..
            }) => match subject {
                Some(_) => state.recognized = state.recognized.saturating_sub(1),
                None => state.unrecognized = state.unrecognized.saturating_sub(1),
            },
            _ => {}
        }
        state
    }
}

/// The rules of a camera's own commands, before the message counter is accounted for.
fn decide_camera(state: &CameraState, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
    let mut events = match state.common.decide(DeviceKind::Camera, &state.watches, command) {
        Decision::Reject(rejection) => return Err(rejection),
        Decision::Events(events) => return Ok(events),
        Decision::KindSpecific { prefix } => prefix,
    };
    match command {
        DeviceCommand::RecordRecognition {
            subject,
            confidence,
            at,
            seq,
        } => {
            let confidence = Confidence::new(*confidence).ok_or(Rejection::ConfidenceOutOfRange(*confidence))?;
            events.push(DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject: subject.clone(),
                confidence,
                at: *at,
                seq: *seq,
            }));
        }
        other => {
            return Err(Rejection::WrongKind {
                kind: DeviceKind::Camera,
                command: other.name(),
            });
        }
    }
    Ok(events)
}

impl Device for Camera {
    const DEVICE_KIND: DeviceKind = DeviceKind::Camera;

    fn common(state: &CameraState) -> &Common {
        &state.common
    }
}
