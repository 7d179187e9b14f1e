//! `/muster`: everyone whose presence says inside, per zone, with when they came in and where and when they were
//! last seen; printable (one clean list per zone) and as CSV. For managers: it names people.

use super::csv::Csv;
use crate::web::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/muster", web::get().to(page));
}

pub struct Person {
    pub subject: String,
    pub since: String,
    pub last_seen_at: String,
    pub last_seen_device: String,
}

pub struct ZoneList {
    pub zone: String,
    pub people: Vec<Person>,
    /// The zone's occupancy minus the people identified inside: passed without a face to name them.
    pub unidentified: i64,
}

#[derive(Template)]
#[template(path = "muster.html")]
struct MusterPage {
    site: String,
    timezone: String,
    printed_at: String,
    zones: Vec<ZoneList>,
    total: usize,
}

#[derive(Deserialize)]
struct Query {
    format: Option<String>,
}

async fn page(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let query = web::Query::<Query>::from_query(req.query_string())
        .map_err(|e| actix_web::error::ErrorBadRequest(format!("{e}\n")))?
        .into_inner();
    let (rows, occupancy) = super::read_views(&state, |conn| {
        let occupancy: std::collections::HashMap<String, i64> = conn
            .prepare_cached("SELECT zone, count FROM occupancy")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((crate::presence::inside(conn)?, occupancy))
    })
    .await?;
    let rows: Vec<crate::presence::InsideRow> = rows
        .into_iter()
        .map(|row| crate::presence::InsideRow {
            subject: state.vault.reveal_text(&row.subject),
            ..row
        })
        .collect();
    let tz = &state.config.site.timezone;
    let local = |micros: i64| super::local_time(tz, micros);
    if query.format.as_deref() == Some("csv") {
        let iso = super::iso_time;
        let mut csv = Csv::with_header(&["subject", "zone", "since", "last_seen_at", "last_seen_at_device"]);
        for row in &rows {
            csv.row(&[
                row.subject.clone(),
                row.zone.clone(),
                row.since.map(iso).unwrap_or_default(),
                iso(row.last_seen_at),
                row.last_seen_device.clone(),
            ]);
        }
        return Ok(csv.into_response("muster.csv"));
    }
    // Every zone of the site, in the order config.toml names them, even with nobody inside.
    let mut zones: Vec<ZoneList> = state
        .config
        .zone_names()
        .into_iter()
        .map(|zone| ZoneList {
            zone,
            people: vec![],
            unidentified: 0,
        })
        .collect();
    let total = rows.len();
    for row in rows {
        let person = Person {
            subject: row.subject,
            since: row.since.map(local).unwrap_or_default(),
            last_seen_at: local(row.last_seen_at),
            last_seen_device: row.last_seen_device,
        };
        match zones.iter_mut().find(|z| z.zone == row.zone) {
            Some(zone) => zone.people.push(person),
            None => zones.push(ZoneList {
                zone: row.zone,
                people: vec![person],
                unidentified: 0,
            }),
        }
    }
    for zone in &mut zones {
        let counted = occupancy.get(&zone.zone).copied().unwrap_or(0);
        zone.unidentified = (counted - zone.people.len() as i64).max(0);
    }
    super::render(&MusterPage {
        site: state.config.site.name.clone(),
        timezone: state.config.site.timezone_name.clone(),
        printed_at: local(jiff::Timestamp::now().as_microsecond()),
        zones,
        total,
    })
}
