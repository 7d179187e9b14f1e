//! `/`: every device's live status from `device_status`, today's passages per zone, the open faults, the active
//! alarms and the work orders still to do.
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

/// Today's passages in one zone.
pub struct ZoneTotal {
    pub zone: String,
    pub passages_in: i64,
    pub passages_out: i64,
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
    let (tiles, work_orders, alarms) = super::read_views(state, move |conn| {
        Ok((
            load_tiles(conn, &tz, &day)?,
            crate::work_orders::counts(conn, now)?,
            crate::alarms::active_counts(conn)?,
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

pub async fn page(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let live = load(&state).await?;
    super::render(&Dashboard {
        site: state.config.site.name.clone(),
        live,
    })
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
    );
    // The date is part of the tag: at midnight "today" changes without any new event.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(state.config.site.timezone.clone())
        .date();
    let etag = format!("\"{}-{}-{}-{today}\"", position.0, position.1, position.2);
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
