//! Routes commands to device actors by id, and starts those actors at boot: one per configured device and one
//! per device the journal knows but the configuration no longer lists (so it can be decommissioned and can
//! answer "decommissioned" rather than "unknown").

use super::device::{CommandError, CommandOutcome, DeviceActor, DeviceSettings, Execute, Recovered, recover};
use crate::config::Config;
use crate::domain::{
    Camera, CameraState, Decider, DeviceCommand, DeviceDetails, DeviceId, DeviceKind, Lifecycle, Turnstile,
    TurnstileState,
};
use crate::journal::{JournalReader, JournalWriter};
use actix::prelude::*;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The addresses of every device actor. Built once at boot and shared read-only.
#[derive(Clone)]
pub struct DeviceRegistry {
    devices: Arc<HashMap<DeviceId, (DeviceKind, Recipient<Execute>)>>,
}

impl DeviceRegistry {
    /// Sends a command to the device's actor and waits until its effect is durable.
    pub async fn execute(
        &self,
        device: &str,
        command: DeviceCommand,
        causation: Option<String>,
    ) -> Result<CommandOutcome, CommandError> {
        // An invalid id cannot be a key, so a plain lookup by `&str` answers both cases.
        let Some((_, recipient)) = self.devices.get(device) else {
            return Err(CommandError::UnknownDevice(device.to_owned()));
        };
        recipient
            .send(Execute { command, causation })
            .await
            .map_err(|_| CommandError::Unavailable)?
    }

    /// The kind of a known device.
    pub fn kind(&self, device: &DeviceId) -> Option<DeviceKind> {
        self.devices.get(device).map(|(kind, _)| *kind)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// What boot needs to know about one device before starting its actor.
enum Loaded {
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
) -> anyhow::Result<DeviceRegistry> {
    let wanted = wanted_devices(config);
    let path: PathBuf = journal_path.to_owned();
    let configured: Vec<(DeviceId, DeviceKind)> = wanted.iter().map(|(id, w)| (id.clone(), w.kind)).collect();
    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(DeviceId, DeviceKind, Loaded)>> {
        let journal = JournalReader::open(&path)?;
        let mut all: BTreeMap<DeviceId, DeviceKind> = journal.commissioned_streams()?.into_iter().collect();
        // The configuration decides a device's kind; a journal stream of another kind under the same id keeps
        // its history but is hosted as the configured kind from now on (`decide` then sees a commissioned state
        // of its own kind only if the kinds agree).
        all.extend(configured);
        let mut out = Vec::with_capacity(all.len());
        for (id, kind) in all {
            let loaded = match kind {
                DeviceKind::Turnstile => Loaded::Turnstile(recover::<Turnstile>(&journal, &id)?),
                DeviceKind::Camera => Loaded::Camera(recover::<Camera>(&journal, &id)?),
            };
            out.push((id, kind, loaded));
        }
        Ok(out)
    })
    .await??;

    let settings = DeviceSettings {
        snapshot_every: config.storage.snapshot_every,
        offline_after: config.devices.offline_after,
    };
    let mut devices = HashMap::with_capacity(loaded.len());
    let mut lifecycles = Vec::with_capacity(loaded.len());
    for (id, kind, loaded) in loaded {
        let (recipient, lifecycle) = match loaded {
            Loaded::Turnstile(r) => {
                let lifecycle = Turnstile::common(&r.state).lifecycle;
                let actor = DeviceActor::<Turnstile>::new(id.clone(), r, writer.clone(), journal_path.into(), settings);
                (actor.start().recipient(), lifecycle)
            }
            Loaded::Camera(r) => {
                let lifecycle = Camera::common(&r.state).lifecycle;
                let actor = DeviceActor::<Camera>::new(id.clone(), r, writer.clone(), journal_path.into(), settings);
                (actor.start().recipient(), lifecycle)
            }
        };
        lifecycles.push((id.clone(), lifecycle));
        devices.insert(id, (kind, recipient));
    }
    let registry = DeviceRegistry {
        devices: Arc::new(devices),
    };
    reconcile(&registry, &wanted, &lifecycles).await?;
    Ok(registry)
}

/// Turns the difference between the configuration and the journal into commands, sent to all devices at once
/// so a site with many devices starts with a few group commits rather than one commit per device.
async fn reconcile(
    registry: &DeviceRegistry,
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
                .execute(id.as_str(), command, None)
                .await
                .map_err(|error| anyhow::anyhow!("device {id}: cannot apply config.toml: {error}"))
        });
    }
    for result in futures_util::future::join_all(pending).await {
        result?;
    }
    Ok(())
}
