//! The alarms policy: turns trouble in the journal into alarms. A watch-listed subject recognized with enough
//! confidence raises one (the entry's severity); a rotation recorded while a turnstile was locked out raises a
//! critical forced-passage alarm. One alarm per (type, source): a repeat is a trigger on the active alarm, and
//! trouble back within `[alarms] reopen_within` of a clear reactivates the cleared one; otherwise a new alarm gets
//! the next number. Numbers and the watch list live in its memory, saved with its checkpoint (as the maintenance
//! policy keeps work order numbers), so a re-delivered event is decided again to the same alarm.

use super::{Order, Policy};
use crate::codec::AnyEvent;
use crate::domain::alarm::*;
use crate::domain::watch_list::{WatchEntry, WatchListEvent};
use crate::domain::{DeviceEvent, DeviceId, SubjectId};
use crate::journal::StoredEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Events recorded this long before the policy's first one are history: folded (the watch list, alarm numbers),
/// never alarmed on, so an upgrade does not turn a year of forced passages into a year of alarms.
pub const HISTORY_ACTED_ON: SignedDuration = SignedDuration::from_hours(24);
const MEMORY_SCHEMA: u32 = 1;

pub struct AlarmPolicy {
    min_confidence: f64,
    reopen_within: SignedDuration,
    tz: jiff::tz::TimeZone,
    memory: Memory,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    acts_from: Option<i64>,
    last_number: u64,
    watch_list: BTreeMap<SubjectId, WatchEntry>,
    /// Each device's zone, from its commissioning and later changes.
    zones: BTreeMap<String, String>,
    /// The latest alarm per (type, source), whether it is active, and when it last cleared (µs).
    alarms: BTreeMap<(AlarmType, AlarmSource), Known>,
    /// Which (type, source) each alarm number is, to follow its clears.
    numbers: BTreeMap<u64, (AlarmType, AlarmSource)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Known {
    number: u64,
    active: bool,
    cleared_at: Option<i64>,
}

/// Trouble seen once: what to raise or trigger.
struct Trouble {
    alarm_type: AlarmType,
    source: AlarmSource,
    severity: Severity,
    zone: Option<String>,
    detail: String,
}

impl AlarmPolicy {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            min_confidence: config.identification.min_confidence,
            reopen_within: SignedDuration::try_from(config.alarms.reopen_within).unwrap_or(SignedDuration::MAX),
            tz: config.site.timezone.clone(),
            memory: Memory::default(),
        }
    }

    /// The order `trouble` calls for: a trigger on its alarm when that is active or cleared only lately, else a
    /// new alarm.
    fn raise(&mut self, trouble: Trouble, at: Timestamp) -> Order {
        let key = (trouble.alarm_type, trouble.source.clone());
        let reopen = SignedDuration::from_micros(0)..=self.reopen_within;
        if let Some(known) = self.memory.alarms.get_mut(&key) {
            let recent = known
                .cleared_at
                .is_some_and(|cleared| reopen.contains(&SignedDuration::from_micros(at.as_microsecond() - cleared)));
            if known.active || recent {
                known.active = true;
                known.cleared_at = None;
                return Order::to::<Alarm>(
                    AlarmNumber::new(known.number).to_string(),
                    AlarmCommand::Trigger {
                        detail: trouble.detail,
                        at,
                    },
                );
            }
        }
        self.memory.last_number += 1;
        let number = self.memory.last_number;
        self.memory.alarms.insert(
            key.clone(),
            Known {
                number,
                active: true,
                cleared_at: None,
            },
        );
        self.memory.numbers.insert(number, key);
        Order::to::<Alarm>(
            AlarmNumber::new(number).to_string(),
            AlarmCommand::Raise(AlarmRaised {
                alarm_type: trouble.alarm_type,
                source: trouble.source,
                severity: trouble.severity,
                zone: trouble.zone,
                detail: trouble.detail,
                at,
            }),
        )
    }

    fn on_device(&mut self, device: &str, event: &DeviceEvent, stored: &StoredEvent, history: bool) -> Vec<Order> {
        match event {
            DeviceEvent::Commissioned(e) => {
                self.memory.zones.insert(device.to_owned(), e.details.zone.clone());
                vec![]
            }
            DeviceEvent::DetailsChanged(e) => {
                self.memory.zones.insert(device.to_owned(), e.details.zone.clone());
                vec![]
            }
            _ if history => vec![],
            DeviceEvent::RecognitionRecorded(e) if e.confidence.value() >= self.min_confidence => {
                let Some(subject) = &e.subject else { return vec![] };
                let day = e.at.to_zoned_datetime(self.tz.clone()).date();
                let Some(entry) = self
                    .memory
                    .watch_list
                    .get(subject)
                    .filter(|entry| entry.watched_on(day))
                else {
                    return vec![];
                };
                let zone = self.memory.zones.get(device).cloned();
                let mut detail = format!(
                    "{subject} ({}) recognized by {device}{} with confidence {:.2}",
                    entry.list,
                    zone.as_deref().map(|z| format!(" in {z}")).unwrap_or_default(),
                    e.confidence.value()
                );
                if let Some(note) = &entry.note {
                    detail.push_str(": ");
                    detail.push_str(note);
                }
                let trouble = Trouble {
                    alarm_type: AlarmType::WatchedSubjectSeen,
                    source: AlarmSource::Subject(subject.clone()),
                    severity: entry.severity,
                    zone,
                    detail,
                };
                vec![self.raise(trouble, stored.recorded_at)]
            }
            DeviceEvent::PassageRecorded(e) if e.during_lockout => {
                let Ok(id) = DeviceId::parse(device) else { return vec![] };
                let trouble = Trouble {
                    alarm_type: AlarmType::ForcedPassage,
                    source: AlarmSource::Device(id),
                    severity: Severity::Critical,
                    zone: self.memory.zones.get(device).cloned(),
                    detail: format!("{device} rotated ({}) while locked out", e.direction.as_str()),
                };
                vec![self.raise(trouble, stored.recorded_at)]
            }
            _ => vec![],
        }
    }

    /// Alarms as recorded: numbers handed out (also when the memory is folded again from the journal) and
    /// clears, which start the reopen window.
    fn on_alarm(&mut self, number: u64, event: &AlarmEvent) {
        match event {
            AlarmEvent::Raised(e) => {
                self.memory.last_number = self.memory.last_number.max(number);
                let key = (e.alarm_type, e.source.clone());
                self.memory.numbers.insert(number, key.clone());
                self.memory.alarms.entry(key).or_insert(Known {
                    number,
                    active: true,
                    cleared_at: None,
                });
            }
            AlarmEvent::Cleared(e) => {
                if let Some(known) = self
                    .memory
                    .numbers
                    .get(&number)
                    .and_then(|key| self.memory.alarms.get_mut(key))
                    .filter(|known| known.number == number)
                {
                    known.active = false;
                    known.cleared_at = Some(e.at.as_microsecond());
                }
            }
            AlarmEvent::Reactivated(_) => {
                if let Some(known) = self
                    .memory
                    .numbers
                    .get(&number)
                    .and_then(|key| self.memory.alarms.get_mut(key))
                    .filter(|known| known.number == number)
                {
                    known.active = true;
                    known.cleared_at = None;
                }
            }
            AlarmEvent::Repeated(_) | AlarmEvent::Acknowledged(_) => {}
        }
    }
}

impl Policy for AlarmPolicy {
    fn name(&self) -> &'static str {
        "alarms"
    }

    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String> {
        let acts_from = *self
            .memory
            .acts_from
            .get_or_insert_with(|| (Timestamp::now() - HISTORY_ACTED_ON).as_microsecond());
        let history = event.recorded_at.as_microsecond() < acts_from;
        if let Some((device, device_event)) = event.device() {
            return Ok(self.on_device(device, device_event, event, history));
        }
        match &event.event {
            AnyEvent::WatchList(WatchListEvent::Added(e)) => {
                self.memory.watch_list.insert(e.entry.subject.clone(), e.entry.clone());
            }
            AnyEvent::WatchList(WatchListEvent::Removed(e)) => {
                self.memory.watch_list.remove(&e.subject);
            }
            AnyEvent::Alarm(alarm_event) => {
                let number = AlarmNumber::parse(event.stream_id.id())?;
                self.on_alarm(number.get(), alarm_event);
            }
            _ => {}
        }
        Ok(vec![])
    }

    fn remember(&self) -> Option<Vec<u8>> {
        Some(super::encode_memory(MEMORY_SCHEMA, &self.memory))
    }

    fn recall(&mut self, memory: &[u8]) -> Result<(), String> {
        self.memory = super::decode_memory(MEMORY_SCHEMA, memory)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::watch_list::WatchEntryAdded;
    use crate::domain::{Confidence, RecognitionRecorded, StreamName};
    use crate::journal::Actor;

    fn policy() -> AlarmPolicy {
        AlarmPolicy {
            min_confidence: 0.8,
            reopen_within: SignedDuration::from_mins(10),
            tz: jiff::tz::TimeZone::UTC,
            memory: Memory::default(),
        }
    }

    fn stored(position: u64, stream: &str, at: Timestamp, event: AnyEvent) -> StoredEvent {
        StoredEvent {
            position,
            stream_id: StreamName::parse(stream).unwrap(),
            version: 1,
            event_type: event.event_type(),
            schema: 1,
            occurred_at: at,
            recorded_at: at,
            causation: None,
            actor: Some(Actor::gateway("test")),
            event,
        }
    }

    fn watched(policy: &mut AlarmPolicy, subject: &str, until: Option<&str>, at: Timestamp) {
        let entry = WatchEntry {
            subject: SubjectId::parse(subject).unwrap(),
            list: "banned".into(),
            severity: Severity::Major,
            note: None,
            until: until.map(|d| d.parse().unwrap()),
        };
        let added = AnyEvent::WatchList(WatchListEvent::Added(WatchEntryAdded { entry, at }));
        assert!(
            policy
                .react(&stored(1, "watch_list:site", at, added))
                .unwrap()
                .is_empty()
        );
    }

    fn seen(policy: &mut AlarmPolicy, subject: &str, confidence: f64, at: Timestamp) -> Vec<String> {
        let event = DeviceEvent::RecognitionRecorded(RecognitionRecorded {
            subject: Some(SubjectId::parse(subject).unwrap()),
            confidence: Confidence::new(confidence).unwrap(),
            at,
            seq: None,
        });
        let orders = policy.react(&stored(2, "C1", at, AnyEvent::Device(event))).unwrap();
        orders.iter().map(|o| o.describe.clone()).collect()
    }

    fn cleared(policy: &mut AlarmPolicy, number: &str, at: Timestamp) {
        let event = AnyEvent::Alarm(AlarmEvent::Cleared(AlarmCleared {
            by: Some("user:cleo".into()),
            note: None,
            at,
        }));
        policy.react(&stored(3, &format!("alarm:{number}"), at, event)).unwrap();
    }

    #[test]
    fn a_watched_subject_raises_one_alarm_and_repeats_trigger_it() {
        let mut policy = policy();
        let now = Timestamp::now();
        watched(&mut policy, "P-1", None, now);
        let first = seen(&mut policy, "P-1", 0.9, now);
        assert!(
            first[0].contains("Raise") && first[0].contains("alarm:A-000001"),
            "{first:?}"
        );
        let again = seen(&mut policy, "P-1", 0.95, now);
        assert!(
            again[0].contains("Trigger") && again[0].contains("alarm:A-000001"),
            "{again:?}"
        );
        assert!(seen(&mut policy, "P-1", 0.5, now).is_empty(), "below min_confidence");
        assert!(seen(&mut policy, "P-2", 0.99, now).is_empty(), "not on the list");
    }

    #[test]
    fn trouble_within_reopen_within_of_a_clear_reactivates_later_trouble_raises_a_new_alarm() {
        let mut policy = policy();
        let now = Timestamp::now();
        watched(&mut policy, "P-1", None, now);
        seen(&mut policy, "P-1", 0.9, now);
        cleared(&mut policy, "A-000001", now);
        let soon = seen(&mut policy, "P-1", 0.9, now + SignedDuration::from_mins(5));
        assert!(soon[0].contains("Trigger") && soon[0].contains("A-000001"), "{soon:?}");
        cleared(&mut policy, "A-000001", now + SignedDuration::from_mins(6));
        let later = seen(&mut policy, "P-1", 0.9, now + SignedDuration::from_mins(30));
        assert!(later[0].contains("Raise") && later[0].contains("A-000002"), "{later:?}");
    }

    #[test]
    fn an_entry_past_its_last_day_and_history_raise_nothing() {
        let mut policy = policy();
        let now = Timestamp::now();
        watched(&mut policy, "P-1", Some("2020-01-01"), now);
        assert!(seen(&mut policy, "P-1", 0.99, now).is_empty());
        let mut policy = super::tests::policy();
        // The first event sets where acting starts; a recognition from a month before is history.
        watched(&mut policy, "P-2", None, now);
        assert!(seen(&mut policy, "P-2", 0.99, now - SignedDuration::from_hours(24 * 30)).is_empty());
    }
}
