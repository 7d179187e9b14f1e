//! How Gatehouse spreads an external broker's device traffic over subscriber sessions: which session owns which
//! configured device, the topic filters each one subscribes to and drops, and which left-over sessions of an
//! earlier setting it retires. Pure: `external` runs the plan.
//!
//! Why several sessions: a broker sends one session at most its in-flight window of unacknowledged QoS 1
//! messages (Mosquitto's `max_inflight_messages`, default 20), and Gatehouse acknowledges only after a commit, so
//! one session is capped at about window ÷ commit latency. Each device's topics belong to exactly one session,
//! so a device's messages keep their order. With more than one session the device sessions subscribe to their
//! own devices' topics, not a wildcard, so a device missing from `config.toml` is noticed by a session of its
//! own that subscribes to every device's `status` and `heartbeat` (and ingests only unknown devices' messages,
//! which become dead letters): a wildcard beside the device sessions would make the broker deliver everything
//! twice.

use crate::domain::{DeviceId, DeviceKind};

/// Most sessions `[mqtt] subscriber_sessions` may ask for; retired sessions are looked for up to here.
pub const MAX_SESSIONS: usize = 16;

/// What one connection to the broker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Ingests every device message it receives (all of them with one session, its devices' with several).
    Devices,
    /// Subscribes to every device's `status` and `heartbeat` and ingests only those of devices not configured
    /// (dead letters), acknowledging the rest unread: their own sessions have them.
    Discovery,
    /// A session an earlier setting used: it drops its subscriptions, ingests what the broker kept for it, and
    /// is deleted once quiet.
    Retired,
}

/// One connection: its fixed client id (the broker keeps a persistent session per id), what it subscribes to,
/// and what it unsubscribes from when the broker still had a session for it (filters of an earlier setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    pub client_id: String,
    /// Names the session in logs and in the key that drops protocol redeliveries (packet ids are per session):
    /// the same whether the session is in use or retired, so a redelivery is known across a change of setting.
    pub label: String,
    pub role: Role,
    pub subscribe: Vec<String>,
    pub unsubscribe: Vec<String>,
}

/// Every connection Gatehouse opens to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// The device sessions, then the discovery session when there are several.
    pub active: Vec<SessionSpec>,
    /// Sessions of other settings, to drain and delete.
    pub retired: Vec<SessionSpec>,
}

impl SessionPlan {
    /// `client_base` is the single session's client id (`gatehouse-{prefix}`), kept as it was for one session so
    /// existing sites keep their broker session; several sessions are `{client_base}-{n}` and
    /// `{client_base}-discovery`.
    pub fn new(client_base: &str, prefix: &str, devices: &[(DeviceId, DeviceKind)], sessions: usize) -> SessionPlan {
        let sessions = sessions.clamp(1, MAX_SESSIONS);
        let wildcard = format!("{prefix}/+/+/+");
        let discovery_filters = vec![format!("{prefix}/+/+/status"), format!("{prefix}/+/+/heartbeat")];
        let device_filters: Vec<(usize, String)> = devices
            .iter()
            .map(|(id, kind)| (owner(id, sessions), device_filter(prefix, *kind, id)))
            .collect();
        // A session's client id and label share their suffix (`""`, `-{n}`, `-discovery`): one label per client
        // id, whether the session is in use or retired.
        let spec = |suffix: &str, role: Role, subscribe: Vec<String>, unsubscribe: Vec<String>| SessionSpec {
            client_id: format!("{client_base}{suffix}"),
            label: format!("broker{suffix}"),
            role,
            subscribe,
            unsubscribe,
        };
        // Whatever any setting may have left subscribed, for sessions that must hold none of it.
        let everything: Vec<String> = std::iter::once(wildcard.clone())
            .chain(discovery_filters.iter().cloned())
            .chain(device_filters.iter().map(|(_, f)| f.clone()))
            .collect();
        let retire = |suffix: &str| spec(suffix, Role::Retired, Vec::new(), everything.clone());
        if sessions == 1 {
            return SessionPlan {
                active: vec![spec("", Role::Devices, vec![wildcard], Vec::new())],
                retired: (0..MAX_SESSIONS)
                    .map(|n| retire(&format!("-{n}")))
                    .chain(std::iter::once(retire("-discovery")))
                    .collect(),
            };
        }
        let filters_where = |owned: &dyn Fn(usize) -> bool| -> Vec<String> {
            device_filters
                .iter()
                .filter(|(owner, _)| owned(*owner))
                .map(|(_, f)| f.clone())
                .collect()
        };
        let active = (0..sessions)
            .map(|n| {
                let unsubscribe = std::iter::once(wildcard.clone())
                    .chain(discovery_filters.iter().cloned())
                    .chain(filters_where(&|owner| owner != n))
                    .collect();
                spec(
                    &format!("-{n}"),
                    Role::Devices,
                    filters_where(&|owner| owner == n),
                    unsubscribe,
                )
            })
            .chain(std::iter::once(spec(
                "-discovery",
                Role::Discovery,
                discovery_filters.clone(),
                std::iter::once(wildcard.clone())
                    .chain(filters_where(&|_| true))
                    .collect(),
            )))
            .collect();
        SessionPlan {
            active,
            retired: std::iter::once(retire(""))
                .chain((sessions..MAX_SESSIONS).map(|n| retire(&format!("-{n}"))))
                .collect(),
        }
    }
}

/// Every topic of one device: `{prefix}/{kind}/{id}/+`.
pub fn device_filter(prefix: &str, kind: DeviceKind, id: &DeviceId) -> String {
    format!("{prefix}/{kind}/{}/+", id.as_str())
}

/// The session that owns a device: FNV-1a of its id, so adding or removing a device never moves another one
/// and the owner is the same in every build (std's hasher promises neither).
pub fn owner(id: &DeviceId, sessions: usize) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as usize % sessions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(n: usize) -> Vec<(DeviceId, DeviceKind)> {
        (0..n)
            .map(|i| {
                let kind = if i % 5 == 0 {
                    DeviceKind::Camera
                } else {
                    DeviceKind::Turnstile
                };
                (DeviceId::parse(&format!("D{i}")).unwrap(), kind)
            })
            .collect()
    }

    #[test]
    fn one_session_keeps_the_old_client_id_and_wildcard_and_retires_every_numbered_one() {
        let plan = SessionPlan::new("gatehouse-gh", "gh", &devices(3), 1);
        assert_eq!(plan.active.len(), 1);
        assert_eq!(plan.active[0].client_id, "gatehouse-gh");
        assert_eq!(plan.active[0].subscribe, vec!["gh/+/+/+".to_owned()]);
        assert_eq!(plan.retired.len(), MAX_SESSIONS + 1);
        assert!(plan.retired.iter().any(|s| s.client_id == "gatehouse-gh-discovery"));
        assert!(
            plan.retired
                .iter()
                .all(|s| s.unsubscribe.contains(&"gh/+/+/+".to_owned()))
        );
    }

    #[test]
    fn every_device_belongs_to_exactly_one_session_and_each_session_drops_the_others() {
        let devices = devices(40);
        let plan = SessionPlan::new("gatehouse-gh", "gh", &devices, 4);
        assert_eq!(plan.active.len(), 5, "four device sessions and discovery");
        for (id, kind) in &devices {
            let filter = device_filter("gh", *kind, id);
            let owners: Vec<&SessionSpec> = plan.active.iter().filter(|s| s.subscribe.contains(&filter)).collect();
            assert_eq!(owners.len(), 1, "{filter}");
            let others = plan.active.iter().filter(|s| !s.subscribe.contains(&filter));
            assert!(others.into_iter().all(|s| s.unsubscribe.contains(&filter)), "{filter}");
        }
        // Forty devices spread over four sessions: none is left idle.
        assert!(plan.active[..4].iter().all(|s| !s.subscribe.is_empty()));
        let discovery = &plan.active[4];
        assert_eq!(discovery.role, Role::Discovery);
        assert_eq!(
            discovery.subscribe,
            vec!["gh/+/+/status".to_owned(), "gh/+/+/heartbeat".to_owned()]
        );
        let retired: Vec<&str> = plan.retired.iter().map(|s| s.client_id.as_str()).collect();
        assert_eq!(retired[0], "gatehouse-gh", "the single session's id is retired");
        assert_eq!(retired[1], "gatehouse-gh-4");
        assert_eq!(retired.len(), 1 + MAX_SESSIONS - 4);
    }

    #[test]
    fn a_session_has_one_label_in_use_or_retired() {
        let one = SessionPlan::new("g", "p", &devices(5), 1);
        let four = SessionPlan::new("g", "p", &devices(5), 4);
        let all =
            |plan: &SessionPlan| -> Vec<SessionSpec> { plan.active.iter().chain(&plan.retired).cloned().collect() };
        for a in all(&one) {
            let b = all(&four).into_iter().find(|b| b.client_id == a.client_id).unwrap();
            assert_eq!(a.label, b.label, "{}", a.client_id);
        }
    }

    #[test]
    fn a_device_keeps_its_session_when_others_come_and_go() {
        let all = devices(30);
        let before = SessionPlan::new("g", "p", &all[..20], 3);
        let after = SessionPlan::new("g", "p", &all[5..], 3);
        for (id, kind) in &all[5..20] {
            let filter = device_filter("p", *kind, id);
            let session = |plan: &SessionPlan| plan.active.iter().position(|s| s.subscribe.contains(&filter));
            assert_eq!(session(&before), session(&after));
        }
        // Pinned: the owner must not drift between builds, or an upgrade would move devices between sessions.
        assert_eq!(
            (0..8)
                .map(|i| owner(&DeviceId::parse(&format!("T{i}")).unwrap(), 4))
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 0, 1, 2, 3, 0]
        );
    }
}
