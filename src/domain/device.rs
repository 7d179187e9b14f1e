//! What turnstiles and cameras have in common: lifecycle, details, availability and open faults, with the rules
//! for the commands that concern them. Each kind's aggregate embeds [`Common`] and delegates to it.

use super::aggregate::DomainEvent;
use super::command::{DeviceCommand, Rejection};
use super::event::*;
use super::ids::{DeviceDetails, DeviceKind};
use super::time::{option_timestamp, timestamp};
use super::values::FaultCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// No `Commissioned` event yet.
    #[default]
    Uncommissioned,
    Active,
    Decommissioned,
}

/// Whether the device is reachable, as far as its messages tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Commissioned but never heard from.
    #[default]
    Unknown,
    Online {
        #[serde(with = "timestamp")]
        since: Timestamp,
    },
    Offline {
        #[serde(with = "timestamp")]
        since: Timestamp,
    },
}

impl Availability {
    pub fn is_online(&self) -> bool {
        matches!(self, Availability::Online { .. })
    }

    /// `online`, `offline` or `unknown`, as read tables and pages show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Availability::Unknown => "unknown",
            Availability::Online { .. } => "online",
            Availability::Offline { .. } => "offline",
        }
    }
}

/// A malfunction the unit reported and has not yet reported cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFault {
    pub detail: String,
    #[serde(with = "timestamp")]
    pub since: Timestamp,
}

/// The state every device kind shares.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Common {
    pub lifecycle: Lifecycle,
    pub details: DeviceDetails,
    pub availability: Availability,
    pub open_faults: BTreeMap<FaultCode, OpenFault>,
    #[serde(with = "option_timestamp")]
    pub last_event_at: Option<Timestamp>,
    /// The highest message counter (`seq`) the device's gateway has sent so far.
    pub last_seq: Option<u64>,
    /// Messages the counter says were sent but never arrived (jumps in `seq`, less late arrivals).
    pub lost_messages: u64,
    /// Journal positions of this device's facts a manager voided (each may be voided once).
    pub voided: std::collections::BTreeSet<u64>,
}

/// A counter that falls back by more than this is a gateway that restarted its count, not a late message.
const SEQ_RESTART_GAP: u64 = 1000;

/// What [`Common::decide`] concluded about a command.
pub(super) enum Decision {
    /// The command was refused.
    Reject(Rejection),
    /// The command is a shared one; these are its events.
    Events(Vec<DeviceEvent>),
    /// The command is the kind's own business; `prefix` holds events that must come first (coming online).
    KindSpecific { prefix: Vec<DeviceEvent> },
}

impl Common {
    /// Rules every kind follows. `watches_now` is a camera's current watch list (empty for turnstiles).
    pub(super) fn decide(
        &self,
        kind: DeviceKind,
        watches_now: &[super::ids::DeviceId],
        command: &DeviceCommand,
    ) -> Decision {
        use DeviceCommand as C;
        match (self.lifecycle, command) {
            (Lifecycle::Uncommissioned | Lifecycle::Decommissioned, C::Commission { details, watches, at }) => {
                Decision::Events(vec![DeviceEvent::Commissioned(Commissioned {
                    kind,
                    details: details.clone(),
                    watches: watches.clone(),
                    at: *at,
                })])
            }
            (Lifecycle::Active, C::Commission { .. }) => Decision::Reject(Rejection::AlreadyCommissioned),
            // A decommissioned device's history can still be corrected.
            (
                Lifecycle::Active | Lifecycle::Decommissioned,
                C::VoidFact {
                    position,
                    fact,
                    reason,
                    at,
                },
            ) => self.decide_void(kind, *position, fact, reason, *at),
            (Lifecycle::Uncommissioned, _) => Decision::Reject(Rejection::NotCommissioned),
            (Lifecycle::Decommissioned, _) => Decision::Reject(Rejection::Decommissioned),
            (Lifecycle::Active, command) => self.decide_active(watches_now, command),
        }
    }

    fn decide_void(&self, kind: DeviceKind, position: u64, fact: &VoidedFact, reason: &str, at: Timestamp) -> Decision {
        let fits = matches!(
            (kind, fact),
            (DeviceKind::Turnstile, VoidedFact::Passage { .. }) | (DeviceKind::Camera, VoidedFact::Recognition { .. })
        );
        if !fits {
            return Decision::Reject(Rejection::WrongKind {
                kind,
                command: "void a fact it did not record",
            });
        }
        if self.voided.contains(&position) {
            return Decision::Reject(Rejection::AlreadyVoided(position));
        }
        Decision::Events(vec![DeviceEvent::FactVoided(FactVoided {
            position,
            fact: fact.clone(),
            reason: reason.to_owned(),
            at,
        })])
    }

    fn decide_active(&self, watches_now: &[super::ids::DeviceId], command: &DeviceCommand) -> Decision {
        use DeviceCommand as C;
        let mut events = Vec::new();
        // Any message the device sent proves it is reachable: record that first, so the journal reads in order.
        if command.is_sign_of_life() && !self.availability.is_online() {
            events.push(DeviceEvent::CameOnline(CameOnline {
                at: command_time(command),
            }));
        }
        match command {
            C::Commission { .. } => unreachable!("handled in decide"),
            C::Reconfigure { details, watches, at } => {
                if *details != self.details {
                    events.push(DeviceEvent::DetailsChanged(DetailsChanged {
                        details: details.clone(),
                        at: *at,
                    }));
                }
                if watches.as_slice() != watches_now {
                    events.push(DeviceEvent::WatchesChanged(WatchesChanged {
                        watches: watches.clone(),
                        at: *at,
                    }));
                }
            }
            C::Decommission { at } => events.push(DeviceEvent::Decommissioned(Decommissioned { at: *at })),
            C::ReportFault { code, detail, at, seq } => {
                // A unit repeats a fault until it is fixed; only the first report opens an episode.
                if !self.open_faults.contains_key(code) {
                    events.push(DeviceEvent::FaultReported(FaultReported {
                        code: code.clone(),
                        detail: detail.clone(),
                        at: *at,
                        seq: *seq,
                    }));
                }
            }
            C::ClearFault { code, at, seq } => {
                if self.open_faults.contains_key(code) {
                    events.push(DeviceEvent::FaultCleared(FaultCleared {
                        code: code.clone(),
                        at: *at,
                        seq: *seq,
                    }));
                }
            }
            C::ReportAvailability { online, at } => match (online, self.availability) {
                (true, Availability::Online { .. }) | (false, Availability::Offline { .. }) => {}
                // A device that was never heard from is not "offline": it has nothing to lose contact with.
                (false, Availability::Unknown) => {}
                (true, _) => events.push(DeviceEvent::CameOnline(CameOnline { at: *at })),
                (false, _) => events.push(DeviceEvent::WentOffline(WentOffline { at: *at })),
            },
            C::RecordHeartbeat { .. } => {}
            C::VoidFact { .. } => unreachable!("handled in decide"),
            C::RecordPassage { .. } | C::LockOut { .. } | C::Unlock { .. } | C::RecordRecognition { .. } => {
                return Decision::KindSpecific { prefix: events };
            }
        }
        Decision::Events(events)
    }

    /// Applies the shared part of an event. Never fails: events are facts.
    pub(super) fn evolve(&mut self, event: &DeviceEvent) {
        self.last_event_at = Some(event.occurred_at());
        if let Some(seq) = event.seq() {
            self.count_seq(seq);
        }
        match event {
            DeviceEvent::Commissioned(e) => {
                self.lifecycle = Lifecycle::Active;
                self.details = e.details.clone();
            }
            DeviceEvent::DetailsChanged(e) => self.details = e.details.clone(),
            DeviceEvent::Decommissioned(_) => self.lifecycle = Lifecycle::Decommissioned,
            DeviceEvent::FaultReported(e) => {
                self.open_faults.insert(
                    e.code.clone(),
                    OpenFault {
                        detail: e.detail.clone(),
                        since: e.at,
                    },
                );
            }
            DeviceEvent::FaultCleared(e) => {
                self.open_faults.remove(&e.code);
            }
            DeviceEvent::WentOffline(e) => self.availability = Availability::Offline { since: e.at },
            DeviceEvent::CameOnline(e) => self.availability = Availability::Online { since: e.at },
            DeviceEvent::FactVoided(e) => {
                self.voided.insert(e.position);
            }
            DeviceEvent::WatchesChanged(_)
            | DeviceEvent::PassageRecorded(_)
            | DeviceEvent::LockedOut(_)
            | DeviceEvent::Unlocked(_)
            | DeviceEvent::RecognitionRecorded(_)
            | DeviceEvent::MessageCounted(_) => {}
        }
    }
}

impl Common {
    fn count_seq(&mut self, seq: u64) {
        count_seq(&mut self.last_seq, &mut self.lost_messages, seq);
    }
}

/// Follows a gateway's message counter: a jump past the next number counts the skipped ones as lost; a late one
/// arriving after the jump takes one back; a counter far below the last one restarted. The one rule for the
/// aggregate's state and the read tables alike.
pub fn count_seq(last_seq: &mut Option<u64>, lost: &mut u64, seq: u64) {
    match *last_seq {
        None => *last_seq = Some(seq),
        Some(last) if seq > last => {
            *lost += seq - last - 1;
            *last_seq = Some(seq);
        }
        Some(last) if last - seq > SEQ_RESTART_GAP => *last_seq = Some(seq),
        // The same number again is a repeat (no msg_id), not a loss; an older one is a late arrival.
        Some(last) if seq < last => *lost = lost.saturating_sub(1),
        Some(_) => {}
    }
}

/// Completes a decision on a device message that carries a `seq`: when none of its events carries the counter,
/// a [`MessageCounted`] does, so the next message is not taken for a jump.
pub(super) fn count_message(command: &DeviceCommand, mut events: Vec<DeviceEvent>) -> Vec<DeviceEvent> {
    if let Some(seq) = command.seq()
        && !events.iter().any(|e| e.seq().is_some())
    {
        events.push(DeviceEvent::MessageCounted(MessageCounted {
            seq,
            at: command_time(command),
        }));
    }
    events
}

/// The instant a command speaks of.
pub fn command_time(command: &DeviceCommand) -> Timestamp {
    use DeviceCommand as C;
    match command {
        C::Commission { at, .. }
        | C::Reconfigure { at, .. }
        | C::Decommission { at }
        | C::RecordPassage { at, .. }
        | C::ReportFault { at, .. }
        | C::ClearFault { at, .. }
        | C::LockOut { at, .. }
        | C::Unlock { at }
        | C::ReportAvailability { at, .. }
        | C::RecordHeartbeat { at }
        | C::RecordRecognition { at, .. }
        | C::VoidFact { at, .. } => *at,
    }
}
