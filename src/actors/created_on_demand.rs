//! Work orders, maintenance schedules, alarms and the watch list need nothing from the host beyond deciding and recording: no timer, no
//! sign of life.

use super::host::Hosted;
use crate::domain::{Alarm, MaintenanceSchedule, Occupancy, Presence, WatchList, WorkOrder};

impl Hosted for WorkOrder {}

impl Hosted for MaintenanceSchedule {}

impl Hosted for Alarm {}

impl Hosted for WatchList {}

impl Hosted for Presence {}

impl Hosted for Occupancy {}
