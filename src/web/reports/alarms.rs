//! `/reports/alarms`: the alarms first seen in the period, by type and severity (how many, how many still active,
//! mean time to acknowledge and to clear) and by zone; alarms raised per day as a chart (critical and major
//! beside minor and warning). As a page or as CSV (one row per type, severity and zone).

use super::chart::{Chart, ChartBucket, Series};
use super::params::{Bucket, EquipmentQuery, Format, csv_href};
use super::{Filters, csv_response, human_duration, period_words, today};
use crate::web::AppState;
use crate::web::csv::Csv;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use jiff::Timestamp;
use std::collections::HashMap;

/// The figures of one group of alarms (a type and severity, or a zone).
pub struct AlarmLine {
    pub alarm_type: String,
    pub severity: String,
    pub zone: String,
    pub raised: i64,
    pub active: i64,
    pub acknowledged: i64,
    pub cleared: i64,
    pub ack_seconds: Option<i64>,
    pub to_ack: String,
    pub clear_seconds: Option<i64>,
    pub to_clear: String,
}

#[derive(Template)]
#[template(path = "reports_alarms.html")]
struct AlarmsReport {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    by_type: Vec<AlarmLine>,
    by_zone: Vec<AlarmLine>,
    raised: i64,
    chart: Chart,
    csv_href: String,
}

/// Groups alarms first seen in `[start, end)` by `group`: SQL for three columns, type, severity and zone.
fn grouped(conn: &rusqlite::Connection, group: &str, start: i64, end: i64) -> rusqlite::Result<Vec<AlarmLine>> {
    // Times to acknowledge and clear count from the first sighting; a reactivated alarm's clock does not restart.
    let sql = format!(
        "SELECT {group}, COUNT(*), TOTAL(active), COUNT(acknowledged_at), COUNT(cleared_at),
                AVG(acknowledged_at - first_seen), AVG(cleared_at - first_seen)
         FROM alarms WHERE first_seen >= ?1 AND first_seen < ?2
         GROUP BY 1, 2, 3 ORDER BY MAX(severity_rank) DESC, COUNT(*) DESC, 1, 2, 3"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let lines = statement.query_map([start, end], |r| {
        let ack_seconds = r.get::<_, Option<f64>>(7)?.map(|m| (m / 1e6).round() as i64);
        let clear_seconds = r.get::<_, Option<f64>>(8)?.map(|m| (m / 1e6).round() as i64);
        Ok(AlarmLine {
            alarm_type: r.get(0)?,
            severity: r.get(1)?,
            zone: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            raised: r.get(3)?,
            active: r.get::<_, f64>(4)? as i64,
            acknowledged: r.get(5)?,
            cleared: r.get(6)?,
            to_ack: ack_seconds.map(human_duration).unwrap_or_default(),
            ack_seconds,
            to_clear: clear_seconds.map(human_duration).unwrap_or_default(),
            clear_seconds,
        })
    })?;
    lines.collect()
}

pub(super) async fn alarms(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = EquipmentQuery::parse(req.query_string(), today(&tz), &tz)?;
    let period = query.period;
    let (start, end) = (period.start.as_microsecond(), period.end.as_microsecond());
    let (by_type, by_zone, raised) = crate::web::read_views(&state, move |conn| {
        let by_type = grouped(conn, "alarm_type, severity, NULL", start, end)?;
        let by_zone = grouped(conn, "'', '', zone", start, end)?;
        let raised: Vec<(i64, i64)> = conn
            .prepare_cached("SELECT first_seen, severity_rank FROM alarms WHERE first_seen >= ?1 AND first_seen < ?2")?
            .query_map([start, end], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((by_type, by_zone, raised))
    })
    .await?;

    if query.format == Format::Csv {
        // One row per type, severity and zone: both of the page's tables in one sheet a spreadsheet can pivot.
        let by_type_and_zone = crate::web::read_views(&state, move |conn| {
            Ok(grouped(conn, "alarm_type, severity, zone", start, end)?)
        })
        .await?;
        let mut csv = Csv::with_header(&[
            "type",
            "severity",
            "zone",
            "raised",
            "active",
            "acknowledged",
            "cleared",
            "mean_seconds_to_acknowledge",
            "mean_seconds_to_clear",
        ]);
        let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for line in &by_type_and_zone {
            csv.row(&[
                line.alarm_type.clone(),
                line.severity.clone(),
                line.zone.clone(),
                line.raised.to_string(),
                line.active.to_string(),
                line.acknowledged.to_string(),
                line.cleared.to_string(),
                text(line.ack_seconds),
                text(line.clear_seconds),
            ]);
        }
        return Ok(csv_response("alarms", &period, csv));
    }

    // Raised per local day: critical and major beside minor and warning (ranks 3, 2 and 1, 0).
    let mut per_day: HashMap<jiff::civil::Date, [i64; 2]> = HashMap::new();
    for (first_seen, rank) in &raised {
        if let Ok(at) = Timestamp::from_microsecond(*first_seen) {
            let day = at.to_zoned_datetime(tz.clone()).date();
            per_day.entry(day).or_default()[usize::from(*rank < 2)] += 1;
        }
    }
    let buckets: Vec<ChartBucket> = period
        .dates()
        .map(|day| ChartBucket {
            label: day.to_string(),
            axis_label: Some(day.strftime("%m-%d").to_string()),
            values: per_day.get(&day).copied().unwrap_or_default(),
        })
        .collect();
    let chart = Chart::bars(
        "alarms-chart",
        format!("Alarms raised per day, {}", period_words(&period)),
        format!(
            "{} days; {} critical or major and {} minor or warning alarms raised.",
            buckets.len(),
            buckets.iter().map(|b| b.values[0]).sum::<i64>(),
            buckets.iter().map(|b| b.values[1]).sum::<i64>()
        ),
        [
            Series {
                class: "bar-a",
                name: "critical or major",
            },
            Series {
                class: "bar-b",
                name: "minor or warning",
            },
        ],
        &buckets,
    );
    crate::web::render(&AlarmsReport {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&period),
        filters: Filters::new(&period, Bucket::Day),
        csv_href: csv_href("/reports/alarms", &period, &[]),
        raised: raised.len() as i64,
        by_type,
        by_zone,
        chart,
    })
}
