//! Reaching a NATS JetStream cluster: the connection (seed servers, credentials, rustls on the binary's one
//! provider) and the stream the forwarders create when it is missing. Shared by the forwarder and `gatehouse hq`.

use crate::config::{NatsConnection, NatsCredentials};
use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// How long a JetStream request (a publish acknowledgement, a stream lookup) may take before it counts as failed
/// (and is retried with the same message id).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the cluster. The client then reconnects by itself (to any server it learnt of) for as long as the
/// program runs.
pub async fn connect(nats: &NatsConnection, name: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None);
    match &nats.credentials {
        NatsCredentials::None => {}
        NatsCredentials::UserPassword { username, password } => {
            options = options.user_and_password(username.clone(), password.expose().clone());
        }
        NatsCredentials::CredsFile(path) => {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("cannot read NATS credentials {}", path.display()))?;
        }
    }
    if nats.servers.iter().any(|s| s.starts_with("tls://")) {
        // The binary's one provider (ring) and the system's CAs, as for MQTT and webhooks.
        options = options
            .tls_client_config(crate::tls::client_config()?)
            .require_tls(true);
    }
    let servers = nats
        .servers
        .iter()
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .with_context(|| format!("invalid NATS server {s:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    options
        .connect(servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", nats.servers.join(", ")))
}

/// The JetStream context every request goes through.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client)
}

/// The stream settings a forwarder creates a missing stream with (SPEC §2).
pub struct StreamSettings<'a> {
    pub name: &'a str,
    /// The subject the caller publishes to, which the stream must take.
    pub publishes_to: &'a str,
    pub subjects: Vec<String>,
    pub replicas: usize,
    pub keep_for: Duration,
}

/// The stream, created with `settings` when missing. A stream that exists with other settings is used as it is;
/// the difference is logged (an operator chose it, or another site created it first).
pub async fn ensure_stream(js: &jetstream::Context, settings: &StreamSettings<'_>) -> anyhow::Result<stream::Stream> {
    match js.get_stream(settings.name).await {
        Ok(mut existing) => {
            let info = existing.info().await.context("cannot read the stream's settings")?;
            let config = &info.config;
            if config.num_replicas != settings.replicas
                || config.max_age != settings.keep_for
                || config.subjects != settings.subjects
            {
                tracing::info!(
                    stream = settings.name,
                    replicas = config.num_replicas,
                    keep_for = ?config.max_age,
                    subjects = ?config.subjects,
                    wanted_replicas = settings.replicas,
                    wanted_keep_for = ?settings.keep_for,
                    wanted_subjects = ?settings.subjects,
                    "the stream exists with other settings; using it as it is"
                );
            }
            if !config
                .subjects
                .iter()
                .any(|pattern| covers(pattern, settings.publishes_to))
            {
                anyhow::bail!(
                    "stream {} exists but takes {:?}, not {}: add the subject to the stream (or point [forward] \
                     stream at one that takes it)",
                    settings.name,
                    config.subjects,
                    settings.publishes_to
                );
            }
            Ok(existing)
        }
        Err(error) if is_not_found(&error) => {
            let created = js
                .create_stream(stream::Config {
                    name: settings.name.to_owned(),
                    subjects: settings.subjects.clone(),
                    storage: stream::StorageType::File,
                    num_replicas: settings.replicas,
                    max_age: settings.keep_for,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(stream) => {
                    tracing::info!(
                        stream = settings.name,
                        replicas = settings.replicas,
                        "created the stream"
                    );
                    Ok(stream)
                }
                // Another site may have created it a moment ago; if not, the creation's own error says why.
                Err(created) => js.get_stream(settings.name).await.map_err(|_| {
                    // A NATS user without `$JS.API.STREAM.CREATE.{stream}` sees its request time out (the
                    // server refuses it with a permissions violation only in its own log).
                    anyhow::anyhow!(
                        "cannot create stream {}: {created} (if this site's NATS user may not create streams, \
                             create it on the cluster first; see README, \"NATS permissions of a site\")",
                        settings.name
                    )
                }),
            }
        }
        Err(error) => Err(anyhow::anyhow!("cannot look up stream {}: {error}", settings.name)),
    }
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Whether a stream subject pattern (`*` one token, `>` the rest) takes `subject`.
pub fn covers(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for part in pattern.split('.') {
        match (part, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn stream_subjects_take_what_their_wildcards_say() {
        assert!(covers("gatehouse.*.events", "gatehouse.central.events"));
        assert!(covers("gatehouse.>", "gatehouse.central.events"));
        assert!(!covers("gatehouse.*.events", "gatehouse.central.other"));
        assert!(!covers("gatehouse.*", "gatehouse.central.events"));
        assert!(covers("a.b", "a.b") && !covers("a.b.c", "a.b"));
    }
}
