//! Given / when / then tests for every device rule: given these events, when this command, then these events
//! (or this rejection).

use super::*;
use jiff::Timestamp;

fn at(s: &str) -> Timestamp {
    format!("2026-03-01T{s}Z").parse().unwrap()
}

fn details(name: &str, zone: &str) -> DeviceDetails {
    DeviceDetails {
        name: name.into(),
        zone: zone.into(),
        ..Default::default()
    }
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn jam() -> FaultCode {
    FaultCode::parse("JAM").unwrap()
}

fn commissioned(kind: DeviceKind) -> DeviceEvent {
    DeviceEvent::Commissioned(Commissioned {
        kind,
        details: details("Hall A north", "Hall A"),
        watches: if kind == DeviceKind::Camera {
            vec![id("T1")]
        } else {
            vec![]
        },
        at: at("08:00:00"),
    })
}

fn online(t: &str) -> DeviceEvent {
    DeviceEvent::CameOnline(CameOnline { at: at(t) })
}

/// Given `events`, when `command`, then what `decide` answers.
fn given<D: Device>(events: &[DeviceEvent], command: DeviceCommand) -> Result<Vec<DeviceEvent>, Rejection> {
    let state = D::fold(D::State::default(), events);
    D::decide(&state, &command)
}

fn passage(direction: Direction, t: &str) -> DeviceCommand {
    DeviceCommand::RecordPassage {
        direction,
        at: at(t),
        seq: None,
    }
}

fn recorded_passage(direction: Direction, t: &str, during_fault: bool, during_lockout: bool) -> DeviceEvent {
    DeviceEvent::PassageRecorded(PassageRecorded {
        direction,
        at: at(t),
        during_fault,
        during_lockout,
        seq: None,
    })
}

#[test]
fn commissioning_a_new_turnstile_records_its_details() {
    let then = given::<Turnstile>(
        &[],
        DeviceCommand::Commission {
            details: details("Hall A north", "Hall A"),
            watches: vec![],
            at: at("08:00:00"),
        },
    );
    assert_eq!(then, Ok(vec![commissioned(DeviceKind::Turnstile)]));
}

#[test]
fn commissioning_twice_is_rejected() {
    let then = given::<Turnstile>(
        &[commissioned(DeviceKind::Turnstile)],
        DeviceCommand::Commission {
            details: details("x", "y"),
            watches: vec![],
            at: at("09:00:00"),
        },
    );
    assert_eq!(then, Err(Rejection::AlreadyCommissioned));
}

#[test]
fn an_uncommissioned_device_accepts_nothing_but_commissioning() {
    assert_eq!(
        given::<Turnstile>(&[], passage(Direction::In, "09:00:00")),
        Err(Rejection::NotCommissioned)
    );
}

#[test]
fn a_decommissioned_device_accepts_nothing() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        DeviceEvent::Decommissioned(Decommissioned { at: at("10:00:00") }),
    ];
    for command in [
        passage(Direction::In, "11:00:00"),
        DeviceCommand::RecordHeartbeat { at: at("11:00:00") },
        DeviceCommand::ReportFault {
            code: jam(),
            detail: String::new(),
            at: at("11:00:00"),
            seq: None,
        },
        DeviceCommand::Decommission { at: at("11:00:00") },
    ] {
        assert_eq!(given::<Turnstile>(&history, command), Err(Rejection::Decommissioned));
    }
}

#[test]
fn a_decommissioned_device_added_back_to_the_config_is_commissioned_again() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        DeviceEvent::Decommissioned(Decommissioned { at: at("10:00:00") }),
    ];
    let then = given::<Turnstile>(
        &history,
        DeviceCommand::Commission {
            details: details("Hall A north", "Hall A"),
            watches: vec![],
            at: at("08:00:00"),
        },
    );
    assert_eq!(then, Ok(vec![commissioned(DeviceKind::Turnstile)]));
}

#[test]
fn a_passage_from_a_device_never_heard_from_also_brings_it_online() {
    let then = given::<Turnstile>(
        &[commissioned(DeviceKind::Turnstile)],
        passage(Direction::In, "09:00:00"),
    );
    assert_eq!(
        then,
        Ok(vec![
            online("09:00:00"),
            recorded_passage(Direction::In, "09:00:00", false, false)
        ])
    );
}

#[test]
fn a_passage_from_an_online_turnstile_is_recorded_alone() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let then = given::<Turnstile>(&history, passage(Direction::Out, "09:00:00"));
    assert_eq!(
        then,
        Ok(vec![recorded_passage(Direction::Out, "09:00:00", false, false)])
    );
}

#[test]
fn a_passage_during_an_open_fault_is_recorded_and_marked() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        DeviceEvent::FaultReported(FaultReported {
            code: jam(),
            detail: "arm stuck".into(),
            at: at("08:40:00"),
            seq: None,
        }),
    ];
    let then = given::<Turnstile>(&history, passage(Direction::In, "09:00:00"));
    assert_eq!(then, Ok(vec![recorded_passage(Direction::In, "09:00:00", true, false)]));
}

#[test]
fn a_passage_during_a_lock_out_is_recorded_and_marked() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        DeviceEvent::LockedOut(LockedOut {
            reason: "cleaning".into(),
            at: at("08:40:00"),
        }),
    ];
    let then = given::<Turnstile>(&history, passage(Direction::In, "09:00:00"));
    assert_eq!(then, Ok(vec![recorded_passage(Direction::In, "09:00:00", false, true)]));
}

#[test]
fn a_repeated_fault_with_the_same_open_code_adds_no_event() {
    let report = || DeviceCommand::ReportFault {
        code: jam(),
        detail: "arm stuck".into(),
        at: at("09:00:00"),
        seq: None,
    };
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let first = given::<Turnstile>(&history, report()).unwrap();
    assert_eq!(
        first,
        vec![DeviceEvent::FaultReported(FaultReported {
            code: jam(),
            detail: "arm stuck".into(),
            at: at("09:00:00"),
            seq: None,
        })]
    );
    let history: Vec<_> = history.into_iter().chain(first).collect();
    assert_eq!(given::<Turnstile>(&history, report()), Ok(vec![]));
}

#[test]
fn a_different_fault_code_opens_its_own_episode() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        DeviceEvent::FaultReported(FaultReported {
            code: jam(),
            detail: String::new(),
            at: at("08:40:00"),
            seq: None,
        }),
    ];
    let power = FaultCode::parse("POWER").unwrap();
    let then = given::<Turnstile>(
        &history,
        DeviceCommand::ReportFault {
            code: power.clone(),
            detail: "low voltage".into(),
            at: at("09:00:00"),
            seq: None,
        },
    );
    assert_eq!(
        then,
        Ok(vec![DeviceEvent::FaultReported(FaultReported {
            code: power,
            detail: "low voltage".into(),
            at: at("09:00:00"),
            seq: None,
        })])
    );
}

#[test]
fn clearing_an_open_fault_records_it() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        DeviceEvent::FaultReported(FaultReported {
            code: jam(),
            detail: String::new(),
            at: at("08:40:00"),
            seq: None,
        }),
    ];
    let then = given::<Turnstile>(
        &history,
        DeviceCommand::ClearFault {
            code: jam(),
            at: at("09:00:00"),
            seq: None,
        },
    );
    assert_eq!(
        then,
        Ok(vec![DeviceEvent::FaultCleared(FaultCleared {
            code: jam(),
            at: at("09:00:00"),
            seq: None,
        })])
    );
}

#[test]
fn clearing_a_fault_that_is_not_open_adds_no_event() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let then = given::<Turnstile>(
        &history,
        DeviceCommand::ClearFault {
            code: jam(),
            at: at("09:00:00"),
            seq: None,
        },
    );
    assert_eq!(then, Ok(vec![]));
}

#[test]
fn a_status_message_only_records_a_change() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let still_online = DeviceCommand::ReportAvailability {
        online: true,
        at: at("09:00:00"),
    };
    assert_eq!(given::<Turnstile>(&history, still_online), Ok(vec![]));
    let gone = DeviceCommand::ReportAvailability {
        online: false,
        at: at("09:00:00"),
    };
    assert_eq!(
        given::<Turnstile>(&history, gone.clone()),
        Ok(vec![DeviceEvent::WentOffline(WentOffline { at: at("09:00:00") })])
    );
    let history = [
        history[0].clone(),
        history[1].clone(),
        DeviceEvent::WentOffline(WentOffline { at: at("09:00:00") }),
    ];
    assert_eq!(given::<Turnstile>(&history, gone), Ok(vec![]));
    let back = DeviceCommand::ReportAvailability {
        online: true,
        at: at("09:05:00"),
    };
    assert_eq!(given::<Turnstile>(&history, back), Ok(vec![online("09:05:00")]));
}

#[test]
fn a_heartbeat_brings_an_offline_device_back_and_is_otherwise_silent() {
    let history = [
        commissioned(DeviceKind::Camera),
        online("08:30:00"),
        DeviceEvent::WentOffline(WentOffline { at: at("08:45:00") }),
    ];
    let beat = DeviceCommand::RecordHeartbeat { at: at("09:00:00") };
    assert_eq!(given::<Camera>(&history, beat.clone()), Ok(vec![online("09:00:00")]));
    assert_eq!(given::<Camera>(&history[..2], beat), Ok(vec![]));
}

#[test]
fn locking_out_and_unlocking_only_record_changes() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let lock = DeviceCommand::LockOut {
        reason: "vandalism".into(),
        at: at("09:00:00"),
    };
    let locked = DeviceEvent::LockedOut(LockedOut {
        reason: "vandalism".into(),
        at: at("09:00:00"),
    });
    assert_eq!(given::<Turnstile>(&history, lock.clone()), Ok(vec![locked.clone()]));
    assert_eq!(
        given::<Turnstile>(&history, DeviceCommand::Unlock { at: at("09:30:00") }),
        Ok(vec![])
    );
    let history = [history[0].clone(), history[1].clone(), locked];
    assert_eq!(given::<Turnstile>(&history, lock), Ok(vec![]));
    assert_eq!(
        given::<Turnstile>(&history, DeviceCommand::Unlock { at: at("09:30:00") }),
        Ok(vec![DeviceEvent::Unlocked(Unlocked { at: at("09:30:00") })])
    );
}

#[test]
fn a_recognition_is_recorded_with_its_subject_or_as_unknown() {
    let history = [commissioned(DeviceKind::Camera), online("08:30:00")];
    let subject = Subject::parse("P-1042").ok();
    for subject in [subject, None] {
        let then = given::<Camera>(
            &history,
            DeviceCommand::RecordRecognition {
                subject: subject.clone(),
                confidence: 0.93,
                at: at("09:00:00"),
                seq: None,
            },
        );
        assert_eq!(
            then,
            Ok(vec![DeviceEvent::RecognitionRecorded(RecognitionRecorded {
                subject,
                confidence: Confidence::new(0.93).unwrap(),
                at: at("09:00:00"),
                seq: None,
            })])
        );
    }
}

#[test]
fn a_confidence_outside_zero_to_one_is_rejected() {
    let history = [commissioned(DeviceKind::Camera), online("08:30:00")];
    for bad in [-0.01, 1.01, f64::NAN] {
        let then = given::<Camera>(
            &history,
            DeviceCommand::RecordRecognition {
                subject: None,
                confidence: bad,
                at: at("09:00:00"),
                seq: None,
            },
        );
        assert!(
            matches!(then, Err(Rejection::ConfidenceOutOfRange(_))),
            "{bad}: {then:?}"
        );
    }
}

#[test]
fn each_kind_rejects_the_other_kinds_commands() {
    let turnstile = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let recognition = DeviceCommand::RecordRecognition {
        subject: None,
        confidence: 0.5,
        at: at("09:00:00"),
        seq: None,
    };
    assert_eq!(
        given::<Turnstile>(&turnstile, recognition),
        Err(Rejection::WrongKind {
            kind: DeviceKind::Turnstile,
            command: "record recognition"
        })
    );
    let camera = [commissioned(DeviceKind::Camera), online("08:30:00")];
    assert_eq!(
        given::<Camera>(&camera, passage(Direction::In, "09:00:00")),
        Err(Rejection::WrongKind {
            kind: DeviceKind::Camera,
            command: "record passage"
        })
    );
}

#[test]
fn reconfiguring_records_only_what_changed() {
    let history = [commissioned(DeviceKind::Camera)];
    let same = DeviceCommand::Reconfigure {
        details: details("Hall A north", "Hall A"),
        watches: vec![id("T1")],
        at: at("09:00:00"),
    };
    assert_eq!(given::<Camera>(&history, same), Ok(vec![]));
    let moved = DeviceCommand::Reconfigure {
        details: details("Hall A north", "Hall B"),
        watches: vec![id("T1"), id("T2")],
        at: at("09:00:00"),
    };
    assert_eq!(
        given::<Camera>(&history, moved),
        Ok(vec![
            DeviceEvent::DetailsChanged(DetailsChanged {
                details: details("Hall A north", "Hall B"),
                at: at("09:00:00")
            }),
            DeviceEvent::WatchesChanged(WatchesChanged {
                watches: vec![id("T1"), id("T2")],
                at: at("09:00:00")
            }),
        ])
    );
}

#[test]
fn evolve_keeps_counters_faults_and_availability() {
    let events = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        recorded_passage(Direction::In, "08:31:00", false, false),
        recorded_passage(Direction::In, "08:32:00", false, false),
        recorded_passage(Direction::Out, "08:33:00", false, false),
        DeviceEvent::FaultReported(FaultReported {
            code: jam(),
            detail: "arm".into(),
            at: at("08:40:00"),
            seq: None,
        }),
    ];
    let state = Turnstile::fold(TurnstileState::default(), &events);
    assert_eq!((state.passages_in, state.passages_out), (2, 1));
    assert_eq!(
        state.common.availability,
        Availability::Online { since: at("08:30:00") }
    );
    assert_eq!(state.common.open_faults[&jam()].since, at("08:40:00"));
    assert_eq!(state.common.last_event_at, Some(at("08:40:00")));
    assert_eq!(state.common.lifecycle, Lifecycle::Active);
}

fn counted_passage(seq: u64, t: &str) -> DeviceCommand {
    DeviceCommand::RecordPassage {
        direction: Direction::In,
        at: at(t),
        seq: Some(seq),
    }
}

/// Folds what `decide` answers to each command in turn, as the actor does.
fn run<D: Device>(history: &[DeviceEvent], commands: &[DeviceCommand]) -> D::State {
    let mut state = D::fold(D::State::default(), history);
    for command in commands {
        let events = D::decide(&state, command).unwrap();
        state = D::fold(state, &events);
    }
    state
}

#[test]
fn jumps_in_seq_count_as_lost_messages_and_late_ones_take_them_back() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let state = run::<Turnstile>(
        &history,
        &[
            counted_passage(1, "09:00:00"),
            counted_passage(2, "09:00:01"),
            counted_passage(6, "09:00:02"),
        ],
    );
    assert_eq!((state.common.last_seq, state.common.lost_messages), (Some(6), 3));
    let state = run::<Turnstile>(
        &history,
        &[
            counted_passage(1, "09:00:00"),
            counted_passage(4, "09:00:01"),
            counted_passage(3, "09:00:02"),
        ],
    );
    assert_eq!(state.common.lost_messages, 1, "3 arrived late");
    // A gateway that restarts its count far below is not thousands of late messages.
    let state = run::<Turnstile>(
        &history,
        &[
            counted_passage(5000, "09:00:00"),
            counted_passage(1, "09:00:01"),
            counted_passage(2, "09:00:02"),
        ],
    );
    assert_eq!((state.common.last_seq, state.common.lost_messages), (Some(2), 0));
}

#[test]
fn a_counted_message_that_changes_nothing_still_records_its_seq() {
    let history = [commissioned(DeviceKind::Turnstile), online("08:30:00")];
    let fault = |seq| DeviceCommand::ReportFault {
        code: jam(),
        detail: "arm".into(),
        at: at("09:00:00"),
        seq: Some(seq),
    };
    let state = run::<Turnstile>(&history, &[fault(1)]);
    // The unit repeats its fault: no second episode, but the counter hears message 2, so 3 is no jump.
    assert_eq!(
        Turnstile::decide(&state, &fault(2)),
        Ok(vec![DeviceEvent::MessageCounted(MessageCounted {
            seq: 2,
            at: at("09:00:00")
        })])
    );
    let state = run::<Turnstile>(&history, &[fault(1), fault(2), counted_passage(3, "09:01:00")]);
    assert_eq!(state.common.lost_messages, 0);
    // Without a seq, a repeated fault adds nothing, as before.
    let plain = DeviceCommand::ReportFault {
        code: jam(),
        detail: "arm".into(),
        at: at("09:00:00"),
        seq: None,
    };
    let state = run::<Turnstile>(&history, std::slice::from_ref(&plain));
    assert_eq!(Turnstile::decide(&state, &plain), Ok(vec![]));
}

fn void(position: u64, fact: VoidedFact) -> DeviceCommand {
    DeviceCommand::VoidFact {
        position,
        fact,
        reason: "technician's test rotation".into(),
        at: at("12:00:00"),
    }
}

fn test_rotation() -> VoidedFact {
    VoidedFact::Passage {
        direction: Direction::In,
        at: at("09:00:00"),
    }
}

#[test]
fn voiding_a_passage_records_a_correction_that_references_it_and_takes_it_out_of_the_counters() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        online("08:30:00"),
        recorded_passage(Direction::In, "09:00:00", false, false),
    ];
    let events = given::<Turnstile>(&history, void(3, test_rotation())).unwrap();
    assert_eq!(
        events,
        [DeviceEvent::FactVoided(FactVoided {
            position: 3,
            fact: test_rotation(),
            reason: "technician's test rotation".into(),
            at: at("12:00:00"),
        })]
    );
    let state = Turnstile::fold(TurnstileState::default(), history.iter().chain(&events));
    assert_eq!(state.passages_in, 0);
    assert!(state.common.voided.contains(&3));
}

#[test]
fn a_fact_is_voided_once_and_only_by_the_kind_that_records_it() {
    let voided = DeviceEvent::FactVoided(FactVoided {
        position: 3,
        fact: test_rotation(),
        reason: "test".into(),
        at: at("12:00:00"),
    });
    let history = [commissioned(DeviceKind::Turnstile), voided];
    assert_eq!(
        given::<Turnstile>(&history, void(3, test_rotation())),
        Err(Rejection::AlreadyVoided(3))
    );
    let recognition = VoidedFact::Recognition {
        subject: None,
        confidence: Confidence::new(0.5).unwrap(),
        at: at("09:00:00"),
    };
    assert!(matches!(
        given::<Turnstile>(&history, void(4, recognition.clone())),
        Err(Rejection::WrongKind { .. })
    ));
    assert!(matches!(
        given::<Camera>(&[commissioned(DeviceKind::Camera)], void(4, test_rotation())),
        Err(Rejection::WrongKind { .. })
    ));
    assert!(given::<Camera>(&[commissioned(DeviceKind::Camera)], void(4, recognition)).is_ok());
}

#[test]
fn a_decommissioned_turnstiles_history_can_still_be_corrected_but_an_uncommissioned_one_has_none() {
    let history = [
        commissioned(DeviceKind::Turnstile),
        recorded_passage(Direction::In, "09:00:00", false, false),
        DeviceEvent::Decommissioned(Decommissioned { at: at("10:00:00") }),
    ];
    assert!(given::<Turnstile>(&history, void(2, test_rotation())).is_ok());
    assert_eq!(
        given::<Turnstile>(&[], void(2, test_rotation())),
        Err(Rejection::NotCommissioned)
    );
}
