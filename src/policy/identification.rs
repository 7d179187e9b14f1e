//! The identification policy: joins camera recognitions and turnstile rotations into identified passages
//! ([`matching`](crate::domain::presence::matching)) and records each on the person's presence stream
//! (`presence:{pseudonym}`), which keeps where they are and notes anti-passback. Time passing times out people
//! not seen for `[identification] presence_timeout`. What it needs to decide (which turnstiles each camera
//! watches, each device's zone, who is inside since when, the faces and rotations still waiting for a match) is
//! folded from the journal into its memory, saved with its checkpoint, so a replay decides the same.

use super::{Due, Moment, Order, Policy};
use crate::codec::AnyEvent;
use crate::domain::presence::matching::{Face, Matcher, Rotation};
use crate::domain::presence::{PassageIdentified, Presence, PresenceCommand, PresenceEvent};
use crate::domain::{DeviceEvent, DeviceId};
use crate::journal::StoredEvent;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// 3: faces carry sealed subjects.
const MEMORY_SCHEMA: u32 = 3;

pub struct IdentificationPolicy {
    min_confidence: f64,
    presence_timeout: SignedDuration,
    memory: Memory,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    matcher: Matcher,
    /// The turnstiles each camera watches, and the same the other way round.
    watches: BTreeMap<String, Vec<DeviceId>>,
    watched_by: BTreeMap<String, Vec<DeviceId>>,
    /// Each device's zone.
    zones: BTreeMap<String, String>,
    /// Who is inside (by presence stream id): the last time they were seen and the position that said so.
    inside: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Seen {
    at: i64,
    position: u64,
}

impl IdentificationPolicy {
    pub fn new(config: &crate::config::Config) -> Self {
        let identification = &config.identification;
        Self {
            min_confidence: identification.min_confidence,
            presence_timeout: SignedDuration::try_from(identification.presence_timeout).unwrap_or(SignedDuration::MAX),
            memory: Memory {
                matcher: Matcher::new(
                    SignedDuration::try_from(identification.match_window).unwrap_or(SignedDuration::ZERO),
                ),
                ..Memory::default()
            },
        }
    }

    /// The cameras that watch `turnstile`.
    fn cameras_of(&self, turnstile: &str) -> &[DeviceId] {
        self.memory.watched_by.get(turnstile).map_or(&[], Vec::as_slice)
    }

    /// Keeps the turnstile → cameras index in step with the cameras' watches.
    fn index_watches(&mut self) {
        let mut watched_by: BTreeMap<String, Vec<DeviceId>> = BTreeMap::new();
        for (camera, turnstiles) in &self.memory.watches {
            let Ok(camera) = DeviceId::parse(camera) else { continue };
            for turnstile in turnstiles {
                watched_by
                    .entry(turnstile.as_str().to_owned())
                    .or_default()
                    .push(camera.clone());
            }
        }
        self.memory.watched_by = watched_by;
    }

    fn identified(&self, found: crate::domain::presence::matching::Match) -> Option<Order> {
        let zone = self.memory.zones.get(found.rotation.turnstile.as_str())?.clone();
        Some(Order::to::<Presence>(
            found.face.subject.pseudonym.to_string(),
            PresenceCommand::Pass(PassageIdentified {
                subject: found.face.subject,
                turnstile: found.rotation.turnstile,
                camera: found.face.camera,
                zone,
                direction: found.rotation.direction,
                confidence: found.face.confidence,
                at: found.rotation.at,
            }),
        ))
    }

    fn on_device(&mut self, device: &str, event: &DeviceEvent, position: u64) -> Option<Order> {
        match event {
            DeviceEvent::Commissioned(e) => {
                self.memory.zones.insert(device.to_owned(), e.details.zone.clone());
                if !e.watches.is_empty() {
                    self.memory.watches.insert(device.to_owned(), e.watches.clone());
                    self.index_watches();
                }
                None
            }
            DeviceEvent::DetailsChanged(e) => {
                self.memory.zones.insert(device.to_owned(), e.details.zone.clone());
                None
            }
            DeviceEvent::WatchesChanged(e) => {
                self.memory.watches.insert(device.to_owned(), e.watches.clone());
                self.index_watches();
                None
            }
            DeviceEvent::Decommissioned(_) => {
                self.memory.watches.remove(device);
                self.index_watches();
                None
            }
            DeviceEvent::RecognitionRecorded(e) if e.confidence.value() >= self.min_confidence => {
                let subject = e.subject.clone()?;
                let camera = DeviceId::parse(device).ok()?;
                let watches = self.memory.watches.get(device).cloned().unwrap_or_default();
                let face = Face {
                    camera,
                    subject,
                    confidence: e.confidence,
                    at: e.at,
                };
                let found = self.memory.matcher.face(face, position, &watches)?;
                self.identified(found)
            }
            DeviceEvent::PassageRecorded(e) => {
                let rotation = Rotation {
                    turnstile: DeviceId::parse(device).ok()?,
                    direction: e.direction,
                    at: e.at,
                };
                let cameras = self.cameras_of(device).to_vec();
                let found = self.memory.matcher.rotation(rotation, position, &cameras)?;
                self.identified(found)
            }
            _ => None,
        }
    }
}

impl Policy for IdentificationPolicy {
    fn name(&self) -> &'static str {
        "identification"
    }

    fn react(&mut self, event: &StoredEvent) -> Result<Vec<Order>, String> {
        if let Some((device, details, watches)) = super::carried_device(event) {
            self.memory.zones.insert(device.to_owned(), details.zone);
            if !watches.is_empty() {
                self.memory.watches.insert(device.to_owned(), watches);
                self.index_watches();
            }
            return Ok(vec![]);
        }
        if let Some((device, device_event)) = event.device() {
            return Ok(self
                .on_device(device, device_event, event.position)
                .into_iter()
                .collect());
        }
        if let AnyEvent::Presence(presence) = &event.event {
            let person = event.stream_id.id().to_owned();
            match presence {
                PresenceEvent::PassageIdentified(e) => match e.direction {
                    crate::domain::Direction::In => {
                        let seen = Seen {
                            at: e.at.as_microsecond(),
                            position: event.position,
                        };
                        let known = self.memory.inside.entry(person).or_insert(seen);
                        if known.at <= seen.at {
                            *known = seen;
                        }
                    }
                    crate::domain::Direction::Out => {
                        self.memory.inside.remove(&person);
                    }
                },
                PresenceEvent::TimedOut(_) => {
                    self.memory.inside.remove(&person);
                }
                PresenceEvent::AntiPassbackViolated(_) | PresenceEvent::Forgotten(_) => {}
            }
        }
        Ok(vec![])
    }

    fn ticks(&self) -> bool {
        true
    }

    fn due(&mut self, moment: &Moment) -> Vec<Due> {
        let timeout = self.presence_timeout.as_micros().clamp(0, i64::MAX as i128) as i64;
        let now = moment.now.as_microsecond();
        let expired: Vec<(String, Seen)> = self
            .memory
            .inside
            .iter()
            .filter(|(_, seen)| now.saturating_sub(seen.at) >= timeout)
            .map(|(person, seen)| (person.clone(), *seen))
            .collect();
        expired
            .into_iter()
            .filter_map(|(person, seen)| {
                self.memory.inside.remove(&person);
                let unseen_since = Timestamp::from_microsecond(seen.at).ok()?;
                let at = unseen_since.saturating_add(self.presence_timeout).ok()?;
                Some(Due {
                    key: format!("timeout@{}", seen.position),
                    order: Order::to::<Presence>(person, PresenceCommand::TimeOut { unseen_since, at }),
                })
            })
            .collect()
    }

    fn remember(&self) -> Option<Vec<u8>> {
        Some(super::encode_memory(MEMORY_SCHEMA, &self.memory))
    }

    fn recall(&mut self, memory: &[u8]) -> Result<(), String> {
        self.memory = super::decode_memory(MEMORY_SCHEMA, memory)?;
        Ok(())
    }
}
