//! The admin pages: `/admin/projections` (each projector's checkpoint, lag and last error; a blue/green rebuild
//! that runs while pages keep serving) and `/admin/dead-letters` (rejected messages with reasons; re-drive and
//! discard). Everyone signed in may look; only admins may act, with the session's CSRF token. After an action that
//! appends events the response waits, bounded, until the projectors have caught up (read-your-writes).

use super::auth::{Admin, check_csrf};
use crate::auth::Identity;
use crate::dead_letters::{self, Which};
use crate::journal::Position;
use crate::web::AppState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an action's response waits for the read tables to show its effect. Projectors usually need
/// milliseconds; the bound matters only when one is far behind (a rebuild, a backlog), and then the page says so.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/projections", web::get().to(projections_page))
        .route("/admin/projections/rebuild", web::post().to(rebuild))
        .route("/admin/dead-letters", web::get().to(dead_letters_page))
        .route("/admin/dead-letters/redrive", web::post().to(redrive))
        .route("/admin/dead-letters/discard", web::post().to(discard));
}

/// The state of the web-started rebuild, shared by both workers.
#[derive(Default)]
pub struct RebuildState {
    inner: Mutex<Option<RebuildRun>>,
}

#[derive(Clone)]
struct RebuildRun {
    started: Instant,
    /// (projection, position) as the rebuild reports progress.
    progress: Option<(String, Position)>,
    /// `None` while running; then what happened.
    outcome: Option<Result<String, String>>,
}

struct ProjectorRow {
    name: String,
    checkpoint: Position,
    lag_events: u64,
    lag_seconds: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_projections.html")]
struct ProjectionsPage {
    site: String,
    head: Position,
    rows: Vec<ProjectorRow>,
    parked: Vec<super::parked::ParkedRow>,
    notice: Option<String>,
    rebuild: Option<String>,
    running: bool,
    is_admin: bool,
    csrf: String,
}

/// Seconds since the oldest event a projector has not applied was recorded (0 when caught up).
fn lag_seconds(journal: &crate::journal::JournalReader, checkpoint: Position) -> anyhow::Result<Option<f64>> {
    let oldest: Option<i64> = rusqlite::OptionalExtension::optional(journal.connection().query_row(
        "SELECT recorded_at FROM events WHERE position > ?1 ORDER BY position LIMIT 1",
        [checkpoint as i64],
        |r| r.get(0),
    ))?;
    Ok(oldest.map(|micros| (jiff::Timestamp::now().as_microsecond() - micros).max(0) as f64 / 1e6))
}

async fn projections_page(
    state: web::Data<AppState>,
    identity: Identity,
    rebuilds: web::Data<RebuildState>,
    query: web::Query<NoticeQuery>,
) -> actix_web::Result<HttpResponse> {
    let parked = super::parked::rows(&state).await?;
    let checkpoints: Vec<(String, Position, Option<String>)> = state
        .projectors
        .iter()
        .map(|p| (p.name.to_owned(), *p.position.borrow(), p.error()))
        .collect();
    let (head, rows) = super::read_journal(&state, move |journal| {
        let head = journal.head()?;
        let mut rows = Vec::new();
        for (name, checkpoint, error) in checkpoints {
            let lag = lag_seconds(journal, checkpoint)?;
            rows.push(ProjectorRow {
                name,
                checkpoint,
                lag_events: head.saturating_sub(checkpoint),
                lag_seconds: lag.map_or("0".into(), |s| format!("{s:.1}")),
                error,
            });
        }
        Ok((head, rows))
    })
    .await?;
    let mut rows = rows;
    if let Some(forward) = &state.forward {
        // The forwarder is a follower too; its checkpoint is what the NATS stream confirmed.
        let progress = forward.progress();
        rows.push(ProjectorRow {
            name: format!("forwarder → {} ({})", progress.stream, progress.subject),
            checkpoint: progress.forwarded_up_to,
            lag_events: head.saturating_sub(progress.forwarded_up_to),
            lag_seconds: format!("{:.1}", progress.lag_seconds(jiff::Timestamp::now())),
            error: progress
                .stopped
                .map(|s| format!("stopped: {s}"))
                .or(progress.last_error),
        });
    }
    let run = rebuilds.inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let rebuild = run.as_ref().map(|run| match (&run.outcome, &run.progress) {
        (Some(Ok(done)), _) => done.clone(),
        (Some(Err(error)), _) => format!("rebuild failed: {error}"),
        (None, Some((name, position))) => {
            format!(
                "rebuilding {name}: position {position} of {head} ({:.0} s so far)",
                run.started.elapsed().as_secs_f64()
            )
        }
        (None, None) => "rebuild starting".into(),
    });
    super::render(&ProjectionsPage {
        site: state.config.site.name.clone(),
        head,
        rows,
        parked,
        notice: query.into_inner().notice,
        running: run.is_some_and(|r| r.outcome.is_none()),
        rebuild,
        is_admin: identity.role == crate::auth::Role::Admin,
        csrf: identity.csrf.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct RebuildForm {
    csrf: String,
}

/// Starts a blue/green rebuild of every projection on a thread of its own and returns at once; the page shows
/// its progress. The live tables keep serving until the swap.
async fn rebuild(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    rebuilds: web::Data<RebuildState>,
    form: web::Form<RebuildForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    {
        let mut run = rebuilds.inner.lock().unwrap_or_else(|p| p.into_inner());
        if run.as_ref().is_some_and(|r| r.outcome.is_none()) {
            return Ok(HttpResponse::Conflict()
                .content_type("text/plain; charset=utf-8")
                .body("a rebuild is already running\n"));
        }
        *run = Some(RebuildRun {
            started: Instant::now(),
            progress: None,
            outcome: None,
        });
    }
    tracing::info!(user = %identity.name, "rebuild of all projections started from the admin page");
    let shared: Arc<RebuildState> = rebuilds.into_inner();
    let (journal, views, archive_dir, tz, on_error) = (
        state.paths.journal(),
        state.paths.views(),
        state.config.retention.archive_dir.clone(),
        state.config.site.timezone.clone(),
        state.config.followers.on_error,
    );
    std::thread::spawn(move || {
        let started = Instant::now();
        // Whatever happens in there, the run must end with an outcome, or the page would wait forever and refuse
        // every later rebuild.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::projection::rebuild::rebuild(
                crate::projection::all(&tz),
                &journal,
                &views,
                &archive_dir,
                on_error,
                |name, position| {
                    if let Some(run) = shared.inner.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        run.progress = Some((name.to_owned(), position));
                    }
                },
            )
        }))
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the rebuild stopped on an internal error (see the log); the live tables are unchanged"
            ))
        });
        let outcome = match result {
            Ok(built) => Ok(format!(
                "rebuilt {} in {:.1} s",
                built
                    .iter()
                    .map(|(name, position)| format!("{name} (to position {position})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                started.elapsed().as_secs_f64()
            )),
            Err(error) => Err(format!("{error:#}")),
        };
        if let Err(error) = &outcome {
            tracing::error!(%error, "rebuild failed");
        }
        if let Some(run) = shared.inner.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            run.outcome = Some(outcome);
        }
    });
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin/projections"))
        .finish())
}

struct LetterRow {
    id: i64,
    received: String,
    topic: String,
    reason: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "admin_dead_letters.html")]
struct DeadLettersPage {
    site: String,
    letters: Vec<LetterRow>,
    /// How many are waiting in all; the page lists at most [`LETTERS_PER_PAGE`], newest first.
    total: i64,
    older: Option<String>,
    newest: Option<String>,
    notice: Option<String>,
    is_admin: bool,
    csrf: String,
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
    /// Page to the letters older than this id.
    before: Option<i64>,
}

/// Dead letters listed per page: a flood of them must not make one page megabytes.
const LETTERS_PER_PAGE: usize = 100;

async fn dead_letters_page(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<NoticeQuery>,
) -> actix_web::Result<HttpResponse> {
    let journal = state.paths.journal();
    let query = query.into_inner();
    let before = query.before;
    let (letters, total) = web::block(move || dead_letters::page(&journal, before, LETTERS_PER_PAGE + 1))
        .await
        .map_err(|e| super::internal_error("dead letters", e))?
        .map_err(|e| super::internal_error("dead letters", e))?;
    let mut letters = letters;
    let older = (letters.len() > LETTERS_PER_PAGE).then(|| {
        letters.truncate(LETTERS_PER_PAGE);
        format!("/admin/dead-letters?before={}", letters.last().map_or(0, |l| l.id))
    });
    let newest = before.map(|_| "/admin/dead-letters".to_owned());
    let tz = &state.config.site.timezone;
    let letters = letters
        .into_iter()
        .map(|l| LetterRow {
            id: l.id,
            received: super::local_time(tz, l.received_at.as_microsecond()),
            payload: dead_letters::printable(&state.vault.reveal_text(&String::from_utf8_lossy(&l.payload)), 160),
            topic: l.topic,
            reason: l.reason,
        })
        .collect();
    super::render(&DeadLettersPage {
        site: state.config.site.name.clone(),
        letters,
        total,
        older,
        newest,
        notice: query.notice,
        is_admin: identity.role == crate::auth::Role::Admin,
        csrf: identity.csrf.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct LetterForm {
    csrf: String,
    /// A dead letter's id, or absent for "all open ones".
    id: Option<i64>,
}

fn back_with(notice: &str) -> HttpResponse {
    back_to_with("/admin/dead-letters", notice)
}

/// A redirect (303) to an admin page that shows `notice` (what an action did).
pub(super) fn back_to_with(page: &str, notice: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{page}?notice={}", super::urlencode(notice))))
        .finish()
}

/// Waits until every projector has applied `target`, at most [`READ_YOUR_WRITES`]; true when they did.
pub(super) async fn caught_up(state: &AppState, target: Position) -> bool {
    let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES;
    for projector in &state.projectors {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !projector.wait_for(target, left).await {
            return false;
        }
    }
    true
}

async fn redrive(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<LetterForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let which = form.id.map_or(Which::AllOpen, Which::One);
    let journal = state.paths.journal();
    let by = crate::journal::Actor::user(&identity.name);
    let requested = web::block(move || dead_letters::request_redrive(&journal, which, &by))
        .await
        .map_err(|e| super::internal_error("re-drive", e))?;
    let ids = match requested {
        Ok(ids) => ids,
        Err(error) => return Ok(back_with(&format!("{error:#}"))),
    };
    if ids.is_empty() {
        return Ok(back_with("no open dead letters to re-drive"));
    }
    // Re-drive here and now (the background loop may pick some up first; either way they are done after this).
    let journal = state.paths.journal();
    if let Err(error) = dead_letters::process_redrive_requests(&state.ingestor, &journal).await {
        return Ok(back_with(&format!("re-drive failed: {error:#}")));
    }
    let outcomes = web::block(move || dead_letters::wait_for_redrive(&journal, &ids, Duration::from_secs(5)))
        .await
        .map_err(|e| super::internal_error("re-drive", e))?
        .map_err(|e| super::internal_error("re-drive", e))?;
    let target = *state.committed.borrow();
    let fresh = caught_up(&state, target).await;
    let mut notice = outcomes
        .iter()
        .map(|l| {
            format!(
                "dead letter {} re-driven: {}",
                l.id,
                l.outcome.as_deref().unwrap_or("done")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !fresh {
        notice.push_str(" (the pages may be a moment behind)");
    }
    tracing::info!(user = %identity.name, %notice, "dead letters re-driven from the admin page");
    Ok(back_with(&notice))
}

async fn discard(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<LetterForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let Some(id) = form.id else {
        return Ok(HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body("which dead letter? (id)\n"));
    };
    let journal = state.paths.journal();
    let result = web::block(move || dead_letters::discard(&journal, id))
        .await
        .map_err(|e| super::internal_error("discard", e))?;
    tracing::info!(user = %identity.name, id, "dead letter discarded from the admin page");
    Ok(back_with(&match result {
        Ok(()) => format!("dead letter {id} discarded"),
        Err(error) => format!("{error:#}"),
    }))
}
