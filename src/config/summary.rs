//! The human-readable summary `gatehouse check-config` prints.

use super::duration::format_duration;
use super::{Broker, Config, OnError, Synchronous};
use crate::domain::{DeviceId, DeviceKind};

impl Config {
    /// A human-readable multi-line summary for `gatehouse check-config`.
    pub fn summary(&self) -> String {
        let mut lines = vec![
            match &self.site.id {
                Some(id) => format!("site            {} (id {id})", self.site.name),
                None => format!("site            {}", self.site.name),
            },
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
            match (self.retention.keep_events_for, self.retention.max_journal_size) {
                (None, None) => "retention       every event stays in the journal".to_owned(),
                (age, size) => format!(
                    "retention       archive events {} to {}",
                    [
                        age.map(|d| format!("older than {}", super::duration::format_duration(d))),
                        size.map(|s| format!("past a {} MB journal", s / 1_000_000)),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" or "),
                    self.retention.archive_dir.display()
                ),
            },
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
                "mqtt broker     {url} (external{}{credentials}, {} subscriber session{})",
                if *tls { ", tls" } else { "" },
                self.mqtt.subscriber_sessions,
                if self.mqtt.subscriber_sessions == 1 { "" } else { "s" }
            ),
        });
        lines.push(format!("mqtt prefix     {}", self.mqtt.topic_prefix));
        if let Some(forward) = &self.forward {
            lines.push(format!(
                "forward to      {} stream {} subject {} ({} replicas, kept {})",
                forward.nats.servers.join(", "),
                forward.stream,
                forward.subject,
                forward.replicas,
                format_duration(forward.keep_for)
            ));
        }
        if let Some(hq) = &self.hq {
            lines.push(format!(
                "network view    {} stream {} subjects {} (durable consumer {})",
                hq.nats.servers.join(", "),
                hq.stream,
                hq.subjects,
                hq.durable
            ));
        }
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
        if !self.maintenance.is_empty() {
            lines.push(format!(
                "maintenance     {}",
                plural(self.maintenance.len(), "schedule")
            ));
            for schedule in &self.maintenance {
                lines.push(format!(
                    "  {}  \"{}\"  {}: {}",
                    schedule.id, schedule.spec.cron, schedule.spec.target, schedule.spec.task
                ));
            }
        }
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{EXAMPLE, parse};

    #[test]
    fn the_summary_shows_listeners_paths_and_every_device() {
        assert_eq!(
            parse(EXAMPLE).unwrap().summary(),
            "\
site            Central Station
time zone       Europe/Berlin
http listen     127.0.0.1:8080
storage dir     /srv/gatehouse/data (snapshot every 500 events, synchronous full)
retention       every event stays in the journal
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
maintenance     1 schedule
  weekly-gates  \"0 6 * * MON\"  zone Hall A: Clean optical sensors, check arm torque
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
        assert!(summary.contains(
            "\nmqtt broker     mqtts://broker.example.com (external, tls, user \"gate\" with password, \
                 2 subscriber sessions)\n"
        ));
        assert!(summary.contains("\noffline after   5m\n"));
        assert!(summary.ends_with("\ndevices         0 turnstiles, 0 cameras\n"));
        assert!(!summary.contains("secret"));
    }
}
