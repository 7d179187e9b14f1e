//! `recognitions`: faces each camera saw per local hour (site time zone), known subjects vs unknown faces, and
//! which subjects it saw per local day, for the recognitions report; plus day totals per camera and, per day, the
//! position that last changed its subjects (the report's subject list is kept until a day in its period changes).

use super::{ApplyError, Projection, local_hour};
use crate::domain::{DeviceEvent, FactVoided, Subject, VoidedFact};
use crate::journal::StoredEvent;
use jiff::tz::TimeZone;
use rusqlite::{Connection, params};

pub struct RecognitionsProjection {
    tz: TimeZone,
}

impl RecognitionsProjection {
    pub fn new(tz: TimeZone) -> Self {
        Self { tz }
    }
}

impl Projection for RecognitionsProjection {
    fn name(&self) -> &'static str {
        "recognitions"
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["RecognitionRecorded", "FactVoided"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "recognitions",
            "recognitions_daily",
            "recognition_subjects",
            "recognition_subject_days",
        ]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        match stored.device() {
            Some((camera, DeviceEvent::RecognitionRecorded(e))) => {
                self.count(tx, stored, camera, e.at, e.subject.as_ref(), 1)
            }
            // A voided recognition is taken back out of every count it went into.
            Some((
                camera,
                DeviceEvent::FactVoided(FactVoided {
                    fact: VoidedFact::Recognition { subject, at, .. },
                    ..
                }),
            )) => self.count(tx, stored, camera, *at, subject.as_ref(), -1),
            _ => Ok(()),
        }
    }
}

impl RecognitionsProjection {
    /// Adds `delta` (1 for a recognition, -1 for a voided one) to the counts of `camera`'s hour and day at `at`.
    fn count(
        &self,
        tx: &Connection,
        stored: &StoredEvent,
        camera: &str,
        at: jiff::Timestamp,
        subject: Option<&Subject>,
        delta: i64,
    ) -> Result<(), ApplyError> {
        // Truncating in the zone (not in UTC) is what makes a bucket a local clock hour, DST days included.
        let hour = local_hour(&self.tz, at)?;
        let local_date = hour.date().to_string();
        let (known, unknown) = if subject.is_some() { (delta, 0) } else { (0, delta) };
        tx.prepare_cached(
            "INSERT INTO recognitions (bucket_start, local_date, local_hour, camera_id, known, unknown)
             VALUES (?1, ?2, ?3, ?4, MAX(?5, 0), MAX(?6, 0))
             ON CONFLICT (bucket_start, camera_id) DO UPDATE SET known = MAX(known + ?5, 0),
                                                                 unknown = MAX(unknown + ?6, 0)",
        )?
        .execute(params![
            hour.timestamp().as_microsecond(),
            local_date,
            hour.hour(),
            camera,
            known,
            unknown
        ])?;
        tx.prepare_cached(
            "INSERT INTO recognitions_daily (local_date, camera_id, known, unknown)
             VALUES (?1, ?2, MAX(?3, 0), MAX(?4, 0))
             ON CONFLICT (local_date, camera_id) DO UPDATE SET known = MAX(known + ?3, 0),
                                                               unknown = MAX(unknown + ?4, 0)",
        )?
        .execute(params![local_date, camera, known, unknown])?;
        if let Some(subject) = subject {
            tx.prepare_cached(
                "INSERT INTO recognition_subjects (local_date, camera_id, subject, sightings)
                 VALUES (?1, ?2, ?3, MAX(?4, 0))
                 ON CONFLICT (local_date, camera_id, subject) DO UPDATE SET sightings = MAX(sightings + ?4, 0)",
            )?
            .execute(params![local_date, camera, subject.as_str(), delta])?;
            // A subject no longer seen that day leaves the day's list.
            tx.prepare_cached(
                "DELETE FROM recognition_subjects WHERE local_date = ?1 AND camera_id = ?2 AND subject = ?3
                                                      AND sightings = 0",
            )?
            .execute(params![local_date, camera, subject.as_str()])?;
            tx.prepare_cached(
                "INSERT INTO recognition_subject_days (local_date, changed_at) VALUES (?1, ?2)
                 ON CONFLICT (local_date) DO UPDATE SET changed_at = excluded.changed_at",
            )?
            .execute(params![local_date, stored.position as i64])?;
        }
        Ok(())
    }
}
