//! The installer's `config.toml`, parsed once at startup into typed settings: owns every default, every
//! validation rule and the `file:line:col: problem` messages that point installers at the spot to fix.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::domain::{DeviceDetails, DeviceId, DeviceKind, InvalidDeviceId};

// Defaults live here and in the example `config.toml`, which documents them; the tests keep the two in step.
const DEFAULT_SITE_NAME: &str = "Gatehouse site";
const DEFAULT_TIMEZONE: &str = "UTC";
const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_STORAGE_DIR: &str = "data";
const DEFAULT_SNAPSHOT_EVERY: u32 = 500;
const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
const DEFAULT_TOPIC_PREFIX: &str = "gatehouse";
const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(90);
const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_BACKDATE: Duration = Duration::from_secs(30 * 86400);
const MQTT_PORT: u16 = 1883;
const MQTTS_PORT: u16 = 8883;

/// Everything `config.toml` says about the site.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub mqtt: MqttConfig,
    pub devices: DevicesConfig,
    pub followers: FollowersConfig,
    pub turnstiles: Vec<TurnstileConfig>,
    pub cameras: Vec<CameraConfig>,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
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
    pub password: Option<String>,
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

    /// A human-readable multi-line summary for `gatehouse check-config`.
    pub fn summary(&self) -> String {
        let mut lines = vec![
            format!("site            {}", self.site.name),
            format!("time zone       {}", self.site.timezone_name),
            format!("http listen     {}", self.http.listen),
            format!(
                "storage dir     {} (snapshot every {} events, synchronous {})",
                self.storage.dir.display(),
                self.storage.snapshot_every,
                match self.storage.synchronous {
                    Synchronous::Full => "full",
                    Synchronous::Normal => "normal",
                }
            ),
        ];
        let credentials = match (&self.mqtt.username, &self.mqtt.password) {
            (Some(user), Some(_)) => format!(", user {user:?} with password"),
            (Some(user), None) => format!(", user {user:?}"),
            (None, Some(_)) => ", password without user".to_owned(),
            (None, None) => String::new(),
        };
        lines.push(match &self.mqtt.broker {
            Broker::Embedded => format!(
                "mqtt broker     embedded, listening on {}{credentials}",
                self.mqtt.listen
            ),
            Broker::External { url, tls, .. } => format!(
                "mqtt broker     {url} (external{}{credentials})",
                if *tls { ", tls" } else { "" }
            ),
        });
        lines.push(format!("mqtt prefix     {}", self.mqtt.topic_prefix));
        lines.push(format!(
            "offline after   {}",
            format_duration(self.devices.offline_after)
        ));
        lines.push(format!(
            "device clocks   at most {} ahead, {} behind",
            format_duration(self.devices.max_clock_skew),
            format_duration(self.devices.max_backdate)
        ));
        lines.push(format!(
            "follower errors {}",
            match self.followers.on_error {
                OnError::Park => "park the event and go on",
                OnError::Stop => "stop and retry",
            }
        ));
        lines.push(format!(
            "devices         {}, {}",
            plural(self.turnstiles.len(), "turnstile"),
            plural(self.cameras.len(), "camera")
        ));

        // Pad id and name so the zones line up; the last column is never padded (no trailing spaces).
        let all = self
            .turnstiles
            .iter()
            .map(|t| (DeviceKind::Turnstile, &t.id, &t.details, None))
            .chain(
                self.cameras
                    .iter()
                    .map(|c| (DeviceKind::Camera, &c.id, &c.details, Some(&c.watches))),
            )
            .collect::<Vec<_>>();
        let id_width = all.iter().map(|d| d.1.as_str().chars().count()).max();
        let name_width = all.iter().map(|d| d.2.name.chars().count()).max();
        for (kind, id, details, watches) in &all {
            let mut line = format!(
                "  {:<9}  {:<iw$}  {:<nw$}  zone {}",
                kind.as_str(),
                id.as_str(),
                details.name,
                details.zone,
                iw = id_width.unwrap_or(0),
                nw = name_width.unwrap_or(0),
            );
            if let Some(watches) = watches {
                if watches.is_empty() {
                    line.push_str(", watches nothing");
                } else {
                    let ids: Vec<&str> = watches.iter().map(DeviceId::as_str).collect();
                    line.push_str(", watches ");
                    line.push_str(&ids.join(", "));
                }
            }
            lines.push(line);
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }

    /// All device ids with their kind, turnstiles first, in file order.
    pub fn device_ids(&self) -> Vec<(DeviceId, DeviceKind)> {
        self.turnstiles
            .iter()
            .map(|t| (t.id.clone(), DeviceKind::Turnstile))
            .chain(self.cameras.iter().map(|c| (c.id.clone(), DeviceKind::Camera)))
            .collect()
    }
}

/// Why the config cannot be used, with the 1-based line and column of the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    /// `None` when the problem has no place in the text (the file could not be read).
    position: Option<(usize, usize)>,
    message: String,
}

impl ConfigError {
    /// The file name as given to [`Config::load`] or [`Config::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    pub fn col(&self) -> Option<usize> {
        self.position.map(|(_, col)| col)
    }

    /// The problem alone, without origin and position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem found while parsing, positioned by byte offset until the text is at hand to turn it into
/// line and column.
struct Problem {
    offset: Option<usize>,
    message: String,
}

impl Problem {
    fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            offset: Some(span.start),
            message: message.into(),
        }
    }

    fn locate(self, origin: &str, text: &str) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            position: self.offset.map(|offset| line_col(text, offset)),
            message: self.message,
        }
    }
}

/// 1-based line and column of a byte offset; the column counts characters, as editors show it.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

// ---- The file as written ----------------------------------------------------------------------------------
//
// Raw structs mirror the file one to one. Values that need validating are `Spanned` so a bad one can be
// pointed at; serde reports unknown keys, missing keys and wrong types itself (reworded in `toml_problem`).
// Sections default as a whole so an empty file is valid.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawConfig {
    site: RawSite,
    http: RawHttp,
    storage: RawStorage,
    mqtt: RawMqtt,
    devices: RawDevices,
    followers: RawFollowers,
    turnstile: Vec<RawTurnstile>,
    camera: Vec<RawCamera>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawSite {
    name: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawHttp {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawStorage {
    dir: Option<Spanned<String>>,
    // Any TOML value, so `0`, `-5`, `"500"` and `1.5` all get the same clear message instead of serde's
    // "expected u32".
    snapshot_every: Option<Spanned<toml::Value>>,
    synchronous: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawMqtt {
    broker: Option<Spanned<String>>,
    listen: Option<Spanned<String>>,
    topic_prefix: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawDevices {
    offline_after: Option<Spanned<String>>,
    max_clock_skew: Option<Spanned<String>>,
    max_backdate: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct RawFollowers {
    on_error: Option<Spanned<String>>,
}

// Turnstile and camera are separate structs (not one flattened into the other) because
// `deny_unknown_fields` does not work through `#[serde(flatten)]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawTurnstile {
    id: Spanned<String>,
    name: Spanned<String>,
    zone: Spanned<String>,
    serial: Option<String>,
    model: Option<String>,
    manufacturer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawCamera {
    id: Spanned<String>,
    name: Spanned<String>,
    zone: Spanned<String>,
    serial: Option<String>,
    model: Option<String>,
    manufacturer: Option<String>,
    #[serde(default)]
    watches: Vec<Spanned<String>>,
}

/// Each table's keys in declaration order, as serde lists them in an unknown-field error: the list tells
/// which table the unknown key was in, even when it was written as a dotted key (`http.lisen = ...`).
const TABLE_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "site",
            "http",
            "storage",
            "mqtt",
            "devices",
            "followers",
            "turnstile",
            "camera",
        ],
    ),
    ("[site]", &["name", "timezone"]),
    ("[http]", &["listen"]),
    ("[storage]", &["dir", "snapshot_every", "synchronous"]),
    ("[mqtt]", &["broker", "listen", "topic_prefix", "username", "password"]),
    ("[devices]", &["offline_after", "max_clock_skew", "max_backdate"]),
    ("[followers]", &["on_error"]),
    (
        "[[turnstile]]",
        &["id", "name", "zone", "serial", "model", "manufacturer"],
    ),
    (
        "[[camera]]",
        &["id", "name", "zone", "serial", "model", "manufacturer", "watches"],
    ),
];

/// Turns toml's and serde's messages into the project's style: one line, lowercase, subject first, with
/// unknown and missing keys reworded to name the table.
fn toml_problem(text: &str, err: &toml::de::Error) -> Problem {
    let span = err.span();
    let raw = err.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let spanned_text = span.clone().and_then(|s| text.get(s)).unwrap_or("").trim();
    let message = reword_unknown_key(&raw)
        .or_else(|| reword_missing_key(&raw, text, spanned_text, span.clone()))
        .or_else(|| reword_duplicate_key(&raw, text, span.clone()))
        .or_else(|| reword_wrong_table_kind(&raw, spanned_text))
        .unwrap_or_else(|| tidy(&raw));
    Problem {
        offset: span.map(|s| s.start),
        message,
    }
}

/// ``unknown field `lisen`, expected `listen` ``
/// → `unknown key "lisen" in [http], expected one of: listen`.
fn reword_unknown_key(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("unknown field `")?;
    let (key, expected) = rest.rsplit_once("`, expected ")?;
    // Serde writes `a`, `a` or `b`, or one of `a`, `b`, `c`: the names are every other backtick piece.
    let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let table = TABLE_KEYS
        .iter()
        .find(|(_, keys)| *keys == expected.as_slice())
        .map(|(table, _)| *table);
    let place = match table {
        Some("") => " at the top level".to_owned(),
        Some(table) => format!(" in {table}"),
        None => String::new(),
    };
    Some(format!(
        "unknown key {key:?}{place}, expected one of: {}",
        expected.join(", ")
    ))
}

/// ``missing field `zone` `` → `missing key "zone" in [[turnstile]]`; toml spans the table's header.
fn reword_missing_key(raw: &str, text: &str, spanned_text: &str, span: Option<Range<usize>>) -> Option<String> {
    let key = raw.strip_prefix("missing field `")?.strip_suffix('`')?;
    let header = if spanned_text.starts_with('[') {
        Some(normalize_header(spanned_text))
    } else {
        span.and_then(|s| enclosing_header(text, s.start))
    };
    Some(match header {
        Some(header) => format!("missing key {key:?} in {header}"),
        None => format!("missing key {key:?}"),
    })
}

/// toml says only "duplicate key"; its span is the repeated key, or the name inside a repeated header.
fn reword_duplicate_key(raw: &str, text: &str, span: Option<Range<usize>>) -> Option<String> {
    if raw != "duplicate key" {
        return None;
    }
    let span = span?;
    let key = text.get(span.clone())?.trim();
    if text[..span.start].trim_end().ends_with('[') {
        return Some(format!("duplicate table [{key}]"));
    }
    Some(match enclosing_header(text, span.start) {
        Some(header) => format!("duplicate key {key:?} in {header}"),
        None => format!("duplicate key {key:?} at the top level"),
    })
}

/// `[turnstile]` where `[[turnstile]]` was meant, or `[[http]]` where `[http]` was: serde only says
/// "invalid type: map, expected ..." at the header.
fn reword_wrong_table_kind(raw: &str, spanned_text: &str) -> Option<String> {
    raw.strip_prefix("invalid type: map, expected ")?;
    if let Some(inner) = spanned_text.strip_prefix("[[") {
        let name = inner.strip_suffix("]]")?.trim();
        if matches!(name, "turnstile" | "camera") {
            return None;
        }
        Some(format!(
            "table [[{name}]] must be written [{name}], only devices are lists"
        ))
    } else {
        let name = spanned_text.strip_prefix('[')?.strip_suffix(']')?.trim();
        if !matches!(name, "turnstile" | "camera") {
            return None;
        }
        Some(format!("table [{name}] must be written [[{name}]], once per device"))
    }
}

/// The header of the table a byte offset falls in, found by scanning back for a line starting with `[`.
fn enclosing_header(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| {
            // Drop a trailing comment; headers cannot contain `#` outside quotes, and device tables are bare.
            let line = line.split('#').next().unwrap_or(line).trim();
            normalize_header(line)
        })
}

/// `[[ turnstile ]]` → `[[turnstile]]`, so messages spell headers one way.
fn normalize_header(header: &str) -> String {
    let (open, close) = if header.starts_with("[[") {
        ("[[", "]]")
    } else {
        ("[", "]")
    };
    let inner = header
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    format!("{open}{inner}{close}")
}

/// Lowercase first letter (unless it starts an acronym like "TOML"), no trailing period, and TOML's word
/// for a list instead of serde's.
fn tidy(raw: &str) -> String {
    let raw = raw.replace("expected a sequence", "expected an array");
    let raw = raw.trim().trim_end_matches('.');
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if first.is_uppercase() && !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(raw[first.len_utf8()..].chars()).collect()
        }
        _ => raw.to_owned(),
    }
}

// ---- Validation: from the file as written to typed settings -----------------------------------------------

fn build(raw: RawConfig, text: &str, base_dir: &Path) -> Result<Config, Problem> {
    let site = build_site(raw.site)?;
    let http = HttpConfig {
        listen: listen_address(raw.http.listen, DEFAULT_HTTP_LISTEN, "[http]")?,
    };
    let storage = build_storage(raw.storage, base_dir)?;
    let mqtt = build_mqtt(raw.mqtt)?;
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
    let (turnstiles, cameras) = build_devices(text, raw.turnstile, raw.camera)?;
    Ok(Config {
        site,
        http,
        storage,
        mqtt,
        devices,
        followers,
        turnstiles,
        cameras,
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

fn build_mqtt(raw: RawMqtt) -> Result<MqttConfig, Problem> {
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
    Ok(MqttConfig {
        broker,
        listen,
        topic_prefix,
        username: raw.username,
        password: raw.password,
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

fn duration(value: &Spanned<String>, key: &str) -> Result<Duration, Problem> {
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

/// Whole numbers with `d`, `h`, `m` or `s`, largest unit first, each at most once: `90s`, `5m`, `1h30m`.
/// Deliberately narrower than jiff's friendly format (which also takes `90 sec`, `1.5h`, `PT5M`): the config
/// contract may only grow, so it starts with the one spelling the docs show.
fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut previous_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        let unit = match rest.as_bytes().get(digits)? {
            b'd' => 86400,
            b'h' => 3600,
            b'm' => 60,
            b's' => 1,
            _ => return None,
        };
        if unit >= previous_unit {
            return None;
        }
        previous_unit = unit;
        total = total.checked_add(number.checked_mul(unit)?)?;
        rest = &rest[digits + 1..];
    }
    Some(Duration::from_secs(total))
}

/// Whole seconds in the largest unit that divides them evenly, so the summary echoes what installers write:
/// `90s` stays `90s`, `300s` prints as `5m`.
fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
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
            Ok(TurnstileConfig { id, details })
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
    use super::*;

    const EXAMPLE: &str = include_str!("../config.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "config.toml", Path::new("/srv/gatehouse"))
    }

    /// The full message `check-config` would print.
    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const CAMERA_C1: &str = "[[camera]]\nid = \"C1\"\nname = \"Hall A entrance\"\nzone = \"Hall A\"\n";
    const TURNSTILE_T1: &str = "[[turnstile]]\nid = \"T1\"\nname = \"Hall A north\"\nzone = \"Hall A\"\n";

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
                        || EXAMPLE.contains(&format!("#   serial, model, {key}")),
                    "{key} of {table} is not in the example config.toml"
                );
            }
        }
    }

    #[test]
    fn a_relative_storage_dir_is_resolved_against_the_config_files_directory() {
        let relative = parse("[storage]\ndir = \"var/db\"").unwrap();
        assert_eq!(relative.storage.dir, Path::new("/srv/gatehouse/var/db"));
        let absolute = parse("[storage]\ndir = \"/var/lib/gatehouse\"").unwrap();
        assert_eq!(absolute.storage.dir, Path::new("/var/lib/gatehouse"));
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
        assert_eq!(config.mqtt.password.as_deref(), Some("secret"));
        assert_eq!(config.devices.offline_after, Duration::from_mins(90));
    }

    #[test]
    fn time_zone_names_are_looked_up_case_insensitively_and_stored_canonically() {
        let config = parse("[site]\ntimezone = \"europe/berlin\"").unwrap();
        assert_eq!(config.site.timezone_name, "Europe/Berlin");
    }

    #[test]
    fn a_toml_syntax_error_reports_where_the_parser_stopped() {
        assert_eq!(
            error("[http\nlisten = \"127.0.0.1:8080\"\n"),
            "config.toml:1:6: unclosed table, expected `]`"
        );
    }

    #[test]
    fn an_unknown_key_names_the_section_and_the_expected_keys() {
        assert_eq!(
            error("[site]\nname = \"Central Station\"\n\n[http]\nlisen = \"127.0.0.1:8080\"\n"),
            "config.toml:5:1: unknown key \"lisen\" in [http], expected one of: listen"
        );
    }

    #[test]
    fn an_unknown_dotted_key_names_the_table_it_lands_in() {
        assert_eq!(
            error("mqtt.topic-prefix = \"gatehouse\""),
            "config.toml:1:6: unknown key \"topic-prefix\" in [mqtt], expected one of: \
             broker, listen, topic_prefix, username, password"
        );
    }

    #[test]
    fn an_unknown_top_level_key_lists_the_sections() {
        assert_eq!(
            error("[site]\nname = \"x\"\n[turnstiles]\n"),
            "config.toml:3:2: unknown key \"turnstiles\" at the top level, expected one of: \
             site, http, storage, mqtt, devices, followers, turnstile, camera"
        );
    }

    #[test]
    fn an_unknown_key_in_a_device_names_the_device_table() {
        assert_eq!(
            error(&format!("{CAMERA_C1}watch = [\"T1\"]\n")),
            "config.toml:5:1: unknown key \"watch\" in [[camera]], expected one of: \
             id, name, zone, serial, model, manufacturer, watches"
        );
    }

    #[test]
    fn every_table_is_recognised_by_its_keys_in_unknown_key_messages() {
        // TABLE_KEYS must list each raw struct's fields exactly as serde does, or messages lose the table.
        for (table, keys) in TABLE_KEYS {
            let text = if table.is_empty() {
                "bogus = 1".to_owned()
            } else {
                format!("{table}\nbogus = 1")
            };
            let place = if table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in {table}")
            };
            let line = if table.is_empty() { 1 } else { 2 };
            assert_eq!(
                error(&text),
                format!(
                    "config.toml:{line}:1: unknown key \"bogus\" {place}, expected one of: {}",
                    keys.join(", ")
                )
            );
        }
    }

    #[test]
    fn a_missing_key_names_the_device_table() {
        assert_eq!(
            error("[site]\nname = \"x\"\n\n[[turnstile]]\nid = \"T1\"\nname = \"Hall A north\"\n"),
            "config.toml:4:1: missing key \"zone\" in [[turnstile]]"
        );
    }

    #[test]
    fn a_device_table_written_with_single_brackets_is_explained() {
        assert_eq!(
            error("[turnstile]\nid = \"T1\"\n"),
            "config.toml:1:1: table [turnstile] must be written [[turnstile]], once per device"
        );
    }

    #[test]
    fn a_settings_table_written_with_double_brackets_is_explained() {
        assert_eq!(
            error("[[http]]\nlisten = \"127.0.0.1:8080\"\n"),
            "config.toml:1:1: table [[http]] must be written [http], only devices are lists"
        );
    }

    #[test]
    fn a_repeated_key_is_named_with_its_table() {
        assert_eq!(
            error("[http]\nlisten = \"127.0.0.1:8080\"\nlisten = \"127.0.0.1:8081\"\n"),
            "config.toml:3:1: duplicate key \"listen\" in [http]"
        );
    }

    #[test]
    fn a_repeated_table_is_named() {
        assert_eq!(error("[http]\n\n[http]\n"), "config.toml:3:2: duplicate table [http]");
    }

    #[test]
    fn a_value_of_the_wrong_type_points_at_the_value() {
        assert_eq!(
            error("[http]\nlisten = 8080\n"),
            "config.toml:2:10: invalid type: integer `8080`, expected a string"
        );
        assert_eq!(
            error(&format!("{TURNSTILE_T1}{CAMERA_C1}watches = \"T1\"\n")),
            "config.toml:9:11: invalid type: string \"T1\", expected an array"
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
    fn durations_are_whole_days_hours_minutes_and_seconds_largest_first() {
        let secs = |text: &str| parse_duration(text).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("5m"), Some(300));
        assert_eq!(secs("2h"), Some(7200));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("1h0m5s"), Some(3605));
        assert_eq!(secs("30d"), Some(30 * 86400));
        assert_eq!(secs("1d12h"), Some(129_600));
        for bad in [
            "",
            "90",
            "s",
            "90 s",
            " 90s",
            "1.5h",
            "30m1h",
            "5m5m",
            "90S",
            "1w",
            "PT5M",
            "-5s",
            "99999999999999999999s",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
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
    fn columns_count_characters_not_bytes() {
        assert_eq!(
            error("site = { name = \"Köln Hbf\", timezone = \"Nowhere\" }"),
            "config.toml:1:40: unknown time zone \"Nowhere\""
        );
    }

    #[test]
    fn the_error_exposes_its_parts() {
        let err = parse("[site]\ntimezone = \"Nowhere\"\n").unwrap_err();
        assert_eq!(err.origin(), "config.toml");
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.col(), Some(12));
        assert_eq!(err.message(), "unknown time zone \"Nowhere\"");
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
    fn the_summary_shows_listeners_paths_and_every_device() {
        assert_eq!(
            parse(EXAMPLE).unwrap().summary(),
            "\
site            Central Station
time zone       Europe/Berlin
http listen     127.0.0.1:8080
storage dir     /srv/gatehouse/data (snapshot every 500 events, synchronous full)
mqtt broker     embedded, listening on 127.0.0.1:1883
mqtt prefix     gatehouse
offline after   90s
device clocks   at most 5m ahead, 30d behind
follower errors park the event and go on
devices         4 turnstiles, 2 cameras
  turnstile  T1  Hall A north     zone Hall A
  turnstile  T2  Hall A south     zone Hall A
  turnstile  T3  Hall B east      zone Hall B
  turnstile  T4  Hall B west      zone Hall B
  camera     C1  Hall A entrance  zone Hall A, watches T1, T2
  camera     C2  Hall B entrance  zone Hall B, watches T3, T4
"
        );
    }

    #[test]
    fn the_summary_of_an_external_broker_shows_the_url_and_never_the_password() {
        let config = parse(
            "[mqtt]\nbroker = \"mqtts://broker.example.com\"\nusername = \"gate\"\npassword = \"secret\"\n\
             [devices]\noffline_after = \"300s\"\n",
        )
        .unwrap();
        let summary = config.summary();
        assert!(
            summary.contains(
                "\nmqtt broker     mqtts://broker.example.com (external, tls, user \"gate\" with password)\n"
            )
        );
        assert!(summary.contains("\noffline after   5m\n"));
        assert!(summary.ends_with("\ndevices         0 turnstiles, 0 cameras\n"));
        assert!(!summary.contains("secret"));
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
