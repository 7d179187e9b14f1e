//! Work orders need nothing from the host beyond deciding and recording: no timer, no sign of life.

use super::host::Hosted;
use crate::domain::WorkOrder;

impl Hosted for WorkOrder {}
