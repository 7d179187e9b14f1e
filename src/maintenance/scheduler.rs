//! Brings the schedule aggregates in line with `config.toml` at boot (created, changed, removed: actor `config`)
//! and, while the server runs, records each run as it falls due (actor `policy:schedule`, causation
//! `schedule:ID:RUN_AT`, so a run is recorded once however often it is attempted). A run missed while Gatehouse
//! was down is recorded once at start: the latest one due since the schedule's last run (or its creation).

use crate::actors::{CommandError, Meta, Registry};
use crate::config::{Config, MaintenanceConfig};
use crate::domain::schedule::{MaintenanceSchedule, ScheduleCommand, ScheduleState};
use crate::domain::{Aggregate, StreamName};
use crate::journal::{Actor, JournalReader};
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The longest the scheduler sleeps before looking at the clock again (a clock set forward is noticed soon).
const LOOK_AGAIN: Duration = Duration::from_secs(60);
/// How soon a run that could not be recorded (journal trouble) is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The stream names of every schedule the journal knows.
fn recorded_schedules(journal: &Path) -> anyhow::Result<Vec<String>> {
    let reader = JournalReader::open(journal)?;
    let prefix = format!("{}:", MaintenanceSchedule::KIND);
    // A range on the (stream_id, version) index rather than LIKE, which SQLite would scan.
    let upper = format!("{};", MaintenanceSchedule::KIND);
    let mut statement = reader
        .connection()
        .prepare("SELECT DISTINCT stream_id FROM events WHERE stream_id >= ?1 AND stream_id < ?2")?;
    let rows = statement.query_map([&prefix, &upper], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records what `config.toml` says of every schedule: new ones created, changed ones changed, ones no longer in
/// the file removed.
pub async fn reconcile(config: &Config, registry: &Registry, journal: &Path) -> anyhow::Result<()> {
    let now = Timestamp::now();
    for schedule in &config.maintenance {
        let command = ScheduleCommand::Configure {
            spec: schedule.spec.clone(),
            at: now,
        };
        registry
            .execute_or_start::<MaintenanceSchedule>(&schedule.id, command, Meta::by(Actor::config()))
            .await
            .map_err(|e| anyhow::anyhow!("maintenance schedule {}: {e}", schedule.id))?;
    }
    let path = journal.to_owned();
    let recorded = tokio::task::spawn_blocking(move || recorded_schedules(&path)).await??;
    for stream in recorded {
        let Ok(stream) = StreamName::parse(&stream) else {
            continue;
        };
        if config.maintenance.iter().any(|s| s.id == stream.id()) {
            continue;
        }
        registry
            .execute_or_start::<MaintenanceSchedule>(
                stream.id(),
                ScheduleCommand::Remove { at: now },
                Meta::by(Actor::config()),
            )
            .await
            .map_err(|e| anyhow::anyhow!("maintenance schedule {}: {e}", stream.id()))?;
    }
    Ok(())
}

/// Starts one task per schedule on the current actix system, for as long as it runs.
pub fn spawn(config: Arc<Config>, registry: Registry, journal: PathBuf) {
    for index in 0..config.maintenance.len() {
        let (config, registry, journal) = (config.clone(), registry.clone(), journal.clone());
        actix::spawn(async move {
            let schedule = &config.maintenance[index];
            if let Err(error) = run_schedule(&config, schedule, &registry, &journal).await {
                tracing::error!(schedule = %schedule.id, error = %format!("{error:#}"), "maintenance schedule stopped");
            }
        });
    }
}

/// On a virtual clock (`what-if`): records every run of every schedule that falls due after its last one, up to
/// `until`, in order, each at its own instant.
pub async fn run_due_until(
    config: &Config,
    registry: &Registry,
    journal: &Path,
    until: Timestamp,
) -> anyhow::Result<()> {
    let tz = &config.site.timezone;
    for schedule in &config.maintenance {
        let state = schedule_state(journal, &schedule.id).await?;
        let Some(mut after) = state.last_run.max(state.created_at) else {
            continue;
        };
        while let Some(next) = schedule.cron.next_after(after, tz).filter(|next| *next <= until) {
            record_run(config, schedule, registry, next).await?;
            after = next;
        }
    }
    Ok(())
}

async fn schedule_state(journal: &Path, id: &str) -> anyhow::Result<ScheduleState> {
    let (path, stream) = (journal.to_owned(), StreamName::of(MaintenanceSchedule::KIND, id)?);
    tokio::task::spawn_blocking(move || {
        let recovered = crate::actors::recover::<MaintenanceSchedule>(&JournalReader::open(&path)?, &stream)?;
        Ok(recovered.state)
    })
    .await?
}

async fn run_schedule(
    config: &Config,
    schedule: &MaintenanceConfig,
    registry: &Registry,
    journal: &Path,
) -> anyhow::Result<()> {
    let tz = &config.site.timezone;
    let state = schedule_state(journal, &schedule.id).await?;
    let now = Timestamp::now();
    // Since the later of its last run and its (re-)creation: runs while it was out of config.toml are not owed.
    let since = state.last_run.max(state.created_at).unwrap_or(now);
    if let Some(missed) = schedule.cron.missed_run(since, now, tz) {
        tracing::info!(schedule = %schedule.id, run = %missed, "recording a run missed while Gatehouse was down");
        record_run(config, schedule, registry, missed).await?;
    }
    let mut after = Timestamp::now();
    loop {
        let Some(next) = schedule.cron.next_after(after, tz) else {
            tracing::warn!(schedule = %schedule.id, "its cron never matches again");
            return Ok(());
        };
        loop {
            let left = next.duration_since(Timestamp::now());
            if left.is_negative() || left.is_zero() {
                break;
            }
            tokio::time::sleep(left.unsigned_abs().min(LOOK_AGAIN)).await;
        }
        record_run(config, schedule, registry, next).await?;
        after = next;
    }
}

/// Records the run due at `run_at` for the devices the schedule names now; retries while the journal cannot.
async fn record_run(
    config: &Config,
    schedule: &MaintenanceConfig,
    registry: &Registry,
    run_at: Timestamp,
) -> anyhow::Result<()> {
    let devices = schedule.devices(&config.turnstiles, &config.cameras);
    let due_at = schedule.cron.next_after(run_at, &config.site.timezone);
    loop {
        let command = ScheduleCommand::Run {
            run_at,
            devices: devices.clone(),
            due_at,
            at: config.clock.now(),
        };
        let meta = Meta::by(Actor::policy("schedule")).caused_by(format!(
            "schedule:{}:{}",
            schedule.id,
            run_at.as_microsecond()
        ));
        match registry
            .execute_or_start::<MaintenanceSchedule>(&schedule.id, command, meta)
            .await
        {
            Ok(_) => return Ok(()),
            Err(CommandError::Rejected(why)) => anyhow::bail!("{why}"),
            Err(error) => {
                tracing::warn!(schedule = %schedule.id, %error, "cannot record a run yet; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
