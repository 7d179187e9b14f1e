//! Buckets in time: the local hours and days a report groups its rows in, their keys as the read tables store
//! them, how they are written (RFC 3339 for CSV, with the zone's abbreviation for people) and the chart's buckets.

use super::chart::ChartBucket;
use super::params::{Bucket, Period, day_start};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use std::collections::{BTreeMap, BTreeSet};

/// Where a row's bucket starts: an hour's first instant (as the read tables store it) or a local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum BucketKey {
    Hour(i64),
    Day(Date),
}

impl BucketKey {
    pub(super) fn start(self, tz: &TimeZone) -> Option<ZonedDateTime> {
        match self {
            BucketKey::Hour(micros) => Timestamp::from_microsecond(micros)
                .ok()
                .map(|t| t.to_zoned_datetime(tz.clone())),
            BucketKey::Day(date) => day_start(date, tz),
        }
    }

    /// RFC 3339 with the site's offset at that instant, as the CSV contract says: `2026-03-29T03:00:00+02:00`.
    pub(super) fn rfc3339(self, tz: &TimeZone) -> String {
        self.start(tz)
            .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
            .unwrap_or_default()
    }

    /// For people: `2026-03-29 03:00 CEST` (the zone's abbreviation tells apart the hour that repeats when
    /// clocks go back) or `2026-03-29`.
    pub(super) fn label(self, tz: &TimeZone) -> String {
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
pub(super) struct BucketStarts<'a> {
    tz: &'a TimeZone,
    last: Option<(BucketKey, String)>,
}

impl<'a> BucketStarts<'a> {
    pub(super) fn new(tz: &'a TimeZone) -> Self {
        Self { tz, last: None }
    }

    pub(super) fn rfc3339(&mut self, key: BucketKey) -> &str {
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
pub(super) fn period_buckets(bucket: Bucket, period: &Period, tz: &TimeZone) -> Vec<BucketKey> {
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
pub(super) fn chart_buckets(
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

/// Sums rows' two values per bucket, for the chart.
pub(super) fn totals_per_bucket(rows: impl Iterator<Item = (BucketKey, [i64; 2])>) -> BTreeMap<BucketKey, [i64; 2]> {
    let mut totals = BTreeMap::new();
    for (key, [a, b]) in rows {
        let total: &mut [i64; 2] = totals.entry(key).or_default();
        total[0] += a;
        total[1] += b;
    }
    totals
}

/// A bucket from a row: the hour's start (µs) or a `YYYY-MM-DD` local date.
pub(super) fn bucket_key(hour: Option<i64>, date: Option<String>) -> rusqlite::Result<BucketKey> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
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
}
