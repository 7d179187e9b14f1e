//! The parked events on `/admin/projections`: listing them, and the admin's re-drive (apply it again, for
//! instance after an upgrade that fixes the follower) and discard (go on without it, logged with who decided).

use super::auth::{Admin, check_csrf};
use crate::journal::Position;
use crate::projection::parked::{self, Redriven};
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/projections/parked/redrive", web::post().to(redrive))
        .route("/admin/projections/parked/discard", web::post().to(discard));
}

/// One parked event as the page lists it.
pub struct ParkedRow {
    pub follower: String,
    pub position: Position,
    pub stream: String,
    pub event_type: String,
    pub error: String,
    pub parked_at: String,
    pub attempts: u32,
}

/// Every parked event, for the projections page.
pub async fn rows(state: &AppState) -> actix_web::Result<Vec<ParkedRow>> {
    let tz = state.config.site.timezone.clone();
    super::read_views(state, move |views| {
        Ok(parked::list(views, None)?
            .into_iter()
            .map(|p| ParkedRow {
                follower: p.follower,
                position: p.position,
                stream: p.stream_id,
                event_type: p.event_type,
                error: p.error,
                parked_at: super::local_time(&tz, p.parked_at.as_microsecond()),
                attempts: p.attempts,
            })
            .collect())
    })
    .await
}

#[derive(Deserialize)]
struct ParkedForm {
    csrf: String,
    follower: String,
    position: Position,
}

fn back_with(notice: &str) -> HttpResponse {
    super::admin::back_to_with("/admin/projections", notice)
}

async fn redrive(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<ParkedForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let Some(mut projection) = crate::projection::all(&state.config.site.timezone)
        .into_iter()
        .find(|p| p.name() == form.follower)
    else {
        if form.follower.starts_with("policy:") {
            return Ok(back_with(&format!(
                "{} cannot re-drive a parked event yet: carry out what it called for by hand, then discard it",
                form.follower
            )));
        }
        return Ok(back_with(&format!("no follower named {:?}", form.follower)));
    };
    let (journal, views, position) = (state.paths.journal(), state.paths.views(), form.position);
    let outcome = web::block(move || -> anyhow::Result<Redriven> {
        let journal = crate::journal::JournalReader::open(&journal)?;
        let mut views = crate::db::open(&views, crate::config::Synchronous::Normal)?;
        parked::redrive(projection.as_mut(), &journal, &mut views, position)
    })
    .await
    .map_err(|e| super::internal_error("re-drive", e))?;
    tracing::info!(user = %identity.name, follower = %form.follower, position, "parked event re-drive requested");
    Ok(back_with(&match outcome {
        Ok(Redriven::Applied) => format!("{} applied the event at position {position}", form.follower),
        Ok(Redriven::FailedAgain(error)) => format!("the event at position {position} failed again: {error}"),
        Ok(Redriven::NotParked) => format!("nothing is parked at position {position} for {}", form.follower),
        Err(error) => format!("re-drive failed: {error:#}"),
    }))
}

async fn discard(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<ParkedForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let (views, follower, position, by) = (
        state.paths.views(),
        form.follower.clone(),
        form.position,
        format!("user:{}", identity.name),
    );
    let removed = web::block(move || -> anyhow::Result<bool> {
        let views = crate::db::open(&views, crate::config::Synchronous::Normal)?;
        parked::discard(&views, &follower, position, &by)
    })
    .await
    .map_err(|e| super::internal_error("discard", e))?;
    Ok(back_with(&match removed {
        Ok(true) => format!(
            "discarded: {} goes on without the event at position {position}",
            form.follower
        ),
        Ok(false) => format!("nothing is parked at position {position} for {}", form.follower),
        Err(error) => format!("discard failed: {error:#}"),
    }))
}
