//! Maintenance schedules (`[[maintenance]]` in config.toml): created, changed and removed as the file says, like
//! devices, and each run recorded once as it falls due, with the devices it names at that moment. The maintenance
//! policy turns a run into preventive work orders. When runs fall due is the scheduler's business (cron, clock);
//! this aggregate only keeps one record per run and none for a schedule that is gone.

use super::aggregate::{Aggregate, DomainEvent};
use super::ids::{DeviceId, DeviceKind};
use super::time::{option_timestamp, timestamp};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The schedule aggregate; its streams are `maintenance_schedule:ID`.
pub struct MaintenanceSchedule;

/// Which devices a schedule is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleTarget {
    Devices(Vec<DeviceId>),
    Zone(String),
    Kind(DeviceKind),
}

impl fmt::Display for ScheduleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleTarget::Devices(ids) => {
                let ids: Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
                write!(f, "devices {}", ids.join(", "))
            }
            ScheduleTarget::Zone(zone) => write!(f, "zone {zone}"),
            ScheduleTarget::Kind(kind) => write!(f, "every {}", kind.as_str()),
        }
    }
}

/// What the installer wrote for a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The 5-field cron expression, in the site's time zone.
    pub cron: String,
    pub target: ScheduleTarget,
    /// What the technician is to do.
    pub task: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleCommand {
    /// Bring the schedule in line with config.toml.
    Configure { spec: ScheduleSpec, at: Timestamp },
    /// It is no longer in config.toml.
    Remove { at: Timestamp },
    /// The run due at `run_at` for these devices, the next one due at `due_at`.
    Run {
        run_at: Timestamp,
        devices: Vec<DeviceId>,
        due_at: Option<Timestamp>,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleRejection {
    #[error("the schedule is not in config.toml")]
    NotConfigured,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleEvent {
    Created(ScheduleCreated),
    Changed(ScheduleChanged),
    Removed(ScheduleRemoved),
    RunDue(ScheduleRunDue),
}

/// The schedule was added to config.toml (or added back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleCreated {
    pub spec: ScheduleSpec,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// Its cron, devices or task changed in config.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleChanged {
    pub spec: ScheduleSpec,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// It was removed from config.toml; its history stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRemoved {
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

/// A run fell due: preventive work for these devices, to be done by `due_at` (the next run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunDue {
    #[serde(with = "timestamp")]
    pub run_at: Timestamp,
    pub devices: Vec<DeviceId>,
    #[serde(with = "option_timestamp")]
    pub due_at: Option<Timestamp>,
    pub task: String,
    #[serde(with = "timestamp")]
    pub at: Timestamp,
}

impl DomainEvent for ScheduleEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ScheduleEvent::Created(_) => "ScheduleCreated",
            ScheduleEvent::Changed(_) => "ScheduleChanged",
            ScheduleEvent::Removed(_) => "ScheduleRemoved",
            ScheduleEvent::RunDue(_) => "ScheduleRunDue",
        }
    }

    fn occurred_at(&self) -> Timestamp {
        match self {
            ScheduleEvent::Created(e) => e.at,
            ScheduleEvent::Changed(e) => e.at,
            ScheduleEvent::Removed(e) => e.at,
            ScheduleEvent::RunDue(e) => e.run_at,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub spec: Option<ScheduleSpec>,
    pub active: bool,
    /// When it was (last) created: runs before it are not made up.
    #[serde(with = "option_timestamp")]
    pub created_at: Option<Timestamp>,
    /// The latest run recorded.
    #[serde(with = "option_timestamp")]
    pub last_run: Option<Timestamp>,
}

impl Aggregate for MaintenanceSchedule {
    const KIND: &'static str = "maintenance_schedule";
    const STATE_SCHEMA: u32 = 1;
    type Command = ScheduleCommand;
    type Event = ScheduleEvent;
    type State = ScheduleState;
    type Rejection = ScheduleRejection;

    fn decide(state: &ScheduleState, command: &ScheduleCommand) -> Result<Vec<ScheduleEvent>, ScheduleRejection> {
        Ok(match command {
            ScheduleCommand::Configure { spec, at } if !state.active => {
                vec![ScheduleEvent::Created(ScheduleCreated {
                    spec: spec.clone(),
                    at: *at,
                })]
            }
            ScheduleCommand::Configure { spec, .. } if state.spec.as_ref() == Some(spec) => vec![],
            ScheduleCommand::Configure { spec, at } => vec![ScheduleEvent::Changed(ScheduleChanged {
                spec: spec.clone(),
                at: *at,
            })],
            ScheduleCommand::Remove { at } if state.active => vec![ScheduleEvent::Removed(ScheduleRemoved { at: *at })],
            ScheduleCommand::Remove { .. } => vec![],
            ScheduleCommand::Run { .. } if !state.active => return Err(ScheduleRejection::NotConfigured),
            ScheduleCommand::Run { run_at, .. } if state.last_run.is_some_and(|last| last >= *run_at) => vec![],
            ScheduleCommand::Run {
                run_at,
                devices,
                due_at,
                at,
            } => vec![ScheduleEvent::RunDue(ScheduleRunDue {
                run_at: *run_at,
                devices: devices.clone(),
                due_at: *due_at,
                task: state.spec.as_ref().map(|s| s.task.clone()).unwrap_or_default(),
                at: *at,
            })],
        })
    }

    fn evolve(mut state: ScheduleState, event: &ScheduleEvent) -> ScheduleState {
        match event {
            ScheduleEvent::Created(e) => {
                state.spec = Some(e.spec.clone());
                state.active = true;
                state.created_at = Some(e.at);
            }
            ScheduleEvent::Changed(e) => state.spec = Some(e.spec.clone()),
            ScheduleEvent::Removed(_) => state.active = false,
            ScheduleEvent::RunDue(e) => state.last_run = Some(e.run_at),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        format!("2026-03-02T{s}Z").parse().unwrap()
    }

    fn spec(cron: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: cron.into(),
            target: ScheduleTarget::Zone("Hall A".into()),
            task: "Clean sensors".into(),
        }
    }

    fn given(events: &[ScheduleEvent], command: ScheduleCommand) -> Result<Vec<ScheduleEvent>, ScheduleRejection> {
        MaintenanceSchedule::decide(&MaintenanceSchedule::fold(ScheduleState::default(), events), &command)
    }

    fn created() -> ScheduleEvent {
        ScheduleEvent::Created(ScheduleCreated {
            spec: spec("0 6 * * MON"),
            at: at("05:00:00"),
        })
    }

    fn run(run_at: &str) -> ScheduleCommand {
        ScheduleCommand::Run {
            run_at: at(run_at),
            devices: vec![DeviceId::parse("T1").unwrap()],
            due_at: None,
            at: at(run_at),
        }
    }

    #[test]
    fn configuring_creates_then_changes_only_what_changed() {
        let configure = |cron| ScheduleCommand::Configure {
            spec: spec(cron),
            at: at("06:00:00"),
        };
        assert!(matches!(
            given(&[], configure("0 6 * * MON")).unwrap()[..],
            [ScheduleEvent::Created(_)]
        ));
        assert_eq!(given(&[created()], configure("0 6 * * MON")), Ok(vec![]));
        assert!(matches!(
            given(&[created()], configure("0 7 * * MON")).unwrap()[..],
            [ScheduleEvent::Changed(_)]
        ));
    }

    #[test]
    fn a_removed_schedule_records_no_runs_until_it_is_added_back() {
        let removed = ScheduleEvent::Removed(ScheduleRemoved { at: at("07:00:00") });
        assert_eq!(
            given(&[created(), removed.clone()], run("08:00:00")),
            Err(ScheduleRejection::NotConfigured)
        );
        assert_eq!(
            given(
                &[created(), removed.clone()],
                ScheduleCommand::Remove { at: at("09:00:00") }
            ),
            Ok(vec![])
        );
        let back = given(
            &[created(), removed],
            ScheduleCommand::Configure {
                spec: spec("0 6 * * MON"),
                at: at("10:00:00"),
            },
        );
        assert!(matches!(back.unwrap()[..], [ScheduleEvent::Created(_)]));
    }

    #[test]
    fn each_run_is_recorded_once_with_the_task() {
        let first = given(&[created()], run("06:00:00")).unwrap();
        let [ScheduleEvent::RunDue(due)] = &first[..] else {
            panic!("{first:?}")
        };
        assert_eq!(due.task, "Clean sensors");
        let mut history = vec![created()];
        history.extend(first);
        assert_eq!(given(&history, run("06:00:00")), Ok(vec![]), "the same run again");
        assert_eq!(given(&history, run("05:30:00")), Ok(vec![]), "an older run");
        assert_eq!(given(&history, run("07:00:00")).unwrap().len(), 1, "the next run");
    }
}
