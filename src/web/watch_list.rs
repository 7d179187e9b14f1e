//! `/admin/watch-list`: the subjects whose sighting raises an alarm, with who last changed each entry; admins add
//! or change an entry and take one off. Every change is a command to the watch list aggregate with the admin as
//! its actor (as `gatehouse watch add|remove` is), and the page comes back once the read table shows it. CSV too.

use super::auth::{Admin, check_csrf};
use crate::domain::watch_list::WatchEntry;
use crate::domain::{Pseudonym, Subject, SubjectId, alarm::Severity};
use crate::requests::{OperatorCommand, WatchChange};
use crate::web::AppState;
use crate::web::csv::Csv;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/watch-list", web::get().to(page))
        .route("/admin/watch-list", web::post().to(add))
        .route("/admin/watch-list/remove", web::post().to(remove));
}

/// One entry as listed.
pub struct EntryLine {
    /// The identifier as the vault reveals it ("forgotten" once the person is).
    pub subject: String,
    pub pseudonym: String,
    pub list: String,
    pub severity: String,
    pub note: String,
    pub until: String,
    pub changed_by: String,
    pub changed_at: String,
}

#[derive(Template)]
#[template(path = "admin_watch_list.html")]
struct WatchListPage {
    site: String,
    entries: Vec<EntryLine>,
    severities: Vec<&'static str>,
    notice: Option<String>,
    csrf: String,
}

#[derive(Deserialize)]
struct PageQuery {
    notice: Option<String>,
    format: Option<String>,
}

async fn page(state: web::Data<AppState>, Admin(identity): Admin, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let query = web::Query::<PageQuery>::from_query(req.query_string())
        .map_err(|e| actix_web::error::ErrorBadRequest(format!("{e}\n")))?
        .into_inner();
    let rows = super::read_views(&state, |conn| {
        let mut statement = conn.prepare_cached(
            "SELECT subject, list, severity, note, until, changed_by, changed_at FROM watch_list
             ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END,
                      list, subject",
        )?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .await?;
    let tz = &state.config.site.timezone;
    let entries: Vec<EntryLine> = rows
        .into_iter()
        .map(
            |(pseudonym, list, severity, note, until, changed_by, changed_at)| EntryLine {
                subject: state.vault.reveal_text(&pseudonym),
                pseudonym,
                list,
                severity,
                note: note.unwrap_or_default(),
                until: until.unwrap_or_default(),
                changed_by,
                changed_at: super::local_time(tz, changed_at),
            },
        )
        .collect();
    if query.format.as_deref() == Some("csv") {
        let mut csv = Csv::with_header(&[
            "subject",
            "list",
            "severity",
            "until",
            "note",
            "changed_by",
            "changed_at",
        ]);
        for e in &entries {
            csv.row(&[
                e.subject.clone(),
                e.list.clone(),
                e.severity.clone(),
                e.until.clone(),
                e.note.clone(),
                e.changed_by.clone(),
                e.changed_at.clone(),
            ]);
        }
        return Ok(csv.into_response("watch-list.csv"));
    }
    super::render(&WatchListPage {
        site: state.config.site.name.clone(),
        entries,
        severities: Severity::ALL.iter().map(|s| s.as_str()).collect(),
        // A change's notice names its person by pseudonym (it came through the URL): revealed here.
        notice: query.notice.map(|notice| state.vault.reveal_text(&notice)),
        csrf: identity.csrf.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct AddForm {
    csrf: String,
    subject: String,
    list: String,
    severity: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    until: String,
}

async fn add(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<AddForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    let sealed = match SubjectId::parse(form.subject.trim()) {
        Ok(identifier) => Some(
            state
                .vault
                .seal(&identifier)
                .map_err(actix_web::error::ErrorInternalServerError)?,
        ),
        Err(_) => None,
    };
    let parsed = SubjectId::parse(form.subject.trim()).and_then(|_| {
        sealed
            .clone()
            .ok_or_else(|| "the subject could not be sealed".to_owned())
            .and_then(|subject| {
                WatchEntry::parse(subject, &form.list, &form.severity, Some(&form.note), Some(&form.until))
            })
    });
    let notice = match parsed {
        Ok(entry) => {
            let command = OperatorCommand::Watch {
                change: WatchChange::add(entry),
            };
            super::lockout::carry_out_and_wait(&state, &identity.name, &command).await
        }
        Err(why) => format!("nothing added: {why}"),
    };
    Ok(super::admin::back_to_with("/admin/watch-list", &notice))
}

#[derive(Deserialize)]
struct RemoveForm {
    csrf: String,
    subject: String,
}

async fn remove(
    state: web::Data<AppState>,
    Admin(identity): Admin,
    form: web::Form<RemoveForm>,
) -> actix_web::Result<HttpResponse> {
    check_csrf(&identity, &form.csrf)?;
    // The list's own button posts the pseudonym (a forgotten person's entry has nothing else); a typed
    // identifier is looked up.
    let found = match Pseudonym::parse(form.subject.trim()) {
        Ok(pseudonym) => Ok(Some(pseudonym)),
        Err(_) => SubjectId::parse(form.subject.trim())
            .and_then(|identifier| state.vault.find(&identifier).map_err(|e| format!("{e:#}"))),
    };
    let notice = match found {
        Ok(Some(pseudonym)) => {
            let command = OperatorCommand::Watch {
                change: WatchChange::remove(Subject::unsealed(pseudonym)),
            };
            super::lockout::carry_out_and_wait(&state, &identity.name, &command).await
        }
        Ok(None) => "nothing removed: nobody with that identifier is on the watch list".to_owned(),
        Err(why) => format!("nothing removed: {why}"),
    };
    Ok(super::admin::back_to_with("/admin/watch-list", &notice))
}
