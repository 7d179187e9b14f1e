//! What to publish: the pure, seeded traffic generator ([`TrafficGenerator`]), which yields realistic device
//! messages for the configured devices at the instants it is given, with no broker and no clock of its own.

use std::collections::VecDeque;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::domain::DeviceKind;

/// Share of messages that repeat an earlier one: a gateway retrying after its PUBACK got lost.
const DUPLICATE_SHARE: f64 = 0.01;
/// How far back a retry reaches: gateways retry within seconds, not hours later.
const RETRY_WINDOW: usize = 32;

// Relative weights of the message kinds. Passages and recognitions follow the crowd, so they scale with the
// hour's activity; heartbeats and faults are equipment behaviour that ignores the clock. At rush hour passages
// are about 88% of the traffic, at night still about 70%, over a whole day about 80%.
const PASSAGE_WEIGHT: f64 = 85.0;
const RECOGNITION_WEIGHT: f64 = 9.0;
const HEARTBEAT_WEIGHT: f64 = 2.0;
const FAULT_WEIGHT: f64 = 0.5;
/// Clears are weighted per open fault, so they balance new faults: over a day about a quarter of a fault is open
/// on average, and a fault stays open for some tens of messages, long enough to be seen on the dashboard.
const CLEAR_WEIGHT_PER_OPEN_FAULT: f64 = 2.0;

/// Fault codes a turnstile reports, each with the detail texts units send along.
const TURNSTILE_FAULTS: &[(&str, &[&str])] = &[
    (
        "JAM",
        &["rotor blocked", "obstruction in the passage lane", "arm stuck half-way"],
    ),
    ("POWER", &["mains power lost, running on battery", "supply voltage low"]),
    ("DOOR", &["service door open", "cabinet lid not closed"]),
    ("SENSOR", &["optical sensor dirty", "passage sensor misaligned"]),
];

/// A camera has no moving parts that could jam, so it reports the other three codes only.
const CAMERA_FAULTS: &[(&str, &[&str])] = &[
    ("POWER", &["PoE power lost", "supply voltage low"]),
    ("DOOR", &["housing opened"]),
    (
        "SENSOR",
        &["lens obscured", "image sensor overheating", "video signal lost"],
    ),
];

/// Recognized people are named `P-1000` to `P-1199`, as the site's recognition system would.
const SUBJECTS: std::ops::RangeInclusive<u32> = 1000..=1199;
/// Share of rotations of a turnstile a camera watches whose person the camera recognizes, right after: known
/// people coming and going, so the demo shows identified passages, occupancy, attendance and the muster list.
const FACE_SHARE: f64 = 0.3;
/// Share of such rotations another person follows through at once without a face: a tailgating suspicion.
const TAILGATE_SHARE: f64 = 0.01;

/// What a rotation of a watched turnstile leads to, published as the next message (with its own `at`).
#[derive(Debug, Clone)]
enum FollowUp {
    /// The watching camera recognizes the person who just passed.
    Face { camera: usize, subject: u32 },
    /// Someone follows through the same turnstile, the same way.
    Tailgate { turnstile: usize, direction: &'static str },
}

/// One message the simulator publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedMessage {
    /// `{topic_prefix}/{kind}/{device_id}/{message}` (SPEC §3).
    pub topic: String,
    /// The JSON object, or the plain text `online` of a `status` message.
    pub payload: Vec<u8>,
    /// Set for `status` messages only, as gateways do.
    pub retain: bool,
    /// The topic's last segment: `passage`, `fault`, `fault_cleared`, `recognition`, `heartbeat` or `status`.
    pub kind: &'static str,
    /// A repeat of an earlier message (same topic, same payload, same `msg_id`), as a retrying gateway sends.
    pub duplicate: bool,
}

/// One configured device as the simulator plays it.
#[derive(Debug)]
struct SimDevice {
    kind: DeviceKind,
    /// `{prefix}/{kind}/{id}`, the start of every topic of this device.
    topic_base: String,
    /// How busy this device is relative to the others: some gates see more people than others.
    busyness: f64,
    /// Codes reported and not yet cleared, so that every `fault_cleared` clears a fault that is open.
    open_faults: Vec<&'static str>,
}

impl SimDevice {
    fn fault_catalogue(&self) -> &'static [(&'static str, &'static [&'static str])] {
        match self.kind {
            DeviceKind::Turnstile => TURNSTILE_FAULTS,
            DeviceKind::Camera => CAMERA_FAULTS,
        }
    }

    /// Codes this device could report now: the ones not already open.
    fn free_faults(&self) -> impl Iterator<Item = &'static (&'static str, &'static [&'static str])> + '_ {
        self.fault_catalogue()
            .iter()
            .filter(|(code, _)| !self.open_faults.contains(code))
    }
}

/// The pure traffic generator: no broker, no clock of its own. Yields the messages of the configured devices in
/// order: first every device's retained `status online`, then passages, recognitions, heartbeats, faults and
/// their clears, and about 1% repeats of recent messages. The same seed and the same instants give the same
/// messages.
#[derive(Debug)]
pub struct TrafficGenerator {
    rng: StdRng,
    /// The site's zone: rush hours are local hours.
    timezone: TimeZone,
    /// Makes `msg_id`s unique across runs, so a second run's messages are not dropped as redeliveries.
    run_id: String,
    /// The number in the next `msg_id`.
    next_number: u64,
    devices: Vec<SimDevice>,
    /// Devices whose initial `status online` is still to be published.
    pub(super) announcements: VecDeque<usize>,
    /// Recent messages with a `msg_id`, the candidates for a retry.
    recent: VecDeque<SimulatedMessage>,
    /// For each turnstile, the camera that watches it (by device index).
    watched_by: Vec<Option<usize>>,
    /// The known people inside, by number: who goes in is someone outside, who goes out someone inside.
    inside: Vec<u32>,
    /// Messages that follow from the last rotation.
    follow_ups: VecDeque<FollowUp>,
}

impl TrafficGenerator {
    /// A generator for the turnstiles and cameras in `config`, publishing under `topic_prefix`, its randomness
    /// (including the run id in every `msg_id`) drawn from `seed`.
    pub fn new(config: &Config, topic_prefix: &str, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let run_id = format!("{:08x}", rng.random::<u32>());
        let devices: Vec<SimDevice> = config
            .device_ids()
            .into_iter()
            .map(|(id, kind)| SimDevice {
                kind,
                topic_base: format!("{topic_prefix}/{}/{id}", kind.as_str()),
                busyness: rng.random_range(0.5..1.5),
                open_faults: Vec::new(),
            })
            .collect();
        let index_of = |id: &str| config.device_ids().iter().position(|(d, _)| d.as_str() == id);
        let watched_by = config
            .device_ids()
            .iter()
            .map(|(id, _)| {
                config
                    .cameras
                    .iter()
                    .find(|c| c.watches.iter().any(|w| w == id))
                    .and_then(|c| index_of(c.id.as_str()))
            })
            .collect();
        TrafficGenerator {
            watched_by,
            inside: Vec::new(),
            follow_ups: VecDeque::new(),
            rng,
            timezone: config.site.timezone.clone(),
            run_id,
            next_number: 1,
            announcements: (0..devices.len()).collect(),
            devices,
            recent: VecDeque::with_capacity(RETRY_WINDOW),
        }
    }

    /// The next message; `now` is its `at` (and decides the local hour, hence the mix and the directions).
    ///
    /// # Panics
    ///
    /// When the configuration has no devices: there is nothing to simulate ([`run`](super::run) refuses such a config).
    pub fn next_message(&mut self, now: Timestamp) -> SimulatedMessage {
        assert!(
            !self.devices.is_empty(),
            "the traffic generator needs at least one configured device"
        );
        if let Some(index) = self.announcements.pop_front() {
            return SimulatedMessage {
                topic: format!("{}/status", self.devices[index].topic_base),
                payload: b"online".to_vec(),
                retain: true,
                kind: "status",
                duplicate: false,
            };
        }
        if let Some(follow_up) = self.follow_ups.pop_front() {
            let message = match follow_up {
                FollowUp::Face { camera, subject } => self.face(camera, subject, now),
                FollowUp::Tailgate { turnstile, direction } => self.rotation(turnstile, direction, now),
            };
            self.remember(&message);
            return message;
        }
        if !self.recent.is_empty() && self.rng.random_bool(DUPLICATE_SHARE) {
            let index = self.rng.random_range(0..self.recent.len());
            let mut repeat = self.recent[index].clone();
            repeat.duplicate = true;
            return repeat;
        }

        let hour = now.to_zoned_datetime(self.timezone.clone()).hour();
        let activity = activity(hour);
        let has = |kind| self.devices.iter().any(|d| d.kind == kind);
        let open_faults: usize = self.devices.iter().map(|d| d.open_faults.len()).sum();
        let can_fail = self.devices.iter().any(|d| d.free_faults().next().is_some());
        let weights = [
            if has(DeviceKind::Turnstile) {
                PASSAGE_WEIGHT * activity
            } else {
                0.0
            },
            if has(DeviceKind::Camera) {
                RECOGNITION_WEIGHT * activity
            } else {
                0.0
            },
            HEARTBEAT_WEIGHT,
            if can_fail { FAULT_WEIGHT } else { 0.0 },
            CLEAR_WEIGHT_PER_OPEN_FAULT * open_faults as f64,
        ];
        let message = match pick_weighted(&mut self.rng, &weights) {
            0 => self.passage(now, hour),
            1 => self.recognition(now),
            2 => self.heartbeat(),
            3 => self.fault(now),
            _ => self.fault_cleared(now),
        };
        self.remember(&message);
        message
    }

    /// Keeps a message as a candidate for a retry. Heartbeats carry no msg_id, so repeating one would not be a
    /// retry anyone could recognize.
    fn remember(&mut self, message: &SimulatedMessage) {
        if message.kind != "heartbeat" {
            if self.recent.len() == RETRY_WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(message.clone());
        }
    }

    /// Picks one of the `eligible` devices, busier ones more often.
    fn pick_device(&mut self, eligible: impl Fn(&SimDevice) -> bool) -> usize {
        let weights: Vec<f64> = self
            .devices
            .iter()
            .map(|d| if eligible(d) { d.busyness } else { 0.0 })
            .collect();
        pick_weighted(&mut self.rng, &weights)
    }

    fn msg_id(&mut self) -> String {
        let id = format!("sim-{}-{}", self.run_id, self.next_number);
        self.next_number += 1;
        id
    }

    fn json(&self, device: usize, kind: &'static str, payload: serde_json::Value) -> SimulatedMessage {
        SimulatedMessage {
            topic: format!("{}/{kind}", self.devices[device].topic_base),
            payload: payload.to_string().into_bytes(),
            retain: false,
            kind,
            duplicate: false,
        }
    }

    fn passage(&mut self, now: Timestamp, hour: i8) -> SimulatedMessage {
        let device = self.pick_device(|d| d.kind == DeviceKind::Turnstile);
        let direction = if self.rng.random_bool(inbound_share(hour)) {
            "in"
        } else {
            "out"
        };
        if let Some(camera) = self.watched_by[device]
            && self.rng.random_bool(FACE_SHARE)
        {
            // A known person: someone outside goes in, someone inside goes out.
            let subject = if direction == "in" {
                let candidate = self.rng.random_range(SUBJECTS);
                (!self.inside.contains(&candidate)).then(|| {
                    self.inside.push(candidate);
                    candidate
                })
            } else if self.inside.is_empty() {
                None
            } else {
                let index = self.rng.random_range(0..self.inside.len());
                Some(self.inside.swap_remove(index))
            };
            if let Some(subject) = subject {
                self.follow_ups.push_back(FollowUp::Face { camera, subject });
            }
            if self.rng.random_bool(TAILGATE_SHARE) {
                self.follow_ups.push_back(FollowUp::Tailgate {
                    turnstile: device,
                    direction,
                });
            }
        }
        self.rotation(device, direction, now)
    }

    fn rotation(&mut self, device: usize, direction: &str, now: Timestamp) -> SimulatedMessage {
        let msg_id = self.msg_id();
        self.json(
            device,
            "passage",
            serde_json::json!({ "msg_id": msg_id, "at": now.to_string(), "direction": direction }),
        )
    }

    fn recognition(&mut self, now: Timestamp) -> SimulatedMessage {
        let device = self.pick_device(|d| d.kind == DeviceKind::Camera);
        // Confidences with two decimals, as recognition systems usually report them.
        let (subject, confidence) = if self.rng.random_bool(0.7) {
            let subject = format!("P-{}", self.rng.random_range(SUBJECTS));
            (Some(subject), self.rng.random_range(75..=99))
        } else {
            (None, self.rng.random_range(20..=70))
        };
        let msg_id = self.msg_id();
        self.json(
            device,
            "recognition",
            serde_json::json!({
                "msg_id": msg_id,
                "at": now.to_string(),
                "subject": subject,
                "confidence": f64::from(confidence) / 100.0,
            }),
        )
    }

    /// Camera `camera` recognizing known person `subject`, sure of it.
    fn face(&mut self, camera: usize, subject: u32, now: Timestamp) -> SimulatedMessage {
        let confidence = self.rng.random_range(85..=99);
        let msg_id = self.msg_id();
        self.json(
            camera,
            "recognition",
            serde_json::json!({
                "msg_id": msg_id,
                "at": now.to_string(),
                "subject": format!("P-{subject}"),
                "confidence": f64::from(confidence) / 100.0,
            }),
        )
    }

    fn heartbeat(&mut self) -> SimulatedMessage {
        let device = self.pick_device(|_| true);
        self.json(device, "heartbeat", serde_json::json!({}))
    }

    fn fault(&mut self, now: Timestamp) -> SimulatedMessage {
        // Uniform over devices rather than by busyness: equipment fails whether or not it is busy.
        let device = {
            let candidates: Vec<usize> = (0..self.devices.len())
                .filter(|&i| self.devices[i].free_faults().next().is_some())
                .collect();
            candidates[self.rng.random_range(0..candidates.len())]
        };
        let free: Vec<_> = self.devices[device].free_faults().collect();
        let (code, details) = *free[self.rng.random_range(0..free.len())];
        let detail = details[self.rng.random_range(0..details.len())];
        self.devices[device].open_faults.push(code);
        let msg_id = self.msg_id();
        self.json(
            device,
            "fault",
            serde_json::json!({ "msg_id": msg_id, "at": now.to_string(), "code": code, "detail": detail }),
        )
    }

    fn fault_cleared(&mut self, now: Timestamp) -> SimulatedMessage {
        let open: Vec<(usize, usize)> = self
            .devices
            .iter()
            .enumerate()
            .flat_map(|(device, d)| (0..d.open_faults.len()).map(move |fault| (device, fault)))
            .collect();
        let (device, fault) = open[self.rng.random_range(0..open.len())];
        let code = self.devices[device].open_faults.remove(fault);
        let msg_id = self.msg_id();
        self.json(
            device,
            "fault_cleared",
            serde_json::json!({ "msg_id": msg_id, "at": now.to_string(), "code": code }),
        )
    }
}

/// How busy the site is at a local hour, 1.0 at the rush hours (07:00–09:00 and 16:00–19:00).
fn activity(hour: i8) -> f64 {
    match hour {
        7 | 8 | 16..=18 => 1.0,
        6 | 9 | 15 | 19 => 0.6,
        10..=14 => 0.45,
        20..=22 => 0.3,
        _ => 0.12,
    }
}

/// The share of passages that go in at a local hour: people arrive in the morning and leave in the evening.
fn inbound_share(hour: i8) -> f64 {
    match hour {
        7 | 8 => 0.85,
        16..=18 => 0.15,
        _ => 0.5,
    }
}

/// An index drawn with probability proportional to its weight; at least one weight must be positive.
fn pick_weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (index, &weight) in weights.iter().enumerate() {
        if weight > 0.0 {
            if target < weight {
                return index;
            }
            target -= weight;
        }
    }
    // Rounding can leave `target` a hair above the last weight: that draw belongs to the last candidate.
    weights
        .iter()
        .rposition(|&w| w > 0.0)
        .expect("at least one positive weight")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PREFIX, config};
    use super::*;
    use crate::domain::{DeviceCommand, DeviceId, Direction, command_time};
    use std::collections::{HashMap, HashSet};

    fn at(s: &str) -> Timestamp {
        s.parse().expect("RFC 3339 in a test")
    }

    fn json(message: &SimulatedMessage) -> serde_json::Value {
        serde_json::from_slice(&message.payload).expect("a JSON payload")
    }

    /// `count` messages, one every `step`, starting at `start`.
    fn generate(
        seed: u64,
        start: Timestamp,
        step: jiff::SignedDuration,
        count: usize,
    ) -> Vec<(Timestamp, SimulatedMessage)> {
        let mut generator = TrafficGenerator::new(&config(), PREFIX, seed);
        let mut now = start;
        (0..count)
            .map(|_| {
                let message = generator.next_message(now);
                let item = (now, message);
                now = now.checked_add(step).unwrap();
                item
            })
            .collect()
    }

    /// Ten thousand messages spread over a bit more than a day, so every hour's mix is in.
    fn a_day(seed: u64) -> Vec<(Timestamp, SimulatedMessage)> {
        generate(
            seed,
            at("2025-03-12T00:00:00Z"),
            jiff::SignedDuration::from_secs(9),
            10_000,
        )
    }

    /// Only the non-status messages at one local hour: the mix and the directions of that hour.
    fn at_hour(seed: u64, start: &str) -> Vec<SimulatedMessage> {
        generate(seed, at(start), jiff::SignedDuration::from_millis(100), 5_000)
            .into_iter()
            .map(|(_, message)| message)
            .filter(|message| message.kind != "status")
            .collect()
    }

    fn inbound_share_of(messages: &[SimulatedMessage]) -> f64 {
        let directions: Vec<String> = messages
            .iter()
            .filter(|m| m.kind == "passage" && !m.duplicate)
            .map(|m| json(m)["direction"].as_str().unwrap().to_owned())
            .collect();
        directions.iter().filter(|d| *d == "in").count() as f64 / directions.len() as f64
    }

    #[test]
    fn every_generated_message_passes_the_ingest_parser() {
        let config = config();
        let devices: HashMap<DeviceId, DeviceKind> = config.device_ids().into_iter().collect();
        for (now, message) in a_day(7) {
            let parsed = crate::ingest::parse(
                PREFIX,
                &message.topic,
                &message.payload,
                now,
                Default::default(),
                |id| devices.get(id).copied(),
            )
            .unwrap_or_else(|e| panic!("{} {:?}: {e}", message.topic, String::from_utf8_lossy(&message.payload)));
            assert!(message.topic.ends_with(&format!("/{}", message.kind)), "{message:?}");
            assert_eq!(message.retain, message.kind == "status", "{message:?}");
            // Duplicates keep the instant of the message they repeat; everything else happens now.
            if !message.duplicate {
                assert_eq!(command_time(&parsed.command), now, "{message:?}");
            }
            match message.kind {
                "status" | "heartbeat" => assert_eq!(parsed.msg_id, None),
                _ => assert!(parsed.msg_id.unwrap().starts_with("sim-"), "{message:?}"),
            }
            let expected = match message.kind {
                "passage" => matches!(parsed.command, DeviceCommand::RecordPassage { .. }),
                "recognition" => matches!(parsed.command, DeviceCommand::RecordRecognition { .. }),
                "fault" => matches!(parsed.command, DeviceCommand::ReportFault { .. }),
                "fault_cleared" => matches!(parsed.command, DeviceCommand::ClearFault { .. }),
                "heartbeat" => matches!(parsed.command, DeviceCommand::RecordHeartbeat { .. }),
                "status" => matches!(parsed.command, DeviceCommand::ReportAvailability { online: true, .. }),
                other => panic!("unexpected kind {other}"),
            };
            assert!(expected, "{message:?} became {:?}", parsed.command);
        }
    }

    #[test]
    fn every_device_first_announces_itself_online_retained() {
        let messages: Vec<SimulatedMessage> = a_day(1).into_iter().take(3).map(|(_, m)| m).collect();
        let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "gatehouse/turnstile/T1/status",
                "gatehouse/turnstile/T2/status",
                "gatehouse/camera/C1/status"
            ]
        );
        assert!(
            messages
                .iter()
                .all(|m| m.retain && m.payload == b"online" && m.kind == "status")
        );
    }

    #[test]
    fn passages_dominate_the_mix_and_every_kind_occurs() {
        let messages: Vec<SimulatedMessage> = a_day(11).into_iter().map(|(_, m)| m).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for message in &messages {
            *counts.entry(message.kind).or_default() += 1;
        }
        let share = |kind: &str| counts.get(kind).copied().unwrap_or(0) as f64 / messages.len() as f64;
        assert!(share("passage") > 0.7, "{counts:?}");
        assert!(share("recognition") > 0.03, "{counts:?}");
        assert!(share("heartbeat") > 0.01 && share("heartbeat") < 0.1, "{counts:?}");
        for kind in ["fault", "fault_cleared"] {
            assert!(share(kind) > 0.002 && share(kind) < 0.03, "{kind}: {counts:?}");
        }
        assert_eq!(counts["status"], 3);

        // At rush hour passages are even more of the traffic, at night less, but still the majority.
        let passages = |messages: &[SimulatedMessage]| {
            messages.iter().filter(|m| m.kind == "passage").count() as f64 / messages.len() as f64
        };
        let rush = passages(&at_hour(3, "2025-03-12T07:00:00Z"));
        let night = passages(&at_hour(3, "2025-03-12T02:00:00Z"));
        assert!(rush > 0.8, "{rush}");
        assert!(night > 0.5 && night < rush - 0.1, "{night}");

        // Passages only come from turnstiles, recognitions only from cameras.
        assert!(
            messages
                .iter()
                .filter(|m| m.kind == "passage")
                .all(|m| m.topic.contains("/turnstile/"))
        );
        assert!(
            messages
                .iter()
                .filter(|m| m.kind == "recognition")
                .all(|m| m.topic.contains("/camera/"))
        );
    }

    #[test]
    fn rush_hours_set_the_direction() {
        // 08:00 and 17:30 in Berlin (CET, UTC+1 in March).
        let morning = at("2025-03-12T07:00:00Z");
        assert_eq!(morning.to_zoned_datetime(config().site.timezone).hour(), 8);
        let morning = inbound_share_of(&at_hour(5, "2025-03-12T07:00:00Z"));
        let evening = inbound_share_of(&at_hour(5, "2025-03-12T16:30:00Z"));
        let noon = inbound_share_of(&at_hour(5, "2025-03-12T11:00:00Z"));
        assert!(morning > 0.75, "morning in share {morning}");
        assert!(evening < 0.25, "evening in share {evening}");
        assert!((0.4..0.6).contains(&noon), "noon in share {noon}");
    }

    #[test]
    fn faults_and_clears_pair_up_per_device() {
        let mut open: HashSet<(String, String)> = HashSet::new();
        let (mut faults, mut clears) = (0, 0);
        for (_, message) in a_day(13) {
            if message.duplicate || !message.kind.starts_with("fault") {
                continue;
            }
            let device = message.topic.rsplit('/').nth(1).unwrap().to_owned();
            let code = json(&message)["code"].as_str().unwrap().to_owned();
            if message.kind == "fault" {
                faults += 1;
                assert!(["JAM", "POWER", "DOOR", "SENSOR"].contains(&code.as_str()));
                assert!(!json(&message)["detail"].as_str().unwrap().is_empty());
                assert!(device != "C1" || code != "JAM", "cameras do not jam");
                assert!(
                    open.insert((device, code)),
                    "a fault already open reported again: {message:?}"
                );
            } else {
                clears += 1;
                assert!(
                    open.remove(&(device, code)),
                    "cleared a fault that is not open: {message:?}"
                );
            }
        }
        assert!(faults > 30, "{faults} faults");
        assert_eq!(faults - clears, open.len());
        assert!(open.len() <= 4, "faults pile up: {open:?}");
    }

    #[test]
    fn recognitions_are_mostly_known_subjects_with_high_confidence() {
        let recognitions: Vec<serde_json::Value> = a_day(17)
            .into_iter()
            .filter(|(_, m)| m.kind == "recognition" && !m.duplicate)
            .map(|(_, m)| json(&m))
            .collect();
        let mut known = 0;
        for recognition in &recognitions {
            let confidence = recognition["confidence"].as_f64().unwrap();
            match recognition["subject"].as_str() {
                Some(subject) => {
                    known += 1;
                    let number: u32 = subject.strip_prefix("P-").unwrap().parse().unwrap();
                    assert!((1000..=1199).contains(&number), "{subject}");
                    assert!((0.75..=0.99).contains(&confidence), "{confidence}");
                }
                None => {
                    assert!(recognition["subject"].is_null());
                    assert!((0.2..=0.7).contains(&confidence), "{confidence}");
                }
            }
        }
        assert!(recognitions.len() > 100, "{} recognitions", recognitions.len());
        let share = f64::from(known) / recognitions.len() as f64;
        // Random faces are 70 % known; the faces of known people passing a watched turnstile add to that.
        assert!((0.75..0.95).contains(&share), "known share {share}");
    }

    #[test]
    fn a_known_person_passing_a_watched_turnstile_is_recognized_by_its_camera_right_after() {
        let messages = a_day(23);
        // Of the rotations of T1 (watched by C1) and of T2 (watched by nobody), the share followed at once by a
        // recognition of a known person.
        let followed_by_face = |turnstile: &str| {
            let (mut rotations, mut faces) = (0, 0);
            for pair in messages.windows(2) {
                let ((_, rotation), (_, next)) = (&pair[0], &pair[1]);
                if rotation.kind == "passage" && !rotation.duplicate && rotation.topic.contains(turnstile) {
                    rotations += 1;
                    if next.kind == "recognition" && json(next)["subject"].is_string() {
                        faces += 1;
                    }
                }
            }
            f64::from(faces) / f64::from(rotations.max(1))
        };
        let (watched, unwatched) = (followed_by_face("/T1/"), followed_by_face("/T2/"));
        assert!(watched > unwatched + 0.15, "T1 {watched}, T2 {unwatched}");
    }

    #[test]
    fn about_one_percent_are_retries_of_an_earlier_message() {
        let mut seen: HashMap<String, SimulatedMessage> = HashMap::new();
        let mut duplicates = 0;
        for (_, message) in a_day(19) {
            if matches!(message.kind, "status" | "heartbeat") {
                assert!(!message.duplicate, "{message:?}");
                continue;
            }
            let msg_id = json(&message)["msg_id"].as_str().unwrap().to_owned();
            if message.duplicate {
                duplicates += 1;
                let original = seen.get(&msg_id).expect("a duplicate repeats an earlier msg_id");
                assert_eq!((&original.topic, &original.payload), (&message.topic, &message.payload));
                assert_eq!(original.kind, message.kind);
            } else {
                assert!(seen.insert(msg_id, message).is_none(), "msg_ids are unique");
            }
        }
        assert!((50..=160).contains(&duplicates), "{duplicates} duplicates in 10,000");
    }

    #[test]
    fn the_seed_decides_the_traffic() {
        let same = |seed| a_day(seed).into_iter().take(500).map(|(_, m)| m).collect::<Vec<_>>();
        assert_eq!(same(23), same(23));
        // Another seed is another run: its msg_ids never collide with the first one's.
        let ids = |seed| {
            same(seed)
                .iter()
                .filter(|m| m.kind == "passage")
                .map(|m| json(m)["msg_id"].as_str().unwrap().to_owned())
                .collect::<HashSet<_>>()
        };
        assert!(ids(23).is_disjoint(&ids(29)));
    }

    #[test]
    fn directions_parse_as_the_domain_spells_them() {
        for message in at_hour(31, "2025-03-12T07:00:00Z")
            .iter()
            .filter(|m| m.kind == "passage")
        {
            let direction = json(message)["direction"].as_str().unwrap().to_owned();
            assert!(direction.parse::<Direction>().is_ok());
        }
    }
}
