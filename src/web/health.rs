//! `/healthz`: 200 `ok` when the journal writer, every projector and the MQTT connection are healthy, else 503
//! naming the failing part: a stuck projector, or an event a follower parked (until it is re-driven or
//! discarded on `/admin/projections`). A notification channel that cannot deliver makes it `200 degraded: ...`:
//! the site works, and the notifications wait in the outbox until the channel takes them.

use crate::web::AppState;
use actix_web::{HttpResponse, web};

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let mut problems = Vec::new();
    if state.committed.has_changed().is_err() {
        problems.push("journal: writer has stopped".to_owned());
    }
    if let Some(why) = state.writer_stats.failing() {
        // Nothing is acknowledged meanwhile: gateways keep their messages and re-send them.
        problems.push(format!("journal: cannot write: {why}"));
    }
    if let Some(mqtt) = &state.external_mqtt
        && !mqtt.connected()
    {
        let connected = mqtt.connected_sessions.load(std::sync::atomic::Ordering::Relaxed);
        problems.push(if connected == 0 {
            "mqtt: not connected to the broker (see the log for why; retrying)".to_owned()
        } else {
            format!(
                "mqtt: {connected} of {} sessions connected to the broker (see the log for why; retrying)",
                mqtt.sessions
            )
        });
    }
    for (stream, why) in state.registry.unrecoverable() {
        problems.push(format!(
            "{stream}: its state cannot be recovered, so it takes no messages: {why}"
        ));
    }
    for projector in &state.projectors {
        if let Some(error) = projector.error() {
            problems.push(format!("projector {}: {error}", projector.name));
        }
    }
    // A probe runs often: it reads the first few parked events and the count, never the whole table.
    const SHOWN: usize = 5;
    let views = state.views_reader.clone();
    let parked = web::block(move || {
        views.with(|conn| {
            use crate::projection::parked;
            Ok((parked::list(conn, Some(SHOWN))?, parked::count(conn)?))
        })
    })
    .await;
    match parked {
        Ok(Ok((first, total))) => {
            for event in &first {
                problems.push(format!(
                    "{}: event at position {} parked: {} (re-drive or discard it on /admin/projections)",
                    event.follower, event.position, event.error
                ));
            }
            if total > first.len() as u64 {
                problems.push(format!(
                    "{} more parked events on /admin/projections",
                    total - first.len() as u64
                ));
            }
        }
        Ok(Err(error)) => problems.push(format!("views.db: cannot read parked events: {error:#}")),
        Err(error) => problems.push(format!("views.db: cannot read parked events: {error}")),
    }
    let degraded: Vec<String> = state
        .notifier
        .health
        .problems()
        .into_iter()
        .map(|(channel, why)| format!("degraded: notification channel {channel}: {why}"))
        .chain(
            state
                .forward
                .as_ref()
                .and_then(|f| f.progress().trouble())
                .map(|why| format!("degraded: {why}")),
        )
        .collect();
    if problems.is_empty() && degraded.is_empty() {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok\n")
    } else if problems.is_empty() {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(degraded.join("\n") + "\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(problems.into_iter().chain(degraded).collect::<Vec<_>>().join("\n") + "\n")
    }
}
