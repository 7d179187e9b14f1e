//! Sizes as `config.toml` spells them (`"512MB"`, `"20GB"`): read for the settings, written back for the
//! summary. Decimal units, as disks are sold and `df -H` prints them: 1 MB = 1,000,000 bytes.

/// A whole number followed by `MB` or `GB` (upper case, no space): `512MB`, `20GB`. Like durations, one
/// spelling to start with; the config contract may only grow.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = if let Some(number) = text.strip_suffix("GB") {
        (number, 1_000_000_000)
    } else if let Some(number) = text.strip_suffix("MB") {
        (number, 1_000_000)
    } else {
        return None;
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(unit)
}

/// Bytes in the largest unit that divides them evenly: `20000000000` prints as `20GB`.
pub fn format_size(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1_000_000_000) {
        format!("{}GB", bytes / 1_000_000_000)
    } else {
        format!("{}MB", bytes.div_ceil(1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_megabytes_or_gigabytes() {
        assert_eq!(parse_size("512MB"), Some(512_000_000));
        assert_eq!(parse_size("20GB"), Some(20_000_000_000));
        for bad in [
            "",
            "GB",
            "20",
            "20 GB",
            "20gb",
            "1.5GB",
            "-1GB",
            "20TB",
            "99999999999999999999GB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(format_size(20_000_000_000), "20GB");
        assert_eq!(format_size(512_000_000), "512MB");
    }
}
