//! Device messages from MQTT: parsing at the edge (`message`), then execution or a dead letter (`pipeline`).
//! Every message either becomes events or is kept with a specific reason.

pub mod message;
pub mod pipeline;

pub use message::{DeviceMessage, MAX_PAYLOAD, Unacceptable, parse};
pub use pipeline::{Ingested, Ingestor};

#[cfg(test)]
mod tests;
