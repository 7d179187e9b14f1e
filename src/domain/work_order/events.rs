//! Work order events: every step of an order's life, each body its own struct so the journal stores it under a
//! stable type name with a schema version (see `codec::work_order`).

use super::values::{Cause, Note, Technician, WorkOrderKind};
use crate::domain::aggregate::DomainEvent;
use crate::domain::ids::DeviceId;
use crate::domain::time::{option_timestamp, timestamp};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub enum WorkOrderEvent {
    Opened(WorkOrderOpened),
    Acknowledged(WorkOrderAcknowledged),
    Assigned(WorkOrderAssigned),
    Started(WorkOrderStarted),
    Resolved(WorkOrderResolved),
    Cancelled(WorkOrderCancelled),
    Commented(WorkOrderCommented),
    Reopened(WorkOrderReopened),
}

/// A work order was opened for a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderOpened {
    pub device: DeviceId,
    /// The device's zone when the order was opened (pages filter by it).
    pub zone: String,
    pub kind: WorkOrderKind,
    pub cause: Cause,
    pub title: String,
    /// When a preventive order should be done by (the schedule's next run); none for corrective ones.
    #[serde(with = "option_timestamp")]
    pub due_at: Option<Timestamp>,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// Someone took note of the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderAcknowledged {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A technician was given the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderAssigned {
    pub technician: Technician,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The technician began the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderStarted {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The work is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderResolved {
    pub note: Note,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The order will not be done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderCancelled {
    pub reason: Note,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A line on the order's timeline (a person's comment, or a policy's note such as "device reports cleared").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderCommented {
    pub text: Note,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// The fault came back soon after the order was resolved: the same order is open again, its history kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderReopened {
    pub reason: Note,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

impl DomainEvent for WorkOrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            WorkOrderEvent::Opened(_) => "WorkOrderOpened",
            WorkOrderEvent::Acknowledged(_) => "WorkOrderAcknowledged",
            WorkOrderEvent::Assigned(_) => "WorkOrderAssigned",
            WorkOrderEvent::Started(_) => "WorkOrderStarted",
            WorkOrderEvent::Resolved(_) => "WorkOrderResolved",
            WorkOrderEvent::Cancelled(_) => "WorkOrderCancelled",
            WorkOrderEvent::Commented(_) => "WorkOrderCommented",
            WorkOrderEvent::Reopened(_) => "WorkOrderReopened",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            WorkOrderEvent::Opened(e) => e.at,
            WorkOrderEvent::Acknowledged(e) => e.at,
            WorkOrderEvent::Assigned(e) => e.at,
            WorkOrderEvent::Started(e) => e.at,
            WorkOrderEvent::Resolved(e) => e.at,
            WorkOrderEvent::Cancelled(e) => e.at,
            WorkOrderEvent::Commented(e) => e.at,
            WorkOrderEvent::Reopened(e) => e.at,
        }
    }
}
