//! Reading work orders from their read tables (`work_orders`, `work_order_steps`, `service_meters` in views.db):
//! the filtered list the CLI, the pages and the CSV share, one order with its timeline, the counts for the
//! dashboard and `/metrics`, and a turnstile's service meter.

use crate::domain::work_order::{Status, WorkOrderKind, WorkOrderNumber};
use rusqlite::{Connection, OptionalExtension, params_from_iter, types::Value};

/// Rows a page lists at most (the CSV has every one).
pub const PAGE_LIMIT: usize = 500;

/// One work order as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkOrderRow {
    pub number: WorkOrderNumber,
    pub device: String,
    pub zone: String,
    pub kind: String,
    pub cause: String,
    pub title: String,
    pub state: String,
    pub opened_at: i64,
    pub due_at: Option<i64>,
    pub assignee: Option<String>,
    pub resolved_at: Option<i64>,
    pub reopened: i64,
}

impl WorkOrderRow {
    pub fn id(&self) -> String {
        self.number.to_string()
    }

    pub fn is_active(&self) -> bool {
        Status::parse(&self.state).is_ok_and(Status::is_active)
    }

    /// Still to be done and past its due time.
    pub fn is_overdue(&self, now_micros: i64) -> bool {
        self.is_active() && self.due_at.is_some_and(|due| due < now_micros)
    }

    /// The state as people read it (`in progress`).
    pub fn state_words(&self) -> String {
        Status::parse(&self.state).map_or_else(|_| self.state.clone(), |s| s.to_string())
    }
}

/// Which orders to list. `state` is a state name or `active` (neither resolved nor cancelled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub state: Option<String>,
    pub device: Option<String>,
    pub zone: Option<String>,
    pub kind: Option<WorkOrderKind>,
    /// Only orders still to be done whose due time has passed (at this instant, µs).
    pub overdue_at: Option<i64>,
    pub limit: Option<usize>,
}

impl Filter {
    /// Checks a state filter as people type it.
    pub fn parse_state(text: &str) -> Result<String, String> {
        if text == "active" {
            return Ok(text.to_owned());
        }
        Status::parse(text).map(|s| s.as_str().to_owned())
    }
}

const COLUMNS: &str = "number, device_id, zone, kind, cause, title, state, opened_at, due_at, assignee, \
                       resolved_at, reopened";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkOrderRow> {
    Ok(WorkOrderRow {
        number: WorkOrderNumber::new(r.get::<_, i64>(0)?.max(0) as u64),
        device: r.get(1)?,
        zone: r.get(2)?,
        kind: r.get(3)?,
        cause: r.get(4)?,
        // A fault's detail (device-sent) is part of the title: nothing in it may hide or reorder text.
        title: crate::visible::visible(&r.get::<_, String>(5)?),
        state: r.get(6)?,
        opened_at: r.get(7)?,
        due_at: r.get(8)?,
        assignee: r.get(9)?,
        resolved_at: r.get(10)?,
        reopened: r.get(11)?,
    })
}

/// The orders the filter selects, newest first.
pub fn list(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<WorkOrderRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM work_orders WHERE 1 = 1");
    let mut values: Vec<Value> = Vec::new();
    match filter.state.as_deref() {
        Some("active") => sql.push_str(" AND state NOT IN ('resolved', 'cancelled')"),
        Some(state) => {
            sql.push_str(" AND state = ?");
            values.push(Value::Text(state.to_owned()));
        }
        None => {}
    }
    if let Some(device) = &filter.device {
        sql.push_str(" AND device_id = ?");
        values.push(Value::Text(device.clone()));
    }
    if let Some(zone) = &filter.zone {
        sql.push_str(" AND zone = ?");
        values.push(Value::Text(zone.clone()));
    }
    if let Some(kind) = filter.kind {
        sql.push_str(" AND kind = ?");
        values.push(Value::Text(kind.as_str().to_owned()));
    }
    if let Some(now) = filter.overdue_at {
        sql.push_str(" AND state NOT IN ('resolved', 'cancelled') AND due_at < ?");
        values.push(Value::Integer(now));
    }
    sql.push_str(" ORDER BY number DESC");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), row)?;
    rows.collect()
}

/// One order.
pub fn one(conn: &Connection, number: WorkOrderNumber) -> rusqlite::Result<Option<WorkOrderRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM work_orders WHERE number = ?1"))?
        .query_row([number.get() as i64], row)
        .optional()
}

/// One step of an order's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: i64,
    pub step: String,
    pub actor: String,
    pub text: String,
}

/// An order's timeline, oldest first.
pub fn steps(conn: &Connection, number: WorkOrderNumber) -> rusqlite::Result<Vec<Step>> {
    let mut statement =
        conn.prepare_cached("SELECT at, step, actor, text FROM work_order_steps WHERE number = ?1 ORDER BY position")?;
    let rows = statement.query_map([number.get() as i64], |r| {
        Ok(Step {
            at: r.get(0)?,
            step: r.get(1)?,
            actor: r.get(2)?,
            text: crate::visible::visible(&r.get::<_, String>(3)?),
        })
    })?;
    rows.collect()
}

/// How many orders are still to be done, by kind, and how many of them are overdue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub corrective: i64,
    pub preventive: i64,
    pub overdue: i64,
}

impl Counts {
    pub fn active(&self) -> i64 {
        self.corrective + self.preventive
    }
}

pub fn counts(conn: &Connection, now_micros: i64) -> rusqlite::Result<Counts> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(kind = 'corrective'), 0), COALESCE(SUM(kind = 'preventive'), 0),
                COALESCE(SUM(due_at < ?1), 0)
         FROM work_orders WHERE state NOT IN ('resolved', 'cancelled')",
    )?
    .query_row([now_micros], |r| {
        Ok(Counts {
            corrective: r.get(0)?,
            preventive: r.get(1)?,
            overdue: r.get(2)?,
        })
    })
}

/// A turnstile's passages since its last service and when that was (`None`: never serviced).
pub fn service_meter(conn: &Connection, device: &str) -> rusqlite::Result<(i64, Option<i64>)> {
    Ok(conn
        .prepare_cached("SELECT passages, since FROM service_meters WHERE device_id = ?1")?
        .query_row([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, None)))
}
