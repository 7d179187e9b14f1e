//! The actix side: one generic host for every aggregate kind (`host`), what devices add to it (`device`), work orders' (empty) hooks (`work_order`), and
//! the one registry that routes commands to instances of every kind (`registry`).

mod boot;
pub mod device;
pub mod host;
pub mod registry;
mod work_order;

pub use host::{AggregateActor, CommandError, CommandOutcome, Execute, HostSettings, Hosted, Meta, Recovered, recover};
pub use registry::{RecoveryProgress, Registry, start_devices};
