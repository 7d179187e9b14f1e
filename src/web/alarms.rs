//! `/alarms` (active first, severity colours, acknowledge / clear, CSV; its table kept live through
//! `/live/alarms`, which answers 304 until the alarms projector moves), `/alarms/{id}` (details and timeline)
//! and the banner every page polls (`/live/alarm-banner`): critical alarms nobody has acknowledged. A step is an
//! `OperatorCommand` carried out on the alarm's actor as the signed-in manager, then the page waits, bounded,
//! until the read tables show it (read-your-writes).

use super::auth::{Manager, check_csrf};
use super::csv::Csv;
use crate::alarms::{self, AlarmRow, PAGE_LIMIT};
use crate::auth::Identity;
use crate::domain::alarm::AlarmNumber;
use crate::requests::OperatorCommand;
use crate::web::AppState;
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/alarms", web::get().to(list_page))
        .route("/alarms/{id}", web::get().to(alarm_page))
        .route("/alarms/{id}/step", web::post().to(step))
        .route("/live/alarms", web::get().to(live_list))
        .route("/live/alarm-banner", web::get().to(banner));
}

#[derive(Deserialize, Default)]
struct ListQuery {
    active: Option<String>,
    format: Option<String>,
    notice: Option<String>,
}

/// One listed alarm as the page shows it.
struct Listed {
    id: String,
    severity: String,
    alarm_type: String,
    source: String,
    zone: String,
    detail: String,
    state: String,
    active: bool,
    acknowledged: bool,
    acknowledged_by: String,
    since: String,
    last_seen: String,
    count: i64,
}

#[derive(Template)]
#[template(path = "alarms_list.html")]
struct ListFragment {
    alarms: Vec<Listed>,
    truncated: bool,
    active_only: bool,
    can_act: bool,
    csrf: String,
}

#[derive(Template)]
#[template(path = "alarms.html")]
struct ListPage {
    site: String,
    alarms: Vec<Listed>,
    truncated: bool,
    active_only: bool,
    notice: Option<String>,
    can_act: bool,
    csrf: String,
}

/// The rows as the list shows them (the first `PAGE_LIMIT`), and whether there were more.
fn listed(state: &AppState, mut rows: Vec<AlarmRow>) -> (Vec<Listed>, bool) {
    let truncated = rows.len() > PAGE_LIMIT;
    rows.truncate(PAGE_LIMIT);
    let tz = &state.config.site.timezone;
    let local = |micros: i64| super::local_time(tz, micros);
    let alarms = rows
        .iter()
        .map(|row: &AlarmRow| Listed {
            id: row.id(),
            severity: row.severity.clone(),
            alarm_type: row.alarm_type.replace('_', " "),
            source: state.vault.reveal_text(&row.source),
            zone: row.zone.clone().unwrap_or_default(),
            detail: state.vault.reveal_text(&row.detail),
            state: row.state_words().to_owned(),
            active: row.active,
            acknowledged: row.acknowledged_by.is_some(),
            acknowledged_by: row.acknowledged_by.clone().unwrap_or_default(),
            since: local(row.first_seen),
            last_seen: local(row.last_seen),
            count: row.count,
        })
        .collect();
    (alarms, truncated)
}

/// The list's table alone, for the page's script: 304 while the alarms projector has not moved.
async fn live_list(
    state: web::Data<AppState>,
    identity: Identity,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let active_only = query.active.as_deref().is_some_and(|v| v == "1" || v == "on");
    let position = state
        .projectors
        .iter()
        .find(|p| p.name == "alarms")
        .map_or(0, |p| *p.position.borrow());
    // A person forgotten changes what the list says without a projector moving.
    let etag = format!("\"alarm-list-{position}-{active_only}-{}\"", state.vault.generation());
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let rows = super::read_views(&state, move |views| {
        Ok(alarms::list(views, active_only, Some(PAGE_LIMIT + 1))?)
    })
    .await?;
    let (alarms, truncated) = listed(&state, rows);
    let body = ListFragment {
        alarms,
        truncated,
        active_only,
        can_act: identity.csrf.is_some(),
        csrf: identity.csrf.unwrap_or_default(),
    }
    .render()
    .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

async fn list_page(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let query = query.into_inner();
    let active_only = query.active.as_deref().is_some_and(|v| v == "1" || v == "on");
    let csv = query.format.as_deref() == Some("csv");
    let limit = (!csv).then_some(PAGE_LIMIT + 1);
    let rows = super::read_views(&state, move |views| Ok(alarms::list(views, active_only, limit)?)).await?;
    if csv {
        let mut out = Csv::with_header(&[
            "id",
            "type",
            "severity",
            "source",
            "state",
            "acknowledged_by",
            "first_seen",
            "last_seen",
            "count",
        ]);
        for row in &rows {
            out.row(&[
                row.id(),
                row.alarm_type.clone(),
                row.severity.clone(),
                state.vault.reveal_text(&row.source),
                row.state().to_owned(),
                row.acknowledged_by.clone().unwrap_or_default(),
                super::iso_time(row.first_seen),
                super::iso_time(row.last_seen),
                row.count.to_string(),
            ]);
        }
        return Ok(out.into_response("alarms.csv"));
    }
    let (alarms, truncated) = listed(&state, rows);
    super::render(&ListPage {
        site: state.config.site.name.clone(),
        alarms,
        truncated,
        active_only,
        notice: query.notice,
        can_act: identity.csrf.is_some(),
        csrf: identity.csrf.clone().unwrap_or_default(),
    })
}

struct StepRow {
    at: String,
    step: String,
    actor: String,
    text: String,
}

#[derive(Template)]
#[template(path = "alarm.html")]
struct AlarmPage {
    site: String,
    alarm: AlarmRow,
    id: String,
    alarm_type: String,
    state: String,
    since: String,
    last_seen: String,
    cleared: String,
    steps: Vec<StepRow>,
    notice: Option<String>,
    can_act: bool,
    csrf: String,
}

async fn alarm_page(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> actix_web::Result<HttpResponse> {
    let Ok(number) = AlarmNumber::parse(&path.into_inner()) else {
        return Ok(not_found());
    };
    let found = super::read_views(&state, move |views| {
        Ok(match alarms::one(views, number)? {
            Some(alarm) => Some((alarm, alarms::steps(views, number)?)),
            None => None,
        })
    })
    .await?;
    let Some((mut alarm, steps)) = found else {
        return Ok(not_found());
    };
    alarm.source = state.vault.reveal_text(&alarm.source);
    alarm.detail = state.vault.reveal_text(&alarm.detail);
    let tz = &state.config.site.timezone;
    let local = |micros: i64| super::local_time(tz, micros);
    super::render(&AlarmPage {
        site: state.config.site.name.clone(),
        id: alarm.id(),
        alarm_type: alarm.alarm_type.replace('_', " "),
        state: alarm.state_words().to_owned(),
        since: local(alarm.first_seen),
        last_seen: local(alarm.last_seen),
        cleared: alarm.cleared_at.map(local).unwrap_or_default(),
        steps: steps
            .into_iter()
            .map(|s| StepRow {
                at: local(s.at),
                step: s.step,
                actor: s.actor,
                text: state.vault.reveal_text(&s.text),
            })
            .collect(),
        notice: query.into_inner().notice,
        can_act: identity.csrf.is_some(),
        csrf: identity.csrf.clone().unwrap_or_default(),
        alarm,
    })
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such alarm\n")
}

#[derive(Deserialize)]
struct StepForm {
    csrf: String,
    step: String,
    #[serde(default)]
    note: String,
    /// Where to go back to: the list or the alarm's own page.
    #[serde(default)]
    back: String,
}

async fn step(
    state: web::Data<AppState>,
    Manager(identity): Manager,
    path: web::Path<String>,
    form: web::Form<StepForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let Ok(number) = AlarmNumber::parse(&path.into_inner()) else {
        return Ok(not_found());
    };
    let alarm = number.to_string();
    let page = match form.back.as_str() {
        "list" => "/alarms".to_owned(),
        _ => format!("/alarms/{alarm}"),
    };
    let command = match OperatorCommand::alarm(&alarm, &form.step, Some(&form.note)) {
        Ok(command) => command,
        Err(why) => return Ok(super::admin::back_to_with(&page, &format!("nothing done: {why}"))),
    };
    let notice = super::lockout::carry_out_and_wait(&state, &identity.name, &command).await;
    Ok(super::admin::back_to_with(&page, &notice))
}

#[derive(Template)]
#[template(path = "alarm_banner.html")]
struct Banner {
    critical: Vec<Listed>,
    active: i64,
}

/// The banner's fragment: the critical alarms nobody has acknowledged (none: empty). 304 while unchanged.
async fn banner(state: web::Data<AppState>, request: HttpRequest) -> actix_web::Result<HttpResponse> {
    let (counts, critical) = super::read_views(&state, |views| {
        let counts = alarms::active_counts(views)?;
        let critical = match counts.critical_unacknowledged {
            0 => vec![],
            _ => alarms::list(views, true, Some(20))?
                .into_iter()
                .filter(|a| a.severity == "critical" && a.acknowledged_by.is_none())
                .collect(),
        };
        Ok((counts, critical))
    })
    .await?;
    // At most 20: all of them listed.
    let (critical, _) = listed(&state, critical);
    let ids: Vec<String> = critical.iter().map(|a| format!("{}x{}", a.id, a.count)).collect();
    let etag = format!(
        "\"alarms-{}-{}-{}\"",
        counts.active,
        ids.join("."),
        state.vault.generation()
    );
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let body = Banner {
        critical,
        active: counts.active,
    }
    .render()
    .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}
