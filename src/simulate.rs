//! The device traffic simulator (SPEC §1 `gatehouse simulate`, and the feed of `serve --demo`): a pure, seedable
//! generator of realistic device messages for the configured devices ([`TrafficGenerator`]), and [`run`], which
//! publishes them to an MQTT broker at a given rate with QoS 1 and counts the broker's acknowledgements.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Config;
use crate::domain::DeviceKind;

// ---- What to publish --------------------------------------------------------------------------------------

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
    announcements: VecDeque<usize>,
    /// Recent messages with a `msg_id`, the candidates for a retry.
    recent: VecDeque<SimulatedMessage>,
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
        TrafficGenerator {
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
    /// When the configuration has no devices: there is nothing to simulate ([`run`] refuses such a config).
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
        // Heartbeats carry no msg_id, so repeating one would not be a retry anyone could recognize.
        if message.kind != "heartbeat" {
            if self.recent.len() == RETRY_WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(message.clone());
        }
        message
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

// ---- Publishing -------------------------------------------------------------------------------------------

/// Unacknowledged QoS 1 publishes on the wire at once; the client waits for PUBACKs beyond that.
const INFLIGHT: u16 = 100;
/// Requests queued between the publishing task and the event loop; a full queue slows publishing down.
const REQUEST_QUEUE: usize = 100;
/// How long the first connection may take before `run` gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `run` waits at the end for the broker to acknowledge what was sent.
const ACK_WAIT: Duration = Duration::from_secs(10);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Publishing ticks at most this often; at higher rates each tick publishes a small burst.
const MIN_TICK: f64 = 0.01;
/// And at least this often, so the progress bar moves even at a low rate.
const MAX_TICK: f64 = 1.0;
/// How long past `duration` a timed run may take to publish the messages that were due by then.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// How to run the simulator: from the command line (`gatehouse simulate`) or the demo (`serve --demo`).
#[derive(Clone)]
pub struct SimulateOptions {
    /// Messages per second, all devices together; must be positive. The initial `status` messages come on top.
    pub rate: f64,
    /// How long to publish; `None` publishes until `stop` resolves (demo mode).
    pub duration: Option<Duration>,
    /// The MQTT broker to publish to, over plain TCP; an IPv6 host without brackets.
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// Sent only together with a username, as MQTT 3.1.1 requires.
    pub password: Option<String>,
    /// The first topic segment, normally `[mqtt].topic_prefix`.
    pub topic_prefix: String,
    /// Makes the traffic (and its `msg_id`s) deterministic, for tests; `None` draws a random seed. Two runs with
    /// the same seed publish the same `msg_id`s, which a journal that saw the first run drops as redeliveries.
    pub seed: Option<u64>,
    /// Shows a progress bar on stderr (command-line use).
    pub progress: bool,
}

impl SimulateOptions {
    /// Options for publishing to `host:port` with the site's credentials and topic prefix, a random seed and no
    /// progress bar.
    pub fn for_site(config: &Config, host: String, port: u16, rate: f64, duration: Option<Duration>) -> Self {
        SimulateOptions {
            rate,
            duration,
            host,
            port,
            username: config.mqtt.username.clone(),
            password: config.mqtt.password.clone(),
            topic_prefix: config.mqtt.topic_prefix.clone(),
            seed: None,
            progress: false,
        }
    }
}

impl fmt::Debug for SimulateOptions {
    /// Like the derived one, without the password: options end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulateOptions")
            .field("rate", &self.rate)
            .field("duration", &self.duration)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("topic_prefix", &self.topic_prefix)
            .field("seed", &self.seed)
            .field("progress", &self.progress)
            .finish()
    }
}

/// What a simulation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// Messages handed to the broker, duplicates and `status` messages included.
    pub sent: u64,
    /// Messages the broker acknowledged (PUBACK); equals `sent` unless the connection broke or the broker was
    /// slower than the final wait.
    pub acked: u64,
    /// Of `sent`, repeats of an earlier message (same `msg_id`), as retrying gateways send them.
    pub duplicates: u64,
    /// Messages sent per kind (`passage`, `fault`, `fault_cleared`, `recognition`, `heartbeat`, `status`),
    /// duplicates counted under their kind.
    pub by_message: BTreeMap<String, u64>,
}

impl SimulationReport {
    fn record(&mut self, kind: &str, duplicate: bool) {
        self.sent += 1;
        if duplicate {
            self.duplicates += 1;
        }
        *self.by_message.entry(kind.to_owned()).or_default() += 1;
    }
}

impl fmt::Display for SimulationReport {
    /// `sent 1200 messages (12 duplicates), 1200 acknowledged`, then one line per kind, most frequent first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "sent {} ({}), {} acknowledged",
            plural(self.sent, "message"),
            plural(self.duplicates, "duplicate"),
            self.acked
        )?;
        let mut kinds: Vec<(&String, &u64)> = self.by_message.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let width = kinds.iter().map(|(kind, _)| kind.len()).max().unwrap_or(0);
        for (kind, count) in kinds {
            write!(f, "\n  {kind:<width$}  {count}")?;
        }
        Ok(())
    }
}

/// The connection as the event loop task last saw it.
#[derive(Debug, Clone)]
enum Link {
    Connecting { last_error: Option<String> },
    Up,
}

/// Aborts the event loop task however `run` ends, including when its future is dropped mid-way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes simulated traffic for the devices in `config` to the broker in `options`, with QoS 1, at
/// `options.rate` messages per second, for `options.duration` or until `stop` resolves (whichever is first).
/// Then waits (up to 10 s) until the broker has acknowledged everything sent, disconnects and reports.
///
/// Every device first publishes a retained `status online`. A broken connection is retried with a short backoff
/// and logged; if the first connection does not succeed within 10 s, the error says
/// `cannot connect to mqtt broker HOST:PORT: ...`. When `stop` resolves before the connection is up, the empty
/// report is returned.
pub async fn run(
    config: &Config,
    options: SimulateOptions,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<SimulationReport> {
    let rate = options.rate;
    if !(rate.is_finite() && rate > 0.0) {
        bail!("rate must be a positive number of messages per second, not {rate}");
    }
    if config.turnstiles.is_empty() && config.cameras.is_empty() {
        bail!("no devices to simulate: the configuration has no [[turnstile]] and no [[camera]]");
    }
    let mut generator = TrafficGenerator::new(config, &options.topic_prefix, options.seed.unwrap_or_else(rand::random));
    let announcements = generator.announcements.len() as u64;
    let broker = if options.host.contains(':') {
        format!("[{}]:{}", options.host, options.port)
    } else {
        format!("{}:{}", options.host, options.port)
    };

    let mut mqtt = MqttOptions::new(
        format!("gatehouse-sim-{:08x}", rand::random::<u32>()),
        options.host.clone(),
        options.port,
    );
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(INFLIGHT);
    if let Some(username) = &options.username {
        mqtt.set_credentials(username.clone(), options.password.clone().unwrap_or_default());
    }
    let (client, eventloop) = AsyncClient::new(mqtt, REQUEST_QUEUE);
    let acked = Arc::new(AtomicU64::new(0));
    let (link_tx, link_rx) = watch::channel(Link::Connecting { last_error: None });
    // The event loop runs in its own task and this function publishes: awaiting `publish` in the task that polls
    // the event loop deadlocks as soon as the request queue is full (rumqttc #263, #1025).
    let poller = AbortOnDrop(tokio::spawn(poll_events(
        eventloop,
        broker.clone(),
        Arc::clone(&acked),
        link_tx,
    )));

    let mut report = SimulationReport::default();
    let mut stop = pin!(stop);
    let connected = {
        let mut link_rx = link_rx.clone();
        async move { link_rx.wait_for(|link| matches!(link, Link::Up)).await.is_ok() }
    };
    tokio::select! {
        biased;
        () = &mut stop => return Ok(report),
        connected = tokio::time::timeout(CONNECT_TIMEOUT, connected) => {
            if connected != Ok(true) {
                let problem = match &*link_rx.borrow() {
                    Link::Connecting { last_error: Some(error) } => error.clone(),
                    _ => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                };
                bail!("cannot connect to mqtt broker {broker}: {problem}");
            }
        }
    }

    // Every device announces itself at once; the rate paces the traffic after that.
    let planned = options
        .duration
        .map(|d| announcements + (d.as_secs_f64() * rate).round() as u64);
    let progress = progress_bar(options.progress, planned);
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    // Messages due by the deadline may still go out a little later after a stall (a slow broker); past this
    // grace publishing stops whatever is left, so a hung broker cannot keep a timed run going.
    let mut halt = pin!(async move {
        match deadline {
            Some(deadline) => tokio::select! {
                () = stop => {}
                () = tokio::time::sleep_until(deadline + DEADLINE_GRACE) => {}
            },
            None => stop.await,
        }
    });
    // Wakes the loop exactly at the deadline to publish what is still due, so a timed run sends its full count.
    let mut at_deadline = pin!(tokio::time::sleep_until(deadline.unwrap_or(started)));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64((1.0 / rate).clamp(MIN_TICK, MAX_TICK)));
    // After a stall, carry on from where publishing is instead of firing the missed ticks.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    'publishing: loop {
        tokio::select! {
            biased;
            () = &mut halt => break,
            () = &mut at_deadline, if deadline.is_some() => {}
            _ = ticks.tick() => {}
        }
        // Messages due by now, counted from the start, so the average rate holds whatever the tick jitter.
        let mut due = announcements + (started.elapsed().as_secs_f64() * rate) as u64 + 1;
        if let Some(planned) = planned {
            due = if at_deadline.is_elapsed() {
                planned
            } else {
                due.min(planned)
            };
        }
        while report.sent < due {
            let message = generator.next_message(Timestamp::now());
            let (kind, duplicate) = (message.kind, message.duplicate);
            tokio::select! {
                biased;
                () = &mut halt => break 'publishing,
                published = client.publish(message.topic, QoS::AtLeastOnce, message.retain, message.payload) => {
                    published.context("the mqtt client stopped")?;
                }
            }
            report.record(kind, duplicate);
        }
        progress.set_position(report.sent);
        progress.set_message(format!("{} acknowledged", acked.load(Ordering::Relaxed)));
        if planned.is_some_and(|planned| report.sent >= planned) {
            break;
        }
    }

    progress.set_message("waiting for acknowledgements");
    let patience = Instant::now() + ACK_WAIT;
    while acked.load(Ordering::Relaxed) < report.sent && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.acked = acked.load(Ordering::Relaxed);
    progress.finish_and_clear();
    if report.acked < report.sent {
        tracing::warn!(
            broker,
            sent = report.sent,
            acked = report.acked,
            "the mqtt broker did not acknowledge every message"
        );
    }
    // Bounded: with the broker gone the request queue may be full and never drain.
    if tokio::time::timeout(Duration::from_secs(1), client.disconnect())
        .await
        .is_ok()
    {
        let mut poller = poller;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut poller.0).await;
    }
    Ok(report)
}

/// Polls the event loop until the client disconnects: counts PUBACKs, tells `run` when the connection is up,
/// and reconnects after errors with a growing backoff (the event loop reconnects on the next poll).
async fn poll_events(mut eventloop: EventLoop, broker: String, acked: Arc<AtomicU64>, link: watch::Sender<Link>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(broker, "connected to the mqtt broker");
                backoff = MIN_BACKOFF;
                link.send_replace(Link::Up);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(ConnectionError::RequestsDone) => return,
            Ok(_) => {}
            Err(error) => {
                // With a clean session, messages in flight when the connection broke are not acknowledged
                // after the reconnect: the report's `acked` then falls short of `sent`.
                let was_up = matches!(*link.borrow(), Link::Up);
                if was_up {
                    tracing::warn!(broker, %error, "lost the connection to the mqtt broker, reconnecting");
                } else {
                    tracing::warn!(broker, %error, retry_in = ?backoff, "cannot connect to the mqtt broker");
                }
                link.send_replace(Link::Connecting {
                    last_error: Some(error.to_string()),
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// A bar over the planned number of messages, or a spinner in demo mode; hidden unless asked for.
fn progress_bar(show: bool, planned: Option<u64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = match planned {
        Some(planned) => ProgressBar::new(planned).with_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} messages sent, {msg}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} messages sent, {msg}")
                .expect("a valid progress template"),
        ),
    };
    bar.set_message("0 acknowledged");
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceCommand, DeviceId, Direction, command_time};
    use std::collections::{HashMap, HashSet};

    const PREFIX: &str = "gatehouse";
    const SITE: &str = r#"
[site]
timezone = "Europe/Berlin"

[[turnstile]]
id = "T1"
name = "Hall A north"
zone = "Hall A"

[[turnstile]]
id = "T2"
name = "Hall B south"
zone = "Hall B"

[[camera]]
id = "C1"
name = "Hall A entrance"
zone = "Hall A"
watches = ["T1"]
"#;

    fn config() -> Config {
        Config::parse(SITE, "config.toml", std::path::Path::new("")).expect("the test config is valid")
    }

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
        assert!((0.6..0.8).contains(&share), "known share {share}");
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
    fn the_report_reads_as_a_short_summary() {
        let mut report = SimulationReport::default();
        for _ in 0..3 {
            report.record("passage", false);
        }
        report.record("passage", true);
        report.record("status", false);
        report.record("fault_cleared", false);
        report.acked = 6;
        assert_eq!(
            report.to_string(),
            "sent 6 messages (1 duplicate), 6 acknowledged\n  passage        4\n  fault_cleared  1\n  status         1"
        );
        assert_eq!(report.by_message["passage"], 4);
    }

    fn options(rate: f64) -> SimulateOptions {
        SimulateOptions {
            rate,
            duration: Some(Duration::from_secs(1)),
            host: "127.0.0.1".into(),
            port: 1,
            username: None,
            password: None,
            topic_prefix: PREFIX.into(),
            seed: Some(1),
            progress: false,
        }
    }

    #[tokio::test]
    async fn run_refuses_a_rate_that_is_not_positive() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = run(&config(), options(rate), std::future::pending()).await.unwrap_err();
            assert!(
                error.to_string().starts_with("rate must be a positive number"),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn run_refuses_a_site_without_devices() {
        let empty = Config::parse("", "config.toml", std::path::Path::new("")).unwrap();
        let error = run(&empty, options(10.0), std::future::pending()).await.unwrap_err();
        assert!(error.to_string().starts_with("no devices to simulate"), "{error}");
    }

    #[tokio::test]
    async fn stopping_before_the_connection_is_up_reports_nothing_sent() {
        // Port 1 on localhost refuses connections: `run` would retry for 10 s, but `stop` wins.
        let report = run(&config(), options(10.0), std::future::ready(())).await.unwrap();
        assert_eq!(report, SimulationReport::default());
    }

    #[test]
    fn the_simulation_can_run_on_any_tokio_worker() {
        // `serve --demo` spawns it: the future must be Send whenever `stop` is.
        fn assert_send(_: impl Send) {}
        let config = config();
        assert_send(run(&config, options(1.0), std::future::pending::<()>()));
    }

    #[test]
    fn the_options_never_show_the_password() {
        let options = SimulateOptions {
            username: Some("sim".into()),
            password: Some("hunter2".into()),
            ..options(1.0)
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("\"sim\"") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_progress_templates_are_valid() {
        // Off a terminal indicatif draws nothing, so this only checks the templates and the steady tick.
        progress_bar(true, Some(10)).finish_and_clear();
        progress_bar(true, None).finish_and_clear();
        assert!(progress_bar(false, Some(10)).is_hidden());
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
