//! `/reports/occupancy?date=&zone=`: each zone's count of people through one local day, per hour (the highest
//! count in the hour beside the count at its end), with the day's peak marked; CSV `time,zone,occupancy`, one row
//! per change (a passage, the daily reset or a correction).

use super::chart::{Chart, ChartBucket, Series};
use super::params::{Format, OccupancyQuery};
use super::{csv_response, today};
use crate::web::AppState;
use crate::web::csv::Csv;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

/// One zone's day.
pub struct ZoneDay {
    pub zone: String,
    pub capacity: Option<u32>,
    /// The count when the day began, and the highest during it (with when, site time).
    pub at_start: i64,
    pub peak: i64,
    pub peak_at: String,
    pub changes: usize,
    pub chart: Chart,
}

#[derive(Template)]
#[template(path = "reports_occupancy.html")]
struct OccupancyReport {
    site: String,
    timezone: String,
    date: String,
    zone: String,
    zone_names: Vec<String>,
    zones: Vec<ZoneDay>,
    csv_href: String,
}

pub(super) async fn occupancy(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = OccupancyQuery::parse(req.query_string(), today(&tz), &tz)?;
    let (start, end) = (query.day.start.as_microsecond(), query.day.end.as_microsecond());
    let zones: Vec<String> = match &query.zone {
        Some(zone) => vec![zone.clone()],
        None => state.config.zone_names(),
    };
    let wanted = zones.clone();
    let rows = crate::web::read_views(&state, move |conn| {
        let mut out = Vec::new();
        for zone in wanted {
            let at_start: i64 = conn
                .prepare_cached(
                    "SELECT count FROM occupancy_changes WHERE zone = ?1 AND at < ?2 ORDER BY at DESC, position DESC LIMIT 1",
                )?
                .query_row(rusqlite::params![zone, start], |r| r.get(0))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    e => Err(e),
                })?;
            let changes: Vec<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT at, count FROM occupancy_changes WHERE zone = ?1 AND at >= ?2 AND at < ?3
                     ORDER BY at, position",
                )?
                .query_map(rusqlite::params![zone, start, end], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            out.push((zone, at_start, changes));
        }
        Ok(out)
    })
    .await?;

    let iso = crate::web::iso_time;
    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["time", "zone", "occupancy"]);
        for (zone, _, changes) in &rows {
            for (at, count) in changes {
                csv.row(&[iso(*at), zone.clone(), count.to_string()]);
            }
        }
        return Ok(csv_response("occupancy", &query.day, csv));
    }

    let local = |micros: i64| crate::web::local_time(&tz, micros);
    let hours: Vec<(i64, jiff::ZonedDateTime)> = {
        // Every local hour of the day (23 or 25 on DST days), as its first instant.
        let mut hours = Vec::new();
        let mut at = query.day.start.to_zoned_datetime(tz.clone());
        while at.timestamp() < query.day.end {
            hours.push((at.timestamp().as_microsecond(), at.clone()));
            at = match at.checked_add(jiff::SignedDuration::from_hours(1)) {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        hours
    };
    let days = rows
        .into_iter()
        .enumerate()
        .map(|(n, (zone, at_start, changes))| {
            let (mut peak, mut peak_at) = (at_start, start);
            let mut current = at_start;
            let mut next = changes.iter().peekable();
            let buckets: Vec<ChartBucket> = hours
                .iter()
                .enumerate()
                .map(|(i, (_, zoned))| {
                    let hour_end = hours.get(i + 1).map_or(end, |(s, _)| *s);
                    let mut highest = current;
                    while let Some((at, count)) = next.next_if(|(at, _)| *at < hour_end) {
                        current = *count;
                        highest = highest.max(current);
                        if current > peak {
                            (peak, peak_at) = (current, *at);
                        }
                    }
                    ChartBucket {
                        label: zoned.strftime("%H:%M").to_string(),
                        axis_label: Some(zoned.strftime("%H").to_string()),
                        values: [highest, current],
                    }
                })
                .collect();
            let chart = Chart::bars(
                format!("occupancy-chart-{n}"),
                format!("People in {zone}, {}", query.day.from),
                format!("{} hours; peak {peak} at {}.", buckets.len(), local(peak_at)),
                [
                    Series {
                        class: "bar-a",
                        name: "highest in the hour",
                    },
                    Series {
                        class: "bar-b",
                        name: "at the hour's end",
                    },
                ],
                &buckets,
            );
            ZoneDay {
                capacity: state.config.capacity_of(&zone),
                zone,
                at_start,
                peak,
                peak_at: local(peak_at),
                changes: changes.len(),
                chart,
            }
        })
        .collect();
    let zone = query.zone.clone().unwrap_or_default();
    let mut csv_href = format!("/reports/occupancy?date={}&format=csv", query.day.from);
    if !zone.is_empty() {
        csv_href.push_str(&format!("&zone={}", crate::web::urlencode(&zone)));
    }
    crate::web::render(&OccupancyReport {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        date: query.day.from.to_string(),
        zone,
        zone_names: state.config.zone_names(),
        zones: days,
        csv_href,
    })
}
