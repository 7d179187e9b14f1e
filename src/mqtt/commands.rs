//! The command board: the desired state of every turnstile, as Gatehouse tells gateways on
//! `{prefix}/turnstile/{id}/command` (SPEC §3: retained, QoS 1, `{"version","locked","reason","at"}`). It is a
//! copy in memory of the `device_commands` read table, kept up to date by following that projector's checkpoint,
//! so both the embedded endpoint (which delivers it to subscribed gateways) and the external-broker publisher
//! read one source. The version only grows, so a gateway that sees a command twice, or an older one late,
//! knows which to apply.

use crate::domain::DeviceId;
use crate::journal::Position;
use crate::projection::runner::ProjectorHandle;
use bytes::Bytes;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// One turnstile's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    pub device: DeviceId,
    pub version: u64,
    pub locked: bool,
    pub reason: String,
    pub at: jiff::Timestamp,
    /// False once the turnstile is decommissioned: its retained command is cleared (an empty payload).
    pub active: bool,
    /// The journal position of the event that set it.
    pub position: Position,
}

impl DesiredState {
    /// The retained message's payload; empty (which clears a retained message) for a decommissioned turnstile.
    pub fn payload(&self) -> Bytes {
        if !self.active {
            return Bytes::new();
        }
        let json = serde_json::json!({
            "version": self.version,
            "locked": self.locked,
            "reason": self.reason,
            "at": self.at.to_string(),
        });
        Bytes::from(json.to_string())
    }
}

/// What the board holds; cheap to clone.
#[derive(Clone)]
pub struct CommandBoard {
    prefix: Arc<str>,
    /// The turnstiles `config.toml` lists: the command topics gateways may subscribe to, even before the
    /// read model has caught up with a new one's commissioning (its state is sent as soon as it has).
    turnstiles: Arc<HashSet<DeviceId>>,
    /// False until the read model has caught up with the journal as it was at boot: until then it may hold a
    /// state older than one a gateway already applied (a lock-out recorded just before a restart), and sending
    /// that could open a locked turnstile for a moment. Nothing is handed out before.
    ready: Arc<AtomicBool>,
    states: Arc<RwLock<HashMap<DeviceId, DesiredState>>>,
    /// The highest position loaded: changes wake whoever waits for new desired states. The board owns the
    /// sender, so the channel never closes while anyone can still watch it.
    loaded: Arc<watch::Sender<Position>>,
}

impl CommandBoard {
    /// The command topic of a turnstile.
    pub fn topic(&self, device: &DeviceId) -> String {
        format!("{}/turnstile/{device}/command", self.prefix)
    }

    /// The configured turnstile whose command topic `filter` is, if it is exactly one Gatehouse publishes (no
    /// wildcards: a gateway subscribes to its own devices, not to the site's).
    pub fn device_of_topic(&self, filter: &str) -> Option<DeviceId> {
        let rest = filter.strip_prefix(&*self.prefix)?.strip_prefix("/turnstile/")?;
        let id = rest.strip_suffix("/command")?;
        let id = DeviceId::parse(id).ok()?;
        self.turnstiles.contains(&id).then_some(id)
    }

    /// Whether a topic is one of the command topics Gatehouse publishes (so never a device message).
    pub fn is_own_topic(prefix: &str, topic: &str) -> bool {
        topic
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| {
                let parts: Vec<&str> = rest.split('/').collect();
                matches!(parts.as_slice(), [_, _, "command"] | ["alarms", ..])
            })
    }

    pub fn get(&self, device: &DeviceId) -> Option<DesiredState> {
        if !self.is_ready() {
            return None;
        }
        self.read().get(device).cloned()
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Every desired state, decommissioned ones included (their retained command must be cleared).
    pub fn all(&self) -> Vec<DesiredState> {
        if !self.is_ready() {
            return Vec::new();
        }
        let mut all: Vec<DesiredState> = self.read().values().cloned().collect();
        all.sort_by_key(|s| s.position);
        all
    }

    /// The states set after `position`, oldest first.
    pub fn changed_after(&self, position: Position) -> Vec<DesiredState> {
        if !self.is_ready() {
            return Vec::new();
        }
        let mut changed: Vec<DesiredState> = self
            .read()
            .values()
            .filter(|s| s.position > position)
            .cloned()
            .collect();
        changed.sort_by_key(|s| s.position);
        changed
    }

    /// Changes when new desired states are loaded; the value is the highest position loaded.
    pub fn watch(&self) -> watch::Receiver<Position> {
        self.loaded.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<DeviceId, DesiredState>> {
        // A poisoned lock only means a panic elsewhere while writing a whole entry: the map is still usable.
        self.states.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A board that holds `states` and never changes, for the active ones' turnstiles (tests).
    pub fn fixed(prefix: &str, states: Vec<DesiredState>) -> CommandBoard {
        let position = states.iter().map(|s| s.position).max().unwrap_or(0);
        CommandBoard {
            prefix: prefix.into(),
            turnstiles: Arc::new(states.iter().filter(|s| s.active).map(|s| s.device.clone()).collect()),
            ready: Arc::new(AtomicBool::new(true)),
            states: Arc::new(RwLock::new(states.into_iter().map(|s| (s.device.clone(), s)).collect())),
            loaded: Arc::new(watch::channel(position).0),
        }
    }
}

/// Rows of `device_commands` after `position`.
fn load_after(views: &Connection, position: Position) -> rusqlite::Result<Vec<DesiredState>> {
    let mut statement = views.prepare_cached(
        "SELECT device_id, version, locked, reason, at, active, position FROM device_commands
         WHERE position > ?1 ORDER BY position",
    )?;
    let rows = statement.query_map([position as i64], |r| {
        let id: String = r.get(0)?;
        Ok((
            id,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, bool>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, version, locked, reason, at, active, position) = row?;
        // A row the read model holds came from an event the journal accepted; one that does not parse is
        // skipped with a log line rather than taking every other turnstile's command down with it.
        let (Ok(device), Ok(at)) = (DeviceId::parse(&id), jiff::Timestamp::from_microsecond(at)) else {
            tracing::error!(device = %id, "device_commands row does not parse; its command is not published");
            continue;
        };
        out.push(DesiredState {
            device,
            version: version as u64,
            locked,
            reason,
            at,
            active,
            position: position as Position,
        });
    }
    Ok(out)
}

/// Loads the board from `views.db` and keeps it up to date by following the `device_commands` projector: each
/// time its checkpoint moves, the rows it changed are read. It hands states out once the projector has reached
/// `boot_head` (the journal head when the core started). Must run inside an actix system.
pub async fn follow(
    views_path: PathBuf,
    projector: ProjectorHandle,
    prefix: &str,
    turnstiles: HashSet<DeviceId>,
    boot_head: Position,
) -> anyhow::Result<CommandBoard> {
    let path = views_path.clone();
    let (initial, views) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let views = crate::db::open_readonly(&path)?;
        Ok((load_after(&views, 0)?, views))
    })
    .await??;
    let position = initial.iter().map(|s| s.position).max().unwrap_or(0);
    let board = CommandBoard {
        prefix: prefix.into(),
        turnstiles: Arc::new(turnstiles),
        ready: Arc::new(AtomicBool::new(false)),
        states: Arc::new(RwLock::new(
            initial.into_iter().map(|s| (s.device.clone(), s)).collect(),
        )),
        loaded: Arc::new(watch::channel(position).0),
    };
    let (states, loaded_tx, ready) = (board.states.clone(), board.loaded.clone(), board.ready.clone());
    let mut checkpoint = projector.position.clone();
    actix_web::rt::spawn(async move {
        let views = Arc::new(std::sync::Mutex::new(views));
        let mut last = position;
        let mut last_error: Option<String> = None;
        let mut first = true;
        loop {
            if !first && checkpoint.changed().await.is_err() {
                return;
            }
            first = false;
            let reached = *checkpoint.borrow_and_update();
            let views = views.clone();
            let read = tokio::task::spawn_blocking(move || {
                let views = views.lock().unwrap_or_else(|p| p.into_inner());
                load_after(&views, last)
            })
            .await;
            match read {
                Ok(Ok(changed)) => {
                    last_error = None;
                    let became_ready = !ready.load(Ordering::Acquire) && reached >= boot_head;
                    if changed.is_empty() && !became_ready {
                        continue;
                    }
                    let mut map = states.write().unwrap_or_else(|p| p.into_inner());
                    for state in changed {
                        last = last.max(state.position);
                        map.insert(state.device.clone(), state);
                    }
                    drop(map);
                    if became_ready {
                        ready.store(true, Ordering::Release);
                        tracing::debug!(position = reached, "command board caught up; delivering commands");
                    }
                    // Always notifies, even with the same position: delivery looks again.
                    loaded_tx.send_replace(last);
                }
                // views.db busy or failing: the next checkpoint move tries again (the rows stay to be read).
                Ok(Err(error)) => {
                    let text = error.to_string();
                    if last_error.as_ref() != Some(&text) {
                        tracing::error!(error = %text, "cannot read device_commands; retrying");
                    }
                    last_error = Some(text);
                }
                Err(error) => tracing::error!(%error, "device_commands reader stopped"),
            }
        }
    });
    Ok(board)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, version: u64, locked: bool, active: bool) -> DesiredState {
        DesiredState {
            device: DeviceId::parse(id).unwrap(),
            version,
            locked,
            reason: if locked { "cleaning".into() } else { String::new() },
            at: "2026-12-01T10:00:00Z".parse().unwrap(),
            active,
            position: version,
        }
    }

    #[test]
    fn the_payload_is_the_spec_document_and_empty_once_decommissioned() {
        let payload = state("T1", 7, true, true).payload();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version": 7, "locked": true, "reason": "cleaning", "at": "2026-12-01T10:00:00Z"})
        );
        assert!(state("T1", 8, false, false).payload().is_empty());
    }

    #[test]
    fn only_exact_command_topics_of_configured_turnstiles_can_be_subscribed() {
        let board = CommandBoard::fixed("site", vec![state("T1", 1, false, true), state("T2", 3, false, false)]);
        assert_eq!(
            board.device_of_topic("site/turnstile/T1/command").unwrap().as_str(),
            "T1"
        );
        for refused in [
            "site/turnstile/T2/command", // decommissioned: no longer configured
            "site/turnstile/T9/command", // unknown
            "site/turnstile/+/command",
            "site/#",
            "site/turnstile/T1/passage",
            "other/turnstile/T1/command",
            "site/camera/T1/command",
        ] {
            assert!(board.device_of_topic(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn own_topics_are_commands_and_alarms() {
        assert!(CommandBoard::is_own_topic("gh", "gh/turnstile/T1/command"));
        assert!(CommandBoard::is_own_topic("gh", "gh/camera/C1/command"));
        assert!(CommandBoard::is_own_topic("gh", "gh/alarms/A-000001"));
        assert!(!CommandBoard::is_own_topic("gh", "gh/turnstile/T1/passage"));
        assert!(!CommandBoard::is_own_topic("gh", "other/turnstile/T1/command"));
    }
}
