//! `/reports/traffic`: passages in and out per hour or day, per device and zone, as a page or CSV.

use super::buckets::{BucketKey, BucketStarts, bucket_key, chart_buckets, totals_per_bucket};
use super::chart::{Chart, Series};
use super::params::{Bucket, Format, TrafficQuery, csv_href};
use super::{Choice, Filters, Shape, choices, csv_response, distinct_indexed, period_words, rows_for_page, today};
use crate::domain::DeviceId;
use crate::web::AppState;
use crate::web::csv::Csv;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

struct TrafficRow {
    bucket: BucketKey,
    device: String,
    zone: String,
    passages_in: i64,
    passages_out: i64,
}

/// One row of the page's table.
pub struct TrafficLine {
    pub bucket: String,
    pub device: String,
    pub zone: String,
    pub passages_in: i64,
    pub passages_out: i64,
}

#[derive(Template)]
#[template(path = "reports_traffic.html")]
struct TrafficPage {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    devices: Vec<Choice>,
    zones: Vec<Choice>,
    rows: Vec<TrafficLine>,
    /// The rows are totals per bucket (too many per-device rows for a page; the CSV has them).
    totals_only: bool,
    total_in: i64,
    total_out: i64,
    chart: Chart,
    csv_href: String,
}

/// Traffic rows; with [`Shape::Totals`] the zone is the filter's, or empty.
fn load_traffic(conn: &rusqlite::Connection, query: &TrafficQuery, shape: Shape) -> rusqlite::Result<Vec<TrafficRow>> {
    // Day buckets read the per-day rollup (its local date is the stored one, so a daylight-saving day sums its
    // 23 or 25 hours); hour buckets the hourly rows.
    let (columns, table, bucket) = match query.bucket {
        Bucket::Hour => ("bucket_start, NULL", "traffic", "bucket_start"),
        Bucket::Day => ("NULL, local_date", "traffic_daily", "local_date"),
    };
    // A filter is written into the statement only when given (never `?3 IS NULL OR ...`), so SQLite can use the
    // device or zone index instead of reading every row of the period.
    let (from, to) = (query.period.from.to_string(), query.period.to.to_string());
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&from, &to];
    let mut filters = String::new();
    let device = query.device.as_ref().map(DeviceId::as_str);
    if let Some(device) = &device {
        values.push(device);
        filters.push_str(&format!(" AND device_id = ?{}", values.len()));
    }
    if let Some(zone) = &query.zone {
        values.push(zone);
        filters.push_str(&format!(" AND zone = ?{}", values.len()));
    }
    let sql = match shape {
        Shape::Each(limit) => format!(
            "SELECT {columns}, device_id, zone, passages_in, passages_out FROM {table}
             WHERE local_date BETWEEN ?1 AND ?2{filters} ORDER BY {bucket}, device_id, zone{}",
            limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
        ),
        Shape::Totals => format!(
            "SELECT {columns}, '', {}, SUM(passages_in), SUM(passages_out) FROM {}
             WHERE local_date BETWEEN ?1 AND ?2{filters} GROUP BY {bucket} ORDER BY {bucket}",
            if query.zone.is_some() { "MIN(zone)" } else { "''" },
            // Totals over every device read the per-zone rollups: a row per zone and bucket, not per device.
            match (device, query.bucket) {
                (Some(_), _) => table,
                (None, Bucket::Hour) => "traffic_zone_hourly",
                (None, Bucket::Day) => "traffic_zone_daily",
            }
        ),
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(values.as_slice(), |r| {
        Ok(TrafficRow {
            bucket: bucket_key(r.get(0)?, r.get(1)?)?,
            device: r.get(2)?,
            zone: r.get(3)?,
            passages_in: r.get(4)?,
            passages_out: r.get(5)?,
        })
    })?;
    rows.collect()
}

pub(super) async fn traffic(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = TrafficQuery::parse(req.query_string(), today(&tz), &tz)?;
    let q = query.clone();
    let (rows, totals_only, devices, zones) = crate::web::read_views(&state, move |conn| {
        // The CSV has every row; the page lists per-device rows only while they stay few. Only the page needs
        // the form's choices.
        Ok(match q.format {
            Format::Csv => (load_traffic(conn, &q, Shape::Each(None))?, false, vec![], vec![]),
            Format::Html => {
                let (rows, totals_only) = rows_for_page(|shape| load_traffic(conn, &q, shape))?;
                let devices = distinct_indexed(conn, "traffic_daily", "device_id")?;
                let zones = distinct_indexed(conn, "traffic_zone_daily", "zone")?;
                (rows, totals_only, devices, zones)
            }
        })
    })
    .await?;

    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["bucket_start", "device", "zone", "in", "out"]);
        let mut starts = BucketStarts::new(&tz);
        for row in &rows {
            csv.row(&[
                starts.rfc3339(row.bucket),
                row.device.as_str(),
                row.zone.as_str(),
                row.passages_in.to_string().as_str(),
                row.passages_out.to_string().as_str(),
            ]);
        }
        return Ok(csv_response("traffic", &query.period, csv));
    }

    let totals = totals_per_bucket(rows.iter().map(|r| (r.bucket, [r.passages_in, r.passages_out])));
    let buckets = chart_buckets(query.bucket, &query.period, &tz, &totals);
    let (total_in, total_out) = rows
        .iter()
        .fold((0, 0), |(i, o), r| (i + r.passages_in, o + r.passages_out));
    let mut scope = String::new();
    if let Some(device) = &query.device {
        scope.push_str(&format!(", device {device}"));
    }
    if let Some(zone) = &query.zone {
        scope.push_str(&format!(", zone {zone}"));
    }
    let chart = Chart::bars(
        "traffic-chart",
        format!(
            "Passages in and out per {}, {}{scope}",
            query.bucket.as_str(),
            period_words(&query.period)
        ),
        format!(
            "{} buckets; {total_in} in and {total_out} out in total; the busiest bucket has {} passages one way.",
            buckets.len(),
            buckets.iter().flat_map(|b| b.values).max().unwrap_or(0)
        ),
        [
            Series {
                class: "bar-a",
                name: "in",
            },
            Series {
                class: "bar-b",
                name: "out",
            },
        ],
        &buckets,
    );
    let page = TrafficPage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&query.period),
        filters: Filters::new(&query.period, query.bucket),
        devices: choices(devices, query.device.as_ref().map(DeviceId::as_str)),
        zones: choices(zones, query.zone.as_deref()),
        csv_href: csv_href(
            "/reports/traffic",
            &query.period,
            &[
                ("bucket", Some(query.bucket.as_str())),
                ("device", query.device.as_ref().map(DeviceId::as_str)),
                ("zone", query.zone.as_deref()),
            ],
        ),
        rows: rows
            .into_iter()
            .map(|r| TrafficLine {
                bucket: r.bucket.label(&tz),
                device: r.device,
                zone: r.zone,
                passages_in: r.passages_in,
                passages_out: r.passages_out,
            })
            .collect(),
        totals_only,
        total_in,
        total_out,
        chart,
    };
    crate::web::render(&page)
}
