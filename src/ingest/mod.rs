//! Device messages from MQTT: parsing at the edge (`message`), then execution or a dead letter (`pipeline`).
//! Every message either becomes events or is kept with a specific reason.

pub mod message;
pub mod pipeline;

pub use message::{ClockBounds, DeviceMessage, MAX_PAYLOAD, Unacceptable, parse};
pub use pipeline::{Arrival, DEAD_LETTER_PAYLOAD_KEPT, DeadLetterQuota, Ingested, Ingestor, Received};

#[cfg(test)]
mod tests;
