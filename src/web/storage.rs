//! `/admin/storage`: the journal's and the views' size, the oldest event still in the journal, the archive files
//! (verified on request), the `[retention]` limits and the days left until `max_journal_size` at today's rate;
//! an admin archives now (with the session's CSRF token) instead of waiting for the next round.

use super::auth::{Admin, check_csrf};
use crate::archive::{self, Limits, figures::Storage};
use crate::auth::Identity;
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/storage", web::get().to(page))
        .route("/admin/storage/archive", web::post().to(archive_now));
}

struct ArchiveRow {
    file: String,
    positions: String,
    events: u64,
    size: String,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_storage.html")]
struct StoragePage {
    site: String,
    journal: String,
    views: String,
    live_events: u64,
    oldest_live: String,
    archived_events: u64,
    archived_up_to: u64,
    last_archived: String,
    last_day_events: u64,
    keep_events_for: String,
    max_journal_size: String,
    days_until_cap: String,
    archive_dir: String,
    archives: Vec<ArchiveRow>,
    /// The result of `?verify=1`: `None` when not asked.
    verified: Option<Result<String, Vec<String>>>,
    notice: Option<String>,
    can_archive: bool,
    csrf: String,
}

#[derive(Deserialize)]
struct PageQuery {
    notice: Option<String>,
    verify: Option<String>,
}

/// `1234567` → `1.2 MB`.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} bytes"),
    }
}

async fn page(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<PageQuery>,
) -> actix_web::Result<HttpResponse> {
    let config = state.config.clone();
    let verify = query.verify.is_some();
    let (storage, verified): (Storage, Option<archive::files::Verified>) =
        super::read_journal(&state, move |journal| {
            let storage = archive::figures::read(&config, journal.connection())?;
            let verified = if verify {
                Some(archive::files::verify(&config.retention.archive_dir)?)
            } else {
                None
            };
            Ok((storage, verified))
        })
        .await?;
    let tz = &state.config.site.timezone;
    let retention = &state.config.retention;
    let page = StoragePage {
        site: state.config.site.name.clone(),
        journal: bytes(storage.journal_bytes),
        views: bytes(storage.views_bytes),
        live_events: storage.live_events,
        oldest_live: storage
            .oldest_live
            .map(|t| super::local_time(tz, t))
            .unwrap_or_else(|| "none".into()),
        archived_events: storage.archived_events,
        archived_up_to: storage.archived_up_to,
        last_archived: storage
            .last_archived_at
            .map(|t| super::local_time(tz, t))
            .unwrap_or_else(|| "never".into()),
        last_day_events: storage.last_day_events,
        keep_events_for: retention
            .keep_events_for
            .map(|d| format!("{} days", d.as_secs() / 86_400))
            .unwrap_or_else(|| "forever (keep_events_for is not set)".into()),
        max_journal_size: retention
            .max_journal_size
            .map(bytes)
            .unwrap_or_else(|| "no cap (max_journal_size is not set)".into()),
        days_until_cap: match (retention.max_journal_size, storage.days_until_cap) {
            (None, _) => "no cap set".into(),
            (Some(_), None) => "not growing over the last day".into(),
            (Some(_), Some(days)) => format!("{days:.0} days at the last day's rate"),
        },
        archive_dir: retention.archive_dir.display().to_string(),
        archives: storage
            .archives
            .iter()
            .map(|(entry, size)| ArchiveRow {
                file: entry.file.clone(),
                positions: format!("{}–{}", entry.first_position, entry.last_position),
                events: entry.events,
                size: bytes(*size),
                created: entry.created_at.clone(),
            })
            .collect(),
        verified: verified.map(|v| {
            if v.problems.is_empty() {
                Ok(format!(
                    "{} file(s), {} events: every file matches the manifest and its chain",
                    v.files, v.events
                ))
            } else {
                Err(v.problems)
            }
        }),
        notice: query.notice.clone().filter(|n| !n.is_empty()),
        can_archive: identity.role == crate::auth::Role::Admin && identity.csrf.is_some(),
        csrf: identity.csrf.clone().unwrap_or_default(),
    };
    super::render(&page)
}

#[derive(Deserialize)]
struct ArchiveForm {
    csrf: String,
}

async fn archive_now(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<ArchiveForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let config = state.config.clone();
    let limits = Limits::from_config(&config.retention, jiff::Timestamp::now());
    let notice = if limits.is_empty() {
        "nothing to archive by: set [retention] keep_events_for or max_journal_size in config.toml".to_owned()
    } else {
        match web::block(move || archive::run(&config, limits, archive::Shrink::Incremental, &mut |_, _| {})).await {
            Ok(Ok(done)) if done.events == 0 => match done.held_back_by {
                Some(follower) => format!("nothing archived yet: {follower} has not applied the old events"),
                None => "nothing to archive: the journal is within [retention]'s limits".to_owned(),
            },
            Ok(Ok(done)) => format!(
                "archived {} events (every event up to position {}); journal.db {} -> {}",
                done.events,
                done.up_to,
                bytes(done.bytes_before),
                bytes(done.bytes_after)
            ),
            Ok(Err(error)) => format!("archiving failed: {error:#}"),
            Err(error) => format!("archiving failed: {error}"),
        }
    };
    tracing::info!(user = %identity.name, %notice, "archive from the web");
    Ok(super::admin::back_to_with("/admin/storage", &notice))
}
