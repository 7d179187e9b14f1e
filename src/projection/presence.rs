//! `presence`: who is inside where (for `/muster`), every identified passage (for attendance) and every
//! anti-passback violation, from the presence streams.

use super::{ApplyError, Projection};
use crate::domain::presence::PresenceEvent;
use crate::domain::{DeviceEvent, VoidedFact};
use crate::journal::StoredEvent;
use rusqlite::{Connection, OptionalExtension, params};

pub struct PresenceProjection;

impl Projection for PresenceProjection {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["presence", "identified_passages", "anti_passback"]
    }

    fn apply(&mut self, tx: &Connection, stored: &StoredEvent) -> Result<(), ApplyError> {
        if let Some((device, DeviceEvent::FactVoided(voided))) = stored.device() {
            return forget_identified(tx, device, &voided.fact);
        }
        let crate::codec::AnyEvent::Presence(event) = &stored.event else {
            return Ok(());
        };
        let person = stored.stream_id.id();
        let position = stored.position as i64;
        match event {
            PresenceEvent::PassageIdentified(e) => {
                let at = e.at.as_microsecond();
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO identified_passages
                         (position, person, subject, turnstile, camera, zone, direction, confidence, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    position,
                    person,
                    e.subject.as_str(),
                    e.turnstile.as_str(),
                    e.camera.as_str(),
                    e.zone,
                    e.direction.as_str(),
                    e.confidence.value(),
                    at
                ])?;
                let known: Option<(i64, i64, String, Option<i64>)> = tx
                    .prepare_cached("SELECT last_seen_at, inside, zone, since FROM presence WHERE person = ?1")?
                    .query_row([person], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?;
                // A late recognition identifying an older passage does not move the person back (as the aggregate).
                if known.as_ref().is_some_and(|(last, ..)| *last > at) {
                    return Ok(());
                }
                let (inside, since) = match e.direction {
                    crate::domain::Direction::In => match &known {
                        Some((_, 1, zone, since)) if *zone == e.zone => (1, *since),
                        _ => (1, Some(at)),
                    },
                    crate::domain::Direction::Out => (0, None),
                };
                tx.prepare_cached(
                    "INSERT INTO presence (person, subject, inside, zone, since, last_seen_at, last_seen_device)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (person) DO UPDATE SET subject = excluded.subject, inside = excluded.inside,
                         zone = excluded.zone, since = excluded.since, last_seen_at = excluded.last_seen_at,
                         last_seen_device = excluded.last_seen_device",
                )?
                .execute(params![
                    person,
                    e.subject.as_str(),
                    inside,
                    e.zone,
                    since,
                    at,
                    e.turnstile.as_str()
                ])?;
            }
            PresenceEvent::AntiPassbackViolated(e) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO anti_passback (position, person, subject, zone, direction, violation, at)
                     SELECT ?1, ?2, subject, ?3, ?4, ?5, ?6 FROM presence WHERE person = ?2",
                )?
                .execute(params![
                    position,
                    person,
                    e.zone,
                    e.direction.as_str(),
                    e.violation.as_str(),
                    e.at.as_microsecond()
                ])?;
            }
            PresenceEvent::TimedOut(_) => {
                tx.prepare_cached("UPDATE presence SET inside = 0, since = NULL WHERE person = ?1")?
                    .execute([person])?;
            }
            // The tables name people by pseudonym only; pages read a forgotten one as "forgotten" already.
            PresenceEvent::Forgotten(_) => {}
        }
        Ok(())
    }
}

/// How far from a voided recognition an identified passage it made may lie (the match window is configurable;
/// this is wider than any sensible one).
const VOIDED_RECOGNITION_REACH_US: i64 = 5 * 60 * 1_000_000;

/// Takes an identified passage that rested on a voided fact out of attendance: the one at the voided rotation
/// (same turnstile, instant and direction), or the one closest to a voided recognition of the same subject by the
/// same camera. Who is inside now (`presence`) is left as the presence streams decided it.
fn forget_identified(tx: &Connection, device: &str, fact: &VoidedFact) -> Result<(), ApplyError> {
    match fact {
        VoidedFact::Passage { direction, at } => {
            tx.prepare_cached("DELETE FROM identified_passages WHERE turnstile = ?1 AND at = ?2 AND direction = ?3")?
                .execute(params![device, at.as_microsecond(), direction.as_str()])?;
        }
        VoidedFact::Recognition {
            subject: Some(subject),
            at,
            ..
        } => {
            let at = at.as_microsecond();
            tx.prepare_cached(
                "DELETE FROM identified_passages WHERE position = (
                     SELECT position FROM identified_passages
                     WHERE camera = ?1 AND subject = ?2 AND at BETWEEN ?3 - ?4 AND ?3 + ?4
                     ORDER BY ABS(at - ?3), position LIMIT 1)",
            )?
            .execute(params![device, subject.as_str(), at, VOIDED_RECOGNITION_REACH_US])?;
        }
        VoidedFact::Recognition { subject: None, .. } => {}
    }
    Ok(())
}
