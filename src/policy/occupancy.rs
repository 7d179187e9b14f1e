//! The occupancy policy: resets every zone's count at `[occupancy] reset_at` site time, once per local day, by
//! recording `OccupancyReset` on `occupancy:site` (so a replay gives the same numbers). A server that was down at
//! the reset time makes it up when it is back the same day; a first start records nothing for the day it starts.

use super::{Due, Moment, Order, Policy};
use crate::codec::AnyEvent;
use crate::domain::Occupancy;
use crate::domain::occupancy::{OccupancyCommand, OccupancyEvent};
use crate::journal::StoredEvent;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

const MEMORY_SCHEMA: u32 = 1;

pub struct OccupancyPolicy {
    reset_at: Time,
    tz: TimeZone,
    memory: Memory,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    /// The local day of the latest reset, or of the first start (which resets nothing).
    last_reset: Option<Date>,
}

impl OccupancyPolicy {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            reset_at: config.occupancy.reset_at,
            tz: config.site.timezone.clone(),
            memory: Memory::default(),
        }
    }
}

impl Policy for OccupancyPolicy {
    fn name(&self) -> &'static str {
        "occupancy"
    }

    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String> {
        if let AnyEvent::Occupancy(OccupancyEvent::Reset(e)) = &event.event {
            self.memory.last_reset = Some(self.memory.last_reset.map_or(e.day, |last| last.max(e.day)));
        }
        Ok(vec![])
    }

    fn ticks(&self) -> bool {
        true
    }

    fn due(&mut self, moment: &Moment) -> Vec<Due> {
        let local = moment.now.to_zoned_datetime(self.tz.clone());
        let today = local.date();
        // Before today's reset time, the day to have reset is yesterday's.
        let due_day = if local.time() >= self.reset_at {
            today
        } else {
            match today.yesterday() {
                Ok(day) => day,
                Err(_) => return vec![],
            }
        };
        match self.memory.last_reset {
            Some(last) if last >= due_day => vec![],
            None => {
                self.memory.last_reset = Some(due_day);
                vec![]
            }
            Some(_) => {
                self.memory.last_reset = Some(due_day);
                vec![Due {
                    key: format!("reset@{due_day}"),
                    order: Order::to::<Occupancy>(
                        Occupancy::ID,
                        OccupancyCommand::Reset {
                            day: due_day,
                            at: moment.now,
                        },
                    ),
                }]
            }
        }
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
    use jiff::Timestamp;

    fn policy() -> OccupancyPolicy {
        OccupancyPolicy {
            reset_at: Time::constant(3, 0, 0, 0),
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            memory: Memory::default(),
        }
    }

    fn tick(policy: &mut OccupancyPolicy, now: &str) -> Vec<String> {
        let moment = Moment {
            now: now.parse::<Timestamp>().unwrap(),
            recent_dead_letters: vec![],
        };
        policy.due(&moment).into_iter().map(|due| due.key).collect()
    }

    #[test]
    fn resets_once_a_day_at_reset_at_site_time_and_a_first_start_resets_nothing() {
        let mut policy = policy();
        assert!(tick(&mut policy, "2026-12-01T10:00:00Z").is_empty(), "first start");
        // 02:59 Berlin on the 2nd is 01:59Z: not yet.
        assert!(tick(&mut policy, "2026-12-02T01:59:00Z").is_empty());
        assert_eq!(tick(&mut policy, "2026-12-02T02:00:00Z"), ["reset@2026-12-02"]);
        assert!(tick(&mut policy, "2026-12-02T02:00:01Z").is_empty(), "once");
        // Down over the 3rd's reset time, back at 09:00: made up.
        assert_eq!(tick(&mut policy, "2026-12-03T08:00:00Z"), ["reset@2026-12-03"]);
    }
}
