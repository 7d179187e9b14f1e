//! `/admin/forget`: an admin forgets a person (GDPR erasure), in two steps: the identifier is typed and looked up,
//! then a confirmation page says what will happen and asks again. Only the pseudonym travels in the second form
//! and in the request carried out (`privacy::forget`); no notice or URL carries the identifier.

use super::auth::{Admin, check_csrf};
use crate::domain::{Pseudonym, SubjectId};
use crate::requests::OperatorCommand;
use crate::web::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/forget", web::get().to(page))
        .route("/admin/forget", web::post().to(look_up))
        .route("/admin/forget/confirm", web::post().to(confirm));
}

#[derive(Template)]
#[template(path = "admin_forget.html")]
struct ForgetPage {
    site: String,
    notice: Option<String>,
    csrf: String,
    /// The second step: whom (as typed), and their pseudonym for the confirming form.
    confirming: Option<(String, String)>,
}

#[derive(Deserialize)]
struct PageQuery {
    notice: Option<String>,
}

async fn page(state: web::Data<AppState>, Admin(identity): Admin, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let query = web::Query::<PageQuery>::from_query(req.query_string())
        .map_err(|e| actix_web::error::ErrorBadRequest(format!("{e}\n")))?
        .into_inner();
    super::render(&ForgetPage {
        site: state.config.site.name.clone(),
        notice: query.notice,
        csrf: identity.csrf.unwrap_or_default(),
        confirming: None,
    })
}

#[derive(Deserialize)]
struct LookUpForm {
    csrf: String,
    subject: String,
}

async fn look_up(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<LookUpForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let typed = form.subject.trim().to_owned();
    let notice = match SubjectId::parse(&typed) {
        Err(why) => Some(format!("nobody forgotten: {why}")),
        Ok(identifier) => {
            let vault = state.vault.clone();
            match web::block(move || vault.find(&identifier)).await {
                Ok(Ok(Some(pseudonym))) => {
                    return super::render(&ForgetPage {
                        site: state.config.site.name.clone(),
                        notice: None,
                        csrf: identity.csrf.unwrap_or_default(),
                        confirming: Some((typed, pseudonym.to_string())),
                    });
                }
                Ok(Ok(None)) => Some("nobody forgotten: nothing is stored under that identifier".to_owned()),
                Ok(Err(error)) => Some(format!("nobody forgotten: {error:#}")),
                Err(error) => Some(format!("nobody forgotten: {error}")),
            }
        }
    };
    super::render(&ForgetPage {
        site: state.config.site.name.clone(),
        notice,
        csrf: identity.csrf.unwrap_or_default(),
        confirming: None,
    })
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    person: String,
}

async fn confirm(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<ConfirmForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let notice = match Pseudonym::parse(form.person.trim()) {
        Ok(person) => {
            let command = OperatorCommand::Forget { person };
            super::lockout::carry_out_and_wait(&state, &identity.name, &command).await
        }
        Err(why) => format!("nobody forgotten: {why}"),
    };
    tracing::info!(user = %identity.name, %notice, "forget from the web");
    Ok(super::admin::back_to_with("/admin/forget", &notice))
}
