//! The MQTT channel: each alarm's state as JSON, retained under `{prefix}/alarms/{id}`, and an empty retained
//! message once it is cleared. With the embedded endpoint the retained states live here and the endpoint hands
//! them to subscribers of `{prefix}/alarms/#` (gateways made with `gateway add --alarms` when sign-in is on);
//! with an external broker they are published there, retained, with QoS 1 and waited for until the broker
//! acknowledges them.

use super::dispatch::Outcome;
use crate::config::{Broker, MqttConfig};
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, watch};

/// How long the external broker has to acknowledge an alarm's state.
const BROKER_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// One alarm's retained state: its payload (empty once cleared) and a version that grows with every change.
#[derive(Debug, Clone)]
pub struct Retained {
    pub version: u64,
    pub payload: Bytes,
}

/// The alarms' retained states and where they go.
#[derive(Clone)]
pub struct AlarmTopics {
    prefix: Arc<str>,
    retained: Arc<RwLock<BTreeMap<String, Retained>>>,
    /// The latest version handed out: subscribers watch it.
    changed: Arc<watch::Sender<u64>>,
    external: Option<Arc<ExternalPublisher>>,
}

impl AlarmTopics {
    /// For the site's broker: kept here for the embedded endpoint, published to an external one.
    pub fn new(mqtt: &MqttConfig) -> anyhow::Result<AlarmTopics> {
        let external = match &mqtt.broker {
            Broker::Embedded => None,
            Broker::External { .. } => Some(Arc::new(ExternalPublisher::connect(mqtt)?)),
        };
        Ok(AlarmTopics {
            prefix: mqtt.topic_prefix.as_str().into(),
            retained: Default::default(),
            changed: Arc::new(watch::channel(0).0),
            external,
        })
    }

    pub fn topic(&self, alarm: &str) -> String {
        format!("{}/alarms/{alarm}", self.prefix)
    }

    /// The alarm id of one of our alarm topics.
    pub fn alarm_of_topic<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic.strip_prefix(&*self.prefix)?.strip_prefix("/alarms/")
    }

    /// Whether a subscription filter asks for every alarm (`{prefix}/alarms/#` or `{prefix}/alarms/+`).
    pub fn is_alarms_filter(&self, filter: &str) -> bool {
        filter
            .strip_prefix(&*self.prefix)
            .is_some_and(|rest| rest == "/alarms/#" || rest == "/alarms/+")
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// States changed since a subscriber's `seen` versions (all, for a new subscriber: cleared ones left out, as
    /// a broker drops a retained message that was emptied).
    pub fn since(&self, seen: &BTreeMap<String, u64>) -> Vec<(String, Retained)> {
        let retained = self.retained.read().unwrap_or_else(|p| p.into_inner());
        retained
            .iter()
            .filter(|(alarm, state)| match seen.get(*alarm) {
                Some(version) => *version < state.version,
                None => !state.payload.is_empty(),
            })
            .map(|(alarm, state)| (alarm.clone(), state.clone()))
            .collect()
    }

    /// The states delivered before a restart, as read back from the outbox.
    pub fn restore(&self, states: Vec<(String, Bytes)>) {
        let mut retained = self.retained.write().unwrap_or_else(|p| p.into_inner());
        for (alarm, payload) in states {
            let version = self.changed.send_modify_return(|v| {
                *v += 1;
                *v
            });
            retained.insert(alarm, Retained { version, payload });
        }
    }

    /// Delivers one notification's state: to the embedded endpoint's subscribers, or the external broker.
    pub async fn publish(&self, alarm: &str, alarm_state: &str, document: &str) -> Outcome {
        let payload = match payload(alarm_state, document) {
            Ok(payload) => payload,
            Err(error) => return Outcome::Retry(error),
        };
        if let Some(external) = &self.external
            && let Err(error) = external.publish(self.topic(alarm), payload.clone()).await
        {
            return Outcome::Retry(error);
        }
        let mut retained = self.retained.write().unwrap_or_else(|p| p.into_inner());
        let version = self.changed.send_modify_return(|v| {
            *v += 1;
            *v
        });
        retained.insert(alarm.to_owned(), Retained { version, payload });
        Outcome::Delivered
    }
}

trait SendModifyReturn {
    fn send_modify_return(&self, f: impl FnOnce(&mut u64) -> u64) -> u64;
}

impl SendModifyReturn for watch::Sender<u64> {
    fn send_modify_return(&self, f: impl FnOnce(&mut u64) -> u64) -> u64 {
        let mut out = 0;
        self.send_modify(|v| out = f(v));
        out
    }
}

/// The retained payload for a notification: the alarm's `data`, or nothing once it is cleared.
fn payload(alarm_state: &str, document: &str) -> Result<Bytes, String> {
    if alarm_state.starts_with("cleared") {
        return Ok(Bytes::new());
    }
    let document: serde_json::Value =
        serde_json::from_str(document).map_err(|e| format!("a stored notification is not JSON: {e}"))?;
    Ok(Bytes::from(document["data"].to_string()))
}

/// What the MQTT channels delivered last for each alarm, for the retained states after a restart.
pub fn delivered_states(conn: &rusqlite::Connection, channels: &[String]) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut states = Vec::new();
    for channel in channels {
        let mut statement = conn.prepare(
            "SELECT alarm, alarm_state, body FROM notification_deliveries
             WHERE rowid IN (SELECT max(rowid) FROM notification_deliveries
                             WHERE channel = ?1 AND status = 'delivered' GROUP BY alarm)",
        )?;
        let rows = statement.query_map([channel], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        for row in rows {
            let (alarm, state, body) = row?;
            match payload(&state, &body) {
                Ok(payload) if !payload.is_empty() => states.push((alarm, payload)),
                Ok(_) => {}
                Err(error) => tracing::warn!(%alarm, %error, "an alarm's retained state cannot be restored"),
            }
        }
    }
    Ok(states)
}

/// A connection of its own to the external broker for alarm states: one publish at a time, each waited for
/// until the broker acknowledges it (so the outbox marks it delivered only then).
struct ExternalPublisher {
    client: AsyncClient,
    /// Packet ids the broker acknowledged, and connection failures, from the event loop's task.
    events: Mutex<mpsc::UnboundedReceiver<Result<(bool, u16), String>>>,
}

impl ExternalPublisher {
    fn connect(mqtt: &MqttConfig) -> anyhow::Result<ExternalPublisher> {
        let mut options: MqttOptions = crate::mqtt::external::options(mqtt)?;
        options.set_client_id(format!("{}-alarms", crate::mqtt::external::client_id(mqtt)));
        options.set_clean_session(true);
        options.set_manual_acks(false);
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let event = event_loop.poll().await;
                let sent = match event {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => tx.send(Ok((false, pkid))),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => tx.send(Ok((true, ack.pkid))),
                    Ok(_) => Ok(()),
                    Err(error) => {
                        let sent = tx.send(Err(error.to_string()));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        sent
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(ExternalPublisher {
            client,
            events: Mutex::new(rx),
        })
    }

    async fn publish(&self, topic: String, payload: Bytes) -> Result<(), String> {
        let mut events = self.events.lock().await;
        // Whatever came before this publish is of no use to it.
        while events.try_recv().is_ok() {}
        self.client
            .publish_bytes(topic, QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|e| format!("mqtt: {e}"))?;
        let wait = async {
            let mut pkid = None;
            while let Some(event) = events.recv().await {
                match event {
                    Ok((false, sent)) if pkid.is_none() => pkid = Some(sent),
                    Ok((true, acked)) if Some(acked) == pkid => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(format!("mqtt: {error}")),
                }
            }
            Err("mqtt: the connection to the broker is gone".to_owned())
        };
        tokio::time::timeout(BROKER_ACK_TIMEOUT, wait)
            .await
            .map_err(|_| "mqtt: the broker did not acknowledge the alarm's state in time".to_owned())?
    }
}
