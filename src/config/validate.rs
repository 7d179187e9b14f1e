//! Validation: from the file as written to typed settings, section by section, with every default and every
//! check (a bad value is a [`Problem`] pointing at it).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;

use super::duration::parse_duration;
use super::errors::{Problem, line_col};
use super::raw::{RawCamera, RawConfig, RawMqtt, RawSite, RawStorage, RawTurnstile};
use super::{
    AlarmsConfig, Broker, CameraConfig, Config, DevicesConfig, FollowersConfig, HttpConfig, MqttConfig, OnError,
    SiteConfig, StorageConfig, Synchronous, TurnstileConfig,
};
use crate::domain::{DeviceDetails, DeviceId, DeviceKind, InvalidDeviceId};
use crate::mqtt::sessions::MAX_SESSIONS;

// Defaults live here and in the example `config.toml`, which documents them; the tests keep the two in step.
const DEFAULT_SITE_NAME: &str = "Gatehouse site";
const DEFAULT_TIMEZONE: &str = "UTC";
const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_STORAGE_DIR: &str = "data";
const DEFAULT_SNAPSHOT_EVERY: u32 = 500;
const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
const DEFAULT_TOPIC_PREFIX: &str = "gatehouse";
const DEFAULT_MAX_CONNECTIONS: i64 = 1000;
const DEFAULT_DEAD_LETTER_QUOTA: i64 = 100;
/// Two sessions hold twice a broker's in-flight window (Mosquitto's default 20) of messages awaiting commit. More
/// cost CPU per message where broker and Gatehouse share a small machine: in the ingest bench on two cores, four
/// sessions committed 13 % less than one, two 0-7 % less (README, "Performance").
const DEFAULT_SUBSCRIBER_SESSIONS: i64 = 2;
const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(90);
const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_BACKDATE: Duration = Duration::from_secs(30 * 86400);
const DEFAULT_REOPEN_WITHIN: Duration = Duration::from_secs(10 * 60);
const DEFAULT_REPEAT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_OFFLINE_ALARM_AFTER: Duration = Duration::from_secs(5 * 60);
const DEFAULT_FAULT_OPEN_AFTER: Duration = Duration::from_secs(15 * 60);
const DEFAULT_DEAD_LETTER_RATE: u32 = 20;
const MQTT_PORT: u16 = 1883;
const MQTTS_PORT: u16 = 8883;

pub(super) fn build(raw: RawConfig, text: &str, base_dir: &Path) -> Result<Config, Problem> {
    let site = build_site(raw.site)?;
    let http = HttpConfig {
        listen: listen_address(raw.http.listen, DEFAULT_HTTP_LISTEN, "[http]")?,
    };
    let storage = build_storage(raw.storage, base_dir)?;
    let retention = build_retention(raw.retention, base_dir)?;
    let mqtt = build_mqtt(raw.mqtt, base_dir)?;
    let optional_duration = |value: Option<Spanned<String>>, default, key| match value {
        None => Ok(default),
        Some(value) => duration(&value, key),
    };
    let devices = DevicesConfig {
        offline_after: optional_duration(raw.devices.offline_after, DEFAULT_OFFLINE_AFTER, "offline_after")?,
        max_clock_skew: optional_duration(raw.devices.max_clock_skew, DEFAULT_MAX_CLOCK_SKEW, "max_clock_skew")?,
        max_backdate: optional_duration(raw.devices.max_backdate, DEFAULT_MAX_BACKDATE, "max_backdate")?,
    };
    let followers = FollowersConfig {
        on_error: match raw.followers.on_error {
            None => OnError::default(),
            Some(value) => match value.get_ref().as_str() {
                "park" => OnError::Park,
                "stop" => OnError::Stop,
                other => {
                    return Err(Problem::at(
                        value.span(),
                        format!("invalid on_error {other:?}: expected \"park\" or \"stop\""),
                    ));
                }
            },
        },
    };
    let alarms = AlarmsConfig {
        offline_after: optional_duration(raw.alarms.offline_after, DEFAULT_OFFLINE_ALARM_AFTER, "offline_after")?,
        fault_open_after: optional_duration(
            raw.alarms.fault_open_after,
            DEFAULT_FAULT_OPEN_AFTER,
            "fault_open_after",
        )?,
        dead_letter_rate: match raw.alarms.dead_letter_rate {
            None => DEFAULT_DEAD_LETTER_RATE,
            Some(v) => u32::try_from(*v.get_ref()).ok().filter(|n| *n >= 1).ok_or_else(|| {
                Problem::at(
                    v.span(),
                    format!(
                        "invalid dead_letter_rate {}: expected a whole number of at least 1",
                        v.get_ref()
                    ),
                )
            })?,
        },
        reopen_within: optional_duration(raw.alarms.reopen_within, DEFAULT_REOPEN_WITHIN, "reopen_within")?,
        repeat: optional_duration(raw.alarms.repeat, DEFAULT_REPEAT, "repeat")?,
    };
    let identification = super::presence::build_identification(raw.identification)?;
    let occupancy = super::presence::build_occupancy(raw.occupancy)?;
    let (turnstiles, cameras) = build_devices(text, raw.turnstile, raw.camera)?;
    let maintenance = super::maintenance::build_maintenance(raw.maintenance, &turnstiles, &cameras)?;
    let zones = turnstiles
        .iter()
        .map(|t| t.details.zone.as_str())
        .chain(cameras.iter().map(|c| c.details.zone.as_str()))
        .collect();
    let notify = super::notify::build_channels(raw.notify, &zones, base_dir)?;
    let zones = super::presence::build_zones(raw.zone, &zones)?;
    let forward = match raw.forward {
        None => None,
        Some(forward) => Some(super::network::build_forward(forward, site.id.as_deref(), base_dir)?),
    };
    let hq = match raw.hq {
        None => None,
        Some(hq) => {
            // The network view has no devices of its own: a file with both is two configs in one.
            if let Some(device) = turnstiles.first().map(|t| &t.id).or(cameras.first().map(|c| &c.id)) {
                return Err(Problem::at(
                    hq.span(),
                    format!(
                        "[hq] configures the network view, which has no devices: move device {device} to a site's config"
                    ),
                ));
            }
            Some(super::network::build_hq(hq, base_dir)?)
        }
    };
    Ok(Config {
        site,
        http,
        storage,
        retention,
        clock: crate::clock::Clock::real(),
        mqtt,
        devices,
        followers,
        alarms,
        identification,
        occupancy,
        zones,
        turnstiles,
        cameras,
        maintenance,
        notify,
        forward,
        hq,
    })
}

fn build_site(raw: RawSite) -> Result<SiteConfig, Problem> {
    let name = match raw.name {
        None => DEFAULT_SITE_NAME.to_owned(),
        Some(name) => not_blank(name, "site name")?,
    };
    let (timezone, timezone_name) = match raw.timezone {
        None => time_zone(DEFAULT_TIMEZONE).expect("the bundled time zone database knows UTC"),
        Some(value) => time_zone(value.get_ref())
            .ok_or_else(|| Problem::at(value.span(), format!("unknown time zone {:?}", value.get_ref())))?,
    };
    Ok(SiteConfig {
        id: raw.id.map(super::network::site_id).transpose()?,
        name,
        timezone,
        timezone_name,
    })
}

/// The zone and its canonical IANA name; jiff looks names up case-insensitively.
fn time_zone(name: &str) -> Option<(jiff::tz::TimeZone, String)> {
    let tz = jiff::tz::TimeZone::get(name).ok()?;
    let canonical = tz.iana_name().unwrap_or(name).to_owned();
    Some((tz, canonical))
}

fn listen_address(value: Option<Spanned<String>>, default: &str, table: &str) -> Result<SocketAddr, Problem> {
    let Some(value) = value else {
        return Ok(default.parse().expect("default listen addresses are valid"));
    };
    value.get_ref().parse().map_err(|_| {
        Problem::at(
            value.span(),
            format!(
                "invalid listen address {:?} in {table}: expected an IP address and port like {default}",
                value.get_ref()
            ),
        )
    })
}

fn build_storage(raw: RawStorage, base_dir: &Path) -> Result<StorageConfig, Problem> {
    let dir = match raw.dir {
        None => PathBuf::from(DEFAULT_STORAGE_DIR),
        Some(dir) => PathBuf::from(not_blank(dir, "storage dir")?),
    };
    // Relative to the config file, not the working directory, so `gatehouse -c /etc/site/config.toml`
    // finds the same databases from wherever it is started.
    let dir = if dir.is_absolute() { dir } else { base_dir.join(dir) };
    let snapshot_every = match raw.snapshot_every {
        None => DEFAULT_SNAPSHOT_EVERY,
        Some(value) => value
            .get_ref()
            .as_integer()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Problem::at(
                    value.span(),
                    format!(
                        "invalid snapshot_every {}: expected a whole number from 1 to {}",
                        value.get_ref(),
                        u32::MAX
                    ),
                )
            })?,
    };
    let synchronous = match raw.synchronous {
        None => Synchronous::Full,
        Some(value) => match value.get_ref().as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err(Problem::at(
                    value.span(),
                    format!("invalid synchronous {other:?}: expected \"full\" or \"normal\""),
                ));
            }
        },
    };
    Ok(StorageConfig {
        dir,
        snapshot_every,
        synchronous,
    })
}

fn build_retention(raw: super::raw::RawRetention, base_dir: &Path) -> Result<super::RetentionConfig, Problem> {
    let keep_events_for = raw
        .keep_events_for
        .map(|value| duration(&value, "keep_events_for"))
        .transpose()?;
    let max_journal_size = match raw.max_journal_size {
        None => None,
        Some(value) => Some(
            super::size::parse_size(value.get_ref())
                .filter(|size| *size >= 10_000_000)
                .ok_or_else(|| {
                    Problem::at(
                        value.span(),
                        format!(
                            "invalid max_journal_size {:?}: expected a size like \"20GB\" or \"500MB\", at least 10MB",
                            value.get_ref()
                        ),
                    )
                })?,
        ),
    };
    let dir = match raw.archive_dir {
        None => PathBuf::from("archive"),
        Some(dir) => PathBuf::from(not_blank(dir, "archive_dir")?),
    };
    Ok(super::RetentionConfig {
        keep_events_for,
        max_journal_size,
        archive_dir: if dir.is_absolute() { dir } else { base_dir.join(dir) },
    })
}

fn build_mqtt(raw: RawMqtt, base_dir: &Path) -> Result<MqttConfig, Problem> {
    let path = |value: Spanned<String>| {
        let path = PathBuf::from(value.into_inner());
        if path.is_absolute() { path } else { base_dir.join(path) }
    };
    let tls = match (raw.tls_cert, raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(super::TlsFiles {
            cert: path(cert),
            key: path(key),
        }),
        (Some(one), None) | (None, Some(one)) => {
            return Err(Problem::at(
                one.span(),
                "tls_cert and tls_key go together: give both (PEM files) or neither",
            ));
        }
    };
    let broker = match raw.broker {
        None => Broker::Embedded,
        Some(value) => broker(value.get_ref()).ok_or_else(|| {
            Problem::at(
                value.span(),
                format!(
                    "invalid broker {:?}: expected \"embedded\" or a URL like mqtt://host:1883",
                    value.get_ref()
                ),
            )
        })?,
    };
    let listen = listen_address(raw.listen, DEFAULT_MQTT_LISTEN, "[mqtt]")?;
    let topic_prefix = match raw.topic_prefix {
        None => DEFAULT_TOPIC_PREFIX.to_owned(),
        Some(value) => match topic_prefix_problem(value.get_ref()) {
            None => value.into_inner(),
            Some(why) => {
                return Err(Problem::at(
                    value.span(),
                    format!("invalid topic_prefix {:?}: {why}", value.get_ref()),
                ));
            }
        },
    };
    let whole = |value: Option<Spanned<i64>>, default: i64, key: &str| -> Result<i64, Problem> {
        match value {
            None => Ok(default),
            Some(v) if *v.get_ref() >= 1 && *v.get_ref() <= i64::from(u32::MAX) => Ok(*v.get_ref()),
            Some(v) => Err(Problem::at(
                v.span(),
                format!("invalid {key} {}: expected a whole number of at least 1", v.get_ref()),
            )),
        }
    };
    let subscriber_sessions = match raw.subscriber_sessions {
        None => DEFAULT_SUBSCRIBER_SESSIONS as usize,
        Some(v) if (1..=MAX_SESSIONS as i64).contains(v.get_ref()) => *v.get_ref() as usize,
        Some(v) => {
            return Err(Problem::at(
                v.span(),
                format!(
                    "invalid subscriber_sessions {}: expected 1 to {MAX_SESSIONS}",
                    v.get_ref()
                ),
            ));
        }
    };
    Ok(MqttConfig {
        broker,
        listen,
        topic_prefix,
        username: raw.username,
        password: raw.password.map(super::Secret::new),
        require_auth: raw.require_auth.is_none_or(|v| *v.get_ref()),
        max_connections: whole(raw.max_connections, DEFAULT_MAX_CONNECTIONS, "max_connections")? as usize,
        dead_letter_quota: whole(raw.dead_letter_quota, DEFAULT_DEAD_LETTER_QUOTA, "dead_letter_quota")? as u32,
        subscriber_sessions,
        tls,
    })
}

/// `embedded`, or `mqtt://host[:port]` / `mqtts://host[:port]` (an IPv6 host in brackets). Credentials go in
/// `username`/`password`, not the URL, so a URL with `@`, a path or a query is refused rather than half-used.
fn broker(value: &str) -> Option<Broker> {
    if value == "embedded" {
        return Some(Broker::Embedded);
    }
    let (rest, tls, default_port) = if let Some(rest) = value.strip_prefix("mqtt://") {
        (rest, false, MQTT_PORT)
    } else if let Some(rest) = value.strip_prefix("mqtts://") {
        (rest, true, MQTTS_PORT)
    } else {
        return None;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let port = |digits: &str| -> Option<u16> {
        // `u16::from_str` accepts a leading `+`; a port is digits only.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().filter(|p| *p != 0)
    };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        match after {
            "" => (host, default_port),
            after => (host, port(after.strip_prefix(':')?)?),
        }
    } else {
        match authority.split_once(':') {
            None => (authority, default_port),
            Some((host, digits)) => (host, port(digits)?),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    host_ok.then(|| Broker::External {
        url: value.to_owned(),
        host: host.to_owned(),
        port,
        tls,
    })
}

/// Why a topic prefix would break `{prefix}/{kind}/{id}/{message}` topics, if it would.
fn topic_prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.is_empty() {
        Some("must not be empty")
    } else if prefix.contains(['+', '#']) {
        Some("must not contain the wildcards '+' or '#'")
    } else if prefix.starts_with('/') || prefix.ends_with('/') {
        Some("must not start or end with '/'")
    } else if prefix.starts_with('$') {
        // Brokers reserve `$` topics (`$SYS`, `$share`) and wildcard subscriptions skip them.
        Some("must not start with '$', which brokers reserve")
    } else if prefix.contains('\0') {
        Some("must not contain a NUL character")
    } else {
        None
    }
}

pub(super) fn duration(value: &Spanned<String>, key: &str) -> Result<Duration, Problem> {
    let text = value.get_ref();
    match parse_duration(text) {
        None => Err(Problem::at(
            value.span(),
            format!("invalid duration {text:?} for {key}: expected a number and unit like \"90s\" or \"5m\""),
        )),
        Some(d) if d.is_zero() => Err(Problem::at(
            value.span(),
            format!("invalid duration {text:?} for {key}: must be greater than zero"),
        )),
        Some(d) => Ok(d),
    }
}

fn not_blank(value: Spanned<String>, what: &str) -> Result<String, Problem> {
    if value.get_ref().trim().is_empty() {
        Err(Problem::at(value.span(), format!("{what} must not be empty")))
    } else {
        Ok(value.into_inner())
    }
}

type Devices = (Vec<TurnstileConfig>, Vec<CameraConfig>);

fn build_devices(text: &str, turnstiles: Vec<RawTurnstile>, cameras: Vec<RawCamera>) -> Result<Devices, Problem> {
    // Ids first, across both kinds and in file order, so "first defined" really is the earlier one even
    // when a camera comes before the turnstile that reuses its id.
    let mut raw_ids: Vec<&Spanned<String>> = turnstiles
        .iter()
        .map(|t| &t.id)
        .chain(cameras.iter().map(|c| &c.id))
        .collect();
    raw_ids.sort_by_key(|id| id.span().start);
    // Where each id was first defined, as a byte offset: the line is counted only for an error, so checking a
    // config stays linear in its size (counting lines per device made 10,000 devices take seconds).
    let mut first_offset: HashMap<DeviceId, usize> = HashMap::with_capacity(raw_ids.len());
    for raw_id in raw_ids {
        let id = device_id(raw_id)?;
        if let Some(offset) = first_offset.get(&id) {
            let line = line_col(text, *offset).0;
            return Err(Problem::at(
                raw_id.span(),
                format!("duplicate device id {:?} (first defined at line {line})", id.as_str()),
            ));
        }
        first_offset.insert(id, raw_id.span().start);
    }

    let turnstiles = turnstiles
        .into_iter()
        .map(|t| {
            let id = device_id(&t.id)?;
            let (name, zone) = name_and_zone(DeviceKind::Turnstile, &id, t.name, t.zone)?;
            let details = DeviceDetails {
                name,
                zone,
                serial: t.serial,
                model: t.model,
                manufacturer: t.manufacturer,
            };
            let passages_between_service = match t.passages_between_service {
                None => None,
                Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref() as u64),
                Some(n) => {
                    return Err(Problem::at(
                        n.span(),
                        format!(
                            "turnstile {:?}: passages_between_service must be a whole number of at least 1",
                            id.as_str()
                        ),
                    ));
                }
            };
            Ok(TurnstileConfig {
                id,
                details,
                passages_between_service,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;

    let known: HashSet<&str> = turnstiles.iter().map(|t| t.id.as_str()).collect();
    let cameras = cameras
        .into_iter()
        .map(|c| {
            let id = device_id(&c.id)?;
            let (name, zone) = name_and_zone(DeviceKind::Camera, &id, c.name, c.zone)?;
            let mut watches: Vec<DeviceId> = Vec::with_capacity(c.watches.len());
            for watched in &c.watches {
                // A camera's id, or a malformed one, is as unknown a turnstile as a missing one.
                let turnstile = Some(watched.get_ref().as_str())
                    .filter(|w| known.contains(w))
                    .and_then(|w| DeviceId::parse(w).ok())
                    .ok_or_else(|| {
                        Problem::at(
                            watched.span(),
                            format!(
                                "camera {:?} watches unknown turnstile {:?}",
                                id.as_str(),
                                watched.get_ref()
                            ),
                        )
                    })?;
                if watches.contains(&turnstile) {
                    return Err(Problem::at(
                        watched.span(),
                        format!(
                            "camera {:?} watches turnstile {:?} twice",
                            id.as_str(),
                            turnstile.as_str()
                        ),
                    ));
                }
                watches.push(turnstile);
            }
            let details = DeviceDetails {
                name,
                zone,
                serial: c.serial,
                model: c.model,
                manufacturer: c.manufacturer,
            };
            Ok(CameraConfig { id, details, watches })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok((turnstiles, cameras))
}

fn device_id(raw: &Spanned<String>) -> Result<DeviceId, Problem> {
    DeviceId::parse(raw.get_ref()).map_err(|e| {
        // Reworded rather than shown as is, so it reads `invalid device id "T 1": why` like the others.
        let why = match e {
            InvalidDeviceId::Empty => "must not be empty".to_owned(),
            InvalidDeviceId::TooLong(_) => {
                format!("must not be longer than {} characters", DeviceId::MAX_LEN)
            }
            InvalidDeviceId::BadCharacter(_) => "may only contain letters, digits, '_' and '-'".to_owned(),
        };
        Problem::at(raw.span(), format!("invalid device id {:?}: {why}", raw.get_ref()))
    })
}

/// Name and zone, which every device must have and which must say something: a blank zone would be an
/// unnamed group in every report.
fn name_and_zone(
    kind: DeviceKind,
    id: &DeviceId,
    name: Spanned<String>,
    zone: Spanned<String>,
) -> Result<(String, String), Problem> {
    Ok((
        not_blank(name, &format!("{kind} {:?} name", id.as_str()))?,
        not_blank(zone, &format!("{kind} {:?} zone", id.as_str()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CAMERA_C1, EXAMPLE, TURNSTILE_T1, error, parse};
    use super::*;

    #[test]
    fn the_example_config_states_the_defaults_it_documents() {
        // Apart from the site, the example writes out each default; keep it the truth about them.
        let example = parse(EXAMPLE).unwrap();
        let defaults = parse("").unwrap();
        assert_eq!(example.http.listen, defaults.http.listen);
        assert_eq!(example.storage.dir, defaults.storage.dir);
        assert_eq!(example.storage.snapshot_every, defaults.storage.snapshot_every);
        assert_eq!(example.storage.synchronous, defaults.storage.synchronous);
        assert_eq!(example.mqtt.broker, defaults.mqtt.broker);
        assert_eq!(example.mqtt.listen, defaults.mqtt.listen);
        assert_eq!(example.mqtt.topic_prefix, defaults.mqtt.topic_prefix);
        assert_eq!(example.devices.offline_after, defaults.devices.offline_after);
    }

    #[test]
    fn a_relative_storage_dir_is_resolved_against_the_config_files_directory() {
        let relative = parse("[storage]\ndir = \"var/db\"").unwrap();
        assert_eq!(relative.storage.dir, Path::new("/srv/gatehouse/var/db"));
        let absolute = parse("[storage]\ndir = \"/var/lib/gatehouse\"").unwrap();
        assert_eq!(absolute.storage.dir, Path::new("/var/lib/gatehouse"));
    }

    #[test]
    fn retention_keeps_everything_unless_told_and_its_archive_dir_is_relative_to_the_file() {
        let default = parse("").unwrap();
        assert_eq!(default.retention.keep_events_for, None);
        assert_eq!(default.retention.max_journal_size, None);
        assert_eq!(default.retention.archive_dir, Path::new("/srv/gatehouse/archive"));
        let set = parse(
            "[retention]\nkeep_events_for = \"400d\"\nmax_journal_size = \"20GB\"\narchive_dir = \"/mnt/archive\"",
        )
        .unwrap();
        assert_eq!(set.retention.keep_events_for, Some(Duration::from_secs(400 * 86_400)));
        assert_eq!(set.retention.max_journal_size, Some(20_000_000_000));
        assert_eq!(set.retention.archive_dir, Path::new("/mnt/archive"));
        assert!(
            error("[retention]\nmax_journal_size = \"5MB\"").contains("at least 10MB"),
            "a cap too small to hold a day is refused"
        );
        assert!(error("[retention]\nkeep_events_for = \"forever\"").contains("keep_events_for"));
    }

    #[test]
    fn every_key_can_be_set() {
        let config = parse(
            "[http]\nlisten = \"[::]:80\"\n\
             [storage]\nsnapshot_every = 1\nsynchronous = \"normal\"\n\
             [mqtt]\nbroker = \"mqtts://broker.example.com\"\nlisten = \"0.0.0.0:1884\"\n\
             topic_prefix = \"site/7\"\nusername = \"gate\"\npassword = \"secret\"\n\
             [devices]\noffline_after = \"1h30m\"\n",
        )
        .unwrap();
        assert_eq!(config.http.listen, "[::]:80".parse().unwrap());
        assert_eq!(config.storage.snapshot_every, 1);
        assert_eq!(config.storage.synchronous, Synchronous::Normal);
        assert_eq!(
            config.mqtt.broker,
            Broker::External {
                url: "mqtts://broker.example.com".into(),
                host: "broker.example.com".into(),
                port: 8883,
                tls: true
            }
        );
        assert_eq!(config.mqtt.listen, "0.0.0.0:1884".parse().unwrap());
        assert_eq!(config.mqtt.topic_prefix, "site/7");
        assert_eq!(config.mqtt.username.as_deref(), Some("gate"));
        assert_eq!(
            config.mqtt.password.as_ref().map(|p| p.expose().as_str()),
            Some("secret")
        );
        assert_eq!(config.devices.offline_after, Duration::from_mins(90));
    }

    #[test]
    fn time_zone_names_are_looked_up_case_insensitively_and_stored_canonically() {
        let config = parse("[site]\ntimezone = \"europe/berlin\"").unwrap();
        assert_eq!(config.site.timezone_name, "Europe/Berlin");
    }

    #[test]
    fn an_unknown_time_zone_is_named() {
        assert_eq!(
            error("[site]\ntimezone = \"Europe/Berln\"\n"),
            "config.toml:2:12: unknown time zone \"Europe/Berln\""
        );
    }

    #[test]
    fn a_bad_listen_address_names_the_table_and_shows_an_example() {
        assert_eq!(
            error("[http]\nlisten = \"localhost:8080\"\n"),
            "config.toml:2:10: invalid listen address \"localhost:8080\" in [http]: \
             expected an IP address and port like 127.0.0.1:8080"
        );
        assert_eq!(
            error("[mqtt]\nlisten = \"127.0.0.1\"\n"),
            "config.toml:2:10: invalid listen address \"127.0.0.1\" in [mqtt]: \
             expected an IP address and port like 127.0.0.1:1883"
        );
    }

    #[test]
    fn a_zero_snapshot_interval_is_rejected() {
        assert_eq!(
            error("[storage]\nsnapshot_every = 0\n"),
            "config.toml:2:18: invalid snapshot_every 0: expected a whole number from 1 to 4294967295"
        );
        assert_eq!(
            error("[storage]\nsnapshot_every = \"500\"\n"),
            "config.toml:2:18: invalid snapshot_every \"500\": expected a whole number from 1 to 4294967295"
        );
    }

    #[test]
    fn an_unknown_synchronous_value_is_rejected() {
        assert_eq!(
            error("[storage]\nsynchronous = \"off\"\n"),
            "config.toml:2:15: invalid synchronous \"off\": expected \"full\" or \"normal\""
        );
    }

    #[test]
    fn a_blank_storage_dir_is_rejected() {
        assert_eq!(
            error("[storage]\ndir = \"\"\n"),
            "config.toml:2:7: storage dir must not be empty"
        );
    }

    #[test]
    fn a_bad_broker_url_is_rejected_with_the_accepted_forms() {
        assert_eq!(
            error("[mqtt]\nbroker = \"ftp://x\"\n"),
            "config.toml:2:10: invalid broker \"ftp://x\": \
             expected \"embedded\" or a URL like mqtt://host:1883"
        );
    }

    #[test]
    fn broker_urls_default_the_port_by_scheme() {
        let external = |url: &str| match broker(url) {
            Some(Broker::External { host, port, tls, .. }) => Some((host, port, tls)),
            _ => None,
        };
        assert_eq!(broker("embedded"), Some(Broker::Embedded));
        assert_eq!(external("mqtt://broker"), Some(("broker".into(), 1883, false)));
        assert_eq!(
            external("mqtts://broker.example.com/"),
            Some(("broker.example.com".into(), 8883, true))
        );
        assert_eq!(external("mqtt://10.0.0.5:1884"), Some(("10.0.0.5".into(), 1884, false)));
        assert_eq!(external("mqtts://[::1]:8884"), Some(("::1".into(), 8884, true)));
        assert_eq!(external("mqtt://[fe80::1]"), Some(("fe80::1".into(), 1883, false)));
        for bad in [
            "Embedded",
            "",
            "broker:1883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:+1",
            "mqtt://h:65536",
            "mqtt://user:pw@h",
            "mqtt://h/topic",
            "mqtt://h?x=1",
            "mqtt://[::1",
            "mqtt://[h]",
            "tcp://h:1883",
            "mqtt://h o",
        ] {
            assert_eq!(broker(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_topic_prefix_says_why() {
        let cases = [
            ("a/#", "must not contain the wildcards '+' or '#'"),
            ("a/+/b", "must not contain the wildcards '+' or '#'"),
            ("/gatehouse", "must not start or end with '/'"),
            ("gatehouse/", "must not start or end with '/'"),
            ("", "must not be empty"),
            ("$SYS", "must not start with '$', which brokers reserve"),
        ];
        for (prefix, why) in cases {
            assert_eq!(
                error(&format!("[mqtt]\ntopic_prefix = \"{prefix}\"\n")),
                format!("config.toml:2:16: invalid topic_prefix \"{prefix}\": {why}")
            );
        }
    }

    #[test]
    fn a_bad_duration_shows_the_expected_format() {
        assert_eq!(
            error("[devices]\noffline_after = \"90 sec\"\n"),
            "config.toml:2:17: invalid duration \"90 sec\" for offline_after: \
             expected a number and unit like \"90s\" or \"5m\""
        );
    }

    #[test]
    fn a_zero_duration_is_rejected() {
        assert_eq!(
            error("[devices]\noffline_after = \"0s\"\n"),
            "config.toml:2:17: invalid duration \"0s\" for offline_after: must be greater than zero"
        );
    }

    #[test]
    fn an_invalid_device_id_quotes_the_id_and_the_rule() {
        assert_eq!(
            error("[[turnstile]]\nid = \"T 1\"\nname = \"Hall A north\"\nzone = \"Hall A\"\n"),
            "config.toml:2:6: invalid device id \"T 1\": may only contain letters, digits, '_' and '-'"
        );
        assert_eq!(
            error(&CAMERA_C1.replace("\"C1\"", &format!("\"{}\"", "x".repeat(33)))),
            format!(
                "config.toml:2:6: invalid device id \"{}\": must not be longer than 32 characters",
                "x".repeat(33)
            )
        );
        assert_eq!(
            error("[[turnstile]]\nid = \"\"\nname = \"n\"\nzone = \"z\"\n"),
            "config.toml:2:6: invalid device id \"\": must not be empty"
        );
    }

    #[test]
    fn a_duplicate_device_id_points_at_the_first_definition() {
        let text = format!("{TURNSTILE_T1}\n{TURNSTILE_T1}");
        assert_eq!(
            error(&text),
            "config.toml:7:6: duplicate device id \"T1\" (first defined at line 2)"
        );
    }

    #[test]
    fn a_device_id_is_unique_across_kinds_in_file_order() {
        // The camera comes first in the file, so the turnstile is the duplicate.
        let text = format!("{}\n{TURNSTILE_T1}", CAMERA_C1.replace("C1", "T1"));
        assert_eq!(
            error(&text),
            "config.toml:7:6: duplicate device id \"T1\" (first defined at line 2)"
        );
    }

    #[test]
    fn a_camera_watching_an_unknown_turnstile_is_rejected() {
        assert_eq!(
            error(&format!("{TURNSTILE_T1}\n{CAMERA_C1}watches = [\"T1\", \"T9\"]\n")),
            "config.toml:10:18: camera \"C1\" watches unknown turnstile \"T9\""
        );
    }

    #[test]
    fn a_camera_watching_a_camera_is_rejected_as_an_unknown_turnstile() {
        assert_eq!(
            error(&format!("{CAMERA_C1}watches = [\"C1\"]\n")),
            "config.toml:5:12: camera \"C1\" watches unknown turnstile \"C1\""
        );
    }

    #[test]
    fn a_camera_watching_a_turnstile_twice_is_rejected() {
        assert_eq!(
            error(&format!("{TURNSTILE_T1}{CAMERA_C1}watches = [\"T1\", \"T1\"]\n")),
            "config.toml:9:18: camera \"C1\" watches turnstile \"T1\" twice"
        );
    }

    #[test]
    fn a_camera_may_watch_a_turnstile_defined_after_it() {
        let config = parse(&format!("{CAMERA_C1}watches = [\"T1\"]\n{TURNSTILE_T1}")).unwrap();
        assert_eq!(config.cameras[0].watches, [DeviceId::parse("T1").unwrap()]);
    }

    #[test]
    fn a_blank_device_name_or_zone_is_rejected() {
        assert_eq!(
            error(&TURNSTILE_T1.replace("\"Hall A\"", "\" \"")),
            "config.toml:4:8: turnstile \"T1\" zone must not be empty"
        );
        assert_eq!(
            error(&CAMERA_C1.replace("\"Hall A entrance\"", "\"\"")),
            "config.toml:3:8: camera \"C1\" name must not be empty"
        );
    }
}
