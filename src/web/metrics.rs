//! `/metrics`: the journal, MQTT ingestion, projectors and HTTP requests in the Prometheus text format (0.0.4),
//! plus the middleware that times every request.
//!
//! The counters already live where the work happens (the writer's `WriterStats`, the MQTT endpoint's or
//! subscriber's counters, the projectors' position watches), so a scrape reads them into a fresh registry
//! instead of mirroring them into long-lived metric objects; only the HTTP histogram is kept here.

use crate::web::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use std::sync::atomic::Ordering;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// Request durations by route pattern, method and status, for one running server (shared by its workers).
#[derive(Clone)]
pub struct HttpMetrics {
    durations: HistogramVec,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time to answer an HTTP request, by matched route pattern, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("the histogram's name and labels are valid");
        Self { durations }
    }
}

impl HttpMetrics {
    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.durations
            .with_label_values(&[route, method, status.to_string().as_str()])
            .observe(seconds);
    }
}

/// Times each request (`.wrap(from_fn(record_duration))`). The route label is the matched pattern
/// (`/devices/{id}`), never the raw path: one series per page, however many devices or bad URLs there are.
pub async fn record_duration(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    // The pattern comes from the app's resource map and the path, so it is known before routing runs.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    if let Some(state) = state {
        let seconds = started.elapsed().as_secs_f64();
        state.http_metrics.observe(&route, method, status.as_u16(), seconds);
    }
    result
}

/// The method as a label: the standard ones by name, anything a client made up as `other` (each made-up method
/// would otherwise be a series of its own, chosen by whoever sends requests).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn metrics(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let dead_letters_open = super::read_journal(&state, |journal| {
        Ok(journal.connection().query_row(
            "SELECT COUNT(*) FROM dead_letters WHERE status IN ('open', 'redrive_requested')",
            [],
            |r| r.get::<_, i64>(0),
        )?)
    })
    .await?;
    let now = jiff::Timestamp::now().as_microsecond();
    let (parked, devices, work_orders) = super::read_views(&state, move |views| {
        let parked = crate::projection::parked::counts(views)?;
        let work_orders = crate::work_orders::counts(views, now)?;
        let mut stmt = views.prepare_cached("SELECT device_id, lost_messages, clock_skew_ms FROM device_status")?;
        let devices = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((parked, devices, work_orders))
    })
    .await?;
    let scraped = Scraped {
        dead_letters_open,
        parked,
        devices,
        work_orders,
    };
    let text = encode(&state, &scraped).map_err(|e| super::internal_error("metrics", e))?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(text))
}

/// What a scrape reads from the databases.
struct Scraped {
    dead_letters_open: i64,
    /// Parked events per follower.
    parked: Vec<(String, u64)>,
    /// Per device: lost messages (by `seq`) and the latest message's clock skew in milliseconds.
    devices: Vec<(String, i64, Option<i64>)>,
    /// Work orders still to do by kind, and the overdue ones.
    work_orders: crate::work_orders::Counts,
}

/// Reads every value into a registry made for this scrape and encodes it.
fn encode(state: &AppState, scraped: &Scraped) -> anyhow::Result<String> {
    let (dead_letters_open, parked) = (scraped.dead_letters_open, &scraped.parked);
    let registry = prometheus::Registry::new();
    let counter = |name: &str, help: &str, value: u64| -> anyhow::Result<()> {
        let counter = IntCounter::new(name, help)?;
        counter.inc_by(value);
        registry.register(Box::new(counter))?;
        Ok(())
    };
    let gauge = |name: &str, help: &str, value: i64| -> anyhow::Result<()> {
        let gauge = IntGauge::new(name, help)?;
        gauge.set(value);
        registry.register(Box::new(gauge))?;
        Ok(())
    };

    // Projector positions first, the head after: the head only grows, so the lag is never understated.
    let positions: Vec<(&str, u64, bool)> = state
        .projectors
        .iter()
        .map(|p| (p.name, *p.position.borrow(), p.error().is_some()))
        .collect();
    let head = *state.committed.borrow();

    counter(
        "gatehouse_events_appended_total",
        "Events the journal writer has committed since this process started.",
        state.writer_stats.events(),
    )?;
    counter(
        "gatehouse_journal_commits_total",
        "Journal transactions committed since this process started (group commit: one per batch).",
        state.writer_stats.commits(),
    )?;
    gauge(
        "gatehouse_journal_head_position",
        "Position of the newest committed journal event.",
        head as i64,
    )?;
    gauge(
        "gatehouse_dead_letters_open",
        "Device messages that could not become events and still await a re-drive or discard.",
        dead_letters_open,
    )?;

    let open_orders = IntGaugeVec::new(
        Opts::new(
            "gatehouse_work_orders_open",
            "Work orders neither resolved nor cancelled, by kind.",
        ),
        &["kind"],
    )?;
    open_orders
        .with_label_values(&["corrective"])
        .set(scraped.work_orders.corrective);
    open_orders
        .with_label_values(&["preventive"])
        .set(scraped.work_orders.preventive);
    registry.register(Box::new(open_orders))?;
    gauge(
        "gatehouse_work_orders_overdue",
        "Work orders still to do whose due time has passed.",
        scraped.work_orders.overdue,
    )?;

    let messages = IntCounterVec::new(
        Opts::new("gatehouse_mqtt_messages_total", "QoS 1 device messages received."),
        &["mode"],
    )?;
    let acked = IntCounterVec::new(
        Opts::new(
            "gatehouse_mqtt_acked_total",
            "Device messages acknowledged, each after its event or dead letter was committed.",
        ),
        &["mode"],
    )?;
    if let Some(embedded) = &state.embedded_mqtt {
        let received = embedded.messages.load(Ordering::Relaxed);
        messages.with_label_values(&["embedded"]).inc_by(received);
        acked
            .with_label_values(&["embedded"])
            .inc_by(embedded.acked.load(Ordering::Relaxed));
    }
    if let Some(external) = &state.external_mqtt {
        let received = external.messages.load(Ordering::Relaxed);
        messages.with_label_values(&["external"]).inc_by(received);
        acked
            .with_label_values(&["external"])
            .inc_by(external.acked.load(Ordering::Relaxed));
    }
    registry.register(Box::new(messages))?;
    registry.register(Box::new(acked))?;
    if let Some(external) = &state.external_mqtt {
        gauge(
            "gatehouse_mqtt_sessions",
            "Sessions at the external broker Gatehouse keeps open ([mqtt] subscriber_sessions, and discovery).",
            external.sessions as i64,
        )?;
        gauge(
            "gatehouse_mqtt_sessions_connected",
            "Sessions at the external broker connected with their subscriptions acknowledged.",
            external.connected_sessions.load(Ordering::Relaxed) as i64,
        )?;
        counter(
            "gatehouse_mqtt_sessions_retired_total",
            "Sessions another subscriber_sessions left at the broker, drained and deleted since this process started.",
            external.retired.load(Ordering::Relaxed),
        )?;
    }
    counter(
        "gatehouse_mqtt_connections_refused_total",
        "Connections to the embedded endpoint refused: over max_connections, or a CONNECT that did not sign in.",
        state
            .embedded_mqtt
            .as_ref()
            .map_or(0, |e| e.refused.load(Ordering::Relaxed)),
    )?;
    counter(
        "gatehouse_dead_letters_over_quota_total",
        "Dead letters acknowledged but not stored: their sender was past [mqtt] dead_letter_quota for the minute.",
        state.ingestor.dead_letters_over_quota(),
    )?;

    let projector_gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["projection"]);
    let position = projector_gauge(
        "gatehouse_projector_position",
        "The last journal position a projector has applied (its checkpoint).",
    )?;
    let lag = projector_gauge(
        "gatehouse_projector_lag_events",
        "Committed events a projector has not applied yet.",
    )?;
    let errors = projector_gauge(
        "gatehouse_projector_errors",
        "1 while a projector is stuck on an error (see /admin/projections), else 0.",
    )?;
    let parked_events = projector_gauge(
        "gatehouse_parked_events",
        "Events a follower could not handle and parked (see /admin/projections).",
    )?;
    for (name, applied, stuck) in positions {
        position.with_label_values(&[name]).set(applied as i64);
        lag.with_label_values(&[name]).set(head.saturating_sub(applied) as i64);
        errors.with_label_values(&[name]).set(i64::from(stuck));
        let count = parked
            .iter()
            .find(|(follower, _)| follower == name)
            .map_or(0, |(_, n)| *n);
        parked_events.with_label_values(&[name]).set(count as i64);
    }
    registry.register(Box::new(parked_events))?;
    if let Some(forward) = &state.forward {
        let progress = forward.progress();
        gauge(
            "gatehouse_forward_position",
            "The last journal position the NATS stream has confirmed ([forward]).",
            progress.forwarded_up_to as i64,
        )?;
        gauge(
            "gatehouse_forward_lag_events",
            "Committed events the NATS stream has not confirmed yet.",
            head.saturating_sub(progress.forwarded_up_to) as i64,
        )?;
        gauge(
            "gatehouse_forward_lag_seconds",
            "Seconds since the oldest event the NATS stream has not confirmed was recorded (0 when caught up).",
            progress.lag_seconds(jiff::Timestamp::now()) as i64,
        )?;
        gauge(
            "gatehouse_forward_connected",
            "1 while the forwarder is connected and the stream answers, else 0.",
            i64::from(progress.connected),
        )?;
    }
    registry.register(Box::new(position))?;
    registry.register(Box::new(lag))?;
    registry.register(Box::new(errors))?;

    let lost = IntGaugeVec::new(
        Opts::new(
            "gatehouse_device_lost_messages",
            "Messages a device's gateway numbered (seq) that never arrived.",
        ),
        &["device"],
    )?;
    let skew = prometheus::GaugeVec::new(
        Opts::new(
            "gatehouse_device_clock_skew_seconds",
            "Recorded time minus device time of the device's latest message (positive: device clock behind).",
        ),
        &["device"],
    )?;
    for (device, lost_messages, skew_ms) in &scraped.devices {
        lost.with_label_values(&[device]).set(*lost_messages);
        if let Some(ms) = skew_ms {
            skew.with_label_values(&[device]).set(*ms as f64 / 1000.0);
        }
    }
    registry.register(Box::new(lost))?;
    registry.register(Box::new(skew))?;

    // The histogram is shared, not copied: registering it here only lets this scrape read it.
    registry.register(Box::new(state.http_metrics.durations.clone()))?;

    let mut buffer = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    Ok(String::from_utf8(buffer)?)
}
