//! The notifier's outbox in `journal.db`: one row per notification to one channel, its attempts and what became
//! of it; channels their receivers switched off; and how far the notifier has read. Every query on those tables
//! lives here.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Milliseconds since the epoch, as the outbox stores instants.
pub fn millis(at: jiff::Timestamp) -> i64 {
    at.as_millisecond()
}

/// A notification to make durable.
pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub channel: &'a str,
    pub alarm: &'a str,
    pub position: u64,
    pub reason: &'a str,
    pub severity: &'a str,
    pub alarm_state: &'a str,
    pub body: &'a str,
    pub created_at: i64,
    /// Not before this (quiet hours); `created_at` when it may go at once.
    pub due_at: i64,
    pub held_for: Option<&'a str>,
    /// Told only if still needed when `due_at` comes (a flapping alarm's change within the cooldown).
    pub deferred: bool,
}

/// Adds a notification; one with the same id (written before a crash, read again after it) is kept as it was.
pub fn insert(tx: &Transaction<'_>, d: &NewDelivery<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO notification_deliveries
             (id, channel, alarm, position, reason, severity, alarm_state, body, created_at, status,
              next_attempt_at, held_for)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?12, ?10, ?11)",
    )?
    .execute(params![
        d.id,
        d.channel,
        d.alarm,
        d.position as i64,
        d.reason,
        d.severity,
        d.alarm_state,
        d.body,
        d.created_at,
        d.due_at,
        d.held_for,
        if d.deferred { "deferred" } else { "pending" }
    ])?;
    Ok(())
}

/// Why a deferred notification waits: a flapping alarm changed again less than its channel's cooldown after the
/// channel told the previous change.
pub const HELD_FOR_COOLDOWN: &str = "cooldown";

/// The statuses of notifications made for a receiver (waiting, sent or given up on); `deferred` ones wait to be
/// told only if still needed when the cooldown ends, `unneeded` ones turned out not to be.
const TOLD: &str = "('pending', 'delivered', 'failed')";

/// The notification of `alarm` the channel defers, if there is one (at most one per channel and alarm).
pub fn deferred_of(tx: &Transaction<'_>, channel: &str, alarm: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached(
        "SELECT id FROM notification_deliveries WHERE channel = ?1 AND alarm = ?2 AND status = 'deferred'",
    )?
    .query_row(params![channel, alarm], |r| r.get(0))
    .optional()
}

/// Makes the deferred notification `id` tell the alarm's latest state instead (same id: it was never sent).
pub fn update_deferred(tx: &Transaction<'_>, id: &str, d: &NewDelivery<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE notification_deliveries SET position = ?2, reason = ?3, severity = ?4, alarm_state = ?5, body = ?6
         WHERE id = ?1 AND status = 'deferred'",
    )?
    .execute(params![
        id,
        d.position as i64,
        d.reason,
        d.severity,
        d.alarm_state,
        d.body
    ])?;
    Ok(())
}

/// A deferred notification the receiver turned out not to need (it already knows the state it tells).
pub fn drop_deferred(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE notification_deliveries SET status = 'unneeded', next_attempt_at = NULL
         WHERE id = ?1 AND status = 'deferred'",
    )?
    .execute([id])?;
    Ok(())
}

/// A deferred notification whose cooldown has ended.
pub struct DeferredDue {
    pub id: String,
    pub channel: String,
    pub alarm: String,
    pub alarm_state: String,
    pub severity: String,
}

/// The deferred notifications whose cooldown has ended by `now`.
pub fn deferred_due(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<Vec<DeferredDue>> {
    let mut statement = tx.prepare_cached(
        "SELECT id, channel, alarm, alarm_state, severity FROM notification_deliveries
         WHERE status = 'deferred' AND next_attempt_at <= ?1 ORDER BY rowid",
    )?;
    let rows = statement.query_map([now], |r| {
        Ok(DeferredDue {
            id: r.get(0)?,
            channel: r.get(1)?,
            alarm: r.get(2)?,
            alarm_state: r.get(3)?,
            severity: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The alarm state the channel last told of `alarm` (`active_unacknowledged`, …), if it told any.
pub fn last_told_state(tx: &Transaction<'_>, channel: &str, alarm: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached(&format!(
        "SELECT alarm_state FROM notification_deliveries WHERE channel = ?1 AND alarm = ?2 AND status IN {TOLD}
         ORDER BY rowid DESC LIMIT 1"
    ))?
    .query_row(params![channel, alarm], |r| r.get(0))
    .optional()
}

/// Makes a deferred notification a pending one, due at `due_at` (made now, so the next cooldown counts from now).
pub fn release_deferred(
    tx: &Transaction<'_>,
    id: &str,
    now: i64,
    due_at: i64,
    held_for: Option<&str>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE notification_deliveries SET status = 'pending', created_at = ?2, next_attempt_at = ?3, held_for = ?4
         WHERE id = ?1 AND status = 'deferred'",
    )?
    .execute(params![id, now, due_at, held_for])?;
    Ok(())
}

/// When the channel last told of `alarm` for one of `reasons`, if it ever did.
pub fn last_told(conn: &Connection, channel: &str, alarm: &str, reasons: &[&str]) -> rusqlite::Result<Option<i64>> {
    let wanted = (0..reasons.len())
        .map(|i| format!("?{}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let values = [channel, alarm].into_iter().chain(reasons.iter().copied());
    conn.prepare_cached(&format!(
        "SELECT max(created_at) FROM notification_deliveries
         WHERE channel = ?1 AND alarm = ?2 AND reason IN ({wanted}) AND status IN {TOLD}"
    ))?
    .query_row(rusqlite::params_from_iter(values), |r| r.get(0))
}

/// An alarm a channel last told of as critical and unacknowledged, with that document.
pub struct Unanswered {
    pub alarm: String,
    pub position: u64,
    pub body: String,
    pub told_at: i64,
    pub escalations: u64,
}

/// The critical alarms whose latest notification on `channel` (made before `told_before`) still said active and
/// unacknowledged: each is due an escalation.
pub fn unanswered_critical(conn: &Connection, channel: &str, told_before: i64) -> rusqlite::Result<Vec<Unanswered>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT d.alarm, d.position, d.body, d.created_at,
                (SELECT count(*) FROM notification_deliveries e
                 WHERE e.channel = d.channel AND e.alarm = d.alarm AND e.reason = 'escalated')
         FROM notification_deliveries d
         WHERE d.rowid IN (SELECT max(rowid) FROM notification_deliveries
                           WHERE channel = ?1 AND severity = 'critical' AND status IN {TOLD} GROUP BY alarm)
           AND d.alarm NOT IN (SELECT alarm FROM notification_deliveries WHERE channel = ?1 AND status = 'deferred')
           AND d.alarm_state = 'active_unacknowledged' AND d.created_at <= ?2"
    ))?;
    let rows = statement.query_map(params![channel, told_before], |r| {
        Ok(Unanswered {
            alarm: r.get(0)?,
            position: r.get::<_, i64>(1)? as u64,
            body: r.get(2)?,
            told_at: r.get(3)?,
            escalations: r.get::<_, i64>(4)? as u64,
        })
    })?;
    rows.collect()
}

/// A notification waiting to go.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub alarm: String,
    pub alarm_state: String,
    pub body: String,
    pub created_at: i64,
    pub attempts: u32,
}

/// The channel's pending notifications due by `now`, oldest first.
pub fn due(conn: &Connection, channel: &str, now: i64, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, alarm, alarm_state, body, created_at, attempts FROM notification_deliveries
         WHERE channel = ?1 AND status = 'pending' AND next_attempt_at <= ?2
         ORDER BY rowid LIMIT ?3",
    )?;
    let rows = statement.query_map(params![channel, now, limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            alarm: r.get(1)?,
            alarm_state: r.get(2)?,
            body: r.get(3)?,
            created_at: r.get(4)?,
            attempts: r.get::<_, i64>(5)? as u32,
        })
    })?;
    rows.collect()
}

/// When the channel's next pending notification is due, if it has one.
pub fn next_due(conn: &Connection, channel: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT min(next_attempt_at) FROM notification_deliveries WHERE channel = ?1 AND status = 'pending'",
    )?
    .query_row([channel], |r| r.get(0))
}

pub fn delivered(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE notification_deliveries SET status = 'delivered', attempts = attempts + 1, last_attempt_at = ?2,
                delivered_at = ?2, next_attempt_at = NULL, held_for = NULL, last_error = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// A failed attempt: tried again at `retry_at`, or given up (`None`).
pub fn attempt_failed(
    conn: &Connection,
    id: &str,
    now: i64,
    error: &str,
    retry_at: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE notification_deliveries
         SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3, held_for = NULL,
             status = CASE WHEN ?4 IS NULL THEN 'failed' ELSE 'pending' END, next_attempt_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, now, error, retry_at])?;
    Ok(())
}

/// Sends a notification again (same id): a failed one, or a delivered one someone wants re-sent. Nothing else:
/// a pending one goes anyway, a deferred or unneeded one was never meant to be told as it is.
pub fn resend(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE notification_deliveries SET status = 'pending', next_attempt_at = ?2, held_for = NULL
         WHERE id = ?1 AND status IN ('delivered', 'failed')",
        params![id, now],
    )?;
    Ok(changed == 1)
}

/// The channel a notification belongs to.
pub fn channel_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT channel FROM notification_deliveries WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
}

/// Why the channel is switched off, if it is.
pub fn disabled(conn: &Connection, channel: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT disabled_why FROM notification_channels WHERE name = ?1 AND disabled_at IS NOT NULL")?
        .query_row([channel], |r| r.get(0))
        .optional()
}

pub fn disable(conn: &Connection, channel: &str, now: i64, why: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO notification_channels (name, disabled_at, disabled_why) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET disabled_at = ?2, disabled_why = ?3",
        params![channel, now, why],
    )?;
    Ok(())
}

pub fn enable(conn: &Connection, channel: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM notification_channels WHERE name = ?1", [channel])?;
    Ok(())
}

pub fn checkpoint(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    conn.query_row("SELECT position FROM notifier_checkpoint WHERE id = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .optional()
    .map(|p| p.map(|p| p as u64))
}

pub fn set_checkpoint(tx: &Transaction<'_>, position: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO notifier_checkpoint (id, position) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET position = ?1",
    )?
    .execute([position as i64])?;
    Ok(())
}

/// A notification as the admin page lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub channel: String,
    pub alarm: String,
    pub reason: String,
    pub severity: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub held_for: Option<String>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// The latest notifications, newest first, optionally one status only.
pub fn recent(conn: &Connection, status: Option<&str>, limit: usize) -> rusqlite::Result<Vec<Listed>> {
    let mut statement = conn.prepare(
        "SELECT id, channel, alarm, reason, severity, status, attempts, created_at, next_attempt_at, held_for,
                last_error, delivered_at
         FROM notification_deliveries WHERE ?1 IS NULL OR status = ?1 ORDER BY rowid DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![status, limit as i64], |r| {
        Ok(Listed {
            id: r.get(0)?,
            channel: r.get(1)?,
            alarm: r.get(2)?,
            reason: r.get(3)?,
            severity: r.get(4)?,
            status: r.get(5)?,
            attempts: r.get(6)?,
            created_at: r.get(7)?,
            next_attempt_at: r.get(8)?,
            held_for: r.get(9)?,
            last_error: r.get(10)?,
            delivered_at: r.get(11)?,
        })
    })?;
    rows.collect()
}

/// Per channel: pending, delivered and failed notifications.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut statement =
        conn.prepare("SELECT channel, status, count(*) FROM notification_deliveries GROUP BY channel, status")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}
