//! Given / when / then for presence: where a person is after their identified passages, anti-passback, timeouts.

use super::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_764_000_000 + seconds).unwrap()
}

fn passage(zone: &str, direction: Direction, seconds: i64) -> PresenceCommand {
    PresenceCommand::Pass(PassageIdentified {
        subject: Subject::parse("P-1").unwrap(),
        turnstile: DeviceId::parse("T1").unwrap(),
        camera: DeviceId::parse("C1").unwrap(),
        zone: zone.into(),
        direction,
        confidence: Confidence::new(0.9).unwrap(),
        at: at(seconds),
    })
}

/// Decides each command on the state so far and folds what it recorded; the event types, in order.
fn given(commands: &[PresenceCommand]) -> (PresenceState, Vec<&'static str>) {
    let mut state = PresenceState::default();
    let mut recorded = Vec::new();
    for command in commands {
        let Ok(events) = Presence::decide(&state, command);
        for event in events {
            recorded.push(event.event_type());
            state = Presence::evolve(state, &event);
        }
    }
    (state, recorded)
}

#[test]
fn in_then_out_is_inside_then_outside_with_no_violation() {
    let (state, events) = given(&[passage("Hall A", Direction::In, 0)]);
    assert_eq!(events, ["PassageIdentified"]);
    assert_eq!(
        state.inside.as_ref().map(|i| (i.zone.as_str(), i.since)),
        Some(("Hall A", at(0)))
    );
    let (state, events) = given(&[
        passage("Hall A", Direction::In, 0),
        passage("Hall A", Direction::Out, 60),
    ]);
    assert_eq!(events, ["PassageIdentified", "PassageIdentified"]);
    assert_eq!(state.inside, None);
}

#[test]
fn entering_twice_or_leaving_a_zone_never_entered_is_recorded_as_anti_passback_never_refused() {
    let (state, events) = given(&[
        passage("Hall A", Direction::In, 0),
        passage("Hall A", Direction::In, 30),
    ]);
    assert_eq!(
        events,
        ["PassageIdentified", "PassageIdentified", "AntiPassbackViolated"]
    );
    assert_eq!(
        state.inside.map(|i| i.since),
        Some(at(0)),
        "inside since the first entry"
    );
    let (_, events) = given(&[passage("Hall B", Direction::Out, 0)]);
    assert_eq!(events, ["PassageIdentified", "AntiPassbackViolated"]);
}

#[test]
fn a_person_unseen_since_the_timeout_is_no_longer_inside_but_a_later_sighting_keeps_them_in() {
    let inside = passage("Hall A", Direction::In, 0);
    let (state, events) = given(&[
        inside.clone(),
        PresenceCommand::TimeOut {
            unseen_since: at(0),
            at: at(100),
        },
    ]);
    assert_eq!(events, ["PassageIdentified", "PresenceTimedOut"]);
    assert_eq!(state.inside, None);
    let (state, events) = given(&[
        inside,
        passage("Hall A", Direction::In, 50),
        PresenceCommand::TimeOut {
            unseen_since: at(0),
            at: at(100),
        },
    ]);
    assert_eq!(
        events.last(),
        Some(&"AntiPassbackViolated"),
        "seen again at 50: no timeout"
    );
    assert!(state.inside.is_some());
}

#[test]
fn a_late_identified_older_passage_does_not_move_the_person_back() {
    let (state, _) = given(&[
        passage("Hall A", Direction::In, 100),
        passage("Hall A", Direction::Out, 50),
    ]);
    assert_eq!(state.inside.map(|i| i.zone), Some("Hall A".to_owned()));
}
