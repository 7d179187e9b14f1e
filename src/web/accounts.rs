//! `/admin/users` (users with a disable button, API tokens with a revoke button) and `/admin/gateways` (gateway
//! identities: add one, which shows its secrets once on the answer, or remove one). Admins only: these decide who
//! may read, act and report. Adding users stays on the command line, where the password is typed, not posted.

use super::auth::{Admin, check_csrf};
use crate::domain::DeviceId;
use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::BTreeSet;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(users_page))
        .route("/admin/users/disable", web::post().to(disable_user))
        .route("/admin/tokens/revoke", web::post().to(revoke_token))
        .route("/admin/gateways", web::get().to(gateways_page))
        .route("/admin/gateways", web::post().to(add_gateway))
        .route("/admin/gateways/remove", web::post().to(remove_gateway));
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

struct UserLine {
    name: String,
    role: String,
    created: String,
    disabled: Option<String>,
}

struct TokenLine {
    name: String,
    role: String,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    site: String,
    users: Vec<UserLine>,
    tokens: Vec<TokenLine>,
    notice: Option<String>,
    csrf: String,
}

/// Runs account work on `journal.db` on the blocking pool.
async fn accounts<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> actix_web::Result<T> {
    let journal = state.paths.journal();
    web::block(move || work(&crate::db::open(&journal, crate::config::Synchronous::Full)?))
        .await
        .map_err(|e| super::internal_error("accounts", e))?
        .map_err(|e| super::internal_error("accounts", e))
}

async fn users_page(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    query: web::Query<NoticeQuery>,
) -> actix_web::Result<HttpResponse> {
    let (users, tokens) = accounts(&state, |conn| {
        Ok((crate::auth::list_users(conn)?, crate::auth::list_tokens(conn)?))
    })
    .await?;
    let tz = &state.config.site.timezone;
    super::render(&UsersPage {
        site: state.config.site.name.clone(),
        users: users
            .into_iter()
            .map(|u| UserLine {
                created: super::local_time(tz, u.created_at),
                disabled: u.disabled_at.map(|at| super::local_time(tz, at)),
                name: u.name,
                role: u.role,
            })
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenLine {
                created: super::local_time(tz, t.created_at),
                name: t.name,
                role: t.role,
            })
            .collect(),
        notice: query.into_inner().notice,
        csrf: identity.csrf.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn disable_user(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<NameForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let name = form.name.clone();
    if name == identity.name {
        return Ok(super::admin::back_to_with(
            "/admin/users",
            "you cannot disable yourself",
        ));
    }
    let done = accounts(&state, move |conn| crate::auth::disable_user(conn, &name)).await?;
    tracing::info!(by = %identity.name, user = %form.name, done, "user disabled from the web");
    let notice = match done {
        true => format!("disabled {}: their sessions ended", form.name),
        false => format!("no user {}", form.name),
    };
    Ok(super::admin::back_to_with("/admin/users", &notice))
}

async fn revoke_token(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<NameForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let name = form.name.clone();
    let revoked = accounts(&state, move |conn| crate::auth::revoke_tokens(conn, &name)).await?;
    tracing::info!(by = %identity.name, token = %form.name, revoked, "token revoked from the web");
    Ok(super::admin::back_to_with(
        "/admin/users",
        &format!("revoked {revoked} token(s) named {}", form.name),
    ))
}

struct GatewayLine {
    name: String,
    devices: String,
    alarms: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_gateways.html")]
struct GatewaysPage {
    site: String,
    gateways: Vec<GatewayLine>,
    notice: Option<String>,
    csrf: String,
    require_auth: bool,
    /// Shown once, right after adding: the secrets to give the gateway.
    credentials: Option<crate::gateways::Credentials>,
    devices: Vec<String>,
}

async fn render_gateways(
    state: &AppState,
    csrf: String,
    notice: Option<String>,
    credentials: Option<crate::gateways::Credentials>,
) -> actix_web::Result<HttpResponse> {
    let gateways = accounts(state, crate::gateways::list).await?;
    let tz = &state.config.site.timezone;
    super::render(&GatewaysPage {
        site: state.config.site.name.clone(),
        gateways: gateways
            .into_iter()
            .map(|g| GatewayLine {
                devices: g.devices.iter().map(DeviceId::as_str).collect::<Vec<_>>().join(", "),
                created: super::local_time(tz, g.created_at),
                alarms: g.alarms,
                name: g.name,
            })
            .collect(),
        notice,
        csrf,
        require_auth: state.config.mqtt.require_auth,
        credentials,
        devices: all_devices(state).iter().map(|d| d.to_string()).collect(),
    })
}

fn all_devices(state: &AppState) -> Vec<DeviceId> {
    state.config.device_ids().into_iter().map(|(id, _)| id).collect()
}

async fn gateways_page(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    query: web::Query<NoticeQuery>,
) -> actix_web::Result<HttpResponse> {
    render_gateways(
        &state,
        identity.csrf.unwrap_or_default(),
        query.into_inner().notice,
        None,
    )
    .await
}

#[derive(Deserialize)]
struct AddGatewayForm {
    csrf: String,
    name: String,
    #[serde(default)]
    devices: String,
    #[serde(default)]
    alarms: Option<String>,
}

async fn add_gateway(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<AddGatewayForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let csrf = identity.csrf.clone().unwrap_or_default();
    let known = all_devices(&state);
    let mut devices = BTreeSet::new();
    for id in form.devices.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        match known.iter().find(|d| d.as_str() == id) {
            Some(device) => {
                devices.insert(device.clone());
            }
            None => {
                let notice = format!("nothing added: no device {id:?} in config.toml");
                return render_gateways(&state, csrf, Some(notice), None).await;
            }
        }
    }
    let (name, alarms) = (form.name.trim().to_owned(), form.alarms.is_some());
    let added = {
        let name = name.clone();
        accounts(&state, move |conn| {
            Ok(crate::gateways::add(conn, &name, &devices, alarms))
        })
        .await?
    };
    match added {
        Ok(credentials) => {
            tracing::info!(by = %identity.name, gateway = %name, "gateway identity added from the web");
            // Rendered in the answer, never put in a URL: this is the only time the secrets are shown.
            render_gateways(&state, csrf, None, Some(credentials)).await
        }
        Err(why) => render_gateways(&state, csrf, Some(format!("nothing added: {why}")), None).await,
    }
}

async fn remove_gateway(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<NameForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let name = form.name.clone();
    let removed = accounts(&state, move |conn| crate::gateways::remove(conn, &name)).await?;
    tracing::info!(by = %identity.name, gateway = %form.name, removed, "gateway identity removed from the web");
    let notice = match removed {
        true => format!("removed gateway {}: it can no longer sign in", form.name),
        false => format!("no gateway {}", form.name),
    };
    Ok(super::admin::back_to_with("/admin/gateways", &notice))
}
