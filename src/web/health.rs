//! `/healthz`: 200 `ok` when the journal writer, every projector and the MQTT connection are healthy, else 503
//! naming the failing part.

use crate::app::AppState;
use actix_web::{HttpResponse, web};

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let mut problems = Vec::new();
    if state.committed.has_changed().is_err() {
        problems.push("journal: writer has stopped".to_owned());
    }
    if let Some(mqtt) = &state.external_mqtt
        && !mqtt.connected.load(std::sync::atomic::Ordering::Relaxed)
    {
        problems.push("mqtt: not connected to the broker (see the log for why; retrying)".to_owned());
    }
    for projector in &state.projectors {
        if let Some(error) = projector.error() {
            problems.push(format!("projector {}: {error}", projector.name));
        }
    }
    if problems.is_empty() {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(problems.join("\n") + "\n")
    }
}
