//! `/admin/notifications`: each notification channel (what it takes, whether it delivers, switched off by its
//! receiver and switched on again here) and the latest notifications with their attempts, status and next retry;
//! an admin re-sends one (same id) or switches a channel on again, with the session's CSRF token. CSV of the list.

use super::auth::{Admin, check_csrf};
use super::csv::Csv;
use crate::auth::Identity;
use crate::config::ChannelTarget;
use crate::notify::outbox;
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

/// Notifications listed (newest first).
const LISTED: usize = 200;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/notifications", web::get().to(page))
        .route("/admin/notifications/resend", web::post().to(resend))
        .route("/admin/notifications/enable", web::post().to(enable));
}

struct ChannelRow {
    name: String,
    kind: &'static str,
    takes: String,
    /// "delivering", or why not.
    status: String,
    ok: bool,
    off: bool,
    pending: i64,
    delivered: i64,
    failed: i64,
}

struct DeliveryRow {
    id: String,
    channel: String,
    alarm: String,
    reason: String,
    severity: String,
    status: String,
    attempts: i64,
    created: String,
    next: String,
    /// Only a delivered or failed notification can go again.
    resendable: bool,
    error: String,
}

#[derive(Template)]
#[template(path = "admin_notifications.html")]
struct NotificationsPage {
    site: String,
    channels: Vec<ChannelRow>,
    deliveries: Vec<DeliveryRow>,
    status: String,
    notice: Option<String>,
    is_admin: bool,
    csrf: String,
}

#[derive(Deserialize)]
struct PageQuery {
    notice: Option<String>,
    /// `pending`, `delivered` or `failed`: only those.
    status: Option<String>,
    format: Option<String>,
}

type Listing = (
    Vec<outbox::Listed>,
    Vec<(String, String, i64)>,
    Vec<(String, Option<String>)>,
);

async fn page(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<PageQuery>,
) -> actix_web::Result<HttpResponse> {
    let query = query.into_inner();
    let status = query
        .status
        .filter(|s| matches!(s.as_str(), "pending" | "delivered" | "failed" | "deferred" | "unneeded"));
    let names: Vec<String> = state.config.notify.iter().map(|c| c.name.clone()).collect();
    let wanted = status.clone();
    let (listed, counts, switched_off): Listing = super::read_journal(&state, move |journal| {
        let conn = journal.connection();
        let listed = outbox::recent(conn, wanted.as_deref(), LISTED)?;
        let counts = outbox::counts(conn)?;
        let mut off = Vec::new();
        for name in names {
            let why = outbox::disabled(conn, &name)?;
            off.push((name, why));
        }
        Ok((listed, counts, off))
    })
    .await?;
    let tz = &state.config.site.timezone;
    let time = |ms: i64| super::local_time(tz, ms.saturating_mul(1000));
    if query.format.as_deref() == Some("csv") {
        let mut csv = Csv::with_header(&[
            "id",
            "channel",
            "alarm",
            "reason",
            "severity",
            "status",
            "attempts",
            "created",
            "next_attempt",
            "delivered",
            "last_error",
        ]);
        for d in &listed {
            csv.row(&[
                d.id.clone(),
                d.channel.clone(),
                d.alarm.clone(),
                d.reason.clone(),
                d.severity.clone(),
                d.status.clone(),
                d.attempts.to_string(),
                time(d.created_at),
                d.next_attempt_at.map(time).unwrap_or_default(),
                d.delivered_at.map(time).unwrap_or_default(),
                d.last_error.clone().unwrap_or_default(),
            ]);
        }
        return Ok(csv.into_response("notifications.csv"));
    }
    let problems = state.notifier.health.problems();
    let count = |channel: &str, status: &str| {
        counts
            .iter()
            .find(|(c, s, _)| c == channel && s == status)
            .map_or(0, |(_, _, n)| *n)
    };
    let channels = state
        .config
        .notify
        .iter()
        .map(|channel| {
            let off = switched_off
                .iter()
                .find(|(name, _)| *name == channel.name)
                .and_then(|(_, why)| why.clone());
            let problem = problems
                .iter()
                .find(|(name, _)| *name == channel.name)
                .map(|(_, why)| why.clone());
            let status = match (&off, problem) {
                (Some(why), _) => format!("switched off by its receiver: {why}"),
                (None, Some(problem)) => problem,
                (None, None) => "delivering".to_owned(),
            };
            let filter = &channel.filter;
            let mut takes = format!("{} and above", filter.min_severity);
            if !filter.zones.is_empty() {
                takes.push_str(&format!("; zones {}", filter.zones.join(", ")));
            }
            if !filter.types.is_empty() {
                let types: Vec<_> = filter.types.iter().map(|t| t.as_str()).collect();
                takes.push_str(&format!("; types {}", types.join(", ")));
            }
            if let Some(quiet) = channel.quiet_hours {
                takes.push_str(&format!("; quiet {quiet}"));
            }
            ChannelRow {
                name: channel.name.clone(),
                kind: channel.target.kind(),
                takes,
                ok: status == "delivering",
                status,
                off: off.is_some(),
                pending: count(&channel.name, "pending"),
                delivered: count(&channel.name, "delivered"),
                failed: count(&channel.name, "failed"),
            }
        })
        .collect();
    let deliveries = listed
        .into_iter()
        .map(|d| DeliveryRow {
            next: match (d.status.as_str(), d.next_attempt_at, &d.held_for) {
                ("pending", Some(at), Some(why)) => format!("{} ({why})", time(at)),
                ("pending", Some(at), None) => time(at),
                ("deferred", Some(at), _) => format!("{} if still needed (cooldown)", time(at)),
                ("unneeded", _, _) => "not needed: the receiver knew".to_owned(),
                ("delivered", _, _) => d
                    .delivered_at
                    .map(|at| format!("delivered {}", time(at)))
                    .unwrap_or_default(),
                _ => String::new(),
            },
            resendable: matches!(d.status.as_str(), "delivered" | "failed"),
            created: time(d.created_at),
            error: d.last_error.unwrap_or_default(),
            id: d.id,
            channel: d.channel,
            alarm: d.alarm,
            reason: d.reason,
            severity: d.severity,
            status: d.status,
            attempts: d.attempts,
        })
        .collect();
    super::render(&NotificationsPage {
        site: state.config.site.name.clone(),
        channels,
        deliveries,
        status: status.unwrap_or_default(),
        notice: query.notice,
        is_admin: identity.role == crate::auth::Role::Admin,
        csrf: identity.csrf.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct ResendForm {
    csrf: String,
    id: String,
}

async fn resend(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<ResendForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let (journal, synchronous, id) = (state.paths.journal(), state.config.storage.synchronous, form.id.clone());
    let channel = web::block(move || -> anyhow::Result<Option<String>> {
        let conn = crate::db::open(&journal, synchronous)?;
        let channel = outbox::channel_of(&conn, &id)?;
        // Only a delivered or failed notification goes again.
        let resent = channel.is_some() && outbox::resend(&conn, &id, jiff::Timestamp::now().as_millisecond())?;
        Ok(channel.filter(|_| resent))
    })
    .await
    .map_err(|e| super::internal_error("re-send", e))?
    .map_err(|e| super::internal_error("re-send", e))?;
    let notice = match channel {
        Some(channel) => {
            state.notifier.wakers.wake(&channel);
            tracing::info!(user = %identity.name, id = %form.id, "notification re-sent from the admin page");
            format!("notification {} goes again (same id) on {channel}", form.id)
        }
        None => format!("there is no notification {}", form.id),
    };
    Ok(super::admin::back_to_with("/admin/notifications", &notice))
}

#[derive(Deserialize)]
struct EnableForm {
    csrf: String,
    channel: String,
}

async fn enable(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<EnableForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let Some(channel) = state.config.notify.iter().find(|c| c.name == form.channel) else {
        return Ok(super::admin::back_to_with(
            "/admin/notifications",
            &format!("there is no channel {:?}", form.channel),
        ));
    };
    let (journal, synchronous, name) = (
        state.paths.journal(),
        state.config.storage.synchronous,
        channel.name.clone(),
    );
    web::block(move || -> anyhow::Result<()> {
        outbox::enable(&crate::db::open(&journal, synchronous)?, &name)?;
        Ok(())
    })
    .await
    .map_err(|e| super::internal_error("switch on", e))?
    .map_err(|e| super::internal_error("switch on", e))?;
    state.notifier.wakers.wake(&channel.name);
    tracing::info!(user = %identity.name, channel = %channel.name, "notification channel switched on from the admin page");
    let what = match channel.target {
        ChannelTarget::Webhook { .. } => "webhook",
        ChannelTarget::Email(_) => "e-mail channel",
        ChannelTarget::Mqtt => "MQTT channel",
    };
    Ok(super::admin::back_to_with(
        "/admin/notifications",
        &format!("{what} {} switched on: what waited goes now", channel.name),
    ))
}
