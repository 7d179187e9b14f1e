//! From a received device message to a durable outcome: parse at the edge, execute on the device's actor, or keep
//! the message as a dead letter with its reason. Only when this returns `Ok` may the message be acknowledged.

use super::message::{ClockBounds, DeviceMessage, parse, payload_digest};
use crate::actors::{CommandError, CommandOutcome, Meta, Registry};
use crate::domain::{DeviceId, Rejection};
use crate::journal::{Actor, AppendError, Delivery, JournalWriter, NewDeadLetter, Position};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What became of a message; every variant may be acknowledged (all but `OverQuota` are durable, and that one is
/// counted: its sender is past its dead-letter quota).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The device recorded `events` events (0 when the message changed nothing).
    Recorded { events: usize, position: Option<Position> },
    /// A redelivery of a message already recorded.
    Duplicate,
    /// Kept as dead letter `id` with `reason`.
    DeadLettered { id: i64, reason: String },
    /// A dead letter past its sender's `dead_letter_quota` for this minute: acknowledged and counted, not stored.
    OverQuota { reason: String },
}

/// How a message arrived, which decides what makes a repeat of it a duplicate when it has no `msg_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// An MQTT PUBLISH: the session's client id (or broker), the packet id (0 for QoS 0) and the DUP flag.
    Mqtt { session: String, packet_id: u16, dup: bool },
    /// A dead letter being re-driven: the letter itself is the causation, so re-driving it twice (a crash
    /// between the ingest and the mark) records its events once.
    Redrive { dead_letter: i64 },
    /// Anything else (a gateway's Last Will): each arrival is a fact.
    Once,
}

/// One message as it was received.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// When it arrived (for a re-drive: when it first arrived); device time is judged against it.
    pub received_at: Timestamp,
    /// Who sent it (`gateway:CLIENT`, `broker:HOST`) or re-drove it.
    pub actor: Actor,
    pub arrival: Arrival,
    /// The signed-in gateway it came from, whose devices are the only ones it may report for (`None` when
    /// gateways do not sign in, for an external broker's messages and for re-drives).
    pub gateway: Option<std::sync::Arc<crate::gateways::Gateway>>,
}

impl<'a> Received<'a> {
    /// A message that arrived once, outside any protocol session that could repeat it.
    pub fn once(topic: &'a str, payload: &'a [u8], received_at: Timestamp, actor: Actor) -> Self {
        Self {
            topic,
            payload,
            received_at,
            actor,
            arrival: Arrival::Once,
            gateway: None,
        }
    }
}

/// What the edge's synchronous checks made of a message.
enum Admitted {
    /// Ready for its device.
    Message(DeviceMessage),
    /// A recognition of someone the vault has not seen yet: sealing them writes a row.
    Unsealed(DeviceMessage),
    /// To be kept as a dead letter, for this reason.
    Refused(String),
}

/// The command's metadata: who sent it, and what makes a repeat of it a duplicate (its `msg_id`; else, for a
/// re-drive, the letter; else, for a QoS 1 delivery, the packet it came in).
fn meta_of(msg_id: Option<String>, arrival: &Arrival, actor: Actor, topic: &str, payload: &[u8]) -> Meta {
    let mut meta = Meta::by(actor);
    match (msg_id, arrival) {
        (Some(msg_id), _) => meta.causation = Some(msg_id),
        (None, Arrival::Redrive { dead_letter }) => meta.causation = Some(format!("dead_letter:{dead_letter}")),
        (
            None,
            Arrival::Mqtt {
                session,
                packet_id,
                dup,
            },
        ) if *packet_id != 0 => {
            meta.delivery = Some(Delivery {
                key: format!("{session}:{packet_id}:{}", payload_digest(topic, payload)),
                redelivery: *dup,
            })
        }
        (None, _) => {}
    }
    meta
}

/// A message on its way to becoming a dead letter.
struct Letter<'a> {
    topic: &'a str,
    payload: &'a [u8],
    received_at: Timestamp,
    reason: String,
    actor: Actor,
    /// Counts against its sender's quota (everything but re-drives).
    quota: bool,
}

/// Turns messages into events or dead letters. Cheap to clone: every message's future holds one.
#[derive(Clone)]
pub struct Ingestor {
    parts: Arc<Parts>,
}

struct Parts {
    registry: Registry,
    writer: JournalWriter,
    topic_prefix: String,
    bounds: ClockBounds,
    quota: DeadLetterQuota,
    /// Seals a recognition's subject before it reaches a command, and the subject fields of dead letters.
    vault: crate::privacy::SubjectVault,
}

/// At most `per_minute` dead letters stored per sender (its actor) per minute, so a broken or hostile gateway
/// cannot fill the disk; the rest are acknowledged and counted.
#[derive(Clone)]
pub struct DeadLetterQuota {
    per_minute: u32,
    used: Arc<Mutex<HashMap<String, (i64, u32)>>>,
    /// Dead letters not stored since start (for `/metrics`).
    pub dropped: Arc<AtomicU64>,
}

impl DeadLetterQuota {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            used: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// Takes one from `sender`'s quota for the minute of `at`; `false` when it is used up.
    fn take(&self, sender: &str, at: Timestamp) -> bool {
        let minute = at.as_second().div_euclid(60);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        // Forget other minutes now and then, so a year of senders does not pile up.
        if used.len() > 10_000 {
            used.retain(|_, (m, _)| *m == minute);
        }
        let entry = used.entry(sender.to_owned()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// The most of a dead letter's payload that is kept; the rest is described by its size and SHA-256.
pub const DEAD_LETTER_PAYLOAD_KEPT: usize = 4096;

impl Ingestor {
    pub fn new(
        registry: Registry,
        writer: JournalWriter,
        topic_prefix: impl Into<String>,
        bounds: ClockBounds,
        quota: DeadLetterQuota,
        vault: crate::privacy::SubjectVault,
    ) -> Self {
        Self {
            parts: Arc::new(Parts {
                registry,
                writer,
                topic_prefix: topic_prefix.into(),
                bounds,
                quota,
                vault,
            }),
        }
    }

    /// Dead letters not stored because their sender was over its quota, since start.
    pub fn dead_letters_over_quota(&self) -> u64 {
        self.parts.quota.dropped.load(Ordering::Relaxed)
    }

    /// Handles one message. `Err` means nothing durable happened (the journal could not write): the message
    /// must not be acknowledged, so the broker or gateway delivers it again.
    pub async fn ingest(&self, received: Received<'_>) -> Result<Ingested, AppendError> {
        // Every message's future lives on the heap while it waits for its commit (thousands at once under load),
        // so only small values live across its awaits: the work before the device decides is synchronous
        // (`admit`, `execute`) and the rare futures are boxed. Kept whole, the future was 2.2 KiB, past glibc's
        // per-thread cache; with the actix request future beside it, allocating and moving them was about 40 %
        // of the ingesting thread's samples.
        let Received {
            topic,
            payload,
            received_at,
            actor,
            arrival,
            gateway,
        } = received;
        let quota = !matches!(arrival, Arrival::Redrive { .. });
        // A re-driven letter's subjects were sealed when it was kept: the vault gives them back (from memory).
        let unsealed;
        let payload = if quota {
            payload
        } else {
            unsealed = crate::privacy::dead_letters::unseal_payload_subjects(payload, &self.parts.vault);
            unsealed.as_slice()
        };
        let letter = |reason: String, actor: Actor| Letter {
            topic,
            payload,
            received_at,
            reason,
            actor,
            quota,
        };
        let message = match self.admit(topic, payload, received_at, gateway.as_deref()) {
            Admitted::Message(message) => message,
            Admitted::Unsealed(message) => Box::pin(self.seal_off_executor(message)).await?,
            Admitted::Refused(reason) => return Box::pin(self.dead_letter(letter(reason, actor))).await,
        };
        let (device, command_name, executed) = self.execute(message, &arrival, actor.clone(), topic, payload);
        let outcome = executed.await;
        let reason = match outcome {
            Ok(CommandOutcome::Recorded { events, position }) => return Ok(Ingested::Recorded { events, position }),
            Ok(CommandOutcome::Duplicate) => return Ok(Ingested::Duplicate),
            Err(CommandError::Rejected(rejection)) => format!("device {device} refused to {command_name}: {rejection}"),
            Err(CommandError::UnknownDevice(device) | CommandError::UnknownStream(device)) => {
                format!("unknown device {device:?}: add it to config.toml and re-drive")
            }
            Err(CommandError::Journal(error)) => return Err(error),
            Err(CommandError::Unavailable) => {
                return Err(AppendError::Storage(format!(
                    "device {device} is not running (its state could not be recovered)"
                )));
            }
        };
        Box::pin(self.dead_letter(letter(reason, actor))).await
    }

    /// Sends the message's command to its device (now, so a session's messages keep their order); the future
    /// resolves once the device's events are durable. Synchronous, so the message itself is not part of the
    /// ingest future.
    fn execute(
        &self,
        message: DeviceMessage,
        arrival: &Arrival,
        actor: Actor,
        topic: &str,
        payload: &[u8],
    ) -> (
        DeviceId,
        &'static str,
        impl Future<Output = Result<CommandOutcome, CommandError<Rejection>>> + use<>,
    ) {
        let command_name = message.command.name();
        let meta = meta_of(message.msg_id, arrival, actor, topic, payload);
        let executed = self
            .parts
            .registry
            .execute_device(message.device.as_str(), message.command, meta);
        (message.device, command_name, executed)
    }

    /// The edge's synchronous checks: the message parses, its sender may report for its device, and a recognition's
    /// subject is sealed from memory when the vault knows them.
    fn admit(
        &self,
        topic: &str,
        payload: &[u8],
        received_at: Timestamp,
        gateway: Option<&crate::gateways::Gateway>,
    ) -> Admitted {
        let message = match parse(
            &self.parts.topic_prefix,
            topic,
            payload,
            received_at,
            self.parts.bounds,
            |id| self.parts.registry.kind(id),
        ) {
            Ok(message) => message,
            Err(unacceptable) => return Admitted::Refused(unacceptable.to_string()),
        };
        if let Some(gateway) = gateway.filter(|g| !g.may_report_for(message.device.as_str())) {
            return Admitted::Refused(format!(
                "gateway {} may not report for device {} (its devices: {})",
                gateway.name,
                message.device,
                gateway
                    .devices
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Sealed only once the sender may report for the device: a stranger cannot add people to the vault.
        let sealed = match &message.identified {
            None => return Admitted::Message(message),
            Some(subject) => match self.parts.vault.seal_cached(subject) {
                Some(sealed) => sealed,
                None => return Admitted::Unsealed(message),
            },
        };
        match message.seal(|_| Ok::<_, std::convert::Infallible>(sealed)) {
            Ok(message) => Admitted::Message(message),
            Err(never) => match never {},
        }
    }

    /// Seals the subject of someone seen for the first time: their vault row is written off the executor.
    async fn seal_off_executor(&self, message: DeviceMessage) -> Result<DeviceMessage, AppendError> {
        let sealed = match &message.identified {
            None => None,
            Some(subject) => {
                let (vault, subject) = (self.parts.vault.clone(), subject.clone());
                Some(
                    tokio::task::spawn_blocking(move || vault.seal(&subject))
                        .await
                        .map_err(|e| AppendError::Storage(format!("cannot seal the subject: {e}")))?
                        .map_err(|e| AppendError::Storage(format!("cannot seal the subject: {e:#}")))?,
                )
            }
        };
        message.seal(|_| sealed.ok_or_else(|| AppendError::Storage("a recognition lost its subject".into())))
    }

    async fn dead_letter(&self, letter: Letter<'_>) -> Result<Ingested, AppendError> {
        let Letter {
            topic,
            payload,
            received_at,
            mut reason,
            actor,
            quota,
        } = letter;
        if quota && !self.parts.quota.take(actor.as_str(), received_at) {
            tracing::debug!(topic, %reason, %actor, "dead letter over its sender's quota: counted, not stored");
            return Ok(Ingested::OverQuota { reason });
        }
        tracing::warn!(topic, %reason, %actor, "dead letter");
        // Subject fields are sealed before the letter is kept: from memory when the vault knows everyone named,
        // otherwise off the executor (a person seen for the first time gets a row).
        let cached =
            crate::privacy::dead_letters::seal_payload_subjects(payload, |s| self.parts.vault.seal_cached(s).ok_or(()));
        let sealed = match cached {
            Ok(sealed) => sealed,
            Err(()) => {
                let (vault, raw) = (self.parts.vault.clone(), payload.to_vec());
                tokio::task::spawn_blocking(move || {
                    crate::privacy::dead_letters::seal_payload_subjects(&raw, |s| vault.seal(s))
                })
                .await
                .map_err(|e| AppendError::Storage(format!("cannot seal a dead letter's subject: {e}")))?
                .map_err(|e| AppendError::Storage(format!("cannot seal a dead letter's subject: {e:#}")))?
            }
        };
        let payload = sealed.as_slice();
        let kept = if payload.len() > DEAD_LETTER_PAYLOAD_KEPT {
            use sha2::Digest;
            let digest: String = sha2::Sha256::digest(payload)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            reason.push_str(&format!(
                " (payload of {} bytes, SHA-256 {digest}; its first {DEAD_LETTER_PAYLOAD_KEPT} bytes are kept)",
                payload.len()
            ));
            &payload[..DEAD_LETTER_PAYLOAD_KEPT]
        } else {
            payload
        };
        let letter = NewDeadLetter {
            received_at,
            topic: topic.to_owned(),
            payload: kept.to_vec(),
            reason: reason.clone(),
            actor: Some(actor),
        };
        let id = self.parts.writer.dead_letter(letter).await?;
        Ok(Ingested::DeadLettered { id, reason })
    }
}
