//! The alarms policy: turns trouble in the journal into alarms. A watch-listed subject recognized with enough
//! confidence raises one (the entry's severity); a rotation recorded while a turnstile was locked out raises a
//! critical forced-passage alarm; a skipped message counter raises a minor lost-messages alarm on its sender.
//! Lasting trouble waits on the clock ([`Policy::due`]): a device offline longer than `[alarms] offline_after` or
//! with a fault open longer than `fault_open_after` raises a major alarm that clears itself when the condition
//! ends, and a sender with `dead_letter_rate` dead letters in a minute raises a minor one. A zone holding more people
//! than its `[[zone]] capacity` raises a major over-capacity alarm that clears itself when the count is back.
//! Two or more rotations one way on a turnstile a camera watches, within `[identification] tailgate_window` of each
//! other, with at most one of them identified, raise a minor tailgating alarm on the turnstile, decided once late
//! faces can no longer identify them. One alarm per (type, source): a repeat is a trigger on the active alarm, and
//! trouble back within `[alarms] reopen_within` of a clear reactivates the cleared one; otherwise a new alarm gets
//! the next number. Numbers and the watch list live in its memory, saved with its checkpoint (as the maintenance
//! policy keeps work order numbers), so a re-delivered event is decided again to the same alarm.

use super::{Due, Moment, Order, Policy};
use crate::codec::AnyEvent;
use crate::domain::alarm::*;
use crate::domain::watch_list::{WatchEntry, WatchListEvent};
use crate::domain::{DeviceEvent, DeviceId, Subject};
use crate::journal::StoredEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Events recorded this long before the policy's first one are history: folded (the watch list, alarm numbers),
/// never alarmed on, so an upgrade does not turn a year of forced passages into a year of alarms.
pub const HISTORY_ACTED_ON: SignedDuration = SignedDuration::from_hours(24);
/// 5: the watch list keyed by sealed subjects.
const MEMORY_SCHEMA: u32 = 5;
/// How long after a burst of rotations a late face may still identify one of them, beyond the match window.
const TAILGATE_GRACE: SignedDuration = SignedDuration::from_secs(10);
/// A flooding sender's alarm is triggered again at most this often, not on every tick.
const DEAD_LETTERS_RETOLD: SignedDuration = SignedDuration::from_secs(60);

pub struct AlarmPolicy {
    min_confidence: f64,
    reopen_within: SignedDuration,
    offline_after: SignedDuration,
    fault_open_after: SignedDuration,
    dead_letter_rate: u64,
    tailgate_window: SignedDuration,
    match_window: SignedDuration,
    /// Each zone's capacity, for those `[[zone]]` gives one.
    capacities: BTreeMap<String, u64>,
    tz: jiff::tz::TimeZone,
    memory: Memory,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    acts_from: Option<i64>,
    last_number: u64,
    watch_list: BTreeMap<Subject, WatchEntry>,
    /// Each device's zone, from its commissioning and later changes.
    zones: BTreeMap<String, String>,
    /// The latest alarm per (type, source), whether it is active, and when it last cleared (µs).
    alarms: BTreeMap<(AlarmType, AlarmSource), Known>,
    /// Which (type, source) each alarm number is, to follow its clears.
    numbers: BTreeMap<u64, (AlarmType, AlarmSource)>,
    /// Lasting trouble (offline, fault open) per (type, device) that is not an alarm yet: when it began.
    pending: BTreeMap<(AlarmType, String), Began>,
    /// The fault codes open on each device.
    open_faults: BTreeMap<String, BTreeSet<String>>,
    /// Each device's message counter as last seen, and the messages lost so far.
    counters: BTreeMap<String, (Option<u64>, u64)>,
    /// Per sender, the newest dead letter an alarm told of, and when.
    dead_letters_told: BTreeMap<String, (i64, i64)>,
    /// Each zone's count of people, for the capacity alarm.
    occupancy: crate::domain::occupancy::Counts,
    /// The turnstiles each camera watches: only their rotations can be judged for tailgating.
    watches: BTreeMap<String, Vec<DeviceId>>,
    /// Recent rotations of watched turnstiles, per turnstile, until a tailgating verdict on them.
    rotations: BTreeMap<String, Vec<RecentRotation>>,
}

/// A rotation waiting for the tailgating verdict: when (device and recorded time, µs), which way, whether a face
/// identified it, and its position (naming the alarm's causation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecentRotation {
    at: i64,
    recorded: i64,
    inward: bool,
    identified: bool,
    position: u64,
}

/// When lasting trouble began: the event that began it (its position names the alarm's causation) and its time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Began {
    position: u64,
    at: i64,
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
            offline_after: SignedDuration::try_from(config.alarms.offline_after).unwrap_or(SignedDuration::MAX),
            fault_open_after: SignedDuration::try_from(config.alarms.fault_open_after).unwrap_or(SignedDuration::MAX),
            dead_letter_rate: u64::from(config.alarms.dead_letter_rate),
            tailgate_window: SignedDuration::try_from(config.identification.tailgate_window)
                .unwrap_or(SignedDuration::ZERO),
            match_window: SignedDuration::try_from(config.identification.match_window).unwrap_or(SignedDuration::ZERO),
            capacities: config
                .zones
                .iter()
                .filter_map(|zone| Some((zone.name.clone(), u64::from(zone.capacity?))))
                .collect(),
            tz: config.site.timezone.clone(),
            memory: Memory::default(),
        }
    }

    /// Verdicts on the bursts of rotations that late faces can no longer identify: a burst of two or more one way,
    /// each within `tailgate_window` of the one before, with at most one face among them, is tailgating.
    fn tailgating(&mut self, now: Timestamp) -> Vec<Due> {
        let settled_before =
            now.as_microsecond() - (self.tailgate_window + self.match_window + TAILGATE_GRACE).as_micros() as i64;
        let window = self.tailgate_window.as_micros() as i64;
        let mut found = Vec::new();
        for (turnstile, recent) in &mut self.memory.rotations {
            recent.sort_by_key(|r| (r.at, r.position));
            // Bursts: runs one way whose rotations follow each other within the window.
            let mut bursts: Vec<Vec<RecentRotation>> = Vec::new();
            for rotation in recent.drain(..) {
                match bursts.last_mut() {
                    Some(burst)
                        if burst
                            .last()
                            .is_some_and(|last| last.inward == rotation.inward && rotation.at - last.at <= window) =>
                    {
                        burst.push(rotation)
                    }
                    _ => bursts.push(vec![rotation]),
                }
            }
            for burst in bursts {
                let settled = burst.iter().all(|r| r.recorded < settled_before);
                if !settled {
                    recent.extend(burst);
                    continue;
                }
                let faces = burst.iter().filter(|r| r.identified).count();
                if burst.len() >= 2 && faces <= 1 {
                    found.push((turnstile.clone(), burst, faces));
                }
            }
        }
        self.memory.rotations.retain(|_, recent| !recent.is_empty());
        found
            .into_iter()
            .filter_map(|(turnstile, burst, faces)| {
                let first = burst.first()?;
                let id = DeviceId::parse(&turnstile).ok()?;
                let at = Timestamp::from_microsecond(first.recorded).ok()?;
                let trouble = Trouble {
                    alarm_type: AlarmType::Tailgating,
                    source: AlarmSource::Device(id),
                    severity: Severity::Minor,
                    zone: self.memory.zones.get(&turnstile).cloned(),
                    detail: format!(
                        "{} rotations {} on {turnstile}, each within {} s of the one before, {faces} of them identified",
                        burst.len(),
                        if first.inward { "in" } else { "out" },
                        self.tailgate_window.as_secs_f64()
                    ),
                };
                Some(Due {
                    key: format!("tailgating@{}", first.position),
                    order: self.raise(trouble, at),
                })
            })
            .collect()
    }

    /// How long lasting trouble of `alarm_type` goes on before it is an alarm.
    fn lasts_long_after(&self, alarm_type: AlarmType) -> SignedDuration {
        match alarm_type {
            AlarmType::DeviceOffline => self.offline_after,
            _ => self.fault_open_after,
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

    /// The order that clears the active alarm of lasting trouble whose condition ended, and forgets trouble that
    /// had not become an alarm yet.
    fn condition_ended(&mut self, alarm_type: AlarmType, device: &str, at: Timestamp) -> Vec<Order> {
        self.memory.pending.remove(&(alarm_type, device.to_owned()));
        let Ok(id) = DeviceId::parse(device) else { return vec![] };
        match self.memory.alarms.get_mut(&(alarm_type, AlarmSource::Device(id))) {
            Some(known) if known.active => {
                known.active = false;
                known.cleared_at = Some(at.as_microsecond());
                vec![Order::to::<Alarm>(
                    AlarmNumber::new(known.number).to_string(),
                    AlarmCommand::ConditionEnded { at },
                )]
            }
            _ => vec![],
        }
    }

    /// Lasting trouble beginning: remembered until it lasts long enough (or ends first).
    fn condition_began(&mut self, alarm_type: AlarmType, device: &str, stored: &StoredEvent) {
        self.memory
            .pending
            .entry((alarm_type, device.to_owned()))
            .or_insert(Began {
                position: stored.position,
                at: stored.recorded_at.as_microsecond(),
            });
    }

    /// Offline and fault conditions, followed through history too: a device offline since last year is
    /// offline now.
    fn on_condition(&mut self, device: &str, event: &DeviceEvent, stored: &StoredEvent) -> Vec<Order> {
        let at = stored.recorded_at;
        match event {
            DeviceEvent::WentOffline(_) => {
                self.condition_began(AlarmType::DeviceOffline, device, stored);
                vec![]
            }
            DeviceEvent::CameOnline(_) => self.condition_ended(AlarmType::DeviceOffline, device, at),
            DeviceEvent::FaultReported(e) => {
                let codes = self.memory.open_faults.entry(device.to_owned()).or_default();
                codes.insert(e.code.as_str().to_owned());
                self.condition_began(AlarmType::FaultOpen, device, stored);
                vec![]
            }
            DeviceEvent::FaultCleared(e) => {
                let codes = self.memory.open_faults.entry(device.to_owned()).or_default();
                codes.remove(e.code.as_str());
                if !codes.is_empty() {
                    return vec![];
                }
                self.memory.open_faults.remove(device);
                self.condition_ended(AlarmType::FaultOpen, device, at)
            }
            DeviceEvent::Decommissioned(_) => {
                self.memory.open_faults.remove(device);
                self.memory.counters.remove(device);
                let mut orders = self.condition_ended(AlarmType::DeviceOffline, device, at);
                orders.extend(self.condition_ended(AlarmType::FaultOpen, device, at));
                orders
            }
            _ => vec![],
        }
    }

    /// A skipped message counter: messages from the event's sender were lost on the way.
    fn on_counter(&mut self, device: &str, seq: u64, stored: &StoredEvent, history: bool) -> Option<Order> {
        let (last, lost) = self.memory.counters.entry(device.to_owned()).or_default();
        let (before, lost_before) = (*last, *lost);
        crate::domain::count_seq(last, lost, seq);
        let newly_lost = lost.saturating_sub(lost_before);
        if history || newly_lost == 0 {
            return None;
        }
        let sender = stored
            .actor
            .as_ref()
            .map_or_else(|| format!("device {device}"), |actor| actor.sender().to_owned());
        let trouble = Trouble {
            alarm_type: AlarmType::LostMessages,
            source: AlarmSource::Sender(sender.clone()),
            severity: Severity::Minor,
            zone: self.memory.zones.get(device).cloned(),
            detail: format!(
                "{newly_lost} message(s) for {device} from {sender} lost on the way: its seq went from {} to {seq}",
                before.map_or_else(|| "nothing".to_owned(), |n| n.to_string())
            ),
        };
        Some(self.raise(trouble, stored.recorded_at))
    }

    /// A zone's new count against its capacity: an over-capacity alarm raised, or ended.
    fn on_count(&mut self, zone: &str, count: u64, at: Timestamp, history: bool) -> Vec<Order> {
        let Some(capacity) = self.capacities.get(zone).copied() else {
            return vec![];
        };
        let key = (AlarmType::OverCapacity, AlarmSource::Zone(zone.to_owned()));
        let active = self.memory.alarms.get(&key).is_some_and(|known| known.active);
        match (count > capacity, active) {
            (true, false) if !history => {
                let trouble = Trouble {
                    alarm_type: AlarmType::OverCapacity,
                    source: AlarmSource::Zone(zone.to_owned()),
                    severity: Severity::Major,
                    zone: Some(zone.to_owned()),
                    detail: format!("{count} people in {zone}, more than its capacity of {capacity}"),
                };
                vec![self.raise(trouble, at)]
            }
            (false, true) => match self.memory.alarms.get_mut(&key) {
                Some(known) => {
                    known.active = false;
                    known.cleared_at = Some(at.as_microsecond());
                    vec![Order::to::<Alarm>(
                        AlarmNumber::new(known.number).to_string(),
                        AlarmCommand::ConditionEnded { at },
                    )]
                }
                None => vec![],
            },
            _ => vec![],
        }
    }

    fn on_device(&mut self, device: &str, event: &DeviceEvent, stored: &StoredEvent, history: bool) -> Vec<Order> {
        let mut orders = self.on_condition(device, event, stored);
        if let DeviceEvent::PassageRecorded(e) = event
            && !history
            && self
                .memory
                .watches
                .values()
                .any(|w| w.iter().any(|t| t.as_str() == device))
        {
            self.memory
                .rotations
                .entry(device.to_owned())
                .or_default()
                .push(RecentRotation {
                    at: e.at.as_microsecond(),
                    recorded: stored.recorded_at.as_microsecond(),
                    inward: e.direction == crate::domain::Direction::In,
                    identified: false,
                    position: stored.position,
                });
        }
        if let DeviceEvent::PassageRecorded(e) = event
            && let Some(zone) = self.memory.zones.get(device).cloned()
        {
            let count = self.memory.occupancy.rotation(&zone, e.direction);
            orders.extend(self.on_count(&zone, count, stored.recorded_at, history));
        }
        if let Some(seq) = event.seq() {
            orders.extend(self.on_counter(device, seq, stored, history));
        }
        orders.extend(self.on_moment(device, event, stored, history));
        orders
    }

    /// Trouble of one moment: a watched subject seen, a forced passage.
    fn on_moment(&mut self, device: &str, event: &DeviceEvent, stored: &StoredEvent, history: bool) -> Vec<Order> {
        match event {
            DeviceEvent::Commissioned(e) => {
                self.memory.zones.insert(device.to_owned(), e.details.zone.clone());
                if !e.watches.is_empty() {
                    self.memory.watches.insert(device.to_owned(), e.watches.clone());
                }
                vec![]
            }
            DeviceEvent::WatchesChanged(e) => {
                self.memory.watches.insert(device.to_owned(), e.watches.clone());
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
        if let Some((device, details, watches)) = super::carried_device(event) {
            self.memory.zones.insert(device.to_owned(), details.zone);
            if !watches.is_empty() {
                self.memory.watches.insert(device.to_owned(), watches);
            }
            return Ok(vec![]);
        }
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
            AnyEvent::Presence(crate::domain::PresenceEvent::PassageIdentified(e)) => {
                let at = e.at.as_microsecond();
                if let Some(rotation) = self
                    .memory
                    .rotations
                    .get_mut(e.turnstile.as_str())
                    .and_then(|recent| recent.iter_mut().find(|r| r.at == at && !r.identified))
                {
                    rotation.identified = true;
                }
            }
            AnyEvent::Occupancy(occupancy) => {
                let mut orders = Vec::new();
                for (zone, count) in self.memory.occupancy.apply(occupancy) {
                    orders.extend(self.on_count(&zone, count, event.recorded_at, history));
                }
                return Ok(orders);
            }
            _ => {}
        }
        Ok(vec![])
    }

    fn ticks(&self) -> bool {
        true
    }

    fn due(&mut self, moment: &Moment) -> Vec<Due> {
        let now = moment.now;
        let mut due = Vec::new();
        let ripe: Vec<((AlarmType, String), Began)> = self
            .memory
            .pending
            .iter()
            .filter(|((alarm_type, _), began)| {
                now.as_microsecond().saturating_sub(began.at) >= self.lasts_long_after(*alarm_type).as_micros() as i64
            })
            .map(|(key, began)| (key.clone(), *began))
            .collect();
        for ((alarm_type, device), began) in ripe {
            self.memory.pending.remove(&(alarm_type, device.clone()));
            let Ok(id) = DeviceId::parse(&device) else { continue };
            let since = Timestamp::from_microsecond(began.at).unwrap_or(now);
            let shown_since = since.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M:%S");
            let detail = match alarm_type {
                AlarmType::DeviceOffline => format!("{device} offline since {shown_since}"),
                _ => {
                    let codes = self.memory.open_faults.get(&device).cloned().unwrap_or_default();
                    let codes: Vec<String> = codes.into_iter().collect();
                    format!(
                        "{device} has had a fault open since {shown_since}: {}",
                        codes.join(", ")
                    )
                }
            };
            let trouble = Trouble {
                alarm_type,
                source: AlarmSource::Device(id),
                severity: Severity::Major,
                zone: self.memory.zones.get(&device).cloned(),
                detail,
            };
            let at = since.saturating_add(self.lasts_long_after(alarm_type)).unwrap_or(now);
            let key = format!("{}@{}", alarm_type.as_str(), began.position);
            due.push(Due {
                key,
                order: self.raise(trouble, at),
            });
        }
        due.extend(self.tailgating(now));
        for flood in &moment.recent_dead_letters {
            if flood.count < self.dead_letter_rate {
                continue;
            }
            let retold_after = now.as_microsecond() - DEAD_LETTERS_RETOLD.as_micros() as i64;
            if let Some((last_id, at)) = self.memory.dead_letters_told.get(&flood.sender)
                && (flood.last_id <= *last_id || *at > retold_after)
            {
                continue;
            }
            self.memory
                .dead_letters_told
                .insert(flood.sender.clone(), (flood.last_id, now.as_microsecond()));
            let trouble = Trouble {
                alarm_type: AlarmType::DeadLetterFlood,
                source: AlarmSource::Sender(flood.sender.clone()),
                severity: Severity::Minor,
                zone: None,
                detail: format!(
                    "{} dead letters from {} in the last minute: it sends messages Gatehouse cannot read \
                     (see /admin/dead-letters)",
                    flood.count, flood.sender
                ),
            };
            due.push(Due {
                key: format!("dead_letters@{}", flood.last_id),
                order: self.raise(trouble, now),
            });
        }
        due
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
    use crate::policy::SenderDeadLetters;

    fn policy() -> AlarmPolicy {
        AlarmPolicy {
            min_confidence: 0.8,
            reopen_within: SignedDuration::from_mins(10),
            offline_after: SignedDuration::from_mins(5),
            fault_open_after: SignedDuration::from_mins(15),
            dead_letter_rate: 20,
            tailgate_window: SignedDuration::from_secs(2),
            match_window: SignedDuration::from_secs(3),
            capacities: BTreeMap::from([("Hall A".to_owned(), 2)]),
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
            subject: Subject::parse(subject).unwrap(),
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
            subject: Some(Subject::parse(subject).unwrap()),
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
    fn a_devices_carried_forward_state_teaches_its_zone_and_watches_as_its_commissioning_did() {
        // After archival a policy that starts over meets this where the camera's commissioning used to be.
        let mut policy = policy();
        let mut state = crate::domain::CameraState::default();
        state.common.details.zone = "Hall B".into();
        state.watches = vec![DeviceId::parse("T7").unwrap()];
        let carried = crate::codec::CarriedForward {
            of: "camera".into(),
            state_schema: <crate::domain::Camera as crate::domain::Aggregate>::STATE_SCHEMA,
            at: Timestamp::now(),
            state: crate::codec::encode_state(&state).1,
        };
        let event = stored(5, "C1", Timestamp::now(), AnyEvent::Carried(carried));
        assert!(policy.react(&event).unwrap().is_empty());
        assert_eq!(policy.memory.zones.get("C1").map(String::as_str), Some("Hall B"));
        assert_eq!(
            policy.memory.watches.get("C1").map(Vec::as_slice),
            Some(&[DeviceId::parse("T7").unwrap()][..])
        );
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

    fn device_event(
        policy: &mut AlarmPolicy,
        position: u64,
        device: &str,
        at: Timestamp,
        event: DeviceEvent,
    ) -> Vec<String> {
        let orders = policy
            .react(&stored(position, device, at, AnyEvent::Device(event)))
            .unwrap();
        orders.iter().map(|o| o.describe.clone()).collect()
    }

    fn tick(policy: &mut AlarmPolicy, now: Timestamp, dead_letters: Vec<SenderDeadLetters>) -> Vec<(String, String)> {
        let moment = Moment {
            now,
            recent_dead_letters: dead_letters,
        };
        policy
            .due(&moment)
            .into_iter()
            .map(|due| (due.key, due.order.describe))
            .collect()
    }

    #[test]
    fn a_device_offline_past_offline_after_raises_a_major_alarm_that_ends_when_it_is_back() {
        use crate::domain::{CameOnline, WentOffline};
        let mut policy = policy();
        let start = Timestamp::now();
        device_event(
            &mut policy,
            7,
            "T1",
            start,
            DeviceEvent::WentOffline(WentOffline { at: start }),
        );
        assert!(tick(&mut policy, start + SignedDuration::from_mins(4), vec![]).is_empty());
        let due = tick(&mut policy, start + SignedDuration::from_mins(5), vec![]);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].0, "device_offline@7");
        assert!(due[0].1.contains("Raise") && due[0].1.contains("DeviceOffline") && due[0].1.contains("Major"));
        assert!(
            tick(&mut policy, start + SignedDuration::from_mins(9), vec![]).is_empty(),
            "raised once"
        );
        let back = start + SignedDuration::from_mins(10);
        let ended = device_event(
            &mut policy,
            8,
            "T1",
            back,
            DeviceEvent::CameOnline(CameOnline { at: back }),
        );
        assert!(
            ended[0].contains("ConditionEnded") && ended[0].contains("A-000001"),
            "{ended:?}"
        );

        // Offline briefly: back before offline_after, no alarm.
        device_event(
            &mut policy,
            9,
            "T2",
            start,
            DeviceEvent::WentOffline(WentOffline { at: start }),
        );
        device_event(
            &mut policy,
            10,
            "T2",
            start,
            DeviceEvent::CameOnline(CameOnline { at: start }),
        );
        assert!(tick(&mut policy, start + SignedDuration::from_hours(1), vec![]).is_empty());
    }

    #[test]
    fn a_fault_open_past_fault_open_after_raises_an_alarm_until_every_fault_clears() {
        use crate::domain::{FaultCleared, FaultCode, FaultReported};
        let mut policy = policy();
        let start = Timestamp::now();
        let fault = |code: &str| {
            DeviceEvent::FaultReported(FaultReported {
                code: FaultCode::parse(code).unwrap(),
                detail: "jammed".into(),
                at: start,
                seq: None,
            })
        };
        let cleared = |code: &str| {
            DeviceEvent::FaultCleared(FaultCleared {
                code: FaultCode::parse(code).unwrap(),
                at: start,
                seq: None,
            })
        };
        device_event(&mut policy, 3, "T1", start, fault("JAM"));
        device_event(&mut policy, 4, "T1", start, fault("POWER"));
        let due = tick(&mut policy, start + SignedDuration::from_mins(15), vec![]);
        assert_eq!(due[0].0, "fault_open@3", "{due:?}");
        assert!(due[0].1.contains("JAM, POWER"), "{due:?}");
        assert!(
            device_event(&mut policy, 5, "T1", start, cleared("JAM")).is_empty(),
            "POWER still open"
        );
        let ended = device_event(&mut policy, 6, "T1", start, cleared("POWER"));
        assert!(ended[0].contains("ConditionEnded"), "{ended:?}");
    }

    #[test]
    fn a_skipped_counter_raises_lost_messages_on_its_sender() {
        use crate::domain::MessageCounted;
        let mut policy = policy();
        let now = Timestamp::now();
        let counted = |seq| DeviceEvent::MessageCounted(MessageCounted { seq, at: now });
        assert!(device_event(&mut policy, 1, "T1", now, counted(1)).is_empty());
        assert!(device_event(&mut policy, 2, "T1", now, counted(2)).is_empty());
        let lost = device_event(&mut policy, 3, "T1", now, counted(6));
        assert!(
            lost[0].contains("LostMessages") && lost[0].contains("gateway:test"),
            "{lost:?}"
        );
        assert!(lost[0].contains("3 message(s)"), "{lost:?}");
        let again = device_event(&mut policy, 4, "T1", now, counted(9));
        assert!(
            again[0].contains("Trigger") && again[0].contains("A-000001"),
            "{again:?}"
        );
    }

    #[test]
    fn dead_letters_at_the_rate_raise_one_alarm_retold_at_most_once_a_minute() {
        let mut policy = policy();
        let now = Timestamp::now();
        let flood = |count, last_id| {
            vec![SenderDeadLetters {
                sender: "gateway:pi-3".into(),
                count,
                last_id,
            }]
        };
        assert!(tick(&mut policy, now, flood(19, 19)).is_empty(), "below the rate");
        let due = tick(&mut policy, now, flood(20, 20));
        assert_eq!(due[0].0, "dead_letters@20");
        assert!(
            due[0].1.contains("DeadLetterFlood") && due[0].1.contains("Minor"),
            "{due:?}"
        );
        assert!(tick(&mut policy, now + SignedDuration::from_secs(5), flood(25, 25)).is_empty());
        let later = tick(&mut policy, now + SignedDuration::from_secs(61), flood(40, 40));
        assert!(later[0].1.contains("Trigger"), "{later:?}");
        assert!(
            tick(&mut policy, now + SignedDuration::from_secs(200), flood(40, 40)).is_empty(),
            "nothing new"
        );
    }

    #[test]
    fn a_zone_over_its_capacity_raises_an_alarm_that_ends_when_people_leave() {
        use crate::domain::{Direction, PassageRecorded};
        let mut policy = policy();
        policy.memory.zones.insert("T1".into(), "Hall A".into());
        let now = Timestamp::now();
        let pass = |direction| {
            DeviceEvent::PassageRecorded(PassageRecorded {
                direction,
                at: now,
                during_fault: false,
                during_lockout: false,
                seq: None,
            })
        };
        assert!(device_event(&mut policy, 1, "T1", now, pass(Direction::In)).is_empty());
        assert!(
            device_event(&mut policy, 2, "T1", now, pass(Direction::In)).is_empty(),
            "at capacity (2)"
        );
        let over = device_event(&mut policy, 3, "T1", now, pass(Direction::In));
        assert!(
            over[0].contains("OverCapacity") && over[0].contains("3 people in Hall A"),
            "{over:?}"
        );
        assert!(
            device_event(&mut policy, 4, "T1", now, pass(Direction::In)).is_empty(),
            "one alarm"
        );
        assert!(
            device_event(&mut policy, 5, "T1", now, pass(Direction::Out)).is_empty(),
            "3: still over"
        );
        let back = device_event(&mut policy, 6, "T1", now, pass(Direction::Out));
        assert!(back[0].contains("ConditionEnded"), "{back:?}");
    }

    #[test]
    fn a_burst_of_rotations_with_at_most_one_face_is_tailgating_once_late_faces_cannot_change_it() {
        use crate::domain::presence::{PassageIdentified, PresenceEvent};
        use crate::domain::{Confidence, Direction, PassageRecorded};
        let mut policy = policy();
        policy.memory.watches.insert(
            "C1".into(),
            vec![DeviceId::parse("T1").unwrap(), DeviceId::parse("T2").unwrap()],
        );
        let start = Timestamp::now();
        let secs = |s: i64| start + SignedDuration::from_secs(s);
        let pass = |policy: &mut AlarmPolicy, position, device: &str, at: Timestamp| {
            let event = DeviceEvent::PassageRecorded(PassageRecorded {
                direction: Direction::In,
                at,
                during_fault: false,
                during_lockout: false,
                seq: None,
            });
            device_event(policy, position, device, start, event)
        };
        let identified = |policy: &mut AlarmPolicy, turnstile: &str, at: Timestamp| {
            let event = AnyEvent::Presence(PresenceEvent::PassageIdentified(PassageIdentified {
                subject: Subject::parse("P-1").unwrap(),
                turnstile: DeviceId::parse(turnstile).unwrap(),
                camera: DeviceId::parse("C1").unwrap(),
                zone: "Hall A".into(),
                direction: Direction::In,
                confidence: Confidence::new(0.9).unwrap(),
                at,
            }));
            policy
                .react(&stored(
                    99,
                    "presence:ps-00000000000000000000000000000001",
                    start,
                    event,
                ))
                .unwrap();
        };
        // T1: two in within 2 s, one of them identified. T2: two in, both identified. T1 later: 5 s apart.
        pass(&mut policy, 1, "T1", secs(0));
        pass(&mut policy, 2, "T1", secs(1));
        identified(&mut policy, "T1", secs(0));
        pass(&mut policy, 3, "T2", secs(0));
        pass(&mut policy, 4, "T2", secs(1));
        identified(&mut policy, "T2", secs(0));
        identified(&mut policy, "T2", secs(1));
        pass(&mut policy, 5, "T1", secs(10));
        pass(&mut policy, 6, "T1", secs(15));
        assert!(
            tick(&mut policy, start + SignedDuration::from_secs(5), vec![]).is_empty(),
            "not settled yet"
        );
        let due = tick(&mut policy, start + SignedDuration::from_secs(16), vec![]);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].0, "tailgating@1");
        assert!(
            due[0].1.contains("Tailgating") && due[0].1.contains("2 rotations in on T1"),
            "{due:?}"
        );
        assert!(
            tick(&mut policy, start + SignedDuration::from_secs(60), vec![]).is_empty(),
            "decided once"
        );
    }
}
