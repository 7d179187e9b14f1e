//! `/work-orders` (filters, overdue marked, CSV) and `/work-orders/{id}` (details, timeline, the buttons for the
//! next steps and a comment box). A step is an `OperatorCommand` carried out on the order's actor as the signed-in
//! manager, then the page waits, bounded, until the read tables show it (read-your-writes).

use super::auth::{Manager, check_csrf};
use super::csv::Csv;
use crate::auth::Identity;
use crate::domain::work_order::{Status, WorkOrderKind, WorkOrderNumber};
use crate::requests::{OperatorCommand, WorkOrderStep};
use crate::web::AppState;
use crate::work_orders::{self, Filter, PAGE_LIMIT, WorkOrderRow};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/work-orders", web::get().to(list_page))
        .route("/work-orders/{id}", web::get().to(order_page))
        .route("/work-orders/{id}/step", web::post().to(step));
}

#[derive(Deserialize, Default)]
struct ListQuery {
    state: Option<String>,
    device: Option<String>,
    zone: Option<String>,
    kind: Option<String>,
    overdue: Option<String>,
    format: Option<String>,
}

/// One listed order as the page shows it.
struct Listed {
    id: String,
    device: String,
    zone: String,
    kind: String,
    state: String,
    state_class: String,
    opened: String,
    due: String,
    overdue: bool,
    assignee: String,
    title: String,
}

#[derive(Template)]
#[template(path = "work_orders.html")]
struct ListPage {
    site: String,
    orders: Vec<Listed>,
    truncated: bool,
    state: String,
    device: String,
    zone: String,
    kind: String,
    overdue: bool,
    states: Vec<(&'static str, String)>,
    counts: work_orders::Counts,
    csv_link: String,
    filtered: bool,
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn bad_request(why: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{why}\n"))
}

async fn list_page(state: web::Data<AppState>, query: web::Query<ListQuery>) -> actix_web::Result<HttpResponse> {
    let query = query.into_inner();
    let (state_filter, device, zone, kind) = (
        blank_to_none(query.state),
        blank_to_none(query.device),
        blank_to_none(query.zone),
        blank_to_none(query.kind),
    );
    let state_filter = match state_filter.as_deref().map(Filter::parse_state).transpose() {
        Ok(s) => s,
        Err(why) => return Ok(bad_request(format!("state: {why}"))),
    };
    let kind_filter = match kind.as_deref().map(WorkOrderKind::parse).transpose() {
        Ok(k) => k,
        Err(why) => return Ok(bad_request(format!("kind: {why}"))),
    };
    let overdue = query.overdue.as_deref().is_some_and(|v| v == "1" || v == "on");
    let csv = query.format.as_deref() == Some("csv");
    let now = jiff::Timestamp::now().as_microsecond();
    let filter = Filter {
        state: state_filter.clone(),
        device: device.clone(),
        zone: zone.clone(),
        kind: kind_filter,
        overdue_at: overdue.then_some(now),
        limit: (!csv).then_some(PAGE_LIMIT + 1),
    };
    let (mut rows, counts) = super::read_views(&state, move |views| {
        Ok((work_orders::list(views, &filter)?, work_orders::counts(views, now)?))
    })
    .await?;
    let tz = &state.config.site.timezone;
    let local = |micros: i64| super::local_time(tz, micros);
    if csv {
        let mut out = Csv::with_header(&[
            "id",
            "device",
            "kind",
            "state",
            "opened_at",
            "due_at",
            "assignee",
            "resolved_at",
            "title",
        ]);
        let iso = super::iso_time;
        for row in &rows {
            out.row(&[
                row.id(),
                row.device.clone(),
                row.kind.clone(),
                row.state.clone(),
                iso(row.opened_at),
                row.due_at.map(iso).unwrap_or_default(),
                row.assignee.clone().unwrap_or_default(),
                row.resolved_at.map(iso).unwrap_or_default(),
                row.title.clone(),
            ]);
        }
        return Ok(out.into_response("work-orders.csv"));
    }
    let truncated = rows.len() > PAGE_LIMIT;
    rows.truncate(PAGE_LIMIT);
    let orders = rows
        .iter()
        .map(|row: &WorkOrderRow| Listed {
            id: row.id(),
            device: row.device.clone(),
            zone: row.zone.clone(),
            kind: row.kind.clone(),
            state: row.state_words(),
            state_class: row.state.clone(),
            opened: local(row.opened_at),
            due: row.due_at.map(local).unwrap_or_default(),
            overdue: row.is_overdue(now),
            assignee: row.assignee.clone().unwrap_or_default(),
            title: row.title.clone(),
        })
        .collect();
    let mut link = String::from("/work-orders?");
    for (key, value) in [
        ("state", &state_filter),
        ("device", &device),
        ("zone", &zone),
        ("kind", &kind),
    ] {
        if let Some(value) = value {
            link.push_str(&format!("{key}={}&", super::urlencode(value)));
        }
    }
    if overdue {
        link.push_str("overdue=1&");
    }
    link.push_str("format=csv");
    let filtered = state_filter.is_some() || device.is_some() || zone.is_some() || kind.is_some() || overdue;
    let mut states = vec![("active", "still to do".to_owned())];
    states.extend(Status::ALL.iter().map(|s| (s.as_str(), s.to_string())));
    super::render(&ListPage {
        site: state.config.site.name.clone(),
        orders,
        truncated,
        state: state_filter.unwrap_or_default(),
        device: device.unwrap_or_default(),
        zone: zone.unwrap_or_default(),
        kind: kind.unwrap_or_default(),
        overdue,
        states,
        counts,
        csv_link: link,
        filtered,
    })
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

struct StepRow {
    at: String,
    step: String,
    actor: String,
    text: String,
}

#[derive(Template)]
#[template(path = "work_order.html")]
struct OrderPage {
    site: String,
    order: WorkOrderRow,
    state: String,
    opened: String,
    due: String,
    overdue: bool,
    resolved: String,
    steps: Vec<StepRow>,
    notice: Option<String>,
    /// Only a signed-in manager or admin (not an API token) gets the forms.
    can_act: bool,
    csrf: String,
    can_ack: bool,
    can_assign: bool,
    can_start: bool,
    can_resolve: bool,
    can_cancel: bool,
}

async fn order_page(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> actix_web::Result<HttpResponse> {
    let Ok(number) = WorkOrderNumber::parse(&path.into_inner()) else {
        return Ok(not_found());
    };
    let found = super::read_views(&state, move |views| {
        Ok(match work_orders::one(views, number)? {
            Some(order) => Some((order, work_orders::steps(views, number)?)),
            None => None,
        })
    })
    .await?;
    let Some((order, steps)) = found else {
        return Ok(not_found());
    };
    let tz = &state.config.site.timezone;
    let local = |micros: i64| super::local_time(tz, micros);
    let now = jiff::Timestamp::now().as_microsecond();
    let status = Status::parse(&order.state).ok();
    let is = |allowed: &[Status]| status.is_some_and(|s| allowed.contains(&s));
    use Status::*;
    super::render(&OrderPage {
        site: state.config.site.name.clone(),
        state: order.state_words(),
        opened: local(order.opened_at),
        due: order.due_at.map(local).unwrap_or_default(),
        overdue: order.is_overdue(now),
        resolved: order.resolved_at.map(local).unwrap_or_default(),
        steps: steps
            .into_iter()
            .map(|s| StepRow {
                at: local(s.at),
                step: s.step,
                actor: s.actor,
                text: s.text,
            })
            .collect(),
        notice: query.into_inner().notice,
        can_act: identity.csrf.is_some(),
        csrf: identity.csrf.clone().unwrap_or_default(),
        can_ack: is(&[Open]),
        can_assign: is(&[Open, Acknowledged, InProgress]),
        can_start: is(&[Acknowledged]) && order.assignee.is_some(),
        can_resolve: is(&[Acknowledged, InProgress]),
        can_cancel: is(&[Open, Acknowledged, InProgress]),
        order,
    })
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such work order\n")
}

#[derive(Deserialize)]
struct StepForm {
    csrf: String,
    step: String,
    #[serde(default)]
    text: String,
}

async fn step(
    state: web::Data<AppState>,
    Manager(identity): Manager,
    path: web::Path<String>,
    form: web::Form<StepForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let Ok(number) = WorkOrderNumber::parse(&path.into_inner()) else {
        return Ok(not_found());
    };
    let order = number.to_string();
    let page = format!("/work-orders/{order}");
    let command =
        match WorkOrderStep::parse(&form.step, &form.text).and_then(|step| OperatorCommand::work_order(&order, step)) {
            Ok(command) => command,
            Err(why) => return Ok(super::admin::back_to_with(&page, &format!("nothing done: {why}"))),
        };
    let notice = super::lockout::carry_out_and_wait(&state, &identity.name, &command).await;
    Ok(super::admin::back_to_with(&page, &notice))
}
