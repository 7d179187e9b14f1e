//! The web server: routes and shared plumbing. Handlers read only read tables in `views.db`, opened read-only
//! per request on the blocking pool, so a slow page never holds up ingestion.

mod dashboard;
mod health;

use crate::app::AppState;
use actix_web::{App, HttpResponse, HttpServer, dev::Server, http::header, web};
use std::net::TcpListener;

/// Builds the HTTP server on an already bound listener. actix-web stops it on SIGINT/SIGTERM.
pub fn server(state: AppState, listener: TcpListener) -> anyhow::Result<Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::Compress::default())
            .route("/", web::get().to(dashboard::page))
            .route("/healthz", web::get().to(health::healthz))
            .route("/static/style.css", web::get().to(style_css))
    })
    // Two cores: two workers serve pages; SQLite work runs on the blocking pool anyway.
    .workers(2)
    .listen(listener)?
    .run();
    Ok(server)
}

async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/style.css"))
}

/// An error page with a plain reason; details go to the log, never a Debug dump to the browser.
pub(crate) fn internal_error(context: &str, error: impl std::fmt::Display) -> actix_web::Error {
    tracing::error!(%error, "{context}");
    actix_web::error::ErrorInternalServerError(format!("{context}: see the server log"))
}

/// Formats an instant in the site's time zone for people: `2026-03-01 09:00:00`.
pub(crate) fn local_time(tz: &jiff::tz::TimeZone, micros: i64) -> String {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => "-".into(),
    }
}
