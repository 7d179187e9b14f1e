//! The forwarder's loop: resume after what the stream already holds, publish events in journal order with a
//! bounded window of unacknowledged publishes, move on only as the stream confirms them in order, and after any
//! failure start again from the first unconfirmed event (the stream's de-duplication by `Nats-Msg-Id` drops what
//! had landed). A heartbeat goes out every 30 s, sent only when every event before it is confirmed, so the
//! subject's last message always says how far the stream has the journal.
//!
//! After a failure it reads back what landed after the last confirmed event's stream sequence and does not
//! publish that unbroken run again (past the de-duplication window it would be stored twice).
//!
//! Limit: a connection that drops mid-window can lose publishes already written to it while later ones (queued in
//! the client) land after the reconnect; the re-send from the first unconfirmed event fills the hole, so the
//! stream holds everything but out of order within one window (and the events after the hole twice once the
//! de-duplication window has passed). `gatehouse hq` applies each (site, position) once, in order, either way.

use super::ForwardStatus;
use super::cloudevent::{self, Devices, Mentions, SiteIdentity};
use super::nats::{self, StreamSettings};
use crate::config::ForwardConfig;
use crate::journal::{JournalReader, Position, StoredEvent};
use crate::privacy::SubjectVault;
use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishAckFuture};
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Publishes the stream has not acknowledged yet, at most. One round trip per event would cap a site at about
/// 50 events/s over a WAN; a window keeps the pipe full while acknowledgements still come back in order.
const WINDOW: usize = 256;
/// Journal rows read at once ahead of the window.
const READ_AHEAD: usize = 1024;
/// The confirmed position is saved at most this often (the stream's last message is the real resume point).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The first pause after a failure.
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Retries back off up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

type AckFuture =
    Pin<Box<dyn Future<Output = Result<jetstream::publish::PublishAck, jetstream::context::PublishError>> + Send>>;

/// Why a session ended.
enum Failure {
    /// Tried again after a pause (the cluster away, a leader election, a timeout).
    Retry(anyhow::Error),
    /// Forwarding cannot go on without an operator.
    Stop(String),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Retry(error)
    }
}

/// Everything the forwarder needs; [`Forwarder::spawn`] runs it until the journal writer goes away.
pub struct Forwarder {
    pub config: ForwardConfig,
    pub site: SiteIdentity,
    pub journal_path: PathBuf,
    pub vault: SubjectVault,
    pub committed: watch::Receiver<Position>,
    pub status: Arc<ForwardStatus>,
}

impl Forwarder {
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let (stream, subject) = (self.config.stream.clone(), self.config.subject.clone());
        self.status.update(|p| {
            p.stream = stream;
            p.subject = subject;
        });
        let reader = match open_reader(self.journal_path.clone()).await {
            Ok(reader) => reader,
            Err(error) => {
                self.status
                    .update(|p| p.stopped = Some(format!("cannot read the journal: {error:#}")));
                tracing::error!(error = %format!("{error:#}"), "forwarder cannot read the journal");
                return;
            }
        };
        let mut client: Option<async_nats::Client> = None;
        // What this process knows the stream confirmed; `None` until the first session asked the stream.
        let mut confirmed: Option<Position> = None;
        // The stream sequence the last confirmed event got: after a failure, what landed after it is read back.
        let mut confirmed_sequence: Option<u64> = None;
        // Device contexts and alarm subjects as of the next event to publish; reloaded after a failure when events
        // that changed them had been published but not confirmed (they are published again).
        let mut context: Option<(Devices, Mentions)> = None;
        let mut stale = false;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let before = confirmed;
            match self
                .session(
                    &reader,
                    &mut client,
                    (&mut confirmed, &mut confirmed_sequence),
                    &mut context,
                    &mut stale,
                )
                .await
            {
                Ok(()) => return,
                Err(Failure::Stop(why)) => {
                    tracing::error!(%why, "forwarding stopped");
                    self.status.update(|p| {
                        p.connected = false;
                        p.stopped = Some(why);
                    });
                    return;
                }
                Err(Failure::Retry(error)) => {
                    let why = format!("{error:#}");
                    tracing::warn!(error = %why, retry_in = ?backoff, "forwarding interrupted; retrying from the first unconfirmed event");
                    self.status.update(|p| {
                        p.connected = false;
                        p.last_error = Some(why);
                    });
                    if stale {
                        context = None;
                        stale = false;
                    }
                    // A session that got somewhere earns a quick retry; repeated failures back off.
                    if confirmed > before {
                        backoff = INITIAL_BACKOFF;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One connection's worth of forwarding; returns `Ok` only when the program shuts down.
    async fn session(
        &mut self,
        reader: &Arc<Mutex<JournalReader>>,
        client: &mut Option<async_nats::Client>,
        (confirmed, confirmed_sequence): (&mut Option<Position>, &mut Option<u64>),
        context: &mut Option<(Devices, Mentions)>,
        stale: &mut bool,
    ) -> Result<(), Failure> {
        let connection = match client {
            Some(connection) => connection.clone(),
            None => {
                let connection = nats::connect(&self.config.nats, &format!("gatehouse {}", self.site.id)).await?;
                *client = Some(connection.clone());
                connection
            }
        };
        let js = nats::jetstream(connection);
        let stream = nats::ensure_stream(
            &js,
            &StreamSettings {
                name: &self.config.stream,
                publishes_to: &self.config.subject,
                subjects: stream_subjects(&self.config.subject),
                replicas: self.config.replicas,
                keep_for: self.config.keep_for,
            },
        )
        .await?;
        let (site, vault) = (self.site.clone(), self.vault.clone());
        let start = match *confirmed {
            // After a failure: events published but never confirmed may have landed all the same; those that
            // follow the last confirmed one without a gap are not published again (past the de-duplication
            // window they would be stored twice).
            Some(position) => match *confirmed_sequence {
                Some(sequence) => {
                    let landed = landed_after(&stream, &self.config.subject, sequence).await?;
                    let start = contiguous_after(position, &landed);
                    if start > position {
                        tracing::info!(
                            from = position + 1,
                            to = start,
                            "events landed unconfirmed; not publishing them again"
                        );
                    }
                    start
                }
                None => position,
            },
            None => {
                let last = last_forwarded(&stream, &self.config.subject, &self.site.id).await?;
                let (checkpoint, head) = blocking(reader, {
                    let subject = self.config.subject.clone();
                    move |r| Ok((read_checkpoint(r, &subject)?, r.head()?))
                })
                .await?;
                let in_stream = last.as_ref().map(|(position, _)| *position);
                let restored = |why: String| {
                    Failure::Stop(format!(
                        "stream {} already holds {}'s events up to position {}, {why}: was it restored from an \
                         older backup? Forwarding stopped so that no position is used twice; move the stream's \
                         messages for {} aside (or give this site a new id) and restart",
                        self.config.stream,
                        self.site.id,
                        in_stream.unwrap_or_default(),
                        self.config.subject
                    ))
                };
                if let Some(in_stream) = in_stream
                    && in_stream > head
                {
                    return Err(restored(format!("but this journal ends at {head}")));
                }
                // The journal may also have grown past the stream's end since it was restored: the event the
                // stream holds at that position must be this journal's.
                if let Some((position, Some(document))) = last {
                    let ours = blocking(reader, move |r| r.event_at(position)).await?;
                    let same = match &ours {
                        Some(Ok(stored)) => {
                            document["subject"] == stored.stream_id.id()
                                && document["time"] == stored.occurred_at.to_string().as_str()
                        }
                        Some(Err(unreadable)) => {
                            document["type"] == cloudevent::UNREADABLE
                                || document["subject"] == unreadable.stream_id.as_str()
                        }
                        None => false,
                    };
                    if !same {
                        return Err(restored(format!(
                            "and its event there is not this journal's event at {position}"
                        )));
                    }
                }
                let start = in_stream.unwrap_or(0).max(checkpoint);
                tracing::info!(stream = %self.config.stream, subject = %self.config.subject, in_stream, checkpoint, start, "forwarding resumes");
                start
            }
        };
        if context.is_none() {
            *context = Some(blocking(reader, move |r| contexts_at(r, start, &site, &vault)).await?);
        }
        let (devices, mentions) = context
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("device contexts not loaded"))?;
        *confirmed = Some(start);
        self.status.update(|p| {
            p.connected = true;
            p.last_error = None;
            p.forwarded_up_to = start;
        });

        let mut window: VecDeque<(Position, jiff::Timestamp, AckFuture)> = VecDeque::new();
        // Rows read from the journal but not published yet: read in large batches, published as the window
        // has room (one blocking read per acknowledgement would cost more than the publish).
        let mut ahead: VecDeque<Result<StoredEvent, crate::journal::UnreadableEvent>> = VecDeque::new();
        let mut read_up_to = start;
        let mut next = start;
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat_due = false;
        let mut last_checkpoint = std::time::Instant::now();
        loop {
            let head = *self.committed.borrow_and_update();
            let oldest = window.front().map(|(_, at, _)| *at);
            self.status.update(|p| {
                p.journal_head = head;
                if oldest.is_some() || p.forwarded_up_to >= head {
                    p.waiting_since = oldest;
                }
            });
            // Fill the window (a due heartbeat lets it drain first).
            while !heartbeat_due && window.len() < WINDOW && next < head {
                if ahead.is_empty() {
                    let from = read_up_to;
                    let rows = blocking(reader, move |r| r.events_after_lenient(from, READ_AHEAD)).await?;
                    match rows.last() {
                        Some(Ok(last)) => read_up_to = last.position,
                        Some(Err(last)) => read_up_to = last.position,
                        None => break,
                    }
                    ahead.extend(rows);
                }
                let Some(row) = ahead.pop_front() else { break };
                {
                    let (position, recorded_at, document) = match row {
                        Ok(stored) => {
                            if let Some((device, event)) = stored.device() {
                                devices.see(device, event);
                            }
                            *stale |= changes_context(&stored);
                            let document = cloudevent::document(&self.site, &stored, devices, mentions, &self.vault);
                            (stored.position, stored.recorded_at, document)
                        }
                        Err(unreadable) => {
                            tracing::error!(position = unreadable.position, error = %unreadable.error,
                                "forwarding an unreadable journal row as such");
                            let now = jiff::Timestamp::now();
                            (
                                unreadable.position,
                                now,
                                cloudevent::unreadable(&self.site, &unreadable, now),
                            )
                        }
                    };
                    let id = cloudevent::event_id(&self.site, position);
                    let ack = publish(&js, &self.config.subject, &id, &document).await?;
                    window.push_back((position, recorded_at, ack));
                    next = position;
                }
            }
            if window.is_empty() {
                if heartbeat_due {
                    let now = jiff::Timestamp::now();
                    let document = cloudevent::heartbeat(&self.site, head, next, now);
                    let id = cloudevent::heartbeat_id(&self.site, now);
                    publish(&js, &self.config.subject, &id, &document)
                        .await?
                        .await
                        .map_err(|e| anyhow::anyhow!("heartbeat not confirmed: {e}"))?;
                    heartbeat_due = false;
                    continue;
                }
                tokio::select! {
                    changed = self.committed.changed() => if changed.is_err() { return Ok(()) },
                    _ = heartbeat.tick() => heartbeat_due = true,
                }
                continue;
            }
            let Some((_, _, front)) = window.front_mut() else {
                continue;
            };
            tokio::select! {
                ack = front => {
                    let Some((position, ..)) = window.pop_front() else { continue };
                    let ack = match ack {
                        Ok(ack) => ack,
                        Err(error) => {
                            return Err(Failure::Retry(anyhow::anyhow!("event {position} not confirmed: {}", describe(&error))));
                        }
                    };
                    *confirmed = Some(position);
                    *confirmed_sequence = Some(ack.sequence);
                    self.status.update(|p| p.forwarded_up_to = position);
                    if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                        let subject = self.config.subject.clone();
                        // Only a lower bound for the resume point (the stream's last message is the real one):
                        // a busy journal that refuses it now is no reason to tear the session down.
                        if let Err(error) = blocking(reader, move |r| save_checkpoint(r, &subject, position)).await {
                            tracing::warn!(error = %format!("{error:#}"), "cannot save the forwarder's checkpoint");
                        }
                        last_checkpoint = std::time::Instant::now();
                    }
                }
                _ = heartbeat.tick() => heartbeat_due = true,
                changed = self.committed.changed(), if next >= head && !heartbeat_due => {
                    if changed.is_err() { return Ok(()) }
                }
            }
        }
    }
}

/// The subjects a forwarder creates the stream with: every site's under the default scheme, else its own.
fn stream_subjects(subject: &str) -> Vec<String> {
    let parts: Vec<&str> = subject.split('.').collect();
    if parts.len() == 3 && parts[0] == "gatehouse" && parts[2] == "events" {
        vec!["gatehouse.*.events".to_owned()]
    } else {
        vec![subject.to_owned()]
    }
}

async fn publish(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    document: &serde_json::Value,
) -> anyhow::Result<AckFuture> {
    let payload = serde_json::to_vec(document).context("cannot serialise a document")?;
    let ack: PublishAckFuture = js
        .send_publish(
            subject.to_owned(),
            jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(id),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot publish {id}: {}", describe(&e)))?;
    Ok(Box::pin(ack.into_future()))
}

/// A publish failure as an operator reads it.
fn describe(error: &jetstream::context::PublishError) -> String {
    use jetstream::context::PublishErrorKind;
    match error.kind() {
        PublishErrorKind::TimedOut => "the stream did not answer in time".to_owned(),
        PublishErrorKind::StreamNotFound => "no responders: the stream has no leader right now".to_owned(),
        PublishErrorKind::BrokenPipe => "the connection to NATS dropped".to_owned(),
        _ => error.to_string(),
    }
}

/// How far `subject`'s events are in the stream: the position of its last event (with that event's document, to
/// compare with the journal), or what its last heartbeat says (a heartbeat goes out only when every event before
/// it is confirmed). `None` when it holds none.
async fn last_forwarded(
    stream: &jetstream::stream::Stream,
    subject: &str,
    site: &str,
) -> Result<Option<(Position, Option<serde_json::Value>)>, Failure> {
    use jetstream::stream::LastRawMessageErrorKind;
    let message = match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => message,
        Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => return Ok(None),
        Err(error) => return Err(anyhow::anyhow!("cannot read the last message of {subject}: {error}").into()),
    };
    let document: serde_json::Value = serde_json::from_slice(&message.payload).map_err(|e| {
        Failure::Stop(format!(
            "the last message of {subject} (stream sequence {}) is not a Gatehouse document ({e}): is another \
             program publishing there?",
            message.sequence
        ))
    })?;
    if document["gatehousesite"] != site {
        return Err(Failure::Stop(format!(
            "the last message of {subject} comes from site {}, not {site}: give each site a subject of its own \
             ([forward] subject with {{site}})",
            document["gatehousesite"]
        )));
    }
    if document["type"] == cloudevent::HEARTBEAT {
        return match document["data"]["forwarded_up_to"].as_u64() {
            Some(position) => Ok(Some((position, None))),
            None => Err(Failure::Stop(format!(
                "the last heartbeat on {subject} has no forwarded_up_to"
            ))),
        };
    }
    match document["gatehouseposition"].as_u64() {
        Some(position) => Ok(Some((position, Some(document)))),
        None => Err(Failure::Stop(format!(
            "the last message of {subject} (stream sequence {}) has no position",
            message.sequence
        ))),
    }
}

/// The positions of `subject`'s events stored after stream sequence `after`, in stream order (read with an
/// ordered consumer of its own; at most a few windows' worth are ever there).
async fn landed_after(stream: &jetstream::stream::Stream, subject: &str, after: u64) -> anyhow::Result<Vec<Position>> {
    use futures_util::StreamExt;
    let mut consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot read back what landed: {e}"))?;
    let pending = consumer
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read back what landed: {e}"))?
        .num_pending;
    let mut positions = Vec::new();
    if pending == 0 {
        return Ok(positions);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read back what landed: {e}"))?;
    while let Ok(Some(message)) = tokio::time::timeout(REQUEST_TIMEOUT_READ_BACK, messages.next()).await {
        let message = message.map_err(|e| anyhow::anyhow!("cannot read back what landed: {e}"))?;
        let document: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
        if document["type"] != cloudevent::HEARTBEAT
            && let Some(position) = document["gatehouseposition"].as_u64()
        {
            positions.push(position);
        }
        let left = message.info().map(|i| i.pending).unwrap_or(0);
        if left == 0 || positions.len() >= READ_BACK_LIMIT {
            break;
        }
    }
    Ok(positions)
}

/// How long reading back waits for the next message before taking what it has.
const REQUEST_TIMEOUT_READ_BACK: Duration = Duration::from_secs(5);
/// Reading back stops after this many (a window is 256): beyond, the de-duplication takes over.
const READ_BACK_LIMIT: usize = 100_000;

/// The last position of the unbroken run `confirmed + 1, confirmed + 2, …` among `landed` (any order).
fn contiguous_after(confirmed: Position, landed: &[Position]) -> Position {
    let set: std::collections::HashSet<Position> = landed.iter().copied().collect();
    let mut last = confirmed;
    while set.contains(&(last + 1)) {
        last += 1;
    }
    last
}

/// Whether publishing this event changed what later events are forwarded with (a device's name or zone, the
/// subjects an alarm names).
fn changes_context(stored: &StoredEvent) -> bool {
    matches!(
        stored.event_type,
        "Commissioned" | "DetailsChanged" | "AlarmRaised" | "AlarmReactivated"
    )
}

async fn open_reader(path: PathBuf) -> anyhow::Result<Arc<Mutex<JournalReader>>> {
    // Writable: it also keeps the checkpoint (reads never block the journal writer under WAL).
    let reader = tokio::task::spawn_blocking(move || {
        crate::db::open(&path, crate::config::Synchronous::Normal).map(JournalReader::from_connection)
    })
    .await??;
    Ok(Arc::new(Mutex::new(reader)))
}

/// Runs `work` on the blocking pool with the forwarder's journal connection.
async fn blocking<T: Send + 'static>(
    reader: &Arc<Mutex<JournalReader>>,
    work: impl FnOnce(&JournalReader) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || {
        let reader = reader
            .lock()
            .map_err(|_| anyhow::anyhow!("the forwarder's journal connection is poisoned"))?;
        work(&reader)
    })
    .await?
}

fn read_checkpoint(reader: &JournalReader, subject: &str) -> anyhow::Result<Position> {
    use rusqlite::OptionalExtension;
    let position: Option<i64> = reader
        .connection()
        .query_row(
            "SELECT position FROM forward_checkpoints WHERE subject = ?1",
            [subject],
            |r| r.get(0),
        )
        .optional()?;
    Ok(position.map_or(0, |p| p.max(0) as Position))
}

fn save_checkpoint(reader: &JournalReader, subject: &str, position: Position) -> anyhow::Result<()> {
    reader.connection().execute(
        "INSERT INTO forward_checkpoints (subject, position, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (subject) DO UPDATE SET position = MAX(position, excluded.position), updated_at = excluded.updated_at",
        rusqlite::params![subject, position as i64, jiff::Timestamp::now().as_microsecond()],
    )?;
    Ok(())
}

/// Every device's kind, name and zone, and the subjects alarms named, as of `position`: what the events after it
/// are forwarded with.
fn contexts_at(
    reader: &JournalReader,
    position: Position,
    site: &SiteIdentity,
    vault: &SubjectVault,
) -> anyhow::Result<(Devices, Mentions)> {
    let positions: Vec<i64> = {
        // Archival replaces a stream's oldest events by its carried-forward state: that says it too.
        let mut stmt = reader.connection().prepare(
            "SELECT position FROM events \
             WHERE event_type IN ('Commissioned', 'DetailsChanged', 'AlarmRaised', 'StateCarriedForward') \
             AND position <= ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([position as i64], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let (mut devices, mut mentions) = (Devices::default(), Mentions::default());
    for p in positions {
        if let Some(Ok(stored)) = reader.event_at(p as Position)? {
            if let crate::codec::AnyEvent::Carried(carried) = &stored.event {
                learn_from_carried(&stored, carried, &mut devices, &mut mentions, vault);
            } else if let Some((device, event)) = stored.device() {
                devices.see(device, event);
            } else {
                // Building the document teaches `mentions` what the alarm named.
                cloudevent::document(site, &stored, &devices, &mut mentions, vault);
            }
        }
    }
    Ok((devices, mentions))
}

/// A device's context, or the subject an alarm names, from a state archival carried forward. A state this program
/// cannot read (another state schema) teaches nothing; the documents then go without that context.
fn learn_from_carried(
    stored: &crate::journal::StoredEvent,
    carried: &crate::codec::CarriedForward,
    devices: &mut Devices,
    mentions: &mut Mentions,
    vault: &SubjectVault,
) {
    use crate::domain::{Alarm, Camera, DeviceKind, Turnstile};
    let device = |kind: DeviceKind, details: &crate::domain::DeviceDetails| cloudevent::DeviceContext {
        kind,
        name: details.name.clone(),
        zone: details.zone.clone(),
    };
    let id = stored.stream_id.id();
    match carried.of.as_str() {
        "turnstile" => {
            if let Ok(state) = carried.state_of::<Turnstile>() {
                devices.insert(id, device(DeviceKind::Turnstile, &state.common.details));
            }
        }
        "camera" => {
            if let Ok(state) = carried.state_of::<Camera>() {
                devices.insert(id, device(DeviceKind::Camera, &state.common.details));
            }
        }
        "alarm" => {
            if let Ok(state) = carried.state_of::<Alarm>()
                && let Some(raised) = state.alarm
                && let crate::domain::alarm::AlarmSource::Subject(subject) = &raised.source
            {
                mentions.learn_subject(stored.stream_id.as_str(), subject, vault);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::contiguous_after;

    #[test]
    fn only_an_unbroken_run_after_the_last_confirmed_event_counts_as_landed() {
        assert_eq!(contiguous_after(10, &[]), 10);
        assert_eq!(contiguous_after(10, &[11, 12, 13]), 13);
        // 11 was lost in a dropped connection while 12 and 13 landed: publish again from 11.
        assert_eq!(contiguous_after(10, &[12, 13]), 10);
        assert_eq!(contiguous_after(10, &[13, 11, 12, 15]), 13);
        // Older positions (already confirmed) change nothing.
        assert_eq!(contiguous_after(10, &[9, 10]), 10);
    }
}
