//! Durations as `config.toml` spells them (`90s`, `5m`, `1h30m`): read for the settings, written back for the
//! summary.

use std::time::Duration;

/// Whole numbers with `d`, `h`, `m` or `s`, largest unit first, each at most once: `90s`, `5m`, `1h30m`.
/// Deliberately narrower than jiff's friendly format (which also takes `90 sec`, `1.5h`, `PT5M`): the config
/// contract may only grow, so it starts with the one spelling the docs show.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut previous_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        let unit = match rest.as_bytes().get(digits)? {
            b'd' => 86400,
            b'h' => 3600,
            b'm' => 60,
            b's' => 1,
            _ => return None,
        };
        if unit >= previous_unit {
            return None;
        }
        previous_unit = unit;
        total = total.checked_add(number.checked_mul(unit)?)?;
        rest = &rest[digits + 1..];
    }
    Some(Duration::from_secs(total))
}

/// Whole seconds in the largest unit that divides them evenly, so the summary echoes what installers write:
/// `90s` stays `90s`, `300s` prints as `5m`.
pub(super) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_days_hours_minutes_and_seconds_largest_first() {
        let secs = |text: &str| parse_duration(text).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("5m"), Some(300));
        assert_eq!(secs("2h"), Some(7200));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("1h0m5s"), Some(3605));
        assert_eq!(secs("30d"), Some(30 * 86400));
        assert_eq!(secs("1d12h"), Some(129_600));
        for bad in [
            "",
            "90",
            "s",
            "90 s",
            " 90s",
            "1.5h",
            "30m1h",
            "5m5m",
            "90S",
            "1w",
            "PT5M",
            "-5s",
            "99999999999999999999s",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }
}
