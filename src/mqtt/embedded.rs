//! The embedded MQTT endpoint (`[mqtt] broker = "embedded"`): gateways connect here directly. Unlike a
//! general-purpose broker it acknowledges a QoS 1 PUBLISH only after the journal has committed what the message
//! caused (an event or a dead letter), and acknowledges in arrival order (MQTT 3.1.1 §4.6). A message whose
//! effect could not be committed is never acknowledged: the connection is closed, and the gateway re-sends it.
//! Gateways may subscribe to their turnstiles' command topics only (see `subscriptions`); anything else is
//! refused.

use super::codec::{self, FrameError, Inbound, Outbound, Refusal, Version, Will};
use super::subscriptions::{CommandDelivery, Outgoing};
use crate::gateways::Gateway;
use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::Actor;
use crate::journal::AppendError;
use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client that asked for no keep-alive (0) may stay silent: it still may not hold a connection for
/// ever.
const IDLE_WITHOUT_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// How long one packet may take to arrive once its first bytes did (a client trickling bytes holds a
/// connection and its buffer).
const PARTIAL_PACKET_TIMEOUT: Duration = Duration::from_secs(30);
/// QoS 1 messages of one connection being ingested at once; past this, the socket is not read (backpressure).
pub const MAX_IN_FLIGHT: usize = 1024;

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub connections: AtomicU64,
    /// Connections refused: too many open, or a CONNECT that did not sign in.
    pub refused: AtomicU64,
    pub messages: AtomicU64,
    pub acked: AtomicU64,
    pub wills: AtomicU64,
}

/// Who may connect: `[mqtt] require_auth` (gateways sign in with an identity from `gatehouse gateway add`),
/// `max_connections`, and the sessions connected now (a second connection of the same identity with the same
/// client id takes the session over and the first is closed, MQTT-3.1.4-2; another identity cannot).
#[derive(Clone)]
pub struct Admission {
    require_auth: bool,
    /// MQTT over TLS beside plain MQTT on the same listener, when `tls_cert` and `tls_key` are configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    journal: std::path::PathBuf,
    open: Arc<std::sync::atomic::AtomicUsize>,
    sessions: Arc<std::sync::Mutex<std::collections::HashMap<String, Claim>>>,
    next_connection: Arc<AtomicU64>,
}

/// A client id in use: by which identity, which connection, and how to close it.
struct Claim {
    identity: Option<String>,
    connection: u64,
    take_over: watch::Sender<bool>,
}

impl Admission {
    pub fn new(config: &crate::config::MqttConfig, journal: std::path::PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            require_auth: config.require_auth,
            tls: config.tls.as_ref().map(tls_acceptor).transpose()?,
            max_connections: config.max_connections,
            journal,
            open: Arc::default(),
            sessions: Arc::default(),
            next_connection: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The gateway these credentials sign in (`Ok(None)` when sign-in is off).
    async fn sign_in(&self, login: Option<(String, String)>) -> Result<Option<Arc<Gateway>>, Refusal> {
        if !self.require_auth {
            return Ok(None);
        }
        let Some((name, password)) = login else {
            return Err(Refusal::BadCredentials);
        };
        let journal = self.journal.clone();
        let found = tokio::task::spawn_blocking(move || {
            crate::gateways::sign_in(&crate::db::open_readonly(&journal)?, &name, &password)
        })
        .await;
        match found {
            Ok(Ok(Some(gateway))) => Ok(Some(Arc::new(gateway))),
            Ok(Ok(None)) => Err(Refusal::BadCredentials),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot check a gateway's credentials");
                Err(Refusal::Unavailable)
            }
            Err(_) => Err(Refusal::Unavailable),
        }
    }

    /// Takes `client_id` for this connection; the connection holding it under the same identity is told to close.
    fn claim(&self, client_id: &str, identity: Option<&str>) -> Result<(u64, watch::Receiver<bool>), Refusal> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = sessions.get(client_id) {
            if held.identity.as_deref() != identity {
                return Err(Refusal::IdentifierRejected);
            }
            held.take_over.send_replace(true);
        }
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (take_over, taken_over) = watch::channel(false);
        sessions.insert(
            client_id.to_owned(),
            Claim {
                identity: identity.map(str::to_owned),
                connection,
                take_over,
            },
        );
        Ok((connection, taken_over))
    }

    /// Gives `client_id` up, unless a newer connection took it over already.
    fn release(&self, client_id: &str, connection: u64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.get(client_id).is_some_and(|c| c.connection == connection) {
            sessions.remove(client_id);
        }
    }
}

/// Whether a client opens with a TLS handshake (a record of type 22) rather than an MQTT CONNECT (0x10).
async fn opens_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}

/// The TLS side of the endpoint from the certificate chain and key files (PEM), on the ring provider the rest of
/// the binary uses.
fn tls_acceptor(files: &crate::config::TlsFiles) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "mqtt tls_cert {}: cannot read a PEM certificate chain",
                files.cert.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "mqtt tls_cert {}: no certificate in it",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("mqtt tls_key {}: cannot read a PEM private key", files.key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("mqtt tls: no usable protocol version")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("mqtt tls: the key does not match the certificate")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Counts a connection as open until it is dropped.
struct OpenConnection(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
        admission: Admission,
    ) -> anyhow::Result<EmbeddedEndpoint> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("mqtt: cannot listen on {listen}: {e}"))?;
        Self::start_on(listener, ingestor, delivery, admission)
    }

    /// Starts accepting gateways on a listener bound earlier (at boot, before recovery, so connections queue).
    pub fn start_on(
        listener: std::net::TcpListener,
        ingestor: Ingestor,
        delivery: CommandDelivery,
        admission: Admission,
    ) -> anyhow::Result<EmbeddedEndpoint> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(EndpointStats::default());
        let (stop, stopped) = watch::channel(false);
        let accept_stats = stats.clone();
        actix_web::rt::spawn(accept_loop(
            listener,
            ingestor,
            delivery,
            admission,
            accept_stats,
            stopped,
        ));
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
    admission: Admission,
    stats: Arc<EndpointStats>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let connections_stop = stop.clone();
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if admission.open.fetch_add(1, Ordering::Relaxed) >= admission.max_connections {
                        admission.open.fetch_sub(1, Ordering::Relaxed);
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, max = admission.max_connections,
                            "mqtt connection refused: max_connections are open");
                        drop(stream);
                        continue;
                    }
                    let open = OpenConnection(admission.open.clone());
                    let _ = stream.set_nodelay(true);
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let connection = Connection {
                        ingestor: ingestor.clone(),
                        delivery: delivery.clone(),
                        admission: admission.clone(),
                        stats: stats.clone(),
                        peer,
                    };
                    let admission = admission.clone();
                    actix_web::rt::spawn(async move {
                        match admission.tls.clone() {
                            Some(acceptor) if opens_with_tls(&stream).await => {
                                match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => connection.run(tls, connections_stop).await,
                                    Ok(Err(error)) => tracing::info!(%peer, %error, "mqtt tls handshake failed"),
                                    Err(_) => tracing::info!(%peer, "mqtt tls handshake took too long"),
                                }
                            }
                            _ => connection.run(stream, connections_stop).await,
                        }
                        drop(open);
                    });
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
    /// A new connection of the same gateway took the session over (MQTT-3.1.4-2).
    TakenOver,
}

/// What a connection's CONNECT settled.
struct Session<'a> {
    client_id: &'a str,
    version: Version,
    keep_alive: u16,
    /// The signed-in gateway, whose devices are the only ones it may report for.
    gateway: Option<Arc<Gateway>>,
    taken_over: watch::Receiver<bool>,
}

struct Connection {
    ingestor: Ingestor,
    delivery: CommandDelivery,
    admission: Admission,
    stats: Arc<EndpointStats>,
    peer: SocketAddr,
}

/// The outcome of one ingested QoS 1 message, in arrival order.
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Result<Ingested, AppendError>)>>>;

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(self, mut stream: S, mut stop: watch::Receiver<bool>) {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match codec::read_connect(&mut buf) {
                    Ok(Some(connect)) => return Ok(connect),
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
                match stream.read_buf(&mut buf).await {
                    Ok(0) => return Err(FrameError::Malformed("closed before CONNECT".to_owned())),
                    Ok(_) => {}
                    Err(e) => return Err(FrameError::Malformed(e.to_string())),
                }
            }
        })
        .await;
        let (version, client_id, clean_session, keep_alive, will, login) = match connect {
            Ok(Ok(Inbound::Connect {
                version,
                client_id,
                clean_session,
                keep_alive,
                will,
                login,
            })) => (version, client_id, clean_session, keep_alive, will, login),
            // `read_connect` returns nothing else; should it ever, the client is refused, not the process stopped.
            Ok(Ok(_)) => return,
            Ok(Err(FrameError::UnsupportedProtocol(level))) => {
                // MQTT-3.1.2-2: answer return code 0x01, then close. The 3.1.1 encoding is what older clients read.
                tracing::info!(peer = %self.peer, level, "mqtt connection refused: unsupported protocol level");
                self.refuse(&mut stream, Version::V311, Refusal::ProtocolVersion).await;
                return;
            }
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
        let gateway = match self.admission.sign_in(login).await {
            Ok(gateway) => gateway,
            Err(refusal) => {
                tracing::warn!(peer = %self.peer, client = %client_id, ?refusal, "mqtt connection refused: no gateway signed in");
                self.refuse(&mut stream, version, refusal).await;
                return;
            }
        };
        let identity = gateway.as_ref().map(|g| g.name.as_str());
        let (connection, taken_over) = match self.admission.claim(&client_id, identity) {
            Ok(claimed) => claimed,
            Err(refusal) => {
                tracing::warn!(peer = %self.peer, client = %client_id, "mqtt connection refused: its client id is another gateway's");
                self.refuse(&mut stream, version, refusal).await;
                return;
            }
        };
        self.connected(
            &mut stream,
            &mut buf,
            (version, &client_id, clean_session, keep_alive),
            will,
            (gateway, taken_over),
            &mut stop,
        )
        .await;
        self.admission.release(&client_id, connection);
    }

    /// Answers a refused CONNECT with its reason, then closes.
    async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: &mut S, version: Version, refusal: Refusal) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let mut out = BytesMut::new();
        codec::write(version, &Outbound::ConnRefused(refusal), &mut out);
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    }

    /// Serves an admitted client from its CONNACK to the end of the connection.
    async fn connected<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        buf: &mut BytesMut,
        (version, client_id, clean_session, keep_alive): (Version, &str, bool, u16),
        will: Option<Will>,
        (gateway, taken_over): (Option<Arc<Gateway>>, watch::Receiver<bool>),
        stop: &mut watch::Receiver<bool>,
    ) {
        let allowed = gateway.as_ref().map(|g| g.devices.clone());
        let gateway_for_will = gateway.clone();
        let actor_name = gateway.as_ref().map_or(client_id, |g| g.name.as_str()).to_owned();
        // The session state this endpoint keeps for a client is its command subscriptions (in journal.db) and
        // nothing queued (the desired state is recomputed, not queued), so a persistent session always "exists":
        // saying so keeps clients that honour session_present (rumqttc >= 0.25) re-sending their
        // unacknowledged messages after a reconnect.
        let reads_alarms = gateway.as_ref().is_none_or(|g| g.alarms);
        let outgoing = match self
            .delivery
            .open_session(client_id, clean_session, allowed, reads_alarms)
            .await
        {
            Ok(outgoing) => outgoing,
            Err(error) => {
                // Without its subscriptions the session would silently miss commands: refuse, the client retries.
                tracing::warn!(peer = %self.peer, client = %client_id, %error, "cannot open mqtt session");
                self.refuse(stream, version, Refusal::Unavailable).await;
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
                stream,
                Session {
                    client_id,
                    version,
                    keep_alive,
                    gateway,
                    taken_over,
                },
                buf,
                stop,
                outgoing,
            )
            .await;
        match &ending {
            Ending::Disconnected { .. } | Ending::ShuttingDown | Ending::TakenOver => {
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
            self.publish_will(&actor_name, will, gateway_for_will).await;
        }
    }

    /// Ingests a vanished gateway's Last Will like any message it could have sent (typically `status` =
    /// `offline`). A journal failure here is logged: there is no one left to re-send it.
    async fn publish_will(&self, client_id: &str, will: Will, gateway: Option<Arc<Gateway>>) {
        self.stats.wills.fetch_add(1, Ordering::Relaxed);
        match self
            .ingestor
            .ingest(Received {
                topic: &will.topic,
                payload: &will.payload,
                received_at: jiff::Timestamp::now(),
                actor: Actor::gateway(client_id),
                arrival: Arrival::Once,
                gateway,
            })
            .await
        {
            Ok(outcome) => tracing::info!(client = %client_id, topic = %will.topic, ?outcome, "published last will"),
            Err(error) => tracing::error!(client = %client_id, topic = %will.topic, %error, "cannot record last will"),
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        session: Session<'_>,
        buf: &mut BytesMut,
        stop: &mut watch::Receiver<bool>,
        mut outgoing: Outgoing,
    ) -> Ending {
        let Session {
            client_id,
            version,
            keep_alive,
            gateway,
            mut taken_over,
        } = session;
        let actor_name = gateway.as_ref().map_or(client_id, |g| g.name.as_str()).to_owned();
        // MQTT §3.1.2.10: the server may close a connection silent for one and a half keep-alive periods; a client
        // that asked for none still gets a limit.
        let idle_limit = if keep_alive > 0 {
            Duration::from_millis(u64::from(keep_alive) * 1500)
        } else {
            IDLE_WITHOUT_KEEP_ALIVE
        };
        let mut partial_since: Option<tokio::time::Instant> = None;
        let mut last_heard = tokio::time::Instant::now();
        let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
        let mut out = BytesMut::with_capacity(1024);
        let mut board = self.delivery.board.watch();
        let mut alarms = self.delivery.alarms.watch();
        // A persistent session's turnstiles get what they have not acknowledged (after a reconnect or a restart).
        let mut commands = Vec::new();
        outgoing.due(&self.delivery, true, &mut commands);
        outgoing.alarms_due(&self.delivery, true, &mut commands);
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
                        let (actor, session) = (Actor::gateway(&actor_name), client_id.to_owned());
                        let gateway = gateway.clone();
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
                                gateway,
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
            let idle_deadline = last_heard + idle_limit;
            // Bytes of a packet not complete yet: it must finish arriving in time (while we are reading at all).
            let reading = pending.len() < MAX_IN_FLIGHT;
            partial_since = match (buf.is_empty() || !reading, partial_since) {
                (true, _) => None,
                (false, None) => Some(tokio::time::Instant::now()),
                (false, since) => since,
            };
            let partial_deadline = partial_since.map(|since| since + PARTIAL_PACKET_TIMEOUT);
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
                changed = alarms.changed(), if outgoing.reads_alarms() => {
                    if changed.is_ok() {
                        outgoing.alarms_due(&self.delivery, false, &mut commands);
                        for packet in commands.drain(..) {
                            codec::write(version, &packet, &mut out);
                        }
                    }
                }
                _ = tokio::time::sleep_until(idle_deadline) => {
                    return Ending::Lost(format!("silent for more than {} s (keep-alive {keep_alive} s)", idle_limit.as_secs()));
                }
                _ = sleep_until_opt(partial_deadline) => {
                    return Ending::Lost(format!("a packet took more than {} s to arrive", PARTIAL_PACKET_TIMEOUT.as_secs()));
                }
                _ = taken_over.wait_for(|t| *t) => return Ending::TakenOver,
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
