//! Projections turn the journal into read tables in `views.db`. Each reads events after its checkpoint in
//! batches and writes its rows and its new checkpoint in one transaction, so a crash between batches neither
//! loses nor doubles an event's effect. An event a projection cannot handle is parked (`parked`) in the same
//! transaction and the projection goes on. `runner` hosts them as actors woken by the writer's commit notices;
//! `rebuild` recreates them beside the live tables and swaps them in (blue/green).

mod alarms;
mod device_commands;
mod device_status;
mod equipment;
mod occupancy;
pub mod parked;
mod presence;
pub mod rebuild;
mod recognitions;
pub mod runner;
mod traffic;
#[cfg(test)]
mod type_filters;
mod watch_list;
mod work_orders;

pub use alarms::{AlarmsProjection, severity_rank};
pub use device_commands::DeviceCommandsProjection;
pub use device_status::DeviceStatusProjection;
pub use equipment::EquipmentProjection;
#[cfg(test)]
pub(crate) use equipment::OPEN_INTERVAL;
pub use occupancy::OccupancyProjection;
pub use presence::PresenceProjection;
pub use recognitions::RecognitionsProjection;
pub use traffic::TrafficProjection;
pub use watch_list::WatchListProjection;
pub use work_orders::WorkOrdersProjection;

use crate::config::OnError;
use crate::journal::{JournalReader, Position, StoredEvent};
use anyhow::Context as _;
use jiff::tz::TimeZone;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, params};

/// Events read and applied per transaction: large enough to amortize the commit, small enough that pages
/// see progress during a long catch-up.
pub const BATCH_SIZE: usize = 2000;

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event itself cannot be applied (an instant out of range, a value the tables refuse): parked.
    #[error("{0}")]
    Event(String),
    /// views.db failed (full disk, locked): the batch is retried, nothing is parked.
    #[error("views.db: {0}")]
    Storage(rusqlite::Error),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // A constraint the row breaks is about this event's data; anything else is about the database.
            Some(ErrorCode::ConstraintViolation) => ApplyError::Event(error.to_string()),
            _ => ApplyError::Storage(error),
        }
    }
}

/// A read model fed from the journal.
pub trait Projection: Send {
    /// The name in `projector_checkpoints`, on the admin page and on the `rebuild` command line.
    fn name(&self) -> &'static str;
    /// The tables it owns, copied as a whole by a rebuild swap.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event inside the batch's transaction.
    fn apply(&mut self, tx: &Connection, event: &StoredEvent) -> Result<(), ApplyError>;
    /// Whether something outside waits on this read model as on a command (turnstiles on their desired state):
    /// its projector keeps normal priority instead of yielding the CPU to ingestion.
    fn is_urgent(&self) -> bool {
        false
    }
    /// The event types it applies, when it applies only a few (every other event leaves its tables as they are):
    /// its projector then reads just those rows and moves its checkpoint past the rest unread, so a burst of
    /// passages costs it nothing. `None`: it looks at every event. A test replays every kind of device event with
    /// and without the filter and compares the tables.
    fn event_types(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// Every projection this program has, in the order they are listed to people.
pub fn all(tz: &TimeZone) -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(DeviceStatusProjection::new(tz.clone())),
        Box::new(TrafficProjection::new(tz.clone())),
        Box::new(EquipmentProjection::new()),
        Box::new(RecognitionsProjection::new(tz.clone())),
        Box::new(DeviceCommandsProjection),
        Box::new(WorkOrdersProjection),
        Box::new(AlarmsProjection),
        Box::new(WatchListProjection),
        Box::new(PresenceProjection),
        Box::new(OccupancyProjection),
    ]
}

/// The names of every projection.
pub fn names() -> Vec<&'static str> {
    all(&TimeZone::UTC).iter().map(|p| p.name()).collect()
}

/// The position a projection has applied up to in this views database.
pub fn checkpoint(conn: &Connection, name: &str) -> rusqlite::Result<Position> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM projector_checkpoints WHERE projection = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(position.unwrap_or(0) as Position)
}

pub(crate) fn set_checkpoint(tx: &Transaction<'_>, name: &str, position: Position) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO projector_checkpoints (projection, position, updated_at, last_error) VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at,
                                                last_error = NULL",
        params![name, position as i64, jiff::Timestamp::now().as_microsecond()],
    )?;
    Ok(())
}

/// Records why a projection is stuck, for the admin page and `/healthz`.
pub fn record_error(conn: &Connection, name: &str, error: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO projector_checkpoints (projection, position, updated_at, last_error) VALUES (?1, 0, ?2, ?3)
         ON CONFLICT (projection) DO UPDATE SET last_error = excluded.last_error, updated_at = excluded.updated_at",
        params![name, jiff::Timestamp::now().as_microsecond(), error],
    )?;
    Ok(())
}

/// Applies one batch: reads the checkpoint, the events after it and writes rows plus the new checkpoint, all in
/// one transaction. The checkpoint is read inside the transaction so two runners (the server and a `rebuild`
/// swap) can never apply the same event twice. An event that cannot be applied is rolled back alone and, with
/// `on_error = park`, parked in the same transaction while the batch goes on; one that cannot be read is parked
/// the same way. A projection that names its event types reads only those; a short batch then moves the
/// checkpoint to the journal's head, past the events of other types. Returns the new checkpoint and how many
/// events were read.
///
/// Rolling back one event needs a savepoint around each, and inside a savepoint SQLite copies every page an event
/// changes into its statement journal first (a 4 KiB copy and several allocations per page, for every event in
/// every projector: most of the projectors' allocations during a burst). Events almost always apply, so a batch
/// first runs without savepoints; only when an event fails is the whole transaction rolled back and the batch
/// run again with a savepoint per event.
pub fn run_batch(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    batch_size: usize,
    on_error: OnError,
) -> anyhow::Result<(Position, usize)> {
    if let Some(applied) = apply_batch(projection, journal, views, batch_size, on_error, Savepoints::None)? {
        return Ok(applied);
    }
    tracing::debug!(
        projection = projection.name(),
        "an event failed: the batch runs again with a savepoint per event"
    );
    apply_batch(projection, journal, views, batch_size, on_error, Savepoints::PerEvent)?
        .context("a batch with a savepoint per event always ends")
}

/// Whether each event of a batch runs in a savepoint of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Savepoints {
    /// None: an event's failure rolls back the whole batch (`Ok(None)` from [`apply_batch`]).
    None,
    PerEvent,
}

/// One attempt at a batch (see [`run_batch`]); `Ok(None)` when, without savepoints, an event failed and
/// everything was rolled back.
fn apply_batch(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    batch_size: usize,
    on_error: OnError,
    savepoints: Savepoints,
) -> anyhow::Result<Option<(Position, usize)>> {
    let _writer = crate::db::views_writer(views);
    let mut tx = views.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = checkpoint(&tx, projection.name())?;
    let (events, head) = match projection.event_types() {
        None => (journal.events_after_lenient(from, batch_size)?, None),
        Some(types) => {
            // The head before the rows: an event committed in between is either among them or past the head.
            let head = journal.head()?;
            (journal.events_of_types_after(types, from, batch_size)?, Some(head))
        }
    };
    let read = events.len();
    let mut last = from;
    for event in events {
        let failure = match event {
            Ok(event) => {
                let failed = match savepoints {
                    Savepoints::PerEvent => apply_one(projection, &mut tx, &event)?,
                    Savepoints::None => match projection.apply(&tx, &event) {
                        Ok(()) => None,
                        // Dropping the transaction rolls back the batch, this event's half-writes included.
                        Err(ApplyError::Event(_)) => return Ok(None),
                        Err(ApplyError::Storage(error)) => return Err(storage_failure(projection, &event, error)),
                    },
                };
                match failed {
                    None => {
                        last = event.position;
                        continue;
                    }
                    Some(error) => parked::Unhandled::of(&event, error),
                }
            }
            Err(unreadable) => parked::Unhandled::unreadable(&unreadable),
        };
        if on_error == OnError::Stop {
            // Keep what came before it; stop in front of it.
            if last > from {
                set_checkpoint(&tx, projection.name(), last)?;
                tx.commit()?;
            }
            anyhow::bail!(
                "{}: cannot apply event at position {}: {}",
                projection.name(),
                failure.position,
                failure.error
            );
        }
        tracing::error!(projection = projection.name(), position = failure.position, error = %failure.error, "event parked");
        parked::park(&tx, projection.name(), &failure)?;
        last = failure.position;
    }
    if let Some(head) = head
        && read < batch_size
    {
        // Every row of its types up to the head is applied: the rows between are none of its business.
        last = last.max(head);
    }
    if last > from {
        set_checkpoint(&tx, projection.name(), last)?;
    }
    tx.commit()?;
    Ok(Some((last, read)))
}

/// A failure of views.db while applying an event: the caller drops the whole transaction and retries the batch.
fn storage_failure(projection: &dyn Projection, event: &StoredEvent, error: rusqlite::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: views.db failed at position {}: {error}",
        projection.name(),
        event.position
    )
}

/// Applies one event in a savepoint. `Ok(Some)` is the event's own failure (rolled back, to park); `Err` is a
/// failure of views.db (the whole batch is retried).
///
/// Used when a batch is run again after an event failed, and for a parked event's re-drive. The savepoint's
/// statements are prepared once per connection: rusqlite's `Savepoint` parses its SQL anew each time.
pub(crate) fn apply_one(
    projection: &mut dyn Projection,
    tx: &mut Transaction<'_>,
    event: &StoredEvent,
) -> anyhow::Result<Option<String>> {
    tx.prepare_cached("SAVEPOINT apply_one")?.execute([])?;
    match projection.apply(tx, event) {
        Ok(()) => {
            tx.prepare_cached("RELEASE apply_one")?.execute([])?;
            Ok(None)
        }
        Err(ApplyError::Event(error)) => {
            // Undo whatever the event half-wrote, then end the savepoint.
            tx.prepare_cached("ROLLBACK TO apply_one")?.execute([])?;
            tx.prepare_cached("RELEASE apply_one")?.execute([])?;
            Ok(Some(error))
        }
        // The caller drops the whole transaction, savepoint and all.
        Err(ApplyError::Storage(error)) => Err(storage_failure(projection, event, error)),
    }
}

/// Runs batches until the projection has applied everything in the journal; `progress` hears each checkpoint.
pub fn catch_up(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    on_error: OnError,
    mut progress: impl FnMut(Position),
) -> anyhow::Result<Position> {
    loop {
        let (position, applied) = run_batch(projection, journal, views, BATCH_SIZE, on_error)?;
        progress(position);
        if applied < BATCH_SIZE {
            return Ok(position);
        }
    }
}

/// The site-local calendar date and hour of an instant.
pub(crate) fn local(tz: &TimeZone, at: jiff::Timestamp) -> jiff::ZonedDateTime {
    at.to_zoned_datetime(tz.clone())
}

/// The start of the site-local clock hour an instant falls in. Truncating in the zone (not in UTC) is what makes
/// a bucket a local clock hour, DST days included. Fails (for parking) at the very ends of jiff's range.
pub(crate) fn local_hour(tz: &TimeZone, at: jiff::Timestamp) -> Result<jiff::ZonedDateTime, ApplyError> {
    use jiff::{RoundMode, Unit, ZonedDateTimeRound};
    local(tz, at)
        .round(ZonedDateTimeRound::new().smallest(Unit::Hour).mode(RoundMode::Trunc))
        .map_err(|error| {
            let zone = tz.iana_name().unwrap_or("the site's time zone");
            ApplyError::Event(format!("instant {at} has no local hour in {zone}: {error}"))
        })
}
