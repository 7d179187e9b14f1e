//! `recognitions`: faces each camera saw per local hour (site time zone), known subjects vs unknown faces, and
//! which subjects it saw per local day, for the recognitions report; plus day totals per camera and, per day, the
//! position that last changed its subjects (the report's subject list is kept until a day in its period changes).

use super::{ApplyError, Projection, local_hour};
use crate::domain::DeviceEvent;
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

    fn tables(&self) -> &'static [&'static str] {
        &[
            "recognitions",
            "recognitions_daily",
            "recognition_subjects",
            "recognition_subject_days",
        ]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let Some((camera, DeviceEvent::RecognitionRecorded(e))) = stored.device() else {
            return Ok(());
        };
        // Truncating in the zone (not in UTC) is what makes a bucket a local clock hour, DST days included.
        let hour = local_hour(&self.tz, e.at)?;
        let local_date = hour.date().to_string();
        let (known, unknown) = if e.subject.is_some() { (1, 0) } else { (0, 1) };
        tx.prepare_cached(
            "INSERT INTO recognitions (bucket_start, local_date, local_hour, camera_id, known, unknown)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (bucket_start, camera_id) DO UPDATE SET known = known + excluded.known,
                                                                 unknown = unknown + excluded.unknown",
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
            "INSERT INTO recognitions_daily (local_date, camera_id, known, unknown) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (local_date, camera_id) DO UPDATE SET known = known + excluded.known,
                                                               unknown = unknown + excluded.unknown",
        )?
        .execute(params![local_date, camera, known, unknown])?;
        if let Some(subject) = &e.subject {
            tx.prepare_cached(
                "INSERT INTO recognition_subjects (local_date, camera_id, subject, sightings) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (local_date, camera_id, subject) DO UPDATE SET sightings = sightings + 1",
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
