//! Ingestion from an external broker (`[mqtt] broker = "mqtt://host:port"` or `mqtts://`): gatehouse subscribes
//! with QoS 1, a fixed client id and a persistent session, so the broker keeps what gateways send while gatehouse
//! is down. Each message is acknowledged only after its effect is committed, in the order messages arrived. If the
//! journal cannot commit, the connection is dropped and re-opened: a broker re-sends unacknowledged QoS 1
//! messages only after a reconnect (MQTT 3.1.1 §4.4).
//!
//! The same connection publishes every turnstile's desired state to its `command` topic, retained at QoS 1
//! (all of them on each connect, then each change), and ignores those topics, and the alarms, when the broker
//! hands them back: they are Gatehouse's own words, not device messages.

use super::commands::CommandBoard;
use crate::config::{Broker, MqttConfig};
use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::{Actor, AppendError};
use anyhow::Context;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Connection state and counters, for `/healthz`, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ExternalStatus {
    pub connected: AtomicBool,
    pub messages: AtomicU64,
    pub acked: AtomicU64,
    pub reconnects: AtomicU64,
    /// The broker's host, which events from it record as their actor (`broker:HOST`).
    pub host: String,
}

/// The running subscriber; stops when dropped.
pub struct ExternalSubscriber {
    pub status: Arc<ExternalStatus>,
    stop: watch::Sender<bool>,
}

impl ExternalSubscriber {
    /// Starts subscribing on the current actix/tokio runtime. Connection problems are retried with backoff and
    /// logged; they never stop the server.
    pub fn start(config: &MqttConfig, ingestor: Ingestor, board: CommandBoard) -> anyhow::Result<ExternalSubscriber> {
        let options = options(config)?;
        let host = match &config.broker {
            Broker::External { host, .. } => host.clone(),
            Broker::Embedded => String::new(),
        };
        let status = Arc::new(ExternalStatus {
            host,
            ..Default::default()
        });
        let (stop, stopped) = watch::channel(false);
        let filter = format!("{}/+/+/+", config.topic_prefix);
        let prefix = config.topic_prefix.clone();
        actix_web::rt::spawn(run(options, filter, prefix, ingestor, board, status.clone(), stopped));
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

async fn run(
    options: MqttOptions,
    filter: String,
    prefix: String,
    ingestor: Ingestor,
    board: CommandBoard,
    status: Arc<ExternalStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    let session_setup = Session {
        filter: &filter,
        prefix: &prefix,
        ingestor: &ingestor,
        board: &board,
        status: &status,
    };
    loop {
        let outcome = session(options.clone(), &session_setup, &mut stop, &mut backoff).await;
        status.connected.store(false, Ordering::Relaxed);
        match outcome {
            Ok(()) => return,
            Err(reason) => {
                status.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(broker = %format!("{}:{}", options.broker_address().0, options.broker_address().1),
                    %reason, retry_in = ?backoff, "mqtt connection lost; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// What every connection works with.
struct Session<'a> {
    filter: &'a str,
    prefix: &'a str,
    ingestor: &'a Ingestor,
    board: &'a CommandBoard,
    status: &'a Arc<ExternalStatus>,
}

/// One connection's life: `Ok` when asked to stop, `Err(reason)` when it must be re-opened.
async fn session(
    options: MqttOptions,
    setup: &Session<'_>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let Session {
        filter,
        prefix,
        ingestor,
        board,
        status,
    } = *setup;
    let (client, mut eventloop) = AsyncClient::new(options, usize::from(IN_FLIGHT) + 10);
    let (publishes, incoming) = mpsc::unbounded_channel();
    let (failed_tx, mut failed) = oneshot::channel();
    // Packet ids of committed messages, in arrival order, for `write_acks`.
    let (acks_tx, mut acks) = mpsc::unbounded_channel::<u16>();
    // Ingestion and acknowledgement live in their own task: awaiting the client inside the task that polls the
    // event loop deadlocks once the request channel fills (rumqttc #263, #1025).
    let acker = actix_web::rt::spawn(ingest_in_order(
        acks_tx,
        ingestor.clone(),
        incoming,
        failed_tx,
        status.clone(),
        prefix.to_owned(),
    ));
    let mut publisher: Option<actix_web::rt::task::JoinHandle<()>> = None;
    let result = loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(session_present = ack.session_present, "connected to mqtt broker");
                    status.connected.store(true, Ordering::Relaxed);
                    *backoff = Duration::from_millis(500);
                    // Subscribing again when the session already has it is harmless and covers a lost session.
                    if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                        break Err(format!("cannot subscribe: {e}"));
                    }
                    if publisher.is_none() {
                        publisher = Some(actix_web::rt::spawn(publish_commands(client.clone(), board.clone())));
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        break Err(format!("the broker refused the subscription to {filter}"));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tracing::trace!(topic = %publish.topic, pkid = publish.pkid, dup = publish.dup, "message from the broker");
                    status.messages.fetch_add(1, Ordering::Relaxed);
                    if publishes.send(publish).is_err() {
                        break Err("ingestion stopped".into());
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            Some(first) = acks.recv() => match write_acks(&mut eventloop, first, &mut acks).await {
                Ok(written) => {
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
            _ = stop.wait_for(|s| *s) => break Ok(()),
        }
    };
    acker.abort();
    if let Some(publisher) = publisher {
        publisher.abort();
    }
    result
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

/// Ingests messages concurrently but acknowledges them strictly in arrival order, each only once committed.
/// On a journal failure it acknowledges nothing more and reports, so the session is re-opened.
async fn ingest_in_order(
    acks: mpsc::UnboundedSender<u16>,
    ingestor: Ingestor,
    mut incoming: mpsc::UnboundedReceiver<Publish>,
    failed: oneshot::Sender<AppendError>,
    status: Arc<ExternalStatus>,
    prefix: String,
) {
    /// `Ok(None)`: one of our own topics, acknowledged without ingesting.
    type Done = (Publish, Result<Option<Ingested>, AppendError>);
    let mut pending: FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = Done>>>> = FuturesOrdered::new();
    loop {
        tokio::select! {
            publish = incoming.recv(), if pending.len() < INGESTING => {
                let Some(publish) = publish else { return };
                if CommandBoard::is_own_topic(&prefix, &publish.topic) {
                    // Our own command (or alarm) coming back: acknowledged in order, never ingested.
                    pending.push_back(Box::pin(async move { (publish, Ok(None)) }));
                    continue;
                }
                let ingestor = ingestor.clone();
                let received_at = jiff::Timestamp::now();
                let actor = Actor::broker(&status.host);
                pending.push_back(Box::pin(async move {
                    let received = Received {
                        topic: &publish.topic,
                        payload: &publish.payload,
                        received_at,
                        actor,
                        arrival: Arrival::Mqtt { session: "broker".into(), packet_id: publish.pkid, dup: publish.dup },
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
