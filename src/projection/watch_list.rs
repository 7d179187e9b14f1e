//! `watch_list`: the subjects on the watch list as they stand, with who last changed each entry and when.

use super::{ApplyError, Projection};
use crate::domain::watch_list::WatchListEvent;
use crate::journal::StoredEvent;
use rusqlite::{Connection, params};

pub struct WatchListProjection;

impl Projection for WatchListProjection {
    fn name(&self) -> &'static str {
        "watch_list"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["watch_list"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let crate::codec::AnyEvent::WatchList(event) = &stored.event else {
            return Ok(());
        };
        match event {
            WatchListEvent::Added(e) => {
                let entry = &e.entry;
                tx.prepare_cached(
                    "INSERT INTO watch_list (subject, list, severity, note, until, changed_by, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (subject) DO UPDATE SET list = excluded.list, severity = excluded.severity,
                         note = excluded.note, until = excluded.until, changed_by = excluded.changed_by,
                         changed_at = excluded.changed_at",
                )?
                .execute(params![
                    entry.subject.as_str(),
                    entry.list,
                    entry.severity.as_str(),
                    entry.note,
                    entry.until.map(|d| d.to_string()),
                    stored.actor.as_ref().map_or("unknown", |a| a.as_str()),
                    e.at.as_microsecond(),
                ])?;
            }
            WatchListEvent::Removed(e) => {
                tx.prepare_cached("DELETE FROM watch_list WHERE subject = ?1")?
                    .execute([e.subject.as_str()])?;
            }
        }
        Ok(())
    }
}
