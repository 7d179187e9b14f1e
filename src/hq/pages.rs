//! The network pages (SPEC §6): every site at a glance, one site's devices, traffic per site and day or hour,
//! equipment health per site and device; each with CSV. They read `hq.db` only, through the web layer's own
//! plumbing (sign-in, rendering, CSV).

use super::HqState;
use super::store::{elapsed_in_period, split_by_day};
use crate::web::csv::Csv;
use crate::web::{internal_error, render, urlencode};
use actix_web::{HttpResponse, web};
use askama::Template;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(sites))
        .route("/sites/{site}", web::get().to(site))
        .route("/reports/traffic", web::get().to(traffic))
        .route("/reports/equipment", web::get().to(equipment))
        .route("/healthz", web::get().to(healthz));
}

/// A heartbeat older than this means the site is silent, not merely idle.
const SILENT_AFTER_SECONDS: i64 = 90;

async fn read<T: Send + 'static>(
    state: &HqState,
    query: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> actix_web::Result<T> {
    let pool = state.reader.clone();
    web::block(move || pool.with(query))
        .await
        .map_err(|e| internal_error("page", e))?
        .map_err(|e| internal_error("page", e))
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

fn wants_csv(format: &Option<String>) -> bool {
    format.as_deref() == Some("csv")
}

struct SiteRow {
    site: String,
    timezone: String,
    devices: i64,
    online: i64,
    open_faults: i64,
    active_alarms: i64,
    open_work_orders: i64,
    last_event_at: String,
    /// Events the site has not forwarded yet, by its last heartbeat.
    lag: String,
    silent: bool,
    missing: i64,
}

#[derive(Template)]
#[template(path = "hq_sites.html")]
struct SitesPage {
    site: String,
    sites: Vec<SiteRow>,
    consumer: Option<String>,
}

async fn sites(state: web::Data<HqState>, query: web::Query<FormatQuery>) -> actix_web::Result<HttpResponse> {
    let now = jiff::Timestamp::now();
    let rows = read(&state, move |conn| {
        let mut stmt = conn.prepare(
            "SELECT s.site, s.timezone, COALESCE(s.last_event_at, ''), s.journal_head, s.forwarded_up_to, s.heartbeat_at,
               s.skipped,
               (SELECT COUNT(*) FROM site_devices d WHERE d.site = s.site AND d.decommissioned = 0),
               (SELECT COUNT(*) FROM site_devices d WHERE d.site = s.site AND d.decommissioned = 0 AND d.online = 1),
               (SELECT COALESCE(SUM(open_faults), 0) FROM site_devices d WHERE d.site = s.site AND d.decommissioned = 0),
               (SELECT COUNT(*) FROM site_alarms a WHERE a.site = s.site AND a.active = 1),
               (SELECT COUNT(*) FROM site_work_orders w WHERE w.site = s.site AND w.open = 1)
             FROM sites s ORDER BY s.site",
        )?;
        let rows = stmt.query_map([], |r| {
            let head: Option<i64> = r.get(3)?;
            let forwarded: Option<i64> = r.get(4)?;
            let heartbeat_at: Option<i64> = r.get(5)?;
            let ago = heartbeat_at.map(|micros| (now.as_microsecond() - micros) / 1_000_000);
            let lag = match (head, forwarded, ago) {
                (Some(head), Some(forwarded), Some(ago)) => {
                    format!("{} events (heartbeat {ago} s ago)", (head - forwarded).max(0))
                }
                _ => "no heartbeat yet".to_owned(),
            };
            Ok(SiteRow {
                site: r.get(0)?,
                timezone: r.get(1)?,
                last_event_at: r.get(2)?,
                lag,
                silent: ago.is_none_or(|a| a > SILENT_AFTER_SECONDS),
                missing: r.get(6)?,
                devices: r.get(7)?,
                online: r.get(8)?,
                open_faults: r.get(9)?,
                active_alarms: r.get(10)?,
                open_work_orders: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    if wants_csv(&query.format) {
        let mut csv = Csv::with_header(&[
            "site",
            "devices",
            "online",
            "open_faults",
            "active_alarms",
            "open_work_orders",
            "last_event_at",
        ]);
        for s in &rows {
            csv.row(&[
                s.site.clone(),
                s.devices.to_string(),
                s.online.to_string(),
                s.open_faults.to_string(),
                s.active_alarms.to_string(),
                s.open_work_orders.to_string(),
                s.last_event_at.clone(),
            ]);
        }
        return Ok(csv.into_response("sites.csv"));
    }
    let progress = state.consumer.progress();
    render(&SitesPage {
        site: "Network".into(),
        sites: rows,
        consumer: (!progress.connected).then(|| {
            progress
                .last_error
                .unwrap_or_else(|| "connecting to the NATS cluster".into())
        }),
    })
}

struct DeviceRow {
    device: String,
    kind: String,
    name: String,
    zone: String,
    status: &'static str,
    open_faults: i64,
    locked_out: bool,
    last_event_at: String,
}

#[derive(Template)]
#[template(path = "hq_site.html")]
struct SitePage {
    site: String,
    name: String,
    devices: Vec<DeviceRow>,
}

async fn site(state: web::Data<HqState>, path: web::Path<String>) -> actix_web::Result<HttpResponse> {
    let name = path.into_inner();
    let lookup = name.clone();
    let devices = read(&state, move |conn| {
        let known: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sites WHERE site = ?1)", [&lookup], |r| r.get(0))?;
        if !known {
            return Ok(None);
        }
        let mut stmt = conn.prepare(
            "SELECT device, kind, COALESCE(name, ''), COALESCE(zone, ''), online, open_faults, locked_out, COALESCE(last_event_at, '')
             FROM site_devices WHERE site = ?1 AND decommissioned = 0 ORDER BY kind DESC, device",
        )?;
        let rows = stmt.query_map([&lookup], |r| {
            let online: Option<i64> = r.get(4)?;
            Ok(DeviceRow {
                device: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                zone: r.get(3)?,
                status: match online {
                    Some(1) => "online",
                    Some(_) => "offline",
                    None => "not reported",
                },
                open_faults: r.get(5)?,
                locked_out: r.get::<_, i64>(6)? == 1,
                last_event_at: r.get(7)?,
            })
        })?;
        Ok(Some(rows.collect::<Result<Vec<_>, _>>()?))
    })
    .await?;
    let Some(devices) = devices else {
        return Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no site {name:?} has published yet\n")));
    };
    render(&SitePage {
        site: "Network".into(),
        name,
        devices,
    })
}

#[derive(Deserialize)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    site: Option<String>,
    format: Option<String>,
}

/// The period asked for: `from` and `to` as dates (each site's own days), the last 7 days by default.
fn period(query: &ReportQuery) -> Result<(Date, Date), String> {
    let today = jiff::Timestamp::now().to_zoned_datetime(TimeZone::system()).date();
    let parse = |value: &Option<String>, default: Date, name: &str| match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text
            .parse::<Date>()
            .map_err(|_| format!("{name}={text:?}: expected a date like 2026-12-01")),
    };
    let from = parse(
        &query.from,
        today.checked_sub(jiff::Span::new().days(6)).unwrap_or(today),
        "from",
    )?;
    // Sites east of here are already a day ahead: the default period reaches into tomorrow.
    let to = parse(&query.to, today.tomorrow().unwrap_or(today), "to")?;
    if to < from {
        return Err(format!("to={to} is before from={from}"));
    }
    Ok((from, to))
}

fn bad_request(why: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{why}\n"))
}

struct TrafficRow {
    bucket_start: String,
    site: String,
    passages_in: i64,
    passages_out: i64,
}

#[derive(Template)]
#[template(path = "hq_traffic.html")]
struct TrafficPage {
    site: String,
    from: String,
    to: String,
    hourly: bool,
    only: String,
    sites: Vec<String>,
    rows: Vec<TrafficRow>,
    csv_href: String,
}

async fn traffic(state: web::Data<HqState>, query: web::Query<ReportQuery>) -> actix_web::Result<HttpResponse> {
    let (from, to) = match period(&query) {
        Ok(period) => period,
        Err(why) => return Ok(bad_request(&why)),
    };
    let hourly = match query.bucket.as_deref() {
        None | Some("") | Some("day") => false,
        Some("hour") => true,
        Some(other) => return Ok(bad_request(&format!("bucket={other:?}: expected hour or day"))),
    };
    let only = query.site.clone().filter(|s| !s.is_empty());
    let filter = only.clone();
    let (rows, sites) = read(&state, move |conn| {
        let bucket = if hourly { "bucket_start" } else { "day" };
        let mut stmt = conn.prepare(&format!(
            "SELECT {bucket}, site, SUM(passages_in), SUM(passages_out) FROM site_traffic
             WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR site = ?3)
             GROUP BY {bucket}, site ORDER BY {bucket}, site"
        ))?;
        let rows = stmt.query_map(rusqlite::params![from.to_string(), to.to_string(), filter], |r| {
            Ok(TrafficRow {
                bucket_start: r.get(0)?,
                site: r.get(1)?,
                passages_in: r.get(2)?,
                passages_out: r.get(3)?,
            })
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare("SELECT site FROM sites ORDER BY site")?;
        let sites = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok((rows, sites))
    })
    .await?;
    if wants_csv(&query.format) {
        let mut csv = Csv::with_header(&["bucket_start", "site", "in", "out"]);
        for r in &rows {
            csv.row(&[
                r.bucket_start.clone(),
                r.site.clone(),
                r.passages_in.to_string(),
                r.passages_out.to_string(),
            ]);
        }
        return Ok(csv.into_response("network-traffic.csv"));
    }
    let only = only.unwrap_or_default();
    let csv_href = format!(
        "/reports/traffic?from={from}&to={to}&bucket={}&site={}&format=csv",
        if hourly { "hour" } else { "day" },
        urlencode(&only)
    );
    render(&TrafficPage {
        site: "Network".into(),
        from: from.to_string(),
        to: to.to_string(),
        hourly,
        only,
        sites,
        rows,
        csv_href,
    })
}

struct EquipmentRow {
    site: String,
    device: String,
    kind: String,
    uptime_pct: String,
    faults: i64,
    mttr_seconds: Option<i64>,
}

#[derive(Template)]
#[template(path = "hq_equipment.html")]
struct EquipmentPage {
    site: String,
    from: String,
    to: String,
    only: String,
    rows: Vec<EquipmentRow>,
    csv_href: String,
}

async fn equipment(state: web::Data<HqState>, query: web::Query<ReportQuery>) -> actix_web::Result<HttpResponse> {
    let (from, to) = match period(&query) {
        Ok(period) => period,
        Err(why) => return Ok(bad_request(&why)),
    };
    let only = query.site.clone().filter(|s| !s.is_empty());
    let filter = only.clone();
    let now = jiff::Timestamp::now();
    let rows = read(&state, move |conn| {
        let mut stmt = conn.prepare(
            "SELECT d.site, d.device, d.kind, d.offline_since, s.timezone,
               COALESCE(SUM(e.faults), 0), COALESCE(SUM(e.repairs), 0), COALESCE(SUM(e.repair_seconds), 0),
               COALESCE(SUM(e.offline_seconds), 0)
             FROM site_devices d JOIN sites s ON s.site = d.site
             LEFT JOIN site_equipment_days e ON e.site = d.site AND e.device = d.device AND e.day BETWEEN ?1 AND ?2
             WHERE d.decommissioned = 0 AND (?3 IS NULL OR d.site = ?3)
             GROUP BY d.site, d.device ORDER BY d.site, d.device",
        )?;
        let (first, last) = (from.to_string(), to.to_string());
        let rows = stmt.query_map(rusqlite::params![first, last, filter], |r| {
            let offline_since: Option<String> = r.get(3)?;
            let timezone: String = r.get(4)?;
            let (faults, repairs, repair_seconds, mut offline): (i64, i64, i64, i64) =
                (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?);
            let tz = TimeZone::get(&timezone).unwrap_or(TimeZone::UTC);
            // An outage still going counts up to now.
            if let Some(since) = offline_since.and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
                offline += split_by_day(since, now, &tz)
                    .into_iter()
                    .filter(|(day, _)| *day >= first && *day <= last)
                    .map(|(_, seconds)| seconds)
                    .sum::<i64>();
            }
            let uptime = 100.0 * (1.0 - offline as f64 / elapsed_in_period(from, to, now, &tz) as f64);
            Ok(EquipmentRow {
                site: r.get(0)?,
                device: r.get(1)?,
                kind: r.get(2)?,
                uptime_pct: format!("{:.2}", uptime.clamp(0.0, 100.0)),
                faults,
                mttr_seconds: (repairs > 0).then(|| repair_seconds / repairs),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    if wants_csv(&query.format) {
        let mut csv = Csv::with_header(&["site", "device", "kind", "uptime_pct", "faults", "mttr_seconds"]);
        for r in &rows {
            csv.row(&[
                r.site.clone(),
                r.device.clone(),
                r.kind.clone(),
                r.uptime_pct.clone(),
                r.faults.to_string(),
                r.mttr_seconds.map(|s| s.to_string()).unwrap_or_default(),
            ]);
        }
        return Ok(csv.into_response("network-equipment.csv"));
    }
    let only = only.unwrap_or_default();
    let csv_href = format!(
        "/reports/equipment?from={from}&to={to}&site={}&format=csv",
        urlencode(&only)
    );
    render(&EquipmentPage {
        site: "Network".into(),
        from: from.to_string(),
        to: to.to_string(),
        only,
        rows,
        csv_href,
    })
}

/// `200 ok`, or `200 degraded: …` while the cluster is away (the pages still show what was consumed).
async fn healthz(state: web::Data<HqState>) -> HttpResponse {
    let progress = state.consumer.progress();
    let body = if progress.connected {
        "ok\n".to_owned()
    } else {
        format!(
            "degraded: consumer: {}\n",
            progress.last_error.unwrap_or_else(|| "connecting".into())
        )
    };
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(body)
}
