//! `[[maintenance]]` tables: preventive maintenance schedules, each with an id, a 5-field cron in the site's
//! time zone, the devices it is for (`devices = [...]`, `zone = "..."` or `kind = "turnstile"`, exactly one) and
//! the task.

use serde_spanned::Spanned;
use std::collections::HashSet;

use super::errors::Problem;
use super::raw::RawMaintenance;
use super::{CameraConfig, MaintenanceConfig, TurnstileConfig};
use crate::domain::schedule::{ScheduleSpec, ScheduleTarget};
use crate::domain::{DeviceId, DeviceKind};
use crate::maintenance::cron::CronSchedule;

/// A schedule id: lowercase letters, digits and '-', 1 to 32 characters (it names the schedule's stream).
fn schedule_id(raw: &Spanned<String>) -> Result<String, Problem> {
    let id = raw.get_ref();
    let valid = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(id.clone())
    } else {
        Err(Problem::at(
            raw.span(),
            format!("invalid maintenance id {id:?}: 1 to 32 lowercase letters, digits and '-'"),
        ))
    }
}

pub(super) fn build_maintenance(
    raw: Vec<RawMaintenance>,
    turnstiles: &[TurnstileConfig],
    cameras: &[CameraConfig],
) -> Result<Vec<MaintenanceConfig>, Problem> {
    let known: HashSet<&str> = turnstiles
        .iter()
        .map(|t| t.id.as_str())
        .chain(cameras.iter().map(|c| c.id.as_str()))
        .collect();
    let zones: HashSet<&str> = turnstiles
        .iter()
        .map(|t| t.details.zone.as_str())
        .chain(cameras.iter().map(|c| c.details.zone.as_str()))
        .collect();
    let mut ids = HashSet::new();
    let mut schedules = Vec::with_capacity(raw.len());
    for table in raw {
        let id = schedule_id(&table.id)?;
        if !ids.insert(id.clone()) {
            return Err(Problem::at(table.id.span(), format!("duplicate maintenance id {id:?}")));
        }
        let cron = CronSchedule::parse(table.cron.get_ref())
            .map_err(|why| Problem::at(table.cron.span(), format!("maintenance {id:?}: {why}")))?;
        let target = match (table.devices, table.zone, table.kind) {
            (Some(devices), None, None) => {
                if devices.get_ref().is_empty() {
                    return Err(Problem::at(
                        devices.span(),
                        format!("maintenance {id:?}: devices is empty"),
                    ));
                }
                let mut ids = Vec::with_capacity(devices.get_ref().len());
                for device in devices.get_ref() {
                    let parsed = DeviceId::parse(device.get_ref())
                        .ok()
                        .filter(|d| known.contains(d.as_str()));
                    match parsed {
                        Some(parsed) if !ids.contains(&parsed) => ids.push(parsed),
                        Some(_) => {
                            return Err(Problem::at(
                                device.span(),
                                format!("maintenance {id:?} names device {:?} twice", device.get_ref()),
                            ));
                        }
                        None => {
                            return Err(Problem::at(
                                device.span(),
                                format!("maintenance {id:?} names unknown device {:?}", device.get_ref()),
                            ));
                        }
                    }
                }
                ScheduleTarget::Devices(ids)
            }
            (None, Some(zone), None) => {
                if !zones.contains(zone.get_ref().as_str()) {
                    return Err(Problem::at(
                        zone.span(),
                        format!("maintenance {id:?}: no device is in zone {:?}", zone.get_ref()),
                    ));
                }
                ScheduleTarget::Zone(zone.get_ref().clone())
            }
            (None, None, Some(kind)) => ScheduleTarget::Kind(match kind.get_ref().as_str() {
                "turnstile" => DeviceKind::Turnstile,
                "camera" => DeviceKind::Camera,
                other => {
                    return Err(Problem::at(
                        kind.span(),
                        format!("maintenance {id:?}: kind {other:?} is not \"turnstile\" or \"camera\""),
                    ));
                }
            }),
            _ => {
                return Err(Problem::at(
                    table.id.span(),
                    format!(
                        "maintenance {id:?} needs exactly one of devices = [...], zone = \"...\" or kind = \"...\""
                    ),
                ));
            }
        };
        let task = table.task.get_ref().trim();
        if task.is_empty() {
            return Err(Problem::at(
                table.task.span(),
                format!("maintenance {id:?}: task is empty"),
            ));
        }
        schedules.push(MaintenanceConfig {
            id,
            spec: ScheduleSpec {
                cron: cron.as_str().to_owned(),
                target,
                task: task.chars().take(200).collect(),
            },
            cron,
        });
    }
    Ok(schedules)
}

impl MaintenanceConfig {
    /// The devices the schedule is for now, as config.toml has them (in file order).
    pub fn devices(&self, turnstiles: &[TurnstileConfig], cameras: &[CameraConfig]) -> Vec<DeviceId> {
        let all = turnstiles
            .iter()
            .map(|t| (&t.id, DeviceKind::Turnstile, t.details.zone.as_str()))
            .chain(
                cameras
                    .iter()
                    .map(|c| (&c.id, DeviceKind::Camera, c.details.zone.as_str())),
            );
        match &self.spec.target {
            ScheduleTarget::Devices(ids) => ids.clone(),
            ScheduleTarget::Zone(zone) => all.filter(|(_, _, z)| z == zone).map(|(id, _, _)| id.clone()).collect(),
            ScheduleTarget::Kind(kind) => all.filter(|(_, k, _)| k == kind).map(|(id, _, _)| id.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const DEVICES: &str = "[[turnstile]]\nid = \"T1\"\nname = \"n\"\nzone = \"Hall A\"\n\n\
                           [[camera]]\nid = \"C1\"\nname = \"c\"\nzone = \"Hall B\"\n";

    fn parse(maintenance: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{DEVICES}\n{maintenance}"),
            "config.toml",
            std::path::Path::new("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_schedule_names_its_devices_by_list_zone_or_kind() {
        let config = parse(
            "[[maintenance]]\nid = \"a\"\ncron = \"0 6 * * MON\"\nzone = \"Hall A\"\ntask = \"clean\"\n\n\
             [[maintenance]]\nid = \"b\"\ncron = \"0 6 1 * *\"\nkind = \"camera\"\ntask = \"wipe\"\n\n\
             [[maintenance]]\nid = \"c\"\ncron = \"0 6 1 * *\"\ndevices = [\"C1\", \"T1\"]\ntask = \"all\"\n",
        )
        .unwrap();
        let devices = |i: usize| -> Vec<String> {
            config.maintenance[i]
                .devices(&config.turnstiles, &config.cameras)
                .iter()
                .map(|d| d.to_string())
                .collect()
        };
        assert_eq!(devices(0), ["T1"]);
        assert_eq!(devices(1), ["C1"]);
        assert_eq!(devices(2), ["C1", "T1"]);
    }

    #[test]
    fn mistakes_in_a_schedule_point_at_the_line() {
        let table = |body: &str| parse(&format!("[[maintenance]]\nid = \"a\"\ntask = \"t\"\n{body}"));
        let error = table("cron = \"0 6 * *\"\nzone = \"Hall A\"\n").unwrap_err();
        assert!(
            error.starts_with("config.toml:14:8:") && error.contains("five fields"),
            "{error}"
        );
        let error = table("cron = \"0 6 * * *\"\nzone = \"Hall Z\"\n").unwrap_err();
        assert!(error.contains("no device is in zone \"Hall Z\""), "{error}");
        let error = table("cron = \"0 6 * * *\"\ndevices = [\"T9\"]\n").unwrap_err();
        assert!(error.contains("unknown device \"T9\""), "{error}");
        let error = table("cron = \"0 6 * * *\"\nzone = \"Hall A\"\nkind = \"turnstile\"\n").unwrap_err();
        assert!(error.contains("exactly one of devices"), "{error}");
        let error = parse("[[maintenance]]\nid = \"Weekly\"\ncron = \"0 6 * * *\"\nzone = \"Hall A\"\ntask = \"t\"\n")
            .unwrap_err();
        assert!(error.contains("invalid maintenance id \"Weekly\""), "{error}");
    }
}
