//! `/reports/maintenance`: per device, work orders opened and closed in the period, mean time between failures
//! (corrective orders) and to repair (opened to resolved), preventive orders done by their due date; orders opened
//! per day as a chart; the orders overdue now. As a page or CSV.

use super::chart::{Chart, ChartBucket, Series};
use super::params::{Bucket, EquipmentQuery, Format, csv_href};
use super::{Filters, csv_response, human_duration, period_words, today};
use crate::web::AppState;
use crate::web::csv::Csv;
use crate::work_orders::{self, Filter};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use jiff::Timestamp;
use std::collections::HashMap;

/// One device's maintenance figures for the period.
pub struct DeviceLine {
    pub device: String,
    pub name: String,
    pub zone: String,
    pub opened: i64,
    pub closed: i64,
    pub failures: i64,
    pub mtbf_seconds: Option<i64>,
    pub mtbf: String,
    pub mttr_seconds: Option<i64>,
    pub mttr: String,
    pub preventive_resolved: i64,
    /// Of those, done by their due date, in percent.
    pub on_time_pct: Option<i64>,
}

pub struct OverdueLine {
    pub id: String,
    pub device: String,
    pub title: String,
    pub due: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "reports_maintenance.html")]
struct MaintenancePage {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    devices: Vec<DeviceLine>,
    overdue: Vec<OverdueLine>,
    chart: Chart,
    csv_href: String,
}

/// Per device: opened, closed, corrective opened, summed repair µs and repairs, preventive resolved and on time.
type Sums = (i64, i64, i64, i64, i64, i64, i64);

pub(super) async fn maintenance(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = EquipmentQuery::parse(req.query_string(), today(&tz), &tz)?;
    let period = query.period;
    let (start, end) = (period.start.as_microsecond(), period.end.as_microsecond());
    let now = Timestamp::now().as_microsecond();
    // Failures are spread over the time the period has had so far.
    let known_seconds = (end.min(now) - start).max(0) / 1_000_000;
    let (devices, opened, overdue) = crate::web::read_views(&state, move |conn| {
        let mut sums: HashMap<String, Sums> = HashMap::new();
        let mut statement = conn.prepare_cached(
            // A comparison with a NULL instant (an order not closed yet) is NULL, and SUM of only NULLs is NULL:
            // TOTAL counts them as 0.
            "SELECT device_id,
                    TOTAL(opened_at >= ?1 AND opened_at < ?2),
                    TOTAL(closed_at >= ?1 AND closed_at < ?2),
                    TOTAL(kind = 'corrective' AND opened_at >= ?1 AND opened_at < ?2),
                    TOTAL(CASE WHEN kind = 'corrective' AND resolved_at >= ?1 AND resolved_at < ?2
                               THEN resolved_at - opened_at END),
                    TOTAL(kind = 'corrective' AND resolved_at >= ?1 AND resolved_at < ?2),
                    TOTAL(kind = 'preventive' AND due_at IS NOT NULL AND resolved_at >= ?1 AND resolved_at < ?2),
                    TOTAL(kind = 'preventive' AND due_at IS NOT NULL AND resolved_at >= ?1 AND resolved_at < ?2
                          AND resolved_at <= due_at)
             FROM work_orders GROUP BY device_id",
        )?;
        let rows = statement.query_map([start, end], |r| {
            let n = |i| r.get::<_, f64>(i).map(|v| v as i64);
            Ok((
                r.get::<_, String>(0)?,
                (n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, n(6)?, n(7)?),
            ))
        })?;
        for row in rows {
            let (device, figures) = row?;
            sums.insert(device, figures);
        }
        let mut devices = Vec::new();
        let mut statement =
            conn.prepare_cached("SELECT device_id, name, zone FROM device_status ORDER BY device_id")?;
        for row in statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
            let (device, name, zone): (String, String, String) = row?;
            let (opened, closed, failures, repair_micros, repairs, preventive_resolved, on_time) =
                sums.remove(&device).unwrap_or_default();
            let mtbf_seconds = (failures > 0).then(|| known_seconds / failures);
            let mttr_seconds = (repairs > 0).then(|| repair_micros / repairs / 1_000_000);
            devices.push(DeviceLine {
                device,
                name,
                zone,
                opened,
                closed,
                failures,
                mtbf: mtbf_seconds.map(human_duration).unwrap_or_default(),
                mtbf_seconds,
                mttr: mttr_seconds.map(human_duration).unwrap_or_default(),
                mttr_seconds,
                preventive_resolved,
                on_time_pct: (preventive_resolved > 0).then(|| on_time * 100 / preventive_resolved),
            });
        }
        let opened: Vec<(i64, String)> = conn
            .prepare_cached("SELECT opened_at, kind FROM work_orders WHERE opened_at >= ?1 AND opened_at < ?2")?
            .query_map([start, end], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let overdue = work_orders::list(
            conn,
            &Filter {
                overdue_at: Some(now),
                limit: Some(200),
                ..Filter::default()
            },
        )?;
        Ok((devices, opened, overdue))
    })
    .await?;

    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&[
            "device",
            "opened",
            "closed",
            "failures",
            "mtbf_seconds",
            "mttr_seconds",
            "preventive_resolved",
            "preventive_on_time_pct",
        ]);
        let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for d in &devices {
            csv.row(&[
                d.device.clone(),
                d.opened.to_string(),
                d.closed.to_string(),
                d.failures.to_string(),
                text(d.mtbf_seconds),
                text(d.mttr_seconds),
                d.preventive_resolved.to_string(),
                text(d.on_time_pct),
            ]);
        }
        return Ok(csv_response("maintenance", &period, csv));
    }

    // Orders opened per local day: corrective beside preventive.
    let mut per_day: HashMap<jiff::civil::Date, [i64; 2]> = HashMap::new();
    for (opened_at, kind) in &opened {
        if let Ok(at) = Timestamp::from_microsecond(*opened_at) {
            let day = at.to_zoned_datetime(tz.clone()).date();
            per_day.entry(day).or_default()[usize::from(kind == "preventive")] += 1;
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
        "maintenance-chart",
        format!("Work orders opened per day, {}", period_words(&period)),
        format!(
            "{} days; {} corrective and {} preventive orders opened.",
            buckets.len(),
            buckets.iter().map(|b| b.values[0]).sum::<i64>(),
            buckets.iter().map(|b| b.values[1]).sum::<i64>()
        ),
        [
            Series {
                class: "bar-a",
                name: "corrective",
            },
            Series {
                class: "bar-b",
                name: "preventive",
            },
        ],
        &buckets,
    );
    let local = |micros: i64| crate::web::local_time(&tz, micros);
    crate::web::render(&MaintenancePage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&period),
        filters: Filters::new(&period, Bucket::Day),
        csv_href: csv_href("/reports/maintenance", &period, &[]),
        devices,
        overdue: overdue
            .into_iter()
            .map(|o| OverdueLine {
                id: o.id(),
                due: o.due_at.map(local).unwrap_or_default(),
                state: o.state_words(),
                device: o.device,
                title: o.title,
            })
            .collect(),
        chart,
    })
}
