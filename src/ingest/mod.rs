//! Device messages from MQTT: parsing at the edge (`message`). Every message either becomes a typed command or
//! is refused with a specific reason.

pub mod message;

pub use message::{DeviceMessage, MAX_PAYLOAD, Unacceptable, parse};

#[cfg(test)]
mod tests;
