//! A manager voids a wrongly recorded fact (a technician's test rotations, the wrong person recognized) from the
//! device's timeline: the correcting event goes to the device's actor with the manager as its actor, and the
//! page comes back once the read tables show it (read-your-writes, bounded), saying what happened.

use super::auth::{Manager, check_csrf};
use crate::requests::OperatorCommand;
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices/{id}/void", web::post().to(void));
}

#[derive(Deserialize)]
struct VoidForm {
    csrf: String,
    position: u64,
    #[serde(default)]
    reason: String,
}

async fn void(
    state: web::Data<AppState>,
    Manager(identity): Manager,
    path: web::Path<String>,
    form: web::Form<VoidForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let device = path.into_inner();
    if crate::domain::DeviceId::parse(&device).is_err() {
        return Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no device {device:?}\n")));
    }
    let notice = match OperatorCommand::void(form.position, &form.reason) {
        Ok(command) => super::lockout::carry_out_and_wait(&state, &identity.name, &command).await,
        Err(why) => format!("not voided: {why}"),
    };
    // Only ids that parse as a DeviceId get here (letters, digits, `-`, `_`): no encoding needed.
    Ok(super::admin::back_to_with(&format!("/devices/{device}"), &notice))
}
