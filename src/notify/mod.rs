//! Alarm notifications that reach people: webhooks, e-mail and retained MQTT state, at least once.
//!
//! A follower of the journal (`follower`) turns alarm events into notifications for the channels of
//! `[[notify.*]]` (filters, cooldown, quiet hours, escalation) and writes them to an outbox in `journal.db`
//! (`outbox`) with its checkpoint in the same transaction; one dispatcher per channel (`dispatch`) sends them,
//! retrying with backoff, and records every attempt. A crash or a receiver outage delays a notification but
//! never loses it, and a notification sent again carries the same id (`webhook-id`, Message-ID), so receivers can
//! drop the repeat. `message` words them, `webhook`, `email` and `mqtt` send them.

mod dispatch;
mod email;
mod follower;
pub mod message;
pub mod mqtt;
pub mod outbox;
pub mod webhook;

pub use dispatch::Outcome;
pub use mqtt::AlarmTopics;

use crate::config::Config;
use crate::journal::{JournalReader, Position};
use crate::projection::runner::ProjectorHandle;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The follower's name on `/admin/projections`, `/healthz` and `/metrics`.
pub const FOLLOWER: &str = "notifier";
/// How often escalations and deferred notifications whose cooldown ended are looked for.
const ESCALATION_LOOK: Duration = Duration::from_secs(1);
/// How soon a follower whose batch failed tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why each channel cannot deliver right now, if it cannot (`/healthz` says degraded).
#[derive(Clone, Default)]
pub struct ChannelHealth(Arc<Mutex<BTreeMap<String, Option<String>>>>);

impl ChannelHealth {
    fn set(&self, channel: &str, problem: Option<String>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(channel.to_owned(), problem);
    }

    /// Channels that cannot deliver, with why.
    pub fn problems(&self) -> Vec<(String, String)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(channel, problem)| Some((channel.clone(), problem.clone()?)))
            .collect()
    }
}

/// Wakes a channel's dispatcher (new notifications, a re-send, a channel switched on again).
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<BTreeMap<String, Arc<Notify>>>>);

impl Wakers {
    fn of(&self, channel: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(channel.to_owned()).or_default().clone()
    }

    pub fn wake(&self, channel: &str) {
        self.of(channel).notify_one();
    }

    fn wake_all(&self) {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for waker in map.values() {
            waker.notify_one();
        }
    }
}

/// The running notifier, as the rest of the program sees it.
#[derive(Clone)]
pub struct Notifier {
    pub follower: ProjectorHandle,
    pub health: ChannelHealth,
    pub wakers: Wakers,
    pub alarm_topics: AlarmTopics,
}

/// Starts the follower and one dispatcher per channel. Must run inside a tokio runtime (the actix system's).
pub async fn start(
    config: &Config,
    journal_path: PathBuf,
    committed: watch::Receiver<Position>,
    alarm_topics: AlarmTopics,
    vault: crate::privacy::SubjectVault,
) -> anyhow::Result<Notifier> {
    let synchronous = config.storage.synchronous;
    let channels = config.notify.clone();
    let journal = journal_path.clone();
    let restore_channels: Vec<String> = channels
        .iter()
        .filter(|c| matches!(c.target, crate::config::ChannelTarget::Mqtt))
        .map(|c| c.name.clone())
        .collect();
    let (start, retained) = tokio::task::spawn_blocking(move || {
        let mut conn = crate::db::open(&journal, synchronous)?;
        let reader = JournalReader::open(&journal)?;
        let start = follower::Follower::start(&mut conn, &reader)?;
        let retained = mqtt::delivered_states(&conn, &restore_channels)?;
        anyhow::Ok((start, retained))
    })
    .await??;
    alarm_topics.restore(
        retained
            .into_iter()
            .map(|(alarm, payload)| {
                let text = message::revealed(&String::from_utf8_lossy(&payload), &vault);
                (alarm, bytes::Bytes::from(text))
            })
            .collect(),
    );
    let (position_tx, position) = watch::channel(start);
    let handle = ProjectorHandle {
        name: FOLLOWER,
        position,
        last_error: Arc::new(Mutex::new(None)),
        ticked: None,
    };
    let notifier = Notifier {
        follower: handle.clone(),
        health: ChannelHealth::default(),
        wakers: Wakers::default(),
        alarm_topics: alarm_topics.clone(),
    };
    for channel in &channels {
        let dispatcher = dispatch::Dispatcher {
            channel: channel.name.clone(),
            sender: dispatch::Sender::new(channel, &alarm_topics)?,
            journal_path: journal_path.clone(),
            synchronous,
            wakers: notifier.wakers.clone(),
            health: notifier.health.clone(),
            vault: vault.clone(),
        };
        notifier.health.set(&channel.name, None);
        tokio::spawn(dispatcher.run());
    }
    let follower = follower::Follower {
        channels,
        site: config.site.name.clone(),
        timezone: config.site.timezone.clone(),
        repeat: config.alarms.repeat,
        alarms: Default::default(),
        read_up_to: start,
        last_checkpoint_write: std::time::Instant::now(),
    };
    tokio::spawn(follow(
        follower,
        journal_path,
        synchronous,
        committed,
        position_tx,
        handle.last_error.clone(),
        notifier.wakers.clone(),
    ));
    Ok(notifier)
}

/// The follower's loop: catch up whenever the journal commits, escalate every second.
async fn follow(
    follower: follower::Follower,
    journal_path: PathBuf,
    synchronous: crate::config::Synchronous,
    mut committed: watch::Receiver<Position>,
    position: watch::Sender<Position>,
    last_error: Arc<Mutex<Option<String>>>,
    wakers: Wakers,
) {
    let state = Arc::new(Mutex::new((follower, None::<(rusqlite::Connection, JournalReader)>)));
    let mut last_escalation_look = tokio::time::Instant::now();
    loop {
        let head = *committed.borrow_and_update();
        let escalate = last_escalation_look.elapsed() >= ESCALATION_LOOK;
        if escalate {
            last_escalation_look = tokio::time::Instant::now();
        }
        let (shared, journal) = (state.clone(), journal_path.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            let (follower, connections) = &mut *guard;
            let (conn, reader) = match connections {
                Some(open) => open,
                None => connections.insert((crate::db::open(&journal, synchronous)?, JournalReader::open(&journal)?)),
            };
            let caught_up = follower.catch_up(conn, reader, head);
            let caught_up = match caught_up {
                Ok(caught_up) => caught_up,
                Err(error) => {
                    *connections = None;
                    return Err(error);
                }
            };
            let escalated = if escalate {
                follower.escalate(conn, jiff::Timestamp::now())?
            } else {
                0
            };
            anyhow::Ok((caught_up, escalated))
        })
        .await;
        let set_error = |error: Option<String>| {
            let mut last = last_error.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(error) = &error
                && last.as_deref() != Some(error.as_str())
            {
                tracing::error!(follower = FOLLOWER, %error, "the notifier is stuck; retrying");
            }
            *last = error;
        };
        let wait = match outcome {
            Ok(Ok((caught_up, escalated))) => {
                set_error(None);
                position.send_if_modified(|p| {
                    let moved = *p != caught_up.position;
                    *p = caught_up.position;
                    moved
                });
                if caught_up.written + escalated > 0 {
                    wakers.wake_all();
                }
                if caught_up.more {
                    continue;
                }
                ESCALATION_LOOK
            }
            Ok(Err(error)) => {
                set_error(Some(format!("{error:#}")));
                RETRY_AFTER
            }
            Err(error) => {
                set_error(Some(error.to_string()));
                RETRY_AFTER
            }
        };
        tokio::select! {
            changed = committed.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
