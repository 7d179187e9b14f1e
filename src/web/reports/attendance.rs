//! `/reports/attendance?from=&to=&subject=`: per person and attendance day (days start at `[identification]
//! day_starts_at` site time, so a night shift is one day), the first identified passage in, the last out, and the
//! time inside (from each in to the next out; an in with no out that day counts nothing). CSV
//! `day,subject,first_in,last_out,inside_seconds`, times in site time with their offset.

use super::params::{AttendanceQuery, Format, csv_href};
use super::{Filters, csv_response, human_duration, period_words, today};
use crate::domain::Direction;
use crate::web::AppState;
use crate::web::csv::Csv;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// One person's attendance day.
#[derive(Debug, Clone, PartialEq)]
pub struct AttendanceDay {
    pub day: Date,
    pub subject: String,
    pub first_in: Option<Timestamp>,
    pub last_out: Option<Timestamp>,
    pub inside_seconds: i64,
}

pub struct Line {
    pub day: String,
    pub subject: String,
    pub first_in: String,
    pub last_out: String,
    pub inside: String,
    pub inside_seconds: i64,
}

#[derive(Template)]
#[template(path = "reports_attendance.html")]
struct AttendanceReport {
    site: String,
    timezone: String,
    period: String,
    filters: Filters,
    subject: String,
    day_starts_at: String,
    lines: Vec<Line>,
    csv_href: String,
}

/// The first instant of attendance day `day`: `day_starts_at` on that date in the site's zone (the instant after
/// a gap when a DST change skips it).
fn day_begins(day: Date, starts_at: Time, tz: &TimeZone) -> Option<Timestamp> {
    day.to_datetime(starts_at)
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The attendance day an instant belongs to.
fn attendance_day(at: &ZonedDateTime, starts_at: Time) -> Option<Date> {
    if at.time() >= starts_at {
        Some(at.date())
    } else {
        at.date().yesterday().ok()
    }
}

/// Folds each person's identified passages (in time order) into attendance days.
pub fn attendance(passages: &[(String, Direction, Timestamp)], starts_at: Time, tz: &TimeZone) -> Vec<AttendanceDay> {
    let mut days: Vec<AttendanceDay> = Vec::new();
    let mut inside_since: Option<(String, Date, Timestamp)> = None;
    for (subject, direction, at) in passages {
        let Some(day) = attendance_day(&at.to_zoned_datetime(tz.clone()), starts_at) else {
            continue;
        };
        let index = match days.iter().rposition(|d| d.day == day && d.subject == *subject) {
            Some(index) => index,
            None => {
                days.push(AttendanceDay {
                    day,
                    subject: subject.clone(),
                    first_in: None,
                    last_out: None,
                    inside_seconds: 0,
                });
                days.len() - 1
            }
        };
        let entry = &mut days[index];
        match direction {
            Direction::In => {
                entry.first_in = Some(entry.first_in.map_or(*at, |first| first.min(*at)));
                let same = inside_since.as_ref().is_some_and(|(s, d, _)| s == subject && *d == day);
                if !same {
                    inside_since = Some((subject.clone(), day, *at));
                }
            }
            Direction::Out => {
                entry.last_out = Some(entry.last_out.map_or(*at, |last| last.max(*at)));
                if let Some((s, d, since)) = &inside_since
                    && s == subject
                    && *d == day
                {
                    entry.inside_seconds += (*at - *since).as_secs().max(0);
                    inside_since = None;
                }
            }
        }
    }
    days.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    days
}

pub(super) async fn attendance_report(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let starts_at = state.config.identification.day_starts_at;
    let query = AttendanceQuery::parse(req.query_string(), today(&tz), &tz)?;
    let period = query.period;
    let (start, end) = match (
        day_begins(period.from, starts_at, &tz),
        period.to.tomorrow().ok().and_then(|d| day_begins(d, starts_at, &tz)),
    ) {
        (Some(start), Some(end)) => (start.as_microsecond(), end.as_microsecond()),
        _ => return Err(actix_web::error::ErrorBadRequest("the period is out of range\n")),
    };
    // The read table knows people by pseudonym: a typed identifier is looked up (someone unknown has no rows).
    let subject = query
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|typed| {
            crate::domain::SubjectId::parse(typed)
                .ok()
                .and_then(|id| state.vault.find(&id).ok().flatten())
                .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
        });
    let rows = crate::web::read_views(&state, move |conn| {
        Ok(crate::presence::identified_passages(
            conn,
            start,
            end,
            subject.as_deref(),
        )?)
    })
    .await?;
    let passages: Vec<(String, Direction, Timestamp)> = rows
        .into_iter()
        .filter_map(|(subject, direction, at)| {
            Some((subject, direction.parse().ok()?, Timestamp::from_microsecond(at).ok()?))
        })
        .collect();
    let mut days = attendance(&passages, starts_at, &tz);
    for day in &mut days {
        day.subject = state.vault.reveal_text(&day.subject);
    }
    // By day, then by whom as people read them (the table orders by pseudonym).
    days.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    let local = |at: Option<Timestamp>| {
        at.map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
    };
    if query.format == Format::Csv {
        let mut csv = Csv::with_header(&["day", "subject", "first_in", "last_out", "inside_seconds"]);
        for d in &days {
            csv.row(&[
                d.day.to_string(),
                d.subject.clone(),
                local(d.first_in),
                local(d.last_out),
                d.inside_seconds.to_string(),
            ]);
        }
        return Ok(csv_response("attendance", &period, csv));
    }
    let subject = query.subject.clone().unwrap_or_default();
    let lines = days
        .iter()
        .map(|d| Line {
            day: d.day.to_string(),
            subject: d.subject.clone(),
            first_in: local(d.first_in),
            last_out: local(d.last_out),
            inside: human_duration(d.inside_seconds),
            inside_seconds: d.inside_seconds,
        })
        .collect();
    crate::web::render(&AttendanceReport {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        period: period_words(&period),
        filters: Filters::new(&period, super::params::Bucket::Day),
        csv_href: csv_href("/reports/attendance", &period, &[("subject", query.subject.as_deref())]),
        day_starts_at: starts_at.strftime("%H:%M").to_string(),
        subject,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_night_shift_is_one_attendance_day_and_time_inside_sums_each_in_to_its_out() {
        let passages = vec![
            ("P-1".to_owned(), Direction::In, at("2026-12-01T21:00:00Z")), // 22:00 Berlin on the 1st
            ("P-1".to_owned(), Direction::Out, at("2026-12-02T01:30:00Z")), // 02:30 on the 2nd: still the 1st's day
            ("P-1".to_owned(), Direction::In, at("2026-12-02T02:00:00Z")),
            ("P-1".to_owned(), Direction::Out, at("2026-12-02T04:00:00Z")), // 05:00: the 2nd's day
        ];
        let days = attendance(&passages, Time::constant(4, 0, 0, 0), &berlin());
        assert_eq!(days.len(), 2, "{days:?}");
        assert_eq!(days[0].day.to_string(), "2026-12-01");
        assert_eq!(days[0].inside_seconds, 4 * 3600 + 1800);
        assert_eq!(days[0].first_in, Some(at("2026-12-01T21:00:00Z")));
        assert_eq!(days[1].day.to_string(), "2026-12-02");
        // In at 03:00 (the 1st's day), out at 05:00 (the 2nd's): an in with no out that day counts nothing.
        assert_eq!(days[1].inside_seconds, 0);
        assert_eq!(days[1].last_out, Some(at("2026-12-02T04:00:00Z")));
    }

    #[test]
    fn on_the_day_clocks_go_back_a_day_has_25_hours_and_inside_time_counts_real_seconds() {
        // 2026-10-25 in Berlin: 03:00 CEST becomes 02:00 CET. In at 01:00 CEST (23:00Z the 24th, before 04:00: the
        // 24th's day), so use a day_starts_at of 00:00 to keep it on the 25th.
        let passages = vec![
            ("P-2".to_owned(), Direction::In, at("2026-10-24T22:30:00Z")), // 00:30 CEST on the 25th
            ("P-2".to_owned(), Direction::Out, at("2026-10-25T22:30:00Z")), // 23:30 CET on the 25th
        ];
        let days = attendance(&passages, Time::constant(0, 0, 0, 0), &berlin());
        assert_eq!(days.len(), 1, "{days:?}");
        assert_eq!(days[0].day.to_string(), "2026-10-25");
        assert_eq!(days[0].inside_seconds, 24 * 3600, "23 wall-clock hours, 24 real ones");
        assert_eq!(
            days[0]
                .first_in
                .map(|t| t.to_zoned_datetime(berlin()).strftime("%H:%M%:z").to_string()),
            Some("00:30+02:00".to_owned())
        );
    }
}
