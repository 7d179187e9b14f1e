//! Work orders and maintenance schedules need nothing from the host beyond deciding and recording: no timer, no
//! sign of life.

use super::host::Hosted;
use crate::domain::{MaintenanceSchedule, WorkOrder};

impl Hosted for WorkOrder {}

impl Hosted for MaintenanceSchedule {}
