//! The recognitions report's subject list: who was recognized in a period, how often, by which cameras. A year of
//! a busy site groups hundreds of thousands of per-day rows (a third of a second), so a list, once worked out, is
//! kept until the recognitions projector changes a day of its period (`recognition_subject_days`) or its tables
//! are swapped for rebuilt ones (`rebuilds`): pages over past periods, the ones people open again and again,
//! then cost one short lookup, and a list is never stale.

use crate::domain::DeviceId;
use jiff::civil::Date;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The list shows the most seen subjects; a busy site can have thousands.
pub const MAX_SUBJECTS: usize = 200;

/// Periods whose lists are kept at once; past that, one is let go to make room.
const MAX_KEPT: usize = 64;

/// A subject seen in the period, with how often and by which cameras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectLine {
    pub subject: String,
    pub sightings: i64,
    pub cameras: String,
}

/// The most seen subjects of a period (at most [`MAX_SUBJECTS`]) and how many others were seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectList {
    pub shown: Vec<SubjectLine>,
    pub more: usize,
}

/// Which list: the period's local days and the camera filter.
type Key = (Date, Date, Option<DeviceId>);

/// When a list's rows last changed: the recognitions tables' rebuild generation and the journal position its days
/// had changed up to.
type Version = (i64, i64);

/// Each list with the version of the rows it was worked out from.
type Kept = HashMap<Key, (Version, Arc<SubjectList>)>;

/// Subject lists worked out so far.
#[derive(Clone, Default)]
pub struct SubjectLists {
    kept: Arc<Mutex<Kept>>,
}

impl SubjectLists {
    /// The list for `from..=to` (one camera's, if given). Blocking: runs queries on `conn`.
    pub fn get(
        &self,
        conn: &Connection,
        from: Date,
        to: Date,
        camera: Option<&DeviceId>,
    ) -> rusqlite::Result<Arc<SubjectList>> {
        // Read before the list itself: a change landing in between is then in the list but not in the version,
        // so the next request works the list out again rather than keep a list older than its version says. A
        // rebuild can change rows under the same positions (a new time zone), hence its generation too.
        let version: Version = conn
            .prepare_cached(
                "SELECT (SELECT COALESCE(MAX(generation), 0) FROM rebuilds WHERE projection = 'recognitions'),
                        COALESCE(MAX(changed_at), 0)
                 FROM recognition_subject_days WHERE local_date BETWEEN ?1 AND ?2",
            )?
            .query_row(params![from.to_string(), to.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let key = (from, to, camera.cloned());
        if let Some((kept_version, list)) = self.kept().get(&key)
            && *kept_version == version
        {
            return Ok(list.clone());
        }
        let list = Arc::new(load(conn, from, to, camera)?);
        let mut kept = self.kept();
        if kept.len() >= MAX_KEPT
            && !kept.contains_key(&key)
            && let Some(any) = kept.keys().next().cloned()
        {
            kept.remove(&any);
        }
        kept.insert(key, (version, list.clone()));
        Ok(list)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Inserts and removals are whole, so a lock poisoned by a panicking request still guards a good map.
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Subjects seen in the period, most seen first (then by name), each with the cameras that saw them.
fn load(conn: &Connection, from: Date, to: Date, camera: Option<&DeviceId>) -> rusqlite::Result<SubjectList> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject, camera_id, SUM(sightings) FROM recognition_subjects
         WHERE local_date BETWEEN ?1 AND ?2 AND (?3 IS NULL OR camera_id = ?3)
         GROUP BY subject, camera_id ORDER BY subject, camera_id",
    )?;
    let rows = stmt.query_map(
        params![from.to_string(), to.to_string(), camera.map(DeviceId::as_str)],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    )?;
    let mut subjects: Vec<SubjectLine> = Vec::new();
    for row in rows {
        let (subject, camera, sightings) = row?;
        match subjects.last_mut() {
            Some(last) if last.subject == subject => {
                last.sightings += sightings;
                last.cameras.push_str(", ");
                last.cameras.push_str(&camera);
            }
            _ => subjects.push(SubjectLine {
                subject,
                sightings,
                cameras: camera,
            }),
        }
    }
    subjects.sort_by(|a, b| b.sightings.cmp(&a.sightings).then_with(|| a.subject.cmp(&b.subject)));
    let more = subjects.len().saturating_sub(MAX_SUBJECTS);
    subjects.truncate(MAX_SUBJECTS);
    Ok(SubjectList { shown: subjects, more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn views() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open(&dir.path().join("views.db"), crate::config::Synchronous::Normal).unwrap();
        crate::db::migrate_views(&mut conn).unwrap();
        (dir, conn)
    }

    /// What the recognitions projector writes for one sighting at journal position `position`.
    fn sighting(conn: &Connection, day: &str, camera: &str, subject: &str, position: i64) {
        conn.execute(
            "INSERT INTO recognition_subjects (local_date, camera_id, subject, sightings) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (local_date, camera_id, subject) DO UPDATE SET sightings = sightings + 1",
            params![day, camera, subject],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO recognition_subject_days (local_date, changed_at) VALUES (?1, ?2)
             ON CONFLICT (local_date) DO UPDATE SET changed_at = excluded.changed_at",
            params![day, position],
        )
        .unwrap();
    }

    fn names(list: &SubjectList) -> Vec<(&str, i64, &str)> {
        list.shown
            .iter()
            .map(|s| (s.subject.as_str(), s.sightings, s.cameras.as_str()))
            .collect()
    }

    #[test]
    fn the_list_sums_the_period_most_seen_first_with_the_cameras() {
        let (_dir, conn) = views();
        sighting(&conn, "2026-03-01", "C1", "ann", 1);
        sighting(&conn, "2026-03-02", "C2", "ann", 2);
        sighting(&conn, "2026-03-02", "C1", "bob", 3);
        sighting(&conn, "2026-03-03", "C1", "bob", 4);
        sighting(&conn, "2026-03-03", "C1", "bob", 5);
        let lists = SubjectLists::default();
        let list = lists.get(&conn, date(2026, 3, 1), date(2026, 3, 2), None).unwrap();
        assert_eq!(names(&list), [("ann", 2, "C1, C2"), ("bob", 1, "C1")]);
        let c2 = DeviceId::parse("C2").unwrap();
        let list = lists.get(&conn, date(2026, 3, 1), date(2026, 3, 3), Some(&c2)).unwrap();
        assert_eq!(names(&list), [("ann", 1, "C2")]);
    }

    #[test]
    fn a_kept_list_is_used_until_a_day_of_its_period_changes() {
        let (_dir, conn) = views();
        sighting(&conn, "2026-03-01", "C1", "ann", 1);
        sighting(&conn, "2026-03-05", "C1", "bob", 2);
        let lists = SubjectLists::default();
        let (from, to) = (date(2026, 3, 1), date(2026, 3, 2));
        let first = lists.get(&conn, from, to, None).unwrap();
        assert!(Arc::ptr_eq(&first, &lists.get(&conn, from, to, None).unwrap()));
        // A day outside the period changing keeps the list; a day inside it makes it be worked out again.
        sighting(&conn, "2026-03-05", "C1", "cem", 3);
        assert!(Arc::ptr_eq(&first, &lists.get(&conn, from, to, None).unwrap()));
        sighting(&conn, "2026-03-02", "C1", "dan", 4);
        let fresh = lists.get(&conn, from, to, None).unwrap();
        assert_eq!(names(&fresh), [("ann", 1, "C1"), ("dan", 1, "C1")]);
    }

    #[test]
    fn a_rebuild_that_changes_rows_under_the_same_positions_drops_the_kept_list() {
        let (_dir, conn) = views();
        sighting(&conn, "2026-03-01", "C1", "ann", 1);
        let lists = SubjectLists::default();
        let (from, to) = (date(2026, 3, 1), date(2026, 3, 1));
        let first = lists.get(&conn, from, to, None).unwrap();
        // As a swap of rebuilt tables leaves them: other rows (say, bucketed in a new time zone), same positions.
        conn.execute_batch(
            "UPDATE recognition_subjects SET subject = 'bea';
             INSERT INTO rebuilds (projection, generation) VALUES ('recognitions', 1);",
        )
        .unwrap();
        let rebuilt = lists.get(&conn, from, to, None).unwrap();
        assert!(!Arc::ptr_eq(&first, &rebuilt));
        assert_eq!(names(&rebuilt), [("bea", 1, "C1")]);
    }

    #[test]
    fn past_the_limit_the_list_says_how_many_more_were_seen() {
        let (_dir, conn) = views();
        for i in 0..MAX_SUBJECTS + 3 {
            sighting(&conn, "2026-03-01", "C1", &format!("s{i:04}"), i as i64);
        }
        sighting(&conn, "2026-03-01", "C1", "s0202", 999);
        let list = SubjectLists::default()
            .get(&conn, date(2026, 3, 1), date(2026, 3, 1), None)
            .unwrap();
        assert_eq!((list.shown.len(), list.more), (MAX_SUBJECTS, 3));
        assert_eq!(names(&list)[0], ("s0202", 2, "C1"));
    }
}
