//! The embedded MQTT endpoint (`[mqtt] broker = "embedded"`): gateways connect here directly. Unlike a
//! general-purpose broker it acknowledges a QoS 1 PUBLISH only after the journal has committed what the message
//! caused (an event or a dead letter), and acknowledges in arrival order (MQTT 3.1.1 §4.6). A message whose
//! effect could not be committed is never acknowledged: the connection is closed, and the gateway re-sends it.
//! Gateways may subscribe to their turnstiles' command topics only (see `subscriptions`); anything else is
//! refused.

use super::codec::{self, Inbound, Outbound, Version, Will};
use super::subscriptions::{CommandDelivery, Outgoing};
use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::Actor;
use crate::journal::AppendError;
use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// QoS 1 messages of one connection being ingested at once; past this, the socket is not read (backpressure).
pub const MAX_IN_FLIGHT: usize = 1024;

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub connections: AtomicU64,
    pub messages: AtomicU64,
    pub acked: AtomicU64,
    pub wills: AtomicU64,
}

/// A running endpoint.
pub struct EmbeddedEndpoint {
    pub addr: SocketAddr,
    pub stats: Arc<EndpointStats>,
    stop: watch::Sender<bool>,
}

impl EmbeddedEndpoint {
    /// Binds `listen` and starts accepting gateways on the current actix/tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        ingestor: Ingestor,
        delivery: CommandDelivery,
    ) -> anyhow::Result<EmbeddedEndpoint> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("mqtt: cannot listen on {listen}: {e}"))?;
        Self::start_on(listener, ingestor, delivery)
    }

    /// Starts accepting gateways on a listener bound earlier (at boot, before recovery, so connections queue).
    pub fn start_on(
        listener: std::net::TcpListener,
        ingestor: Ingestor,
        delivery: CommandDelivery,
    ) -> anyhow::Result<EmbeddedEndpoint> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(EndpointStats::default());
        let (stop, stopped) = watch::channel(false);
        let accept_stats = stats.clone();
        actix_web::rt::spawn(accept_loop(listener, ingestor, delivery, accept_stats, stopped));
        tracing::info!(%addr, "embedded mqtt endpoint listening");
        Ok(EmbeddedEndpoint { addr, stats, stop })
    }

    /// Stops accepting and closes every connection (unacknowledged messages will be re-sent by gateways).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for EmbeddedEndpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(
    listener: TcpListener,
    ingestor: Ingestor,
    delivery: CommandDelivery,
    stats: Arc<EndpointStats>,
    mut stop: watch::Receiver<bool>,
) {
    let connections_stop = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let connection = Connection {
                        ingestor: ingestor.clone(),
                        delivery: delivery.clone(),
                        stats: stats.clone(),
                        peer,
                    };
                    actix_web::rt::spawn(connection.run(stream, connections_stop.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%error, "mqtt accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    /// The client sent DISCONNECT (its will is dropped unless a v5 client asked for it).
    Disconnected { send_will: bool },
    /// The client vanished, broke the protocol or went silent: its will is published.
    Lost(String),
    /// The journal could not commit: close without acknowledging, so the client re-sends. No will: the client
    /// did nothing wrong.
    JournalFailed(AppendError),
    /// The server is stopping.
    ShuttingDown,
}

/// What a connection's CONNECT settled.
struct Session<'a> {
    client_id: &'a str,
    version: Version,
    keep_alive: u16,
}

struct Connection {
    ingestor: Ingestor,
    delivery: CommandDelivery,
    stats: Arc<EndpointStats>,
    peer: SocketAddr,
}

/// The outcome of one ingested QoS 1 message, in arrival order.
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Result<Ingested, AppendError>)>>>;

impl Connection {
    async fn run(self, mut stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match codec::read_connect(&mut buf) {
                    Ok(Some(connect)) => return Ok(connect),
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
                match stream.read_buf(&mut buf).await {
                    Ok(0) => return Err("closed before CONNECT".to_owned()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        let (version, client_id, clean_session, keep_alive, will) = match connect {
            Ok(Ok(Inbound::Connect {
                version,
                client_id,
                clean_session,
                keep_alive,
                will,
            })) => (version, client_id, clean_session, keep_alive, will),
            // `read_connect` returns nothing else; should it ever, the client is refused, not the process stopped.
            Ok(Ok(_)) => return,
            Ok(Err(reason)) => {
                tracing::info!(peer = %self.peer, %reason, "mqtt connection refused");
                return;
            }
            Err(_) => {
                tracing::info!(peer = %self.peer, "mqtt connection sent no CONNECT in time");
                return;
            }
        };
        // A client without an id (MQTT 3.1.1 allows it with a clean session, and mosquitto_pub sends none) is named
        // by its address: that names it in its events' actor and keeps its deliveries apart from other such
        // clients' (a clean session cannot be resumed, so nothing of it is redelivered on another connection).
        let client_id = if client_id.is_empty() {
            format!("anonymous@{}", self.peer)
        } else {
            client_id
        };
        // The session state this endpoint keeps for a client is its command subscriptions (in journal.db) and
        // nothing queued (the desired state is recomputed, not queued), so a persistent session always "exists":
        // saying so keeps clients that honour session_present (rumqttc >= 0.25) re-sending their
        // unacknowledged messages after a reconnect.
        let outgoing = match self.delivery.open_session(&client_id, clean_session).await {
            Ok(outgoing) => outgoing,
            Err(error) => {
                // Without its subscriptions the session would silently miss commands: refuse, the client retries.
                tracing::warn!(peer = %self.peer, client = %client_id, %error, "cannot open mqtt session");
                let mut out = BytesMut::new();
                codec::write(version, &Outbound::ConnRefused, &mut out);
                let _ = stream.write_all(&out).await;
                return;
            }
        };
        let session_present = !clean_session;
        let mut out = BytesMut::with_capacity(256);
        codec::write(version, &Outbound::ConnAck { session_present }, &mut out);
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        tracing::debug!(peer = %self.peer, client = %client_id, ?version, keep_alive, "mqtt client connected");

        let ending = self
            .serve(
                &mut stream,
                Session {
                    client_id: &client_id,
                    version,
                    keep_alive,
                },
                &mut buf,
                &mut stop,
                outgoing,
            )
            .await;
        match &ending {
            Ending::Disconnected { .. } | Ending::ShuttingDown => {
                tracing::debug!(peer = %self.peer, client = %client_id, ?ending, "mqtt client left")
            }
            Ending::Lost(reason) => tracing::info!(peer = %self.peer, client = %client_id, %reason, "mqtt client lost"),
            Ending::JournalFailed(error) => {
                tracing::warn!(peer = %self.peer, client = %client_id, %error, "closing mqtt connection unacknowledged")
            }
        }
        if matches!(ending, Ending::ShuttingDown | Ending::JournalFailed(_)) {
            codec::write(version, &Outbound::Disconnect { protocol_error: false }, &mut out);
            let _ = stream.write_all(&out).await;
        }
        let _ = stream.shutdown().await;
        let publish_will = matches!(ending, Ending::Lost(_) | Ending::Disconnected { send_will: true });
        if let (true, Some(will)) = (publish_will, will) {
            self.publish_will(&client_id, will).await;
        }
    }

    /// Ingests a vanished gateway's Last Will like any message it could have sent (typically `status` =
    /// `offline`). A journal failure here is logged: there is no one left to re-send it.
    async fn publish_will(&self, client_id: &str, will: Will) {
        self.stats.wills.fetch_add(1, Ordering::Relaxed);
        match self
            .ingestor
            .ingest(Received {
                topic: &will.topic,
                payload: &will.payload,
                received_at: jiff::Timestamp::now(),
                actor: Actor::gateway(client_id),
                arrival: Arrival::Once,
            })
            .await
        {
            Ok(outcome) => tracing::info!(client = %client_id, topic = %will.topic, ?outcome, "published last will"),
            Err(error) => tracing::error!(client = %client_id, topic = %will.topic, %error, "cannot record last will"),
        }
    }

    async fn serve(
        &self,
        stream: &mut TcpStream,
        session: Session<'_>,
        buf: &mut BytesMut,
        stop: &mut watch::Receiver<bool>,
        mut outgoing: Outgoing,
    ) -> Ending {
        let Session {
            client_id,
            version,
            keep_alive,
        } = session;
        // MQTT §3.1.2.10: the server may close a connection silent for one and a half keep-alive periods.
        let idle_limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        let mut last_heard = tokio::time::Instant::now();
        let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
        let mut out = BytesMut::with_capacity(1024);
        let mut board = self.delivery.board.watch();
        // A persistent session's turnstiles get what they have not acknowledged (after a reconnect or a restart).
        let mut commands = Vec::new();
        outgoing.due(&self.delivery, true, &mut commands);
        for packet in commands.drain(..) {
            codec::write(version, &packet, &mut out);
        }
        loop {
            // Handle every complete packet already buffered.
            loop {
                let packet = match codec::read(version, buf) {
                    Ok(Some(packet)) => packet,
                    Ok(None) => break,
                    Err(error) => {
                        codec::write(version, &Outbound::Disconnect { protocol_error: true }, &mut out);
                        let _ = stream.write_all(&out).await;
                        return Ending::Lost(format!("protocol error: {error}"));
                    }
                };
                match packet {
                    Inbound::Publish {
                        qos: qos @ (0 | 1),
                        pkid,
                        dup,
                        topic,
                        payload,
                    } => {
                        self.stats.messages.fetch_add(1, Ordering::Relaxed);
                        // QoS 0 promises nothing and gets no PUBACK (id 0); still, every message ends as an event
                        // or a dead letter.
                        let ack_id = if qos == 0 { 0 } else { pkid };
                        let ingestor = self.ingestor.clone();
                        let received_at = jiff::Timestamp::now();
                        let (actor, session) = (Actor::gateway(client_id), client_id.to_owned());
                        pending.push_back(Box::pin(async move {
                            let received = Received {
                                topic: &topic,
                                payload: &payload,
                                received_at,
                                actor,
                                arrival: Arrival::Mqtt {
                                    session,
                                    packet_id: ack_id,
                                    dup,
                                },
                            };
                            (ack_id, ingestor.ingest(received).await)
                        }));
                    }
                    Inbound::Publish { .. } => {
                        codec::write(version, &Outbound::Disconnect { protocol_error: false }, &mut out);
                        let _ = stream.write_all(&out).await;
                        return Ending::Lost("QoS 2 is not supported: publish with QoS 1".into());
                    }
                    Inbound::PingReq => codec::write(version, &Outbound::PingResp, &mut out),
                    Inbound::Subscribe { pkid, filters } => {
                        if let Err(error) = outgoing.subscribe(&self.delivery, pkid, &filters, &mut commands).await {
                            // Not kept, so not granted: the client sees the connection drop and subscribes again.
                            return Ending::Lost(format!("cannot keep the subscription: {error:#}"));
                        }
                        for packet in commands.drain(..) {
                            codec::write(version, &packet, &mut out);
                        }
                    }
                    Inbound::Unsubscribe { pkid, filters } => {
                        if let Err(error) = outgoing.unsubscribe(&self.delivery, &filters).await {
                            return Ending::Lost(format!("cannot forget the subscription: {error:#}"));
                        }
                        let filters = filters.len();
                        codec::write(version, &Outbound::UnsubAck { pkid, filters }, &mut out)
                    }
                    Inbound::PubAck { pkid } => {
                        outgoing.puback(&self.delivery, pkid);
                        // Room in the window: send what waited for it.
                        outgoing.due(&self.delivery, false, &mut commands);
                        for packet in commands.drain(..) {
                            codec::write(version, &packet, &mut out);
                        }
                    }
                    Inbound::Disconnect { send_will } => {
                        // Finish and acknowledge what was already sent before leaving.
                        while let Some((pkid, result)) = pending.next().await {
                            if let Err(ending) = self.acknowledge(version, pkid, result, &mut out) {
                                return ending;
                            }
                        }
                        let _ = stream.write_all(&out).await;
                        return Ending::Disconnected { send_will };
                    }
                    Inbound::Connect { .. } | Inbound::Unexpected(_) => {
                        let what = match packet {
                            Inbound::Unexpected(what) => what,
                            _ => "a second CONNECT",
                        };
                        codec::write(version, &Outbound::Disconnect { protocol_error: true }, &mut out);
                        let _ = stream.write_all(&out).await;
                        return Ending::Lost(format!("protocol error: client sent {what}"));
                    }
                }
            }
            if !out.is_empty() {
                if let Err(e) = stream.write_all(&out).await {
                    return Ending::Lost(format!("write failed: {e}"));
                }
                out.clear();
            }
            let idle_deadline = idle_limit.map(|limit| last_heard + limit);
            tokio::select! {
                read = stream.read_buf(buf), if pending.len() < MAX_IN_FLIGHT => match read {
                    Ok(0) => return Ending::Lost("connection closed without DISCONNECT".into()),
                    Ok(_) => last_heard = tokio::time::Instant::now(),
                    Err(e) => return Ending::Lost(format!("read failed: {e}")),
                },
                Some((pkid, result)) = pending.next(), if !pending.is_empty() => {
                    if let Err(ending) = self.acknowledge(version, pkid, result, &mut out) {
                        return ending;
                    }
                    // Acknowledge everything else already done in one write.
                    while let Some(Some((pkid, result))) = futures_util::FutureExt::now_or_never(pending.next()) {
                        if let Err(ending) = self.acknowledge(version, pkid, result, &mut out) {
                            return ending;
                        }
                    }
                }
                changed = board.changed(), if outgoing.subscribed() => {
                    if changed.is_ok() {
                        outgoing.due(&self.delivery, false, &mut commands);
                        for packet in commands.drain(..) {
                            codec::write(version, &packet, &mut out);
                        }
                    }
                }
                _ = sleep_until_opt(idle_deadline) => {
                    return Ending::Lost(format!("silent for more than 1.5 x keep-alive ({keep_alive} s)"));
                }
                _ = stop.wait_for(|s| *s) => return Ending::ShuttingDown,
            }
        }
    }

    /// Queues the PUBACK for a committed message (none for QoS 0), or ends the connection when nothing was
    /// committed, so that it and everything after it are re-sent.
    fn acknowledge(
        &self,
        version: Version,
        pkid: u16,
        result: Result<Ingested, AppendError>,
        out: &mut BytesMut,
    ) -> Result<(), Ending> {
        match result {
            Ok(_) if pkid == 0 => Ok(()),
            Ok(_) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                codec::write(version, &Outbound::PubAck { pkid }, out);
                Ok(())
            }
            Err(error) => Err(Ending::JournalFailed(error)),
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
