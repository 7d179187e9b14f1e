//! The equipment report's figures, worked out by SQLite over the read tables: per device its uptime (time online
//! over time known), the faults opened and the mean time to repair of those cleared in a period, and the period's
//! latest fault episodes. Sums run inside SQLite (no row becomes a Rust value), so a year of a busy site is a scan
//! of its intervals and a covering-index scan of its episodes, not thousands of allocations.

use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::fmt;

/// An uptime in hundredths of a percent, rounded down so that a device down for a moment never shows 100.00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Uptime(u32);

impl fmt::Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// One device's figures for a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// `None` when nothing is known: no online/offline report covers any of the period.
    pub uptime: Option<Uptime>,
    /// Faults opened within the period.
    pub faults: i64,
    /// Mean time to repair, in whole seconds (rounded), of the episodes cleared within the period.
    pub mttr_seconds: Option<i64>,
}

/// A fault from its report to its all-clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub device: String,
    pub code: String,
    pub detail: String,
    pub opened_at: i64,
    pub cleared_at: Option<i64>,
}

/// Instants in microseconds: the period is `[start, end)`; intervals still open count up to `known_until` (the
/// period's end or now, whichever is earlier: nothing is known about the future).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    pub known_until: i64,
}

/// Every device's figures that the period has anything on; a device missing from the map has none.
pub fn figures(conn: &Connection, span: Span) -> rusqlite::Result<HashMap<String, Figures>> {
    let mut figures: HashMap<String, Figures> = HashMap::new();
    // Each interval clipped to [start, known_until); time before a device's first report is unknown, not down.
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, SUM(CASE WHEN state = 'online' THEN length ELSE 0 END), SUM(length) FROM (
             SELECT device_id, state, MAX(MIN(COALESCE(ended_at, ?2), ?2) - MAX(started_at, ?1), 0) AS length
             FROM equipment_availability WHERE started_at < ?2 AND (ended_at IS NULL OR ended_at > ?1)
         ) GROUP BY device_id",
    )?;
    let rows = stmt.query_map(params![span.start, span.known_until], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    for row in rows {
        let (device, online, known) = row?;
        figures.entry(device).or_default().uptime =
            (known > 0).then(|| Uptime((i128::from(online) * 10_000 / i128::from(known)) as u32));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT device_id,
                COALESCE(SUM(opened_at >= ?1), 0),
                COALESCE(SUM(cleared_at < ?2), 0),
                COALESCE(SUM(CASE WHEN cleared_at < ?2 THEN cleared_at - opened_at END), 0)
         FROM equipment_faults
         WHERE opened_at < ?2 AND (cleared_at IS NULL OR cleared_at >= ?1)
         GROUP BY device_id",
    )?;
    let rows = stmt.query_map(params![span.start, span.end], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (device, opened, repaired, repair_micros) = row?;
        let entry = figures.entry(device).or_default();
        entry.faults = opened;
        entry.mttr_seconds = (repaired > 0).then(|| (repair_micros / repaired + 500_000) / 1_000_000);
    }
    Ok(figures)
}

/// The period's latest fault episodes (every one it saw a part of: opened in it, cleared in it or open across
/// it), newest first, at most `limit`; and how many it saw in all.
pub fn latest_episodes(conn: &Connection, span: Span, limit: usize) -> rusqlite::Result<(Vec<Episode>, usize)> {
    const WITHIN: &str = "opened_at < ?2 AND (cleared_at IS NULL OR cleared_at >= ?1)";
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM equipment_faults WHERE {WITHIN}"))?
        .query_row(params![span.start, span.end], |r| r.get(0))?;
    let episodes = conn
        .prepare_cached(&format!(
            "SELECT device_id, code, detail, opened_at, cleared_at FROM equipment_faults WHERE {WITHIN}
             ORDER BY opened_at DESC, device_id DESC, code DESC LIMIT ?3"
        ))?
        .query_map(params![span.start, span.end, limit as i64], |r| {
            Ok(Episode {
                device: r.get(0)?,
                code: r.get(1)?,
                detail: r.get(2)?,
                opened_at: r.get(3)?,
                cleared_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((episodes, total as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn views() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open(&dir.path().join("views.db"), crate::config::Synchronous::Normal).unwrap();
        crate::db::migrate_views(&mut conn).unwrap();
        (dir, conn)
    }

    fn interval(conn: &Connection, state: &str, started_at: i64, ended_at: Option<i64>) {
        conn.execute(
            "INSERT INTO equipment_availability (device_id, state, started_at, ended_at) VALUES ('T1', ?1, ?2, ?3)",
            params![state, started_at, ended_at],
        )
        .unwrap();
    }

    fn episode(conn: &Connection, code: &str, opened_at: i64, cleared_at: Option<i64>) {
        conn.execute(
            "INSERT INTO equipment_faults (device_id, code, detail, opened_at, cleared_at) VALUES ('T1', ?1, '', ?2, ?3)",
            params![code, opened_at, cleared_at],
        )
        .unwrap();
    }

    fn t1(conn: &Connection, start: i64, end: i64, known_until: i64) -> Figures {
        let all = figures(
            conn,
            Span {
                start,
                end,
                known_until,
            },
        )
        .unwrap();
        all.get("T1").copied().unwrap_or_default()
    }

    fn uptime(conn: &Connection, start: i64, until: i64) -> Option<String> {
        t1(conn, start, until, until).uptime.map(|u| u.to_string())
    }

    #[test]
    fn uptime_is_online_time_over_known_time_within_the_period() {
        let (_dir, conn) = views();
        // Online 0..30 (20 of it inside 10..100), offline 30..40, online from 40 on (open, clipped to 100).
        interval(&conn, "online", 0, Some(30));
        interval(&conn, "offline", 30, Some(40));
        interval(&conn, "online", 40, None);
        assert_eq!(t1(&conn, 10, 100, 100).uptime, Some(Uptime(8_888)));
        assert_eq!(uptime(&conn, 10, 100).as_deref(), Some("88.88"));
    }

    #[test]
    fn time_before_the_first_report_is_not_counted_as_down() {
        let (_dir, conn) = views();
        interval(&conn, "online", 50, None);
        assert_eq!(uptime(&conn, 0, 100).as_deref(), Some("100.00"));
        let (_dir, conn) = views();
        interval(&conn, "offline", 75, None);
        assert_eq!(uptime(&conn, 0, 100).as_deref(), Some("0.00"));
    }

    #[test]
    fn uptime_is_unknown_when_no_interval_touches_the_period() {
        let (_dir, conn) = views();
        assert_eq!(uptime(&conn, 0, 100), None);
        interval(&conn, "online", 0, Some(10));
        assert_eq!(uptime(&conn, 10, 100), None);
        let (_dir, conn) = views();
        interval(&conn, "online", 0, None);
        // A period that has not begun yet (its start is after now) knows nothing either.
        assert_eq!(t1(&conn, 100, 200, 50).uptime, None);
    }

    #[test]
    fn uptime_rounds_down_so_a_short_outage_never_shows_a_full_hundred() {
        let (_dir, conn) = views();
        interval(&conn, "online", 0, Some(999_999));
        interval(&conn, "offline", 999_999, None);
        assert_eq!(uptime(&conn, 0, 1_000_000).as_deref(), Some("99.99"));
    }

    #[test]
    fn faults_count_those_opened_in_the_period_and_repair_time_those_cleared_in_it() {
        let (_dir, conn) = views();
        episode(&conn, "A", -100 * S, Some(20 * S)); // opened before, cleared inside: 120 s to repair
        episode(&conn, "B", 10 * S, Some(70 * S)); // opened and cleared inside: 60 s
        episode(&conn, "C", 50 * S, None); // opened inside, still open
        episode(&conn, "D", 90 * S, Some(200 * S)); // opened inside, cleared after
        episode(&conn, "E", -200 * S, Some(-150 * S)); // over before the period
        let figures = t1(&conn, 0, 100 * S, 100 * S);
        assert_eq!((figures.faults, figures.mttr_seconds), (3, Some(90)));
        let (latest, total) = latest_episodes(
            &conn,
            Span {
                start: 0,
                end: 100 * S,
                known_until: 100 * S,
            },
            2,
        )
        .unwrap();
        assert_eq!(total, 4);
        let codes: Vec<_> = latest.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["D", "C"], "newest first, at most the limit");
    }

    #[test]
    fn an_open_fault_counts_without_a_repair_time_and_a_quiet_device_has_no_figures() {
        let (_dir, conn) = views();
        episode(&conn, "C", 50 * S, None);
        assert_eq!(
            t1(&conn, 0, 100 * S, 100 * S),
            Figures {
                uptime: None,
                faults: 1,
                mttr_seconds: None
            }
        );
        let (_dir, conn) = views();
        assert_eq!(t1(&conn, 0, 100 * S, 100 * S), Figures::default());
    }

    #[test]
    fn repair_times_round_to_the_nearest_second() {
        let (_dir, conn) = views();
        episode(&conn, "A", 0, Some(1_499_999));
        episode(&conn, "B", 0, Some(1_600_000));
        let figures = t1(&conn, 0, 10 * S, 10 * S);
        assert_eq!((figures.faults, figures.mttr_seconds), (2, Some(2)));
    }
}
