//! One dispatcher per channel: sends the channel's due notifications from the outbox, oldest first, and records
//! each attempt. A failure is retried with exponential backoff and jitter for up to 24 hours from when the
//! notification was made; a receiver that answers 410 Gone switches the channel off until someone switches it
//! on again on `/admin/notifications`. Woken when the follower writes notifications, when a retry falls due, or
//! when a person re-sends one or re-enables the channel.

use super::email::Mailer;
use super::mqtt::AlarmTopics;
use super::outbox::{self, Due, millis};
use super::{ChannelHealth, Wakers};
use crate::config::{ChannelConfig, ChannelTarget};
use rand::Rng;
use std::path::PathBuf;
use std::time::Duration;

/// Notifications sent per read of the outbox.
const BATCH: usize = 50;
/// The first retry comes after about this long; each further one after twice as long as the last.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Retries never wait longer than this.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// A notification not delivered this long after it was made is given up (failed; it can be re-sent by hand).
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Even with nothing due, the dispatcher looks again this often (a notification made by another process).
const IDLE_LOOK: Duration = Duration::from_secs(5);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not delivered; try again later.
    Retry(String),
    /// The receiver wants no more (410 Gone): the channel is switched off.
    Gone(String),
}

/// How a channel sends.
pub(super) enum Sender {
    Webhook {
        client: reqwest::Client,
        url: String,
        key: Vec<u8>,
    },
    Email(Box<Mailer>),
    Mqtt(AlarmTopics),
}

impl Sender {
    pub fn new(channel: &ChannelConfig, mqtt: &AlarmTopics) -> anyhow::Result<Sender> {
        Ok(match &channel.target {
            ChannelTarget::Webhook { url, key } => Sender::Webhook {
                client: super::webhook::client()?,
                url: url.clone(),
                key: key.expose().clone(),
            },
            ChannelTarget::Email(target) => Sender::Email(Box::new(Mailer::new(target)?)),
            ChannelTarget::Mqtt => Sender::Mqtt(mqtt.clone()),
        })
    }

    /// Sends the document with its people revealed as they read now: the outbox keeps pseudonyms only, so a
    /// notification sent after someone is forgotten says "forgotten".
    async fn send(&self, due: &Due, vault: &crate::privacy::SubjectVault) -> Outcome {
        let body = super::message::revealed(&due.body, vault);
        match self {
            Sender::Webhook { client, url, key } => super::webhook::deliver(client, url, key, &due.id, &body).await,
            Sender::Email(mailer) => mailer.deliver(&due.id, &body).await,
            Sender::Mqtt(topics) => topics.publish(&due.alarm, &due.alarm_state, &body).await,
        }
    }

    /// Whether a failed notification holds back the ones after it: retained MQTT state must arrive in order, or
    /// an older state would overwrite a newer one.
    fn in_order(&self) -> bool {
        matches!(self, Sender::Mqtt(_))
    }
}

pub(super) struct Dispatcher {
    pub channel: String,
    pub sender: Sender,
    pub journal_path: PathBuf,
    pub synchronous: crate::config::Synchronous,
    pub wakers: Wakers,
    pub health: ChannelHealth,
    pub vault: crate::privacy::SubjectVault,
}

/// What the outbox says the dispatcher should do.
enum Work {
    Off(String),
    Send(Vec<Due>),
    Idle(Option<i64>),
}

impl Dispatcher {
    pub async fn run(self) {
        let wake = self.wakers.of(&self.channel);
        let mut connection = None;
        loop {
            let now = millis(jiff::Timestamp::now());
            let channel = self.channel.clone();
            let (journal, synchronous) = (self.journal_path.clone(), self.synchronous);
            let kept = connection.take();
            let looked = tokio::task::spawn_blocking(move || {
                let conn = reuse_or_open(kept, &journal, synchronous)?;
                let work = match outbox::disabled(&conn, &channel)? {
                    Some(why) => Work::Off(why),
                    None => match outbox::due(&conn, &channel, now, BATCH)? {
                        due if due.is_empty() => Work::Idle(outbox::next_due(&conn, &channel)?),
                        due => Work::Send(due),
                    },
                };
                anyhow::Ok((conn, work))
            })
            .await;
            let wait = match looked {
                Ok(Ok((conn, work))) => {
                    connection = Some(conn);
                    match work {
                        Work::Off(why) => {
                            self.health.set(&self.channel, Some(format!("switched off: {why}")));
                            IDLE_LOOK
                        }
                        Work::Send(due) => {
                            self.send_all(due, &mut connection).await;
                            Duration::ZERO
                        }
                        Work::Idle(next) => {
                            let now = millis(jiff::Timestamp::now());
                            next.map_or(IDLE_LOOK, |at| Duration::from_millis((at - now).max(0) as u64))
                                .min(IDLE_LOOK)
                        }
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(channel = %self.channel, error = %format!("{error:#}"), "cannot read the notification outbox");
                    IDLE_LOOK
                }
                Err(error) => {
                    tracing::error!(channel = %self.channel, %error, "the notification outbox read did not finish");
                    IDLE_LOOK
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Sends each in turn and records what came of it.
    async fn send_all(&self, due: Vec<Due>, connection: &mut Option<rusqlite::Connection>) {
        for notification in due {
            let outcome = self.sender.send(&notification, &self.vault).await;
            let now = millis(jiff::Timestamp::now());
            let (id, channel) = (notification.id.clone(), self.channel.clone());
            let retry_at = match &outcome {
                Outcome::Retry(_) => retry_at(now, notification.created_at, notification.attempts + 1),
                _ => None,
            };
            match &outcome {
                Outcome::Delivered => self.health.set(&self.channel, None),
                Outcome::Retry(why) => {
                    tracing::warn!(channel = %self.channel, id = %id, attempt = notification.attempts + 1, error = %why, "notification not delivered");
                    self.health.set(&self.channel, Some(format!("cannot deliver: {why}")));
                }
                Outcome::Gone(why) => {
                    tracing::warn!(channel = %self.channel, id = %id, error = %why, "the receiver is gone; channel switched off");
                    self.health.set(&self.channel, Some(format!("switched off: {why}")));
                }
            }
            let record = outcome.clone();
            let kept = connection.take();
            let (journal, synchronous) = (self.journal_path.clone(), self.synchronous);
            let recorded = tokio::task::spawn_blocking(move || {
                let conn = reuse_or_open(kept, &journal, synchronous)?;
                match &record {
                    Outcome::Delivered => outbox::delivered(&conn, &id, now)?,
                    Outcome::Retry(why) => outbox::attempt_failed(&conn, &id, now, why, retry_at)?,
                    Outcome::Gone(why) => {
                        // Still pending: it goes once the channel is switched on again.
                        outbox::attempt_failed(&conn, &id, now, why, Some(now))?;
                        outbox::disable(&conn, &channel, now, why)?;
                    }
                }
                anyhow::Ok(conn)
            })
            .await;
            match recorded {
                Ok(Ok(conn)) => *connection = Some(conn),
                Ok(Err(error)) => {
                    // Not recorded: it is sent again (same id), which the receiver may drop.
                    tracing::error!(channel = %self.channel, error = %format!("{error:#}"), "cannot record a notification attempt");
                    return;
                }
                Err(error) => {
                    tracing::error!(channel = %self.channel, %error, "recording a notification attempt did not finish");
                    return;
                }
            }
            match outcome {
                Outcome::Delivered => {}
                Outcome::Gone(_) => return,
                Outcome::Retry(_) if self.sender.in_order() => return,
                Outcome::Retry(_) => {}
            }
        }
    }
}

/// The dispatcher's kept connection to journal.db, or a fresh one after a failure dropped it.
fn reuse_or_open(
    kept: Option<rusqlite::Connection>,
    journal: &std::path::Path,
    synchronous: crate::config::Synchronous,
) -> anyhow::Result<rusqlite::Connection> {
    match kept {
        Some(conn) => Ok(conn),
        None => crate::db::open(journal, synchronous),
    }
}

/// When to try again after failed attempt number `attempt` (1 for the first): about twice as long each time,
/// with the wait's upper half random so that many sites do not retry in step; `None` once that would be past 24
/// hours from when the notification was made.
fn retry_at(now: i64, created_at: i64, attempt: u32) -> Option<i64> {
    let doubled = FIRST_RETRY.as_millis() as u64 * 2u64.saturating_pow(attempt.saturating_sub(1).min(30));
    let wait = doubled.min(LONGEST_WAIT.as_millis() as u64);
    let wait = wait / 2 + rand::rng().random_range(0..=wait / 2);
    let at = now + wait as i64;
    (at <= created_at + GIVE_UP_AFTER.as_millis() as i64).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_stop_after_a_day() {
        let now = 1_000_000_000;
        for attempt in 1..=5u32 {
            let full = 1000i64 << (attempt - 1);
            let at = retry_at(now, now, attempt).unwrap();
            assert!(
                (now + full / 2..=now + full).contains(&at),
                "attempt {attempt}: {}",
                at - now
            );
        }
        let hour = 3_600_000;
        let at = retry_at(now, now, 40).unwrap();
        assert!((now + hour / 2..=now + hour).contains(&at));
        assert_eq!(retry_at(now, now - 24 * hour + 10, 3), None);
    }
}
