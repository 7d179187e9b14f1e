//! From a received device message to a durable outcome: parse at the edge, execute on the device's actor, or keep
//! the message as a dead letter with its reason. Only when this returns `Ok` may the message be acknowledged.

use super::message::{ClockBounds, parse, payload_digest};
use crate::actors::{CommandError, CommandOutcome, Meta, Registry};
use crate::journal::{Actor, AppendError, Delivery, JournalWriter, NewDeadLetter, Position};
use jiff::Timestamp;

/// What became of a message; every variant is durable and may be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The device recorded `events` events (0 when the message changed nothing).
    Recorded { events: usize, position: Option<Position> },
    /// A redelivery of a message already recorded.
    Duplicate,
    /// Kept as dead letter `id` with `reason`.
    DeadLettered { id: i64, reason: String },
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
        }
    }
}

/// Turns messages into events or dead letters. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    registry: Registry,
    writer: JournalWriter,
    topic_prefix: String,
    bounds: ClockBounds,
}

impl Ingestor {
    pub fn new(
        registry: Registry,
        writer: JournalWriter,
        topic_prefix: impl Into<String>,
        bounds: ClockBounds,
    ) -> Self {
        Self {
            registry,
            writer,
            topic_prefix: topic_prefix.into(),
            bounds,
        }
    }

    /// Handles one message. `Err` means nothing durable happened (the journal could not write): the message
    /// must not be acknowledged, so the broker or gateway delivers it again.
    pub async fn ingest(&self, received: Received<'_>) -> Result<Ingested, AppendError> {
        let Received {
            topic,
            payload,
            received_at,
            actor,
            arrival,
        } = received;
        let message = match parse(&self.topic_prefix, topic, payload, received_at, self.bounds, |id| {
            self.registry.kind(id)
        }) {
            Ok(message) => message,
            Err(unacceptable) => {
                return self
                    .dead_letter(topic, payload, received_at, unacceptable.to_string(), actor)
                    .await;
            }
        };
        let command_name = message.command.name();
        let mut meta = Meta::by(actor.clone());
        match (message.msg_id, &arrival) {
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
        match self
            .registry
            .execute_device(message.device.as_str(), message.command, meta)
            .await
        {
            Ok(CommandOutcome::Recorded { events, position }) => Ok(Ingested::Recorded { events, position }),
            Ok(CommandOutcome::Duplicate) => Ok(Ingested::Duplicate),
            Err(CommandError::Rejected(rejection)) => {
                let reason = format!("device {} refused to {command_name}: {rejection}", message.device);
                self.dead_letter(topic, payload, received_at, reason, actor).await
            }
            Err(CommandError::UnknownDevice(device) | CommandError::UnknownStream(device)) => {
                let reason = format!("unknown device {device:?}: add it to config.toml and re-drive");
                self.dead_letter(topic, payload, received_at, reason, actor).await
            }
            Err(CommandError::Journal(error)) => Err(error),
            Err(CommandError::Unavailable) => Err(AppendError::Storage(format!(
                "device {} is not running (its state could not be recovered)",
                message.device
            ))),
        }
    }

    async fn dead_letter(
        &self,
        topic: &str,
        payload: &[u8],
        received_at: Timestamp,
        reason: String,
        actor: Actor,
    ) -> Result<Ingested, AppendError> {
        tracing::warn!(topic, %reason, %actor, "dead letter");
        let letter = NewDeadLetter {
            received_at,
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            reason: reason.clone(),
            actor: Some(actor),
        };
        let id = self.writer.dead_letter(letter).await?;
        Ok(Ingested::DeadLettered { id, reason })
    }
}
