//! Work orders: one technician's task on one device, from opened to resolved or cancelled, every step a fact
//! with who took it. Corrective orders are opened by reported faults, preventive ones by maintenance schedules
//! and service meters (the `maintenance` policy); people move them through their life. Every rule is in
//! [`WorkOrder::decide`].

mod events;
mod values;

pub use events::*;
pub use values::*;

use super::aggregate::Aggregate;
use super::ids::DeviceId;
use super::time::{option_timestamp, timestamp};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The work order aggregate; its streams are `work_order:WO-000123`.
pub struct WorkOrder;

/// What people and policies ask of a work order.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkOrderCommand {
    Open(WorkOrderOpened),
    Acknowledge {
        at: Timestamp,
    },
    Assign {
        technician: Technician,
        at: Timestamp,
    },
    Start {
        at: Timestamp,
    },
    Resolve {
        note: Note,
        at: Timestamp,
    },
    Cancel {
        reason: Note,
        at: Timestamp,
    },
    Comment {
        text: Note,
        at: Timestamp,
    },
    /// The fault it was opened for came back soon after it was resolved (the maintenance policy).
    Reopen {
        reason: Note,
        at: Timestamp,
    },
}

impl WorkOrderCommand {
    /// The step's name as people say it (`ack`, `assign`, …), for refusals.
    pub fn step(&self) -> &'static str {
        match self {
            WorkOrderCommand::Open(_) => "open",
            WorkOrderCommand::Acknowledge { .. } => "ack",
            WorkOrderCommand::Assign { .. } => "assign",
            WorkOrderCommand::Start { .. } => "start",
            WorkOrderCommand::Resolve { .. } => "resolve",
            WorkOrderCommand::Cancel { .. } => "cancel",
            WorkOrderCommand::Comment { .. } => "comment",
            WorkOrderCommand::Reopen { .. } => "reopen",
        }
    }
}

/// Why a work order refused a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkOrderRejection {
    #[error("there is no such work order")]
    NotOpened,
    #[error("this work order was opened already")]
    AlreadyOpened,
    #[error("a work order that is {status} cannot be {done} (allowed when {allowed})")]
    NotAllowed {
        done: &'static str,
        status: Status,
        allowed: &'static str,
    },
    #[error("assign a technician before starting the work")]
    NoAssignee,
    #[error("only a resolved corrective work order can be reopened")]
    NotReopenable,
}

/// A work order's facts as folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderState {
    pub order: Option<OpenedOrder>,
}

/// Everything known about an opened work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenedOrder {
    pub device: DeviceId,
    pub zone: String,
    pub kind: WorkOrderKind,
    pub cause: Cause,
    pub title: String,
    #[serde(with = "timestamp")]
    pub opened_at: Timestamp,
    #[serde(with = "option_timestamp")]
    pub due_at: Option<Timestamp>,
    pub status: Status,
    pub assignee: Option<Technician>,
    #[serde(with = "option_timestamp")]
    pub resolved_at: Option<Timestamp>,
    /// How often a recurring fault reopened it.
    pub reopened: u32,
}

const ACTIVE: &str = "open, acknowledged or in progress";

impl Aggregate for WorkOrder {
    const KIND: &'static str = "work_order";
    const STATE_SCHEMA: u32 = 1;
    type Command = WorkOrderCommand;
    type Event = WorkOrderEvent;
    type State = WorkOrderState;
    type Rejection = WorkOrderRejection;

    fn decide(state: &WorkOrderState, command: &WorkOrderCommand) -> Result<Vec<WorkOrderEvent>, WorkOrderRejection> {
        use Status::*;
        use WorkOrderCommand as C;
        let Some(order) = &state.order else {
            return match command {
                C::Open(opened) => Ok(vec![WorkOrderEvent::Opened(opened.clone())]),
                _ => Err(WorkOrderRejection::NotOpened),
            };
        };
        let not_allowed = |done, allowed| {
            Err(WorkOrderRejection::NotAllowed {
                done,
                status: order.status,
                allowed,
            })
        };
        let event = match (command, order.status) {
            (C::Open(_), _) => return Err(WorkOrderRejection::AlreadyOpened),
            (C::Acknowledge { at }, Open) => WorkOrderEvent::Acknowledged(WorkOrderAcknowledged { at: *at }),
            (C::Acknowledge { .. }, _) => return not_allowed("acknowledged", "open"),
            (C::Assign { technician, at }, Open | Acknowledged | InProgress) => {
                if order.assignee.as_ref() == Some(technician) {
                    return Ok(vec![]);
                }
                WorkOrderEvent::Assigned(WorkOrderAssigned {
                    technician: technician.clone(),
                    at: *at,
                })
            }
            (C::Assign { .. }, _) => return not_allowed("assigned", ACTIVE),
            (C::Start { .. }, Acknowledged) if order.assignee.is_none() => return Err(WorkOrderRejection::NoAssignee),
            (C::Start { at }, Acknowledged) => WorkOrderEvent::Started(WorkOrderStarted { at: *at }),
            (C::Start { .. }, _) => return not_allowed("started", "acknowledged"),
            (C::Resolve { note, at }, Acknowledged | InProgress) => WorkOrderEvent::Resolved(WorkOrderResolved {
                note: note.clone(),
                at: *at,
            }),
            (C::Resolve { .. }, _) => return not_allowed("resolved", "acknowledged or in progress"),
            (C::Cancel { reason, at }, Open | Acknowledged | InProgress) => {
                WorkOrderEvent::Cancelled(WorkOrderCancelled {
                    reason: reason.clone(),
                    at: *at,
                })
            }
            (C::Cancel { .. }, _) => return not_allowed("cancelled", ACTIVE),
            (C::Comment { text, at }, _) => WorkOrderEvent::Commented(WorkOrderCommented {
                text: text.clone(),
                at: *at,
            }),
            (C::Reopen { reason, at }, Resolved) if order.kind == WorkOrderKind::Corrective => {
                WorkOrderEvent::Reopened(WorkOrderReopened {
                    reason: reason.clone(),
                    at: *at,
                })
            }
            (C::Reopen { .. }, _) => return Err(WorkOrderRejection::NotReopenable),
        };
        Ok(vec![event])
    }

    fn evolve(mut state: WorkOrderState, event: &WorkOrderEvent) -> WorkOrderState {
        if let WorkOrderEvent::Opened(opened) = event {
            state.order = Some(OpenedOrder {
                device: opened.device.clone(),
                zone: opened.zone.clone(),
                kind: opened.kind,
                cause: opened.cause.clone(),
                title: opened.title.clone(),
                opened_at: opened.at,
                due_at: opened.due_at,
                status: Status::Open,
                assignee: None,
                resolved_at: None,
                reopened: 0,
            });
            return state;
        }
        let Some(order) = state.order.as_mut() else {
            return state;
        };
        match event {
            WorkOrderEvent::Opened(_) | WorkOrderEvent::Commented(_) => {}
            WorkOrderEvent::Acknowledged(_) => order.status = Status::Acknowledged,
            WorkOrderEvent::Assigned(e) => order.assignee = Some(e.technician.clone()),
            WorkOrderEvent::Started(_) => order.status = Status::InProgress,
            WorkOrderEvent::Resolved(e) => {
                order.status = Status::Resolved;
                order.resolved_at = Some(e.at);
            }
            WorkOrderEvent::Cancelled(_) => order.status = Status::Cancelled,
            WorkOrderEvent::Reopened(_) => {
                order.status = Status::Open;
                order.resolved_at = None;
                order.reopened += 1;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests;
