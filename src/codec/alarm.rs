//! How alarm, watch list, presence and occupancy events become bytes and back: each body under its type name.
//! Alarms, the watch list and presence are at schema 2, where subjects are sealed (schema 1 bodies are rewritten
//! once by `super::reseal`); occupancy is at schema 1.

use super::bodies::bodies_codec;
use crate::domain::alarm::AlarmEvent;
use crate::domain::occupancy::OccupancyEvent;
use crate::domain::presence::PresenceEvent;
use crate::domain::watch_list::WatchListEvent;

bodies_codec!(AlarmEvent, 2, {
    Raised => "AlarmRaised",
    Repeated => "AlarmRepeated",
    Reactivated => "AlarmReactivated",
    Acknowledged => "AlarmAcknowledged",
    Cleared => "AlarmCleared",
});

bodies_codec!(WatchListEvent, 2, {
    Added => "WatchEntryAdded",
    Removed => "WatchEntryRemoved",
});

bodies_codec!(OccupancyEvent, 1, {
    Reset => "OccupancyReset",
    Corrected => "OccupancyCorrected",
});

bodies_codec!(PresenceEvent, 2, {
    PassageIdentified => "PassageIdentified",
    AntiPassbackViolated => "AntiPassbackViolated",
    TimedOut => "PresenceTimedOut",
    Forgotten => "SubjectForgotten",
});

#[cfg(test)]
mod tests {
    use crate::codec::{decode_event, encode_event};
    use crate::domain::alarm::*;
    use crate::domain::watch_list::*;
    use crate::domain::{DeviceId, DomainEvent, Subject};

    #[test]
    fn every_alarm_and_watch_list_event_survives_a_round_trip_under_its_own_name() {
        let at: jiff::Timestamp = "2026-03-01T09:00:00.5Z".parse().unwrap();
        let alarms = [
            AlarmEvent::Raised(AlarmRaised {
                alarm_type: AlarmType::ForcedPassage,
                source: AlarmSource::Device(DeviceId::parse("T1").unwrap()),
                severity: Severity::Critical,
                zone: Some("Hall A".into()),
                detail: "rotation while locked out".into(),
                at,
            }),
            AlarmEvent::Repeated(AlarmRepeated {
                detail: "again".into(),
                at,
            }),
            AlarmEvent::Reactivated(AlarmReactivated {
                detail: "back".into(),
                at,
            }),
            AlarmEvent::Acknowledged(AlarmAcknowledged {
                by: "user:cleo".into(),
                note: Some("on my way".into()),
                at,
            }),
            AlarmEvent::Cleared(AlarmCleared {
                by: None,
                note: None,
                at,
            }),
        ];
        for event in alarms {
            let stored = encode_event(&event);
            assert_eq!(stored.event_type, event.event_type());
            let back: AlarmEvent =
                decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
        let entry = WatchEntry {
            subject: Subject::parse("P-1042").unwrap(),
            list: "banned".into(),
            severity: Severity::Major,
            note: None,
            until: Some("2026-12-31".parse().unwrap()),
        };
        let watch = [
            WatchListEvent::Added(WatchEntryAdded { entry, at }),
            WatchListEvent::Removed(WatchEntryRemoved {
                subject: Subject::parse("P-1042").unwrap(),
                at,
            }),
        ];
        for event in watch {
            let stored = encode_event(&event);
            assert_eq!(stored.event_type, event.event_type());
            let back: WatchListEvent =
                decode_event(stored.event_type, stored.schema, stored.format, &stored.payload).unwrap();
            assert_eq!(back, event);
        }
        assert!(decode_event::<AlarmEvent>("AlarmRaised", 2, 1, &[]).is_err());
    }
}
