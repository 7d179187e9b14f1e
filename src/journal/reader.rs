//! Read-only queries on the journal: a stream's events, events after a position, snapshots, recent message ids.
//! Every decoded event passes through `codec`'s decoders, the one upcasting path. Followers read with
//! [`JournalReader::events_after_lenient`], which hands back an event that cannot be read as an
//! [`UnreadableEvent`] instead of failing the batch, so one bad row is parked rather than stopping them.

use super::{Actor, Position, StoredEvent, from_micros};
use crate::codec::{self, EventCodec};
use crate::domain::{DeviceEvent, DeviceId, DeviceKind, StreamName};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;

/// A saved fold of one stream.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: u64,
    pub state_schema: u32,
    pub format: u8,
    pub state: Vec<u8>,
}

/// A read connection to `journal.db`. Cheap to open; not shared between threads.
pub struct JournalReader {
    conn: Connection,
}

const EVENT_COLUMNS: &str =
    "position, stream_id, version, event_type, schema, format, occurred_at, recorded_at, causation, payload, actor";

/// A journal row that could not be read as an event: a payload that does not decode, a kind or schema this
/// program does not know, a malformed stream name.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableEvent {
    pub position: Position,
    pub stream_id: String,
    pub event_type: String,
    pub error: String,
}

impl std::fmt::Display for UnreadableEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event at position {} ({} of stream {}) cannot be read: {}",
            self.position, self.event_type, self.stream_id, self.error
        )
    }
}

impl std::error::Error for UnreadableEvent {}

/// Reads one row. Text columns are borrowed until the row is known to be good, so a good row costs only the
/// allocations its event needs (this runs for every event on replay and rebuild).
fn stored_event_lenient(row: &Row<'_>) -> rusqlite::Result<Result<StoredEvent, UnreadableEvent>> {
    let position: i64 = row.get(0)?;
    let stream_id = row.get_ref(1)?.as_str()?;
    let event_type = row.get_ref(3)?.as_str()?;
    let schema: u32 = row.get(4)?;
    let format: u8 = row.get(5)?;
    let unreadable = |error: String| UnreadableEvent {
        position: position as Position,
        stream_id: stream_id.to_owned(),
        event_type: event_type.to_owned(),
        error,
    };
    let stream = match StreamName::parse(stream_id) {
        Ok(stream) => stream,
        Err(error) => return Ok(Err(unreadable(error.to_string()))),
    };
    let event = match codec::decode_any(&stream, event_type, schema, format, row.get_ref(9)?.as_blob()?) {
        Ok(event) => event,
        Err(error) => return Ok(Err(unreadable(error.to_string()))),
    };
    Ok(Ok(StoredEvent {
        position: position as u64,
        stream_id: stream,
        version: row.get::<_, i64>(2)? as u64,
        event_type: event.event_type(),
        schema,
        occurred_at: from_micros(row.get(6)?),
        recorded_at: from_micros(row.get(7)?),
        causation: row.get(8)?,
        actor: row.get_ref(10)?.as_str_or_null()?.map(actor_of),
        event,
    }))
}

thread_local! {
    /// The actor of the row read last on this thread: rows come in runs from one gateway or policy, so most
    /// rows share it instead of allocating their own copy.
    static LAST_ACTOR: std::cell::RefCell<Option<Actor>> = const { std::cell::RefCell::new(None) };
}

fn actor_of(text: &str) -> Actor {
    LAST_ACTOR.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(actor) = last.as_ref()
            && actor.as_str() == text
        {
            return actor.clone();
        }
        let actor = Actor::from_stored(text.to_owned());
        *last = Some(actor.clone());
        actor
    })
}

fn stored_event(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<StoredEvent>> {
    Ok(stored_event_lenient(row)?.map_err(anyhow::Error::from))
}

/// One event of a stream, decoded as its own kind's event type (recovery of an aggregate).
pub struct StreamEvent<E> {
    pub version: u64,
    pub event: E,
}

impl JournalReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            conn: crate::db::open_readonly(path)?,
        })
    }

    /// Wraps an existing connection (tests, the writer's own checks).
    pub fn from_connection(conn: Connection) -> Self {
        Self { conn }
    }

    /// The position of the newest event, 0 for an empty journal.
    pub fn head(&self) -> anyhow::Result<Position> {
        let head: Option<i64> = self
            .conn
            .query_row("SELECT MAX(position) FROM events", [], |r| r.get(0))?;
        Ok(head.unwrap_or(0) as u64)
    }

    /// Up to `limit` events after `after`, oldest first; fails on the first that cannot be read.
    pub fn events_after(&self, after: Position, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        self.events_after_lenient(after, limit)?
            .into_iter()
            .map(|e| e.map_err(anyhow::Error::from))
            .collect()
    }

    /// Up to `limit` rows after `after`, oldest first, each an event or why it cannot be read: what followers
    /// read, so one unreadable row is parked instead of stopping them. `Err` only when SQLite fails.
    pub fn events_after_lenient(
        &self,
        after: Position,
        limit: usize,
    ) -> anyhow::Result<Vec<Result<StoredEvent, UnreadableEvent>>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after as i64, limit as i64], stored_event_lenient)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` rows of the given event types after `after`, oldest first: what a follower that applies only
    /// some types reads, without decoding (or even visiting) the others. Each type is its own range of the
    /// `events_by_type` index, read up to `limit` rows, and the ranges are merged: a batch costs at most `limit`
    /// rows per type however many of them lie ahead.
    pub fn events_of_types_after(
        &self,
        types: &[&str],
        after: Position,
        limit: usize,
    ) -> anyhow::Result<Vec<Result<StoredEvent, UnreadableEvent>>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let ranges: Vec<String> = (0..types.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events INDEXED BY events_by_type
                     WHERE event_type = ?{} AND position > ?1 ORDER BY position LIMIT ?2)",
                    i + 3
                )
            })
            .collect();
        let sql = format!("{} ORDER BY position LIMIT ?2", ranges.join(" UNION ALL "));
        let mut values = vec![
            rusqlite::types::Value::Integer(after as i64),
            rusqlite::types::Value::Integer(limit as i64),
        ];
        values.extend(types.iter().map(|t| rusqlite::types::Value::Text((*t).to_owned())));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), stored_event_lenient)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` rows of one aggregate kind's streams (`alarm`) after `after` and up to `up_to`, oldest
    /// first: what a follower of one kind reads without decoding every other event.
    pub fn kind_events_between(
        &self,
        kind: &str,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> anyhow::Result<Vec<Result<StoredEvent, UnreadableEvent>>> {
        // Stream names are `kind:id`; ':' + 1 is ';', so the range holds exactly that kind's streams.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE position > ?1 AND position <= ?2 AND stream_id >= ?3 || ':' AND stream_id < ?3 || ';'
             ORDER BY position LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![after as i64, up_to as i64, kind, limit as i64],
            stored_event_lenient,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One event by position, or why it cannot be read (`None`: no such position).
    pub fn event_at(&self, position: Position) -> anyhow::Result<Option<Result<StoredEvent, UnreadableEvent>>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE position = ?1"))?;
        Ok(stmt.query_row([position as i64], stored_event_lenient).optional()?)
    }

    /// Calls `f` for every event after `after`, oldest first, without holding them all in memory.
    pub fn for_each_after(
        &self,
        after: Position,
        mut f: impl FnMut(StoredEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position"
        ))?;
        let mut rows = stmt.query(params![after as i64])?;
        while let Some(row) = rows.next()? {
            f(stored_event(row)??)?;
        }
        Ok(())
    }

    /// A stream's `FactVoided` events after `after`, oldest first: read through the type index, since voids are
    /// rare even in a stream of millions of passages.
    pub fn voids_after(&self, stream: &str, after: Position) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE event_type = 'FactVoided' AND position > ?2 AND stream_id = ?1 ORDER BY position"
        ))?;
        let rows = stmt.query_map(params![stream, after as i64], stored_event)?;
        rows.map(|r| r?).collect()
    }

    /// The state archival carried forward for a stream, with its version, when it has one (read through the type
    /// index: one such row per archived stream at most, however long the stream; left to itself SQLite walks the
    /// stream's own index backwards and looks up every row's type, which took half of an archival run).
    pub fn carried_forward(&self, stream: &str) -> anyhow::Result<Option<(u64, codec::CarriedForward)>> {
        let row: Option<(i64, Vec<u8>, u32, u8)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT version, payload, schema, format FROM events INDEXED BY events_by_type
                 WHERE event_type = '{}' AND stream_id = ?1 ORDER BY version DESC LIMIT 1",
                codec::CARRIED_FORWARD
            ))?
            .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((version, payload, schema, format)) = row else {
            return Ok(None);
        };
        let name = StreamName::parse(stream)?;
        match codec::decode_any(&name, codec::CARRIED_FORWARD, schema, format, &payload)? {
            codec::AnyEvent::Carried(carried) => Ok(Some((version.max(0) as u64, carried))),
            _ => Ok(None),
        }
    }

    /// A stream's events with a version above `after_version`, in order.
    pub fn stream_events(
        &self,
        stream: &(impl AsRef<str> + ?Sized),
        after_version: u64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version"
        ))?;
        let rows = stmt.query_map(params![stream.as_ref(), after_version as i64], stored_event)?;
        rows.map(|r| r?).collect()
    }

    /// A stream's events above `after_version` decoded as its own kind's events: how an aggregate recovers.
    pub fn stream_events_as<E: EventCodec>(
        &self,
        stream: &StreamName,
        after_version: u64,
    ) -> anyhow::Result<Vec<StreamEvent<E>>> {
        self.stream_events_as_between(stream, after_version, i64::MAX as u64)
    }

    /// [`Self::stream_events_as`] up to `up_to_version` (archival folds only what it moves out).
    pub fn stream_events_as_between<E: EventCodec>(
        &self,
        stream: &StreamName,
        after_version: u64,
        up_to_version: u64,
    ) -> anyhow::Result<Vec<StreamEvent<E>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT position, version, event_type, schema, format, payload FROM events
             WHERE stream_id = ?1 AND version > ?2 AND version <= ?3 ORDER BY version",
        )?;
        let mut rows = stmt.query(params![
            stream.as_str(),
            after_version as i64,
            up_to_version.min(i64::MAX as u64) as i64
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let position: i64 = row.get(0)?;
            let event_type: String = row.get(2)?;
            let event = codec::decode_event::<E>(&event_type, row.get(3)?, row.get(4)?, row.get_ref(5)?.as_blob()?)
                .with_context(|| format!("event at position {position} of stream {stream}"))?;
            out.push(StreamEvent {
                version: row.get::<_, i64>(1)? as u64,
                event,
            });
        }
        Ok(out)
    }

    /// Newest first, with optional filters: the event browser's page.
    pub fn page(
        &self,
        stream: Option<&str>,
        event_type: Option<&str>,
        before: Option<Position>,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        // With a stream, walk its (stream_id, version) index backwards: within a stream versions rise with
        // positions, so this is the same order, and a quiet device's page does not scan the whole journal.
        let sql = if stream.is_some() {
            format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE stream_id = ?1 AND (?2 IS NULL OR event_type = ?2) AND position < ?3
                 ORDER BY version DESC LIMIT ?4"
            )
        } else {
            format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE ?1 IS NULL AND (?2 IS NULL OR event_type = ?2) AND position < ?3
                 ORDER BY position DESC LIMIT ?4"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let before = before.map(|p| p as i64).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![stream, event_type, before, limit as i64], stored_event)?;
        rows.map(|r| r?).collect()
    }

    /// The current version of a stream, 0 when it has no events.
    pub fn stream_version(&self, stream: &(impl AsRef<str> + ?Sized)) -> anyhow::Result<u64> {
        let v: Option<i64> = self.conn.query_row(
            "SELECT MAX(version) FROM events WHERE stream_id = ?1",
            [stream.as_ref()],
            |r| r.get(0),
        )?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Every stream that was ever commissioned, with the kind its first `Commissioned` event names.
    pub fn commissioned_streams(&self) -> anyhow::Result<Vec<(DeviceId, DeviceKind)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_type = 'Commissioned' AND version = 1 ORDER BY position"
        ))?;
        let rows = stmt.query_map([], stored_event)?;
        let mut out = Vec::new();
        for row in rows {
            let stored = row??;
            if let Some((id, DeviceEvent::Commissioned(c))) = stored.device()
                && let Ok(id) = DeviceId::parse(id)
            {
                out.push((id, c.kind));
            }
        }
        Ok(out)
    }

    /// The latest snapshot of a stream, if any was taken.
    pub fn snapshot(&self, stream: &StreamName) -> anyhow::Result<Option<Snapshot>> {
        let snapshot = self
            .conn
            .query_row(
                "SELECT version, state_schema, format, state FROM snapshots WHERE stream_id = ?1",
                [stream.as_str()],
                |r| {
                    Ok(Snapshot {
                        version: r.get::<_, i64>(0)? as u64,
                        state_schema: r.get(1)?,
                        format: r.get(2)?,
                        state: r.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(snapshot)
    }

    /// The causations (message ids) of a stream's newest `limit` events, newest first: the actor's fast duplicate
    /// check. Read from the events rather than `processed_messages`, whose per-stream index cost every commit a
    /// page per busy stream; a message that recorded nothing is missing here and is caught by the writer instead.
    pub fn recent_msg_ids(&self, stream: &StreamName, limit: usize) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT causation FROM events WHERE stream_id = ?1 AND causation IS NOT NULL
             ORDER BY version DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![stream.as_str(), limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The underlying connection, for callers that run their own queries (tests, `backup`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
