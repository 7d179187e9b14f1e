//! Reading the presence read tables: who is inside now, per zone (`/muster`). Every subject id a page shows about
//! presence comes from here, the one place forgetting a person has to blank.

use rusqlite::Connection;

/// One person inside, as the muster list shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct InsideRow {
    pub subject: String,
    pub zone: String,
    pub since: Option<i64>,
    pub last_seen_at: i64,
    pub last_seen_device: String,
}

/// Everyone inside, by zone, then by when they came in.
pub fn inside(conn: &Connection) -> rusqlite::Result<Vec<InsideRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT subject, zone, since, last_seen_at, last_seen_device FROM presence WHERE inside = 1
         ORDER BY zone, since, subject",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(InsideRow {
            subject: r.get(0)?,
            zone: r.get(1)?,
            since: r.get(2)?,
            last_seen_at: r.get(3)?,
            last_seen_device: r.get(4)?,
        })
    })?;
    rows.collect()
}
