//! Commands people give a turnstile (lock out, unlock), a work order (ack, assign, start, resolve, cancel,
//! comment), an alarm (ack, clear) or the watch list (add, remove): carried out at once by the web's handlers, and from the
//! command line through `operator_requests` in `journal.db`. Only the core that owns the data directory may
//! append to the journal, so `gatehouse lock-out` run beside `serve` leaves a request there and the server's
//! request loop carries it out; with no server running the command starts a core of its own (`cli::operator`). A request's id is
//! its causation (`request:ID`), so carrying it out twice (a crash between the append and the mark) records its
//! events once.

use crate::actors::{CommandError, CommandOutcome, Meta, Registry};
use crate::domain::alarm::AlarmNumber;
use crate::domain::watch_list::WatchEntry;
use crate::domain::work_order::{Note, Technician, WorkOrderNumber};
use crate::domain::{
    Alarm, AlarmCommand, DeviceCommand, Pseudonym, Rejection, Subject, WatchList, WatchListCommand, WorkOrder,
    WorkOrderCommand,
};
use crate::journal::{Actor, Position};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the running server looks for requests from the command line.
const POLL: Duration = Duration::from_millis(200);
/// How long the command line waits for a running server to carry out its request.
pub const SERVER_WAIT: Duration = Duration::from_secs(30);
/// The longest lock-out reason kept (it goes on the dashboard and to the gateway).
pub const MAX_REASON_CHARS: usize = 200;

/// What a person asks a device to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum OperatorCommand {
    LockOut {
        device: String,
        reason: String,
    },
    Unlock {
        device: String,
    },
    WorkOrder {
        order: String,
        step: WorkOrderStep,
    },
    Alarm {
        alarm: String,
        step: AlarmStep,
    },
    Watch {
        change: WatchChange,
    },
    /// A zone's occupancy set by hand, with why.
    Occupancy {
        zone: String,
        count: u64,
        reason: String,
    },
    /// A person forgotten (GDPR erasure), named by pseudonym: the request itself must not hold the identifier.
    Forget {
        person: Pseudonym,
    },
    /// The fact at a journal position declared wrong, with why.
    Void {
        position: u64,
        reason: String,
    },
}

/// What a person does with an alarm, with an optional note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum AlarmStep {
    Ack { note: Option<String> },
    Clear { note: Option<String> },
}

/// A change to the watch list. The person is named by pseudonym (a request is JSON, where a subject is its
/// pseudonym alone); `sealed` keeps their sealed identifier beside it, for the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum WatchChange {
    Add {
        entry: WatchEntry,
        #[serde(default)]
        sealed: Vec<u8>,
    },
    Remove {
        subject: Subject,
        #[serde(default)]
        sealed: Vec<u8>,
    },
}

impl WatchChange {
    pub fn add(entry: WatchEntry) -> Self {
        let sealed = entry.subject.sealed.clone();
        WatchChange::Add { entry, sealed }
    }

    pub fn remove(subject: Subject) -> Self {
        let sealed = subject.sealed.clone();
        WatchChange::Remove { subject, sealed }
    }
}

// The entry's note and severity are plain values; equality is all requests need.
impl Eq for WatchChange {}

/// A step a person takes on a work order, with its text checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum WorkOrderStep {
    Ack,
    Assign { technician: Technician },
    Start,
    Resolve { note: Note },
    Cancel { reason: Note },
    Comment { text: Note },
}

impl WorkOrderStep {
    /// Reads a step as the CLI and the pages name it (`ack`, `assign`, …) with its text, checked.
    pub fn parse(step: &str, text: &str) -> Result<Self, String> {
        Ok(match step {
            "ack" => WorkOrderStep::Ack,
            "start" => WorkOrderStep::Start,
            "assign" => WorkOrderStep::Assign {
                technician: Technician::parse(text)?,
            },
            "resolve" => WorkOrderStep::Resolve {
                note: Note::parse(text, "the resolution note")?,
            },
            "cancel" => WorkOrderStep::Cancel {
                reason: Note::parse(text, "the reason")?,
            },
            "comment" => WorkOrderStep::Comment {
                text: Note::parse(text, "the comment")?,
            },
            other => {
                return Err(format!(
                    "{other:?} is not a work order step (ack, assign, start, resolve, cancel, comment)"
                ));
            }
        })
    }

    fn command(&self, at: jiff::Timestamp) -> WorkOrderCommand {
        match self {
            WorkOrderStep::Ack => WorkOrderCommand::Acknowledge { at },
            WorkOrderStep::Start => WorkOrderCommand::Start { at },
            WorkOrderStep::Assign { technician } => WorkOrderCommand::Assign {
                technician: technician.clone(),
                at,
            },
            WorkOrderStep::Resolve { note } => WorkOrderCommand::Resolve { note: note.clone(), at },
            WorkOrderStep::Cancel { reason } => WorkOrderCommand::Cancel {
                reason: reason.clone(),
                at,
            },
            WorkOrderStep::Comment { text } => WorkOrderCommand::Comment { text: text.clone(), at },
        }
    }

    /// What was done, in words (`WO-000001 acknowledged`).
    fn done(&self, order: &str) -> String {
        match self {
            WorkOrderStep::Ack => format!("{order} acknowledged"),
            WorkOrderStep::Start => format!("{order} started"),
            WorkOrderStep::Assign { technician } => format!("{order} assigned to {technician}"),
            WorkOrderStep::Resolve { .. } => format!("{order} resolved"),
            WorkOrderStep::Cancel { .. } => format!("{order} cancelled"),
            WorkOrderStep::Comment { .. } => format!("comment added to {order}"),
        }
    }
}

/// A person's text that goes on pages and to gateways: one line, at most [`MAX_REASON_CHARS`]; `what` names it in
/// the refusal ("the reason", "the note").
fn one_line(text: &str, what: &str) -> Result<(), String> {
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(format!("{what} is longer than {MAX_REASON_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} must be one line of text"));
    }
    Ok(())
}

impl OperatorCommand {
    /// A lock-out with its reason checked: required, one line, at most [`MAX_REASON_CHARS`].
    pub fn lock_out(device: &str, reason: &str) -> Result<OperatorCommand, String> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("a lock-out needs a reason (what people at the gate and the gateway are told)".into());
        }
        one_line(reason, "the reason")?;
        Ok(OperatorCommand::LockOut {
            device: device.to_owned(),
            reason: reason.to_owned(),
        })
    }

    pub fn unlock(device: &str) -> OperatorCommand {
        OperatorCommand::Unlock {
            device: device.to_owned(),
        }
    }

    /// A step on work order `order` (`WO-000123`), the number checked.
    pub fn work_order(order: &str, step: WorkOrderStep) -> Result<OperatorCommand, String> {
        let number = WorkOrderNumber::parse(order.trim())?;
        Ok(OperatorCommand::WorkOrder {
            order: number.to_string(),
            step,
        })
    }

    /// A step on alarm `alarm` (`A-000003`), the number and the note checked.
    pub fn alarm(alarm: &str, step: &str, note: Option<&str>) -> Result<OperatorCommand, String> {
        let number = AlarmNumber::parse(alarm.trim())?;
        let note = note.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if let Some(note) = &note {
            one_line(note, "the note")?;
        }
        let step = match step {
            "ack" => AlarmStep::Ack { note },
            "clear" => AlarmStep::Clear { note },
            other => return Err(format!("{other:?} is not an alarm step (ack, clear)")),
        };
        Ok(OperatorCommand::Alarm {
            alarm: number.to_string(),
            step,
        })
    }

    /// A correction of `zone`'s count, the reason checked (required, one line) and the zone one of `zones`.
    pub fn occupancy(zone: &str, count: u64, reason: &str, zones: &[String]) -> Result<OperatorCommand, String> {
        let zone = zone.trim();
        if !zones.iter().any(|z| z == zone) {
            return Err(format!("there is no zone {zone:?} (zones: {})", zones.join(", ")));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("a correction needs a reason (it is kept with the count)".into());
        }
        one_line(reason, "the reason")?;
        Ok(OperatorCommand::Occupancy {
            zone: zone.to_owned(),
            count,
            reason: reason.to_owned(),
        })
    }

    /// A void of the fact at journal `position`, the reason checked (required, one line).
    pub fn void(position: u64, reason: &str) -> Result<OperatorCommand, String> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err("voiding a fact needs a reason (it is kept beside the fact)".into());
        }
        one_line(reason, "the reason")?;
        if position == 0 {
            return Err("journal positions start at 1".into());
        }
        Ok(OperatorCommand::Void {
            position,
            reason: reason.to_owned(),
        })
    }

    /// The device, work order, alarm or list the command is for.
    pub fn target(&self) -> &str {
        match self {
            OperatorCommand::LockOut { device, .. } | OperatorCommand::Unlock { device } => device,
            OperatorCommand::WorkOrder { order, .. } => order,
            OperatorCommand::Alarm { alarm, .. } => alarm,
            OperatorCommand::Watch { .. } => "watch_list",
            OperatorCommand::Occupancy { zone, .. } => zone,
            OperatorCommand::Void { .. } => "journal",
            OperatorCommand::Forget { .. } => "subject_vault",
        }
    }
}

/// What carrying out a command did, in words for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub text: String,
    /// The journal position of its last event, when it recorded any.
    pub position: Option<Position>,
}

/// Carries out a command now, on the core that owns the journal. `Err` is a refusal in words (unknown device,
/// a camera, a decommissioned turnstile) or a journal failure.
pub async fn carry_out(
    registry: &Registry,
    vault: &crate::privacy::SubjectVault,
    command: &OperatorCommand,
    actor: Actor,
    causation: Option<String>,
) -> Result<Done, String> {
    let mut meta = Meta::by(actor);
    meta.causation = causation;
    let now = jiff::Timestamp::now();
    match command {
        OperatorCommand::LockOut { device, reason } => {
            let lock_out = DeviceCommand::LockOut {
                reason: reason.clone(),
                at: now,
            };
            let words = (
                format!("{device} is locked out: {reason}"),
                format!("{device} was already locked out; nothing changed (reason given: {reason})"),
            );
            carry_out_on_device(registry, device, lock_out, meta, words).await
        }
        OperatorCommand::Unlock { device } => {
            let words = (
                format!("{device} is unlocked"),
                format!("{device} was not locked out; nothing changed"),
            );
            carry_out_on_device(registry, device, DeviceCommand::Unlock { at: now }, meta, words).await
        }
        OperatorCommand::WorkOrder { order, step } => carry_out_step(registry, order, step, meta, now).await,
        OperatorCommand::Alarm { alarm, step } => {
            let by = meta.actor.as_str().to_owned();
            let (command, done) = match step {
                AlarmStep::Ack { note } => (
                    AlarmCommand::Acknowledge {
                        by,
                        note: note.clone(),
                        at: now,
                    },
                    format!("{alarm} acknowledged"),
                ),
                AlarmStep::Clear { note } => (
                    AlarmCommand::Clear {
                        by,
                        note: note.clone(),
                        at: now,
                    },
                    format!("{alarm} cleared"),
                ),
            };
            let result = registry.execute_or_start::<Alarm>(alarm, command, meta).await;
            words(alarm, result, done)
        }
        OperatorCommand::Watch { change } => {
            let (command, done) = match change {
                WatchChange::Add { entry, sealed } => (
                    WatchListCommand::Add {
                        entry: WatchEntry {
                            subject: Subject {
                                pseudonym: entry.subject.pseudonym.clone(),
                                sealed: sealed.clone(),
                            },
                            ..entry.clone()
                        },
                        at: now,
                    },
                    format!("{} is on the {} list ({})", entry.subject, entry.list, entry.severity),
                ),
                WatchChange::Remove { subject, sealed } => (
                    WatchListCommand::Remove {
                        subject: Subject {
                            pseudonym: subject.pseudonym.clone(),
                            sealed: sealed.clone(),
                        },
                        at: now,
                    },
                    format!("{subject} is off the watch list"),
                ),
            };
            let result = registry
                .execute_or_start::<WatchList>(WatchList::ID, command, meta)
                .await;
            words("watch list", result, done)
        }
        OperatorCommand::Occupancy { zone, count, reason } => {
            let command = crate::domain::OccupancyCommand::Correct {
                zone: zone.clone(),
                count: *count,
                reason: reason.clone(),
                at: now,
            };
            let result = registry
                .execute_or_start::<crate::domain::Occupancy>(crate::domain::Occupancy::ID, command, meta)
                .await;
            words(
                zone,
                result,
                format!("{zone} now counts {count} people inside ({reason})"),
            )
        }
        OperatorCommand::Void { position, reason } => carry_out_void(registry, *position, reason, meta, now).await,
        OperatorCommand::Forget { person } => {
            crate::privacy::forget::carry_out(registry, vault, person, meta, now).await
        }
    }
}

/// Voids the fact at `position`: reads what it recorded from the journal, then asks its device to void it.
async fn carry_out_void(
    registry: &Registry,
    position: u64,
    reason: &str,
    meta: Meta,
    at: jiff::Timestamp,
) -> Result<Done, String> {
    let journal = registry.journal_path().to_owned();
    let (device, fact) = tokio::task::spawn_blocking(move || voidable(&journal, position))
        .await
        .map_err(|e| format!("journal position {position}: {e}"))??;
    let command = DeviceCommand::VoidFact {
        position,
        fact: fact.clone(),
        reason: reason.to_owned(),
        at,
    };
    let done = format!(
        "{device}: the {} at journal position {position} is void ({reason})",
        fact.name()
    );
    match registry.execute_device(&device, command, meta).await {
        Ok(CommandOutcome::Recorded { position, .. }) => Ok(Done { text: done, position }),
        Ok(CommandOutcome::Duplicate) => Ok(Done {
            text: format!("{device}: this request was carried out before"),
            position: None,
        }),
        Err(CommandError::Rejected(rejection)) => Err(format!("{device}: {rejection}")),
        Err(error) => Err(format!("{device}: {error}")),
    }
}

/// The device and the fact of the event at `position`, when it is one that can be voided; why not otherwise.
fn voidable(journal: &Path, position: u64) -> Result<(String, crate::domain::VoidedFact), String> {
    let reader = crate::journal::JournalReader::open(journal).map_err(|e| format!("{e:#}"))?;
    let stored = match reader.event_at(position).map_err(|e| format!("{e:#}"))? {
        None => {
            let head = reader.head().map_err(|e| format!("{e:#}"))?;
            return Err(format!(
                "there is no event at journal position {position} (the journal ends at {head})"
            ));
        }
        Some(Err(unreadable)) => {
            return Err(format!(
                "the event at journal position {position} cannot be read: {unreadable}"
            ));
        }
        Some(Ok(stored)) => stored,
    };
    let Some((device, event)) = stored.device() else {
        return Err(format!(
            "journal position {position} is a {} of {}; only passages and recognitions can be voided",
            stored.event_type, stored.stream_id
        ));
    };
    match crate::domain::VoidedFact::of(event) {
        Some(fact) => Ok((device.to_owned(), fact)),
        None => Err(format!(
            "journal position {position} is a {} of {device}; only passages and recognitions can be voided",
            stored.event_type
        )),
    }
}

/// What a command on an alarm or the watch list did, in words.
fn words<R: std::fmt::Display>(
    target: &str,
    result: Result<CommandOutcome, CommandError<R>>,
    done: String,
) -> Result<Done, String> {
    match result {
        Ok(CommandOutcome::Recorded { events: 0, .. }) => Ok(Done {
            text: format!("{target}: nothing changed"),
            position: None,
        }),
        Ok(CommandOutcome::Recorded { position, .. }) => Ok(Done { text: done, position }),
        Ok(CommandOutcome::Duplicate) => Ok(Done {
            text: format!("{target}: this request was carried out before"),
            position: None,
        }),
        Err(CommandError::Rejected(rejection)) => Err(format!("{target}: {rejection}")),
        Err(error) => Err(format!("{target}: {error}")),
    }
}

/// A lock-out or unlock on `device`; `words` say what happened when it changed something and when not.
async fn carry_out_on_device(
    registry: &Registry,
    device: &str,
    command: DeviceCommand,
    meta: Meta,
    (changed, unchanged): (String, String),
) -> Result<Done, String> {
    match registry.execute_device(device, command, meta).await {
        // A command that changed nothing still records its causation; it has no event to point at.
        Ok(CommandOutcome::Recorded { events: 0, .. }) => Ok(Done {
            text: unchanged,
            position: None,
        }),
        Ok(CommandOutcome::Recorded { position, .. }) => Ok(Done {
            text: changed,
            position,
        }),
        Ok(CommandOutcome::Duplicate) => Ok(Done {
            text: format!("{device}: this request was carried out before"),
            position: None,
        }),
        Err(CommandError::UnknownDevice(_)) => Err(format!("{device}: no such device in config.toml")),
        Err(CommandError::Rejected(Rejection::WrongKind { kind, .. })) => {
            Err(format!("{device}: a {kind} cannot be locked out; only turnstiles can"))
        }
        Err(CommandError::Rejected(rejection)) => Err(format!("{device}: {rejection}")),
        Err(error) => Err(format!("{device}: {error}")),
    }
}

async fn carry_out_step(
    registry: &Registry,
    order: &str,
    step: &WorkOrderStep,
    meta: Meta,
    at: jiff::Timestamp,
) -> Result<Done, String> {
    match registry
        .execute_or_start::<WorkOrder>(order, step.command(at), meta)
        .await
    {
        Ok(CommandOutcome::Recorded { events: 0, .. }) => Ok(Done {
            text: format!("{order}: nothing changed"),
            position: None,
        }),
        Ok(CommandOutcome::Recorded { position, .. }) => Ok(Done {
            text: step.done(order),
            position,
        }),
        Ok(CommandOutcome::Duplicate) => Ok(Done {
            text: format!("{order}: this request was carried out before"),
            position: None,
        }),
        Err(CommandError::Rejected(rejection)) => Err(format!("{order}: {rejection}")),
        Err(error) => Err(format!("{order}: {error}")),
    }
}

/// A request as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub id: i64,
    pub refused: bool,
    pub outcome: String,
    pub position: Option<Position>,
}

pub fn open(journal: &Path) -> anyhow::Result<Connection> {
    crate::db::open(journal, crate::config::Synchronous::Full)
}

/// Leaves a request for the core that owns the journal; returns its id.
pub fn request(journal: &Path, command: &OperatorCommand, by: &Actor) -> anyhow::Result<i64> {
    let conn = open(journal)?;
    conn.execute(
        "INSERT INTO operator_requests (target, command, actor, requested_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            command.target(),
            serde_json::to_string(command)?,
            by.as_str(),
            jiff::Timestamp::now().as_microsecond()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn finished(conn: &Connection, id: i64) -> anyhow::Result<Option<Finished>> {
    let row = conn
        .query_row(
            "SELECT status, outcome, position FROM operator_requests WHERE id = ?1 AND status <> 'pending'",
            [id],
            |r| {
                Ok(Finished {
                    id,
                    refused: r.get::<_, String>(0)? == "refused",
                    outcome: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    position: r.get::<_, Option<i64>>(2)?.map(|p| p as Position),
                })
            },
        )
        .optional()?;
    Ok(row)
}

/// Carries out every pending request, oldest first. Call only from the core that owns the journal.
pub async fn process_pending(
    registry: &Registry,
    vault: &crate::privacy::SubjectVault,
    journal: &Path,
) -> anyhow::Result<usize> {
    // One run at a time per process (the loop, and a command line's own core, never both).
    static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _running = ONE_RUN_AT_A_TIME.lock().await;
    let path = journal.to_owned();
    let pending = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i64, String, String)>> {
        let conn = open(&path)?;
        let mut statement =
            conn.prepare("SELECT id, command, actor FROM operator_requests WHERE status = 'pending' ORDER BY id")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
    .await??;
    let count = pending.len();
    for (id, command, actor) in pending {
        let result = match serde_json::from_str::<OperatorCommand>(&command) {
            Ok(command) => {
                carry_out(
                    registry,
                    vault,
                    &command,
                    Actor::from_stored(actor.clone()),
                    Some(format!("request:{id}")),
                )
                .await
            }
            // Written by a newer gatehouse, say: refused in words rather than retried for ever.
            Err(error) => Err(format!("this gatehouse cannot read request {id}: {error}")),
        };
        tracing::info!(request = id, %actor, outcome = ?result, "operator request carried out");
        let path = journal.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let conn = open(&path)?;
            let (status, outcome, position) = match &result {
                Ok(done) => ("done", done.text.as_str(), done.position.map(|p| p as i64)),
                Err(why) => ("refused", why.as_str(), None),
            };
            conn.execute(
                "UPDATE operator_requests SET status = ?2, outcome = ?3, position = ?4, finished_at = ?5
                 WHERE id = ?1",
                params![id, status, outcome, position, jiff::Timestamp::now().as_microsecond()],
            )?;
            Ok(())
        })
        .await??;
    }
    Ok(count)
}

/// Starts the running server's request loop on the current actix system: every [`POLL`] it carries out what
/// the command line asked, until the system stops.
pub fn spawn_request_loop(registry: Registry, vault: crate::privacy::SubjectVault, journal: PathBuf) {
    crate::inbox::spawn_polling("carry out operator requests", POLL, move || {
        let (registry, vault, journal) = (registry.clone(), vault.clone(), journal.clone());
        async move { process_pending(&registry, &vault, &journal).await.map(|_| ()) }
    });
}

/// Waits until request `id` is carried out (by the running server), at most `timeout`.
pub fn wait_for(journal: &Path, id: i64, timeout: Duration) -> anyhow::Result<Finished> {
    let conn = open(journal)?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(done) = finished(&conn, id)? {
            return Ok(done);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the running server did not carry out request {id} within {} s: is it healthy? (see /healthz); \
                 it stays queued and is carried out when the server gets to it",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_out_needs_a_one_line_reason_of_reasonable_length() {
        assert!(OperatorCommand::lock_out("T1", "  ").is_err());
        assert!(OperatorCommand::lock_out("T1", "two\nlines").is_err());
        assert!(OperatorCommand::lock_out("T1", &"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert_eq!(
            OperatorCommand::lock_out("T1", " cleaning ").unwrap(),
            OperatorCommand::LockOut {
                device: "T1".into(),
                reason: "cleaning".into()
            }
        );
    }

    #[test]
    fn requests_are_stored_as_tagged_json() {
        let json = serde_json::to_string(&OperatorCommand::unlock("T1")).unwrap();
        assert_eq!(json, r#"{"command":"unlock","device":"T1"}"#);
    }
}
