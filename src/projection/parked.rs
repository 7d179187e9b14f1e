//! Parked events: what a follower could not handle, kept in `views.db` with the error (follower, position,
//! error) so the follower goes on. `/admin/projections` lists them with re-drive (apply it again, after a fix)
//! and discard (an admin's explicit decision, logged); `/healthz` answers 503 while any is parked.

use super::{Projection, apply_one};
use crate::journal::{JournalReader, Position, StoredEvent, UnreadableEvent};
use rusqlite::{Connection, Transaction, params};

/// An event a follower could not handle, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unhandled {
    pub position: Position,
    pub stream_id: String,
    pub event_type: String,
    pub error: String,
}

impl Unhandled {
    pub fn of(event: &StoredEvent, error: String) -> Self {
        Self {
            position: event.position,
            stream_id: event.stream_id.to_string(),
            event_type: event.event_type.to_owned(),
            error,
        }
    }

    pub fn unreadable(event: &UnreadableEvent) -> Self {
        Self {
            position: event.position,
            stream_id: event.stream_id.clone(),
            event_type: event.event_type.clone(),
            error: format!("cannot be read: {}", event.error),
        }
    }
}

/// One parked event as the admin page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedEvent {
    pub follower: String,
    pub position: Position,
    pub stream_id: String,
    pub event_type: String,
    pub error: String,
    pub parked_at: jiff::Timestamp,
    pub attempts: u32,
}

/// Parks an event inside the follower's transaction (a second failure of the same event counts an attempt).
pub fn park(tx: &Transaction<'_>, follower: &str, event: &Unhandled) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO parked_events (follower, position, stream_id, event_type, error, parked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (follower, position) DO UPDATE SET error = excluded.error, parked_at = excluded.parked_at,
                                                         attempts = attempts + 1",
    )?
    .execute(params![
        follower,
        event.position as i64,
        event.stream_id,
        event.event_type,
        event.error,
        jiff::Timestamp::now().as_microsecond()
    ])?;
    Ok(())
}

/// The parked events, oldest first: all of them, or the first `limit`.
pub fn list(conn: &Connection, limit: Option<usize>) -> rusqlite::Result<Vec<ParkedEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT follower, position, stream_id, event_type, error, parked_at, attempts FROM parked_events
         ORDER BY position, follower LIMIT ?1",
    )?;
    // SQLite reads a negative LIMIT as "no limit".
    let limit = limit.map_or(-1, |n| n as i64);
    let rows = stmt.query_map([limit], |r| {
        Ok(ParkedEvent {
            follower: r.get(0)?,
            position: r.get::<_, i64>(1)? as Position,
            stream_id: r.get(2)?,
            event_type: r.get(3)?,
            error: r.get(4)?,
            parked_at: crate::journal::from_micros(r.get(5)?),
            attempts: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// How many events are parked in all.
pub fn count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM parked_events", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// How many events are parked, per follower.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT follower, COUNT(*) FROM parked_events GROUP BY follower ORDER BY follower")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

/// What a re-drive of a parked event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// It applied: the row is gone.
    Applied,
    /// It failed again; the error is updated and the event stays parked.
    FailedAgain(String),
    /// Nothing is parked at that position for that follower.
    NotParked,
}

/// Applies a parked event again (after a fix, or a change of config) and un-parks it when it succeeds.
pub fn redrive(
    projection: &mut dyn Projection,
    journal: &JournalReader,
    views: &mut Connection,
    position: Position,
) -> anyhow::Result<Redriven> {
    let mut tx = views.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let parked: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM parked_events WHERE follower = ?1 AND position = ?2)",
        params![projection.name(), position as i64],
        |r| r.get(0),
    )?;
    if !parked {
        return Ok(Redriven::NotParked);
    }
    let outcome = match journal.event_at(position)? {
        None => Redriven::FailedAgain(format!("no event at position {position}")),
        Some(Err(unreadable)) => Redriven::FailedAgain(Unhandled::unreadable(&unreadable).error),
        Some(Ok(event)) => match apply_one(projection, &mut tx, &event)? {
            None => Redriven::Applied,
            Some(error) => Redriven::FailedAgain(error),
        },
    };
    match &outcome {
        Redriven::Applied => {
            tx.execute(
                "DELETE FROM parked_events WHERE follower = ?1 AND position = ?2",
                params![projection.name(), position as i64],
            )?;
            tracing::info!(follower = projection.name(), position, "parked event re-driven");
        }
        Redriven::FailedAgain(error) => {
            tx.execute(
                "UPDATE parked_events SET error = ?3, attempts = attempts + 1, parked_at = ?4
                 WHERE follower = ?1 AND position = ?2",
                params![
                    projection.name(),
                    position as i64,
                    error,
                    jiff::Timestamp::now().as_microsecond()
                ],
            )?;
        }
        Redriven::NotParked => {}
    }
    tx.commit()?;
    Ok(outcome)
}

/// Gives up on a parked event for one follower: an admin's explicit decision, logged with who made it. The
/// event stays in the journal; only this follower's read tables go without it.
pub fn discard(views: &Connection, follower: &str, position: Position, by: &str) -> anyhow::Result<bool> {
    let removed = views.execute(
        "DELETE FROM parked_events WHERE follower = ?1 AND position = ?2",
        params![follower, position as i64],
    )?;
    if removed > 0 {
        tracing::warn!(
            follower,
            position,
            by,
            "parked event discarded: this follower will go without it"
        );
    }
    Ok(removed > 0)
}
