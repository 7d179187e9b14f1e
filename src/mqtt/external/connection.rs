//! One session's life at the external broker: connecting, subscribing to its planned filters (and dropping an
//! earlier setting's once every session holds its own), handing messages to `ordered` and writing their
//! acknowledgements, publishing the turnstiles' commands on the first session, reconnecting with backoff, and
//! deleting a retired session once it is drained.

use super::ordered::{Ingesting, ingest_in_order};
use super::{ExternalStatus, IN_FLIGHT};
use crate::ingest::Ingestor;
use crate::journal::Actor;
use crate::mqtt::commands::CommandBoard;
use crate::mqtt::sessions::{Role, SessionSpec};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A retired session is deleted once its filters are dropped, all it got is committed, and the broker has sent it
/// nothing more for this long.
const RETIRED_QUIET: Duration = Duration::from_secs(3);
/// Topic filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 64;

/// What one session works with.
pub(super) struct Session {
    pub(super) spec: SessionSpec,
    pub(super) prefix: String,
    pub(super) ingestor: Ingestor,
    /// The session that publishes the turnstiles' commands has the board.
    pub(super) board: Option<CommandBoard>,
    /// For discovery: the configured devices (`kind/id`), whose messages their own sessions ingest.
    pub(super) known: Option<Arc<HashSet<String>>>,
    pub(super) status: Arc<ExternalStatus>,
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
pub(super) async fn run(options: MqttOptions, setup: Session, mut stop: watch::Receiver<bool>) {
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
            actor: Actor::broker(&status.host),
            known: known.clone(),
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
