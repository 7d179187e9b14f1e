//! The network view's durable JetStream consumer of every site's subject: takes what is there in batches,
//! commits each batch to `hq.db`, and only then acknowledges its messages, so a crash means a redelivery (which
//! the positions recognise), never a loss.

use super::store::{self, Applied};
use crate::config::HqConfig;
use crate::forward::nats;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use futures_util::{FutureExt, StreamExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages committed per transaction, at most.
const BATCH: usize = 1000;
/// Messages the cluster may have handed over unacknowledged.
const MAX_ACK_PENDING: i64 = 20_000;

/// How the consumer is doing (`/healthz`, the sites page).
#[derive(Debug, Clone, Default)]
pub struct ConsumerProgress {
    pub connected: bool,
    pub last_error: Option<String>,
    pub applied: u64,
    pub duplicates: u64,
    pub unreadable: u64,
}

#[derive(Debug, Default)]
pub struct ConsumerStatus(Mutex<ConsumerProgress>);

impl ConsumerStatus {
    pub fn progress(&self) -> ConsumerProgress {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut ConsumerProgress)) {
        if let Ok(mut progress) = self.0.lock() {
            change(&mut progress);
        }
    }
}

/// Consumes until the program ends, reconnecting after any failure.
pub async fn run(config: HqConfig, hq_db: PathBuf, status: Arc<ConsumerStatus>) {
    let conn = match tokio::task::spawn_blocking(move || store::open(&hq_db)).await {
        Ok(Ok(conn)) => Arc::new(Mutex::new(conn)),
        Ok(Err(error)) => {
            tracing::error!(error = %format!("{error:#}"), "cannot open hq.db");
            status.update(|p| p.last_error = Some(format!("cannot open hq.db: {error:#}")));
            return;
        }
        Err(error) => {
            status.update(|p| p.last_error = Some(format!("cannot open hq.db: {error}")));
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    loop {
        if let Err(error) = consume(&config, &conn, &status).await {
            let why = format!("{error:#}");
            tracing::warn!(error = %why, retry_in = ?backoff, "network consumer interrupted");
            status.update(|p| {
                p.connected = false;
                p.last_error = Some(why);
            });
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

async fn consume(
    config: &HqConfig,
    conn: &Arc<Mutex<rusqlite::Connection>>,
    status: &ConsumerStatus,
) -> anyhow::Result<()> {
    let client = nats::connect(&config.nats, "gatehouse hq").await?;
    let js = nats::jetstream(client);
    // The sites' forwarders create the stream; until the first one has, there is nothing to read.
    let stream = js
        .get_stream(&config.stream)
        .await
        .with_context(|| format!("stream {} (created by the first site that forwards)", config.stream))?;
    let consumer = stream
        .get_or_create_consumer(
            &config.durable,
            pull::Config {
                durable_name: Some(config.durable.clone()),
                filter_subject: config.subjects.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // What a killed HQ had taken but not acknowledged comes again this soon; long enough for a
                // prefetched batch and its commit on a busy machine.
                ack_wait: Duration::from_secs(30),
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot create durable consumer {}", config.durable))?;
    // Pulls as large as a commit batch, so a backlog arrives in batches worth one transaction each.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .context("cannot pull messages")?;
    status.update(|p| {
        p.connected = true;
        p.last_error = None;
    });
    loop {
        let Some(first) = messages.next().await else {
            anyhow::bail!("the message stream ended");
        };
        let mut batch = vec![first.map_err(|e| anyhow::anyhow!("cannot pull: {e}"))?];
        while batch.len() < BATCH {
            match messages.next().now_or_never() {
                Some(Some(Ok(message))) => batch.push(message),
                Some(Some(Err(e))) => anyhow::bail!("cannot pull: {e}"),
                _ => break,
            }
        }
        let arrived: Vec<store::Arrived> = batch
            .iter()
            .map(|m| store::Arrived {
                subject: m.subject.to_string(),
                document: serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let (db, subjects) = (conn.clone(), config.subjects.clone());
        let outcomes = tokio::task::spawn_blocking(move || {
            let mut conn = db.lock().map_err(|_| anyhow::anyhow!("hq.db connection poisoned"))?;
            store::apply_batch(&mut conn, &subjects, &arrived)
        })
        .await??;
        let (mut applied, mut duplicates, mut unreadable) = (0, 0, 0);
        for outcome in &outcomes {
            match outcome {
                Ok(Applied::Event | Applied::Heartbeat) => applied += 1,
                Ok(Applied::Duplicate) => duplicates += 1,
                Err(why) => {
                    unreadable += 1;
                    tracing::error!(%why, "skipping a message that is not a Gatehouse event");
                }
            }
        }
        // Committed: now the cluster may forget them.
        for message in &batch {
            message
                .ack()
                .await
                .map_err(|e| anyhow::anyhow!("cannot acknowledge: {e}"))?;
        }
        status.update(|p| {
            p.applied += applied;
            p.duplicates += duplicates;
            p.unreadable += unreadable;
        });
    }
}
