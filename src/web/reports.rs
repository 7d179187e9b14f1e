//! The managers' reports: `/reports/traffic`, `/reports/equipment` and `/reports/recognitions`. Each reads only
//! its read tables, shows its rows as an HTML page (with a bar chart drawn here as inline SVG: no script, no
//! CDN) and, with `?format=csv`, returns the very same rows as CSV for scripts and BI tools.
//!
//! Query parameters are parsed at the edge into typed values ([`Period`], [`Bucket`], [`DeviceId`]); anything
//! unusable is a 400 with one line saying what is wrong. Periods are whole local days in the site's time zone,
//! and every time shown or written is in that zone.

use super::csv::Csv;
use super::equipment_figures::{self, Figures, Span, Uptime};
use super::subjects::SubjectLine;
use crate::domain::DeviceId;
use crate::web::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports/traffic", web::get().to(traffic))
        .route("/reports/equipment", web::get().to(equipment))
        .route("/reports/recognitions", web::get().to(recognitions));
}

// ---------------------------------------------------------------------------------------------------------------
// Query parameters

/// A query the report cannot answer; the text is the whole (one-line) 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(String);

impl fmt::Display for BadQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ResponseError for BadQuery {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{}\n", self.0))
    }
}

fn bad(message: impl Into<String>) -> BadQuery {
    BadQuery(message.into())
}

/// The raw parameters of one request, checked against the names a report takes.
struct Params(HashMap<String, String>);

impl Params {
    /// Rejects unknown names (a typo such as `form=` must not silently fall back to a default) and repeated ones.
    /// An empty value counts as absent: that is what a form's "all devices" choice or a cleared date sends.
    fn parse(query: &str, allowed: &[&str]) -> Result<Params, BadQuery> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| bad("the query string is not valid URL encoding"))?
            .into_inner();
        let mut values = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(bad(format!(
                    "unknown parameter {name:?}: this report takes {}",
                    allowed.join(", ")
                )));
            }
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if values.insert(name.clone(), value.to_owned()).is_some() {
                return Err(bad(format!("parameter {name} is given more than once")));
            }
        }
        Ok(Params(values))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn device(&self, name: &str) -> Result<Option<DeviceId>, BadQuery> {
        self.get(name)
            .map(|s| DeviceId::parse(s).map_err(|e| bad(format!("{name}: {e}"))))
            .transpose()
    }
}

/// How many days a period covers when the request does not say: the last week, today included.
const DEFAULT_DAYS: i64 = 7;
/// The longest period a report covers, so one request cannot ask for centuries of buckets.
const MAX_DAYS: i64 = 366;
/// The longest period hour buckets cover (744 bars is as many as a chart can still show).
const MAX_HOUR_BUCKET_DAYS: i64 = 31;

/// Whole local days, `from` to `to` inclusive, with the instants they begin and end at in the site's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
    /// The first instant of `from`.
    pub start: Timestamp,
    /// The first instant after `to`.
    pub end: Timestamp,
}

fn parse_date(name: &str, value: &str) -> Result<Date, BadQuery> {
    Date::strptime("%Y-%m-%d", value).map_err(|_| bad(format!("{name}: {value:?} is not a date (expected YYYY-MM-DD)")))
}

/// The first instant of a local date (midnight, or the first time after a gap when a zone skips midnight).
fn day_start(date: Date, tz: &TimeZone) -> Option<ZonedDateTime> {
    date.to_zoned_datetime(tz.clone()).and_then(|z| z.start_of_day()).ok()
}

impl Period {
    /// `to` defaults to today, `from` to six days before `to`.
    fn parse(params: &Params, today: Date, tz: &TimeZone) -> Result<Period, BadQuery> {
        let to = params
            .get("to")
            .map(|s| parse_date("to", s))
            .transpose()?
            .unwrap_or(today);
        let from = match params.get("from") {
            Some(s) => parse_date("from", s)?,
            None => to
                .checked_sub((DEFAULT_DAYS - 1).days())
                .map_err(|_| bad(format!("to: {to} is out of range")))?,
        };
        if from > to {
            return Err(bad(format!("from ({from}) is after to ({to})")));
        }
        let period =
            Period::new(from, to, tz).ok_or_else(|| bad(format!("the period {from} to {to} is out of range")))?;
        if period.days() > MAX_DAYS {
            return Err(bad(format!(
                "the period {from} to {to} has {} days; a report covers at most {MAX_DAYS}",
                period.days()
            )));
        }
        Ok(period)
    }

    fn new(from: Date, to: Date, tz: &TimeZone) -> Option<Period> {
        Some(Period {
            from,
            to,
            start: day_start(from, tz)?.timestamp(),
            end: day_start(to.tomorrow().ok()?, tz)?.timestamp(),
        })
    }

    /// How many days the period has, both ends included.
    fn days(&self) -> i64 {
        self.from.until(self.to).map_or(0, |span| i64::from(span.get_days())) + 1
    }

    fn dates(&self) -> impl Iterator<Item = Date> {
        let to = self.to;
        self.from.series(1.day()).take_while(move |d| *d <= to)
    }
}

/// How a report groups its rows in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Local clock hours (a daylight-saving day has 23 or 25 of them).
    Hour,
    /// Local calendar days.
    Day,
}

impl Bucket {
    /// Hours when the period is a single day, days otherwise.
    fn parse(params: &Params, period: &Period) -> Result<Bucket, BadQuery> {
        let bucket = match params.get("bucket") {
            None if period.from == period.to => Bucket::Hour,
            None => Bucket::Day,
            Some("hour") => Bucket::Hour,
            Some("day") => Bucket::Day,
            Some(other) => return Err(bad(format!("bucket: {other:?} is not hour or day"))),
        };
        if bucket == Bucket::Hour && period.days() > MAX_HOUR_BUCKET_DAYS {
            return Err(bad(format!(
                "bucket: hour buckets cover at most {MAX_HOUR_BUCKET_DAYS} days and this period has {}; use bucket=day",
                period.days()
            )));
        }
        Ok(bucket)
    }

    fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

/// What the response is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Csv,
}

impl Format {
    fn parse(params: &Params) -> Result<Format, BadQuery> {
        match params.get("format") {
            None | Some("html") => Ok(Format::Html),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(bad(format!("format: {other:?} is not html or csv"))),
        }
    }
}

/// `/reports/traffic` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficQuery {
    pub period: Period,
    pub bucket: Bucket,
    pub device: Option<DeviceId>,
    pub zone: Option<String>,
    pub format: Format,
}

/// Zones are the installer's free text, so only their length is checked.
const MAX_ZONE_LEN: usize = 200;

impl TrafficQuery {
    fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
        let params = Params::parse(query, &["from", "to", "bucket", "device", "zone", "format"])?;
        let period = Period::parse(&params, today, tz)?;
        let zone = params.get("zone").map(str::to_owned);
        if zone.as_ref().is_some_and(|z| z.chars().count() > MAX_ZONE_LEN) {
            return Err(bad(format!("zone: longer than {MAX_ZONE_LEN} characters")));
        }
        Ok(TrafficQuery {
            bucket: Bucket::parse(&params, &period)?,
            device: params.device("device")?,
            zone,
            format: Format::parse(&params)?,
            period,
        })
    }
}

/// `/reports/equipment` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EquipmentQuery {
    pub period: Period,
    pub format: Format,
}

impl EquipmentQuery {
    fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
        let params = Params::parse(query, &["from", "to", "format"])?;
        Ok(EquipmentQuery {
            period: Period::parse(&params, today, tz)?,
            format: Format::parse(&params)?,
        })
    }
}

/// `/reports/recognitions` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecognitionsQuery {
    pub period: Period,
    pub bucket: Bucket,
    pub camera: Option<DeviceId>,
    pub format: Format,
}

impl RecognitionsQuery {
    fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
        let params = Params::parse(query, &["from", "to", "bucket", "camera", "format"])?;
        let period = Period::parse(&params, today, tz)?;
        Ok(RecognitionsQuery {
            bucket: Bucket::parse(&params, &period)?,
            camera: params.device("camera")?,
            format: Format::parse(&params)?,
            period,
        })
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A link to the same report as CSV, built from the typed query so it always parses back to the same rows.
fn csv_href(path: &str, period: &Period, extra: &[(&str, Option<&str>)]) -> String {
    let mut href = format!("{path}?from={}&to={}", period.from, period.to);
    for (name, value) in extra {
        if let Some(value) = value {
            href.push_str(&format!("&{name}={}", urlencode(value)));
        }
    }
    href.push_str("&format=csv");
    href
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

// ---------------------------------------------------------------------------------------------------------------
// Buckets in time

/// Where a row's bucket starts: an hour's first instant (as the read tables store it) or a local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BucketKey {
    Hour(i64),
    Day(Date),
}

impl BucketKey {
    fn start(self, tz: &TimeZone) -> Option<ZonedDateTime> {
        match self {
            BucketKey::Hour(micros) => Timestamp::from_microsecond(micros)
                .ok()
                .map(|t| t.to_zoned_datetime(tz.clone())),
            BucketKey::Day(date) => day_start(date, tz),
        }
    }

    /// RFC 3339 with the site's offset at that instant, as the CSV contract says: `2026-03-29T03:00:00+02:00`.
    fn rfc3339(self, tz: &TimeZone) -> String {
        self.start(tz)
            .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
            .unwrap_or_default()
    }

    /// For people: `2026-03-29 03:00 CEST` (the zone's abbreviation tells apart the hour that repeats when
    /// clocks go back) or `2026-03-29`.
    fn label(self, tz: &TimeZone) -> String {
        match self {
            BucketKey::Hour(_) => self
                .start(tz)
                .map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string())
                .unwrap_or_default(),
            BucketKey::Day(date) => date.to_string(),
        }
    }
}

/// Bucket starts as a CSV writes them, each worked out once: rows come sorted by bucket, and a year of a whole
/// site repeats each day's start for every device (converting it in the time zone per row was most of an export).
struct BucketStarts<'a> {
    tz: &'a TimeZone,
    last: Option<(BucketKey, String)>,
}

impl<'a> BucketStarts<'a> {
    fn new(tz: &'a TimeZone) -> Self {
        Self { tz, last: None }
    }

    fn rfc3339(&mut self, key: BucketKey) -> &str {
        if self.last.as_ref().is_none_or(|(last, _)| *last != key) {
            self.last = Some((key, key.rfc3339(self.tz)));
        }
        self.last.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

/// The local hour an instant falls in, by the projections' own rule. At the very ends of jiff's range (a period a
/// query can ask for) there is no whole hour to truncate to: the instant itself is used.
fn hour_of(at: Timestamp, tz: &TimeZone) -> ZonedDateTime {
    crate::projection::local_hour(tz, at).unwrap_or_else(|_| at.to_zoned_datetime(tz.clone()))
}

/// Every bucket of the period, so a chart shows quiet hours as empty bars instead of closing the gap.
fn period_buckets(bucket: Bucket, period: &Period, tz: &TimeZone) -> Vec<BucketKey> {
    match bucket {
        Bucket::Day => period.dates().map(BucketKey::Day).collect(),
        Bucket::Hour => {
            let mut keys = Vec::new();
            let mut at = period.start;
            while at < period.end {
                let key = BucketKey::Hour(hour_of(at, tz).timestamp().as_microsecond());
                if keys.last() != Some(&key) {
                    keys.push(key);
                }
                at += 1.hour();
            }
            keys
        }
    }
}

/// Chart buckets for per-bucket totals: the period's buckets plus any the data has (belt and braces for zones
/// whose offsets change by half hours), each with its axis label.
fn chart_buckets(
    bucket: Bucket,
    period: &Period,
    tz: &TimeZone,
    totals: &BTreeMap<BucketKey, [i64; 2]>,
) -> Vec<ChartBucket> {
    let keys: BTreeSet<BucketKey> = period_buckets(bucket, period, tz)
        .into_iter()
        .chain(totals.keys().copied())
        .collect();
    let single_day = period.from == period.to;
    keys.into_iter()
        .map(|key| {
            let axis_label = match key {
                BucketKey::Day(date) => Some(date.strftime("%m-%d").to_string()),
                BucketKey::Hour(_) => key.start(tz).and_then(|z| {
                    if single_day {
                        Some(z.strftime("%H:%M").to_string())
                    } else {
                        // Over several days, label each day where it begins.
                        (z.hour() == 0 || z.start_of_day().ok()? == z).then(|| z.strftime("%m-%d").to_string())
                    }
                }),
            };
            ChartBucket {
                label: key.label(tz),
                axis_label,
                values: totals.get(&key).copied().unwrap_or_default(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Bar chart (inline SVG, rendered by `templates/reports_chart.html`)

/// A length in SVG user units, printed with one decimal.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Px(pub f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// One bucket's values for a two-series bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartBucket {
    /// Names the bucket in tooltips: `2026-03-29 03:00 CEST`.
    pub label: String,
    /// Shown under the axis when present (thinned out when there are many).
    pub axis_label: Option<String>,
    pub values: [i64; 2],
}

/// A data series: its CSS class (colour) and its name in the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub class: &'static str,
    pub name: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub class: &'static str,
    pub x: Px,
    pub y: Px,
    pub width: Px,
    pub height: Px,
    pub tooltip: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub x: Px,
    pub y: Px,
    pub label: String,
}

/// A grouped bar chart with its geometry worked out, so the template only places elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Prefix of the element ids that tie the `<svg>` to its title and description.
    pub id: &'static str,
    pub title: String,
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub plot_left: Px,
    pub plot_right: Px,
    pub baseline: Px,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_labels: Vec<Tick>,
    pub series: [Series; 2],
}

const CHART_WIDTH: u32 = 800;
const CHART_HEIGHT: u32 = 260;
const MARGIN_LEFT: f64 = 48.0;
const MARGIN_RIGHT: f64 = 8.0;
const MARGIN_TOP: f64 = 12.0;
const MARGIN_BOTTOM: f64 = 28.0;
/// More labels than this under the axis overlap on a phone.
const MAX_AXIS_LABELS: usize = 16;
/// Grid lines above the baseline.
const Y_TICKS: i64 = 4;

/// The smallest "round" step (1, 2, 2.5 or 5 times a power of ten, never a fraction) such that `Y_TICKS` steps
/// reach `max`: axis labels then read 0, 250, 500, 750, 1000 rather than 0, 233, 466.
fn nice_step(max: i64) -> i64 {
    let raw = (max.max(1) + Y_TICKS - 1) / Y_TICKS;
    let mut magnitude = 1;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    let mut candidates = vec![magnitude, 2 * magnitude];
    if magnitude >= 10 {
        candidates.push(5 * magnitude / 2);
    }
    candidates.extend([5 * magnitude, 10 * magnitude]);
    candidates.into_iter().find(|c| *c >= raw).unwrap_or(10 * magnitude)
}

impl Chart {
    /// Two bars per bucket, side by side, scaled to the largest value.
    pub fn bars(
        id: &'static str,
        title: String,
        description: String,
        series: [Series; 2],
        buckets: &[ChartBucket],
    ) -> Chart {
        let (width, height) = (f64::from(CHART_WIDTH), f64::from(CHART_HEIGHT));
        let plot_width = width - MARGIN_LEFT - MARGIN_RIGHT;
        let plot_height = height - MARGIN_TOP - MARGIN_BOTTOM;
        let baseline = MARGIN_TOP + plot_height;
        let max = buckets.iter().flat_map(|b| b.values).max().unwrap_or(0);
        let step = nice_step(max);
        let top = (step * Y_TICKS) as f64;
        let slot = plot_width / buckets.len().max(1) as f64;
        let bar_width = slot * 0.4;

        let mut bars = Vec::with_capacity(buckets.len() * 2);
        for (i, bucket) in buckets.iter().enumerate() {
            let left = MARGIN_LEFT + i as f64 * slot + slot * 0.1;
            for (k, (value, series)) in bucket.values.iter().zip(series).enumerate() {
                let bar_height = *value as f64 / top * plot_height;
                bars.push(Bar {
                    class: series.class,
                    x: Px(left + k as f64 * bar_width),
                    y: Px(baseline - bar_height),
                    width: Px(bar_width),
                    height: Px(bar_height),
                    tooltip: format!("{}: {value} {}", bucket.label, series.name),
                });
            }
        }
        let y_ticks = (0..=Y_TICKS)
            .map(|k| Tick {
                x: Px(MARGIN_LEFT - 6.0),
                y: Px(baseline - k as f64 / Y_TICKS as f64 * plot_height),
                label: (k * step).to_string(),
            })
            .collect();
        let labelled: Vec<(usize, &str)> = buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.axis_label.as_deref().map(|l| (i, l)))
            .collect();
        let every = labelled.len().div_ceil(MAX_AXIS_LABELS).max(1);
        let x_labels = labelled
            .into_iter()
            .step_by(every)
            .map(|(i, label)| Tick {
                x: Px(MARGIN_LEFT + (i as f64 + 0.5) * slot),
                y: Px(baseline + 18.0),
                label: label.to_owned(),
            })
            .collect();
        Chart {
            id,
            title,
            description,
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            plot_left: Px(MARGIN_LEFT),
            plot_right: Px(width - MARGIN_RIGHT),
            baseline: Px(baseline),
            bars,
            y_ticks,
            x_labels,
            series,
        }
    }
}

/// Sums rows' two values per bucket, for the chart.
fn totals_per_bucket(rows: impl Iterator<Item = (BucketKey, [i64; 2])>) -> BTreeMap<BucketKey, [i64; 2]> {
    let mut totals = BTreeMap::new();
    for (key, [a, b]) in rows {
        let total: &mut [i64; 2] = totals.entry(key).or_default();
        total[0] += a;
        total[1] += b;
    }
    totals
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

// ---------------------------------------------------------------------------------------------------------------
// Traffic

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

/// A bucket from a row: the hour's start (µs) or a `YYYY-MM-DD` local date.
fn bucket_key(hour: Option<i64>, date: Option<String>) -> rusqlite::Result<BucketKey> {
    match (hour, date) {
        (Some(micros), _) => Ok(BucketKey::Hour(micros)),
        (None, Some(date)) => date
            .parse()
            .map(BucketKey::Day)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))),
        (None, None) => Err(rusqlite::Error::InvalidColumnType(
            0,
            "bucket".into(),
            rusqlite::types::Type::Null,
        )),
    }
}

async fn traffic(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = TrafficQuery::parse(req.query_string(), today(&tz), &tz)?;
    let q = query.clone();
    let (rows, totals_only, devices, zones) = super::read_views(&state, move |conn| {
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
    super::render(&page)
}

// ---------------------------------------------------------------------------------------------------------------
// Equipment

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

async fn equipment(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
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
    let (lines, (episodes, episodes_total)) = super::read_views(&state, move |conn| {
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
                opened: super::local_time(&tz, e.opened_at),
                cleared: e.cleared_at.map(|c| super::local_time(&tz, c)),
                repair: e
                    .cleared_at
                    .map(|c| human_duration((c - e.opened_at) / 1_000_000))
                    .unwrap_or_default(),
                device: e.device,
                code: e.code,
                detail: e.detail,
            })
            .collect(),
    };
    super::render(&page)
}

// ---------------------------------------------------------------------------------------------------------------
// Recognitions

struct RecognitionRow {
    bucket: BucketKey,
    camera: String,
    known: i64,
    unknown: i64,
}

/// One row of the page's table.
pub struct RecognitionLine {
    pub bucket: String,
    pub camera: String,
    pub known: i64,
    pub unknown: i64,
}

#[derive(Template)]
#[template(path = "reports_recognitions.html")]
struct RecognitionsPage {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    cameras: Vec<Choice>,
    rows: Vec<RecognitionLine>,
    /// The rows are totals per bucket (too many per-camera rows for a page; the CSV has them).
    totals_only: bool,
    total_known: i64,
    total_unknown: i64,
    chart: Chart,
    subjects: Vec<SubjectLine>,
    more_subjects: usize,
    csv_href: String,
}

/// Recognition rows per bucket and camera, or per bucket (camera empty).
fn load_recognitions(
    conn: &rusqlite::Connection,
    query: &RecognitionsQuery,
    shape: Shape,
) -> rusqlite::Result<Vec<RecognitionRow>> {
    // Day buckets read the per-day rollup (its local date is the stored one, so a daylight-saving day sums its
    // 23 or 25 hours); hour buckets the hourly rows.
    let (columns, table, bucket) = match query.bucket {
        Bucket::Hour => ("bucket_start, NULL", "recognitions", "bucket_start"),
        Bucket::Day => ("NULL, local_date", "recognitions_daily", "local_date"),
    };
    // The camera filter is written into the statement only when given, so SQLite can use the camera index.
    let camera = query.camera.as_ref().map(DeviceId::as_str);
    let filter = if camera.is_some() { " AND camera_id = ?3" } else { "" };
    let sql = match shape {
        Shape::Each(limit) => format!(
            "SELECT {columns}, camera_id, known, unknown FROM {table}
             WHERE local_date BETWEEN ?1 AND ?2{filter} ORDER BY {bucket}, camera_id{}",
            limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
        ),
        Shape::Totals => format!(
            "SELECT {columns}, '', SUM(known), SUM(unknown) FROM {table}
             WHERE local_date BETWEEN ?1 AND ?2{filter} GROUP BY {bucket} ORDER BY {bucket}"
        ),
    };
    let (from, to) = (query.period.from.to_string(), query.period.to.to_string());
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&from, &to];
    if let Some(camera) = &camera {
        values.push(camera);
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(values.as_slice(), |r| {
        Ok(RecognitionRow {
            bucket: bucket_key(r.get(0)?, r.get(1)?)?,
            camera: r.get(2)?,
            known: r.get(3)?,
            unknown: r.get(4)?,
        })
    })?;
    rows.collect()
}

async fn recognitions(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let query = RecognitionsQuery::parse(req.query_string(), today(&tz), &tz)?;
    let q = query.clone();
    let subject_lists = state.subject_lists.clone();
    let (rows, totals_only, subjects, cameras) = super::read_views(&state, move |conn| {
        // The CSV has every row; the page lists per-camera rows only while they stay few, and adds the subjects.
        Ok(match q.format {
            Format::Csv => (load_recognitions(conn, &q, Shape::Each(None))?, false, None, vec![]),
            Format::Html => {
                let (rows, totals_only) = rows_for_page(|shape| load_recognitions(conn, &q, shape))?;
                let subjects = subject_lists.get(conn, q.period.from, q.period.to, q.camera.as_ref())?;
                let cameras = distinct_indexed(conn, "recognitions_daily", "camera_id")?;
                (rows, totals_only, Some(subjects), cameras)
            }
        })
    })
    .await?;

    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["bucket_start", "camera", "known", "unknown"]);
        let mut starts = BucketStarts::new(&tz);
        for row in &rows {
            csv.row(&[
                starts.rfc3339(row.bucket),
                row.camera.as_str(),
                row.known.to_string().as_str(),
                row.unknown.to_string().as_str(),
            ]);
        }
        return Ok(csv_response("recognitions", &query.period, csv));
    }

    let totals = totals_per_bucket(rows.iter().map(|r| (r.bucket, [r.known, r.unknown])));
    let buckets = chart_buckets(query.bucket, &query.period, &tz, &totals);
    let (total_known, total_unknown) = rows.iter().fold((0, 0), |(k, u), r| (k + r.known, u + r.unknown));
    let scope = query
        .camera
        .as_ref()
        .map(|c| format!(", camera {c}"))
        .unwrap_or_default();
    let chart = Chart::bars(
        "recognitions-chart",
        format!(
            "Recognitions per {}, known and unknown, {}{scope}",
            query.bucket.as_str(),
            period_words(&query.period)
        ),
        format!(
            "{} buckets; {total_known} known and {total_unknown} unknown in total.",
            buckets.len()
        ),
        [
            Series {
                class: "bar-a",
                name: "known",
            },
            Series {
                class: "bar-b",
                name: "unknown",
            },
        ],
        &buckets,
    );
    let subjects = subjects.expect("the page's subjects are loaded");
    let page = RecognitionsPage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&query.period),
        filters: Filters::new(&query.period, query.bucket),
        cameras: choices(cameras, query.camera.as_ref().map(DeviceId::as_str)),
        csv_href: csv_href(
            "/reports/recognitions",
            &query.period,
            &[
                ("bucket", Some(query.bucket.as_str())),
                ("camera", query.camera.as_ref().map(DeviceId::as_str)),
            ],
        ),
        rows: rows
            .into_iter()
            .map(|r| RecognitionLine {
                bucket: r.bucket.label(&tz),
                camera: r.camera,
                known: r.known,
                unknown: r.unknown,
            })
            .collect(),
        totals_only,
        total_known,
        total_unknown,
        chart,
        subjects: subjects.shown.clone(),
        more_subjects: subjects.more,
    };
    super::render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn traffic_query(query: &str) -> Result<TrafficQuery, BadQuery> {
        TrafficQuery::parse(query, date(2026, 3, 10), &berlin())
    }

    #[test]
    fn a_report_without_parameters_covers_the_last_seven_days_per_day() {
        let q = traffic_query("").unwrap();
        assert_eq!((q.period.from, q.period.to), (date(2026, 3, 4), date(2026, 3, 10)));
        assert_eq!(q.bucket, Bucket::Day);
        assert_eq!(q.format, Format::Html);
        assert_eq!((q.device, q.zone), (None, None));
    }

    #[test]
    fn a_single_day_is_shown_per_hour_unless_asked_otherwise() {
        assert_eq!(
            traffic_query("from=2026-03-01&to=2026-03-01").unwrap().bucket,
            Bucket::Hour
        );
        assert_eq!(
            traffic_query("from=2026-03-01&to=2026-03-01&bucket=day")
                .unwrap()
                .bucket,
            Bucket::Day
        );
    }

    #[test]
    fn a_period_spans_whole_local_days_in_the_site_time_zone() {
        let q = traffic_query("from=2026-03-29&to=2026-03-29").unwrap();
        assert_eq!(q.period.start, "2026-03-28T23:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(q.period.end, "2026-03-29T22:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn filters_and_format_are_typed_and_empty_values_mean_all() {
        let q = traffic_query("device=T1&zone=Hall%20A&format=csv&from=").unwrap();
        assert_eq!(q.device, Some(DeviceId::parse("T1").unwrap()));
        assert_eq!(q.zone.as_deref(), Some("Hall A"));
        assert_eq!(q.format, Format::Csv);
        assert_eq!(traffic_query("device=&zone=").unwrap().device, None);
    }

    #[test]
    fn bad_parameters_are_refused_with_a_one_line_reason() {
        let refused = |q: &str| traffic_query(q).unwrap_err().to_string();
        assert_eq!(
            refused("from=2026-13-01"),
            "from: \"2026-13-01\" is not a date (expected YYYY-MM-DD)"
        );
        assert_eq!(
            refused("from=2026-03-08&to=2026-03-01"),
            "from (2026-03-08) is after to (2026-03-01)"
        );
        assert_eq!(refused("bucket=week"), "bucket: \"week\" is not hour or day");
        assert_eq!(refused("format=xml"), "format: \"xml\" is not html or csv");
        assert_eq!(
            refused("form=2026-03-01"),
            "unknown parameter \"form\": this report takes from, to, bucket, device, zone, format"
        );
        assert_eq!(
            refused("device=T1&device=T2"),
            "parameter device is given more than once"
        );
        assert!(refused("device=T%201").starts_with("device: device id \"T 1\""));
        assert_eq!(
            refused("from=2026-01-01&to=2026-03-01&bucket=hour"),
            "bucket: hour buckets cover at most 31 days and this period has 60; use bucket=day"
        );
        assert_eq!(
            refused("from=2024-01-01&to=2026-03-01"),
            "the period 2024-01-01 to 2026-03-01 has 791 days; a report covers at most 366"
        );
        assert!(!refused("to=9999-12-31").contains('\n'));
    }

    #[test]
    fn each_report_takes_only_its_own_parameters() {
        let today = date(2026, 3, 10);
        assert!(EquipmentQuery::parse("bucket=day", today, &berlin()).is_err());
        assert!(RecognitionsQuery::parse("device=C1", today, &berlin()).is_err());
        let q = RecognitionsQuery::parse("camera=C1&from=2026-03-10", today, &berlin()).unwrap();
        assert_eq!(q.camera, Some(DeviceId::parse("C1").unwrap()));
        assert_eq!(q.bucket, Bucket::Hour);
    }

    #[test]
    fn a_spring_forward_day_has_23_hour_buckets_and_a_fall_back_day_25() {
        let tz = berlin();
        let spring = Period::new(date(2026, 3, 29), date(2026, 3, 29), &tz).unwrap();
        let autumn = Period::new(date(2026, 10, 25), date(2026, 10, 25), &tz).unwrap();
        assert_eq!(period_buckets(Bucket::Hour, &spring, &tz).len(), 23);
        assert_eq!(period_buckets(Bucket::Hour, &autumn, &tz).len(), 25);
        let week = Period::new(date(2026, 3, 1), date(2026, 3, 7), &tz).unwrap();
        assert_eq!(period_buckets(Bucket::Day, &week, &tz).len(), 7);
    }

    #[test]
    fn bucket_starts_are_written_with_the_offset_in_force_at_that_instant() {
        let tz = berlin();
        let three_am = "2026-03-29T01:00:00Z".parse::<Timestamp>().unwrap().as_microsecond();
        assert_eq!(BucketKey::Hour(three_am).rfc3339(&tz), "2026-03-29T03:00:00+02:00");
        assert_eq!(BucketKey::Hour(three_am).label(&tz), "2026-03-29 03:00 CEST");
        assert_eq!(
            BucketKey::Day(date(2026, 3, 29)).rfc3339(&tz),
            "2026-03-29T00:00:00+01:00"
        );
    }

    fn bucket(values: [i64; 2], axis_label: Option<&str>) -> ChartBucket {
        ChartBucket {
            label: "2026-03-01".into(),
            axis_label: axis_label.map(str::to_owned),
            values,
        }
    }

    const SERIES: [Series; 2] = [
        Series {
            class: "bar-a",
            name: "in",
        },
        Series {
            class: "bar-b",
            name: "out",
        },
    ];

    #[test]
    fn axis_steps_are_round_numbers_that_reach_the_largest_value() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(4), 1);
        assert_eq!(nice_step(7), 2);
        assert_eq!(nice_step(17), 5);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(1000), 250);
        assert_eq!(nice_step(1001), 500);
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_axis_and_stand_on_the_baseline() {
        let chart = Chart::bars(
            "c",
            "t".into(),
            "d".into(),
            SERIES,
            &[bucket([8, 2], Some("a")), bucket([0, 4], Some("b"))],
        );
        let plot_height = f64::from(CHART_HEIGHT) - MARGIN_TOP - MARGIN_BOTTOM;
        assert_eq!(chart.bars.len(), 4);
        // The axis reaches 8 (four steps of 2): the 8 fills the plot, the 2 a quarter, the 0 nothing.
        assert_eq!(chart.bars[0].height, Px(plot_height));
        assert_eq!(chart.bars[1].height, Px(plot_height / 4.0));
        assert_eq!(chart.bars[2].height, Px(0.0));
        for bar in &chart.bars {
            assert!((bar.y.0 + bar.height.0 - chart.baseline.0).abs() < 1e-9);
        }
        assert_eq!(chart.bars[1].class, "bar-b");
        assert_eq!(chart.bars[1].tooltip, "2026-03-01: 2 out");
        let ticks: Vec<_> = chart.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0", "2", "4", "6", "8"]);
        assert!(chart.bars[2].x > chart.bars[1].x, "buckets run left to right");
    }

    #[test]
    fn a_chart_of_nothing_still_has_an_axis_and_flat_bars() {
        let chart = Chart::bars("c", "t".into(), "d".into(), SERIES, &[bucket([0, 0], None)]);
        assert!(chart.bars.iter().all(|b| b.height == Px(0.0)));
        assert_eq!(chart.y_ticks.last().unwrap().label, "4");
        assert!(chart.x_labels.is_empty());
    }

    #[test]
    fn many_axis_labels_are_thinned_so_they_do_not_overlap() {
        let buckets: Vec<_> = (0..48).map(|i| bucket([i, 0], Some("x"))).collect();
        let chart = Chart::bars("c", "t".into(), "d".into(), SERIES, &buckets);
        assert_eq!(chart.x_labels.len(), 16);
    }

    #[test]
    fn a_chart_renders_as_accessible_svg_with_its_texts_escaped() {
        #[derive(Template)]
        #[template(path = "reports_chart.html")]
        struct Only {
            chart: Chart,
        }
        let chart = Chart::bars(
            "c",
            "zone <b>".into(),
            "d".into(),
            SERIES,
            &[bucket([1, 2], Some("01"))],
        );
        let svg = Only { chart }.render().unwrap();
        assert!(svg.contains("<svg viewBox=\"0 0 800 260\" role=\"img\""), "{svg}");
        assert!(svg.contains("<title id=\"c-title\">zone &#60;b&#62;</title>"), "{svg}");
        assert!(svg.contains("<rect class=\"bar-a\""), "{svg}");
    }

    #[test]
    fn durations_read_in_the_two_largest_units() {
        assert_eq!(human_duration(9), "9s");
        assert_eq!(human_duration(245), "4m 05s");
        assert_eq!(human_duration(45_000), "12h 30m");
        assert_eq!(human_duration(3 * 86_400 + 7_200), "3d 2h");
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

    #[test]
    fn the_csv_link_repeats_the_filters_url_encoded() {
        let tz = berlin();
        let period = Period::new(date(2026, 3, 1), date(2026, 3, 7), &tz).unwrap();
        let href = csv_href(
            "/reports/traffic",
            &period,
            &[("bucket", Some("day")), ("device", None), ("zone", Some("Hall A&B"))],
        );
        assert_eq!(
            href,
            "/reports/traffic?from=2026-03-01&to=2026-03-07&bucket=day&zone=Hall%20A%26B&format=csv"
        );
        let back = TrafficQuery::parse(href.split_once('?').unwrap().1, date(2026, 3, 10), &tz).unwrap();
        assert_eq!(back.zone.as_deref(), Some("Hall A&B"));
    }

    #[test]
    fn a_bad_query_answers_400_with_its_reason_as_plain_text() {
        let response = bad("from (2026-03-08) is after to (2026-03-01)").error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/plain; charset=utf-8"
        );
    }
}
