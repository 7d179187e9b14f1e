//! The actix side: one actor per device hosting its pure decider, and the registry that routes to them.

pub mod device;
pub mod registry;

pub use device::{CommandError, CommandOutcome, DeviceActor, Execute};
pub use registry::{DeviceRegistry, start_devices};
