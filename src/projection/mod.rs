//! Projections turn the journal into read tables in `views.db`. Each reads events after its checkpoint in
//! batches and writes its rows and its new checkpoint in one transaction, so a crash between batches neither
//! loses nor doubles an event's effect. `runner` hosts them as actors woken by the writer's commit notices;
//! `rebuild` recreates them beside the live tables and swaps them in (blue/green).

mod device_status;
mod equipment;
pub mod rebuild;
mod recognitions;
pub mod runner;
mod traffic;

pub use device_status::DeviceStatusProjection;
pub use equipment::EquipmentProjection;
#[cfg(test)]
pub(crate) use equipment::OPEN_INTERVAL;
pub use recognitions::RecognitionsProjection;
pub use traffic::TrafficProjection;

use crate::journal::{JournalReader, Position, StoredEvent};
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Events read and applied per transaction: large enough to amortize the commit, small enough that pages
/// see progress during a long catch-up.
pub const BATCH_SIZE: usize = 2000;

/// A read model fed from the journal.
pub trait Projection: Send {
    /// The name in `projector_checkpoints`, on the admin page and on the `rebuild` command line.
    fn name(&self) -> &'static str;
    /// The tables it owns, copied as a whole by a rebuild swap.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event inside the batch's transaction.
    fn apply(&mut self, tx: &Transaction<'_>, event: &StoredEvent) -> rusqlite::Result<()>;
}

/// Every projection this program has, in the order they are listed to people.
pub fn all(tz: &TimeZone) -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(DeviceStatusProjection::new(tz.clone())),
        Box::new(TrafficProjection::new(tz.clone())),
        Box::new(EquipmentProjection::new()),
        Box::new(RecognitionsProjection::new(tz.clone())),
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

fn set_checkpoint(tx: &Transaction<'_>, name: &str, position: Position) -> rusqlite::Result<()> {
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
/// swap) can never apply the same event twice. Returns the new checkpoint and how many events were applied.
pub fn run_batch(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    batch_size: usize,
) -> anyhow::Result<(Position, usize)> {
    let tx = views.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = checkpoint(&tx, projection.name())?;
    let events = journal.events_after(from, batch_size)?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok((from, 0));
    };
    for event in &events {
        projection.apply(&tx, event).map_err(|error| {
            anyhow::anyhow!(
                "{}: cannot apply event at position {}: {error}",
                projection.name(),
                event.position
            )
        })?;
    }
    set_checkpoint(&tx, projection.name(), last)?;
    tx.commit()?;
    Ok((last, events.len()))
}

/// Runs batches until the projection has applied everything in the journal; `progress` hears each checkpoint.
pub fn catch_up(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    mut progress: impl FnMut(Position),
) -> anyhow::Result<Position> {
    loop {
        let (position, applied) = run_batch(projection, journal, views, BATCH_SIZE)?;
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
