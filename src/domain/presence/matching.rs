//! Joining faces and rotations: a recognition on camera C and a rotation of a turnstile C watches, within the
//! match window of each other (device times, either order), identify that rotation. Arrival order does not
//! matter: a rotation waits for a face that arrives later (face matching can take seconds), and a face for a
//! rotation that arrives later. Each face identifies at most one rotation and each rotation is identified once;
//! of several candidates the closest in time wins (then the one recorded first).
//!
//! Pure: the policy that uses it keeps a [`Matcher`] in its memory and feeds it events in journal order, so a
//! replay decides the same. What can no longer be matched (older than the newest time seen minus the window and
//! a grace for late arrivals) is forgotten, which bounds the memory by the traffic of about a minute.

use crate::domain::{Confidence, DeviceId, Direction, Subject};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long after the newest event a face or a rotation still waits for its match (beyond the window).
pub const LATE_ARRIVAL: SignedDuration = SignedDuration::from_secs(60);
/// How often (in device time) the matcher forgets what can no longer match.
const PRUNE_EVERY_US: i64 = 1_000_000;

/// A recognition of a subject, sure enough to identify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    pub camera: DeviceId,
    pub subject: Subject,
    pub confidence: Confidence,
    pub at: Timestamp,
}

/// A completed rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub turnstile: DeviceId,
    pub direction: Direction,
    pub at: Timestamp,
}

/// A rotation and the face that identified it.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub rotation: Rotation,
    pub face: Face,
}

/// Faces and rotations still waiting for a match, keyed by (device time in µs, journal position).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    window_us: i64,
    faces: BTreeMap<String, BTreeMap<(i64, u64), Face>>,
    rotations: BTreeMap<String, BTreeMap<(i64, u64), Rotation>>,
    newest_us: i64,
    /// When what can no longer match was last forgotten: at most once a second, not on every event.
    pruned_us: i64,
}

impl Matcher {
    pub fn new(window: SignedDuration) -> Self {
        Matcher {
            window_us: window.as_micros().clamp(0, i64::MAX as i128) as i64,
            ..Matcher::default()
        }
    }

    /// A face (recorded at `position`) seen by a camera that watches `watches`: the waiting rotation it
    /// identifies, if any; otherwise it waits.
    pub fn face(&mut self, face: Face, position: u64, watches: &[DeviceId]) -> Option<Match> {
        let at = face.at.as_microsecond();
        self.saw(at);
        let best = watches
            .iter()
            .filter_map(|turnstile| {
                let waiting = self.rotations.get(turnstile.as_str())?;
                closest(waiting, at, self.window_us).map(|key| (turnstile.as_str().to_owned(), key))
            })
            .min_by_key(|(_, (t, p))| ((t - at).abs(), *p));
        match best {
            Some((turnstile, key)) => {
                let rotation = self.rotations.get_mut(&turnstile)?.remove(&key)?;
                Some(Match { rotation, face })
            }
            None => {
                self.faces
                    .entry(face.camera.as_str().to_owned())
                    .or_default()
                    .insert((at, position), face);
                None
            }
        }
    }

    /// A rotation (recorded at `position`) of a turnstile watched by `cameras`: the waiting face that identifies
    /// it, if any; otherwise it waits.
    pub fn rotation(&mut self, rotation: Rotation, position: u64, cameras: &[DeviceId]) -> Option<Match> {
        let at = rotation.at.as_microsecond();
        self.saw(at);
        let best = cameras
            .iter()
            .filter_map(|camera| {
                let waiting = self.faces.get(camera.as_str())?;
                closest(waiting, at, self.window_us).map(|key| (camera.as_str().to_owned(), key))
            })
            .min_by_key(|(_, (t, p))| ((t - at).abs(), *p));
        match best {
            Some((camera, key)) => {
                let face = self.faces.get_mut(&camera)?.remove(&key)?;
                Some(Match { rotation, face })
            }
            None => {
                if !cameras.is_empty() {
                    self.rotations
                        .entry(rotation.turnstile.as_str().to_owned())
                        .or_default()
                        .insert((at, position), rotation);
                }
                None
            }
        }
    }

    /// How many faces and rotations wait (for tests and metrics).
    pub fn waiting(&self) -> (usize, usize) {
        (
            self.faces.values().map(BTreeMap::len).sum(),
            self.rotations.values().map(BTreeMap::len).sum(),
        )
    }

    /// Moves the newest time on and forgets what can no longer be matched.
    fn saw(&mut self, at: i64) {
        if at <= self.newest_us {
            return;
        }
        self.newest_us = at;
        if at - self.pruned_us < PRUNE_EVERY_US {
            return;
        }
        self.pruned_us = at;
        let horizon = at
            .saturating_sub(self.window_us)
            .saturating_sub(LATE_ARRIVAL.as_micros() as i64);
        for waiting in self.faces.values_mut() {
            *waiting = waiting.split_off(&(horizon, 0));
        }
        for waiting in self.rotations.values_mut() {
            *waiting = waiting.split_off(&(horizon, 0));
        }
        self.faces.retain(|_, w| !w.is_empty());
        self.rotations.retain(|_, w| !w.is_empty());
    }
}

/// The key of the entry closest to `at` within `window` (µs) either way; ties go to the one recorded first.
fn closest<T>(waiting: &BTreeMap<(i64, u64), T>, at: i64, window: i64) -> Option<(i64, u64)> {
    waiting
        .range((at.saturating_sub(window), 0)..=(at.saturating_add(window), u64::MAX))
        .map(|(key, _)| *key)
        .min_by_key(|(t, p)| ((t - at).abs(), *p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: f64) -> Timestamp {
        Timestamp::from_microsecond(1_764_000_000_000_000 + (seconds * 1e6) as i64).unwrap()
    }

    fn face(camera: &str, subject: &str, at: f64) -> Face {
        Face {
            camera: DeviceId::parse(camera).unwrap(),
            subject: Subject::parse(subject).unwrap(),
            confidence: Confidence::new(0.9).unwrap(),
            at: t(at),
        }
    }

    fn rotation(turnstile: &str, at: f64) -> Rotation {
        Rotation {
            turnstile: DeviceId::parse(turnstile).unwrap(),
            direction: Direction::In,
            at: t(at),
        }
    }

    fn ids(names: &[&str]) -> Vec<DeviceId> {
        names.iter().map(|n| DeviceId::parse(n).unwrap()).collect()
    }

    fn who(found: Option<Match>) -> Option<String> {
        found.map(|m| format!("{}@{}", m.face.subject.test_name(), m.rotation.turnstile))
    }

    #[test]
    fn given_a_face_then_a_rotation_within_the_window_the_rotation_is_identified() {
        let mut matcher = Matcher::new(SignedDuration::from_secs(3));
        assert_eq!(matcher.face(face("C1", "P-1", 10.0), 1, &ids(&["T1"])), None);
        assert_eq!(
            who(matcher.rotation(rotation("T1", 11.5), 2, &ids(&["C1"]))),
            Some("P-1@T1".into())
        );
        assert_eq!(matcher.waiting(), (0, 0), "both used up");
    }

    #[test]
    fn given_a_rotation_then_a_late_face_the_rotation_is_still_identified() {
        let mut matcher = Matcher::new(SignedDuration::from_secs(3));
        assert_eq!(matcher.rotation(rotation("T1", 10.0), 1, &ids(&["C1"])), None);
        // The face was seen before the rotation but arrives after it (matching took a while).
        assert_eq!(
            who(matcher.face(face("C1", "P-1", 9.0), 2, &ids(&["T1"]))),
            Some("P-1@T1".into())
        );
    }

    #[test]
    fn outside_the_window_or_on_a_turnstile_the_camera_does_not_watch_nothing_is_identified() {
        let mut matcher = Matcher::new(SignedDuration::from_secs(3));
        matcher.face(face("C1", "P-1", 10.0), 1, &ids(&["T1"]));
        assert_eq!(matcher.rotation(rotation("T1", 13.5), 2, &ids(&["C1"])), None);
        assert_eq!(matcher.rotation(rotation("T2", 10.0), 3, &ids(&["C2"])), None);
        assert_eq!(
            matcher.rotation(rotation("T3", 10.0), 4, &[]),
            None,
            "an unwatched turnstile"
        );
        assert_eq!(matcher.waiting(), (1, 2), "the unwatched rotation does not wait");
    }

    #[test]
    fn of_two_candidate_faces_the_closest_wins_and_the_other_waits_for_the_next_rotation() {
        let mut matcher = Matcher::new(SignedDuration::from_secs(3));
        matcher.face(face("C1", "P-far", 8.0), 1, &ids(&["T1"]));
        matcher.face(face("C1", "P-near", 9.5), 2, &ids(&["T1"]));
        assert_eq!(
            who(matcher.rotation(rotation("T1", 10.0), 3, &ids(&["C1"]))),
            Some("P-near@T1".into())
        );
        assert_eq!(
            who(matcher.rotation(rotation("T1", 10.5), 4, &ids(&["C1"]))),
            Some("P-far@T1".into())
        );
    }

    #[test]
    fn what_can_no_longer_match_is_forgotten() {
        let mut matcher = Matcher::new(SignedDuration::from_secs(3));
        matcher.rotation(rotation("T1", 0.0), 1, &ids(&["C1"]));
        matcher.face(face("C2", "P-2", 1.0), 2, &ids(&["T9"]));
        assert_eq!(matcher.waiting(), (1, 1));
        matcher.rotation(rotation("T5", 100.0), 3, &[]);
        assert_eq!(matcher.waiting(), (0, 0));
    }
}
