//! Webhook deliveries, signed the Standard Webhooks way: headers `webhook-id` (the same on every attempt),
//! `webhook-timestamp` (seconds, fresh each attempt) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
//! `id.timestamp.body` with the channel's key). Only a 2xx answer delivers; 410 Gone switches the channel off.

use super::dispatch::Outcome;
use base64::Engine;
use hmac::{Hmac, Mac};
use std::time::Duration;

/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The `webhook-signature` header's value for one attempt.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// One HTTP client for every webhook: rustls on the binary's one provider (ring), the system's CAs.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config()?)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

pub async fn deliver(client: &reqwest::Client, url: &str, key: &[u8], id: &str, body: &str) -> Outcome {
    let timestamp = jiff::Timestamp::now().as_second();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(key, id, timestamp, body))
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Outcome::Delivered,
        Ok(response) if response.status() == reqwest::StatusCode::GONE => {
            Outcome::Gone(format!("{url} answered {}", response.status()))
        }
        Ok(response) => Outcome::Retry(format!("{url} answered {}", response.status())),
        Err(error) => Outcome::Retry(format!("{url}: {}", error_chain(&error))),
    }
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its reference libraries' test vector).
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
