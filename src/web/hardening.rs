//! What every response and every request goes through, whatever the page: security headers (a CSP without inline
//! script, no sniffing, no framing), a refusal of state-changing requests sent from another site (their `Origin`
//! or `Sec-Fetch-Site` says so; the CSRF tokens are the second line), and HEAD answered like GET without a body.

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// Scripts and styles only from this site (`/static/live.js`, `/static/style.css`), no inline ones; nobody may
/// frame the pages; forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// Whether a state-changing request says it comes from another site.
fn cross_site(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // No Origin (old browsers, scripts): the CSRF token decides.
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // `Origin: null` (a sandboxed frame, a redirect across sites) is another site too.
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    origin_host != host
}

pub async fn harden(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state_changing = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = if state_changing && cross_site(&req) {
        let refusal = HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("this request came from another site: use the forms of this one\n");
        req.into_response(refusal)
    } else {
        let head = req.method() == Method::HEAD;
        if head {
            req.head_mut().method = Method::GET;
        }
        let response = next.call(req).await?.map_into_boxed_body();
        if head {
            // The same status and headers as GET, without the body.
            response.map_body(|_, _| BoxBody::new(()))
        } else {
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    Ok(response)
}
