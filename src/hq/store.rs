//! The network view's storage (`hq.db`): every forwarded document once per (site, position) and the read tables
//! the network pages show, written in one transaction per batch so a crash loses or doubles nothing (the
//! consumer acknowledges a batch only after it committed; a redelivery is recognised by its position).

use crate::web::day_start;
use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde_json::Value;
use std::path::Path;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!("../../migrations/hq/0001_network.sql"))])
}

/// Opens (creating and upgrading) `hq.db`.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = crate::db::open(path, crate::config::Synchronous::Full)?;
    // A site's erasure rewrites documents: their old bytes are overwritten, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrations()
        .to_latest(&mut conn)
        .with_context(|| format!("{}: cannot upgrade", path.display()))?;
    Ok(conn)
}

/// What became of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Event,
    Heartbeat,
    /// Already applied (a redelivery, or the forwarder's republish after a failure): known by (site, position).
    Duplicate,
}

/// A document that is not a Gatehouse integration event: acknowledged (it can never become one) and logged.
#[derive(Debug, thiserror::Error)]
#[error("not a Gatehouse event: {0}")]
pub struct Unreadable(pub String);

/// One message as it came: the NATS subject it was published on and its document.
pub struct Arrived {
    pub subject: String,
    pub document: Value,
}

/// Applies a batch of documents in one transaction, each in a savepoint of its own: a document the read tables
/// cannot take (content no code path expected) is rolled back alone and named, never holding up the rest.
/// `subjects` is the consumer's filter (`gatehouse.*.events`): a document must come from its own site's subject.
pub fn apply_batch(
    conn: &mut Connection,
    subjects: &str,
    batch: &[Arrived],
) -> anyhow::Result<Vec<Result<Applied, Unreadable>>> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = Timestamp::now();
    skip_stale_holes(&tx, now)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for arrived in batch {
        let envelope = match Envelope::read(&arrived.document) {
            Ok(envelope) => envelope,
            Err(e) => {
                outcomes.push(Err(e));
                continue;
            }
        };
        if subjects.contains('*') && arrived.subject != subjects.replacen('*', envelope.site, 1) {
            outcomes.push(Err(Unreadable(format!(
                "site {:?} published on {}, not on its own subject",
                envelope.site, arrived.subject
            ))));
            continue;
        }
        let savepoint = tx.savepoint()?;
        match apply(&savepoint, &envelope, &arrived.document, now) {
            Ok(applied) => {
                savepoint.commit()?;
                outcomes.push(Ok(applied));
            }
            Err(error) => {
                drop(savepoint); // rolls back this document alone
                outcomes.push(Err(Unreadable(format!(
                    "{}:{} cannot be applied: {error:#}",
                    envelope.site, envelope.position
                ))));
            }
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The envelope attributes the network view relies on.
struct Envelope<'a> {
    site: &'a str,
    position: u64,
    event_type: &'a str,
    subject: &'a str,
    time: Timestamp,
    timezone: &'a str,
    data: &'a Value,
}

impl<'a> Envelope<'a> {
    fn read(document: &'a Value) -> Result<Envelope<'a>, Unreadable> {
        let text = |key: &str| {
            document[key]
                .as_str()
                .ok_or_else(|| Unreadable(format!("no {key} in {}", short(document))))
        };
        Ok(Envelope {
            site: text("gatehousesite")?,
            position: document["gatehouseposition"]
                .as_u64()
                .ok_or_else(|| Unreadable(format!("no gatehouseposition in {}", short(document))))?,
            event_type: text("type")?,
            subject: text("subject")?,
            time: text("time")?
                .parse()
                .map_err(|e| Unreadable(format!("time: {e} in {}", short(document))))?,
            timezone: text("gatehousetimezone")?,
            data: &document["data"],
        })
    }
}

fn short(document: &Value) -> String {
    let text = document.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn apply(tx: &rusqlite::Savepoint<'_>, e: &Envelope<'_>, document: &Value, now: Timestamp) -> anyhow::Result<Applied> {
    let known: Option<u64> = tx
        .query_row("SELECT applied_up_to FROM sites WHERE site = ?1", [e.site], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|p| p.max(0) as u64);
    if known.is_none() {
        tracing::info!(site = e.site, "a new site publishes");
        tx.execute(
            "INSERT INTO sites (site, timezone, applied_up_to, first_seen_at) VALUES (?1, ?2, 0, ?3)",
            params![e.site, e.timezone, now.as_microsecond()],
        )?;
    }
    if e.event_type == crate::forward::cloudevent::HEARTBEAT {
        // The site's own clock says when; an older heartbeat redelivered late changes nothing.
        tx.execute(
            "UPDATE sites SET journal_head = ?2, forwarded_up_to = ?3, heartbeat_at = ?4, timezone = ?5 \
             WHERE site = ?1 AND (heartbeat_at IS NULL OR heartbeat_at < ?4)",
            params![
                e.site,
                e.data["journal_head"].as_i64().unwrap_or(0),
                e.data["forwarded_up_to"].as_i64().unwrap_or(0),
                e.time.as_microsecond(),
                e.timezone
            ],
        )?;
        return Ok(Applied::Heartbeat);
    }
    // A position is stored once, whenever it comes (a redelivery or a re-send is known by it), and applied to the
    // read tables in position order: the stream hands one site's events over in order, except after a
    // forwarder's connection dropped mid-window or an HQ crash (what it had taken comes again after the ack
    // wait), so a position after a hole waits in site_events until the hole fills.
    let seen: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM site_events WHERE site = ?1 AND position = ?2)",
        params![e.site, e.position as i64],
        |r| r.get(0),
    )?;
    if seen {
        return Ok(Applied::Duplicate);
    }
    tx.execute(
        "INSERT INTO site_events (site, position, type, subject, time, received_at, document) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.site,
            e.position as i64,
            e.event_type,
            e.subject,
            e.time.to_string(),
            now.as_microsecond(),
            document.to_string()
        ],
    )?;
    tx.execute(
        "UPDATE sites SET last_event_at = CASE WHEN ?2 > received_up_to THEN ?3 ELSE last_event_at END, \
         received_up_to = MAX(received_up_to, ?2), events = events + 1, \
         first_position = MIN(COALESCE(first_position, ?2), ?2), timezone = ?4 WHERE site = ?1",
        params![e.site, e.position as i64, e.time.to_string(), e.timezone],
    )?;
    let applied = known.unwrap_or(0);
    if e.position <= applied {
        // A position skipped over after waiting too long came after all: applied now, out of order.
        tracing::info!(site = e.site, position = e.position, "a skipped position came late");
        tx.execute(
            "UPDATE sites SET skipped = MAX(skipped - 1, 0) WHERE site = ?1",
            [e.site],
        )?;
        project(tx, e)?;
    } else if e.position == applied + 1 {
        apply_in_order(tx, e.site, now)?;
    } else {
        // After a hole: it waits (noted once; scanning what waits on every arrival would cost a hole's length each).
        let noted = tx.execute(
            "UPDATE sites SET held_since = ?2 WHERE site = ?1 AND held_since IS NULL",
            params![e.site, now.as_microsecond()],
        )?;
        if noted > 0 {
            tracing::info!(
                site = e.site,
                after = applied,
                next = e.position,
                "positions held back until the one missing comes"
            );
        }
    }
    Ok(Applied::Event)
}

/// How long positions wait for a hole before them to fill: longer than the consumer's ack wait (what a killed HQ
/// had taken comes again after it), so only positions the stream no longer has are skipped.
const HOLE_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Applies `site`'s stored positions after `applied_up_to` in order, as far as they go without a hole; notes when
/// a hole started holding the rest back.
fn apply_in_order(tx: &Connection, site: &str, now: Timestamp) -> anyhow::Result<()> {
    let (mut applied, held_since): (i64, Option<i64>) = tx.query_row(
        "SELECT applied_up_to, held_since FROM sites WHERE site = ?1",
        [site],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut held = false;
    'pages: loop {
        let waiting: Vec<(i64, String)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT position, document FROM site_events WHERE site = ?1 AND position > ?2 \
                 ORDER BY position LIMIT 1000",
            )?;
            let rows = stmt.query_map(params![site, applied], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        if waiting.is_empty() {
            break;
        }
        for (position, text) in waiting {
            // The very first position a site shows may be past 1 (the stream dropped older ones): it waits too.
            if position != applied + 1 {
                held = true;
                break 'pages;
            }
            let document: Value = serde_json::from_str(&text)?;
            let envelope = Envelope::read(&document).map_err(|e| anyhow::anyhow!("{e}"))?;
            project(tx, &envelope)?;
            applied = position;
        }
    }
    let held_since = match (held, held_since) {
        (false, _) => None,
        (true, Some(since)) => Some(since),
        (true, None) => Some(now.as_microsecond()),
    };
    tx.execute(
        "UPDATE sites SET applied_up_to = ?2, held_since = ?3 WHERE site = ?1",
        params![site, applied, held_since],
    )?;
    Ok(())
}

/// Skips over holes that have held positions back for longer than [`HOLE_WAIT`]: the stream no longer has what
/// is missing (it kept them for less than `keep_for`, or they were never there). Counted in `skipped`.
fn skip_stale_holes(tx: &Connection, now: Timestamp) -> anyhow::Result<()> {
    let stale: Vec<(String, i64)> = {
        let mut stmt = tx
            .prepare_cached("SELECT site, applied_up_to FROM sites WHERE held_since IS NOT NULL AND held_since < ?1")?;
        let cutoff = now.as_microsecond() - HOLE_WAIT.as_micros() as i64;
        let rows = stmt.query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (site, applied) in stale {
        let next: Option<i64> = tx.query_row(
            "SELECT MIN(position) FROM site_events WHERE site = ?1 AND position > ?2",
            params![site, applied],
            |r| r.get(0),
        )?;
        let Some(next) = next else { continue };
        tracing::warn!(%site, from = applied + 1, to = next - 1, "positions never came; going on without them");
        tx.execute(
            "UPDATE sites SET applied_up_to = ?2, skipped = skipped + ?3, held_since = NULL WHERE site = ?1",
            params![site, next - 1, next - 1 - applied],
        )?;
        apply_in_order(tx, &site, now)?;
    }
    Ok(())
}

/// The read tables' share of one event.
fn project(tx: &Connection, e: &Envelope<'_>) -> anyhow::Result<()> {
    let Some((aggregate, event)) = split_type(e.event_type) else {
        return Ok(());
    };
    let tz = TimeZone::get(e.timezone).unwrap_or(TimeZone::UTC);
    let time = e.time.to_string();
    match aggregate {
        "turnstile" | "camera" => {
            let device = e.subject;
            tx.execute(
                "INSERT INTO site_devices (site, device, kind, name, zone, last_event_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (site, device) DO UPDATE SET kind = excluded.kind, \
                   name = COALESCE(excluded.name, name), zone = COALESCE(excluded.zone, zone), \
                   last_event_at = excluded.last_event_at",
                params![e.site, device, aggregate, e.data["device_name"].as_str(), e.data["zone"].as_str(), time],
            )?;
            device_event(tx, e, device, event, &tz)?;
        }
        "work_order" => {
            let open = match event {
                "work_order_opened" | "work_order_reopened" => Some(1),
                "work_order_resolved" | "work_order_cancelled" => Some(0),
                _ => None,
            };
            if let Some(open) = open {
                tx.execute(
                    "INSERT INTO site_work_orders (site, number, open) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (site, number) DO UPDATE SET open = excluded.open",
                    params![e.site, e.subject, open],
                )?;
            }
        }
        "alarm" => {
            let active = match event {
                "alarm_raised" | "alarm_reactivated" => Some(1),
                "alarm_cleared" => Some(0),
                _ => None,
            };
            if let Some(active) = active {
                tx.execute(
                    "INSERT INTO site_alarms (site, number, active) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (site, number) DO UPDATE SET active = excluded.active",
                    params![e.site, e.subject, active],
                )?;
            }
        }
        // A site forgot a person: the network view keeps no link between that person's events either. Every
        // stored document of the site that names the pseudonym names "forgotten" instead (the CloudEvent
        // subject of a presence event is the pseudonym).
        "presence" if event == "subject_forgotten" && crate::domain::Pseudonym::parse(e.subject).is_ok() => {
            tx.execute(
                "UPDATE site_events SET document = replace(document, ?2, 'forgotten'), \
                 subject = replace(subject, ?2, 'forgotten') \
                 WHERE site = ?1 AND instr(document, ?2) > 0",
                params![e.site, e.subject],
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn device_event(tx: &Connection, e: &Envelope<'_>, device: &str, event: &str, tz: &TimeZone) -> anyhow::Result<()> {
    let at = e.time;
    match event {
        "passage_recorded" => {
            let local = at.to_zoned_datetime(tz.clone());
            let hour = crate::projection::local_hour(tz, at).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (inward, outward) = match e.data["direction"].as_str() {
                Some("out") => (0, 1),
                _ => (1, 0),
            };
            tx.execute(
                "INSERT INTO site_traffic (site, bucket_start, day, device, passages_in, passages_out) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (site, bucket_start, device) DO UPDATE SET \
                 passages_in = passages_in + excluded.passages_in, passages_out = passages_out + excluded.passages_out",
                params![
                    e.site,
                    hour.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                    local.date().to_string(),
                    device,
                    inward,
                    outward
                ],
            )?;
        }
        "fact_voided" if e.data["fact"]["passage"].is_object() => {
            // The voided passage leaves the hour it was counted in (its own time, not the correction's).
            let passage = &e.data["fact"]["passage"];
            let Some(passed_at) = passage["at"].as_str().and_then(|t| t.parse::<Timestamp>().ok()) else {
                return Ok(());
            };
            let hour = crate::projection::local_hour(tz, passed_at).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (inward, outward) = match passage["direction"].as_str() {
                Some("out") => (0, 1),
                _ => (1, 0),
            };
            tx.execute(
                "UPDATE site_traffic SET passages_in = MAX(passages_in - ?4, 0), \
                 passages_out = MAX(passages_out - ?5, 0) WHERE site = ?1 AND bucket_start = ?2 AND device = ?3",
                params![
                    e.site,
                    hour.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                    device,
                    inward,
                    outward
                ],
            )?;
        }
        "fault_reported" => {
            let code = e.data["code"].as_str().unwrap_or("?");
            let opened = tx.execute(
                "INSERT OR IGNORE INTO site_open_faults (site, device, code, opened_at) VALUES (?1, ?2, ?3, ?4)",
                params![e.site, device, code, at.to_string()],
            )?;
            if opened > 0 {
                equipment_day(tx, e.site, device, &day_of(at, tz), "faults = faults + 1")?;
                refresh_open_faults(tx, e.site, device)?;
            }
        }
        "fault_cleared" => {
            let code = e.data["code"].as_str().unwrap_or("?");
            let opened: Option<String> = tx
                .query_row(
                    "DELETE FROM site_open_faults WHERE site = ?1 AND device = ?2 AND code = ?3 RETURNING opened_at",
                    params![e.site, device, code],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(opened) = opened.and_then(|t| t.parse::<Timestamp>().ok()) {
                let seconds = (at.as_second() - opened.as_second()).max(0);
                equipment_day(
                    tx,
                    e.site,
                    device,
                    &day_of(at, tz),
                    &format!("repairs = repairs + 1, repair_seconds = repair_seconds + {seconds}"),
                )?;
            }
            refresh_open_faults(tx, e.site, device)?;
        }
        "went_offline" => {
            tx.execute(
                "UPDATE site_devices SET online = 0, offline_since = COALESCE(offline_since, ?3) WHERE site = ?1 AND device = ?2",
                params![e.site, device, at.to_string()],
            )?;
        }
        "came_online" => {
            let since: Option<String> = tx
                .query_row(
                    "SELECT offline_since FROM site_devices WHERE site = ?1 AND device = ?2",
                    params![e.site, device],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            if let Some(since) = since.and_then(|t| t.parse::<Timestamp>().ok()) {
                for (day, seconds) in split_by_day(since, at, tz) {
                    equipment_day(
                        tx,
                        e.site,
                        device,
                        &day,
                        &format!("offline_seconds = offline_seconds + {seconds}"),
                    )?;
                }
            }
            tx.execute(
                "UPDATE site_devices SET online = 1, offline_since = NULL WHERE site = ?1 AND device = ?2",
                params![e.site, device],
            )?;
        }
        "locked_out" | "unlocked" => {
            tx.execute(
                "UPDATE site_devices SET locked_out = ?3 WHERE site = ?1 AND device = ?2",
                params![e.site, device, i64::from(event == "locked_out")],
            )?;
        }
        "decommissioned" | "commissioned" => {
            tx.execute(
                "UPDATE site_devices SET decommissioned = ?3 WHERE site = ?1 AND device = ?2",
                params![e.site, device, i64::from(event == "decommissioned")],
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn refresh_open_faults(tx: &Connection, site: &str, device: &str) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE site_devices SET open_faults = (SELECT COUNT(*) FROM site_open_faults WHERE site = ?1 AND device = ?2) \
         WHERE site = ?1 AND device = ?2",
        params![site, device],
    )?;
    Ok(())
}

/// Adds to one device's figures for one local day (`change` is a fixed SQL assignment list, never input).
fn equipment_day(tx: &Connection, site: &str, device: &str, day: &str, change: &str) -> anyhow::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO site_equipment_days (site, device, day) VALUES (?1, ?2, ?3)",
        params![site, device, day],
    )?;
    tx.execute(
        &format!("UPDATE site_equipment_days SET {change} WHERE site = ?1 AND device = ?2 AND day = ?3"),
        params![site, device, day],
    )?;
    Ok(())
}

fn day_of(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone()).date().to_string()
}

/// Seconds of the days `from..=to` that have passed by `now`, in the site's own days (23 or 25 hours across a
/// DST change): from `from`'s local midnight to the end of `to` or `now`, whichever comes first; at least 1.
pub fn elapsed_in_period(from: jiff::civil::Date, to: jiff::civil::Date, now: Timestamp, tz: &TimeZone) -> i64 {
    let start = |d: jiff::civil::Date| day_start(d, tz).map(|z| z.timestamp().as_second());
    let end = to
        .tomorrow()
        .ok()
        .and_then(start)
        .unwrap_or(i64::MAX)
        .min(now.as_second());
    (end - start(from).unwrap_or(0)).max(1)
}

/// `[from, to)` cut at the site's local midnights: seconds per local day.
pub fn split_by_day(from: Timestamp, to: Timestamp, tz: &TimeZone) -> Vec<(String, i64)> {
    let mut parts = Vec::new();
    let mut start = from;
    while start < to {
        let local = start.to_zoned_datetime(tz.clone());
        let next_midnight = local
            .date()
            .tomorrow()
            .ok()
            .and_then(|d| day_start(d, tz))
            .map(|z| z.timestamp())
            .unwrap_or(to);
        let end = next_midnight.min(to);
        parts.push((local.date().to_string(), end.as_second() - start.as_second()));
        if end <= start {
            break;
        }
        start = end;
    }
    parts
}

/// `gatehouse.turnstile.passage_recorded.v1` → (`turnstile`, `passage_recorded`).
fn split_type(event_type: &str) -> Option<(&str, &str)> {
    let mut parts = event_type.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("gatehouse"), Some(aggregate), Some(event), Some(_major), None) => Some((aggregate, event)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_measured_in_the_site_s_own_days() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let day: jiff::civil::Date = "2026-03-29".parse().unwrap(); // 23 hours long in Berlin
        let later: Timestamp = "2026-04-30T00:00:00Z".parse().unwrap();
        assert_eq!(elapsed_in_period(day, day, later, &tz), 23 * 3600);
        // Half past midnight local (23:30 UTC the day before): half an hour of the day has passed.
        let early: Timestamp = "2026-03-28T23:30:00Z".parse().unwrap();
        assert_eq!(elapsed_in_period(day, day, early, &tz), 1800);
        // A day that has not begun counts as one second, never zero or negative.
        let before: Timestamp = "2026-03-28T12:00:00Z".parse().unwrap();
        assert_eq!(elapsed_in_period(day, day, before, &tz), 1);
        let utc_day = elapsed_in_period(day, day, later, &TimeZone::UTC);
        assert_eq!(utc_day, 24 * 3600);
    }

    #[test]
    fn a_day_of_outage_is_cut_at_local_midnight_even_across_a_dst_change() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let from: Timestamp = "2026-03-28T22:00:00Z".parse().unwrap(); // 23:00 local
        let to: Timestamp = "2026-03-29T23:00:00Z".parse().unwrap(); // 01:00 local on the 30th (CEST)
        let parts = split_by_day(from, to, &tz);
        assert_eq!(
            parts,
            vec![
                ("2026-03-28".to_owned(), 3600),
                ("2026-03-29".to_owned(), 23 * 3600),
                ("2026-03-30".to_owned(), 3600)
            ]
        );
    }

    #[test]
    fn types_split_into_aggregate_and_event() {
        assert_eq!(
            split_type("gatehouse.turnstile.passage_recorded.v1"),
            Some(("turnstile", "passage_recorded"))
        );
        assert_eq!(split_type("com.example.other"), None);
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;
    use serde_json::json;

    fn passage(position: u64) -> Value {
        json!({
            "specversion": "1.0", "id": format!("north:{position}"), "source": "gatehouse/north",
            "type": "gatehouse.turnstile.passage_recorded.v1", "subject": "T1",
            "time": "2026-12-01T08:00:00Z", "datacontenttype": "application/json",
            "gatehousesite": "north", "gatehouseposition": position, "gatehousetimezone": "Europe/Berlin",
            "data": {"device": "T1", "zone": "Hall A", "device_name": "North", "direction": "in"}
        })
    }

    fn arrived(position: u64) -> Arrived {
        Arrived {
            subject: "gatehouse.north.events".into(),
            document: passage(position),
        }
    }

    fn status(position: u64, event: &str) -> Arrived {
        let mut arrived = arrived(position);
        arrived.document["type"] = json!(format!("gatehouse.turnstile.{event}.v1"));
        arrived
    }

    fn presence(position: u64, event: &str, person: &str, data: Value) -> Arrived {
        let mut arrived = arrived(position);
        arrived.document["type"] = json!(format!("gatehouse.presence.{event}.v1"));
        arrived.document["subject"] = json!(person);
        arrived.document["data"] = data;
        arrived
    }

    #[test]
    fn a_sites_erasure_unlinks_the_forgotten_pseudonym_from_everything_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("hq.db")).unwrap();
        let (gone, kept) = (
            "ps-0123456789abcdef0123456789abcdef",
            "ps-fedcba9876543210fedcba9876543210",
        );
        let passage = |position, person| {
            presence(
                position,
                "passage_identified",
                person,
                json!({"subject": person, "turnstile": "T1", "camera": "C1", "zone": "Hall A",
                       "direction": "in", "confidence": 0.9, "at": "2026-12-01T08:00:00Z"}),
            )
        };
        let batch = vec![
            passage(1, gone),
            passage(2, kept),
            presence(3, "subject_forgotten", gone, json!({"at": "2026-12-02T08:00:00Z"})),
        ];
        for outcome in apply_batch(&mut conn, "gatehouse.*.events", &batch).unwrap() {
            assert_eq!(outcome.unwrap(), Applied::Event);
        }
        let documents: Vec<String> = conn
            .prepare("SELECT subject || ' ' || document FROM site_events ORDER BY position")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(documents.iter().all(|d| !d.contains(gone)), "{documents:?}");
        assert!(documents[0].starts_with("forgotten ") && documents[0].contains(r#""subject":"forgotten""#));
        assert!(
            documents[1].contains(kept),
            "another person is untouched: {documents:?}"
        );
    }

    #[test]
    fn each_position_counts_once_and_the_read_tables_take_them_in_order_whatever_order_they_come_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("hq.db")).unwrap();
        // 1 passage, 2 offline, 3 online: 3 comes before 2 (and 4 twice).
        let batch = vec![
            arrived(1),
            status(3, "came_online"),
            arrived(4),
            status(2, "went_offline"),
            arrived(4),
        ];
        let outcomes = apply_batch(&mut conn, "gatehouse.*.events", &batch).unwrap();
        let applied: Vec<Applied> = outcomes.into_iter().map(Result::unwrap).collect();
        use Applied::*;
        assert_eq!(applied, [Event, Event, Event, Event, Duplicate]);
        let row = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(row("SELECT applied_up_to FROM sites WHERE site = 'north'"), 4);
        assert_eq!(row("SELECT events FROM sites WHERE site = 'north'"), 4);
        // Offline then online, as it happened: online.
        assert_eq!(row("SELECT online FROM site_devices WHERE device = 'T1'"), 1);
        assert_eq!(row("SELECT SUM(passages_in) FROM site_traffic WHERE site = 'north'"), 2);
    }

    #[test]
    fn positions_after_a_hole_wait_for_it_and_a_hole_that_never_fills_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("hq.db")).unwrap();
        apply_batch(&mut conn, "gatehouse.*.events", &[arrived(1), arrived(3)]).unwrap();
        let row = |conn: &Connection, sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(row(&conn, "SELECT applied_up_to FROM sites"), 1);
        assert_eq!(row(&conn, "SELECT SUM(passages_in) FROM site_traffic"), 1);
        // Position 2 is gone for good: once the hole is old enough, the next batch goes on without it.
        conn.execute("UPDATE sites SET held_since = held_since - 1000000000", [])
            .unwrap();
        apply_batch(&mut conn, "gatehouse.*.events", &[arrived(4)]).unwrap();
        assert_eq!(row(&conn, "SELECT applied_up_to FROM sites"), 4);
        assert_eq!(row(&conn, "SELECT skipped FROM sites"), 1);
        assert_eq!(row(&conn, "SELECT SUM(passages_in) FROM site_traffic"), 3);
        // It came after all: applied late, counted once.
        apply_batch(&mut conn, "gatehouse.*.events", &[arrived(2)]).unwrap();
        assert_eq!(row(&conn, "SELECT skipped FROM sites"), 0);
        assert_eq!(row(&conn, "SELECT SUM(passages_in) FROM site_traffic"), 4);
    }

    #[test]
    fn something_that_is_not_a_gatehouse_event_is_named_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("hq.db")).unwrap();
        let foreign = Arrived {
            subject: "gatehouse.north.events".into(),
            document: json!({"hello": "world"}),
        };
        // Another publisher claiming to be south on north's subject.
        let mut spoof = arrived(1);
        spoof.document["gatehousesite"] = json!("south");
        let outcomes = apply_batch(&mut conn, "gatehouse.*.events", &[foreign, spoof]).unwrap();
        let why: Vec<String> = outcomes.into_iter().map(|o| o.unwrap_err().to_string()).collect();
        assert!(why[0].contains("no gatehousesite"), "{why:?}");
        assert!(why[1].contains("not on its own subject"), "{why:?}");
        let sites: i64 = conn.query_row("SELECT COUNT(*) FROM sites", [], |r| r.get(0)).unwrap();
        assert_eq!(sites, 0);
    }
}
