//! Given (events so far) / when (a command) / then (the events recorded, or the refusal) for every step of an
//! alarm's life.

use super::*;
use crate::domain::{DeviceId, Subject};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn raised(alarm_type: AlarmType) -> AlarmRaised {
    AlarmRaised {
        alarm_type,
        source: match alarm_type {
            AlarmType::WatchedSubjectSeen => AlarmSource::Subject(Subject::parse("P-1042").unwrap()),
            _ => AlarmSource::Device(DeviceId::parse("T1").unwrap()),
        },
        severity: Severity::Major,
        zone: Some("Hall A".into()),
        detail: "first".into(),
        at: at("2026-03-01T09:00:00Z"),
    }
}

fn given(events: &[AlarmEvent]) -> AlarmState {
    Alarm::fold(AlarmState::default(), events)
}

fn when(events: &[AlarmEvent], command: AlarmCommand) -> Result<Vec<AlarmEvent>, AlarmRejection> {
    Alarm::decide(&given(events), &command)
}

fn trigger(t: &str) -> AlarmCommand {
    AlarmCommand::Trigger {
        detail: "again".into(),
        at: at(t),
    }
}

fn ack(by: &str) -> AlarmCommand {
    AlarmCommand::Acknowledge {
        by: by.into(),
        note: Some("on it".into()),
        at: at("2026-03-01T09:05:00Z"),
    }
}

fn clear() -> AlarmCommand {
    AlarmCommand::Clear {
        by: "cleo".into(),
        note: None,
        at: at("2026-03-01T09:10:00Z"),
    }
}

fn apply(events: &mut Vec<AlarmEvent>, command: AlarmCommand) {
    let new = when(events, command).unwrap();
    events.extend(new);
}

#[test]
fn a_raise_starts_an_active_unacknowledged_alarm_and_a_second_raise_is_refused() {
    let events = when(&[], AlarmCommand::Raise(raised(AlarmType::WatchedSubjectSeen))).unwrap();
    let state = given(&events);
    let alarm = state.alarm.as_ref().unwrap();
    assert_eq!((alarm.count, alarm.state_name()), (1, "active_unacknowledged"));
    assert_eq!(
        when(&events, AlarmCommand::Raise(raised(AlarmType::WatchedSubjectSeen))),
        Err(AlarmRejection::AlreadyRaised)
    );
}

#[test]
fn nothing_but_a_raise_is_taken_before_the_alarm_exists() {
    for command in [trigger("2026-03-01T09:01:00Z"), ack("cleo"), clear()] {
        assert_eq!(when(&[], command), Err(AlarmRejection::NotRaised));
    }
}

#[test]
fn a_repeated_trigger_counts_on_the_same_alarm_and_moves_last_seen() {
    let mut events = vec![AlarmEvent::Raised(raised(AlarmType::WatchedSubjectSeen))];
    let first = at("2026-03-01T09:00:00Z");
    for minute in 1..=999 {
        apply(
            &mut events,
            AlarmCommand::Trigger {
                detail: format!("seen again ({minute})"),
                at: first + jiff::SignedDuration::from_mins(minute),
            },
        );
    }
    let alarm = given(&events).alarm.unwrap();
    assert_eq!(alarm.count, 1000);
    assert_eq!(alarm.first_seen, first);
    assert_eq!(alarm.last_seen, at("2026-03-02T01:39:00Z"));
    assert_eq!(alarm.detail, "seen again (999)");
    assert!(alarm.active);
}

#[test]
fn acknowledging_keeps_who_and_why_and_a_second_acknowledgement_changes_nothing() {
    let mut events = vec![AlarmEvent::Raised(raised(AlarmType::ForcedPassage))];
    apply(&mut events, ack("cleo"));
    let alarm = given(&events).alarm.unwrap();
    assert_eq!(alarm.state_name(), "active_acknowledged");
    assert_eq!(alarm.acknowledged.as_ref().unwrap().by, "cleo");
    assert_eq!(alarm.acknowledged.unwrap().note.as_deref(), Some("on it"));
    assert_eq!(when(&events, ack("dan")), Ok(vec![]));
}

#[test]
fn a_moment_alarm_is_cleared_by_a_person_once() {
    let mut events = vec![AlarmEvent::Raised(raised(AlarmType::WatchedSubjectSeen))];
    apply(&mut events, clear());
    let alarm = given(&events).alarm.unwrap();
    assert_eq!(alarm.state_name(), "cleared_unacknowledged");
    assert_eq!(alarm.cleared_at, Some(at("2026-03-01T09:10:00Z")));
    assert_eq!(when(&events, clear()), Err(AlarmRejection::AlreadyCleared));
}

#[test]
fn a_lasting_alarm_cannot_be_cleared_while_its_condition_holds_and_clears_itself_when_it_ends() {
    let mut events = vec![AlarmEvent::Raised(raised(AlarmType::DeviceOffline))];
    assert_eq!(
        when(&events, clear()).unwrap_err().to_string(),
        "it cannot be cleared while its condition holds (device T1 is still offline); it clears itself when that ends"
    );
    apply(
        &mut events,
        AlarmCommand::ConditionEnded {
            at: at("2026-03-01T09:30:00Z"),
        },
    );
    let alarm = given(&events).alarm.unwrap();
    // Cleared by itself, and still waiting for someone to take note.
    assert_eq!(alarm.state_name(), "cleared_unacknowledged");
    assert!(matches!(
        events.last(),
        Some(AlarmEvent::Cleared(AlarmCleared { by: None, .. }))
    ));
    apply(&mut events, ack("cleo"));
    assert_eq!(given(&events).alarm.unwrap().state_name(), "cleared_acknowledged");
    // Ending again is nothing new.
    assert_eq!(
        when(
            &events,
            AlarmCommand::ConditionEnded {
                at: at("2026-03-01T09:40:00Z")
            }
        ),
        Ok(vec![])
    );
}

#[test]
fn trouble_back_after_a_clear_reactivates_the_same_alarm_unacknowledged() {
    let mut events = vec![AlarmEvent::Raised(raised(AlarmType::DeviceOffline))];
    apply(&mut events, ack("cleo"));
    apply(
        &mut events,
        AlarmCommand::ConditionEnded {
            at: at("2026-03-01T09:30:00Z"),
        },
    );
    let new = when(&events, trigger("2026-03-01T09:35:00Z")).unwrap();
    assert!(matches!(new.as_slice(), [AlarmEvent::Reactivated(_)]));
    events.extend(new);
    let alarm = given(&events).alarm.unwrap();
    assert_eq!((alarm.state_name(), alarm.count), ("active_unacknowledged", 2));
    assert!(alarm.condition_holds, "offline again: no clearing by hand");
    assert!(matches!(
        when(&events, clear()),
        Err(AlarmRejection::ConditionHolds { .. })
    ));
}

#[test]
fn severities_order_from_critical_down_and_read_back_from_their_names() {
    assert!(Severity::Critical > Severity::Major && Severity::Major > Severity::Minor);
    assert!(Severity::Minor > Severity::Warning);
    for severity in Severity::ALL {
        assert_eq!(Severity::parse(severity.as_str()), Ok(severity));
    }
    assert!(Severity::parse("urgent").is_err());
    assert_eq!(AlarmNumber::new(3).to_string(), "A-000003");
    assert_eq!(AlarmNumber::parse("A-000003"), Ok(AlarmNumber::new(3)));
    assert!(AlarmNumber::parse("WO-000003").is_err());
}
