//! What the embedded endpoint sends gateways: the desired state of the turnstiles whose `command` topics they
//! subscribed to. A gateway may subscribe only to the exact command topics of configured turnstiles (anything
//! else is refused in the SUBACK). On subscribe it gets the current state at once (retained), then every change
//! at QoS 1; a state it has not acknowledged is sent again after it reconnects. A persistent session's
//! subscriptions are kept in `journal.db`, so they survive a restart of Gatehouse too.
//!
//! A gateway allowed to read alarms (`gateway add --alarms`, or any client when sign-in is off) may also
//! subscribe to `{prefix}/alarms/#`: it gets every alarm's retained state at once, then each change (QoS 0: a
//! state, not a stream of facts; a reconnect brings the current states again).

use super::codec::Outbound;
use super::commands::{CommandBoard, DesiredState};
use crate::domain::DeviceId;
use crate::notify::AlarmTopics;
use rusqlite::params;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Shared by every connection of the endpoint.
#[derive(Clone)]
pub struct CommandDelivery {
    pub board: CommandBoard,
    pub alarms: AlarmTopics,
    journal_path: PathBuf,
    /// The version each client has acknowledged per turnstile: a reconnect re-sends only what is newer.
    /// In memory: after a restart of Gatehouse every subscribed gateway gets its current state once more,
    /// which is harmless (the version tells it nothing changed).
    acked: Arc<Mutex<HashMap<(String, DeviceId), u64>>>,
}

impl CommandDelivery {
    pub fn new(board: CommandBoard, alarms: AlarmTopics, journal_path: PathBuf) -> Self {
        Self {
            board,
            alarms,
            journal_path,
            acked: Default::default(),
        }
    }

    fn acked_version(&self, client: &str, device: &DeviceId) -> Option<u64> {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked.get(&(client.to_owned(), device.clone())).copied()
    }

    fn record_ack(&self, client: &str, device: &DeviceId, version: u64) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        let entry = acked.entry((client.to_owned(), device.clone())).or_insert(0);
        *entry = (*entry).max(version);
    }

    /// Starts a connection's session: a clean one forgets what the client had; a persistent one gets its
    /// subscriptions back.
    /// `allowed`: the turnstiles a signed-in gateway may hear about (`None`: any, when sign-in is off);
    /// `reads_alarms`: whether it may subscribe to the alarms.
    pub async fn open_session(
        &self,
        client: &str,
        clean_session: bool,
        allowed: Option<BTreeSet<DeviceId>>,
        reads_alarms: bool,
    ) -> anyhow::Result<Outgoing> {
        let (path, who) = (self.journal_path.clone(), client.to_owned());
        let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, String)>> {
            let conn = crate::db::open(&path, crate::config::Synchronous::Normal)?;
            if clean_session {
                conn.execute("DELETE FROM mqtt_subscriptions WHERE client_id = ?1", [&who])?;
                return Ok(Vec::new());
            }
            let mut statement = conn.prepare("SELECT topic, device_id FROM mqtt_subscriptions WHERE client_id = ?1")?;
            let rows = statement.query_map([&who], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await??;
        if clean_session {
            let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
            acked.retain(|(c, _), _| c != client);
        }
        // The alarms subscription is stored with no device; a gateway that lost the right no longer has it.
        let alarms_filter = stored
            .iter()
            .find(|(topic, device)| device.is_empty() && self.alarms.is_alarms_filter(topic))
            .filter(|_| reads_alarms)
            .map(|(topic, _)| topic.clone());
        // A gateway that lost a device since it subscribed no longer hears about it.
        let devices = stored
            .into_iter()
            .filter_map(|(topic, device)| Some((DeviceId::parse(&device).ok()?, topic)))
            .filter(|(device, _)| allowed.as_ref().is_none_or(|a| a.contains(device)))
            .collect();
        Ok(Outgoing {
            client: client.to_owned(),
            persistent: !clean_session,
            allowed,
            devices,
            in_flight: HashMap::new(),
            next_pkid: 1,
            reads_alarms,
            alarms_filter,
            alarms_seen: BTreeMap::new(),
        })
    }

    /// Keeps a persistent session's new subscriptions (or forgets removed ones) in `journal.db`.
    /// `added` pairs a topic with its device, or with `None` for the alarms.
    async fn store(
        &self,
        client: &str,
        added: Vec<(String, Option<DeviceId>)>,
        removed: Vec<String>,
    ) -> anyhow::Result<()> {
        let (path, who) = (self.journal_path.clone(), client.to_owned());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = crate::db::open(&path, crate::config::Synchronous::Normal)?;
            let tx = conn.transaction()?;
            for (topic, device) in &added {
                tx.execute(
                    "INSERT OR REPLACE INTO mqtt_subscriptions (client_id, topic, device_id) VALUES (?1, ?2, ?3)",
                    params![who, topic, device.as_ref().map_or("", |d| d.as_str())],
                )?;
            }
            for topic in &removed {
                tx.execute(
                    "DELETE FROM mqtt_subscriptions WHERE client_id = ?1 AND topic = ?2",
                    params![who, topic],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await?
    }
}

/// One connection's side of command delivery.
pub struct Outgoing {
    client: String,
    persistent: bool,
    /// The turnstiles this client may subscribe to (a signed-in gateway's own); `None`: any configured one.
    allowed: Option<BTreeSet<DeviceId>>,
    /// Subscribed turnstiles and the topic filter each was subscribed with.
    devices: BTreeMap<DeviceId, String>,
    /// Our QoS 1 publishes the client has not acknowledged yet: packet id to (turnstile, version).
    in_flight: HashMap<u16, (DeviceId, u64)>,
    next_pkid: u16,
    /// May subscribe to the alarms.
    reads_alarms: bool,
    /// The alarms filter it subscribed with, if it did.
    alarms_filter: Option<String>,
    /// The version of each alarm's state it was sent.
    alarms_seen: BTreeMap<String, u64>,
}

/// At most this many commands unacknowledged on one connection; more wait until acknowledgements come.
const MAX_UNACKED: usize = 64;

impl Outgoing {
    /// Answers a SUBSCRIBE: which filters are granted, and the current state of each granted turnstile (sent
    /// as retained right after the SUBACK, whether or not the client saw it before: MQTT §3.3.1.3).
    pub async fn subscribe(
        &mut self,
        delivery: &CommandDelivery,
        pkid: u16,
        filters: &[String],
        out: &mut Vec<Outbound>,
    ) -> anyhow::Result<()> {
        let mut granted = Vec::with_capacity(filters.len());
        let mut added = Vec::new();
        let mut alarms_added = false;
        for filter in filters {
            if delivery.alarms.is_alarms_filter(filter) {
                if self.reads_alarms {
                    granted.push(true);
                    self.alarms_filter = Some(filter.clone());
                    alarms_added = true;
                } else {
                    tracing::info!(client = %self.client, %filter,
                        "subscription refused: this gateway may not read alarms (gateway add --alarms)");
                    granted.push(false);
                }
                continue;
            }
            let device = delivery.board.device_of_topic(filter);
            let permitted = device
                .as_ref()
                .is_some_and(|d| self.allowed.as_ref().is_none_or(|a| a.contains(d)));
            match device.filter(|_| permitted) {
                Some(device) => {
                    granted.push(true);
                    self.devices.insert(device.clone(), filter.clone());
                    added.push((filter.clone(), Some(device)));
                }
                None => {
                    tracing::info!(client = %self.client, %filter,
                        "subscription refused: a gateway may subscribe only to its own turnstiles' command topics");
                    granted.push(false);
                }
            }
        }
        if let (true, Some(filter)) = (alarms_added, &self.alarms_filter) {
            added.push((filter.clone(), None));
        }
        if self.persistent && !added.is_empty() {
            delivery.store(&self.client, added.clone(), Vec::new()).await?;
        }
        out.push(Outbound::SubAck { pkid, granted });
        for (_, device) in added {
            if let Some(state) = device.and_then(|device| delivery.board.get(&device)) {
                self.send(&delivery.board, state, true, out);
            }
        }
        if alarms_added {
            // Every current state again, as a fresh subscription gets retained messages.
            self.alarms_seen.clear();
            self.alarms_due(delivery, true, out);
        }
        Ok(())
    }

    pub async fn unsubscribe(&mut self, delivery: &CommandDelivery, filters: &[String]) -> anyhow::Result<()> {
        self.devices.retain(|_, topic| !filters.contains(topic));
        if self.alarms_filter.as_ref().is_some_and(|f| filters.contains(f)) {
            self.alarms_filter = None;
        }
        if self.persistent {
            delivery.store(&self.client, Vec::new(), filters.to_vec()).await?;
        }
        Ok(())
    }

    /// Everything the client should have and has not acknowledged: on connect (a persistent session's
    /// subscriptions), and whenever the board changes.
    pub fn due(&mut self, delivery: &CommandDelivery, retain: bool, out: &mut Vec<Outbound>) {
        let wanted: Vec<DesiredState> = self
            .devices
            .keys()
            .filter_map(|device| delivery.board.get(device))
            .filter(|state| {
                let acked = delivery.acked_version(&self.client, &state.device);
                let sending = self
                    .in_flight
                    .values()
                    .any(|(d, v)| *d == state.device && *v >= state.version);
                acked.is_none_or(|a| a < state.version) && !sending
            })
            .collect();
        for state in wanted {
            if self.in_flight.len() >= MAX_UNACKED {
                break;
            }
            self.send(&delivery.board, state, retain, out);
        }
    }

    /// The client acknowledged one of our publishes.
    pub fn puback(&mut self, delivery: &CommandDelivery, pkid: u16) {
        if let Some((device, version)) = self.in_flight.remove(&pkid) {
            delivery.record_ack(&self.client, &device, version);
        }
    }

    fn send(&mut self, board: &CommandBoard, state: DesiredState, retain: bool, out: &mut Vec<Outbound>) {
        let pkid = self.allocate_pkid();
        self.in_flight.insert(pkid, (state.device.clone(), state.version));
        out.push(Outbound::Publish {
            pkid,
            topic: board.topic(&state.device),
            payload: state.payload(),
            retain,
            dup: false,
        });
    }

    /// A packet id not in flight (1..=65535; 0 is not a valid id).
    fn allocate_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&pkid) {
                return pkid;
            }
        }
    }

    /// Whether the client subscribed to any command topic (else board changes need no look).
    pub fn subscribed(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Whether the client subscribed to the alarms.
    pub fn reads_alarms(&self) -> bool {
        self.alarms_filter.is_some()
    }

    /// The alarm states the client has not been sent yet (QoS 0, so no packet id and no window).
    pub fn alarms_due(&mut self, delivery: &CommandDelivery, retain: bool, out: &mut Vec<Outbound>) {
        if self.alarms_filter.is_none() {
            return;
        }
        for (alarm, state) in delivery.alarms.since(&self.alarms_seen) {
            out.push(Outbound::Publish {
                pkid: 0,
                topic: delivery.alarms.topic(&alarm),
                payload: state.payload,
                retain,
                dup: false,
            });
            self.alarms_seen.insert(alarm, state.version);
        }
    }
}
