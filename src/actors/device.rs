//! What the host does for devices beyond their deciders: any message a device sends is a sign of life, and a
//! device silent for `[devices] offline_after` is marked offline (the offline policy).

use super::host::Hosted;
use crate::domain::{Camera, Device, DeviceCommand, Lifecycle, Turnstile};

/// The offline policy: an active device last known online that has gone silent is reported offline.
fn when_silent<D: Device>(state: &D::State, now: jiff::Timestamp) -> Option<(DeviceCommand, &'static str)> {
    let common = D::common(state);
    let watched = common.availability.is_online() && common.lifecycle == Lifecycle::Active;
    watched.then_some((DeviceCommand::ReportAvailability { online: false, at: now }, "offline"))
}

fn is_sign_of_life(command: &DeviceCommand) -> bool {
    command.is_sign_of_life() || matches!(command, DeviceCommand::ReportAvailability { online: true, .. })
}

impl Hosted for Turnstile {
    fn is_sign_of_life(command: &DeviceCommand) -> bool {
        is_sign_of_life(command)
    }

    fn when_silent(state: &Self::State, now: jiff::Timestamp) -> Option<(DeviceCommand, &'static str)> {
        when_silent::<Self>(state, now)
    }
}

impl Hosted for Camera {
    fn is_sign_of_life(command: &DeviceCommand) -> bool {
        is_sign_of_life(command)
    }

    fn when_silent(state: &Self::State, now: jiff::Timestamp) -> Option<(DeviceCommand, &'static str)> {
        when_silent::<Self>(state, now)
    }
}
