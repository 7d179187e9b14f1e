//! What request handlers share: the running core's handles (registry, ingestor, followers, the journal head)
//! and the web's own (read pools, HTTP metrics, kept subject lists).

use crate::actors::Registry;
use crate::config::Config;
use crate::db::StoragePaths;
use crate::ingest::Ingestor;
use crate::journal::Position;
use crate::projection::runner::ProjectorHandle;
use crate::web::pool::ReadPool;
use std::sync::Arc;
use tokio::sync::watch;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub paths: StoragePaths,
    pub registry: Registry,
    /// Turns device messages into events or dead letters (used by MQTT ingestion).
    pub ingestor: Ingestor,
    pub projectors: Vec<ProjectorHandle>,
    /// The journal head, as the writer announces it.
    pub committed: watch::Receiver<Position>,
    /// The external broker connection, when messages come through one (`/healthz` reports it).
    pub external_mqtt: Option<Arc<crate::mqtt::external::ExternalStatus>>,
    /// The embedded endpoint's counters, when gateways connect to us (`/metrics` reports them).
    pub embedded_mqtt: Option<Arc<crate::mqtt::embedded::EndpointStats>>,
    /// The journal writer itself; handlers read its head and counters through `committed` and `writer_stats`
    /// (tests stop it to see what a dead writer looks like).
    pub writer: crate::journal::JournalWriter,
    /// The journal writer's counters (`/metrics`).
    pub writer_stats: Arc<crate::journal::WriterStats>,
    /// HTTP request durations, recorded by the `web::metrics` middleware.
    pub http_metrics: crate::web::metrics::HttpMetrics,
    /// Kept read-only connections to views.db (pages) and journal.db (sign-in checks).
    pub views_reader: ReadPool,
    pub journal_reader: ReadPool,
    /// Every turnstile's desired state, as published on its `command` topic.
    pub commands: crate::mqtt::commands::CommandBoard,
    /// People's pseudonyms and keys: seals identifiers people type, reveals pseudonyms on pages and exports.
    pub vault: crate::privacy::SubjectVault,
    /// Alarm notifications: the channels' health, their dispatchers (to wake after a re-send), the MQTT states.
    pub notifier: crate::notify::Notifier,
    /// The forwarder's progress, when `[forward]` sends the events to a NATS cluster.
    pub forward: Option<Arc<crate::forward::ForwardStatus>>,
    /// The recognitions report's subject lists, kept until their days change.
    pub subject_lists: crate::web::subjects::SubjectLists,
}
