//! `/reports/equipment`: each device's uptime, faults and time to repair over the period, and its latest fault
//! episodes, as a page or CSV.

use super::params::{Bucket, EquipmentQuery, Format, csv_href};
use super::{Filters, csv_response, human_duration, period_words, today};
use crate::web::AppState;
use crate::web::csv::Csv;
use crate::web::equipment_figures::{self, Figures, Span, Uptime};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use jiff::Timestamp;

/// One device's line in the report.
pub struct HealthLine {
    pub device: String,
    pub kind: String,
    pub name: String,
    pub zone: String,
    pub decommissioned: bool,
    pub uptime: Option<Uptime>,
    pub faults: i64,
    pub mttr_seconds: Option<i64>,
    pub mttr: String,
}

/// One fault episode's line in the report.
pub struct EpisodeLine {
    pub device: String,
    pub code: String,
    pub detail: String,
    pub opened: String,
    pub cleared: Option<String>,
    pub repair: String,
}

#[derive(Template)]
#[template(path = "reports_equipment.html")]
struct EquipmentPage {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    devices: Vec<HealthLine>,
    episodes: Vec<EpisodeLine>,
    /// How many episodes the period has; `episodes` holds at most [`MAX_EPISODES_SHOWN`] of them.
    episodes_total: usize,
    csv_href: String,
}

/// Fault episodes listed on the equipment page, newest first.
const MAX_EPISODES_SHOWN: usize = 200;

pub(super) async fn equipment(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = EquipmentQuery::parse(req.query_string(), today(&tz), &tz)?;
    let period = query.period;
    let (start, end) = (period.start.as_microsecond(), period.end.as_microsecond());
    let span = Span {
        start,
        end,
        // Nothing is known about the future: an interval still open counts only up to now.
        known_until: end.min(Timestamp::now().as_microsecond()),
    };
    let format = query.format;
    let (lines, (episodes, episodes_total)) = crate::web::read_views(&state, move |conn| {
        let (mut figures, episodes_total) = equipment_figures::figures(conn, span)?;
        // Devices in service at some point of the period (or still in service).
        let lines = conn
            .prepare_cached(
                "SELECT device_id, kind, name, zone, decommissioned_at IS NOT NULL FROM equipment_devices
                 WHERE decommissioned_at IS NULL OR decommissioned_at >= ?1 ORDER BY device_id",
            )?
            .query_map([start], |r| {
                let device: String = r.get(0)?;
                let Figures {
                    uptime,
                    faults,
                    mttr_seconds,
                } = figures.remove(&device).unwrap_or_default();
                Ok(HealthLine {
                    device,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    zone: r.get(3)?,
                    decommissioned: r.get(4)?,
                    uptime,
                    faults,
                    mttr: mttr_seconds.map(human_duration).unwrap_or_default(),
                    mttr_seconds,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // Only the page lists episodes: the latest ones (a year of a busy site has thousands, and a page of them
        // all is megabytes nobody reads; the full list is a shorter period away).
        let episodes = match format {
            Format::Csv => vec![],
            Format::Html => equipment_figures::latest_episodes(conn, span, MAX_EPISODES_SHOWN)?,
        };
        Ok((lines, (episodes, episodes_total)))
    })
    .await?;

    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["device", "kind", "uptime_pct", "faults", "mttr_seconds"]);
        for line in &lines {
            csv.row(&[
                line.device.clone(),
                line.kind.clone(),
                line.uptime.map(|u| u.to_string()).unwrap_or_default(),
                line.faults.to_string(),
                line.mttr_seconds.map(|s| s.to_string()).unwrap_or_default(),
            ]);
        }
        return Ok(csv_response("equipment", &period, csv));
    }

    let page = EquipmentPage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&period),
        filters: Filters::new(&period, Bucket::Day),
        csv_href: csv_href("/reports/equipment", &period, &[]),
        devices: lines,
        episodes_total,
        episodes: episodes
            .into_iter()
            .map(|e| EpisodeLine {
                opened: crate::web::local_time(&tz, e.opened_at),
                cleared: e.cleared_at.map(|c| crate::web::local_time(&tz, c)),
                repair: e
                    .cleared_at
                    .map(|c| human_duration((c - e.opened_at) / 1_000_000))
                    .unwrap_or_default(),
                device: e.device,
                code: e.code,
                detail: crate::visible::visible(&e.detail),
            })
            .collect(),
    };
    crate::web::render(&page)
}
