//! Validated identifiers and descriptive values that every aggregate shares: device ids, zones, subjects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A device's id as installers write it in `config.toml` and gateways put it in MQTT topics:
/// `[A-Za-z0-9_-]{1,32}`. Unique across all devices of a site, so it is also the journal stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeviceId {
    #[error("device id is empty")]
    Empty,
    #[error("device id {0:?} is longer than 32 characters")]
    TooLong(String),
    #[error("device id {0:?} may only contain letters, digits, '_' and '-'")]
    BadCharacter(String),
}

impl DeviceId {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, InvalidDeviceId> {
        if s.is_empty() {
            return Err(InvalidDeviceId::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidDeviceId::TooLong(s.to_owned()));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(InvalidDeviceId::BadCharacter(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `DeviceId` be searched with a plain `&str` (the registry's hot path) without allocating.
impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = InvalidDeviceId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Which kind of equipment a device is; each kind is its own aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Turnstile,
    Camera,
}

impl DeviceKind {
    /// The word used in MQTT topics, the CLI and read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Turnstile => "turnstile",
            DeviceKind::Camera => "camera",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an installer knows about a device: where it stands and what equipment it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceDetails {
    pub name: String,
    /// The station, hall or gate group the device belongs to.
    pub zone: String,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_follow_the_config_contract() {
        assert!(DeviceId::parse("T1").is_ok());
        assert!(DeviceId::parse("gate_7-b").is_ok());
        assert_eq!(DeviceId::parse(""), Err(InvalidDeviceId::Empty));
        assert!(matches!(DeviceId::parse("a b"), Err(InvalidDeviceId::BadCharacter(_))));
        assert!(matches!(DeviceId::parse("T/1"), Err(InvalidDeviceId::BadCharacter(_))));
        assert!(DeviceId::parse(&"x".repeat(32)).is_ok());
        assert!(matches!(
            DeviceId::parse(&"x".repeat(33)),
            Err(InvalidDeviceId::TooLong(_))
        ));
    }
}
