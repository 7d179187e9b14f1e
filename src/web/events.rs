//! `/events`: the journal itself, newest first, with filters by stream and type and cursors by position. One of
//! the two pages that read `journal.db` rather than read tables: it shows the facts as stored, decoded through
//! the same upcasting path every other reader uses.

use crate::domain::{DEVICE_EVENT_TYPES, StreamName};
use crate::journal::{Position, StoredEvent};
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(page));
}

/// Events per page.
const PAGE_SIZE: usize = 100;

/// One event as the pages show it: metadata in site time and the body's fields as text.
pub struct EventRow {
    pub position: Position,
    pub stream: String,
    /// Where the stream's own page is (a device's page), if it has one.
    pub stream_page: Option<String>,
    pub version: u64,
    pub event_type: String,
    pub occurred: String,
    pub recorded: String,
    /// Who or what caused it (`gateway:pi-3`, `config`, `policy:offline`, `user:ana`).
    pub actor: String,
    pub fields: Vec<(String, String)>,
    /// When a manager voided this fact: why, who and when (the device page fills it in).
    pub voided: Option<String>,
    /// A fact a manager may void (a passage or a recognition not voided yet).
    pub voidable: bool,
}

impl EventRow {
    /// The row of `stored`, its people revealed by `vault` (identifiers, or "forgotten").
    pub fn new(stored: &StoredEvent, tz: &jiff::tz::TimeZone, vault: &crate::privacy::SubjectVault) -> EventRow {
        let mut fields = Vec::new();
        let mut body = stored.event.to_json();
        vault.reveal_json(&mut body);
        flatten("", &body, &mut fields);
        EventRow {
            position: stored.position,
            stream: stored.stream_id.to_string(),
            stream_page: stored.device().map(|(id, _)| format!("/devices/{id}")),
            version: stored.version,
            event_type: stored.event_type.to_owned(),
            occurred: super::local_time(tz, stored.occurred_at.as_microsecond()),
            recorded: super::local_time(tz, stored.recorded_at.as_microsecond()),
            actor: stored.actor_text().to_owned(),
            fields,
            voided: None,
            voidable: stored
                .device()
                .is_some_and(|(_, event)| crate::domain::VoidedFact::of(event).is_some()),
        }
    }
}

/// Turns an event body's JSON into `key: value` pairs, nested keys joined with dots (`details.zone`).
fn flatten(key: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (name, inner) in map {
                // Every body's `at` is the event's occurred time, already shown beside the fields.
                if key.is_empty() && name == "at" {
                    continue;
                }
                // Unset optional details (serial, model) are noise; a top-level null (an unrecognized
                // subject) is information and is shown below.
                if !key.is_empty() && inner.is_null() {
                    continue;
                }
                let path = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                flatten(&path, inner, out);
            }
        }
        Value::Array(items) if items.is_empty() => out.push((key.to_owned(), "none".to_owned())),
        Value::Array(items) => {
            let text = crate::visible::visible(&items.iter().map(scalar).collect::<Vec<_>>().join(", "));
            out.push((key.to_owned(), text));
        }
        // Values may be device-sent text: nothing in them may hide or reorder what is shown.
        other => out.push((key.to_owned(), crate::visible::visible(&scalar(other)))),
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

/// The query string as sent; every field is checked by [`Filter::parse`].
#[derive(Deserialize)]
pub struct RawQuery {
    stream: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

/// What the browser asked for, validated.
struct Filter {
    stream: Option<StreamName>,
    event_type: Option<&'static str>,
    after: Option<Position>,
    before: Option<Position>,
}

/// A query parameter that is absent or left empty by a form means "no filter".
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Parses a position or version cursor, with a message that says which parameter was wrong.
pub(super) fn cursor(name: &str, value: &Option<String>) -> actix_web::Result<Option<u64>> {
    given(value)
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                actix_web::error::ErrorBadRequest(format!("{name}: {text:?} is not a whole number like 120"))
            })
        })
        .transpose()
}

impl Filter {
    fn parse(raw: &RawQuery) -> actix_web::Result<Filter> {
        let stream = given(&raw.stream)
            .map(|s| StreamName::parse(s).map_err(|e| actix_web::error::ErrorBadRequest(format!("stream: {e}"))))
            .transpose()?;
        let event_type = given(&raw.event_type)
            .map(|t| {
                DEVICE_EVENT_TYPES
                    .iter()
                    .copied()
                    .find(|known| *known == t)
                    .ok_or_else(|| {
                        actix_web::error::ErrorBadRequest(format!(
                            "type: {t:?} is not an event type; expected one of {}",
                            DEVICE_EVENT_TYPES.join(", ")
                        ))
                    })
            })
            .transpose()?;
        Ok(Filter {
            stream,
            event_type,
            after: cursor("after", &raw.after)?,
            before: cursor("before", &raw.before)?,
        })
    }

    fn is_filtered(&self) -> bool {
        self.stream.is_some() || self.event_type.is_some() || self.after.is_some()
    }

    /// This page's URL with another `before` cursor (`None`: the newest page). Every value is a validated id,
    /// type name or number, so none needs percent-encoding.
    fn link(&self, before: Option<Position>) -> String {
        let mut params = Vec::new();
        if let Some(stream) = &self.stream {
            params.push(format!("stream={stream}"));
        }
        if let Some(event_type) = self.event_type {
            params.push(format!("type={event_type}"));
        }
        if let Some(after) = self.after {
            params.push(format!("after={after}"));
        }
        if let Some(before) = before {
            params.push(format!("before={before}"));
        }
        if params.is_empty() {
            "/events".to_owned()
        } else {
            format!("/events?{}", params.join("&"))
        }
    }
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    site: String,
    time_zone: String,
    head: Position,
    stream: String,
    event_type: String,
    after: String,
    event_types: &'static [&'static str],
    devices: Vec<String>,
    filtered: bool,
    rows: Vec<EventRow>,
    /// Where the next older page starts, when there is one.
    older: Option<String>,
    /// The newest page, when this is not it.
    newest: Option<String>,
}

/// Up to `PAGE_SIZE` matching events, newest first, and whether older ones match too.
fn load(
    journal: &crate::journal::JournalReader,
    filter: &Filter,
) -> anyhow::Result<(Vec<StoredEvent>, bool, Position)> {
    let head = journal.head()?;
    // One more than a page tells whether an "older" link leads anywhere.
    let mut events = journal.page(
        filter.stream.as_ref().map(StreamName::as_str),
        filter.event_type,
        filter.before,
        PAGE_SIZE + 1,
    )?;
    let after = filter.after.unwrap_or(0);
    events.retain(|e| e.position > after);
    let more = events.len() > PAGE_SIZE;
    events.truncate(PAGE_SIZE);
    Ok((events, more, head))
}

pub async fn page(state: web::Data<AppState>, query: web::Query<RawQuery>) -> actix_web::Result<HttpResponse> {
    let filter = Filter::parse(&query)?;
    let tz = state.config.site.timezone.clone();
    let devices = super::read_views(&state, |conn| {
        let mut stmt = conn.prepare("SELECT device_id FROM device_status ORDER BY device_id")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<Result<Vec<String>, _>>()?)
    })
    .await?;
    let (filter, (events, more, head)) = super::read_journal(&state, move |journal| {
        let loaded = load(journal, &filter)?;
        Ok((filter, loaded))
    })
    .await?;
    let rows: Vec<EventRow> = events.iter().map(|e| EventRow::new(e, &tz, &state.vault)).collect();
    let page = EventsPage {
        site: state.config.site.name.clone(),
        time_zone: tz.iana_name().unwrap_or("site time").to_owned(),
        head,
        stream: filter.stream.as_ref().map(ToString::to_string).unwrap_or_default(),
        event_type: filter.event_type.unwrap_or_default().to_owned(),
        after: filter.after.map(|a| a.to_string()).unwrap_or_default(),
        event_types: &DEVICE_EVENT_TYPES,
        devices,
        filtered: filter.is_filtered(),
        older: rows
            .last()
            .filter(|_| more)
            .map(|last| filter.link(Some(last.position))),
        newest: filter.before.map(|_| filter.link(None)),
        rows,
    };
    super::render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_one_the_codec_knows() {
        for name in DEVICE_EVENT_TYPES {
            let error =
                crate::codec::decode_event::<crate::domain::DeviceEvent>(name, 1, crate::codec::FORMAT_BINCODE2, &[])
                    .unwrap_err();
            assert!(
                !matches!(error, crate::codec::DecodeError::UnknownType(_)),
                "{name} is not a codec type"
            );
        }
    }

    #[test]
    fn fields_flatten_nested_bodies_and_skip_the_occurred_time() {
        let body = serde_json::json!({
            "at": "2026-03-01T09:00:00Z",
            "details": {"name": "Hall A", "serial": null},
            "watches": ["T1", "T2"],
            "subject": null,
            "confidence": 0.5,
        });
        let mut fields = Vec::new();
        flatten("", &body, &mut fields);
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("confidence", "0.5"),
                ("details.name", "Hall A"),
                ("subject", "none"),
                ("watches", "T1, T2")
            ]
        );
    }
}
