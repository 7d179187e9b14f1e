//! A session's ingestion: messages are ingested concurrently (each device's in order, since its actor takes
//! them in arrival order) and acknowledged strictly in the order they arrived, each once committed.

use crate::ingest::{Arrival, Ingested, Ingestor, Received};
use crate::journal::{Actor, AppendError};
use crate::mqtt::commands::CommandBoard;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rumqttc::{Publish, QoS};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Messages being ingested at once; further ones wait in the hand-over queue. How many the broker sends before
/// our acknowledgements is the broker's in-flight window (Mosquitto: `max_inflight_messages`, default 20), which
/// is what keeps a backlog after an outage in the broker rather than in our memory. Blocking the event-loop task
/// instead (a bounded hand-over) stalled ingestion under load in the benchmark, so the hand-over stays unbounded.
/// Each group commit takes whatever is being ingested: 512 at once gave groups of ~140 events and 0.34-0.37 of
/// Mosquitto's relay rate in the ingest bench, 4,096 groups of ~300 and 0.42-0.53 (a few hundred KiB held).
const INGESTING: usize = 4096;

/// What a session's ingestion needs.
pub(super) struct Ingesting {
    pub(super) ingestor: Ingestor,
    pub(super) prefix: String,
    /// The session's label, which keys protocol redeliveries (packet ids are per session).
    pub(super) label: String,
    /// Who the messages' events are recorded as coming from (`broker:HOST`), shared by all of them.
    pub(super) actor: Actor,
    /// Discovery's view of the configured devices (`kind/id`): their messages are acknowledged unread.
    pub(super) known: Option<Arc<HashSet<String>>>,
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
pub(super) async fn ingest_in_order(
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
                let actor = ingesting.actor.clone();
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
