//! Publishing: [`run`] connects to an MQTT broker, publishes the generator's messages at the given rate with QoS 1,
//! counts the broker's acknowledgements and reconnects after errors; [`SimulateOptions`] says how.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::generator::TrafficGenerator;
use super::report::SimulationReport;
use crate::config::Config;

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
            password: config.mqtt.password.as_ref().map(|p| p.expose().clone()),
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
    use super::super::testing::{PREFIX, config};
    use super::*;

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
}
