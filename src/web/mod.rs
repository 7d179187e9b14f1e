//! The web server: routes and shared plumbing. Handlers read only read tables in `views.db`, opened read-only
//! per request on the blocking pool, so a slow page never holds up ingestion.
//!
//! Each page family lives in its own module and registers its routes with a `routes(cfg)` function; this file
//! only wires them together and holds what every page shares (`render`, `read_views`, errors, time formatting).

mod accounts;
mod admin;
mod alarms;
pub mod auth;
pub(crate) mod csv;
mod dashboard;
mod devices;
mod equipment_figures;
mod events;
mod forget;
pub(crate) mod hardening;
mod health;
mod ingest;
mod lockout;
pub mod metrics;
mod muster;
mod notifications;
mod parked;
pub mod pool;
pub mod recovering;
mod reports;
pub mod state;
mod storage;
pub mod subjects;
mod void;
mod watch_list;
mod work_orders;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, http::header, web};
pub(crate) use reports::day_start;
pub use state::AppState;
use std::net::TcpListener;

/// Builds the HTTP server on an already bound listener. actix-web stops it on SIGINT/SIGTERM.
pub fn server(state: AppState, listener: TcpListener) -> anyhow::Result<Server> {
    let accounts = web::Data::new(auth::Accounts::of(&state));
    let data = web::Data::new(state);
    // Shared by both workers, so a brute-force attempt cannot dodge it by landing on the other one.
    let throttle = web::Data::new(auth::LoginThrottle::default());
    let rebuilds = web::Data::new(admin::RebuildState::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(accounts.clone())
            .app_data(throttle.clone())
            .app_data(rebuilds.clone())
            .wrap(actix_web::middleware::from_fn(auth::guard))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(actix_web::middleware::from_fn(hardening::harden))
            // Outermost, so refused and failed requests are timed too.
            .wrap(actix_web::middleware::from_fn(metrics::record_duration))
            .configure(auth::routes)
            .configure(admin::routes)
            .configure(accounts::routes)
            .configure(parked::routes)
            .route("/", web::get().to(dashboard::page))
            .route("/live/dashboard", web::get().to(dashboard::live))
            .route("/occupancy/correct", web::post().to(dashboard::correct_occupancy))
            .route("/static/live.js", web::get().to(live_js))
            .route("/healthz", web::get().to(health::healthz))
            .configure(devices::routes)
            .configure(lockout::routes)
            .configure(void::routes)
            .configure(storage::routes)
            .configure(forget::routes)
            .configure(events::routes)
            .configure(metrics::routes)
            .configure(reports::routes)
            .configure(work_orders::routes)
            .configure(alarms::routes)
            .configure(notifications::routes)
            .configure(watch_list::routes)
            .configure(muster::routes)
            .configure(ingest::routes)
            .route("/static/style.css", web::get().to(style_css))
    })
    // Two cores: two workers serve pages; SQLite work runs on the blocking pool anyway.
    .workers(2)
    .listen(listener)?
    .run();
    Ok(server)
}

pub(crate) async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/style.css"))
}

pub(crate) async fn live_js() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/live.js"))
}

/// Renders an askama template as an HTML 200 response.
pub(crate) fn render(page: &impl askama::Template) -> actix_web::Result<HttpResponse> {
    let html = page.render().map_err(|e| internal_error("cannot render page", e))?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html))
}

/// Runs `query` on a kept read-only connection to `views.db`, on the blocking pool (never on an executor thread).
pub(crate) async fn read_views<T: Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> actix_web::Result<T> {
    let views = state.views_reader.clone();
    web::block(move || views.with(query))
        .await
        .map_err(|e| internal_error("page", e))?
        .map_err(|e| internal_error("page", e))
}

/// Runs `query` on a read-only connection to `journal.db` (the event browser and a device's as-of view only).
pub(crate) async fn read_journal<T: Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&crate::journal::JournalReader) -> anyhow::Result<T> + Send + 'static,
) -> actix_web::Result<T> {
    let path = state.paths.journal();
    web::block(move || query(&crate::journal::JournalReader::open(&path)?))
        .await
        .map_err(|e| internal_error("page", e))?
        .map_err(|e| internal_error("page", e))
}

/// An error page with a plain reason; details go to the log, never a Debug dump to the browser.
pub(crate) fn internal_error(context: &str, error: impl std::fmt::Display) -> actix_web::Error {
    tracing::error!(%error, "{context}");
    actix_web::error::ErrorInternalServerError(format!("{context}: see the server log"))
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters and '/').
pub(crate) fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        // RFC 3986 lets '/' stand unencoded in a query (the sign-in page's `next=/reports/traffic`).
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An instant as RFC 3339 in UTC (`2026-03-01T08:00:00Z`), as the CSV downloads write them; empty when out of
/// range.
pub(crate) fn iso_time(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
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
