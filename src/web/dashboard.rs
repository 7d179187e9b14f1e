//! `/`: every device's live status from `device_status`, with today's passages and open faults.

use crate::app::AppState;
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

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    site: String,
    today: String,
    tiles: Vec<Tile>,
    total_in: i64,
    total_out: i64,
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

pub async fn page(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(state.config.site.timezone.clone())
        .date()
        .to_string();
    let tz = state.config.site.timezone.clone();
    let day = today.clone();
    let tiles = super::read_views(&state, move |conn| load_tiles(conn, &tz, &day)).await?;
    let page = Dashboard {
        site: state.config.site.name.clone(),
        today,
        total_in: tiles.iter().map(|t| t.passages_in).sum(),
        total_out: tiles.iter().map(|t| t.passages_out).sum(),
        tiles,
    };
    super::render(&page)
}
