//! What the web listener answers while the core is still recovering (boot waits for nothing it need not: the
//! listeners are open at once). `/healthz` says `503 recovering: 37 of 120 devices`; every other path says the
//! same with `Retry-After`, so a manager's browser and a load balancer both know to come back shortly.

use crate::actors::RecoveryProgress;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;

async fn recovering(progress: web::Data<Arc<RecoveryProgress>>) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "2"))
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", progress.describe()))
}

/// Serves the recovery answer on a clone of `listener` until the returned handle is stopped; the real server
/// then takes over the same socket (connections that arrive in between wait in its backlog).
pub fn serve_while_recovering(listener: &TcpListener, progress: Arc<RecoveryProgress>) -> anyhow::Result<ServerHandle> {
    let progress = web::Data::new(progress);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(progress.clone())
            .default_service(web::to(recovering))
    })
    .workers(1)
    .disable_signals()
    .listen(listener.try_clone()?)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(handle)
}
