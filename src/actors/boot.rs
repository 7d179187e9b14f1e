//! Recovering every device at boot, bounded by the work: each device starts from its latest usable snapshot,
//! and what is left to replay is read the cheapest way. A few events per device (the usual restart) are read
//! per stream through the `(stream_id, version)` index, on one thread per core. Many (a journal without usable
//! snapshots: the first start after an upgrade that changed a state schema) are read in one pass over the
//! journal in position order: rows of one stream are spread over the whole file, so reading stream by stream
//! would visit every page once per stream. A device that replayed `snapshot_every` events or more gets a
//! snapshot at once, so the next start does not replay them again.

use super::host::{Recovered, recent_causations, recover, recover_base};
use super::registry::{Loaded, RecoveryProgress};
use crate::codec;
use crate::domain::{
    Aggregate, Camera, CameraState, DeviceEvent, DeviceId, DeviceKind, StreamName, Turnstile, TurnstileState,
};
use crate::journal::{JournalReader, JournalWriter, SnapshotRequest};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// One pass over the journal beats reading per stream once the events to replay are more than this many and
/// more than a quarter of the journal: per stream, each stream's rows cost a page visit each; one pass reads
/// every page once.
const ONE_PASS_ABOVE: u64 = 1_000;

/// One recovery thread per core (at most 8), and no more than there are devices.
fn threads_for(devices: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(devices.max(1))
}

/// Every device's recovered state, and what recovering cost.
pub(super) struct Recovery {
    pub devices: Vec<(DeviceId, DeviceKind, Loaded)>,
    /// Events folded on top of snapshots, over all devices.
    pub replayed: u64,
    /// Snapshots saved because a device replayed many events.
    pub snapshots: usize,
}

/// Recovers `devices` (blocking: run it off the executor).
pub(super) fn recover_devices(
    journal_path: &Path,
    devices: Vec<(DeviceId, DeviceKind)>,
    writer: &JournalWriter,
    snapshot_every: u32,
    progress: &RecoveryProgress,
) -> anyhow::Result<Recovery> {
    let journal = JournalReader::open(journal_path)?;
    let mut to_replay = 0;
    for (id, kind) in &devices {
        let stream = StreamName::device(id);
        let stream_version = journal.stream_version(&stream)?;
        let schema = match kind {
            DeviceKind::Turnstile => Turnstile::STATE_SCHEMA,
            DeviceKind::Camera => Camera::STATE_SCHEMA,
        };
        // A snapshot of another state schema is no start (an upgrade changed it): the whole stream is replayed.
        let snapshot_version = journal
            .snapshot(&stream)?
            .filter(|s| s.state_schema == schema)
            .map_or(0, |s| s.version)
            .min(stream_version);
        to_replay += stream_version - snapshot_version;
    }
    if to_replay > ONE_PASS_ABOVE && to_replay.saturating_mul(4) > journal.head()? {
        drop(journal);
        // One pass per core, each folding its share of the devices: SQLite steps through the rows cheaply; the
        // decoding and folding is what the cores share.
        let threads = threads_for(devices.len());
        tracing::info!(
            devices = devices.len(),
            events = to_replay,
            threads,
            "replaying the journal in one pass"
        );
        let mut shares: Vec<Vec<(DeviceId, DeviceKind)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, device) in devices.into_iter().enumerate() {
            shares[i % threads].push(device);
        }
        let results: Vec<anyhow::Result<Recovery>> = std::thread::scope(|scope| {
            let workers: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || {
                        let journal = JournalReader::open(journal_path)?;
                        recover_in_one_pass(&journal, share, writer, snapshot_every, progress)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a recovery thread panicked")))
                })
                .collect()
        });
        let mut all = Recovery {
            devices: Vec::new(),
            replayed: 0,
            snapshots: 0,
        };
        for result in results {
            let share = result?;
            all.devices.extend(share.devices);
            all.replayed += share.replayed;
            all.snapshots += share.snapshots;
        }
        all.devices.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    } else {
        drop(journal);
        recover_per_stream(journal_path, devices, writer, snapshot_every, progress)
    }
}

/// A device's state while the one pass runs.
enum Folding {
    Turnstile(TurnstileState),
    Camera(CameraState),
}

struct Slot {
    id: DeviceId,
    kind: DeviceKind,
    stream: StreamName,
    state: Folding,
    version: u64,
    /// The stream's version when the pass began: events above it are not this boot's to fold.
    target: u64,
    replayed: u64,
    failed: Option<String>,
}

fn base<A: Aggregate>(journal: &JournalReader, stream: &StreamName) -> anyhow::Result<(A::State, u64, u64)> {
    recover_base::<A>(journal, stream)
}

fn recover_in_one_pass(
    journal: &JournalReader,
    devices: Vec<(DeviceId, DeviceKind)>,
    writer: &JournalWriter,
    snapshot_every: u32,
    progress: &RecoveryProgress,
) -> anyhow::Result<Recovery> {
    let mut slots = Vec::with_capacity(devices.len());
    for (id, kind) in devices {
        let stream = StreamName::device(&id);
        // A start that cannot be read (a carried-forward state of another shape) keeps this device down, not the
        // site: it is reported like a stream that does not fold.
        let based = match kind {
            DeviceKind::Turnstile => base::<Turnstile>(journal, &stream).map(|(s, v, t)| (Folding::Turnstile(s), v, t)),
            DeviceKind::Camera => base::<Camera>(journal, &stream).map(|(s, v, t)| (Folding::Camera(s), v, t)),
        };
        let (state, version, target, failed) = match based {
            Ok((state, version, target)) => (state, version, target, None),
            Err(error) => (
                Folding::Camera(CameraState::default()),
                0,
                0,
                Some(format!("stream {stream}: {error:#}")),
            ),
        };
        slots.push(Slot {
            id,
            kind,
            stream,
            state,
            version,
            target,
            replayed: 0,
            failed,
        });
    }
    // Where the pass starts (the first event any device still needs), and where each device is done, so the
    // progress counts devices as the pass goes by their last event.
    let conn = journal.connection();
    let position_of = |stream: &StreamName, version: u64| -> anyhow::Result<Option<i64>> {
        Ok(conn
            .prepare_cached("SELECT position FROM events WHERE stream_id = ?1 AND version = ?2")?
            .query_row(rusqlite::params![stream.as_str(), version as i64], |r| r.get(0))
            .optional()?)
    };
    let mut start = i64::MAX;
    let mut finishes = Vec::new();
    for slot in &slots {
        if slot.target > slot.version {
            if let Some(first) = position_of(&slot.stream, slot.version + 1)? {
                start = start.min(first);
            }
            finishes.push(position_of(&slot.stream, slot.target)?.unwrap_or(0));
        } else {
            progress.done.fetch_add(1, Relaxed);
        }
    }
    finishes.sort_unstable();
    let by_stream: HashMap<String, usize> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.target > s.version)
        .map(|(i, s)| (s.stream.as_str().to_owned(), i))
        .collect();
    let mut statement = conn.prepare(
        "SELECT position, stream_id, version, event_type, schema, format, payload FROM events
         WHERE position >= ?1 ORDER BY position",
    )?;
    let mut rows = statement.query([start])?;
    let mut finished = 0;
    while let Some(row) = rows.next()? {
        let position: i64 = row.get(0)?;
        while finished < finishes.len() && finishes[finished] < position {
            finished += 1;
            progress.done.fetch_add(1, Relaxed);
        }
        let Some(&index) = by_stream.get(row.get_ref(1)?.as_str()?) else {
            continue;
        };
        let slot = &mut slots[index];
        let version = row.get::<_, i64>(2)? as u64;
        if slot.failed.is_some() || version <= slot.version || version > slot.target {
            continue;
        }
        let event_type = row.get_ref(3)?.as_str()?;
        let decoded =
            codec::decode_event::<DeviceEvent>(event_type, row.get(4)?, row.get(5)?, row.get_ref(6)?.as_blob()?);
        match decoded {
            Ok(event) => {
                slot.state = match std::mem::replace(&mut slot.state, Folding::Camera(CameraState::default())) {
                    Folding::Turnstile(state) => Folding::Turnstile(Turnstile::evolve(state, &event)),
                    Folding::Camera(state) => Folding::Camera(Camera::evolve(state, &event)),
                };
                slot.version = version;
                slot.replayed += 1;
            }
            Err(error) => {
                slot.failed = Some(format!(
                    "event at position {position} of stream {}: {error}",
                    slot.stream
                ));
            }
        }
    }
    drop(rows);
    progress.done.fetch_add(finishes.len() - finished, Relaxed);

    let (mut replayed, mut snapshots) = (0, 0);
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        replayed += slot.replayed;
        let loaded = match slot.failed {
            Some(why) => {
                tracing::error!(device = %slot.id, error = %why, "cannot recover the device's state; it takes no messages");
                Loaded::Unrecoverable(why)
            }
            None => {
                let recent_msg_ids = recent_causations(journal, &slot.stream)?;
                let (snapshot, loaded) = match slot.state {
                    Folding::Turnstile(state) => {
                        let recovered = Recovered {
                            state,
                            version: slot.version,
                            recent_msg_ids,
                            replayed: slot.replayed,
                        };
                        (
                            recovered.snapshot_worth_saving::<Turnstile>(&slot.stream, snapshot_every),
                            Loaded::Turnstile(recovered),
                        )
                    }
                    Folding::Camera(state) => {
                        let recovered = Recovered {
                            state,
                            version: slot.version,
                            recent_msg_ids,
                            replayed: slot.replayed,
                        };
                        (
                            recovered.snapshot_worth_saving::<Camera>(&slot.stream, snapshot_every),
                            Loaded::Camera(recovered),
                        )
                    }
                };
                if let Some(snapshot) = snapshot {
                    save(writer, snapshot, &mut snapshots);
                }
                loaded
            }
        };
        out.push((slot.id, slot.kind, loaded));
    }
    Ok(Recovery {
        devices: out,
        replayed,
        snapshots,
    })
}

fn save(writer: &JournalWriter, snapshot: SnapshotRequest, saved: &mut usize) {
    writer.save_snapshot(snapshot);
    *saved += 1;
}

/// Recovers `devices` stream by stream on as many threads as there are cores, each with its own journal
/// connection, taking the next device as it finishes one (streams differ a lot in length).
fn recover_per_stream(
    journal_path: &Path,
    devices: Vec<(DeviceId, DeviceKind)>,
    writer: &JournalWriter,
    snapshot_every: u32,
    progress: &RecoveryProgress,
) -> anyhow::Result<Recovery> {
    let threads = threads_for(devices.len());
    let next = AtomicUsize::new(0);
    let (replayed, snapshots) = (AtomicU64::new(0), AtomicUsize::new(0));
    let results: Vec<anyhow::Result<Vec<(usize, Loaded)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, Loaded)>> {
                    let journal = JournalReader::open(journal_path)?;
                    let mut out = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Relaxed);
                        let Some((id, kind)) = devices.get(index) else {
                            return Ok(out);
                        };
                        let stream = StreamName::device(id);
                        let loaded = match kind {
                            DeviceKind::Turnstile => recover::<Turnstile>(&journal, &stream).map(|r| {
                                (
                                    r.snapshot_worth_saving::<Turnstile>(&stream, snapshot_every),
                                    r.replayed,
                                    Loaded::Turnstile(r),
                                )
                            }),
                            DeviceKind::Camera => recover::<Camera>(&journal, &stream).map(|r| {
                                (
                                    r.snapshot_worth_saving::<Camera>(&stream, snapshot_every),
                                    r.replayed,
                                    Loaded::Camera(r),
                                )
                            }),
                        };
                        let loaded = match loaded {
                            Ok((snapshot, count, loaded)) => {
                                replayed.fetch_add(count, Relaxed);
                                if let Some(snapshot) = snapshot {
                                    writer.save_snapshot(snapshot);
                                    snapshots.fetch_add(1, Relaxed);
                                }
                                loaded
                            }
                            Err(error) => {
                                let why = format!("{error:#}");
                                tracing::error!(device = %id, error = %why,
                                    "cannot recover the device's state; it takes no messages");
                                Loaded::Unrecoverable(why)
                            }
                        };
                        out.push((index, loaded));
                        progress.done.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a recovery thread panicked")))
            })
            .collect()
    });
    let mut by_index: Vec<Option<Loaded>> = (0..devices.len()).map(|_| None).collect();
    for result in results {
        for (index, loaded) in result? {
            by_index[index] = Some(loaded);
        }
    }
    let devices = devices
        .into_iter()
        .zip(by_index)
        .map(|((id, kind), loaded)| {
            let loaded = loaded.unwrap_or_else(|| Loaded::Unrecoverable("was not recovered".into()));
            (id, kind, loaded)
        })
        .collect();
    Ok(Recovery {
        devices,
        replayed: replayed.into_inner(),
        snapshots: snapshots.into_inner(),
    })
}
