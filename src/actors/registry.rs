//! The one registry of aggregate instances of every kind: routes commands by stream name, starts instances of
//! created-on-demand kinds on first use, and starts the devices at boot: one per configured device and one per
//! device the journal knows but the configuration no longer lists (so it can be decommissioned and can answer
//! "decommissioned" rather than "unknown").

use super::host::{
    AggregateActor, CommandError, CommandOutcome, Execute, ExecuteAndReply, HostSettings, Hosted, Meta, Recovered,
    Tick, recover_off_executor,
};
use crate::config::Config;
use crate::domain::{
    Camera, CameraState, Device, DeviceCommand, DeviceDetails, DeviceId, DeviceKind, Lifecycle, Rejection, StreamName,
    Turnstile, TurnstileState,
};
use crate::journal::{JournalReader, JournalWriter};
use actix::prelude::*;
use jiff::Timestamp;
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The address of one instance: a `Recipient<ExecuteAndReply<C, R>>` for its kind's command and rejection types.
type Address = Arc<dyn Any + Send + Sync>;

/// The addresses of every running aggregate instance, of every kind, by stream name. Devices are started at
/// boot; instances of kinds created as they are needed (a work order, an alarm) are started on first use by
/// [`Registry::execute_or_start`]. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    instances: Arc<RwLock<HashMap<StreamName, Address>>>,
    /// The kind of every device, fixed at boot (the configuration and the journal decide it).
    device_kinds: Arc<HashMap<DeviceId, DeviceKind>>,
    writer: JournalWriter,
    journal_path: PathBuf,
    settings: HostSettings,
    /// Starts of on-demand instances, one at a time, so two first commands cannot start two actors.
    starting: Arc<tokio::sync::Mutex<()>>,
    /// Instances whose streams could not be recovered (an event that does not decode), with why: they take no
    /// commands (callers hear `Unavailable`, MQTT messages stay unacknowledged) and `/healthz` names them.
    unrecoverable: Arc<HashMap<StreamName, String>>,
    /// Every device's clock input, for a core on a virtual clock (`what-if`).
    tickers: Arc<Vec<Recipient<Tick>>>,
}

impl Registry {
    /// Runs `with` on the running instance of `stream` that takes these commands, through the map's own recipient
    /// under the read lock: cloning a `Recipient` allocates twice (a box and actix's per-sender task), which would
    /// be for every ingested message.
    fn with_recipient<C: Send + 'static, R: Send + 'static, T>(
        &self,
        stream: &str,
        with: impl FnOnce(&Recipient<ExecuteAndReply<C, R>>) -> T,
    ) -> Option<T> {
        // A poisoned lock only means a panic elsewhere while inserting: the map itself is still whole.
        let instances = self.instances.read().unwrap_or_else(|p| p.into_inner());
        instances
            .get(stream)
            .and_then(|address| address.downcast_ref::<Recipient<ExecuteAndReply<C, R>>>())
            .map(with)
    }

    /// Whether an instance of `stream` taking these commands is running.
    fn is_running<C: Send + 'static, R: Send + 'static>(&self, stream: &str) -> bool {
        self.with_recipient::<C, R, _>(stream, |_| ()).is_some()
    }

    fn insert<C: Send + 'static, R: Send + 'static>(
        &self,
        stream: StreamName,
        recipient: Recipient<ExecuteAndReply<C, R>>,
    ) {
        let mut instances = self.instances.write().unwrap_or_else(|p| p.into_inner());
        instances.insert(stream, Arc::new(recipient));
    }

    /// Sends a command to a running instance (now, so commands keep their order) and waits until its effect is
    /// durable. The future holds only the answer's receiver: every ingested message's future contains one.
    pub fn execute<C: Send + 'static, R: Send + 'static>(
        &self,
        stream: &str,
        command: C,
        meta: Meta,
    ) -> impl Future<Output = Result<CommandOutcome, CommandError<R>>> + use<C, R> {
        let sent = self.with_recipient(stream, |recipient| {
            let (reply, answer) = tokio::sync::oneshot::channel();
            recipient.do_send(ExecuteAndReply {
                execute: Execute::new(command, meta),
                reply,
            });
            answer
        });
        let answer = match sent {
            Some(answer) => Ok(answer),
            None if self.unrecoverable.contains_key(stream) => Err(CommandError::Unavailable),
            None => Err(CommandError::UnknownStream(stream.to_owned())),
        };
        // No answer: the actor stopped before it carried the command out.
        async move { answer?.await.map_err(|_| CommandError::Unavailable)? }
    }

    /// Sends a command to a device's actor and waits until its effect is durable.
    pub fn execute_device(
        &self,
        device: &str,
        command: DeviceCommand,
        meta: Meta,
    ) -> impl Future<Output = Result<CommandOutcome, CommandError<Rejection>>> + use<> {
        futures_util::FutureExt::map(self.execute(device, command, meta), |outcome| match outcome {
            Err(CommandError::UnknownStream(device)) => Err(CommandError::UnknownDevice(device)),
            other => other,
        })
    }

    /// Sends a command to the instance `id` of kind `A`, recovering and starting its actor first when it is
    /// not running yet (kinds whose instances are created by commands: work orders, alarms, presence).
    pub async fn execute_or_start<A: Hosted>(
        &self,
        id: &str,
        command: A::Command,
        meta: Meta,
    ) -> Result<CommandOutcome, CommandError<A::Rejection>>
    where
        A::Command: Send,
        A::Rejection: Send,
    {
        let stream = StreamName::of(A::KIND, id).map_err(|e| CommandError::UnknownStream(e.to_string()))?;
        if !self.is_running::<A::Command, A::Rejection>(stream.as_str()) {
            let _one_at_a_time = self.starting.lock().await;
            if !self.is_running::<A::Command, A::Rejection>(stream.as_str()) {
                let recovered = recover_off_executor::<A>(self.journal_path.clone(), stream.clone())
                    .await
                    .map_err(|e| CommandError::Journal(crate::journal::AppendError::Storage(format!("{e:#}"))))?;
                let actor = AggregateActor::<A>::new(
                    stream.clone(),
                    recovered,
                    self.writer.clone(),
                    self.journal_path.clone(),
                    HostSettings {
                        silence_after: None,
                        ..self.settings
                    },
                );
                self.insert(
                    stream.clone(),
                    actor.start().recipient::<ExecuteAndReply<A::Command, A::Rejection>>(),
                );
            }
        }
        self.execute(stream.as_str(), command, meta).await
    }

    /// The journal the instances append to.
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }

    /// Moves every device to the virtual clock's time `at` (`what-if`): one silent for `offline_after` by then
    /// goes offline at the instant its timer would have fired. Returns once that is durable.
    pub async fn tick_devices(&self, at: Timestamp) {
        futures_util::future::join_all(self.tickers.iter().map(|device| device.send(Tick(at)))).await;
    }

    /// Instances that could not be recovered at boot, with why.
    pub fn unrecoverable(&self) -> impl Iterator<Item = (&StreamName, &String)> {
        self.unrecoverable.iter()
    }

    /// The kind of a known device.
    pub fn kind(&self, device: &DeviceId) -> Option<DeviceKind> {
        self.device_kinds.get(device).copied()
    }

    /// How many devices there are.
    pub fn len(&self) -> usize {
        self.device_kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.device_kinds.is_empty()
    }
}

/// How far boot has got recovering devices, for `/healthz` while it runs.
#[derive(Debug, Default)]
pub struct RecoveryProgress {
    pub(super) done: std::sync::atomic::AtomicUsize,
    pub(super) total: std::sync::atomic::AtomicUsize,
}

impl RecoveryProgress {
    /// A progress already `done` of `total` (for pages and tests that show one).
    pub fn at(done: usize, total: usize) -> Self {
        Self {
            done: done.into(),
            total: total.into(),
        }
    }

    /// `recovering: 37 of 120 devices`.
    pub fn describe(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        format!(
            "recovering: {} of {} devices",
            self.done.load(Relaxed),
            self.total.load(Relaxed)
        )
    }
}

/// What boot needs to know about one device before starting its actor.
pub(super) enum Loaded {
    /// Its stream does not fold (an event that does not decode): the device stays down, the site comes up.
    Unrecoverable(String),
    Turnstile(Recovered<TurnstileState>),
    Camera(Recovered<CameraState>),
}

/// The configuration's wish for one device.
struct Wanted {
    kind: DeviceKind,
    details: DeviceDetails,
    watches: Vec<DeviceId>,
}

fn wanted_devices(config: &Config) -> BTreeMap<DeviceId, Wanted> {
    let turnstiles = config.turnstiles.iter().map(|t| {
        (
            t.id.clone(),
            Wanted {
                kind: DeviceKind::Turnstile,
                details: t.details.clone(),
                watches: vec![],
            },
        )
    });
    let cameras = config.cameras.iter().map(|c| {
        (
            c.id.clone(),
            Wanted {
                kind: DeviceKind::Camera,
                details: c.details.clone(),
                watches: c.watches.clone(),
            },
        )
    });
    turnstiles.chain(cameras).collect()
}

/// Recovers every device (blocking; run off the executor), starts its actor, then brings the journal in line
/// with `config.toml`: new devices are commissioned, changed ones reconfigured, removed ones decommissioned.
pub async fn start_devices(
    config: &Config,
    writer: JournalWriter,
    journal_path: &Path,
    progress: Arc<RecoveryProgress>,
) -> anyhow::Result<Registry> {
    let wanted = wanted_devices(config);
    let path: PathBuf = journal_path.to_owned();
    let configured: Vec<(DeviceId, DeviceKind)> = wanted.iter().map(|(id, w)| (id.clone(), w.kind)).collect();
    let started = std::time::Instant::now();
    // Progress in the log while it takes a while (an upgrade that changed a state schema replays every stream).
    let ticker = {
        let progress = progress.clone();
        actix_web::rt::spawn(async move {
            let mut ticks = tokio::time::interval(PROGRESS_LOG_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                tracing::info!(progress = %progress.describe(), "still recovering devices");
            }
        })
    };
    let (snapshot_writer, snapshot_every) = (writer.clone(), config.storage.snapshot_every);
    let recovering = progress.clone();
    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<super::boot::Recovery> {
        let journal = JournalReader::open(&path)?;
        let mut all: BTreeMap<DeviceId, DeviceKind> = journal.commissioned_streams()?.into_iter().collect();
        // The configuration decides a device's kind; a journal stream of another kind under the same id keeps
        // its history but is hosted as the configured kind from now on (`decide` then sees a commissioned state
        // of its own kind only if the kinds agree).
        all.extend(configured);
        recovering.total.store(all.len(), std::sync::atomic::Ordering::Relaxed);
        super::boot::recover_devices(
            &path,
            all.into_iter().collect(),
            &snapshot_writer,
            snapshot_every,
            &recovering,
        )
    })
    .await;
    ticker.abort();
    let super::boot::Recovery {
        devices: loaded,
        replayed,
        snapshots,
    } = loaded??;
    tracing::info!(devices = loaded.len(), events_replayed = replayed, snapshots_saved = snapshots,
        took = ?started.elapsed(), "devices recovered");

    let settings = HostSettings {
        snapshot_every: config.storage.snapshot_every,
        silence_after: Some(config.devices.offline_after),
        on_virtual_clock: config.clock.is_virtual(),
    };
    let mut device_kinds = HashMap::with_capacity(loaded.len());
    let mut recipients = Vec::with_capacity(loaded.len());
    let mut tickers = Vec::with_capacity(loaded.len());
    let mut lifecycles = Vec::with_capacity(loaded.len());
    let mut unrecoverable = HashMap::new();
    for (id, kind, loaded) in loaded {
        let stream = StreamName::device(&id);
        device_kinds.insert(id.clone(), kind);
        let (recipient, ticker, lifecycle) = match loaded {
            Loaded::Unrecoverable(why) => {
                unrecoverable.insert(stream, why);
                continue;
            }
            Loaded::Turnstile(r) => start_device::<Turnstile>(stream.clone(), r, &writer, journal_path, settings),
            Loaded::Camera(r) => start_device::<Camera>(stream.clone(), r, &writer, journal_path, settings),
        };
        lifecycles.push((id.clone(), lifecycle));
        recipients.push((stream, recipient));
        tickers.push(ticker);
    }
    let registry = Registry {
        instances: Default::default(),
        device_kinds: Arc::new(device_kinds),
        writer,
        journal_path: journal_path.to_owned(),
        settings,
        starting: Default::default(),
        unrecoverable: Arc::new(unrecoverable),
        tickers: Arc::new(tickers),
    };
    for (stream, recipient) in recipients {
        registry.insert(stream, recipient);
    }
    reconcile(&registry, &wanted, &lifecycles).await?;
    Ok(registry)
}

/// How often boot logs how far device recovery has got.
const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

fn start_device<D: Device + Hosted>(
    stream: StreamName,
    recovered: Recovered<D::State>,
    writer: &JournalWriter,
    journal_path: &Path,
    settings: HostSettings,
) -> (
    Recipient<ExecuteAndReply<DeviceCommand, Rejection>>,
    Recipient<Tick>,
    Lifecycle,
) {
    let lifecycle = D::common(&recovered.state).lifecycle;
    let actor = AggregateActor::<D>::new(stream, recovered, writer.clone(), journal_path.into(), settings);
    let address = actor.start();
    (address.clone().recipient(), address.recipient(), lifecycle)
}

/// Turns the difference between the configuration and the journal into commands, sent to all devices at once
/// so a site with many devices starts with a few group commits rather than one commit per device.
async fn reconcile(
    registry: &Registry,
    wanted: &BTreeMap<DeviceId, Wanted>,
    lifecycles: &[(DeviceId, Lifecycle)],
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let mut pending = Vec::new();
    for (id, lifecycle) in lifecycles {
        let command = match (wanted.get(id), lifecycle) {
            (Some(w), Lifecycle::Uncommissioned | Lifecycle::Decommissioned) => {
                tracing::info!(device = %id, kind = %w.kind, "commissioning device from config.toml");
                DeviceCommand::Commission {
                    details: w.details.clone(),
                    watches: w.watches.clone(),
                    at: now,
                }
            }
            (Some(w), Lifecycle::Active) => DeviceCommand::Reconfigure {
                details: w.details.clone(),
                watches: w.watches.clone(),
                at: now,
            },
            (None, Lifecycle::Active) => {
                tracing::info!(device = %id, "decommissioning device no longer in config.toml");
                DeviceCommand::Decommission { at: now }
            }
            (None, _) => continue,
        };
        pending.push(async move {
            registry
                .execute_device(id.as_str(), command, Meta::by(crate::journal::Actor::config()))
                .await
                .map_err(|error| anyhow::anyhow!("device {id}: cannot apply config.toml: {error}"))
        });
    }
    for result in futures_util::future::join_all(pending).await {
        result?;
    }
    Ok(())
}
