//! The pure domain: device aggregates as deciders. Knows nothing about actix, SQLite, MQTT, HTTP or the clock;
//! every instant it uses arrives inside a command.
//!
//! - `ids`, `values`: validated identifiers and values (parse, don't validate).
//! - `command`, `event`: what aggregates are asked and what they record.
//! - `device`: the rules turnstiles and cameras share; `turnstile`, `camera`: each kind's own.

mod camera;
mod command;
mod device;
mod event;
mod ids;
pub mod time;
mod turnstile;
mod values;

pub use camera::{Camera, CameraState};
pub use command::{DeviceCommand, Rejection};
pub use device::{Availability, Common, Lifecycle, OpenFault, command_time};
pub use event::*;
pub use ids::{DeviceDetails, DeviceId, DeviceKind, InvalidDeviceId};
pub use turnstile::{LockOut, Turnstile, TurnstileState};
pub use values::{Confidence, Direction, FaultCode, SubjectId};

use serde::{Serialize, de::DeserializeOwned};

/// An aggregate as a pure decider: every business rule in `decide`, none in `evolve`.
pub trait Decider {
    const KIND: DeviceKind;
    /// Version of `State`'s stored shape; a snapshot with another version is ignored.
    const STATE_SCHEMA: u32;
    type State: Clone + Default + std::fmt::Debug + Serialize + DeserializeOwned + Send + Unpin + 'static;

    /// Decides what a command means given the current state: the events to record, or why not.
    fn decide(state: &Self::State, command: &DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection>;
    /// Applies one recorded event. Infallible: the journal only holds facts.
    fn evolve(state: Self::State, event: &DeviceEvent) -> Self::State;
    /// The part of the state every kind shares.
    fn common(state: &Self::State) -> &Common;

    /// Folds a sequence of events onto a state.
    fn fold<'a>(state: Self::State, events: impl IntoIterator<Item = &'a DeviceEvent>) -> Self::State {
        events.into_iter().fold(state, Self::evolve)
    }
}

/// Either kind's state, for code that serves both (the `state` command, the device page).
/// Serialized for people only (JSON); snapshots store each kind's own state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DeviceState {
    Turnstile(TurnstileState),
    Camera(CameraState),
}

impl DeviceState {
    pub fn initial(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Turnstile => DeviceState::Turnstile(TurnstileState::default()),
            DeviceKind::Camera => DeviceState::Camera(CameraState::default()),
        }
    }

    pub fn evolve(self, event: &DeviceEvent) -> Self {
        match self {
            DeviceState::Turnstile(s) => DeviceState::Turnstile(Turnstile::evolve(s, event)),
            DeviceState::Camera(s) => DeviceState::Camera(Camera::evolve(s, event)),
        }
    }

    pub fn common(&self) -> &Common {
        match self {
            DeviceState::Turnstile(s) => &s.common,
            DeviceState::Camera(s) => &s.common,
        }
    }
}

#[cfg(test)]
mod tests;
