//! The installer's `config.toml`, parsed once at startup into typed settings: owns every default, every
//! validation rule and the `file:line:col: problem` messages that point installers at the spot to fix.
//!
//! This file holds the typed settings and their public API; `raw` mirrors the file as written, `validate` turns
//! it into the typed settings (defaults and checks, section by section), `errors` words and places the problems,
//! `duration` reads and writes the `90s`/`5m` spelling, `maintenance` checks the `[[maintenance]]` schedules,
//! `notify` the `[[notify.*]]` channels, and `summary` prints `gatehouse check-config`.

mod duration;
mod errors;
mod maintenance;
mod network;
mod notify;
mod presence;
mod raw;
mod secret;
pub mod size;
mod summary;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{DeviceDetails, DeviceId, DeviceKind};

pub use errors::ConfigError;
use errors::toml_problem;
pub use network::{ForwardConfig, HqConfig, NatsConnection, NatsCredentials};
pub use notify::{ChannelConfig, ChannelFilter, ChannelTarget, EmailTarget, QuietHours, SmtpSecurity};
pub use presence::{IdentificationConfig, OccupancyConfig, ZoneConfig};
use raw::RawConfig;
pub use secret::Secret;
use validate::build;

/// Everything `config.toml` says about the site.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub retention: RetentionConfig,
    pub mqtt: MqttConfig,
    pub devices: DevicesConfig,
    pub followers: FollowersConfig,
    pub alarms: AlarmsConfig,
    pub identification: IdentificationConfig,
    pub occupancy: OccupancyConfig,
    /// `[[zone]]`: facts about the zones the devices name (capacity), in file order.
    pub zones: Vec<ZoneConfig>,
    pub turnstiles: Vec<TurnstileConfig>,
    pub cameras: Vec<CameraConfig>,
    /// Preventive maintenance schedules (`[[maintenance]]`).
    pub maintenance: Vec<MaintenanceConfig>,
    /// `[[notify.*]]`: where alarms are sent, in file order (webhooks, then e-mail, then MQTT).
    pub notify: Vec<ChannelConfig>,
    /// `[forward]`: the NATS JetStream cluster this site's events go to, when it has one.
    pub forward: Option<ForwardConfig>,
    /// `[hq]`: this file configures `gatehouse hq` (the network view), not a site.
    pub hq: Option<HqConfig>,
    /// Not in the file: the clock the core runs on (the real one; `what-if` gives its copy a virtual one).
    pub clock: crate::clock::Clock,
}

/// One `[[maintenance]]` schedule.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub id: String,
    /// What is recorded on the schedule's stream (cron text, devices, task).
    pub spec: crate::domain::schedule::ScheduleSpec,
    pub cron: crate::maintenance::cron::CronSchedule,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// `[a-z0-9-]{1,32}`: names the site in forwarded events; required with `[forward]`.
    pub id: Option<String>,
    pub name: String,
    /// The zone reports bucket hours and days in.
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name as the time zone database spells it (`europe/berlin` becomes `Europe/Berlin`).
    pub timezone_name: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Where the databases live; already resolved against the config file's directory when relative.
    pub dir: PathBuf,
    /// A device actor writes a snapshot after this many events of its stream.
    pub snapshot_every: u32,
    pub synchronous: Synchronous,
}

/// `[retention]`: how long and how much of the journal stays in `journal.db`; older events move to archive files.
/// Neither limit is set by default: a site keeps every event until its installer says otherwise.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Events recorded longer ago than this are archived.
    pub keep_events_for: Option<Duration>,
    /// Past this size of `journal.db`, the oldest events are archived until it is below it again.
    pub max_journal_size: Option<u64>,
    /// Where archive files and their manifest go; already resolved against the config file's directory.
    pub archive_dir: PathBuf,
}

/// `SQLite`'s `PRAGMA synchronous` for the journal: `Full` survives power loss, `Normal` only crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub broker: Broker,
    /// Where the embedded broker listens; unused with an external broker.
    pub listen: SocketAddr,
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    /// The embedded endpoint accepts only gateways that sign in with their identity (`gatehouse gateway add`).
    pub require_auth: bool,
    /// Connections the embedded endpoint keeps open at once; more are refused.
    pub max_connections: usize,
    /// Dead letters stored per gateway per minute; past it they are acknowledged and counted, not stored.
    pub dead_letter_quota: u32,
    /// Connections to an external broker its device topics are spread over (each device in one), so its
    /// in-flight window per session does not cap the site; 1 subscribes to every topic on one session.
    pub subscriber_sessions: usize,
    /// The embedded endpoint's certificate chain and private key (PEM): with them it also speaks MQTT over TLS
    /// on `listen` (a client that opens with a TLS handshake gets TLS, one that opens with CONNECT plain MQTT).
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which broker the gateways publish to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// The built-in endpoint, which owns the PUBACK so nothing is acknowledged before the journal commits.
    Embedded,
    /// A broker run elsewhere; `url` is kept as written for messages, `host` has no IPv6 brackets.
    External {
        url: String,
        host: String,
        port: u16,
        tls: bool,
    },
}

#[derive(Debug, Clone)]
pub struct DevicesConfig {
    /// A device silent (no message, no heartbeat) for this long is marked offline.
    pub offline_after: Duration,
    /// Device time further ahead of the receive time than this makes the message a dead letter.
    pub max_clock_skew: Duration,
    /// Device time further behind the receive time than this makes the message a dead letter.
    pub max_backdate: Duration,
}

/// `[alarms]`: how alarms behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmsConfig {
    /// A device offline (since it went offline) this long raises a major alarm, which clears itself when the
    /// device is back.
    pub offline_after: Duration,
    /// A device with a fault open this long raises a major alarm, which clears itself when its faults clear.
    pub fault_open_after: Duration,
    /// Dead letters from one sender within a minute that raise a minor alarm (a misconfigured gateway).
    pub dead_letter_rate: u32,
    /// Trouble back this soon after its alarm cleared reactivates that alarm instead of raising another.
    pub reopen_within: Duration,
    /// An unacknowledged critical alarm is notified again this often.
    pub repeat: Duration,
}

/// What a follower (projector, policy) does with an event it cannot handle (`[followers] on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Park it (kept, shown on /admin/projections and /healthz, re-driven later) and go on with the next.
    #[default]
    Park,
    /// Stop at it and retry until it succeeds (nothing is skipped, nothing after it is applied).
    Stop,
}

#[derive(Debug, Clone, Default)]
pub struct FollowersConfig {
    pub on_error: OnError,
}

#[derive(Debug, Clone)]
pub struct TurnstileConfig {
    pub id: DeviceId,
    pub details: DeviceDetails,
    /// A preventive work order after this many passages since the last service (the service meter); none when
    /// not set.
    pub passages_between_service: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub id: DeviceId,
    pub details: DeviceDetails,
    /// Turnstiles this camera looks at; each is a configured turnstile.
    pub watches: Vec<DeviceId>,
}

impl Config {
    /// Reads and parses the file; the error's Display names the path as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        // `config.toml` in the working directory has an empty parent, which joins like `.` would.
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Config::parse(&text, &origin, base_dir)
    }

    /// Parses text; `origin` is the file name used in messages (e.g. "config.toml"); `base_dir` resolves
    /// `storage.dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_problem(text, &e).locate(origin, text))?;
        build(raw, text, base_dir).map_err(|p| p.locate(origin, text))
    }

    /// All device ids with their kind, turnstiles first, in file order.
    pub fn device_ids(&self) -> Vec<(DeviceId, DeviceKind)> {
        self.turnstiles
            .iter()
            .map(|t| (t.id.clone(), DeviceKind::Turnstile))
            .chain(self.cameras.iter().map(|c| (c.id.clone(), DeviceKind::Camera)))
            .collect()
    }

    /// Every zone the devices name, once each, in file order (turnstiles first).
    pub fn zone_names(&self) -> Vec<String> {
        let mut zones: Vec<String> = Vec::new();
        let named = self.turnstiles.iter().map(|t| &t.details.zone);
        for zone in named.chain(self.cameras.iter().map(|c| &c.details.zone)) {
            if !zones.contains(zone) {
                zones.push(zone.clone());
            }
        }
        zones
    }

    /// The capacity `[[zone]]` gives `zone`, if any.
    pub fn capacity_of(&self, zone: &str) -> Option<u32> {
        self.zones.iter().find(|z| z.name == zone).and_then(|z| z.capacity)
    }
}

/// A path from the file, relative to the config file's directory unless absolute.
fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base_dir.join(path)
    }
}

/// What the tests of every part share: the example file, and a parser whose errors read as `check-config` prints
/// them.
#[cfg(test)]
mod testing {
    use super::{Config, ConfigError};
    use std::path::Path;

    pub(super) const EXAMPLE: &str = include_str!("../../config.toml");

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "config.toml", Path::new("/srv/gatehouse"))
    }

    /// The full message `check-config` would print.
    pub(super) fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    pub(super) const CAMERA_C1: &str = "[[camera]]\nid = \"C1\"\nname = \"Hall A entrance\"\nzone = \"Hall A\"\n";
    pub(super) const TURNSTILE_T1: &str = "[[turnstile]]\nid = \"T1\"\nname = \"Hall A north\"\nzone = \"Hall A\"\n";
}

#[cfg(test)]
mod tests {
    use super::testing::{CAMERA_C1, EXAMPLE, TURNSTILE_T1, parse};
    use super::*;

    #[test]
    fn the_example_config_parses_into_the_documented_site() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.site.name, "Central Station");
        assert_eq!(config.site.timezone_name, "Europe/Berlin");
        assert_eq!(config.site.timezone.iana_name(), Some("Europe/Berlin"));
        assert_eq!(config.storage.dir, Path::new("/srv/gatehouse/data"));
        assert_eq!(config.mqtt.broker, Broker::Embedded);
        let turnstiles: Vec<(&str, &str)> = config
            .turnstiles
            .iter()
            .map(|t| (t.id.as_str(), t.details.zone.as_str()))
            .collect();
        assert_eq!(
            turnstiles,
            [("T1", "Hall A"), ("T2", "Hall A"), ("T3", "Hall B"), ("T4", "Hall B")]
        );
        let cameras: Vec<(&str, &str, Vec<&str>)> = config
            .cameras
            .iter()
            .map(|c| {
                let watches = c.watches.iter().map(DeviceId::as_str).collect();
                (c.id.as_str(), c.details.zone.as_str(), watches)
            })
            .collect();
        assert_eq!(
            cameras,
            [("C1", "Hall A", vec!["T1", "T2"]), ("C2", "Hall B", vec!["T3", "T4"])]
        );
        assert_eq!(config.turnstiles[0].details.serial.as_deref(), Some("TS-0041"));
        assert_eq!(config.turnstiles[3].details.model, None);
    }

    #[test]
    fn an_empty_file_gives_every_default_and_no_devices() {
        let config = Config::parse("", "config.toml", Path::new("")).unwrap();
        assert_eq!(config.site.name, "Gatehouse site");
        assert_eq!(config.site.timezone_name, "UTC");
        assert_eq!(config.site.timezone, jiff::tz::TimeZone::UTC);
        assert_eq!(config.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.storage.dir, Path::new("data"));
        assert_eq!(config.storage.snapshot_every, 500);
        assert_eq!(config.storage.synchronous, Synchronous::Full);
        assert_eq!(config.mqtt.broker, Broker::Embedded);
        assert_eq!(config.mqtt.listen, "127.0.0.1:1883".parse().unwrap());
        assert_eq!(config.mqtt.topic_prefix, "gatehouse");
        assert_eq!(config.mqtt.username, None);
        assert_eq!(config.mqtt.password, None);
        assert_eq!(config.devices.offline_after, Duration::from_secs(90));
        assert!(config.turnstiles.is_empty());
        assert!(config.cameras.is_empty());
        assert!(config.device_ids().is_empty());
    }

    #[test]
    fn an_unreadable_file_is_named_as_given_without_a_position() {
        let err = Config::load(Path::new("/nonexistent/gatehouse/config.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/gatehouse/config.toml: cannot read: No such file or directory (os error 2)"
        );
        assert_eq!((err.line(), err.col()), (None, None));
    }

    #[test]
    fn load_names_the_file_in_errors_and_resolves_storage_against_its_directory() {
        let dir = std::env::temp_dir().join(format!("gatehouse-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("site.toml");
        std::fs::write(&path, "[storage]\ndir = \"db\"\n").unwrap();
        let loaded = Config::load(&path).map(|c| c.storage.dir);
        std::fs::write(&path, "[http]\nlisen = \"x\"\n").unwrap();
        let failed = Config::load(&path).map(|_| ()).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap(), dir.join("db"));
        assert_eq!(
            failed,
            format!(
                "{}:2:1: unknown key \"lisen\" in [http], expected one of: listen",
                path.display()
            )
        );
    }

    #[test]
    fn device_ids_lists_turnstiles_first_in_file_order() {
        let text = format!("{CAMERA_C1}{TURNSTILE_T1}{}", TURNSTILE_T1.replace("T1", "T0"));
        let ids: Vec<(String, DeviceKind)> = parse(&text)
            .unwrap()
            .device_ids()
            .into_iter()
            .map(|(id, kind)| (id.to_string(), kind))
            .collect();
        assert_eq!(
            ids,
            [
                ("T1".to_owned(), DeviceKind::Turnstile),
                ("T0".to_owned(), DeviceKind::Turnstile),
                ("C1".to_owned(), DeviceKind::Camera),
            ]
        );
    }
}
