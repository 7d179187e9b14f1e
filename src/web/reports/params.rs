//! Query parameters: the raw query string checked against the names a report takes, typed into a [`Period`] of
//! whole local days, a [`Bucket`], a [`Format`] and each report's own query; and the CSV link built back from them.

use crate::domain::DeviceId;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use std::collections::HashMap;
use std::fmt;

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
pub(crate) fn day_start(date: Date, tz: &TimeZone) -> Option<ZonedDateTime> {
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

    pub(super) fn new(from: Date, to: Date, tz: &TimeZone) -> Option<Period> {
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

    pub(super) fn dates(&self) -> impl Iterator<Item = Date> {
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

    pub(super) fn as_str(self) -> &'static str {
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
    pub(super) fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
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
    pub(super) fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
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
    pub(super) fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
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

/// `/reports/occupancy` parameters: one local day (default today) and a zone (default: every zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupancyQuery {
    pub day: Period,
    pub zone: Option<String>,
    pub format: Format,
}

impl OccupancyQuery {
    pub(super) fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
        let params = Params::parse(query, &["date", "zone", "format"])?;
        let date = match params.get("date") {
            None => today,
            Some(value) => parse_date("date", value)?,
        };
        Ok(OccupancyQuery {
            day: Period::new(date, date, tz).ok_or_else(|| bad(format!("date: {date} is out of range")))?,
            zone: params.get("zone").map(str::to_owned),
            format: Format::parse(&params)?,
        })
    }
}

/// `/reports/attendance` parameters: attendance days `from` to `to` (default the last week) and one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceQuery {
    pub period: Period,
    pub subject: Option<String>,
    pub format: Format,
}

impl AttendanceQuery {
    pub(super) fn parse(query: &str, today: Date, tz: &TimeZone) -> Result<Self, BadQuery> {
        let params = Params::parse(query, &["from", "to", "subject", "format"])?;
        Ok(AttendanceQuery {
            period: Period::parse(&params, today, tz)?,
            subject: params.get("subject").map(str::to_owned),
            format: Format::parse(&params)?,
        })
    }
}

/// A link to the same report as CSV, built from the typed query so it always parses back to the same rows.
pub(super) fn csv_href(path: &str, period: &Period, extra: &[(&str, Option<&str>)]) -> String {
    let mut href = format!("{path}?from={}&to={}", period.from, period.to);
    for (name, value) in extra {
        if let Some(value) = value {
            href.push_str(&format!("&{name}={}", crate::web::urlencode(value)));
        }
    }
    href.push_str("&format=csv");
    href
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header;
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
