//! The actor that hosts one device aggregate: it decides commands against its in-memory state, evolves at once,
//! and pipelines the resulting appends to the journal writer, so a busy device is not limited to one commit
//! round-trip per message. Its state is recovered from the latest snapshot plus later events.

use crate::codec;
use crate::domain::{Decider, DeviceCommand, DeviceId, Rejection};
use crate::journal::{
    AppendError, AppendOutcome, AppendRequest, JournalReader, JournalWriter, Position, SnapshotRequest,
};
use actix::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::path::PathBuf;

/// How many recent message ids each actor remembers to drop redeliveries without asking the journal. Older
/// redeliveries are still caught by the writer (the journal's unique key), at the cost of a recovery.
pub const RECENT_MESSAGE_IDS: usize = 1024;

/// How many commands an actor accepts into its mailbox before callers wait: the backpressure on ingest.
const MAILBOX_CAPACITY: usize = 4096;

/// Ask a device to carry out a command.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CommandOutcome, CommandError>")]
pub struct Execute {
    pub command: DeviceCommand,
    /// The message id the command came from (MQTT `msg_id`, or a digest); used to drop redeliveries.
    pub causation: Option<String>,
}

/// What a command did, once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// `events` new events are in the journal, the last at `position` (0 events: nothing changed).
    Recorded { events: usize, position: Option<Position> },
    /// The message id was handled before; nothing new was recorded.
    Duplicate,
}

/// Why a command had no effect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    #[error("{0}")]
    Journal(#[from] AppendError),
    #[error("device actor is not running")]
    Unavailable,
}

/// A device's folded state and what recovery needs to continue from it.
pub struct Recovered<S> {
    pub state: S,
    pub version: u64,
    pub recent_msg_ids: Vec<String>,
}

/// Loads a device's state: the latest usable snapshot, then every later event. Blocking: call it off the
/// async executor. A snapshot of another state schema, one that does not decode, or one ahead of the stream is
/// logged and ignored, and the stream replayed from the start.
pub fn recover<D: Decider>(journal: &JournalReader, id: &DeviceId) -> anyhow::Result<Recovered<D::State>> {
    let stream_version = journal.stream_version(id)?;
    let mut state = D::State::default();
    let mut version = 0;
    if let Some(snapshot) = journal.snapshot(id)? {
        if snapshot.state_schema != D::STATE_SCHEMA {
            tracing::info!(device = %id, stored = snapshot.state_schema, current = D::STATE_SCHEMA,
                "snapshot has another state schema; replaying the stream");
        } else if snapshot.version > stream_version {
            tracing::warn!(device = %id, snapshot = snapshot.version, stream = stream_version,
                "snapshot is ahead of the journal; replaying the stream");
        } else {
            match codec::decode_state::<D::State>(snapshot.format, &snapshot.state) {
                Ok(decoded) => {
                    state = decoded;
                    version = snapshot.version;
                }
                Err(error) => {
                    tracing::warn!(device = %id, %error, "snapshot does not decode; replaying the stream")
                }
            }
        }
    }
    for stored in journal.stream_events(id, version)? {
        state = D::evolve(state, &stored.event);
        version = stored.version;
    }
    let recent_msg_ids = journal.recent_msg_ids(id, RECENT_MESSAGE_IDS)?;
    Ok(Recovered {
        state,
        version,
        recent_msg_ids,
    })
}

/// Message ids seen lately, oldest first out.
#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn from_newest_first(ids: Vec<String>) -> Self {
        let mut recent = Self::default();
        for id in ids.into_iter().rev() {
            recent.insert(id);
        }
        recent
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > RECENT_MESSAGE_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// How device actors behave, from `config.toml`.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    /// Save a snapshot after this many events (`[storage] snapshot_every`).
    pub snapshot_every: u32,
    /// A device heard nothing from for this long is marked offline (`[devices] offline_after`).
    pub offline_after: std::time::Duration,
}

/// One device's actor.
pub struct DeviceActor<D: Decider> {
    id: DeviceId,
    /// State including events sent to the writer but not yet committed (optimistic, for pipelining).
    state: D::State,
    version: u64,
    recent: RecentIds,
    writer: JournalWriter,
    journal_path: PathBuf,
    snapshot_every: u64,
    last_snapshot_version: u64,
    offline_after: std::time::Duration,
    /// When this process last heard from the device (receive time, not device time: gateway clocks drift).
    /// Starts at the actor's start, so time the server itself was down never counts as the device's silence.
    last_heard: std::time::Instant,
    /// Bumped by every recovery; a failure reported by an append sent before the last recovery needs no new one.
    generation: u64,
    _decider: PhantomData<D>,
}

impl<D: Decider + Unpin + 'static> DeviceActor<D> {
    pub fn new(
        id: DeviceId,
        recovered: Recovered<D::State>,
        writer: JournalWriter,
        journal_path: PathBuf,
        settings: DeviceSettings,
    ) -> Self {
        Self {
            id,
            state: recovered.state,
            version: recovered.version,
            last_snapshot_version: recovered.version,
            recent: RecentIds::from_newest_first(recovered.recent_msg_ids),
            writer,
            journal_path,
            snapshot_every: u64::from(settings.snapshot_every.max(1)),
            offline_after: settings.offline_after,
            last_heard: std::time::Instant::now(),
            generation: 0,
            _decider: PhantomData,
        }
    }

    /// Throws away the optimistic state and reloads it from the journal. `ctx.wait` holds back every further
    /// message until this is done, so nothing is decided on the state that just proved wrong.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let id = self.id.clone();
        let path = self.journal_path.clone();
        let load = async move {
            tokio::task::spawn_blocking(move || recover::<D>(&JournalReader::open(&path)?, &id))
                .await
                .map_err(anyhow::Error::from)?
        };
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(recovered) => {
                tracing::info!(device = %act.id, version = recovered.version, "device state recovered from the journal");
                act.state = recovered.state;
                act.version = recovered.version;
                act.last_snapshot_version = act.last_snapshot_version.min(recovered.version);
                act.recent = RecentIds::from_newest_first(recovered.recent_msg_ids);
            }
            Err(error) => {
                // Without its state the actor cannot decide anything correctly: stop, and let callers see
                // `Unavailable` rather than decisions on a wrong state.
                tracing::error!(device = %act.id, %error, "cannot recover device state; stopping its actor");
                ctx.stop();
            }
        }));
    }

    fn snapshot_due(&self) -> Option<SnapshotRequest> {
        if self.version - self.last_snapshot_version < self.snapshot_every {
            return None;
        }
        let (format, state) = codec::encode_state(&self.state);
        Some(SnapshotRequest {
            stream: self.id.clone(),
            version: self.version,
            state_schema: D::STATE_SCHEMA,
            format,
            state,
        })
    }
}

impl<D: Decider + Unpin + 'static> Actor for DeviceActor<D> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // The offline policy: a device silent for `offline_after` is marked offline. Checked a few times per
        // period, so the mark comes at most a third of the period late.
        let check_every = (self.offline_after / 3).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(10),
        );
        ctx.run_interval(check_every, |act, ctx| {
            let common = D::common(&act.state);
            let watched = common.availability.is_online() && common.lifecycle == crate::domain::Lifecycle::Active;
            if watched && act.last_heard.elapsed() >= act.offline_after {
                tracing::info!(device = %act.id, silent_for = ?act.last_heard.elapsed(), "device is silent; marking it offline");
                let at = jiff::Timestamp::now();
                ctx.notify(Execute { command: DeviceCommand::ReportAvailability { online: false, at }, causation: None });
            }
        });
    }
}

impl<D: Decider + Unpin + 'static> Handler<Execute> for DeviceActor<D> {
    type Result = ResponseActFuture<Self, Result<CommandOutcome, CommandError>>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |result| Box::pin(fut::ready(result)) as Self::Result;
        if msg.command.is_sign_of_life()
            || matches!(msg.command, DeviceCommand::ReportAvailability { online: true, .. })
        {
            self.last_heard = std::time::Instant::now();
        }
        if let Some(msg_id) = &msg.causation
            && self.recent.contains(msg_id)
        {
            return ready(Ok(CommandOutcome::Duplicate));
        }
        let events = match D::decide(&self.state, &msg.command) {
            Ok(events) => events,
            Err(rejection) => return ready(Err(rejection.into())),
        };
        if events.is_empty() && msg.causation.is_none() {
            return ready(Ok(CommandOutcome::Recorded {
                events: 0,
                position: None,
            }));
        }
        // Evolve now, before the commit, so the next command is decided on this one's outcome (pipelining).
        let expected_version = self.version;
        let state = std::mem::take(&mut self.state);
        self.state = D::fold(state, &events);
        self.version += events.len() as u64;
        if let Some(msg_id) = &msg.causation {
            self.recent.insert(msg_id.clone());
        }
        let snapshot = self.snapshot_due();
        if let Some(s) = &snapshot {
            self.last_snapshot_version = s.version;
        }
        let count = events.len();
        let append = self.writer.append(AppendRequest {
            stream: self.id.clone(),
            expected_version,
            events,
            causation: msg.causation,
        });
        let generation = self.generation;
        Box::pin(append.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(AppendOutcome::Appended { last_position, .. }) => {
                // Only now is the snapshot's version known to be in the journal.
                if let Some(snapshot) = snapshot {
                    act.writer.save_snapshot(snapshot);
                }
                Ok(CommandOutcome::Recorded {
                    events: count,
                    position: Some(last_position),
                })
            }
            Ok(AppendOutcome::Duplicate) => {
                // An old redelivery the in-memory window had forgotten: the state we evolved is wrong.
                if count > 0 && generation == act.generation {
                    act.recover(ctx);
                }
                Ok(CommandOutcome::Duplicate)
            }
            Err(error) => {
                if generation == act.generation {
                    tracing::warn!(device = %act.id, %error, "append failed; recovering device state");
                    act.recover(ctx);
                }
                Err(CommandError::Journal(error))
            }
        }))
    }
}
