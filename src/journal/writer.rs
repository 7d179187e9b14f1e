//! The single journal writer: one thread owns the write connection. Appends that arrive together are committed
//! in one transaction (group commit); each caller learns its outcome only after the commit, and subscribers hear
//! "committed up to position P". Assigning positions on this one thread, in commit order, is what lets projectors
//! read "events after my checkpoint" without ever skipping a late-committing transaction.

use super::{Actor, Position, micros};
use crate::codec::EncodedEvent;
use crate::config::Synchronous;
use crate::domain::StreamName;
use anyhow::Context;
use jiff::Timestamp;
use rusqlite::{Connection, ErrorCode, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::{oneshot, watch};

/// At most this many requests go into one transaction, so one commit never grows without bound under load.
const MAX_BATCH: usize = 4096;

/// How long a protocol delivery of a message without `msg_id` is remembered: a PUBLISH with DUP set repeats
/// one within seconds (a reconnect), never hours later.
pub const REDELIVERY_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// How often protocol deliveries past the window are deleted: often, so each delete inside a group commit is a
/// minute's worth of rows, never the whole window's.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Events for one stream that must land together, or not at all.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamName,
    /// The stream's version these events were decided against; the append fails if the journal has moved on.
    pub expected_version: u64,
    pub events: Vec<EncodedEvent>,
    /// What caused these events: the message id, `policy:NAME:POSITION`, `dead_letter:ID`. A second append with
    /// the same causation for the same stream is a redelivery: it is dropped (inside the same transaction) and
    /// answered with [`AppendOutcome::Duplicate`].
    pub causation: Option<String>,
    /// Who or what asked for it.
    pub actor: Actor,
    /// For a message without `msg_id`: the protocol delivery it came in, so a redelivery of that very packet is
    /// dropped while an identical new message is recorded.
    pub delivery: Option<Delivery>,
}

/// One MQTT delivery of a message that has no `msg_id`: client id, packet id and a digest of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub key: String,
    /// The PUBLISH had DUP set: it may repeat a delivery recorded within [`REDELIVERY_WINDOW`].
    pub redelivery: bool,
}

/// What a committed append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events are durable; `last_position` is the position of the last one (or the head, for none).
    Appended { last_position: Position, version: u64 },
    /// The causation id was handled before; nothing was written.
    Duplicate,
}

/// Why an append did not happen. Nothing of the request was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, not {expected}: decided on stale state")]
    Conflict {
        stream: StreamName,
        expected: u64,
        actual: u64,
    },
    #[error("journal write failed: {0}")]
    Storage(String),
    #[error("journal writer has stopped")]
    Closed,
}

/// A fold of one stream to save; fire and forget (a lost snapshot only costs replay time).
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub stream: StreamName,
    pub version: u64,
    pub state_schema: u32,
    pub format: u8,
    pub state: Vec<u8>,
}

/// A device message that could not become events, to keep with its reason.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub received_at: Timestamp,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
    /// Who sent or re-drove the message.
    pub actor: Option<Actor>,
}

enum WriterMessage {
    Append(AppendRequest, Reply),
    /// Stored in the same group commit as appends, so a dead letter is as durable as an event before its
    /// message is acknowledged. The reply carries the dead letter's id.
    DeadLetter(NewDeadLetter, LetterReply),
    Snapshot(SnapshotRequest),
    /// `PRAGMA max_page_count`: caps the file's size, which is how tests make the disk "full".
    MaxPageCount(u64),
    /// Commit what is queued and end the thread, as a writer that died would (see [`JournalWriter::stop`]).
    Stop,
}

/// Counters the writer keeps for metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    commits: AtomicU64,
    events: AtomicU64,
    /// Why the latest commit failed, until one succeeds again (a full disk, a lock held too long).
    failing: std::sync::Mutex<Option<String>>,
}

impl WriterStats {
    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
    /// Why the journal cannot write now: the latest commit failed and none has succeeded since.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_failing(&self, why: Option<String>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Events appended so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// A handle to the writer thread. Cheap to clone; the thread stops when every handle is dropped.
#[derive(Clone)]
pub struct JournalWriter {
    // std mpsc: sending never blocks and happens at call time, so appends from one actor keep their order.
    requests: mpsc::Sender<WriterMessage>,
    committed: watch::Receiver<Position>,
    stats: Arc<WriterStats>,
}

/// Joins the writer thread on drop of the last handle; see [`JournalWriter::open`].
pub struct WriterThread(Option<std::thread::JoinHandle<()>>);

impl WriterThread {
    /// Waits until the writer has committed everything it was sent and stopped. Call after dropping all handles.
    pub fn join(mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

impl JournalWriter {
    /// Opens `journal.db` for writing (migrating it) and starts the writer thread.
    pub fn open(path: &Path, synchronous: Synchronous) -> anyhow::Result<(JournalWriter, WriterThread)> {
        let mut conn = crate::db::open(path, synchronous)?;
        crate::db::migrate_journal(&mut conn)?;
        let head: i64 = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
        let (committed_tx, committed) = watch::channel(head as Position);
        let (requests, inbox) = mpsc::channel();
        // The checkpointer thread does this work instead (see `crate::checkpointer`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = crate::checkpointer::spawn(path, "journal")?;
        let stats = Arc::new(WriterStats::default());
        let mut writer = Writer {
            conn,
            next_position: head as Position + 1,
            versions: HashMap::new(),
            last_prune: std::time::Instant::now(),
            committed_tx,
            stats: stats.clone(),
            _checkpointer: checkpointer,
        };
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(inbox))
            .context("cannot start the journal writer thread")?;
        Ok((
            JournalWriter {
                requests,
                committed,
                stats,
            },
            WriterThread(Some(thread)),
        ))
    }

    /// Queues an append now (so calls keep their order) and resolves once it is committed or refused.
    pub fn append(
        &self,
        request: AppendRequest,
    ) -> impl std::future::Future<Output = Result<AppendOutcome, AppendError>> + 'static {
        let (reply, outcome) = oneshot::channel();
        let sent = self.requests.send(WriterMessage::Append(request, reply));
        async move {
            sent.map_err(|_| AppendError::Closed)?;
            outcome.await.unwrap_or(Err(AppendError::Closed))
        }
    }

    /// Queues a dead letter and resolves with its id once it is committed.
    pub fn dead_letter(
        &self,
        letter: NewDeadLetter,
    ) -> impl std::future::Future<Output = Result<i64, AppendError>> + 'static {
        let (reply, outcome) = oneshot::channel();
        let sent = self.requests.send(WriterMessage::DeadLetter(letter, reply));
        async move {
            sent.map_err(|_| AppendError::Closed)?;
            outcome.await.unwrap_or(Err(AppendError::Closed))
        }
    }

    /// Queues a snapshot to be saved with the next commit.
    pub fn save_snapshot(&self, snapshot: SnapshotRequest) {
        // A stopped writer means we are shutting down; the snapshot is only a cache.
        let _ = self.requests.send(WriterMessage::Snapshot(snapshot));
    }

    /// Commits what is already queued, then ends the writer thread: the head stops being announced and every
    /// later append fails with [`AppendError::Closed`]. This is what a writer that died looks like from outside,
    /// which is how the tests prove that `/healthz` says so and gateways get no acknowledgement.
    pub fn stop(&self) {
        let _ = self.requests.send(WriterMessage::Stop);
    }

    /// Caps the journal file at `pages` pages (`PRAGMA max_page_count`); appends that would grow it further
    /// fail as on a full disk. Tests use it to prove a full disk loses nothing acknowledged.
    pub fn set_max_page_count(&self, pages: u64) {
        let _ = self.requests.send(WriterMessage::MaxPageCount(pages));
    }

    pub fn stats(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }

    /// The highest committed position, updated after every commit.
    pub fn committed(&self) -> watch::Receiver<Position> {
        self.committed.clone()
    }
}

struct Writer {
    conn: Connection,
    next_position: Position,
    /// Known stream versions, so the optimistic concurrency check costs no query. Filled lazily from the
    /// database; cleared whenever a transaction fails, since it may then be ahead of the file.
    versions: HashMap<StreamName, u64>,
    /// When protocol deliveries older than the redelivery window were last pruned.
    last_prune: std::time::Instant,
    committed_tx: watch::Sender<Position>,
    stats: Arc<WriterStats>,
    /// Dropped with the writer, which stops the checkpointer thread.
    _checkpointer: crate::checkpointer::Checkpointer,
}

type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;
type LetterReply = oneshot::Sender<Result<i64, AppendError>>;
/// Per append its outcome, per dead letter its id, in the order they were queued.
type GroupOutcome = (Vec<Result<AppendOutcome, AppendError>>, Vec<i64>);

impl Writer {
    fn run(&mut self, inbox: mpsc::Receiver<WriterMessage>) {
        let mut appends: Vec<(AppendRequest, Reply)> = Vec::new();
        let mut snapshots: Vec<SnapshotRequest> = Vec::new();
        let mut letters: Vec<(NewDeadLetter, LetterReply)> = Vec::new();
        // Block for the first message, then take whatever else is already waiting: that is the group.
        let mut stopping = false;
        while let Ok(first) = inbox.recv() {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    WriterMessage::Stop => {
                        stopping = true;
                        break;
                    }
                    WriterMessage::Append(request, reply) => appends.push((request, reply)),
                    WriterMessage::DeadLetter(letter, reply) => letters.push((letter, reply)),
                    WriterMessage::Snapshot(snapshot) => snapshots.push(snapshot),
                    WriterMessage::MaxPageCount(pages) => {
                        if let Err(error) = self.conn.pragma_update(None, "max_page_count", pages as i64) {
                            tracing::warn!(%error, "cannot set max_page_count");
                        }
                    }
                }
                if appends.len() + snapshots.len() + letters.len() < MAX_BATCH {
                    next = inbox.try_recv().ok();
                }
            }
            self.commit_group(&mut appends, &mut snapshots, &mut letters);
            if stopping {
                tracing::error!("journal writer stopped on request; nothing more is recorded");
                return;
            }
        }
        tracing::debug!("journal writer stopped: every handle was dropped");
    }

    fn commit_group(
        &mut self,
        appends: &mut Vec<(AppendRequest, Reply)>,
        snapshots: &mut Vec<SnapshotRequest>,
        letters: &mut Vec<(NewDeadLetter, LetterReply)>,
    ) {
        let first_position = self.next_position;
        let mut pending_versions: HashMap<StreamName, u64> = HashMap::new();
        let result = self.write_group(appends, snapshots, letters, &mut pending_versions);
        match result {
            Ok((outcomes, letter_ids)) => {
                self.versions.extend(pending_versions);
                let head = self.next_position - 1;
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.set_failing(None);
                // Announce the new head before answering anyone: a caller that hears "done" and then waits for
                // the projectors to pass the head must never see an older head.
                if head >= first_position {
                    self.stats
                        .events
                        .fetch_add(head + 1 - first_position, Ordering::Relaxed);
                    self.committed_tx.send_replace(head);
                }
                for ((_, reply), id) in letters.drain(..).zip(letter_ids) {
                    let _ = reply.send(Ok(id));
                }
                for ((_, reply), outcome) in appends.drain(..).zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // The transaction rolled back: nothing of the group is in the file.
                self.next_position = first_position;
                self.versions.clear();
                let message = describe_storage_error(&error);
                tracing::error!(error = %message, requests = appends.len(), "journal commit failed");
                self.stats.set_failing(Some(message.clone()));
                for (_, reply) in appends.drain(..) {
                    let _ = reply.send(Err(AppendError::Storage(message.clone())));
                }
                for (_, reply) in letters.drain(..) {
                    let _ = reply.send(Err(AppendError::Storage(message.clone())));
                }
            }
        }
        snapshots.clear();
    }

    /// Writes one group in one transaction. Per-request refusals (conflict, duplicate) are decided before the
    /// request writes anything, so they need no savepoint; any SQLite error aborts the whole group.
    fn write_group(
        &mut self,
        appends: &[(AppendRequest, Reply)],
        snapshots: &[SnapshotRequest],
        letters: &[(NewDeadLetter, LetterReply)],
        pending_versions: &mut HashMap<StreamName, u64>,
    ) -> rusqlite::Result<GroupOutcome> {
        let recorded_at = micros(Timestamp::now());
        let window_start = recorded_at - REDELIVERY_WINDOW.as_micros() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(appends.len());
        let mut letter_ids = Vec::with_capacity(letters.len());
        {
            let mut insert_event = tx.prepare_cached(
                "INSERT INTO events (position, stream_id, version, event_type, schema, format, occurred_at,
                                     recorded_at, causation, payload, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut insert_processed = tx.prepare_cached(
                "INSERT OR IGNORE INTO processed_messages (stream_id, msg_id, position) VALUES (?1, ?2, ?3)",
            )?;
            let mut seen_delivery = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM protocol_deliveries WHERE delivery = ?1 AND recorded_at >= ?2)",
            )?;
            let mut insert_delivery = tx.prepare_cached(
                "INSERT INTO protocol_deliveries (delivery, stream_id, recorded_at, position) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut stream_version =
                tx.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1")?;
            for (request, _) in appends {
                let current = match pending_versions
                    .get(&request.stream)
                    .or(self.versions.get(&request.stream))
                {
                    Some(v) => *v,
                    None => {
                        let v: i64 = stream_version.query_row([request.stream.as_str()], |r| r.get(0))?;
                        self.versions.insert(request.stream.clone(), v as u64);
                        v as u64
                    }
                };
                if current != request.expected_version {
                    outcomes.push(Err(AppendError::Conflict {
                        stream: request.stream.clone(),
                        expected: request.expected_version,
                        actual: current,
                    }));
                    continue;
                }
                let head = self.next_position as i64 - 1 + request.events.len() as i64;
                if let Some(msg_id) = &request.causation
                    && insert_processed.execute(params![request.stream.as_str(), msg_id, head])? == 0
                {
                    outcomes.push(Ok(AppendOutcome::Duplicate));
                    continue;
                }
                if let Some(delivery) = &request.delivery {
                    if delivery.redelivery
                        && seen_delivery.query_row(params![delivery.key, window_start], |r| r.get(0))?
                    {
                        outcomes.push(Ok(AppendOutcome::Duplicate));
                        continue;
                    }
                    insert_delivery.execute(params![delivery.key, request.stream.as_str(), recorded_at, head])?;
                }
                let mut version = current;
                for encoded in &request.events {
                    version += 1;
                    insert_event.execute(params![
                        self.next_position as i64,
                        request.stream.as_str(),
                        version as i64,
                        encoded.event_type,
                        encoded.schema,
                        encoded.format,
                        micros(encoded.occurred_at),
                        recorded_at,
                        request.causation.as_deref(),
                        encoded.payload,
                        request.actor.as_str(),
                    ])?;
                    self.next_position += 1;
                }
                pending_versions.insert(request.stream.clone(), version);
                outcomes.push(Ok(AppendOutcome::Appended {
                    last_position: self.next_position - 1,
                    version,
                }));
            }
            let mut save_snapshot = tx.prepare_cached(
                "INSERT OR REPLACE INTO snapshots (stream_id, version, state_schema, format, state, taken_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut insert_letter = tx.prepare_cached(
                "INSERT INTO dead_letters (received_at, topic, payload, reason, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (letter, _) in letters {
                insert_letter.execute(params![
                    micros(letter.received_at),
                    letter.topic,
                    letter.payload,
                    letter.reason,
                    letter.actor.as_ref().map(Actor::as_str),
                ])?;
                letter_ids.push(tx.last_insert_rowid());
            }
            for s in snapshots {
                save_snapshot.execute(params![
                    s.stream.as_str(),
                    s.version as i64,
                    s.state_schema,
                    s.format,
                    s.state,
                    recorded_at
                ])?;
            }
        }
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            // Only a filter, not facts: deliveries past the window can no longer be repeated with DUP.
            tx.execute("DELETE FROM protocol_deliveries WHERE recorded_at < ?1", [window_start])?;
            self.last_prune = std::time::Instant::now();
        }
        tx.commit()?;
        Ok((outcomes, letter_ids))
    }
}

/// Turns SQLite's error into a sentence an operator can act on.
fn describe_storage_error(error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            "the disk is full: free space, then the device messages will be redelivered".into()
        }
        Some(ErrorCode::ReadOnly) => "journal.db is read-only: check the file's permissions".into(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "journal.db is locked by another program: is a second `gatehouse serve` running?".into()
        }
        _ => error.to_string(),
    }
}
