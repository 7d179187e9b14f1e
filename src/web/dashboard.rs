//! `/`: every device's live status from `device_status`, today's passages and the occupancy per zone (with a
//! manager's correction form), the open faults, the active alarms and the work orders still to do.
//! `/live/dashboard` serves the same content as a fragment with an ETag (the projector's checkpoint), which the
//! page's small script polls to update itself; without JavaScript the page is a plain, complete page.

use crate::web::AppState;
use actix_web::{HttpResponse, web};
use askama::Template;

/// One device tile.
pub struct Tile {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub zone: String,
    pub lifecycle: String,
    pub availability: String,
    pub open_faults: String,
    pub locked_out: bool,
    pub last_seen: String,
    pub passages_in: i64,
    pub passages_out: i64,
}

/// Today's passages in one zone, and how many people are in it now.
pub struct ZoneTotal {
    pub zone: String,
    pub passages_in: i64,
    pub passages_out: i64,
    pub occupancy: i64,
    pub capacity: Option<u32>,
}

impl ZoneTotal {
    pub fn over_capacity(&self) -> bool {
        self.capacity.is_some_and(|c| self.occupancy > i64::from(c))
    }
}

/// What both the page and the live fragment show.
pub struct Live {
    today: String,
    tiles: Vec<Tile>,
    zones: Vec<ZoneTotal>,
    total_in: i64,
    total_out: i64,
    /// Work orders still to do, and how many are overdue.
    work_orders: crate::work_orders::Counts,
    /// Active alarms, and how many wait for someone to acknowledge them.
    alarms: crate::alarms::ActiveCounts,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    site: String,
    live: Live,
    /// The zones a manager may correct, and the form's token (none: the form is not shown).
    zone_names: Vec<String>,
    csrf: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard_live.html")]
struct LiveFragment {
    live: Live,
}

/// Reads the tiles; passages count only when they belong to today in the site's time zone.
fn load_tiles(conn: &rusqlite::Connection, tz: &jiff::tz::TimeZone, today: &str) -> anyhow::Result<Vec<Tile>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, kind, name, zone, lifecycle, availability, open_faults, locked_out, last_event_at,
                CASE WHEN passages_day = ?1 THEN passages_today_in ELSE 0 END,
                CASE WHEN passages_day = ?1 THEN passages_today_out ELSE 0 END
         FROM device_status ORDER BY zone, device_id",
    )?;
    let rows = stmt.query_map([today], |r| {
        Ok(Tile {
            id: r.get(0)?,
            kind: r.get(1)?,
            name: r.get(2)?,
            zone: r.get(3)?,
            lifecycle: r.get(4)?,
            availability: r.get(5)?,
            open_faults: r.get(6)?,
            locked_out: r.get(7)?,
            last_seen: r
                .get::<_, Option<i64>>(8)?
                .map(|m| super::local_time(tz, m))
                .unwrap_or_else(|| "never".into()),
            passages_in: r.get(9)?,
            passages_out: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reads everything the dashboard shows, as of now in the site's time zone.
async fn load(state: &AppState) -> actix_web::Result<Live> {
    let tz = state.config.site.timezone.clone();
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date().to_string();
    let day = today.clone();
    let now = jiff::Timestamp::now().as_microsecond();
    let (tiles, work_orders, alarms, occupancy) = super::read_views(state, move |conn| {
        let occupancy: std::collections::HashMap<String, i64> = conn
            .prepare_cached("SELECT zone, count FROM occupancy")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((
            load_tiles(conn, &tz, &day)?,
            crate::work_orders::counts(conn, now)?,
            crate::alarms::active_counts(conn)?,
            occupancy,
        ))
    })
    .await?;
    let mut zones: Vec<ZoneTotal> = Vec::new();
    for tile in tiles.iter().filter(|t| t.kind == "turnstile") {
        match zones.iter_mut().find(|z| z.zone == tile.zone) {
            Some(zone) => {
                zone.passages_in += tile.passages_in;
                zone.passages_out += tile.passages_out;
            }
            None => zones.push(ZoneTotal {
                zone: tile.zone.clone(),
                passages_in: tile.passages_in,
                passages_out: tile.passages_out,
                occupancy: occupancy.get(&tile.zone).copied().unwrap_or(0),
                capacity: state.config.capacity_of(&tile.zone),
            }),
        }
    }
    Ok(Live {
        today,
        total_in: tiles.iter().map(|t| t.passages_in).sum(),
        total_out: tiles.iter().map(|t| t.passages_out).sum(),
        zones,
        tiles,
        work_orders,
        alarms,
    })
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

pub async fn page(
    state: web::Data<AppState>,
    identity: crate::auth::Identity,
    query: web::Query<PageQuery>,
) -> actix_web::Result<HttpResponse> {
    let live = load(&state).await?;
    super::render(&Dashboard {
        site: state.config.site.name.clone(),
        live,
        zone_names: state.config.zone_names(),
        csrf: identity.csrf,
        notice: query.into_inner().notice,
    })
}

#[derive(serde::Deserialize)]
pub struct CorrectionForm {
    csrf: String,
    zone: String,
    count: String,
    #[serde(default)]
    reason: String,
}

/// A manager sets a zone's occupancy from the dashboard: an event with who and why; back to the dashboard once
/// the count shows.
pub async fn correct_occupancy(
    state: web::Data<AppState>,
    super::auth::Manager(identity): super::auth::Manager,
    form: web::Form<CorrectionForm>,
) -> actix_web::Result<HttpResponse> {
    super::auth::check_csrf(&identity, &form.csrf)?;
    let notice = match form.count.trim().parse::<u64>() {
        Err(_) => format!("nothing changed: {:?} is not a whole number of people", form.count),
        Ok(count) => {
            match crate::requests::OperatorCommand::occupancy(
                &form.zone,
                count,
                &form.reason,
                &state.config.zone_names(),
            ) {
                Ok(command) => super::lockout::carry_out_and_wait(&state, &identity.name, &command).await,
                Err(why) => format!("nothing changed: {why}"),
            }
        }
    };
    Ok(super::admin::back_to_with("/", &notice))
}

/// The live part of the dashboard. Its ETag is the `device_status`, `work_orders` and `alarms` projectors'
/// checkpoints:
/// while nothing new was projected, polling costs a 304 and no query.
pub async fn live(state: web::Data<AppState>, req: actix_web::HttpRequest) -> actix_web::Result<HttpResponse> {
    let position_of = |name: &str| {
        state
            .projectors
            .iter()
            .find(|p| p.name == name)
            .map_or(0, |p| *p.position.borrow())
    };
    let position = (
        position_of("device_status"),
        position_of("work_orders"),
        position_of("alarms"),
        position_of("occupancy"),
    );
    // The date is part of the tag: at midnight "today" changes without any new event.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(state.config.site.timezone.clone())
        .date();
    let etag = format!(
        "\"{}-{}-{}-{}-{today}\"",
        position.0, position.1, position.2, position.3
    );
    let unchanged = req
        .headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((actix_web::http::header::ETAG, etag))
            .finish());
    }
    let html = LiveFragment {
        live: load(&state).await?,
    }
    .render()
    .map_err(|e| super::internal_error("dashboard", e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::ETAG, etag))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(html))
}
