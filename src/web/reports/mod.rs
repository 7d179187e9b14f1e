//! The managers' reports: `/reports/traffic`, `/reports/equipment`, `/reports/recognitions`,
//! `/reports/maintenance`, `/reports/alarms`, `/reports/occupancy` and `/reports/attendance`. Each reads only
//! its read tables, shows its rows as an HTML page (with a bar chart drawn here as inline SVG: no script, no
//! CDN) and, with `?format=csv`, returns the very same rows as CSV for scripts and BI tools.
//!
//! Query parameters are parsed at the edge into typed values ([`Period`], [`Bucket`],
//! [`DeviceId`](crate::domain::DeviceId)); anything unusable is a 400 with one line saying what is wrong. Periods
//! are whole local days in the site's time zone, and every time shown or written is in that zone.
//!
//! This file holds the routes and the glue the reports share (the CSV response, the filter form, how many rows a
//! page lists); `params` parses the query, `buckets` groups rows in local hours and days, `chart` draws the bar
//! chart, and each report has its own file: `traffic`, `equipment`, `recognitions`, `maintenance`, `alarms`, `occupancy`, `attendance`.

mod alarms;
mod attendance;
mod buckets;
mod chart;
mod equipment;
mod maintenance;
mod occupancy;
mod params;
mod recognitions;
mod traffic;

pub(crate) use params::day_start;

use super::csv::Csv;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use params::{Bucket, Period};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports/traffic", web::get().to(traffic::traffic))
        .route("/reports/equipment", web::get().to(equipment::equipment))
        .route("/reports/recognitions", web::get().to(recognitions::recognitions))
        .route("/reports/maintenance", web::get().to(maintenance::maintenance))
        .route("/reports/alarms", web::get().to(alarms::alarms))
        .route("/reports/occupancy", web::get().to(occupancy::occupancy))
        .route("/reports/attendance", web::get().to(attendance::attendance_report));
}

fn csv_response(report: &str, period: &Period, csv: Csv) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{report}-{}-{}.csv\"", period.from, period.to),
        ))
        .body(csv.into_string())
}

fn today(tz: &TimeZone) -> Date {
    Timestamp::now().to_zoned_datetime(tz.clone()).date()
}

/// A duration for people: `12h 30m`, `4m 05s`, `9s`, `3d 2h`.
fn human_duration(seconds: i64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn period_words(period: &Period) -> String {
    if period.from == period.to {
        period.from.to_string()
    } else {
        format!("{} to {}", period.from, period.to)
    }
}

/// An option of a filter's select box.
pub struct Choice {
    pub value: String,
    pub selected: bool,
}

fn choices(values: Vec<String>, selected: Option<&str>) -> Vec<Choice> {
    let mut values = values;
    // A filter value no row has any more (a renamed zone, a link from elsewhere) stays visible as selected.
    if let Some(selected) = selected
        && !values.iter().any(|v| v == selected)
    {
        values.push(selected.to_owned());
        values.sort();
    }
    values
        .into_iter()
        .map(|value| Choice {
            selected: Some(value.as_str()) == selected,
            value,
        })
        .collect()
}

fn strings(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The form's current values.
pub struct Filters {
    pub from: String,
    pub to: String,
    pub bucket: &'static str,
}

impl Filters {
    fn new(period: &Period, bucket: Bucket) -> Self {
        Filters {
            from: period.from.to_string(),
            to: period.to.to_string(),
            bucket: bucket.as_str(),
        }
    }
}

/// Rows a report page lists before it switches to totals per bucket: a year of a whole site per device would be
/// tens of thousands of rows (megabytes of HTML); the CSV always has them all.
const MAX_PAGE_ROWS: usize = 500;

/// How a report's loader shapes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One row per bucket and device (camera); at most this many rows, if given.
    Each(Option<usize>),
    /// One row per bucket, summed over the devices (device empty).
    Totals,
}

/// The page's rows: one per bucket and device while that stays short, else totals per bucket (`true` when
/// totals).
fn rows_for_page<R>(load: impl Fn(Shape) -> rusqlite::Result<Vec<R>>) -> rusqlite::Result<(Vec<R>, bool)> {
    let rows = load(Shape::Each(Some(MAX_PAGE_ROWS + 1)))?;
    if rows.len() <= MAX_PAGE_ROWS {
        return Ok((rows, false));
    }
    Ok((load(Shape::Totals)?, true))
}

/// The distinct values of an indexed column, smallest first, found by stepping through the index (one seek per
/// value) instead of reading every row.
fn distinct_indexed(conn: &rusqlite::Connection, table: &str, column: &str) -> rusqlite::Result<Vec<String>> {
    strings(
        conn,
        &format!(
            "WITH RECURSIVE v(x) AS (
                 SELECT MIN({column}) FROM {table}
                 UNION ALL
                 SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > x) FROM v WHERE x IS NOT NULL
             )
             SELECT x FROM v WHERE x IS NOT NULL"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_two_largest_units() {
        assert_eq!(human_duration(9), "9s");
        assert_eq!(human_duration(245), "4m 05s");
        assert_eq!(human_duration(45_000), "12h 30m");
        assert_eq!(human_duration(3 * 86_400 + 7_200), "3d 2h");
    }
    use actix_web::http::StatusCode;
    use jiff::civil::date;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn csv_downloads_are_named_after_the_report_and_period() {
        let tz = berlin();
        let period = Period::new(date(2026, 3, 1), date(2026, 3, 7), &tz).unwrap();
        let response = csv_response("traffic", &period, Csv::with_header(&["a"]));
        assert_eq!(response.status(), StatusCode::OK);
        let header = |name| response.headers().get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header(header::CONTENT_TYPE), "text/csv; charset=utf-8");
        assert_eq!(
            header(header::CONTENT_DISPOSITION),
            "attachment; filename=\"traffic-2026-03-01-2026-03-07.csv\""
        );
    }
}
