//! Error wording: [`ConfigError`] and its `file:line:col: problem` form, the byte-offset [`Problem`] found while
//! parsing, and toml's and serde's messages reworded into the project's style.

use std::fmt;
use std::ops::Range;

use super::raw::TABLE_KEYS;

/// Why the config cannot be used, with the 1-based line and column of the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(super) origin: String,
    /// `None` when the problem has no place in the text (the file could not be read).
    pub(super) position: Option<(usize, usize)>,
    pub(super) message: String,
}

impl ConfigError {
    /// The file name as given to [`Config::load`](super::Config::load) or [`Config::parse`](super::Config::parse).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    pub fn col(&self) -> Option<usize> {
        self.position.map(|(_, col)| col)
    }

    /// The problem alone, without origin and position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A problem found while parsing, positioned by byte offset until the text is at hand to turn it into
/// line and column.
pub(super) struct Problem {
    offset: Option<usize>,
    message: String,
}

impl Problem {
    pub(super) fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            offset: Some(span.start),
            message: message.into(),
        }
    }

    pub(super) fn locate(self, origin: &str, text: &str) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            position: self.offset.map(|offset| line_col(text, offset)),
            message: self.message,
        }
    }
}

/// 1-based line and column of a byte offset; the column counts characters, as editors show it.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Turns toml's and serde's messages into the project's style: one line, lowercase, subject first, with
/// unknown and missing keys reworded to name the table.
pub(super) fn toml_problem(text: &str, err: &toml::de::Error) -> Problem {
    let span = err.span();
    let raw = err.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let spanned_text = span.clone().and_then(|s| text.get(s)).unwrap_or("").trim();
    let message = reword_unknown_key(&raw)
        .or_else(|| reword_missing_key(&raw, text, spanned_text, span.clone()))
        .or_else(|| reword_duplicate_key(&raw, text, span.clone()))
        .or_else(|| reword_wrong_table_kind(&raw, spanned_text))
        .unwrap_or_else(|| tidy(&raw));
    Problem {
        offset: span.map(|s| s.start),
        message,
    }
}

/// ``unknown field `lisen`, expected `listen` ``
/// → `unknown key "lisen" in [http], expected one of: listen`.
fn reword_unknown_key(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("unknown field `")?;
    let (key, expected) = rest.rsplit_once("`, expected ")?;
    // Serde writes `a`, `a` or `b`, or one of `a`, `b`, `c`: the names are every other backtick piece.
    let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let table = TABLE_KEYS
        .iter()
        .find(|(_, keys)| *keys == expected.as_slice())
        .map(|(table, _)| *table);
    let place = match table {
        Some("") => " at the top level".to_owned(),
        Some(table) => format!(" in {table}"),
        None => String::new(),
    };
    Some(format!(
        "unknown key {key:?}{place}, expected one of: {}",
        expected.join(", ")
    ))
}

/// ``missing field `zone` `` → `missing key "zone" in [[turnstile]]`; toml spans the table's header.
fn reword_missing_key(raw: &str, text: &str, spanned_text: &str, span: Option<Range<usize>>) -> Option<String> {
    let key = raw.strip_prefix("missing field `")?.strip_suffix('`')?;
    let header = if spanned_text.starts_with('[') {
        Some(normalize_header(spanned_text))
    } else {
        span.and_then(|s| enclosing_header(text, s.start))
    };
    Some(match header {
        Some(header) => format!("missing key {key:?} in {header}"),
        None => format!("missing key {key:?}"),
    })
}

/// toml says only "duplicate key"; its span is the repeated key, or the name inside a repeated header.
fn reword_duplicate_key(raw: &str, text: &str, span: Option<Range<usize>>) -> Option<String> {
    if raw != "duplicate key" {
        return None;
    }
    let span = span?;
    let key = text.get(span.clone())?.trim();
    if text[..span.start].trim_end().ends_with('[') {
        return Some(format!("duplicate table [{key}]"));
    }
    Some(match enclosing_header(text, span.start) {
        Some(header) => format!("duplicate key {key:?} in {header}"),
        None => format!("duplicate key {key:?} at the top level"),
    })
}

/// `[turnstile]` where `[[turnstile]]` was meant, or `[[http]]` where `[http]` was: serde only says
/// "invalid type: map, expected ..." at the header.
fn reword_wrong_table_kind(raw: &str, spanned_text: &str) -> Option<String> {
    raw.strip_prefix("invalid type: map, expected ")?;
    if let Some(inner) = spanned_text.strip_prefix("[[") {
        let name = inner.strip_suffix("]]")?.trim();
        if matches!(name, "turnstile" | "camera") {
            return None;
        }
        Some(format!(
            "table [[{name}]] must be written [{name}], only devices are lists"
        ))
    } else {
        let name = spanned_text.strip_prefix('[')?.strip_suffix(']')?.trim();
        if !matches!(name, "turnstile" | "camera") {
            return None;
        }
        Some(format!("table [{name}] must be written [[{name}]], once per device"))
    }
}

/// The header of the table a byte offset falls in, found by scanning back for a line starting with `[`.
fn enclosing_header(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| {
            // Drop a trailing comment; headers cannot contain `#` outside quotes, and device tables are bare.
            let line = line.split('#').next().unwrap_or(line).trim();
            normalize_header(line)
        })
}

/// `[[ turnstile ]]` → `[[turnstile]]`, so messages spell headers one way.
fn normalize_header(header: &str) -> String {
    let (open, close) = if header.starts_with("[[") {
        ("[[", "]]")
    } else {
        ("[", "]")
    };
    let inner = header
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    format!("{open}{inner}{close}")
}

/// Lowercase first letter (unless it starts an acronym like "TOML"), no trailing period, and TOML's word
/// for a list instead of serde's.
fn tidy(raw: &str) -> String {
    let raw = raw.replace("expected a sequence", "expected an array");
    let raw = raw.trim().trim_end_matches('.');
    let mut chars = raw.chars();
    match (chars.next(), chars.next()) {
        (Some(first), second) if first.is_uppercase() && !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(raw[first.len_utf8()..].chars()).collect()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CAMERA_C1, TURNSTILE_T1, error, parse};
    use super::*;

    #[test]
    fn a_toml_syntax_error_reports_where_the_parser_stopped() {
        assert_eq!(
            error("[http\nlisten = \"127.0.0.1:8080\"\n"),
            "config.toml:1:6: unclosed table, expected `]`"
        );
    }

    #[test]
    fn an_unknown_key_names_the_section_and_the_expected_keys() {
        assert_eq!(
            error("[site]\nname = \"Central Station\"\n\n[http]\nlisen = \"127.0.0.1:8080\"\n"),
            "config.toml:5:1: unknown key \"lisen\" in [http], expected one of: listen"
        );
    }

    #[test]
    fn an_unknown_dotted_key_names_the_table_it_lands_in() {
        assert_eq!(
            error("mqtt.topic-prefix = \"gatehouse\""),
            "config.toml:1:6: unknown key \"topic-prefix\" in [mqtt], expected one of: \
             broker, listen, topic_prefix, username, password, require_auth, max_connections, dead_letter_quota, \
             subscriber_sessions, tls_cert, tls_key"
        );
    }

    #[test]
    fn an_unknown_top_level_key_lists_the_sections() {
        assert_eq!(
            error("[site]\nname = \"x\"\n[turnstiles]\n"),
            "config.toml:3:2: unknown key \"turnstiles\" at the top level, expected one of: \
             site, http, storage, retention, mqtt, devices, followers, alarms, identification, occupancy, zone, notify, turnstile, \
             camera, \
             maintenance, forward, hq"
        );
    }

    #[test]
    fn an_unknown_key_in_a_device_names_the_device_table() {
        assert_eq!(
            error(&format!("{CAMERA_C1}watch = [\"T1\"]\n")),
            "config.toml:5:1: unknown key \"watch\" in [[camera]], expected one of: \
             id, name, zone, serial, model, manufacturer, watches"
        );
    }

    #[test]
    fn every_table_is_recognised_by_its_keys_in_unknown_key_messages() {
        // TABLE_KEYS must list each raw struct's fields exactly as serde does, or messages lose the table.
        for (table, keys) in TABLE_KEYS {
            let text = if table.is_empty() {
                "bogus = 1".to_owned()
            } else {
                format!("{table}\nbogus = 1")
            };
            let place = if table.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in {table}")
            };
            let line = if table.is_empty() { 1 } else { 2 };
            assert_eq!(
                error(&text),
                format!(
                    "config.toml:{line}:1: unknown key \"bogus\" {place}, expected one of: {}",
                    keys.join(", ")
                )
            );
        }
    }

    #[test]
    fn a_missing_key_names_the_device_table() {
        assert_eq!(
            error("[site]\nname = \"x\"\n\n[[turnstile]]\nid = \"T1\"\nname = \"Hall A north\"\n"),
            "config.toml:4:1: missing key \"zone\" in [[turnstile]]"
        );
    }

    #[test]
    fn a_device_table_written_with_single_brackets_is_explained() {
        assert_eq!(
            error("[turnstile]\nid = \"T1\"\n"),
            "config.toml:1:1: table [turnstile] must be written [[turnstile]], once per device"
        );
    }

    #[test]
    fn a_settings_table_written_with_double_brackets_is_explained() {
        assert_eq!(
            error("[[http]]\nlisten = \"127.0.0.1:8080\"\n"),
            "config.toml:1:1: table [[http]] must be written [http], only devices are lists"
        );
    }

    #[test]
    fn a_repeated_key_is_named_with_its_table() {
        assert_eq!(
            error("[http]\nlisten = \"127.0.0.1:8080\"\nlisten = \"127.0.0.1:8081\"\n"),
            "config.toml:3:1: duplicate key \"listen\" in [http]"
        );
    }

    #[test]
    fn a_repeated_table_is_named() {
        assert_eq!(error("[http]\n\n[http]\n"), "config.toml:3:2: duplicate table [http]");
    }

    #[test]
    fn a_value_of_the_wrong_type_points_at_the_value() {
        assert_eq!(
            error("[http]\nlisten = 8080\n"),
            "config.toml:2:10: invalid type: integer `8080`, expected a string"
        );
        assert_eq!(
            error(&format!("{TURNSTILE_T1}{CAMERA_C1}watches = \"T1\"\n")),
            "config.toml:9:11: invalid type: string \"T1\", expected an array"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(
            error("site = { name = \"Köln Hbf\", timezone = \"Nowhere\" }"),
            "config.toml:1:40: unknown time zone \"Nowhere\""
        );
    }

    #[test]
    fn the_error_exposes_its_parts() {
        let err = parse("[site]\ntimezone = \"Nowhere\"\n").unwrap_err();
        assert_eq!(err.origin(), "config.toml");
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.col(), Some(12));
        assert_eq!(err.message(), "unknown time zone \"Nowhere\"");
    }
}
