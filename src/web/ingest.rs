//! HTTP ingest for gateways without MQTT (SPEC §4): `POST /ingest/{kind}/{id}/{message}` with the MQTT payload as
//! the body, and `POST /ingest/batch` for a gateway's stored-up backlog (JSON lines). Gateways sign in with the
//! `http_token` of their identity (`gatehouse gateway add`) and may post only for their devices. Messages go
//! through the same ingestor as MQTT (parser, dead letters, de-duplication by `msg_id`, which is required here so
//! a client that retries can be de-duplicated), and every answer comes after the commit.

use super::AppState;
use crate::gateways::Gateway;
use crate::ingest::{Ingested, Received};
use crate::journal::Actor;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::sync::Arc;

/// A device message is small; a backlog is many of them (read only once the token is known good).
const MESSAGE_LIMIT: usize = 64 * 1024;
const BATCH_LIMIT: usize = 2 * 1024 * 1024;
/// Lines in one batch, at most (a gateway sends a long backlog in several).
const BATCH_LINES: usize = 10_000;
/// A batch's lines being ingested at once; the rest wait their turn (answers keep the lines' order).
const BATCH_CONCURRENCY: usize = 256;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ingest/batch", web::post().to(batch))
        .route("/ingest/{kind}/{id}/{message}", web::post().to(one));
}

/// The body, read only after the token was checked, up to `limit` bytes (413 past it).
async fn body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, HttpResponse> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| plain(HttpResponse::BadRequest(), format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(plain(
                HttpResponse::PayloadTooLarge(),
                format!("the body is over {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn plain(mut response: actix_web::HttpResponseBuilder, body: String) -> HttpResponse {
    response.content_type("text/plain; charset=utf-8").body(body + "\n")
}

/// The gateway whose token the request carries, or the 401 to answer.
async fn gateway(state: &AppState, req: &HttpRequest) -> Result<Arc<Gateway>, HttpResponse> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let Some(token) = token else {
        return Err(plain(
            HttpResponse::Unauthorized(),
            "send Authorization: Bearer <the gateway's http_token> (see `gatehouse gateway add`)".into(),
        ));
    };
    let journal = state.journal_reader.clone();
    let found = web::block(move || journal.with(|conn| crate::gateways::by_token(conn, &token))).await;
    match found {
        Ok(Ok(Some(gateway))) => Ok(Arc::new(gateway)),
        Ok(Ok(None)) => Err(plain(HttpResponse::Unauthorized(), "unknown gateway token".into())),
        Ok(Err(error)) => Err(unavailable(&format!("cannot check the token: {error:#}"))),
        Err(error) => Err(unavailable(&format!("cannot check the token: {error}"))),
    }
}

fn unavailable(why: &str) -> HttpResponse {
    tracing::warn!(%why, "http ingest unavailable");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .content_type("text/plain; charset=utf-8")
        .body(format!("nothing was stored, retry: {why}\n"))
}

/// What one message came to, as the answer's JSON says it.
fn outcome(ingested: &Ingested) -> Value {
    match ingested {
        Ingested::Recorded { .. } => json!({ "outcome": "event", "reason": null }),
        Ingested::Duplicate => json!({ "outcome": "duplicate", "reason": null }),
        Ingested::DeadLettered { reason, .. } | Ingested::OverQuota { reason } => {
            json!({ "outcome": "dead_letter", "reason": reason })
        }
    }
}

/// Why a message is refused before it is ingested (the client must fix it), or `None`.
fn refusal(gateway: &Gateway, topic: &str, payload: &[u8]) -> Option<(u16, String)> {
    let mut parts = topic.split('/').skip(1);
    let (device, message) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !gateway.may_report_for(device) {
        return Some((
            403,
            format!("gateway {} may not report for device {device:?}", gateway.name),
        ));
    }
    // `online` / `offline` is plain text and states a fact that may be repeated: no msg_id needed.
    if message == "status" {
        return None;
    }
    let has_msg_id = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("msg_id").and_then(Value::as_str).map(|id| !id.trim().is_empty()))
        .unwrap_or(false);
    if !has_msg_id {
        return Some((
            400,
            "msg_id is required over HTTP (a JSON body with a non-empty \"msg_id\"), so a retry is recognised".into(),
        ));
    }
    None
}

async fn one(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> HttpResponse {
    let gateway = match gateway(&state, &req).await {
        Ok(gateway) => gateway,
        Err(response) => return response,
    };
    let body = match body(payload, MESSAGE_LIMIT).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (kind, id, message) = path.into_inner();
    let relative = format!("{kind}/{id}/{message}");
    if let Some((status, why)) = refusal(&gateway, &relative, &body) {
        let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        return plain(HttpResponse::build(status), why);
    }
    let topic = format!("{}/{relative}", state.config.mqtt.topic_prefix);
    match ingest(&state, &gateway, &topic, &body).await {
        Ok(ingested) => HttpResponse::Ok().json(outcome(&ingested)),
        Err(why) => unavailable(&why),
    }
}

async fn ingest(state: &AppState, gateway: &Arc<Gateway>, topic: &str, payload: &[u8]) -> Result<Ingested, String> {
    let mut received = Received::once(topic, payload, jiff::Timestamp::now(), Actor::gateway(&gateway.name));
    received.gateway = Some(gateway.clone());
    state.ingestor.ingest(received).await.map_err(|e| e.to_string())
}

/// One line of a batch.
#[derive(serde::Deserialize)]
struct Line {
    topic: String,
    payload: Value,
}

async fn batch(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let gateway = match gateway(&state, &req).await {
        Ok(gateway) => gateway,
        Err(response) => return response,
    };
    let body = match body(payload, BATCH_LIMIT).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return plain(HttpResponse::BadRequest(), "the batch is not UTF-8 text".into());
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > BATCH_LINES {
        return plain(
            HttpResponse::PayloadTooLarge(),
            format!("{} lines: send at most {BATCH_LINES} per batch", lines.len()),
        );
    }
    // Each line is ingested as its own message; all are under way at once (a device's actor takes them in
    // order) and the answers come back in the lines' order.
    let prefix = state.config.mqtt.topic_prefix.clone();
    let work = lines.iter().map(|line| {
        let (state, gateway, prefix) = (state.clone(), gateway.clone(), prefix.clone());
        async move {
            let line: Line = match serde_json::from_str(line) {
                Ok(line) => line,
                Err(e) => {
                    return Ok(json!({ "outcome": "rejected", "reason": format!("not a {{\"topic\",\"payload\"}} line: {e}") }));
                }
            };
            // A status is plain text (`"payload":"online"`); everything else is the JSON object itself.
            let payload = match line.payload {
                Value::String(text) => text,
                other => other.to_string(),
            };
            if let Some((status, why)) = refusal(&gateway, &line.topic, payload.as_bytes()) {
                let outcome = if status == 403 { "forbidden" } else { "rejected" };
                return Ok(json!({ "outcome": outcome, "reason": why }));
            }
            let topic = format!("{prefix}/{}", line.topic);
            ingest(&state, &gateway, &topic, payload.as_bytes()).await.map(|i| outcome(&i))
        }
    });
    let results: Vec<Result<Value, String>> = {
        use futures_util::StreamExt;
        futures_util::stream::iter(work)
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await
    };
    let mut out = String::new();
    let mut failed = None;
    for result in results {
        let value = match result {
            Ok(value) => value,
            Err(why) => {
                let value = json!({ "outcome": "unavailable", "reason": format!("nothing stored, retry: {why}") });
                failed.get_or_insert(why);
                value
            }
        };
        out.push_str(&value.to_string());
        out.push('\n');
    }
    let mut response = match failed {
        // What was stored stays stored; re-sending the whole batch is safe (msg_id).
        Some(_) => {
            let mut r = HttpResponse::ServiceUnavailable();
            r.insert_header((header::RETRY_AFTER, "5"));
            r
        }
        None => HttpResponse::Ok(),
    };
    response.content_type("application/x-ndjson").body(out)
}
