//! Maintenance schedules' cron expressions: five fields (minute hour day-of-month month day-of-week) read by
//! `croner`, evaluated in the site's time zone on jiff 1 (croner's own jiff backend is for jiff 0.2, so its
//! `CronDateTime` trait is implemented here on a wrapper). Pure: every instant comes from the caller.
//!
//! Across daylight saving changes a run at a fixed local time (`30 2 * * *`) happens once a day: on a
//! spring-forward day at the first instant after the gap (03:00), on a fall-back day at the earlier 02:30 only.
//! Patterns with lists, ranges or steps in the hour or minute name the repeated hour's times twice on a fall-back
//! day; a run whose local time is not later than the previous run's is dropped, so none runs twice.

use core::cmp::Ordering;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds};
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

/// A checked 5-field cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    text: String,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl CronSchedule {
    /// Reads `0 6 * * MON`; names the problem otherwise.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(&text)
            .map_err(|e| format!("cron {text:?}: {e} (five fields: minute hour day-of-month month day-of-week)"))?;
        Ok(Self { cron, text })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first run strictly after `after`, in `tz`. `None` when the pattern never matches again.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // Whole seconds: croner truncates, and a run at 06:00:00 must not count as "after 06:00:00.3".
        let start = Timestamp::from_second(after.as_second()).ok()?;
        let mut next = self
            .cron
            .find_next_occurrence(&Zoned(start.to_zoned_datetime(tz.clone())), false)
            .ok()?;
        let previous_local = after.to_zoned_datetime(tz.clone()).datetime();
        // On a fall-back day the local clock goes back: a run whose local time is not later than the previous one's
        // is the second pass through the repeated hour, already run.
        while next.0.datetime() <= previous_local {
            next = self.cron.find_next_occurrence(&next, false).ok()?;
        }
        Some(next.0.timestamp())
    }

    /// The latest run at or before `at`, in `tz`, if any.
    pub fn latest_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = Timestamp::from_second(at.as_second()).ok()?;
        self.cron
            .find_previous_occurrence(&Zoned(start.to_zoned_datetime(tz.clone())), true)
            .ok()
            .map(|z| z.0.timestamp())
    }

    /// The run to make up for at start: the latest one due after `since` (the schedule's last run, or when it was
    /// created) and at or before `now`. One, however many were missed while Gatehouse was down.
    pub fn missed_run(&self, since: Timestamp, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        self.latest_at_or_before(now, tz).filter(|run| *run > since)
    }
}

/// jiff 1's zoned date-time as croner sees it.
#[derive(Clone, Debug)]
struct Zoned(ZonedDateTime);

fn to_civil(datetime: DateTime) -> CivilDateTime {
    // jiff keeps every part in range.
    CivilDateTime::new(
        CivilDate::from_parts_unchecked(
            i32::from(datetime.year()),
            datetime.month() as u32,
            datetime.day() as u32,
        ),
        CivilTime::from_parts_unchecked(
            datetime.hour() as u32,
            datetime.minute() as u32,
            datetime.second() as u32,
        ),
    )
}

impl CronDateTime for Zoned {
    fn to_civil(&self) -> CivilDateTime {
        to_civil(self.0.datetime())
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let year = i16::try_from(civil.year()).map_err(|_| CronError::InvalidDate)?;
        let datetime = DateTime::new(
            year,
            civil.month() as i8,
            civil.day() as i8,
            civil.hour() as i8,
            civil.minute() as i8,
            civil.second() as i8,
            0,
        )
        .map_err(|_| CronError::InvalidDate)?;
        let ambiguous = self.0.time_zone().to_ambiguous_zoned_datetime(datetime);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(Zoned(ambiguous.unambiguous().map_err(|_| CronError::InvalidTime)?))
            }
            AmbiguousOffset::Fold { .. } => {
                let earlier = ambiguous.clone().earlier().map_err(|_| CronError::InvalidTime)?;
                let later = ambiguous.later().map_err(|_| CronError::InvalidTime)?;
                Resolution::Ambiguous(Zoned(earlier), Zoned(later))
            }
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0.checked_add(SignedDuration::from_secs(seconds)).ok().map(Zoned)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
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

    /// Every run in [from, to), by chaining `next_after`.
    fn runs(cron: &str, from: &str, to: &str) -> Vec<String> {
        let schedule = CronSchedule::parse(cron).unwrap();
        let (mut t, to) = (at(from), at(to));
        let mut out = Vec::new();
        while let Some(next) = schedule.next_after(t, &berlin()) {
            if next >= to {
                break;
            }
            out.push(next.to_string());
            t = next;
        }
        out
    }

    #[test]
    fn five_fields_are_required_and_mistakes_are_named() {
        assert!(CronSchedule::parse("0 6 * * MON").is_ok());
        assert!(CronSchedule::parse("0  6 * *   MON").is_ok(), "spacing does not matter");
        let seconds = CronSchedule::parse("0 0 6 * * MON").unwrap_err();
        assert!(seconds.contains("five fields"), "{seconds}");
        assert!(CronSchedule::parse("61 6 * * *").is_err());
        assert!(CronSchedule::parse("every monday").is_err());
    }

    #[test]
    fn a_weekly_run_is_at_six_on_mondays_in_site_time() {
        assert_eq!(
            runs("0 6 * * MON", "2026-11-30T00:00:00Z", "2026-12-15T00:00:00Z"),
            ["2026-11-30T05:00:00Z", "2026-12-07T05:00:00Z", "2026-12-14T05:00:00Z"]
        );
    }

    #[test]
    fn a_0230_run_happens_once_on_the_spring_forward_day() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist, so the run is at 03:00 CEST (01:00Z).
        assert_eq!(
            runs("30 2 * * *", "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
            ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
    }

    #[test]
    fn a_0230_run_happens_once_on_the_fall_back_day() {
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, the run only at the first.
        assert_eq!(
            runs("30 2 * * *", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
            ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn a_half_hourly_run_in_the_repeated_hour_runs_each_local_time_once() {
        let fall_back = runs("0,30 2 * * *", "2026-10-24T23:59:00Z", "2026-10-25T03:00:00Z");
        assert_eq!(
            fall_back,
            ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"],
            "{fall_back:?}"
        );
    }

    #[test]
    fn after_a_stop_over_several_due_times_one_run_is_made_up() {
        let schedule = CronSchedule::parse("0 6 * * *").unwrap();
        let tz = berlin();
        // Down from Monday 05:00 to Thursday 12:00: three 06:00 runs missed, the latest is made up.
        let missed = schedule.missed_run(at("2026-11-30T04:00:00Z"), at("2026-12-03T11:00:00Z"), &tz);
        assert_eq!(missed, Some(at("2026-12-03T05:00:00Z")));
        // Nothing due since the last run: nothing to make up.
        assert_eq!(
            schedule.missed_run(at("2026-12-03T05:00:00Z"), at("2026-12-03T11:00:00Z"), &tz),
            None
        );
    }
}
