//! `[identification]`, `[occupancy]` and `[[zone]]`: how faces and rotations are joined into identified passages,
//! when attendance days start and people stop being counted inside, when zone counts reset, and each zone's
//! capacity.

use super::errors::Problem;
use super::raw::{RawIdentification, RawOccupancy, RawZone};
use super::validate::duration;
use jiff::civil::Time;
use serde_spanned::Spanned;
use std::collections::HashSet;
use std::time::Duration;

const DEFAULT_MIN_CONFIDENCE: f64 = 0.8;
const DEFAULT_MATCH_WINDOW: Duration = Duration::from_secs(3);
const DEFAULT_PRESENCE_TIMEOUT: Duration = Duration::from_secs(16 * 3600);
const DEFAULT_TAILGATE_WINDOW: Duration = Duration::from_secs(2);
const DEFAULT_DAY_STARTS_AT: Time = Time::constant(4, 0, 0, 0);
const DEFAULT_RESET_AT: Time = Time::constant(3, 0, 0, 0);

/// `[identification]`: when a camera's recognition counts as knowing who it saw, and who passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentificationConfig {
    /// Recognitions below this confidence identify nobody (and raise no watch-list alarm).
    pub min_confidence: f64,
    /// A recognition this close (either way) to a passage on a turnstile its camera watches identifies it.
    pub match_window: Duration,
    /// Attendance days start at this site time, so a night shift is one day.
    pub day_starts_at: Time,
    /// Someone not seen for this long is no longer counted inside.
    pub presence_timeout: Duration,
    /// Rotations this close in one direction on one turnstile with at most one face: a tailgating suspicion.
    pub tailgate_window: Duration,
}

impl Default for IdentificationConfig {
    fn default() -> Self {
        IdentificationConfig {
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            match_window: DEFAULT_MATCH_WINDOW,
            day_starts_at: DEFAULT_DAY_STARTS_AT,
            presence_timeout: DEFAULT_PRESENCE_TIMEOUT,
            tailgate_window: DEFAULT_TAILGATE_WINDOW,
        }
    }
}

/// `[occupancy]`: zone counts are set to 0 at `reset_at` site time every day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OccupancyConfig {
    pub reset_at: Time,
}

/// One `[[zone]]`: facts about a zone the devices name.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    pub name: String,
    /// Occupancy above this is a suspicion (and an alarm).
    pub capacity: Option<u32>,
}

pub(super) fn build_identification(raw: RawIdentification) -> Result<IdentificationConfig, Problem> {
    let defaults = IdentificationConfig::default();
    let optional = |value: Option<Spanned<String>>, default, key| match value {
        None => Ok(default),
        Some(value) => duration(&value, key),
    };
    Ok(IdentificationConfig {
        min_confidence: match raw.min_confidence {
            None => defaults.min_confidence,
            Some(value) if (0.0..=1.0).contains(value.get_ref()) => *value.get_ref(),
            Some(value) => {
                return Err(Problem::at(
                    value.span(),
                    format!("min_confidence {} is outside 0..=1", value.get_ref()),
                ));
            }
        },
        match_window: optional(raw.match_window, defaults.match_window, "match_window")?,
        day_starts_at: optional_clock(raw.day_starts_at, defaults.day_starts_at, "day_starts_at")?,
        presence_timeout: optional(raw.presence_timeout, defaults.presence_timeout, "presence_timeout")?,
        tailgate_window: optional(raw.tailgate_window, defaults.tailgate_window, "tailgate_window")?,
    })
}

pub(super) fn build_occupancy(raw: RawOccupancy) -> Result<OccupancyConfig, Problem> {
    Ok(OccupancyConfig {
        reset_at: optional_clock(raw.reset_at, DEFAULT_RESET_AT, "reset_at")?,
    })
}

/// The `[[zone]]` tables; each must name a zone some device is in, once.
pub(super) fn build_zones(raw: Vec<RawZone>, device_zones: &HashSet<&str>) -> Result<Vec<ZoneConfig>, Problem> {
    let mut zones: Vec<ZoneConfig> = Vec::new();
    for zone in raw {
        let name = zone.name.get_ref().trim().to_owned();
        if !device_zones.contains(name.as_str()) {
            return Err(Problem::at(
                zone.name.span(),
                format!("no device is in zone {name:?}: a [[zone]] describes a zone the devices name"),
            ));
        }
        if zones.iter().any(|z| z.name == name) {
            return Err(Problem::at(
                zone.name.span(),
                format!("zone {name:?} is described twice"),
            ));
        }
        let capacity = match zone.capacity {
            None => None,
            Some(value) => Some(u32::try_from(*value.get_ref()).ok().filter(|c| *c > 0).ok_or_else(|| {
                Problem::at(
                    value.span(),
                    format!(
                        "invalid capacity {}: expected a whole number of at least 1",
                        value.get_ref()
                    ),
                )
            })?),
        };
        zones.push(ZoneConfig { name, capacity });
    }
    Ok(zones)
}

fn optional_clock(value: Option<Spanned<String>>, default: Time, key: &str) -> Result<Time, Problem> {
    match value {
        None => Ok(default),
        Some(value) => clock_time(value.get_ref()).ok_or_else(|| {
            Problem::at(
                value.span(),
                format!(
                    "invalid {key} {:?}: expected a site time like \"04:00\"",
                    value.get_ref()
                ),
            )
        }),
    }
}

/// `HH:MM` (24-hour) as a time of day.
pub(super) fn clock_time(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{error, parse};

    #[test]
    fn identification_and_occupancy_have_defaults_and_read_site_times() {
        let config = parse("").unwrap();
        assert_eq!(config.identification.match_window.as_secs(), 3);
        assert_eq!(config.identification.day_starts_at.to_string(), "04:00:00");
        assert_eq!(config.occupancy.reset_at.to_string(), "03:00:00");
        let config = parse(
            "[identification]\nmatch_window = \"5s\"\nday_starts_at = \"05:30\"\n[occupancy]\nreset_at = \"02:15\"\n",
        )
        .unwrap();
        assert_eq!(config.identification.match_window.as_secs(), 5);
        assert_eq!(config.identification.day_starts_at.to_string(), "05:30:00");
        assert_eq!(config.occupancy.reset_at.to_string(), "02:15:00");
        let problem = error("[occupancy]\nreset_at = \"3am\"\n");
        assert!(problem.contains("invalid reset_at \"3am\""), "{problem}");
    }

    #[test]
    fn a_zone_table_names_a_zone_of_the_devices_once() {
        let devices = "[[turnstile]]\nid = \"T1\"\nname = \"North\"\nzone = \"Hall A\"\n";
        let config = parse(&format!("{devices}[[zone]]\nname = \"Hall A\"\ncapacity = 400\n")).unwrap();
        assert_eq!(config.zones[0].capacity, Some(400));
        let problem = error(&format!("{devices}[[zone]]\nname = \"Hall Z\"\n"));
        assert!(problem.contains("no device is in zone \"Hall Z\""), "{problem}");
        let problem = error(&format!("{devices}[[zone]]\nname = \"Hall A\"\ncapacity = 0\n"));
        assert!(problem.contains("invalid capacity 0"), "{problem}");
    }
}
