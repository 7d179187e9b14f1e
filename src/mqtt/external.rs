//! Ingestion from an external broker (`[mqtt] broker = "mqtt://host:port"` or `mqtts://`): gatehouse subscribes
//! with QoS 1 over `[mqtt] subscriber_sessions` connections (the plan of `sessions`: each device's topics in one
//! of them), each with a fixed client id and a persistent session, so the broker keeps what gateways send while
//! gatehouse is down. Each message is acknowledged only after its effect is committed, in the order messages
//! arrived on its session. If the journal cannot commit, the connection is dropped and re-opened: a broker
//! re-sends unacknowledged QoS 1 messages only after a reconnect (MQTT 3.1.1 §4.4).
//!
//! The first session also publishes every turnstile's desired state to its `command` topic, retained at QoS 1
//! (all of them on each connect, then each change), and every session ignores those topics, and the alarms, when
//! the broker hands them back: they are Gatehouse's own words, not device messages.

use super::commands::CommandBoard;
use super::sessions::{Role, SessionPlan, SessionSpec};
use crate::config::{Broker, MqttConfig};
use crate::domain::{DeviceId, DeviceKind};
use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::{Actor, AppendError};
use anyhow::Context;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter, Transport};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// QoS 1 messages the broker may have outstanding with us at once.
const IN_FLIGHT: u16 = 1000;
/// Messages being ingested at once; further ones wait in the hand-over queue. How many the broker sends before
/// our acknowledgements is the broker's in-flight window (Mosquitto: `max_inflight_messages`, default 20), which
/// is what keeps a backlog after an outage in the broker rather than in our memory. Blocking the event-loop task
/// instead (a bounded hand-over) stalled ingestion under load in the benchmark, so the hand-over stays unbounded.
/// Each group commit takes whatever is being ingested: 512 at once gave groups of ~140 events and 0.34-0.37 of
/// Mosquitto's relay rate in the ingest bench, 4,096 groups of ~300 and 0.42-0.53 (a few hundred KiB held).
const INGESTING: usize = 4096;
/// A retired session is deleted once its filters are dropped, all it got is committed, and the broker has sent it
/// nothing more for this long.
const RETIRED_QUIET: Duration = Duration::from_secs(3);
/// Topic filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 64;

/// Connection state and counters, for `/healthz`, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ExternalStatus {
    /// Sessions Gatehouse keeps open (device sessions and, with several, discovery); retired ones not counted.
    pub sessions: usize,
    /// Sessions connected with every subscription acknowledged: messages published now reach them.
    pub connected_sessions: AtomicUsize,
    pub messages: AtomicU64,
    pub acked: AtomicU64,
    pub reconnects: AtomicU64,
    /// Left-over sessions of an earlier `subscriber_sessions` drained and deleted.
    pub retired: AtomicU64,
    /// The broker's host, which events from it record as their actor (`broker:HOST`).
    pub host: String,
}

impl ExternalStatus {
    /// Every session is connected and subscribed.
    pub fn connected(&self) -> bool {
        self.connected_sessions.load(Ordering::Relaxed) == self.sessions
    }
}

/// The running subscriber; stops when dropped.
pub struct ExternalSubscriber {
    pub status: Arc<ExternalStatus>,
    stop: watch::Sender<bool>,
}

impl ExternalSubscriber {
    /// Starts subscribing on the current actix/tokio runtime, one task per session of the plan for `devices`
    /// (the configured ones). Connection problems are retried with backoff and logged; they never stop the server.
    pub fn start(
        config: &MqttConfig,
        devices: &[(DeviceId, DeviceKind)],
        ingestor: Ingestor,
        board: CommandBoard,
    ) -> anyhow::Result<ExternalSubscriber> {
        let options = options(config)?;
        let host = match &config.broker {
            Broker::External { host, .. } => host.clone(),
            Broker::Embedded => String::new(),
        };
        let plan = SessionPlan::new(
            &client_id(config),
            &config.topic_prefix,
            devices,
            config.subscriber_sessions,
        );
        let status = Arc::new(ExternalStatus {
            host,
            sessions: plan.active.len(),
            ..Default::default()
        });
        let (stop, stopped) = watch::channel(false);
        let known: Arc<HashSet<String>> = Arc::new(
            devices
                .iter()
                .map(|(id, kind)| format!("{kind}/{}", id.as_str()))
                .collect(),
        );
        tracing::info!(
            sessions = plan.active.len(),
            devices = devices.len(),
            "subscribing at the mqtt broker"
        );
        for (n, spec) in plan.active.into_iter().chain(plan.retired).enumerate() {
            let setup = Session {
                // The first session publishes the turnstiles' commands.
                board: (n == 0).then(|| board.clone()),
                known: (spec.role == Role::Discovery).then(|| known.clone()),
                spec,
                prefix: config.topic_prefix.clone(),
                ingestor: ingestor.clone(),
                status: status.clone(),
            };
            actix_web::rt::spawn(run(options.clone(), setup, stopped.clone()));
        }
        Ok(ExternalSubscriber { status, stop })
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for ExternalSubscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client id: fixed, so the broker recognises our persistent session across restarts.
pub fn client_id(config: &MqttConfig) -> String {
    format!("gatehouse-{}", config.topic_prefix.replace('/', "-"))
}

pub fn options(config: &MqttConfig) -> anyhow::Result<MqttOptions> {
    let Broker::External { host, port, tls, .. } = &config.broker else {
        anyhow::bail!("mqtt: the external subscriber needs a broker URL");
    };
    let mut options = MqttOptions::new(client_id(config), host.clone(), *port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_inflight(IN_FLIGHT);
    // Payloads over 64 KiB must still arrive to be dead-lettered with their reason.
    options.set_max_packet_size(crate::mqtt::codec::MAX_PACKET, crate::mqtt::codec::MAX_PACKET);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options.set_credentials(user.clone(), password.expose().clone());
    } else if let Some(user) = &config.username {
        options.set_credentials(user.clone(), "");
    }
    if *tls {
        options.set_transport(Transport::tls_with_config(
            crate::tls::client_config().context("mqtt: mqtts://")?.into(),
        ));
    }
    Ok(options)
}

/// What one session works with.
struct Session {
    spec: SessionSpec,
    prefix: String,
    ingestor: Ingestor,
    /// The session that publishes the turnstiles' commands has the board.
    board: Option<CommandBoard>,
    /// For discovery: the configured devices (`kind/id`), whose messages their own sessions ingest.
    known: Option<Arc<HashSet<String>>>,
    status: Arc<ExternalStatus>,
}

/// How a connection ended without an error.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// A retired session has drained (`kept`: the broker still had it; else this connection made it): delete it.
    Drained { kept: bool },
}

/// One session's life: connections re-opened with backoff until asked to stop (or, for a retired session, until
/// it is drained and deleted).
async fn run(options: MqttOptions, setup: Session, mut stop: watch::Receiver<bool>) {
    let mut options = options;
    options.set_client_id(setup.spec.client_id.clone());
    let mut backoff = Duration::from_millis(500);
    loop {
        let reason = match session(options.clone(), &setup, &mut stop, &mut backoff).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Drained { kept }) => match delete_session(options.clone(), &mut stop).await {
                Ok(deleted) => {
                    if deleted && kept {
                        tracing::info!(session = %setup.spec.client_id,
                            "drained and deleted a session an earlier subscriber_sessions left at the broker");
                        setup.status.retired.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        if setup.spec.role != Role::Retired {
            setup.status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(broker = %format!("{}:{}", options.broker_address().0, options.broker_address().1),
            session = %setup.spec.label, %reason, retry_in = ?backoff, "mqtt connection lost; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Deletes a drained session: connecting with a clean session discards the broker's one (MQTT 3.1.1 §3.1.2.4),
/// and this connection's own ends with it. `Ok(false)`: asked to stop first.
async fn delete_session(mut options: MqttOptions, stop: &mut watch::Receiver<bool>) -> Result<bool, String> {
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.try_disconnect().map_err(|e| format!("cannot disconnect: {e}"))?;
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return Ok(true),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
            _ = stop.wait_for(|s| *s) => return Ok(false),
        }
    }
}

/// One connection's life: `Ok` when asked to stop or drained, `Err(reason)` when it must be re-opened.
async fn session(
    options: MqttOptions,
    setup: &Session,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<Ended, String> {
    let Session {
        spec,
        prefix,
        ingestor,
        board,
        known,
        status,
    } = setup;
    let (client, mut eventloop) = AsyncClient::new(options, usize::from(IN_FLIGHT) + 10);
    let (publishes, incoming) = mpsc::unbounded_channel();
    let (failed_tx, mut failed) = oneshot::channel();
    // Packet ids of committed messages, in arrival order, for `write_acks`.
    let (acks_tx, mut acks) = mpsc::unbounded_channel::<u16>();
    // Ingestion and acknowledgement live in their own task: awaiting the client inside the task that polls the
    // event loop deadlocks once the request channel fills (rumqttc #263, #1025).
    let acker = actix_web::rt::spawn(ingest_in_order(
        acks_tx,
        Ingesting {
            ingestor: ingestor.clone(),
            prefix: prefix.clone(),
            label: spec.label.clone(),
            known: known.clone(),
            status: status.clone(),
        },
        incoming,
        failed_tx,
    ));
    let mut helpers: Vec<actix_web::rt::task::JoinHandle<()>> = Vec::new();
    let mut counted = false;
    // SUBACKs still to come on this connection; the session counts as connected once there are none.
    let mut awaiting_subacks = usize::MAX;
    // A retired session's QoS 1 messages not yet acknowledged, and when it last heard from the broker.
    let mut outstanding: u64 = 0;
    let mut quiet_from: Option<tokio::time::Instant> = None;
    let result = loop {
        if awaiting_subacks == 0 && !counted && spec.role != Role::Retired {
            counted = true;
            status.connected_sessions.fetch_add(1, Ordering::Relaxed);
        }
        let drained = async {
            match quiet_from {
                Some(from) => tokio::time::sleep_until(from + RETIRED_QUIET).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(session = %spec.label, session_present = ack.session_present, "connected to mqtt broker");
                    *backoff = Duration::from_millis(500);
                    if spec.role == Role::Retired {
                        if !ack.session_present {
                            // The broker kept nothing: this connection made the (empty) session; delete it.
                            break Ok(Ended::Drained { kept: false });
                        }
                        quiet_from = Some(tokio::time::Instant::now());
                    }
                    // Subscribing again when the session already has it is harmless and covers a lost session.
                    let subscribed = spec.subscribe.chunks(FILTERS_PER_SUBSCRIBE).try_for_each(|chunk| {
                        client.try_subscribe_many(chunk.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)))
                    });
                    if let Err(e) = subscribed {
                        break Err(format!("cannot subscribe: {e}"));
                    }
                    awaiting_subacks = spec.subscribe.len().div_ceil(FILTERS_PER_SUBSCRIBE);
                    // Filters an earlier setting left on this session go only once every session has its own in
                    // place: a device moving between sessions is held by both for a moment rather than by neither
                    // (and a message in that moment is de-duplicated by its msg_id).
                    if ack.session_present && !spec.unsubscribe.is_empty() {
                        let filters = spec.unsubscribe.clone();
                        helpers.push(actix_web::rt::spawn(unsubscribe(client.clone(), filters, status.clone())));
                    }
                    if let Some(board) = board {
                        helpers.push(actix_web::rt::spawn(publish_commands(client.clone(), board.clone())));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        break Err(format!("the broker refused a subscription of session {}", spec.client_id));
                    }
                    awaiting_subacks = awaiting_subacks.saturating_sub(1);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tracing::trace!(session = %spec.label, topic = %publish.topic, pkid = publish.pkid, dup = publish.dup, "message from the broker");
                    status.messages.fetch_add(1, Ordering::Relaxed);
                    if publish.qos != QoS::AtMostOnce {
                        outstanding += 1;
                    }
                    if quiet_from.is_some() {
                        quiet_from = Some(tokio::time::Instant::now());
                    }
                    if publishes.send(publish).is_err() {
                        break Err("ingestion stopped".into());
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            Some(first) = acks.recv() => match write_acks(&mut eventloop, first, &mut acks).await {
                Ok(written) => {
                    outstanding = outstanding.saturating_sub(written);
                    status.acked.fetch_add(written, Ordering::Relaxed);
                }
                Err(e) => break Err(e),
            },
            journal_error = &mut failed => {
                break Err(match journal_error {
                    Ok(error) => format!("{error}; re-opening the connection so the broker re-sends"),
                    Err(_) => "ingestion stopped".into(),
                });
            }
            () = drained => {
                // Drained: everything acknowledged, and its filters dropped (which waits for the sessions in use
                // to hold them), so deleting it cannot leave a device with no session.
                if outstanding == 0 && helpers.iter().all(|h| h.is_finished()) {
                    break Ok(Ended::Drained { kept: true });
                }
                quiet_from = Some(tokio::time::Instant::now());
            }
            _ = stop.wait_for(|s| *s) => break Ok(Ended::Stopped),
        }
    };
    if counted {
        status.connected_sessions.fetch_sub(1, Ordering::Relaxed);
    }
    acker.abort();
    for helper in helpers {
        helper.abort();
    }
    result
}

/// Drops filters an earlier setting left on this session, once every session in use is subscribed. Each is its
/// own request (rumqttc unsubscribes one filter per call), awaited here rather than in the task that polls the
/// event loop.
async fn unsubscribe(client: AsyncClient, filters: Vec<String>, status: Arc<ExternalStatus>) {
    while !status.connected() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for filter in filters {
        if let Err(error) = client.unsubscribe(filter.clone()).await {
            tracing::warn!(%filter, %error, "cannot unsubscribe; the next connection tries again");
            return;
        }
    }
}

/// Writes the PUBACK of `first` and of every further committed message already queued, then flushes once: one
/// TCP write per batch, where `AsyncClient::ack` costs a request, a 4-byte write and a flush per message (and the
/// broker a read per acknowledgement) - about a tenth of the ingesting thread in the external benchmark.
///
/// Writing beside rumqttc's event loop is sound because of how its `poll` can be interrupted here: it writes at
/// most one packet before flushing (a command, a subscription or a ping; with manual acknowledgements and QoS 1
/// reading writes nothing), and a write only waits when the buffer already holds 8 KiB. This function always
/// flushes to the end, so the buffer is empty whenever `poll` writes, its writes never wait, and dropping `poll`
/// can only interrupt a flush, whose bytes stay buffered for the next one. rumqttc keeps no state for the
/// acknowledgements it is bypassed for (it drops queued ones on reconnect, as a broker re-sends those messages).
async fn write_acks(
    eventloop: &mut rumqttc::EventLoop,
    first: u16,
    queued: &mut mpsc::UnboundedReceiver<u16>,
) -> Result<u64, String> {
    let timeout = Duration::from_secs(eventloop.network_options.connection_timeout());
    let Some(network) = eventloop.network.as_mut() else {
        // Not connected: the broker re-sends these messages when we are, and they are de-duplicated.
        while queued.try_recv().is_ok() {}
        return Ok(0);
    };
    let mut written = 0;
    let mut next = Some(first);
    while let Some(pkid) = next {
        network
            .write(Packet::PubAck(rumqttc::PubAck::new(pkid)))
            .await
            .map_err(|e| format!("cannot acknowledge: {e}"))?;
        written += 1;
        next = queued.try_recv().ok();
    }
    match tokio::time::timeout(timeout, network.flush()).await {
        Ok(Ok(())) => Ok(written),
        Ok(Err(e)) => Err(format!("cannot acknowledge: {e}")),
        Err(_) => Err(format!("the broker took over {timeout:?} to take our acknowledgements")),
    }
}

/// Publishes every turnstile's desired state retained at QoS 1 (a broker that lost its retained messages gets
/// them back on each connect), then each change. rumqttc re-sends what the broker has not acknowledged.
async fn publish_commands(client: AsyncClient, board: CommandBoard) {
    let mut changes = board.watch();
    let mut states = board.all();
    loop {
        let mut last = 0;
        for state in states {
            last = last.max(state.position);
            let topic = board.topic(&state.device);
            if let Err(error) = client
                .publish(topic.clone(), QoS::AtLeastOnce, true, state.payload())
                .await
            {
                // The connection is going away; the next one publishes everything again.
                tracing::warn!(%topic, %error, "cannot publish a turnstile's command");
                return;
            }
            tracing::debug!(%topic, version = state.version, locked = state.locked, "published command");
        }
        if changes.changed().await.is_err() {
            return;
        }
        states = board.changed_after(last);
    }
}

/// What a session's ingestion needs.
struct Ingesting {
    ingestor: Ingestor,
    prefix: String,
    /// The session's label, which keys protocol redeliveries (packet ids are per session).
    label: String,
    /// Discovery's view of the configured devices (`kind/id`): their messages are acknowledged unread.
    known: Option<Arc<HashSet<String>>>,
    status: Arc<ExternalStatus>,
}

impl Ingesting {
    /// Acknowledged without ingesting: our own commands and alarms coming back, and, on the discovery session,
    /// a configured device's message (its own session has it).
    fn skips(&self, topic: &str) -> bool {
        if CommandBoard::is_own_topic(&self.prefix, topic) {
            return true;
        }
        let Some(known) = &self.known else { return false };
        let device = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.rsplit_once('/'))
            .map(|(device, _message)| device);
        device.is_some_and(|device| known.contains(device))
    }
}

/// Ingests messages concurrently but acknowledges them strictly in arrival order, each only once committed.
/// On a journal failure it acknowledges nothing more and reports, so the session is re-opened.
async fn ingest_in_order(
    acks: mpsc::UnboundedSender<u16>,
    ingesting: Ingesting,
    mut incoming: mpsc::UnboundedReceiver<Publish>,
    failed: oneshot::Sender<AppendError>,
) {
    /// `Ok(None)`: acknowledged without ingesting.
    type Done = (Publish, Result<Option<Ingested>, AppendError>);
    let mut pending: FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = Done>>>> = FuturesOrdered::new();
    loop {
        tokio::select! {
            publish = incoming.recv(), if pending.len() < INGESTING => {
                let Some(publish) = publish else { return };
                if ingesting.skips(&publish.topic) {
                    pending.push_back(Box::pin(async move { (publish, Ok(None)) }));
                    continue;
                }
                let ingestor = ingesting.ingestor.clone();
                let received_at = jiff::Timestamp::now();
                let actor = Actor::broker(&ingesting.status.host);
                let session = ingesting.label.clone();
                pending.push_back(Box::pin(async move {
                    let received = Received {
                        topic: &publish.topic,
                        payload: &publish.payload,
                        received_at,
                        actor,
                        arrival: Arrival::Mqtt { session, packet_id: publish.pkid, dup: publish.dup },
                        gateway: None,
                    };
                    let result = ingestor.ingest(received).await.map(Some);
                    (publish, result)
                }));
            }
            Some((publish, result)) = pending.next(), if !pending.is_empty() => match result {
                Ok(_) => {
                    if publish.qos != QoS::AtMostOnce && acks.send(publish.pkid).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = failed.send(error);
                    return;
                }
            },
        }
    }
}
