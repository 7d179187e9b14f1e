//! Given / when / then for every step of a work order's life and every refusal.

use super::*;
use crate::domain::values::FaultCode;

fn at(s: &str) -> Timestamp {
    format!("2026-03-01T{s}Z").parse().unwrap()
}

fn note(s: &str) -> Note {
    Note::parse(s, "the note").unwrap()
}

fn ana() -> Technician {
    Technician::parse("Ana").unwrap()
}

fn opened(kind: WorkOrderKind) -> WorkOrderOpened {
    WorkOrderOpened {
        device: DeviceId::parse("T1").unwrap(),
        zone: "Hall A".into(),
        kind,
        cause: match kind {
            WorkOrderKind::Corrective => Cause::Fault {
                code: FaultCode::parse("JAM").unwrap(),
            },
            WorkOrderKind::Preventive => Cause::Schedule {
                schedule: "weekly".into(),
            },
        },
        title: "JAM on T1".into(),
        due_at: None,
        at: at("08:00:00"),
    }
}

fn open() -> WorkOrderEvent {
    WorkOrderEvent::Opened(opened(WorkOrderKind::Corrective))
}
fn acknowledged() -> WorkOrderEvent {
    WorkOrderEvent::Acknowledged(WorkOrderAcknowledged { at: at("08:01:00") })
}
fn assigned() -> WorkOrderEvent {
    WorkOrderEvent::Assigned(WorkOrderAssigned {
        technician: ana(),
        at: at("08:02:00"),
    })
}
fn started() -> WorkOrderEvent {
    WorkOrderEvent::Started(WorkOrderStarted { at: at("08:03:00") })
}
fn resolved() -> WorkOrderEvent {
    WorkOrderEvent::Resolved(WorkOrderResolved {
        note: note("arm replaced"),
        at: at("09:00:00"),
    })
}
fn cancelled() -> WorkOrderEvent {
    WorkOrderEvent::Cancelled(WorkOrderCancelled {
        reason: note("duplicate"),
        at: at("09:00:00"),
    })
}

fn given(events: &[WorkOrderEvent], command: WorkOrderCommand) -> Result<Vec<WorkOrderEvent>, WorkOrderRejection> {
    let state = WorkOrder::fold(WorkOrderState::default(), events);
    WorkOrder::decide(&state, &command)
}

fn state_of(events: &[WorkOrderEvent]) -> OpenedOrder {
    WorkOrder::fold(WorkOrderState::default(), events).order.unwrap()
}

/// The order's history in each state.
fn histories() -> Vec<(Status, Vec<WorkOrderEvent>)> {
    vec![
        (Status::Open, vec![open()]),
        (Status::Acknowledged, vec![open(), acknowledged(), assigned()]),
        (Status::InProgress, vec![open(), acknowledged(), assigned(), started()]),
        (Status::Resolved, vec![open(), acknowledged(), resolved()]),
        (Status::Cancelled, vec![open(), cancelled()]),
    ]
}

fn commands() -> Vec<WorkOrderCommand> {
    let t = at("10:00:00");
    vec![
        WorkOrderCommand::Acknowledge { at: t },
        WorkOrderCommand::Assign {
            technician: Technician::parse("Ben").unwrap(),
            at: t,
        },
        WorkOrderCommand::Start { at: t },
        WorkOrderCommand::Resolve {
            note: note("done"),
            at: t,
        },
        WorkOrderCommand::Cancel {
            reason: note("not needed"),
            at: t,
        },
        WorkOrderCommand::Comment {
            text: note("spare part ordered"),
            at: t,
        },
    ]
}

/// The table of the issue: which step is allowed in which state.
fn allowed(step: &str, status: Status) -> bool {
    use Status::*;
    match step {
        "ack" => status == Open,
        "assign" | "cancel" => matches!(status, Open | Acknowledged | InProgress),
        "start" => status == Acknowledged,
        "resolve" => matches!(status, Acknowledged | InProgress),
        "comment" => true,
        _ => false,
    }
}

#[test]
fn opening_records_the_order_and_it_starts_open() {
    let events = given(&[], WorkOrderCommand::Open(opened(WorkOrderKind::Corrective))).unwrap();
    assert_eq!(events, vec![open()]);
    let order = state_of(&events);
    assert_eq!(order.status, Status::Open);
    assert_eq!(order.device.as_str(), "T1");
    assert_eq!(order.assignee, None);
}

#[test]
fn an_order_that_was_never_opened_refuses_every_step() {
    for command in commands() {
        assert_eq!(given(&[], command), Err(WorkOrderRejection::NotOpened));
    }
}

#[test]
fn opening_twice_is_refused() {
    assert_eq!(
        given(&[open()], WorkOrderCommand::Open(opened(WorkOrderKind::Corrective))),
        Err(WorkOrderRejection::AlreadyOpened)
    );
}

#[test]
fn every_step_is_allowed_exactly_where_the_table_says() {
    for (status, history) in histories() {
        assert_eq!(state_of(&history).status, status);
        for command in commands() {
            let step = command.step();
            let outcome = given(&history, command.clone());
            if allowed(step, status) {
                let events = outcome.unwrap_or_else(|e| panic!("{step} in {status}: {e}"));
                assert_eq!(events.len(), 1, "{step} in {status}");
            } else {
                assert!(
                    matches!(outcome, Err(WorkOrderRejection::NotAllowed { status: s, .. }) if s == status),
                    "{step} in {status}: {outcome:?}"
                );
            }
        }
    }
}

#[test]
fn each_step_moves_the_order_where_the_table_says() {
    let step = |history: &[WorkOrderEvent], command| {
        let mut all = history.to_vec();
        all.extend(given(history, command).unwrap());
        state_of(&all)
    };
    let t = at("10:00:00");
    assert_eq!(
        step(&[open()], WorkOrderCommand::Acknowledge { at: t }).status,
        Status::Acknowledged
    );
    let assigned_order = step(
        &[open(), acknowledged()],
        WorkOrderCommand::Assign {
            technician: ana(),
            at: t,
        },
    );
    assert_eq!(
        (assigned_order.status, assigned_order.assignee),
        (Status::Acknowledged, Some(ana()))
    );
    assert_eq!(
        step(&[open(), acknowledged(), assigned()], WorkOrderCommand::Start { at: t }).status,
        Status::InProgress
    );
    let done = step(
        &[open(), acknowledged(), assigned(), started()],
        WorkOrderCommand::Resolve {
            note: note("arm replaced"),
            at: t,
        },
    );
    assert_eq!((done.status, done.resolved_at), (Status::Resolved, Some(t)));
    assert_eq!(
        step(
            &[open()],
            WorkOrderCommand::Cancel {
                reason: note("false alarm"),
                at: t
            }
        )
        .status,
        Status::Cancelled
    );
    let commented = step(
        &[open(), resolved()],
        WorkOrderCommand::Comment {
            text: note("checked again"),
            at: t,
        },
    );
    assert_eq!(commented.status, Status::Resolved);
}

#[test]
fn starting_needs_an_assignee() {
    assert_eq!(
        given(
            &[open(), acknowledged()],
            WorkOrderCommand::Start { at: at("10:00:00") }
        ),
        Err(WorkOrderRejection::NoAssignee)
    );
}

#[test]
fn assigning_the_same_technician_again_changes_nothing() {
    let events = given(
        &[open(), assigned()],
        WorkOrderCommand::Assign {
            technician: ana(),
            at: at("10:00:00"),
        },
    );
    assert_eq!(events, Ok(vec![]));
}

#[test]
fn a_resolved_corrective_order_reopens_with_its_history_kept() {
    let reopen = WorkOrderCommand::Reopen {
        reason: note("JAM again"),
        at: at("10:00:00"),
    };
    let history = [open(), acknowledged(), assigned(), resolved()];
    let events = given(&history, reopen.clone()).unwrap();
    let mut all = history.to_vec();
    all.extend(events);
    let order = state_of(&all);
    assert_eq!(
        (order.status, order.reopened, order.resolved_at),
        (Status::Open, 1, None)
    );
    assert_eq!(order.assignee, Some(ana()), "the history (and assignee) stays");
    // Not from any other state, and never a preventive order.
    for (status, history) in histories() {
        if status != Status::Resolved {
            assert_eq!(
                given(&history, reopen.clone()),
                Err(WorkOrderRejection::NotReopenable),
                "{status}"
            );
        }
    }
    let preventive = [
        WorkOrderEvent::Opened(opened(WorkOrderKind::Preventive)),
        acknowledged(),
        resolved(),
    ];
    assert_eq!(given(&preventive, reopen), Err(WorkOrderRejection::NotReopenable));
}

#[test]
fn refusals_say_what_is_allowed() {
    let refusal = given(&[open(), resolved()], WorkOrderCommand::Start { at: at("10:00:00") }).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "a work order that is resolved cannot be started (allowed when acknowledged)"
    );
}
