//! Reading the presence read tables: who is inside now, per zone (`/muster`), and who passed when (attendance).
//! People are read as their pseudonyms; pages reveal them through the subject vault ("forgotten" once forgotten).

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

/// Identified passages recorded between `start` and `end` (µs), one subject's or everyone's, by subject then
/// time: (subject, direction, at µs).
pub fn identified_passages(
    conn: &Connection,
    start: i64,
    end: i64,
    subject: Option<&str>,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut statement = conn.prepare_cached(
        "SELECT subject, direction, at FROM identified_passages
         WHERE at >= ?1 AND at < ?2 AND (?3 IS NULL OR subject = ?3)
         ORDER BY subject, at, position",
    )?;
    let rows = statement.query_map(rusqlite::params![start, end, subject], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}
