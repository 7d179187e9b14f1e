//! `/devices/{id}`: one device, now (its `device_status` row) or as of a past instant (its events folded from the
//! journal up to then, the view event sourcing makes possible), with its event timeline, newest first.

use super::events::{EventRow, cursor};
use crate::domain::{Availability, DeviceId, DeviceState, Lifecycle};
use crate::journal::{JournalReader, StoredEvent};
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::OptionalExtension;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}", web::get().to(page));
}

/// Timeline events per page.
const PAGE_SIZE: usize = 50;

/// The query string as sent; checked by [`DeviceQuery::parse`].
#[derive(Deserialize)]
pub struct RawQuery {
    as_of: Option<String>,
    before: Option<String>,
    /// What the last action did (after a lock-out or unlock).
    notice: Option<String>,
}

/// What the page was asked for, validated.
struct DeviceQuery {
    /// Show the state folded up to this instant instead of the live one.
    as_of: Option<Timestamp>,
    /// Show timeline events with a lower version only (the "older" cursor).
    before: Option<u64>,
}

impl DeviceQuery {
    fn parse(raw: &RawQuery, tz: &TimeZone) -> actix_web::Result<DeviceQuery> {
        let as_of = raw
            .as_of
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                crate::history::parse_instant(t, tz)
                    .map_err(|e| actix_web::error::ErrorBadRequest(format!("as_of: {e}")))
            })
            .transpose()?;
        Ok(DeviceQuery {
            as_of,
            before: cursor("before", &raw.before)?,
        })
    }

    /// This page's URL with another `before` cursor. The instant goes back as RFC 3339 in UTC (digits, `-`,
    /// `:`, `.`, `T`, `Z`), which needs no percent-encoding and means the same in every time zone.
    fn link(&self, id: &DeviceId, before: Option<u64>) -> String {
        let mut params = Vec::new();
        if let Some(as_of) = self.as_of {
            params.push(format!("as_of={as_of}"));
        }
        if let Some(before) = before {
            params.push(format!("before={before}"));
        }
        if params.is_empty() {
            format!("/devices/{id}")
        } else {
            format!("/devices/{id}?{}", params.join("&"))
        }
    }
}

/// The live state, from the `device_status` read table.
pub struct Live {
    pub kind: String,
    pub name: String,
    pub zone: String,
    pub lifecycle: String,
    pub availability: String,
    pub open_faults: Vec<String>,
    pub locked_out: bool,
    /// The lock-out in force: why, since when (site time) and who decided it.
    pub lock: Option<LockLine>,
    pub last_event: String,
    pub passages_in: i64,
    pub passages_out: i64,
    /// Messages the gateway's `seq` says never arrived.
    pub lost_messages: i64,
    /// The latest message's clock skew, as people read it ("1.2 s behind").
    pub clock_skew: Option<String>,
}

/// The lock-out in force, as the live page shows it.
pub struct LockLine {
    pub reason: String,
    pub since: String,
    pub by: String,
}

/// Recorded time minus device time, as a sentence.
fn describe_skew(ms: i64) -> String {
    let seconds = ms.unsigned_abs() as f64 / 1000.0;
    match ms {
        0 => "in step with ours".into(),
        ms if ms > 0 => format!("{seconds:.1} s behind ours (or the message took that long)"),
        _ => format!("{seconds:.1} s ahead of ours"),
    }
}

/// One open fault in a past state.
pub struct FaultLine {
    pub code: String,
    pub detail: String,
    pub since: String,
}

/// The state folded from the journal up to an instant, in words.
pub struct Past {
    pub kind: &'static str,
    pub name: String,
    pub zone: String,
    pub lifecycle: &'static str,
    pub availability: String,
    pub faults: Vec<FaultLine>,
    /// `Some` for turnstiles: the lock-out in force, or `None` inside when there was none.
    pub lock_out: Option<Option<(String, String)>>,
    pub watches: Option<String>,
    pub counters: Vec<(&'static str, u64)>,
    pub last_event: String,
    /// The version of the last event folded (0: nothing had happened yet).
    pub version: u64,
}

impl Past {
    fn new(state: &DeviceState, version: u64, tz: &TimeZone) -> Past {
        let common = state.common();
        let time = |t: Timestamp| super::local_time(tz, t.as_microsecond());
        let availability = match common.availability {
            Availability::Unknown => "unknown: never heard from".to_owned(),
            Availability::Online { since } => format!("online since {}", time(since)),
            Availability::Offline { since } => format!("offline since {}", time(since)),
        };
        let faults = common
            .open_faults
            .iter()
            .map(|(code, fault)| FaultLine {
                code: code.to_string(),
                detail: fault.detail.clone(),
                since: time(fault.since),
            })
            .collect();
        let (kind, lock_out, watches, counters) = match state {
            DeviceState::Turnstile(t) => (
                "turnstile",
                Some(t.locked_out.as_ref().map(|l| (l.reason.clone(), time(l.since)))),
                None,
                vec![("Passages in", t.passages_in), ("Passages out", t.passages_out)],
            ),
            DeviceState::Camera(c) => (
                "camera",
                None,
                Some(if c.watches.is_empty() {
                    "no turnstiles".to_owned()
                } else {
                    c.watches.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }),
                vec![
                    ("Faces recognized", c.recognized),
                    ("Faces not recognized", c.unrecognized),
                ],
            ),
        };
        Past {
            kind,
            name: common.details.name.clone(),
            zone: common.details.zone.clone(),
            lifecycle: match common.lifecycle {
                Lifecycle::Uncommissioned => "not yet commissioned",
                Lifecycle::Active => "active",
                Lifecycle::Decommissioned => "decommissioned",
            },
            availability,
            faults,
            lock_out,
            watches,
            counters,
            last_event: common.last_event_at.map(time).unwrap_or_else(|| "none yet".into()),
            version,
        }
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    site: String,
    id: String,
    time_zone: String,
    today: String,
    live: Option<Live>,
    past: Option<Past>,
    /// The instant shown, in site time, when it is not now.
    as_of: Option<String>,
    /// The same instant as a `datetime-local` field wants it (`2026-03-01T10:30:00`), for the form.
    as_of_input: String,
    /// The device's newest event version: how much history there is in all.
    latest_version: u64,
    timeline: Vec<EventRow>,
    older: Option<String>,
    newest: Option<String>,
    /// The form token when the viewer may act (a signed-in session, not an API token).
    csrf: Option<String>,
    notice: Option<String>,
    reason_max: usize,
    maintenance: Maintenance,
}

#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block title %}No device {{ id }} · Gatehouse{% endblock %}
{% block content %}<h1>No device {{ id }}</h1>
<p class="empty">no device {{ id }}: devices come from config.toml. <a href="/">See every device</a>.</p>
{% endblock %}"#,
    ext = "html"
)]
struct NotFound {
    site: String,
    id: String,
}

fn not_found(state: &AppState, id: &str) -> actix_web::Result<HttpResponse> {
    let page = NotFound {
        site: state.config.site.name.clone(),
        id: id.to_owned(),
    };
    let html = page
        .render()
        .map_err(|e| super::internal_error("cannot render page", e))?;
    Ok(HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

fn load_live(conn: &rusqlite::Connection, id: &str, today: &str, tz: &TimeZone) -> anyhow::Result<Option<Live>> {
    let live = conn
        .query_row(
            "SELECT kind, name, zone, lifecycle, availability, open_faults, locked_out, last_event_at,
                    CASE WHEN passages_day = ?2 THEN passages_today_in ELSE 0 END,
                    CASE WHEN passages_day = ?2 THEN passages_today_out ELSE 0 END,
                    lost_messages, clock_skew_ms, lock_reason, locked_since, locked_by
             FROM device_status WHERE device_id = ?1",
            [id, today],
            |r| {
                Ok(Live {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    zone: r.get(2)?,
                    lifecycle: r.get(3)?,
                    availability: r.get(4)?,
                    open_faults: r.get::<_, String>(5)?.split_whitespace().map(str::to_owned).collect(),
                    locked_out: r.get(6)?,
                    lock: match (r.get::<_, Option<String>>(12)?, r.get::<_, Option<i64>>(13)?) {
                        (Some(reason), Some(since)) => Some(LockLine {
                            reason,
                            since: super::local_time(tz, since),
                            by: r.get::<_, Option<String>>(14)?.unwrap_or_else(|| "unrecorded".into()),
                        }),
                        _ => None,
                    },
                    last_event: r
                        .get::<_, Option<i64>>(7)?
                        .map(|m| super::local_time(tz, m))
                        .unwrap_or_else(|| "never".into()),
                    passages_in: r.get(8)?,
                    passages_out: r.get(9)?,
                    lost_messages: r.get(10)?,
                    clock_skew: r.get::<_, Option<i64>>(11)?.map(describe_skew),
                })
            },
        )
        .optional()?;
    Ok(live)
}

/// The device's work orders still to do, and its service meter.
pub struct Maintenance {
    pub orders: Vec<OrderLine>,
    /// "41,200 of 50,000 passages since the last service (2026-03-01 09:00:00)", for a metered turnstile.
    pub meter: Option<String>,
}

pub struct OrderLine {
    pub id: String,
    pub state: String,
    pub title: String,
}

fn load_maintenance(
    conn: &rusqlite::Connection,
    id: &str,
    service_every: Option<u64>,
    tz: &TimeZone,
) -> anyhow::Result<Maintenance> {
    let filter = crate::work_orders::Filter {
        state: Some("active".into()),
        device: Some(id.to_owned()),
        limit: Some(50),
        ..Default::default()
    };
    let orders = crate::work_orders::list(conn, &filter)?
        .into_iter()
        .map(|o| OrderLine {
            id: o.id(),
            state: o.state_words(),
            title: o.title,
        })
        .collect();
    let meter = match service_every {
        Some(every) => {
            let (passages, since) = crate::work_orders::service_meter(conn, id)?;
            let since = match since {
                Some(at) => format!("since the last service ({})", super::local_time(tz, at)),
                None => "since it was first counted (no service recorded yet)".to_owned(),
            };
            Some(format!(
                "{} of {} passages {since}",
                thousands(passages.max(0) as u64),
                thousands(every)
            ))
        }
        None => None,
    };
    Ok(Maintenance { orders, meter })
}

/// 41200 as "41,200".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the journal says about the device for this page.
struct History {
    /// The folded state and the version it includes, when an instant was asked for.
    past: Option<(DeviceState, u64)>,
    latest_version: u64,
    /// Newest first; one more than a page when older events exist.
    timeline: Vec<StoredEvent>,
}

/// Reads the timeline page (and, for an instant, folds the stream). `None` when the journal has no events for
/// the device.
fn load_history(journal: &JournalReader, id: &DeviceId, query: &DeviceQuery) -> anyhow::Result<Option<History>> {
    let Some(as_of) = query.as_of else {
        let latest_version = journal.stream_version(id)?;
        if latest_version == 0 {
            return Ok(None);
        }
        // Within a stream, versions grow with positions (both follow commit order), so "versions below V" is
        // "positions below the first event at version V or later", and the journal's newest-first page applies.
        let before_position: Option<i64> = match query.before {
            None => None,
            Some(version) => journal.connection().query_row(
                "SELECT MIN(position) FROM events WHERE stream_id = ?1 AND version >= ?2",
                rusqlite::params![id.as_str(), version as i64],
                |r| r.get(0),
            )?,
        };
        let timeline = journal.page(
            Some(id.as_str()),
            None,
            before_position.map(|p| p as u64),
            PAGE_SIZE + 1,
        )?;
        return Ok(Some(History {
            past: None,
            latest_version,
            timeline,
        }));
    };
    // The past needs the whole stream folded anyway, so its timeline is cut from the same read. Before an
    // archive cut only the carried-forward state is left: the page shows the earliest instant it can.
    let events = journal.stream_events(id, 0)?;
    let as_of = crate::history::archived_before(&events).map_or(as_of, |cut| as_of.max(cut));
    let Some(folded) = crate::history::fold_events(id, &events, Some(as_of))? else {
        return Ok(None);
    };
    let latest_version = events.last().map_or(0, |e| e.version);
    let timeline = events
        .into_iter()
        .rev()
        .filter(|e| e.occurred_at <= as_of && query.before.is_none_or(|b| e.version < b))
        .take(PAGE_SIZE + 1)
        .collect();
    Ok(Some(History {
        past: Some(folded),
        latest_version,
        timeline,
    }))
}

pub async fn page(
    state: web::Data<AppState>,
    identity: crate::auth::Identity,
    path: web::Path<String>,
    query: web::Query<RawQuery>,
) -> actix_web::Result<HttpResponse> {
    let tz = state.config.site.timezone.clone();
    let raw_id = path.into_inner();
    // An id that cannot be a device id names no device: the same answer as an unknown one.
    let Ok(id) = DeviceId::parse(&raw_id) else {
        return not_found(&state, &raw_id);
    };
    let notice = query.notice.clone();
    let query = DeviceQuery::parse(&query, &tz)?;
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date().to_string();

    let (key, day, zone) = (id.to_string(), today.clone(), tz.clone());
    let service_every = state
        .config
        .turnstiles
        .iter()
        .find(|t| t.id == id)
        .and_then(|t| t.passages_between_service);
    let (live, maintenance) = super::read_views(&state, move |conn| {
        Ok((
            load_live(conn, &key, &day, &zone)?,
            load_maintenance(conn, &key, service_every, &zone)?,
        ))
    })
    .await?;
    let (id, query, history, voids) = super::read_journal(&state, move |journal| {
        let history = load_history(journal, &id, &query)?;
        // Voids of the facts on this page come after the oldest of them.
        let oldest = history
            .as_ref()
            .and_then(|h| h.timeline.iter().map(|e| e.position).min());
        let voids = match oldest {
            Some(oldest) => journal.voids_after(id.as_str(), oldest)?,
            None => Vec::new(),
        };
        Ok((id, query, history, voids))
    })
    .await?;
    // The read table can trail the journal by a moment (and the journal by nothing): either knowing the
    // device is enough to show it.
    let Some(history) = history.or_else(|| {
        live.as_ref().map(|_| History {
            past: None,
            latest_version: 0,
            timeline: Vec::new(),
        })
    }) else {
        return not_found(&state, id.as_str());
    };

    let History {
        past,
        latest_version,
        mut timeline,
    } = history;
    let more = timeline.len() > PAGE_SIZE;
    timeline.truncate(PAGE_SIZE);
    let timeline = with_voids(
        timeline.iter().map(|e| EventRow::new(e, &tz, &state.vault)).collect(),
        &voids,
        &tz,
    );
    let page = DevicePage {
        site: state.config.site.name.clone(),
        id: id.to_string(),
        time_zone: tz.iana_name().unwrap_or("site time").to_owned(),
        today,
        live,
        past: past.map(|(state, version)| Past::new(&state, version, &tz)),
        as_of: query.as_of.map(|t| super::local_time(&tz, t.as_microsecond())),
        as_of_input: query
            .as_of
            .map(|t| {
                t.to_zoned_datetime(tz.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default(),
        latest_version,
        older: timeline
            .last()
            .filter(|_| more)
            .map(|last| query.link(&id, Some(last.version))),
        newest: query.before.map(|_| query.link(&id, None)),
        timeline,
        csrf: identity.csrf.clone(),
        notice: notice.filter(|n| !n.is_empty()),
        reason_max: crate::requests::MAX_REASON_CHARS,
        maintenance,
    };
    super::render(&page)
}

/// Marks the rows a manager voided with why, who and when; a voided fact cannot be voided again.
fn with_voids(mut rows: Vec<EventRow>, voids: &[StoredEvent], tz: &TimeZone) -> Vec<EventRow> {
    let notes: std::collections::HashMap<u64, String> = voids
        .iter()
        .filter_map(|stored| match stored.device() {
            Some((_, crate::domain::DeviceEvent::FactVoided(v))) => Some((
                v.position,
                format!(
                    "void: {} (by {}, {}, position {})",
                    v.reason,
                    stored.actor_text(),
                    super::local_time(tz, stored.recorded_at.as_microsecond()),
                    stored.position
                ),
            )),
            _ => None,
        })
        .collect();
    for row in &mut rows {
        if let Some(note) = notes.get(&row.position) {
            row.voided = Some(note.clone());
            row.voidable = false;
        }
    }
    rows
}
