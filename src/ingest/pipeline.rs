//! From a received MQTT message to a durable outcome: parse at the edge, execute on the device's actor, or keep
//! the message as a dead letter with its reason. Only when this returns `Ok` may the message be acknowledged.

use super::message::parse;
use crate::actors::{CommandError, CommandOutcome, DeviceRegistry};
use crate::journal::{AppendError, JournalWriter, NewDeadLetter, Position};
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

/// Turns messages into events or dead letters. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    registry: DeviceRegistry,
    writer: JournalWriter,
    topic_prefix: String,
}

impl Ingestor {
    pub fn new(registry: DeviceRegistry, writer: JournalWriter, topic_prefix: impl Into<String>) -> Self {
        Self {
            registry,
            writer,
            topic_prefix: topic_prefix.into(),
        }
    }

    /// Handles one message. `Err` means nothing durable happened (the journal could not write): the message
    /// must not be acknowledged, so the broker or gateway delivers it again.
    pub async fn ingest(&self, topic: &str, payload: &[u8], received_at: Timestamp) -> Result<Ingested, AppendError> {
        let message = match parse(&self.topic_prefix, topic, payload, received_at, |id| {
            self.registry.kind(id)
        }) {
            Ok(message) => message,
            Err(unacceptable) => {
                return self
                    .dead_letter(topic, payload, received_at, unacceptable.to_string())
                    .await;
            }
        };
        let command_name = message.command.name();
        match self
            .registry
            .execute(message.device.as_str(), message.command, message.msg_id)
            .await
        {
            Ok(CommandOutcome::Recorded { events, position }) => Ok(Ingested::Recorded { events, position }),
            Ok(CommandOutcome::Duplicate) => Ok(Ingested::Duplicate),
            Err(CommandError::Rejected(rejection)) => {
                let reason = format!("device {} refused to {command_name}: {rejection}", message.device);
                self.dead_letter(topic, payload, received_at, reason).await
            }
            Err(CommandError::UnknownDevice(device)) => {
                let reason = format!("unknown device {device:?}: add it to config.toml and re-drive");
                self.dead_letter(topic, payload, received_at, reason).await
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
    ) -> Result<Ingested, AppendError> {
        tracing::warn!(topic, %reason, "dead letter");
        let letter = NewDeadLetter {
            received_at,
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            reason: reason.clone(),
        };
        let id = self.writer.dead_letter(letter).await?;
        Ok(Ingested::DeadLettered { id, reason })
    }
}
