//! Signing in and the guard in front of every page. Browsers sign in with a name and password and carry a session
//! cookie (HttpOnly, SameSite=Strict, Secure behind TLS); scripts send `Authorization: Bearer TOKEN`, which may
//! only read (GET). Everything but `/login`, `/healthz` and `/static/*` needs one or the other. State-changing
//! forms carry the session's CSRF token; repeated failed sign-ins for a name are slowed down.

use crate::auth::{self, Identity, Role};
use crate::web::AppState;
use crate::web::pool::ReadPool;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The sign-in form's CSRF cookie: the form carries the same value, so another site cannot sign a browser in to
/// an account of its choosing.
pub const LOGIN_COOKIE: &str = "gatehouse_login";

/// Failed sign-ins allowed for a name before it is locked for a while.
const FREE_FAILURES: u32 = 5;
/// The longest lock after repeated failures.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::get().to(logout_form))
        .route("/logout", web::post().to(logout));
}

/// What signing in needs: where the accounts are (journal.db of a site, or of `gatehouse hq`) and the name the
/// sign-in page shows. Registered as app data by every server that has sign-in.
#[derive(Clone)]
pub struct Accounts {
    pub site_name: String,
    pub journal: std::path::PathBuf,
    pub reader: ReadPool,
}

impl Accounts {
    pub fn of(state: &AppState) -> Accounts {
        Accounts {
            site_name: state.config.site.name.clone(),
            journal: state.paths.journal(),
            reader: state.journal_reader.clone(),
        }
    }
}

/// Open to all, or (`/ingest/`) signed in with a gateway's own token rather than a person's.
fn is_public(path: &str) -> bool {
    path == "/login" || path == "/healthz" || path.starts_with("/static/") || path.starts_with("/ingest/")
}

/// Looks up who is calling; blocking SQLite work runs on the blocking pool.
async fn identify(accounts: &Accounts, req: &ServiceRequest) -> actix_web::Result<Option<(Identity, bool)>> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let session = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    if bearer.is_none() && session.is_none() {
        return Ok(None);
    }
    let journal = accounts.reader.clone();
    web::block(move || {
        journal.with(|conn| {
            if let Some(token) = bearer {
                return Ok(auth::check_token(conn, &token)?.map(|i| (i, true)));
            }
            Ok(match session {
                Some(id) => auth::check_session(conn, &id)?.map(|i| (i, false)),
                None => None,
            })
        })
    })
    .await
    .map_err(|e| super::internal_error("sign-in check", e))?
    .map_err(|e| super::internal_error("sign-in check", e))
}

/// The guard: lets public paths through, attaches the caller's [`Identity`] to the request, and otherwise sends
/// browsers to the sign-in form and scripts a 401.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<EitherBody<impl MessageBody>>> {
    if is_public(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let accounts = req
        .app_data::<web::Data<Accounts>>()
        .expect("Accounts is registered")
        .clone();
    match identify(&accounts, &req).await? {
        Some((_, true)) if !matches!(*req.method(), Method::GET | Method::HEAD) => {
            let response = HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("API tokens may only read: sign in to change anything\n");
            Ok(req.into_response(response).map_into_right_body())
        }
        Some((identity, _)) => {
            req.extensions_mut().insert(identity);
            Ok(next.call(req).await?.map_into_left_body())
        }
        None => {
            let wants_html = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"));
            let response = if wants_html && req.method() == Method::GET {
                let next_path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
                let location = format!("/login?next={}", super::urlencode(&next_path));
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish()
            } else {
                HttpResponse::Unauthorized()
                    .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                    .content_type("text/plain; charset=utf-8")
                    .body("sign in, or send Authorization: Bearer TOKEN (see `gatehouse token create`)\n")
            };
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

impl FromRequest for Identity {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Identity>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("sign in first")),
        )
    }
}

/// An identity with the admin role; anyone else gets 403.
pub struct Admin(pub Identity);

impl FromRequest for Admin {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(match req.extensions().get::<Identity>() {
            Some(identity) if identity.role == Role::Admin => Ok(Admin(identity.clone())),
            Some(_) => Err(actix_web::error::ErrorForbidden("only admins may do this\n")),
            None => Err(actix_web::error::ErrorUnauthorized("sign in first\n")),
        })
    }
}

/// A signed-in person who may act on devices (managers and admins; SPEC §4). API tokens only read: 403.
pub struct Manager(pub Identity);

impl FromRequest for Manager {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(match req.extensions().get::<Identity>() {
            Some(identity) if identity.csrf.is_none() => Err(actix_web::error::ErrorForbidden(
                "API tokens may only read: sign in to act on devices\n",
            )),
            Some(identity) if matches!(identity.role, Role::Manager | Role::Admin) => Ok(Manager(identity.clone())),
            Some(_) => Err(actix_web::error::ErrorForbidden("only managers may do this\n")),
            None => Err(actix_web::error::ErrorUnauthorized("sign in first\n")),
        })
    }
}

/// Refuses a state-changing form whose CSRF token is not the session's.
pub fn check_csrf(identity: &Identity, submitted: &str) -> actix_web::Result<()> {
    if auth::csrf_matches(identity, submitted) {
        Ok(())
    } else {
        Err(actix_web::error::ErrorForbidden(
            "this form has expired or did not come from this site: reload the page and try again\n",
        ))
    }
}

/// Failed sign-ins, kept in memory (a restart forgives, which is acceptable), counted two ways:
/// - per (client address, name): the same client guessing one name's password is slowed down, while the right
///   password from any other address still works, so nobody can lock an admin out by failing for their name;
/// - per client address, over every name: one client guessing many names is slowed down too.
///
/// Checking a password (argon2id, 19 MiB each) is also bounded: at most [`CONCURRENT_CHECKS`] at once.
pub struct LoginThrottle {
    failures: Mutex<HashMap<(String, String), (u32, Instant)>>,
    by_address: Mutex<HashMap<String, (u32, Instant)>>,
    checks: tokio::sync::Semaphore,
}

/// Password checks running at once: each takes argon2id's 19 MiB; 64 at once took 1.6 GB.
pub const CONCURRENT_CHECKS: usize = 2;
/// Failed sign-ins allowed from one address over all names before it is slowed down.
const FREE_ADDRESS_FAILURES: u32 = 20;
/// Entries kept before old ones are forgotten.
const MAX_TRACKED: usize = 10_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
            by_address: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }
}

/// The wait left after `entry`'s failures, the first `free` of them forgiven.
fn remaining(entry: Option<&(u32, Instant)>, free: u32) -> Option<Duration> {
    let (count, last) = entry?;
    let lock = backoff(count.checked_sub(free)?);
    lock.checked_sub(last.elapsed())
}

/// Each failure past the free ones doubles the wait: 1 s, 2 s, 4 s ... up to 15 minutes.
fn backoff(over: u32) -> Duration {
    Duration::from_secs(1u64 << over.min(20)).min(MAX_LOCK)
}

fn forget_old<K>(map: &mut HashMap<K, (u32, Instant)>) {
    if map.len() > MAX_TRACKED {
        map.retain(|_, (_, last)| last.elapsed() < MAX_LOCK);
    }
}

impl LoginThrottle {
    /// How long a sign-in as `name` from `address` must wait, if it must.
    fn locked_for(&self, address: &str, name: &str) -> Option<Duration> {
        let key = (address.to_owned(), name.to_lowercase());
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let by_name = remaining(failures.get(&key), FREE_FAILURES);
        drop(failures);
        let by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let by_address = remaining(by_address.get(address), FREE_ADDRESS_FAILURES);
        by_name.max(by_address)
    }

    fn failed(&self, address: &str, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut failures);
        let entry = failures
            .entry((address.to_owned(), name.to_lowercase()))
            .or_insert((0, Instant::now()));
        *entry = (entry.0 + 1, Instant::now());
        drop(failures);
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut by_address);
        let entry = by_address.entry(address.to_owned()).or_insert((0, Instant::now()));
        *entry = (entry.0 + 1, Instant::now());
    }

    fn succeeded(&self, address: &str, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&(address.to_owned(), name.to_lowercase()));
    }
}

/// After the free failures for one name, each further one doubles the wait: 1 s, 2 s, 4 s ... up to 15 minutes.
#[cfg(test)]
fn lock_duration(failures: u32) -> Option<Duration> {
    Some(backoff(failures.checked_sub(FREE_FAILURES)?))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    site: String,
    next: String,
    name: String,
    error: Option<String>,
    csrf: String,
}

/// The sign-in form's token: the browser's own, or a new one (set as [`LOGIN_COOKIE`]).
fn login_token(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    match req.cookie(LOGIN_COOKIE) {
        Some(cookie) if cookie.value().len() >= 32 => (cookie.value().to_owned(), None),
        _ => {
            let token = auth::random_secret("lc_");
            let cookie = Cookie::build(LOGIN_COOKIE, token.clone())
                .path("/login")
                .http_only(true)
                .same_site(SameSite::Strict)
                .finish();
            (token, Some(cookie))
        }
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site may be a redirect target: it starts with one '/', and has no backslash, space or
/// control character (browsers drop tabs and line breaks from a URL, so `/\t/evil.example` would become
/// `//evil.example`, and a line break in a header is a 500).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn login_form(
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    query: web::Query<NextQuery>,
) -> actix_web::Result<HttpResponse> {
    let (csrf, cookie) = login_token(&req);
    let mut response = super::render(&LoginPage {
        site: accounts.site_name.clone(),
        next: safe_next(query.next.as_deref()),
        name: String::new(),
        error: None,
        csrf,
    })?;
    if let Some(cookie) = cookie {
        response
            .add_cookie(&cookie)
            .map_err(|e| super::internal_error("sign-in page", e))?;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

async fn login(
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    throttle: web::Data<LoginThrottle>,
    form: web::Form<LoginForm>,
) -> actix_web::Result<HttpResponse> {
    let LoginForm {
        name,
        password,
        next,
        csrf: submitted,
    } = form.into_inner();
    let next = safe_next(next.as_deref());
    let (csrf, new_cookie) = login_token(&req);
    let page = |error: String, status: actix_web::http::StatusCode| -> actix_web::Result<HttpResponse> {
        let html = LoginPage {
            site: accounts.site_name.clone(),
            next: next.clone(),
            name: name.clone(),
            error: Some(error),
            csrf: csrf.clone(),
        }
        .render()
        .map_err(|e| super::internal_error("sign-in page", e))?;
        let mut response = HttpResponse::build(status);
        if let Some(cookie) = &new_cookie {
            response.cookie(cookie.clone());
        }
        Ok(response.content_type("text/html; charset=utf-8").body(html))
    };
    if new_cookie.is_some() || !auth::constant_time_eq(&submitted, &csrf) {
        return page(
            "This sign-in form has expired or did not come from this site: sign in again.".into(),
            actix_web::http::StatusCode::FORBIDDEN,
        );
    }
    let address = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    if let Some(wait) = throttle.locked_for(&address, &name) {
        let seconds = wait.as_secs().max(1);
        let mut response = page(
            format!("Too many failed sign-ins from here: try again in {seconds} s."),
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        )?;
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let journal = accounts.journal.clone();
    let (user, secret) = (name.clone(), password);
    // A permit per check: the semaphore lives as long as the server, so acquiring cannot fail.
    let _check = throttle
        .checks
        .acquire()
        .await
        .map_err(|e| super::internal_error("sign-in", e))?;
    let session = web::block(move || -> anyhow::Result<Option<String>> {
        let conn = crate::db::open(&journal, crate::config::Synchronous::Full)?;
        match auth::verify_password(&conn, &user, &secret)? {
            Some(_) => Ok(Some(auth::create_session(&conn, &user)?)),
            None => Ok(None),
        }
    })
    .await
    .map_err(|e| super::internal_error("sign-in", e))?
    .map_err(|e| super::internal_error("sign-in", e))?;
    let Some(session) = session else {
        throttle.failed(&address, &name);
        tracing::warn!(user = %name, peer = %address, "failed sign-in");
        return page("Wrong name or password.".into(), actix_web::http::StatusCode::OK);
    };
    throttle.succeeded(&address, &name);
    let secure = req.connection_info().scheme() == "https";
    let cookie = Cookie::build(SESSION_COOKIE, session)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            auth::SESSION_LIFETIME.as_secs() as i64,
        ))
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, next))
        .finish())
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    site: String,
    name: String,
    csrf: String,
}

async fn logout_form(accounts: web::Data<Accounts>, identity: Identity) -> actix_web::Result<HttpResponse> {
    super::render(&LogoutPage {
        site: accounts.site_name.clone(),
        name: identity.name.clone(),
        csrf: identity.csrf.clone().unwrap_or_default(),
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    identity: Identity,
    form: web::Form<CsrfForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let journal = accounts.journal.clone();
        let id = cookie.value().to_owned();
        web::block(move || auth::end_session(&crate::db::open(&journal, crate::config::Synchronous::Full)?, &id))
            .await
            .map_err(|e| super::internal_error("sign-out", e))?
            .map_err(|e| super::internal_error("sign-out", e))?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/login"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sign_ins_lock_a_name_for_longer_and_longer() {
        assert_eq!(lock_duration(4), None);
        assert_eq!(lock_duration(5), Some(Duration::from_secs(1)));
        assert_eq!(lock_duration(7), Some(Duration::from_secs(4)));
        assert_eq!(lock_duration(40), Some(MAX_LOCK));
    }

    #[test]
    fn failing_for_a_name_slows_that_address_down_not_the_right_password_from_elsewhere() {
        let throttle = LoginThrottle::default();
        for _ in 0..6 {
            throttle.failed("10.0.0.66", "VICTIM");
        }
        assert!(
            throttle.locked_for("10.0.0.66", "victim").is_some(),
            "the guesser waits"
        );
        assert_eq!(
            throttle.locked_for("10.0.0.7", "victim"),
            None,
            "the victim's own address does not"
        );
        // One address guessing many names is slowed down too.
        for n in 0..FREE_ADDRESS_FAILURES {
            throttle.failed("10.0.0.99", &format!("user{n}"));
        }
        assert!(throttle.locked_for("10.0.0.99", "someone-else").is_some());
        assert_eq!(throttle.locked_for("10.0.0.100", "someone-else"), None);
    }

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_next(Some("/reports/traffic?from=2026-03-01")),
            "/reports/traffic?from=2026-03-01"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/127.0.0.1:41199/x")), "/", "a tab browsers drop");
        assert_eq!(
            safe_next(Some("/x\r\nSet-Cookie: a=b")),
            "/",
            "a line break in a header"
        );
        assert_eq!(safe_next(None), "/");
    }
}
