//! The camera aggregate: records recognitions and knows which turnstiles it watches.

use super::Decider;
use super::command::{DeviceCommand, Rejection};
use super::device::{Common, Decision};
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

impl Decider for Camera {
    const KIND: DeviceKind = DeviceKind::Camera;
    /// Bump when `CameraState` changes shape: older snapshots are then ignored and streams replayed.
    const STATE_SCHEMA: u32 = 1;
    type State = CameraState;

    fn decide(state: &CameraState, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
        let mut events = match state.common.decide(Self::KIND, &state.watches, command) {
            Decision::Reject(rejection) => return Err(rejection),
            Decision::Events(events) => return Ok(events),
            Decision::KindSpecific { prefix } => prefix,
        };
        match command {
            DeviceCommand::RecordRecognition {
                subject,
                confidence,
                at,
            } => {
                let confidence = Confidence::new(*confidence).ok_or(Rejection::ConfidenceOutOfRange(*confidence))?;
                events.push(DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                    subject: subject.clone(),
                    confidence,
                    at: *at,
                }));
            }
            other => {
                return Err(Rejection::WrongKind {
                    kind: Self::KIND,
                    command: other.name(),
                });
            }
        }
        Ok(events)
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
            _ => {}
        }
        state
    }

    fn common(state: &CameraState) -> &Common {
        &state.common
    }
}
