//! Occupancy: how many people are in each zone, counted from its turnstiles (in minus out, never below zero).
//! One aggregate for the site (`occupancy:site`) records what is not a rotation: the daily reset at
//! `[occupancy] reset_at` (once per local day, so a replay gives the same numbers) and a manager's correction of
//! one zone's count, with the reason. [`Counts`] folds rotations, resets and corrections for a policy's memory;
//! the `occupancy` projector applies the same rules in SQL.

use super::Direction;
use super::aggregate::{Aggregate, DomainEvent};
use super::time::timestamp;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub struct Occupancy;

impl Occupancy {
    /// The one instance's id: its stream is `occupancy:site`.
    pub const ID: &'static str = "site";
}

#[derive(Debug, Clone, PartialEq)]
pub enum OccupancyCommand {
    /// The daily reset of local day `day`; a second one for the same day changes nothing.
    Reset { day: Date, at: Timestamp },
    /// A manager sets a zone's count.
    Correct {
        zone: String,
        count: u64,
        reason: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccupancyReset {
    pub day: Date,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccupancyCorrected {
    pub zone: String,
    pub count: u64,
    pub reason: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OccupancyEvent {
    Reset(OccupancyReset),
    Corrected(OccupancyCorrected),
}

impl DomainEvent for OccupancyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OccupancyEvent::Reset(_) => "OccupancyReset",
            OccupancyEvent::Corrected(_) => "OccupancyCorrected",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            OccupancyEvent::Reset(e) => e.at,
            OccupancyEvent::Corrected(e) => e.at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OccupancyRejection {
    #[error("a correction needs a reason")]
    NoReason,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OccupancyState {
    /// The local day of the latest reset.
    pub last_reset: Option<Date>,
}

impl Aggregate for Occupancy {
    const KIND: &'static str = "occupancy";
    const STATE_SCHEMA: u32 = 1;
    type Command = OccupancyCommand;
    type Event = OccupancyEvent;
    type State = OccupancyState;
    type Rejection = OccupancyRejection;

    fn decide(state: &OccupancyState, command: &OccupancyCommand) -> Result<Vec<OccupancyEvent>, OccupancyRejection> {
        match command {
            OccupancyCommand::Reset { day, .. } if state.last_reset.is_some_and(|last| last >= *day) => Ok(vec![]),
            OccupancyCommand::Reset { day, at } => {
                Ok(vec![OccupancyEvent::Reset(OccupancyReset { day: *day, at: *at })])
            }
            OccupancyCommand::Correct { reason, .. } if reason.trim().is_empty() => Err(OccupancyRejection::NoReason),
            OccupancyCommand::Correct {
                zone,
                count,
                reason,
                at,
            } => Ok(vec![OccupancyEvent::Corrected(OccupancyCorrected {
                zone: zone.clone(),
                count: *count,
                reason: reason.trim().to_owned(),
                at: *at,
            })]),
        }
    }

    fn evolve(mut state: OccupancyState, event: &OccupancyEvent) -> OccupancyState {
        if let OccupancyEvent::Reset(e) = event {
            state.last_reset = Some(state.last_reset.map_or(e.day, |last| last.max(e.day)));
        }
        state
    }
}

/// Each zone's count as rotations, resets and corrections leave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    zones: BTreeMap<String, u64>,
}

impl Counts {
    /// A rotation of a turnstile in `zone`; returns the zone's new count. Out of an empty zone stays at zero.
    pub fn rotation(&mut self, zone: &str, direction: Direction) -> u64 {
        let count = self.zones.entry(zone.to_owned()).or_default();
        *count = match direction {
            Direction::In => count.saturating_add(1),
            Direction::Out => count.saturating_sub(1),
        };
        *count
    }

    /// Applies a reset or a correction; returns the zones whose count it set, with their counts.
    pub fn apply(&mut self, event: &OccupancyEvent) -> Vec<(String, u64)> {
        match event {
            OccupancyEvent::Reset(_) => {
                let zones: Vec<String> = self.zones.keys().cloned().collect();
                self.zones.values_mut().for_each(|count| *count = 0);
                zones.into_iter().map(|zone| (zone, 0)).collect()
            }
            OccupancyEvent::Corrected(e) => {
                self.zones.insert(e.zone.clone(), e.count);
                vec![(e.zone.clone(), e.count)]
            }
        }
    }

    pub fn get(&self, zone: &str) -> u64 {
        self.zones.get(zone).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        "2026-12-01T03:00:00Z".parse().unwrap()
    }

    #[test]
    fn in_minus_out_never_goes_below_zero_and_a_reset_or_correction_sets_it() {
        let mut counts = Counts::default();
        assert_eq!(counts.rotation("Hall A", Direction::Out), 0);
        counts.rotation("Hall A", Direction::In);
        counts.rotation("Hall A", Direction::In);
        assert_eq!(counts.rotation("Hall A", Direction::Out), 1);
        counts.rotation("Hall B", Direction::In);
        let reset = OccupancyEvent::Reset(OccupancyReset {
            day: "2026-12-01".parse().unwrap(),
            at: at(),
        });
        assert_eq!(
            counts.apply(&reset),
            [("Hall A".to_owned(), 0), ("Hall B".to_owned(), 0)]
        );
        let corrected = OccupancyEvent::Corrected(OccupancyCorrected {
            zone: "Hall A".into(),
            count: 12,
            reason: "headcount".into(),
            at: at(),
        });
        counts.apply(&corrected);
        assert_eq!(counts.get("Hall A"), 12);
    }

    #[test]
    fn a_day_is_reset_once_and_a_correction_needs_a_reason() {
        let day: Date = "2026-12-01".parse().unwrap();
        let state = OccupancyState::default();
        let events = Occupancy::decide(&state, &OccupancyCommand::Reset { day, at: at() }).unwrap();
        let state = Occupancy::evolve(state, &events[0]);
        assert!(
            Occupancy::decide(&state, &OccupancyCommand::Reset { day, at: at() })
                .unwrap()
                .is_empty()
        );
        let refused = Occupancy::decide(
            &state,
            &OccupancyCommand::Correct {
                zone: "Hall A".into(),
                count: 3,
                reason: " ".into(),
                at: at(),
            },
        );
        assert_eq!(refused, Err(OccupancyRejection::NoReason));
    }
}
