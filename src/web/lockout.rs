//! A manager's lock-out and unlock of a turnstile, from its device page: the command goes to the turnstile's
//! actor with the manager as its actor, and the page comes back once the read tables show it (read-your-writes,
//! bounded), saying what happened. The gateway learns it from the turnstile's `command` topic.

use super::auth::{Manager, check_csrf};
use crate::journal::Actor;
use crate::requests::{OperatorCommand, carry_out};
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/lock-out", web::post().to(lock_out))
        .route("/devices/{id}/unlock", web::post().to(unlock));
}

#[derive(Deserialize)]
struct LockOutForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct UnlockForm {
    csrf: String,
}

async fn lock_out(
    state: web::Data<AppState>,
    Manager(identity): Manager,
    path: web::Path<String>,
    form: web::Form<LockOutForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let device = path.into_inner();
    match OperatorCommand::lock_out(&device, &form.reason) {
        Ok(command) => act(&state, &identity.name, command).await,
        Err(why) => Ok(back(&device, &format!("not locked out: {why}"))),
    }
}

async fn unlock(
    state: web::Data<AppState>,
    Manager(identity): Manager,
    path: web::Path<String>,
    form: web::Form<UnlockForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let device = path.into_inner();
    act(&state, &identity.name, OperatorCommand::unlock(&device)).await
}

async fn act(state: &AppState, user: &str, command: OperatorCommand) -> actix_web::Result<HttpResponse> {
    let device = command.target().to_owned();
    if crate::domain::DeviceId::parse(&device).is_err() {
        return Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no device {device:?}\n")));
    }
    let notice = carry_out_and_wait(state, user, &command).await;
    Ok(back(&device, &notice))
}

/// Carries out a person's command as `user`, then waits, bounded, until the read tables show its effect
/// (read-your-writes); returns what to tell them: what it did (saying so if the pages lag), or why not.
/// A person the notice names is named by pseudonym: it travels in the redirect's URL, and the page it comes back
/// to reveals it when it renders.
pub(super) async fn carry_out_and_wait(state: &AppState, user: &str, command: &OperatorCommand) -> String {
    match carry_out(&state.registry, &state.vault, command, Actor::user(user), None).await {
        Ok(done) => {
            tracing::info!(%user, target = %command.target(), outcome = %done.text, "command from the web");
            let fresh = match done.position {
                Some(position) => super::admin::caught_up(state, position).await,
                None => true,
            };
            if fresh {
                done.text
            } else {
                format!("{} (the pages may be a moment behind)", done.text)
            }
        }
        Err(why) => why,
    }
}

fn back(device: &str, notice: &str) -> HttpResponse {
    // Only called with ids that parse as a DeviceId (letters, digits, `-`, `_`): no encoding needed.
    super::admin::back_to_with(&format!("/devices/{device}"), notice)
}
