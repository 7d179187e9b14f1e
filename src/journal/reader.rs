//! Read-only queries on the journal: a stream's events, events after a position, snapshots, recent message ids.
//! Every decoded event passes through `codec::decode_event`, the one upcasting path.

use super::{Position, StoredEvent, from_micros};
use crate::codec;
use crate::domain::{DeviceId, DeviceKind};
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
    "position, stream_id, version, event_type, schema, format, occurred_at, recorded_at, causation, payload";

fn stored_event(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<StoredEvent>> {
    let position: i64 = row.get(0)?;
    let stream_id: String = row.get(1)?;
    let version: i64 = row.get(2)?;
    let event_type: String = row.get(3)?;
    let schema: u32 = row.get(4)?;
    let format: u8 = row.get(5)?;
    let occurred_at: i64 = row.get(6)?;
    let recorded_at: i64 = row.get(7)?;
    let causation: Option<String> = row.get(8)?;
    let payload = row.get_ref(9)?.as_blob()?;
    Ok((|| {
        let event = codec::decode_event(&event_type, schema, format, payload)
            .with_context(|| format!("event at position {position}"))?;
        let stream_id = DeviceId::parse(&stream_id).with_context(|| format!("event at position {position}"))?;
        Ok(StoredEvent {
            position: position as u64,
            stream_id,
            version: version as u64,
            event_type,
            schema,
            occurred_at: from_micros(occurred_at),
            recorded_at: from_micros(recorded_at),
            causation,
            event,
        })
    })())
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

    /// Up to `limit` events after `after`, oldest first.
    pub fn events_after(&self, after: Position, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after as i64, limit as i64], stored_event)?;
        rows.map(|r| r?).collect()
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

    /// A stream's events with a version above `after_version`, in order.
    pub fn stream_events(&self, stream: &DeviceId, after_version: u64) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version"
        ))?;
        let rows = stmt.query_map(params![stream.as_str(), after_version as i64], stored_event)?;
        rows.map(|r| r?).collect()
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
    pub fn stream_version(&self, stream: &DeviceId) -> anyhow::Result<u64> {
        let v: Option<i64> = self.conn.query_row(
            "SELECT MAX(version) FROM events WHERE stream_id = ?1",
            [stream.as_str()],
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
            if let crate::domain::DeviceEvent::Commissioned(c) = stored.event {
                out.push((stored.stream_id, c.kind));
            }
        }
        Ok(out)
    }

    /// The latest snapshot of a stream, if any was taken.
    pub fn snapshot(&self, stream: &DeviceId) -> anyhow::Result<Option<Snapshot>> {
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

    /// The newest `limit` message ids handled for a stream: the actor's fast duplicate check.
    pub fn recent_msg_ids(&self, stream: &DeviceId, limit: usize) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT msg_id FROM processed_messages WHERE stream_id = ?1 ORDER BY position DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![stream.as_str(), limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The underlying connection, for callers that run their own queries (tests, `backup`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}
