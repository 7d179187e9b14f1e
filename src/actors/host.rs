//! The one actor host for every aggregate kind: an `AggregateActor<A>` decides commands against its in-memory
//! state, evolves at once, and pipelines the resulting appends to the journal writer, so a busy instance is not
//! limited to one commit round-trip per command. Its state is recovered from the latest snapshot plus later
//! events. What a kind needs beyond `Aggregate` (a silence timer, for devices) comes through [`Hosted`].

use crate::codec::{self, EventCodec};
use crate::domain::{Aggregate, StreamName};
use crate::journal::{
    Actor, AppendError, AppendOutcome, AppendRequest, Delivery, JournalReader, JournalWriter, Position, SnapshotRequest,
};
use actix::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How many recent causations each actor remembers to drop redeliveries without asking the journal. Older
/// redeliveries are still caught by the writer (the journal's unique key), at the cost of a recovery.
pub const RECENT_MESSAGE_IDS: usize = 1024;

/// How many commands an actor accepts into its mailbox before callers wait: the backpressure on ingest.
const MAILBOX_CAPACITY: usize = 4096;

/// An aggregate kind the host can run: its events have a codec, and it may ask for a silence timer.
pub trait Hosted: Aggregate<Event: EventCodec> + Unpin + 'static {
    /// Whether a command proves that whatever the instance stands for is alive (restarts the silence timer).
    fn is_sign_of_life(_command: &Self::Command) -> bool {
        false
    }

    /// The command to decide after [`HostSettings::silence_after`] without a sign of life, if any, and the
    /// policy name it is recorded under.
    fn when_silent(_state: &Self::State, _now: jiff::Timestamp) -> Option<(Self::Command, &'static str)> {
        None
    }
}

/// Where a command came from and what makes it unique: recorded with its events.
#[derive(Debug, Clone)]
pub struct Meta {
    /// What caused it: a message id, `policy:NAME:POSITION`, `dead_letter:ID`. A second command with the same
    /// causation for the same stream is a redelivery and records nothing.
    pub causation: Option<String>,
    pub actor: Actor,
    /// The protocol delivery of a message without `msg_id` (see [`Delivery`]).
    pub delivery: Option<Delivery>,
}

impl Meta {
    /// A command with no causation to de-duplicate by, from `actor`.
    pub fn by(actor: Actor) -> Self {
        Self {
            causation: None,
            actor,
            delivery: None,
        }
    }

    pub fn caused_by(mut self, causation: impl Into<String>) -> Self {
        self.causation = Some(causation.into());
        self
    }
}

/// Ask an aggregate instance to carry out a command. Typed by command and rejection, not by aggregate, so kinds
/// that share them (turnstiles and cameras) share one recipient type in the registry.
pub struct Execute<C, R> {
    pub command: C,
    pub meta: Meta,
    _rejection: PhantomData<fn() -> R>,
}

impl<C, R> Execute<C, R> {
    pub fn new(command: C, meta: Meta) -> Self {
        Self {
            command,
            meta,
            _rejection: PhantomData,
        }
    }
}

impl<C: 'static, R: 'static> Message for Execute<C, R> {
    type Result = Result<CommandOutcome, CommandError<R>>;
}

/// [`Execute`] with its answer sent back on a channel: how the registry sends commands. Waiting for the answer is
/// a channel receiver of a few bytes, where actix's request future carries a mailbox-timeout timer (over a KiB)
/// and every ingested message's future holds one. Sent with `do_send`, past the mailbox's capacity: callers bound
/// how many commands they have outstanding (an MQTT session's in-flight window, an HTTP request).
pub struct ExecuteAndReply<C, R> {
    pub execute: Execute<C, R>,
    pub reply: tokio::sync::oneshot::Sender<Result<CommandOutcome, CommandError<R>>>,
}

impl<C: 'static, R: 'static> Message for ExecuteAndReply<C, R> {
    type Result = ();
}

/// What a command did, once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// `events` new events are in the journal, the last at `position` (0 events: nothing changed).
    Recorded { events: usize, position: Option<Position> },
    /// The causation was handled before; nothing new was recorded.
    Duplicate,
}

/// Why a command had no effect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError<R = crate::domain::Rejection> {
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    #[error("rejected: {0}")]
    Rejected(R),
    #[error("{0}")]
    Journal(#[from] AppendError),
    #[error("its actor is not running")]
    Unavailable,
}

/// An instance's folded state and what recovery needs to continue from it.
pub struct Recovered<S> {
    pub state: S,
    pub version: u64,
    pub recent_msg_ids: Vec<String>,
    /// Events folded on top of the snapshot (all of them when there was none usable): what the next recovery
    /// saves by a snapshot taken now.
    pub replayed: u64,
}

impl<S: serde::Serialize> Recovered<S> {
    /// A snapshot of this state, when recovering it replayed at least `every` events: saved right away, the
    /// next start (after a crash, or an upgrade that changed the state schema) does not replay them again.
    pub fn snapshot_worth_saving<A: Aggregate<State = S>>(
        &self,
        stream: &StreamName,
        every: u32,
    ) -> Option<SnapshotRequest> {
        if self.replayed < u64::from(every.max(1)) {
            return None;
        }
        let (format, state) = codec::encode_state(&self.state);
        Some(SnapshotRequest {
            stream: stream.clone(),
            version: self.version,
            state_schema: A::STATE_SCHEMA,
            format,
            state,
        })
    }
}

/// Loads an instance's state: the latest usable snapshot, then every later event. Blocking: call it off the
/// async executor. A snapshot of another state schema, one that does not decode, or one ahead of the stream is
/// logged and ignored, and the stream replayed from the start.
pub fn recover<A: Hosted>(journal: &JournalReader, stream: &StreamName) -> anyhow::Result<Recovered<A::State>> {
    let (mut state, mut version, _) = recover_base::<A>(journal, stream)?;
    let mut replayed = 0;
    for stored in journal.stream_events_as::<A::Event>(stream, version)? {
        state = A::evolve(state, &stored.event);
        version = stored.version;
        replayed += 1;
    }
    let recent_msg_ids = journal.recent_msg_ids(stream, RECENT_MESSAGE_IDS)?;
    Ok(Recovered {
        state,
        version,
        recent_msg_ids,
        replayed,
    })
}

/// Where recovering a stream starts: its latest usable snapshot and the version it includes (the default state
/// and 0 when there is none), and the stream's version now.
pub fn recover_base<A: Aggregate>(
    journal: &JournalReader,
    stream: &StreamName,
) -> anyhow::Result<(A::State, u64, u64)> {
    let stream_version = journal.stream_version(stream)?;
    // Archival replaced the stream's oldest events by the state they fold to: no older start exists.
    let carried = journal.carried_forward(stream.as_str())?;
    let carried_version = carried.as_ref().map_or(0, |(version, _)| *version);
    if let Some(snapshot) = journal
        .snapshot(stream)?
        .filter(|s| carried.is_none() || s.version >= carried_version)
    {
        if snapshot.state_schema != A::STATE_SCHEMA {
            tracing::info!(%stream, stored = snapshot.state_schema, current = A::STATE_SCHEMA,
                "snapshot has another state schema; replaying the stream");
        } else if snapshot.version > stream_version {
            tracing::warn!(%stream, snapshot = snapshot.version, stream_version,
                "snapshot is ahead of the journal; replaying the stream");
        } else {
            match codec::decode_state::<A::State>(snapshot.format, &snapshot.state) {
                Ok(decoded) => return Ok((decoded, snapshot.version, stream_version)),
                Err(error) => tracing::warn!(%stream, %error, "snapshot does not decode; replaying the stream"),
            }
        }
    }
    if let Some((version, carried)) = carried {
        anyhow::ensure!(
            carried.of == A::STATE_OF,
            "stream {stream}: its carried-forward state is a {}'s, not a {}'s",
            carried.of,
            A::STATE_OF
        );
        let state = anyhow::Context::with_context(carried.state_of::<A>(), || format!("stream {stream}"))?;
        return Ok((state, version, stream_version));
    }
    Ok((A::State::default(), 0, stream_version))
}

/// Causations of a stream's latest messages, newest first: what an actor needs to drop redeliveries.
pub fn recent_causations(journal: &JournalReader, stream: &StreamName) -> anyhow::Result<Vec<String>> {
    journal.recent_msg_ids(stream, RECENT_MESSAGE_IDS)
}

/// [`recover`] on the blocking pool, with a journal connection of its own: how an actor (re)loads its state.
pub async fn recover_off_executor<A: Hosted>(
    journal_path: PathBuf,
    stream: StreamName,
) -> anyhow::Result<Recovered<A::State>> {
    tokio::task::spawn_blocking(move || recover::<A>(&JournalReader::open(&journal_path)?, &stream)).await?
}

/// Causations seen lately, oldest first out. Looked up for every command, so each id is stored once (shared by the
/// set and the queue) and hashed with foldhash: it is seeded per process, and the set is too small (at most
/// [`RECENT_MESSAGE_IDS`]) for a gateway choosing colliding ids to matter.
#[derive(Default)]
struct RecentIds {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    order: VecDeque<Arc<str>>,
}

impl RecentIds {
    fn from_newest_first(ids: Vec<String>) -> Self {
        let mut recent = Self::default();
        for id in ids.iter().rev() {
            recent.insert(id);
        }
        recent
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: &str) {
        if self.set.contains(id) {
            return;
        }
        let id: Arc<str> = Arc::from(id);
        self.set.insert(Arc::clone(&id));
        self.order.push_back(id);
        if self.order.len() > RECENT_MESSAGE_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }
}

/// How hosted actors behave, from `config.toml`.
#[derive(Debug, Clone, Copy)]
pub struct HostSettings {
    /// Save a snapshot after this many events (`[storage] snapshot_every`).
    pub snapshot_every: u32,
    /// After this long without a sign of life, ask [`Hosted::when_silent`] (`[devices] offline_after`).
    pub silence_after: Option<Duration>,
    /// Silence is measured on a virtual clock moved by [`Tick`]s (`what-if`), not on the wall clock.
    pub on_virtual_clock: bool,
}

/// A virtual clock's time (`what-if`): an instance silent for `silence_after` by then is told so, at the instant
/// its timer would have fired. Answered once anything that causes is durable.
pub struct Tick(pub jiff::Timestamp);

impl Message for Tick {
    type Result = ();
}

/// One aggregate instance's actor.
pub struct AggregateActor<A: Hosted> {
    stream: StreamName,
    /// State including events sent to the writer but not yet committed (optimistic, for pipelining).
    state: A::State,
    version: u64,
    recent: RecentIds,
    writer: JournalWriter,
    journal_path: PathBuf,
    snapshot_every: u64,
    last_snapshot_version: u64,
    silence_after: Option<Duration>,
    /// When this process last had a sign of life (receive time, not device time: gateway clocks drift).
    /// Starts at the actor's start, so time the server itself was down never counts as silence.
    last_heard: std::time::Instant,
    /// Bumped by every recovery; a failure reported by an append sent before the last recovery needs no new one.
    generation: u64,
    /// On a virtual clock: its time now, and when the last sign of life came by it.
    on_virtual_clock: bool,
    virtual_now: Option<jiff::Timestamp>,
    heard_at: Option<jiff::Timestamp>,
}

impl<A: Hosted> AggregateActor<A> {
    pub fn new(
        stream: StreamName,
        recovered: Recovered<A::State>,
        writer: JournalWriter,
        journal_path: PathBuf,
        settings: HostSettings,
    ) -> Self {
        Self {
            stream,
            state: recovered.state,
            version: recovered.version,
            last_snapshot_version: recovered.version,
            recent: RecentIds::from_newest_first(recovered.recent_msg_ids),
            writer,
            journal_path,
            snapshot_every: u64::from(settings.snapshot_every.max(1)),
            silence_after: settings.silence_after,
            last_heard: std::time::Instant::now(),
            generation: 0,
            on_virtual_clock: settings.on_virtual_clock,
            virtual_now: None,
            heard_at: None,
        }
    }

    /// Throws away the optimistic state and reloads it from the journal. `ctx.wait` holds back every further
    /// message until this is done, so nothing is decided on the state that just proved wrong.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let load = recover_off_executor::<A>(self.journal_path.clone(), self.stream.clone());
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(recovered) => {
                tracing::info!(stream = %act.stream, version = recovered.version, "state recovered from the journal");
                act.state = recovered.state;
                act.version = recovered.version;
                act.last_snapshot_version = act.last_snapshot_version.min(recovered.version);
                act.recent = RecentIds::from_newest_first(recovered.recent_msg_ids);
            }
            Err(error) => {
                // Without its state the actor cannot decide anything correctly: stop, and let callers see
                // `Unavailable` rather than decisions on a wrong state.
                tracing::error!(stream = %act.stream, %error, "cannot recover state; stopping its actor");
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
            stream: self.stream.clone(),
            version: self.version,
            state_schema: A::STATE_SCHEMA,
            format,
            state,
        })
    }
}

impl<A: Hosted> actix::Actor for AggregateActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        let Some(silence_after) = self.silence_after.filter(|_| !self.on_virtual_clock) else {
            return;
        };
        // Checked a few times per period, so the reaction comes at most a third of the period late.
        let check_every = (silence_after / 3).clamp(Duration::from_millis(100), Duration::from_secs(10));
        ctx.run_interval(check_every, move |act, ctx| {
            if act.last_heard.elapsed() < silence_after {
                return;
            }
            if let Some((command, policy)) = A::when_silent(&act.state, jiff::Timestamp::now()) {
                tracing::info!(stream = %act.stream, silent_for = ?act.last_heard.elapsed(), policy, "silent");
                ctx.notify(Execute::<A::Command, A::Rejection>::new(
                    command,
                    Meta::by(Actor::policy(policy)),
                ));
            }
        });
    }
}

impl<A: Hosted> Handler<Execute<A::Command, A::Rejection>> for AggregateActor<A> {
    type Result = ResponseActFuture<Self, Result<CommandOutcome, CommandError<A::Rejection>>>;

    fn handle(&mut self, msg: Execute<A::Command, A::Rejection>, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |result| Box::pin(fut::ready(result)) as Self::Result;
        if A::is_sign_of_life(&msg.command) {
            self.last_heard = std::time::Instant::now();
            self.heard_at = self.virtual_now;
        }
        let Meta {
            causation,
            actor,
            delivery,
        } = msg.meta;
        if let Some(causation) = &causation
            && self.recent.contains(causation)
        {
            return ready(Ok(CommandOutcome::Duplicate));
        }
        let events = match A::decide(&self.state, &msg.command) {
            Ok(events) => events,
            Err(rejection) => return ready(Err(CommandError::Rejected(rejection))),
        };
        if events.is_empty() && causation.is_none() {
            return ready(Ok(CommandOutcome::Recorded {
                events: 0,
                position: None,
            }));
        }
        // Evolve now, before the commit, so the next command is decided on this one's outcome (pipelining).
        let expected_version = self.version;
        let encoded = events.iter().map(codec::encode_event).collect();
        let state = std::mem::take(&mut self.state);
        self.state = A::fold(state, &events);
        self.version += events.len() as u64;
        if let Some(causation) = &causation {
            self.recent.insert(causation);
        }
        let snapshot = self.snapshot_due();
        if let Some(s) = &snapshot {
            self.last_snapshot_version = s.version;
        }
        let count = events.len();
        let append = self.writer.append(AppendRequest {
            stream: self.stream.clone(),
            expected_version,
            events: encoded,
            causation,
            actor,
            // A delivery that records nothing needs no remembering.
            delivery: delivery.filter(|_| count > 0),
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
                // A redelivery the in-memory window had forgotten (or a protocol redelivery): the state we evolved
                // is wrong.
                if count > 0 && generation == act.generation {
                    act.recover(ctx);
                }
                Ok(CommandOutcome::Duplicate)
            }
            Err(error) => {
                if generation == act.generation {
                    tracing::warn!(stream = %act.stream, %error, "append failed; recovering state");
                    act.recover(ctx);
                }
                Err(CommandError::Journal(error))
            }
        }))
    }
}

impl<A: Hosted> Handler<ExecuteAndReply<A::Command, A::Rejection>> for AggregateActor<A> {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ExecuteAndReply<A::Command, A::Rejection>, ctx: &mut Context<Self>) -> Self::Result {
        let ExecuteAndReply { execute, reply } = msg;
        let done = <Self as Handler<Execute<A::Command, A::Rejection>>>::handle(self, execute, ctx);
        Box::pin(done.map(move |outcome, _, _| {
            // A caller that stopped waiting needs no answer; the command's effect stands either way.
            let _ = reply.send(outcome);
        }))
    }
}

impl<A: Hosted> Handler<Tick> for AggregateActor<A> {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, Tick(at): Tick, ctx: &mut Context<Self>) -> Self::Result {
        self.virtual_now = Some(at);
        // The first tick is the start: time before it never counts as silence (as an actor's start on the wall).
        let heard = *self.heard_at.get_or_insert(at);
        let due = self.silence_after.and_then(|after| {
            let after = jiff::SignedDuration::try_from(after).ok()?;
            let fires = heard.checked_add(after).ok()?;
            (fires <= at).then_some(fires)
        });
        let Some((command, policy)) = due.and_then(|fires| A::when_silent(&self.state, fires)) else {
            return Box::pin(fut::ready(()));
        };
        tracing::info!(stream = %self.stream, policy, "silent on the virtual clock");
        let done = <Self as Handler<Execute<A::Command, A::Rejection>>>::handle(
            self,
            Execute::new(command, Meta::by(Actor::policy(policy))),
            ctx,
        );
        Box::pin(done.map(|_, _, _| ()))
    }
}
