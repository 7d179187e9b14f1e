//! The pure domain: aggregates as deciders. Knows nothing about actix, SQLite, MQTT, HTTP or the clock; every
//! instant it uses arrives inside a command.
//!
//! - `aggregate`: the `Aggregate` trait every kind implements, `StreamName`.
//! - `ids`, `values`: validated identifiers and values (parse, don't validate).
//! - `command`, `event`: what aggregates are asked and what they record.
//! - `device`: the rules turnstiles and cameras share; `turnstile`, `camera`: each kind's own.
//! - `work_order`: a technician's task on a device, from opened to resolved or cancelled.
//! - `schedule`: a preventive maintenance schedule from config.toml and the runs that fell due.
//! - `alarm`: trouble someone must hear of, from raised to acknowledged and cleared.
//! - `watch_list`: the subjects whose sighting raises an alarm.
//! - `occupancy`: each zone's count of people (in minus out), its daily reset and corrections.
//! - `presence`: a person's identified passages, where they are, anti-passback; `presence::matching` joins faces
//!   and rotations.

pub mod aggregate;
pub mod alarm;
mod camera;
mod command;
mod device;
mod event;
mod ids;
pub mod occupancy;
pub mod presence;
pub mod schedule;
pub mod time;
mod turnstile;
mod values;
pub mod watch_list;
pub mod work_order;

pub use aggregate::{Aggregate, DEVICE_KIND, DomainEvent, InvalidStreamName, StreamName};
pub use alarm::{Alarm, AlarmCommand, AlarmEvent, AlarmRejection, AlarmState};
pub use camera::{Camera, CameraState};
pub use command::{DeviceCommand, Rejection};
pub use device::{Availability, Common, Lifecycle, OpenFault, command_time, count_seq};
pub use event::*;
pub use ids::{DeviceDetails, DeviceId, DeviceKind, InvalidDeviceId};
pub use occupancy::{Occupancy, OccupancyCommand, OccupancyEvent};
pub use presence::{Presence, PresenceCommand, PresenceEvent, PresenceState};
pub use schedule::{MaintenanceSchedule, ScheduleCommand, ScheduleEvent, ScheduleState};
pub use turnstile::{LockOut, Turnstile, TurnstileState};
pub use values::{Confidence, Direction, FaultCode, Pseudonym, Subject, SubjectId};
pub use watch_list::{WatchList, WatchListCommand, WatchListEvent, WatchListRejection, WatchListState};
pub use work_order::{WorkOrder, WorkOrderCommand, WorkOrderEvent, WorkOrderRejection, WorkOrderState};

use serde::Serialize;

/// What turnstiles and cameras add to [`Aggregate`]: one command, event and rejection type for both kinds, and
/// the shared part of their state.
pub trait Device: Aggregate<Command = DeviceCommand, Event = DeviceEvent, Rejection = Rejection> {
    const DEVICE_KIND: DeviceKind;
    /// The part of the state every kind shares.
    fn common(state: &Self::State) -> &Common;
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
mod properties;
#[cfg(test)]
mod tests;
