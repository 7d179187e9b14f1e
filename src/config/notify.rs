//! `[[notify.webhook]]`, `[[notify.email]]` and `[[notify.mqtt]]`: the channels alarms are sent through, each
//! with its filters (lowest severity, zones, types), cooldown and quiet hours, checked and typed here.

use serde_spanned::Spanned;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::errors::Problem;
use super::raw::{RawChannelCommon, RawEmail, RawMqttChannel, RawNotify, RawWebhook};
use crate::domain::alarm::{AlarmType, Severity};

const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MQTT_CHANNEL: &str = "mqtt";

/// One notification channel.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Unique among the channels: it names the channel's deliveries (and their `webhook-id`s).
    pub name: String,
    pub filter: ChannelFilter,
    /// Repeats of an alarm are told at most once per cooldown, and a clear or return within the cooldown of the
    /// last one told waits until it ends (told then only if still needed); a new alarm, its acknowledgement and
    /// escalations always go.
    pub cooldown: Duration,
    /// Site-time hours in which anything below critical waits until they end.
    pub quiet_hours: Option<QuietHours>,
    pub target: ChannelTarget,
}

/// Which alarms a channel hears of.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelFilter {
    pub min_severity: Severity,
    /// Empty: every zone (and alarms without one).
    pub zones: Vec<String>,
    /// Empty: every type.
    pub types: Vec<AlarmType>,
}

impl ChannelFilter {
    pub fn accepts(&self, severity: Severity, zone: Option<&str>, alarm_type: AlarmType) -> bool {
        severity >= self.min_severity
            && (self.zones.is_empty() || zone.is_some_and(|z| self.zones.iter().any(|w| w == z)))
            && (self.types.is_empty() || self.types.contains(&alarm_type))
    }
}

/// `"22:00-06:00"`: from `start` up to `end`, across midnight when `end` is earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: jiff::civil::Time,
    pub end: jiff::civil::Time,
}

impl QuietHours {
    pub fn parse(text: &str) -> Option<QuietHours> {
        let (start, end) = text.split_once('-')?;
        let time = |t: &str| {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            jiff::civil::Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
        };
        let (start, end) = (time(start)?, time(end)?);
        (start != end).then_some(QuietHours { start, end })
    }

    /// When the quiet hours holding `at` (site time `tz`) end; `None` when `at` is not in them.
    pub fn held_until(&self, at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
        let local = at.to_zoned_datetime(tz.clone());
        let time = local.time();
        let inside = if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        };
        if !inside {
            return None;
        }
        let day = if time >= self.end {
            local.date().tomorrow().ok()?
        } else {
            local.date()
        };
        // A wall-clock end skipped by a DST change resolves to the instant after the gap.
        day.to_datetime(self.end)
            .to_zoned_datetime(tz.clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start.strftime("%H:%M"), self.end.strftime("%H:%M"))
    }
}

#[derive(Debug, Clone)]
pub enum ChannelTarget {
    Webhook {
        url: String,
        /// The key after `whsec_`, decoded.
        key: super::Secret<Vec<u8>>,
    },
    Email(EmailTarget),
    /// Retained alarm state under `{topic_prefix}/alarms/{id}` on the site's broker.
    Mqtt,
}

impl ChannelTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelTarget::Webhook { .. } => "webhook",
            ChannelTarget::Email(_) => "email",
            ChannelTarget::Mqtt => "mqtt",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmailTarget {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<super::Secret<String>>,
    /// A CA (PEM) to trust besides the system's, for a relay with a private certificate.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp+plain://`: no TLS, for a relay on the same host or in tests.
    Plain,
}

pub(super) fn build_channels(
    raw: RawNotify,
    zones: &HashSet<&str>,
    base_dir: &Path,
) -> Result<Vec<ChannelConfig>, Problem> {
    let mut channels = Vec::new();
    let mut names = HashSet::new();
    let mut named = |name: Spanned<String>| -> Result<String, Problem> {
        let valid = (1..=32).contains(&name.get_ref().len())
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(Problem::at(
                name.span(),
                format!(
                    "invalid channel name {:?}: 1 to 32 lowercase letters, digits, '-' and '_'",
                    name.get_ref()
                ),
            ));
        }
        if !names.insert(name.get_ref().clone()) {
            return Err(Problem::at(
                name.span(),
                format!("duplicate channel name {:?}", name.get_ref()),
            ));
        }
        Ok(name.into_inner())
    };
    for webhook in raw.webhook {
        let RawWebhook {
            name,
            url,
            secret,
            common,
        } = webhook;
        let name = named(name)?;
        let target = ChannelTarget::Webhook {
            url: webhook_url(&url)?,
            key: super::Secret::new(webhook_key(&secret)?),
        };
        channels.push(channel(name, common, target, zones)?);
    }
    for email in raw.email {
        let RawEmail {
            name,
            smtp,
            username,
            password,
            ca_file,
            from,
            to,
            common,
        } = email;
        let name = named(name)?;
        let (security, host, port) = smtp_url(&smtp)?;
        let ca_file = match ca_file {
            None => None,
            Some(file) => {
                let path = PathBuf::from(file.get_ref());
                let path = if path.is_absolute() { path } else { base_dir.join(path) };
                if !path.is_file() {
                    return Err(Problem::at(
                        file.span(),
                        format!("ca_file {:?} is not a readable file", file.get_ref()),
                    ));
                }
                Some(path)
            }
        };
        let mailbox = |value: &Spanned<String>| -> Result<String, Problem> {
            value
                .get_ref()
                .parse::<lettre::message::Mailbox>()
                .map(|_| value.get_ref().clone())
                .map_err(|e| Problem::at(value.span(), format!("invalid address {:?}: {e}", value.get_ref())))
        };
        let from = mailbox(&from)?;
        if to.get_ref().is_empty() {
            return Err(Problem::at(to.span(), "to must name at least one address"));
        }
        let to = to.get_ref().iter().map(mailbox).collect::<Result<Vec<_>, _>>()?;
        let target = ChannelTarget::Email(EmailTarget {
            security,
            host,
            port,
            username,
            password: password.map(super::Secret::new),
            ca_file,
            from,
            to,
        });
        channels.push(channel(name, common, target, zones)?);
    }
    for mqtt in raw.mqtt {
        let RawMqttChannel { name, common } = mqtt;
        let name = match name {
            Some(name) => named(name)?,
            None => named(Spanned::new(0..0, DEFAULT_MQTT_CHANNEL.to_owned()))?,
        };
        channels.push(channel(name, common, ChannelTarget::Mqtt, zones)?);
    }
    Ok(channels)
}

fn channel(
    name: String,
    common: RawChannelCommon,
    target: ChannelTarget,
    zones: &HashSet<&str>,
) -> Result<ChannelConfig, Problem> {
    let min_severity = match common.min_severity {
        None => Severity::Warning,
        Some(value) => Severity::parse(value.get_ref()).map_err(|e| Problem::at(value.span(), e))?,
    };
    let mut zone_list = Vec::new();
    for zone in common.zones.unwrap_or_default() {
        if !zones.contains(zone.get_ref().as_str()) {
            return Err(Problem::at(
                zone.span(),
                format!(
                    "channel {name:?} names zone {:?}, which no device is in",
                    zone.get_ref()
                ),
            ));
        }
        zone_list.push(zone.into_inner());
    }
    let mut types = Vec::new();
    for value in common.types.unwrap_or_default() {
        types.push(AlarmType::parse(value.get_ref()).map_err(|e| {
            let known: Vec<_> = AlarmType::ALL.iter().map(|t| t.as_str()).collect();
            Problem::at(value.span(), format!("{e}: expected one of {}", known.join(", ")))
        })?);
    }
    let cooldown = match common.cooldown {
        None => DEFAULT_COOLDOWN,
        Some(value) => super::validate::duration(&value, "cooldown")?,
    };
    let quiet_hours = match common.quiet_hours {
        None => None,
        Some(value) => Some(QuietHours::parse(value.get_ref()).ok_or_else(|| {
            Problem::at(
                value.span(),
                format!(
                    "invalid quiet_hours {:?}: expected two different site times like \"22:00-06:00\"",
                    value.get_ref()
                ),
            )
        })?),
    };
    Ok(ChannelConfig {
        name,
        filter: ChannelFilter {
            min_severity,
            zones: zone_list,
            types,
        },
        cooldown,
        quiet_hours,
        target,
    })
}

fn webhook_url(value: &Spanned<String>) -> Result<String, Problem> {
    match reqwest::Url::parse(value.get_ref()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(value.get_ref().clone()),
        _ => Err(Problem::at(
            value.span(),
            format!(
                "invalid webhook url {:?}: expected http:// or https:// and a host",
                value.get_ref()
            ),
        )),
    }
}

/// `whsec_` followed by the base64 key (Standard Webhooks).
fn webhook_key(value: &Spanned<String>) -> Result<Vec<u8>, Problem> {
    use base64::Engine;
    let key = value
        .get_ref()
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter(|key| key.len() >= 16);
    key.ok_or_else(|| {
        Problem::at(
            value.span(),
            "invalid webhook secret: expected \"whsec_\" followed by a base64 key of at least 16 bytes",
        )
    })
}

/// `smtp://host[:587]`, `smtps://host[:465]` or `smtp+plain://host[:25]`.
fn smtp_url(value: &Spanned<String>) -> Result<(SmtpSecurity, String, u16), Problem> {
    let problem = || {
        Problem::at(
            value.span(),
            format!(
                "invalid smtp {:?}: expected smtp://host:587 (STARTTLS), smtps://host:465 or smtp+plain://host:25",
                value.get_ref()
            ),
        )
    };
    let url = reqwest::Url::parse(value.get_ref()).map_err(|_| problem())?;
    let (security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::StartTls, 587),
        "smtps" => (SmtpSecurity::Implicit, 465),
        "smtp+plain" => (SmtpSecurity::Plain, 25),
        _ => return Err(problem()),
    };
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(problem)?;
    if !url.username().is_empty() || !matches!(url.path(), "" | "/") {
        return Err(Problem::at(
            value.span(),
            "smtp takes only a scheme, host and port: put credentials in username and password",
        ));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    Ok((security, host, url.port().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    #[test]
    fn quiet_hours_across_midnight_end_the_next_morning() {
        let quiet = QuietHours::parse("22:00-06:00").unwrap();
        let tz = TimeZone::get("Europe/Madrid").unwrap();
        let at = |s: &str| {
            s.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned_datetime(tz.clone())
                .unwrap()
                .timestamp()
        };
        assert_eq!(
            quiet.held_until(at("2026-12-04T23:30"), &tz),
            Some(at("2026-12-05T06:00"))
        );
        assert_eq!(
            quiet.held_until(at("2026-12-05T01:00"), &tz),
            Some(at("2026-12-05T06:00"))
        );
        assert_eq!(quiet.held_until(at("2026-12-05T06:00"), &tz), None);
        assert_eq!(quiet.held_until(at("2026-12-05T12:00"), &tz), None);
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            day.held_until(at("2026-12-05T12:10"), &tz),
            Some(at("2026-12-05T13:30"))
        );
        assert_eq!(day.to_string(), "12:00-13:30");
        assert!(QuietHours::parse("22:00-22:00").is_none());
        assert!(QuietHours::parse("25:00-06:00").is_none());
        assert!(QuietHours::parse("10pm-6am").is_none());
    }

    #[test]
    fn filters_take_severity_zones_and_types() {
        let filter = ChannelFilter {
            min_severity: Severity::Major,
            zones: vec!["Hall A".into()],
            types: vec![],
        };
        assert!(filter.accepts(Severity::Critical, Some("Hall A"), AlarmType::ForcedPassage));
        assert!(!filter.accepts(Severity::Minor, Some("Hall A"), AlarmType::ForcedPassage));
        assert!(!filter.accepts(Severity::Critical, Some("Hall B"), AlarmType::ForcedPassage));
        assert!(!filter.accepts(Severity::Critical, None, AlarmType::ForcedPassage));
    }
}
