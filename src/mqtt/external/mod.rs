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
//!
//! `connection` runs one session's connections (and deletes a retired one); `ordered` ingests a session's
//! messages concurrently and acknowledges them in arrival order.

mod connection;
mod ordered;

use super::commands::CommandBoard;
use super::sessions::{Role, SessionPlan};
use crate::config::{Broker, MqttConfig};
use crate::domain::{DeviceId, DeviceKind};
use crate::ingest::Ingestor;
use anyhow::Context;
use rumqttc::{MqttOptions, Transport};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// QoS 1 messages the broker may have outstanding with us at once.
const IN_FLIGHT: u16 = 1000;

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
            let setup = connection::Session {
                // The first session publishes the turnstiles' commands.
                board: (n == 0).then(|| board.clone()),
                known: (spec.role == Role::Discovery).then(|| known.clone()),
                spec,
                prefix: config.topic_prefix.clone(),
                ingestor: ingestor.clone(),
                status: status.clone(),
            };
            actix_web::rt::spawn(connection::run(options.clone(), setup, stopped.clone()));
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
