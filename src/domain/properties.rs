//! Property tests of the deciders: for random sequences of commands, `decide` never panics, a rejected command
//! adds nothing, and folding every recorded event from the start reaches exactly the state the next `decide` saw
//! (so replaying the journal gives the state the actor had).

use super::work_order::{Note, Technician, WorkOrderKind, WorkOrderOpened};
use super::*;
use jiff::Timestamp;
use proptest::prelude::*;

fn instant(offset: i64) -> Timestamp {
    // Around now, and sometimes at the ends of the range a message can carry.
    match offset {
        i64::MIN..=-1_000_000 => Timestamp::MIN,
        1_000_000..=i64::MAX => Timestamp::MAX,
        seconds => Timestamp::from_second(1_780_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH),
    }
}

fn details(n: u8) -> DeviceDetails {
    DeviceDetails {
        name: format!("Device {n}"),
        zone: format!("Zone {}", n % 2),
        ..DeviceDetails::default()
    }
}

fn device_command() -> impl Strategy<Value = DeviceCommand> {
    let at = (-2_000_000i64..2_000_000).prop_map(instant);
    let seq = proptest::option::of(0u64..20);
    let code = prop::sample::select(vec!["JAM", "SENSOR", "POWER"]).prop_map(|c| FaultCode::parse(c).unwrap());
    prop_oneof![
        (any::<u8>(), at.clone()).prop_map(|(n, at)| DeviceCommand::Commission {
            details: details(n),
            watches: vec![],
            at
        }),
        (any::<u8>(), at.clone()).prop_map(|(n, at)| DeviceCommand::Reconfigure {
            details: details(n),
            watches: vec![],
            at
        }),
        at.clone().prop_map(|at| DeviceCommand::Decommission { at }),
        (any::<bool>(), at.clone(), seq.clone()).prop_map(|(inward, at, seq)| DeviceCommand::RecordPassage {
            direction: if inward { Direction::In } else { Direction::Out },
            at,
            seq
        }),
        (code.clone(), at.clone(), seq.clone()).prop_map(|(code, at, seq)| DeviceCommand::ReportFault {
            code,
            detail: "d".into(),
            at,
            seq
        }),
        (code, at.clone(), seq.clone()).prop_map(|(code, at, seq)| DeviceCommand::ClearFault { code, at, seq }),
        at.clone()
            .prop_map(|at| DeviceCommand::LockOut { reason: "r".into(), at }),
        at.clone().prop_map(|at| DeviceCommand::Unlock { at }),
        (any::<bool>(), at.clone()).prop_map(|(online, at)| DeviceCommand::ReportAvailability { online, at }),
        at.clone().prop_map(|at| DeviceCommand::RecordHeartbeat { at }),
        (proptest::option::of("[A-Z]-[0-9]{1,3}"), any::<f64>(), at, seq).prop_map(|(subject, confidence, at, seq)| {
            DeviceCommand::RecordRecognition {
                subject: subject.and_then(|s| Subject::parse(&s).ok()),
                confidence,
                at,
                seq,
            }
        }),
    ]
}

/// Decides each command against the state folded so far; checks the three properties along the way.
fn check<A: Aggregate>(commands: &[A::Command]) -> Result<(), TestCaseError>
where
    A::State: PartialEq,
{
    let mut state = A::State::default();
    let mut recorded = Vec::new();
    for command in commands {
        // Refused: nothing is recorded and the state is what it was (it is not touched at all).
        if let Ok(events) = A::decide(&state, command) {
            for event in &events {
                state = A::evolve(state, event);
            }
            recorded.extend(events);
        }
        let replayed = A::fold(A::State::default(), recorded.iter());
        prop_assert_eq!(
            &replayed,
            &state,
            "replaying the journal reaches the state the actor has"
        );
    }
    Ok(())
}

fn work_order_command() -> impl Strategy<Value = WorkOrderCommand> {
    let at = (0i64..100_000).prop_map(instant);
    let note = prop::sample::select(vec!["done", "two\nlines", "x"]).prop_map(|n| Note::parse(n, "n").unwrap());
    prop_oneof![
        (any::<bool>(), at.clone()).prop_map(|(corrective, at)| WorkOrderCommand::Open(WorkOrderOpened {
            device: DeviceId::parse("T1").unwrap(),
            zone: "Z".into(),
            kind: if corrective {
                WorkOrderKind::Corrective
            } else {
                WorkOrderKind::Preventive
            },
            cause: work_order::Cause::ServiceMeter { passages: 10 },
            title: "t".into(),
            due_at: None,
            at
        })),
        at.clone().prop_map(|at| WorkOrderCommand::Acknowledge { at }),
        (prop::sample::select(vec!["Ana", "Ben"]), at.clone()).prop_map(|(name, at)| WorkOrderCommand::Assign {
            technician: Technician::parse(name).unwrap(),
            at
        }),
        at.clone().prop_map(|at| WorkOrderCommand::Start { at }),
        (note.clone(), at.clone()).prop_map(|(note, at)| WorkOrderCommand::Resolve { note, at }),
        (note.clone(), at.clone()).prop_map(|(reason, at)| WorkOrderCommand::Cancel { reason, at }),
        (note.clone(), at.clone()).prop_map(|(text, at)| WorkOrderCommand::Comment { text, at }),
        (note, at).prop_map(|(reason, at)| WorkOrderCommand::Reopen { reason, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_turnstile_never_panics_refusals_add_nothing_and_replay_reaches_its_state(
        commands in prop::collection::vec(device_command(), 0..60)
    ) {
        check::<Turnstile>(&commands)?;
    }

    #[test]
    fn a_camera_never_panics_refusals_add_nothing_and_replay_reaches_its_state(
        commands in prop::collection::vec(device_command(), 0..60)
    ) {
        check::<Camera>(&commands)?;
    }

    #[test]
    fn a_work_order_never_panics_refusals_add_nothing_and_replay_reaches_its_state(
        commands in prop::collection::vec(work_order_command(), 0..40)
    ) {
        check::<WorkOrder>(&commands)?;
    }
}
