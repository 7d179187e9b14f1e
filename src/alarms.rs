//! Reading alarms from their read tables (`alarms`, `alarm_steps` in views.db): the list the pages and the CSV
//! share (active first, then by severity and newest), one alarm with its timeline, and the active counts the
//! banner and the dashboard show.

use crate::domain::alarm::AlarmNumber;
use rusqlite::{Connection, OptionalExtension, params};

/// Rows a page lists at most (the CSV has every one).
pub const PAGE_LIMIT: usize = 500;

/// One alarm as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    pub number: AlarmNumber,
    pub alarm_type: String,
    pub severity: String,
    pub source: String,
    pub zone: Option<String>,
    pub detail: String,
    pub active: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub cleared_at: Option<i64>,
}

impl AlarmRow {
    pub fn id(&self) -> String {
        self.number.to_string()
    }

    /// `active_unacknowledged`, `active_acknowledged`, `cleared_unacknowledged` or `cleared_acknowledged`.
    pub fn state(&self) -> &'static str {
        match (self.active, self.acknowledged_by.is_some()) {
            (true, false) => "active_unacknowledged",
            (true, true) => "active_acknowledged",
            (false, false) => "cleared_unacknowledged",
            (false, true) => "cleared_acknowledged",
        }
    }

    /// The state as people read it.
    pub fn state_words(&self) -> &'static str {
        match (self.active, self.acknowledged_by.is_some()) {
            (true, false) => "active, not acknowledged",
            (true, true) => "active, acknowledged",
            (false, false) => "cleared, not acknowledged",
            (false, true) => "cleared",
        }
    }
}

const COLUMNS: &str = "number, alarm_type, severity, source, zone, detail, active, acknowledged_by, acknowledged_at,
                       first_seen, last_seen, count, cleared_at";

fn row(r: &rusqlite::Row) -> rusqlite::Result<AlarmRow> {
    Ok(AlarmRow {
        number: AlarmNumber::new(r.get::<_, i64>(0)? as u64),
        alarm_type: r.get(1)?,
        severity: r.get(2)?,
        source: r.get(3)?,
        zone: r.get(4)?,
        detail: r.get(5)?,
        active: r.get::<_, i64>(6)? != 0,
        acknowledged_by: r.get(7)?,
        acknowledged_at: r.get(8)?,
        first_seen: r.get(9)?,
        last_seen: r.get(10)?,
        count: r.get(11)?,
        cleared_at: r.get(12)?,
    })
}

/// Alarms, active first, then by severity and the latest sighting; `limit` rows at most when given.
pub fn list(conn: &Connection, active_only: bool, limit: Option<usize>) -> rusqlite::Result<Vec<AlarmRow>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alarms WHERE active = 1 OR ?1 = 0
         ORDER BY active DESC, severity_rank DESC, last_seen DESC, number DESC LIMIT ?2"
    ))?;
    let limit = limit.map_or(-1, |l| l as i64);
    statement.query_map(params![active_only as i64, limit], row)?.collect()
}

pub fn one(conn: &Connection, number: AlarmNumber) -> rusqlite::Result<Option<AlarmRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM alarms WHERE number = ?1"),
        [number.get() as i64],
        row,
    )
    .optional()
}

/// One step of an alarm's life.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmStepRow {
    pub at: i64,
    pub step: String,
    pub actor: String,
    pub text: String,
}

pub fn steps(conn: &Connection, number: AlarmNumber) -> rusqlite::Result<Vec<AlarmStepRow>> {
    let mut statement =
        conn.prepare_cached("SELECT at, step, actor, text FROM alarm_steps WHERE number = ?1 ORDER BY position")?;
    statement
        .query_map([number.get() as i64], |r| {
            Ok(AlarmStepRow {
                at: r.get(0)?,
                step: r.get(1)?,
                actor: r.get(2)?,
                text: r.get(3)?,
            })
        })?
        .collect()
}

/// Active alarms: how many in all, how many nobody has acknowledged (the dashboard), and how many of those are
/// critical (the banner).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActiveCounts {
    pub active: i64,
    pub unacknowledged: i64,
    pub critical_unacknowledged: i64,
}

pub fn active_counts(conn: &Connection) -> rusqlite::Result<ActiveCounts> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(acknowledged_by IS NULL), 0),
                COALESCE(SUM(severity = 'critical' AND acknowledged_by IS NULL), 0)
         FROM alarms WHERE active = 1",
        [],
        |r| {
            Ok(ActiveCounts {
                active: r.get(0)?,
                unacknowledged: r.get(1)?,
                critical_unacknowledged: r.get(2)?,
            })
        },
    )
}
