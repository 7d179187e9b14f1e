//! The file as written: serde structs that mirror `config.toml` one to one, and the keys of each table.

use serde::Deserialize;
use serde_spanned::Spanned;

// Raw structs mirror the file one to one. Values that need validating are `Spanned` so a bad one can be
// pointed at; serde reports unknown keys, missing keys and wrong types itself (reworded in `toml_problem`).
// Sections default as a whole so an empty file is valid.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConfig {
    pub(super) site: RawSite,
    pub(super) http: RawHttp,
    pub(super) storage: RawStorage,
    pub(super) retention: RawRetention,
    pub(super) mqtt: RawMqtt,
    pub(super) devices: RawDevices,
    pub(super) followers: RawFollowers,
    pub(super) alarms: RawAlarms,
    pub(super) identification: RawIdentification,
    pub(super) occupancy: RawOccupancy,
    pub(super) zone: Vec<RawZone>,
    pub(super) notify: RawNotify,
    pub(super) turnstile: Vec<RawTurnstile>,
    pub(super) camera: Vec<RawCamera>,
    pub(super) maintenance: Vec<RawMaintenance>,
    pub(super) forward: Option<Spanned<RawForward>>,
    pub(super) hq: Option<Spanned<RawHq>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawSite {
    pub(super) id: Option<Spanned<String>>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
}

/// `[forward]`: the NATS JetStream cluster a site sends its events to.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawForward {
    pub(super) nats: Option<Spanned<Vec<String>>>,
    pub(super) stream: Option<Spanned<String>>,
    pub(super) subject: Option<Spanned<String>>,
    pub(super) replicas: Option<Spanned<i64>>,
    pub(super) keep_for: Option<Spanned<String>>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) creds_file: Option<Spanned<String>>,
}

/// `[hq]`: the network view's consumer of every site's events.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHq {
    pub(super) nats: Option<Spanned<Vec<String>>>,
    pub(super) stream: Option<Spanned<String>>,
    pub(super) subjects: Option<Spanned<String>>,
    pub(super) durable: Option<Spanned<String>>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) creds_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHttp {
    pub(super) listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawStorage {
    pub(super) dir: Option<Spanned<String>>,
    // Any TOML value, so `0`, `-5`, `"500"` and `1.5` all get the same clear message instead of serde's
    // "expected u32".
    pub(super) snapshot_every: Option<Spanned<toml::Value>>,
    pub(super) synchronous: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRetention {
    pub(super) keep_events_for: Option<Spanned<String>>,
    pub(super) max_journal_size: Option<Spanned<String>>,
    pub(super) archive_dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawMqtt {
    pub(super) broker: Option<Spanned<String>>,
    pub(super) listen: Option<Spanned<String>>,
    pub(super) topic_prefix: Option<Spanned<String>>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) require_auth: Option<Spanned<bool>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) dead_letter_quota: Option<Spanned<i64>>,
    pub(super) subscriber_sessions: Option<Spanned<i64>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawDevices {
    pub(super) offline_after: Option<Spanned<String>>,
    pub(super) max_clock_skew: Option<Spanned<String>>,
    pub(super) max_backdate: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawFollowers {
    pub(super) on_error: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawAlarms {
    pub(super) offline_after: Option<Spanned<String>>,
    pub(super) fault_open_after: Option<Spanned<String>>,
    pub(super) reopen_within: Option<Spanned<String>>,
    pub(super) repeat: Option<Spanned<String>>,
    pub(super) dead_letter_rate: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawNotify {
    pub(super) webhook: Vec<RawWebhook>,
    pub(super) email: Vec<RawEmail>,
    pub(super) mqtt: Vec<RawMqttChannel>,
}

/// The keys every channel has. Written out in each channel's struct (through this one) rather than flattened,
/// because `deny_unknown_fields` does not work through `#[serde(flatten)]`.
#[derive(Default)]
pub(super) struct RawChannelCommon {
    pub(super) min_severity: Option<Spanned<String>>,
    pub(super) zones: Option<Vec<Spanned<String>>>,
    pub(super) types: Option<Vec<Spanned<String>>>,
    pub(super) cooldown: Option<Spanned<String>>,
    pub(super) quiet_hours: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct WebhookKeys {
    name: Spanned<String>,
    url: Spanned<String>,
    secret: Spanned<String>,
    min_severity: Option<Spanned<String>>,
    zones: Option<Vec<Spanned<String>>>,
    types: Option<Vec<Spanned<String>>>,
    cooldown: Option<Spanned<String>>,
    quiet_hours: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(from = "WebhookKeys")]
pub(super) struct RawWebhook {
    pub(super) name: Spanned<String>,
    pub(super) url: Spanned<String>,
    pub(super) secret: Spanned<String>,
    pub(super) common: RawChannelCommon,
}

impl From<WebhookKeys> for RawWebhook {
    fn from(k: WebhookKeys) -> Self {
        RawWebhook {
            name: k.name,
            url: k.url,
            secret: k.secret,
            common: RawChannelCommon {
                min_severity: k.min_severity,
                zones: k.zones,
                types: k.types,
                cooldown: k.cooldown,
                quiet_hours: k.quiet_hours,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct EmailKeys {
    name: Spanned<String>,
    smtp: Spanned<String>,
    username: Option<String>,
    password: Option<String>,
    ca_file: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    min_severity: Option<Spanned<String>>,
    zones: Option<Vec<Spanned<String>>>,
    types: Option<Vec<Spanned<String>>>,
    cooldown: Option<Spanned<String>>,
    quiet_hours: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(from = "EmailKeys")]
pub(super) struct RawEmail {
    pub(super) name: Spanned<String>,
    pub(super) smtp: Spanned<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) from: Spanned<String>,
    pub(super) to: Spanned<Vec<Spanned<String>>>,
    pub(super) common: RawChannelCommon,
}

impl From<EmailKeys> for RawEmail {
    fn from(k: EmailKeys) -> Self {
        RawEmail {
            name: k.name,
            smtp: k.smtp,
            username: k.username,
            password: k.password,
            ca_file: k.ca_file,
            from: k.from,
            to: k.to,
            common: RawChannelCommon {
                min_severity: k.min_severity,
                zones: k.zones,
                types: k.types,
                cooldown: k.cooldown,
                quiet_hours: k.quiet_hours,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct MqttChannelKeys {
    name: Option<Spanned<String>>,
    min_severity: Option<Spanned<String>>,
    zones: Option<Vec<Spanned<String>>>,
    types: Option<Vec<Spanned<String>>>,
    cooldown: Option<Spanned<String>>,
    quiet_hours: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(from = "MqttChannelKeys")]
pub(super) struct RawMqttChannel {
    pub(super) name: Option<Spanned<String>>,
    pub(super) common: RawChannelCommon,
}

impl From<MqttChannelKeys> for RawMqttChannel {
    fn from(k: MqttChannelKeys) -> Self {
        RawMqttChannel {
            name: k.name,
            common: RawChannelCommon {
                min_severity: k.min_severity,
                zones: k.zones,
                types: k.types,
                cooldown: k.cooldown,
                quiet_hours: k.quiet_hours,
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawIdentification {
    pub(super) match_window: Option<Spanned<String>>,
    pub(super) min_confidence: Option<Spanned<f64>>,
    pub(super) day_starts_at: Option<Spanned<String>>,
    pub(super) presence_timeout: Option<Spanned<String>>,
    pub(super) tailgate_window: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(super) struct RawOccupancy {
    pub(super) reset_at: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawZone {
    pub(super) name: Spanned<String>,
    pub(super) capacity: Option<Spanned<i64>>,
}

// Turnstile and camera are separate structs (not one flattened into the other) because
// `deny_unknown_fields` does not work through `#[serde(flatten)]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawTurnstile {
    pub(super) id: Spanned<String>,
    pub(super) name: Spanned<String>,
    pub(super) zone: Spanned<String>,
    pub(super) serial: Option<String>,
    pub(super) model: Option<String>,
    pub(super) manufacturer: Option<String>,
    pub(super) passages_between_service: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawCamera {
    pub(super) id: Spanned<String>,
    pub(super) name: Spanned<String>,
    pub(super) zone: Spanned<String>,
    pub(super) serial: Option<String>,
    pub(super) model: Option<String>,
    pub(super) manufacturer: Option<String>,
    #[serde(default)]
    pub(super) watches: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawMaintenance {
    pub(super) id: Spanned<String>,
    pub(super) cron: Spanned<String>,
    pub(super) devices: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) zone: Option<Spanned<String>>,
    pub(super) kind: Option<Spanned<String>>,
    pub(super) task: Spanned<String>,
}

/// Each table's keys in declaration order, as serde lists them in an unknown-field error: the list tells
/// which table the unknown key was in, even when it was written as a dotted key (`http.lisen = ...`).
pub(super) const TABLE_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "site",
            "http",
            "storage",
            "retention",
            "mqtt",
            "devices",
            "followers",
            "alarms",
            "identification",
            "occupancy",
            "zone",
            "notify",
            "turnstile",
            "camera",
            "maintenance",
            "forward",
            "hq",
        ],
    ),
    ("[site]", &["id", "name", "timezone"]),
    (
        "[forward]",
        &[
            "nats",
            "stream",
            "subject",
            "replicas",
            "keep_for",
            "username",
            "password",
            "creds_file",
        ],
    ),
    (
        "[hq]",
        &[
            "nats",
            "stream",
            "subjects",
            "durable",
            "username",
            "password",
            "creds_file",
        ],
    ),
    ("[http]", &["listen"]),
    ("[storage]", &["dir", "snapshot_every", "synchronous"]),
    ("[retention]", &["keep_events_for", "max_journal_size", "archive_dir"]),
    (
        "[mqtt]",
        &[
            "broker",
            "listen",
            "topic_prefix",
            "username",
            "password",
            "require_auth",
            "max_connections",
            "dead_letter_quota",
            "subscriber_sessions",
            "tls_cert",
            "tls_key",
        ],
    ),
    ("[devices]", &["offline_after", "max_clock_skew", "max_backdate"]),
    ("[followers]", &["on_error"]),
    (
        "[alarms]",
        &[
            "offline_after",
            "fault_open_after",
            "reopen_within",
            "repeat",
            "dead_letter_rate",
        ],
    ),
    ("[notify]", &["webhook", "email", "mqtt"]),
    (
        "[[notify.webhook]]",
        &[
            "name",
            "url",
            "secret",
            "min_severity",
            "zones",
            "types",
            "cooldown",
            "quiet_hours",
        ],
    ),
    (
        "[[notify.email]]",
        &[
            "name",
            "smtp",
            "username",
            "password",
            "ca_file",
            "from",
            "to",
            "min_severity",
            "zones",
            "types",
            "cooldown",
            "quiet_hours",
        ],
    ),
    (
        "[[notify.mqtt]]",
        &["name", "min_severity", "zones", "types", "cooldown", "quiet_hours"],
    ),
    (
        "[identification]",
        &[
            "match_window",
            "min_confidence",
            "day_starts_at",
            "presence_timeout",
            "tailgate_window",
        ],
    ),
    ("[occupancy]", &["reset_at"]),
    ("[[zone]]", &["name", "capacity"]),
    (
        "[[turnstile]]",
        &[
            "id",
            "name",
            "zone",
            "serial",
            "model",
            "manufacturer",
            "passages_between_service",
        ],
    ),
    (
        "[[camera]]",
        &["id", "name", "zone", "serial", "model", "manufacturer", "watches"],
    ),
    ("[[maintenance]]", &["id", "cron", "devices", "zone", "kind", "task"]),
];

#[cfg(test)]
mod tests {
    use super::super::testing::EXAMPLE;
    use super::*;

    #[test]
    fn the_example_config_documents_every_key() {
        for (table, keys) in TABLE_KEYS {
            for key in *keys {
                let written = format!("\n{key} = ");
                let commented = format!("\n# {key} = ");
                let in_key_list = format!("#   {key} ");
                assert!(
                    table.is_empty()
                        || EXAMPLE.contains(&written)
                        || EXAMPLE.contains(&commented)
                        || EXAMPLE.contains(&in_key_list)
                        || EXAMPLE.contains(&format!("#   serial, model, {key}"))
                        || EXAMPLE.contains(&format!("[[notify.{key}]]")),
                    "{key} of {table} is not in the example config.toml"
                );
            }
        }
    }
}
