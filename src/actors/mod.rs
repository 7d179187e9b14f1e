//! The actix side: one generic host for every aggregate kind (`host`), what devices add to it (`device`), the
//! (empty) hooks of the kinds created on demand (`created_on_demand`: work orders, maintenance schedules), and the
//! one registry that routes commands to instances of every kind (`registry`).

mod boot;
mod created_on_demand;
pub mod device;
pub mod host;
pub mod registry;

pub use host::{
    AggregateActor, CommandError, CommandOutcome, Execute, ExecuteAndReply, HostSettings, Hosted, Meta, Recovered,
    recover,
};
pub use registry::{RecoveryProgress, Registry, start_devices};
