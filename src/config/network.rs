//! `[site] id`, `[forward]` and `[hq]`: how a site names itself to the network, the NATS JetStream cluster its
//! events are forwarded to, and the network view's side of the same stream.

use super::errors::Problem;
use super::raw::{RawForward, RawHq};
use super::validate::duration;
use super::{Secret, resolve};
use serde_spanned::Spanned;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_STREAM: &str = "GATEHOUSE";
const DEFAULT_SUBJECT: &str = "gatehouse.{site}.events";
const DEFAULT_SUBJECTS: &str = "gatehouse.*.events";
const DEFAULT_DURABLE: &str = "gatehouse-hq";
const DEFAULT_REPLICAS: usize = 3;
const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(90 * 24 * 3600);

/// How to reach and sign in to a NATS cluster.
#[derive(Debug, Clone)]
pub struct NatsConnection {
    /// Seed servers (`nats://host:4222`); the client learns the rest of the cluster from them.
    pub servers: Vec<String>,
    pub credentials: NatsCredentials,
}

#[derive(Debug, Clone)]
pub enum NatsCredentials {
    None,
    UserPassword {
        username: String,
        password: Secret<String>,
    },
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes it.
    CredsFile(PathBuf),
}

/// `[forward]`: every journal event goes to `subject` of `stream`.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub nats: NatsConnection,
    pub stream: String,
    /// With `{site}` already replaced by the site's id.
    pub subject: String,
    /// Copies of the stream the cluster keeps (created with this when missing).
    pub replicas: usize,
    /// How long the stream keeps a message (`max_age` when created).
    pub keep_for: Duration,
    /// How often a heartbeat tells consumers how far the site has got: 30 s (SPEC §5), not a config key; tests
    /// shorten it.
    pub heartbeat_every: Duration,
}

/// `[hq]`: the network view's durable consumer of every site's subject.
#[derive(Debug, Clone)]
pub struct HqConfig {
    pub nats: NatsConnection,
    pub stream: String,
    pub subjects: String,
    pub durable: String,
}

/// A site id: what names the site in forwarded events and NATS subjects.
pub(super) fn site_id(value: Spanned<String>) -> Result<String, Problem> {
    let id = value.get_ref();
    let valid = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(value.into_inner())
    } else {
        Err(Problem::at(
            value.span(),
            format!("invalid site id {id:?}: expected 1 to 32 of a-z, 0-9 and -"),
        ))
    }
}

pub(super) fn build_forward(
    raw: Spanned<RawForward>,
    site_id: Option<&str>,
    base_dir: &Path,
) -> Result<ForwardConfig, Problem> {
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(site) = site_id else {
        return Err(Problem::at(
            span,
            "[forward] needs the site's id: add id = \"…\" (a-z, 0-9, -) to [site]",
        ));
    };
    let nats = connection(
        raw.nats,
        raw.username,
        raw.password,
        raw.creds_file,
        span,
        "[forward]",
        base_dir,
    )?;
    let subject = match raw.subject {
        None => DEFAULT_SUBJECT.to_owned(),
        Some(subject) if !subject.get_ref().contains("{site}") => {
            return Err(Problem::at(
                subject.span(),
                format!(
                    "[forward] subject {:?} must contain {{site}}: each site resumes from its own subject's last message",
                    subject.get_ref()
                ),
            ));
        }
        Some(subject) => subject_text(subject, "subject")?,
    };
    let replicas = match raw.replicas {
        None => DEFAULT_REPLICAS,
        Some(value) => usize::try_from(*value.get_ref())
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| {
                Problem::at(
                    value.span(),
                    format!("invalid replicas {}: expected 1 to 5", value.get_ref()),
                )
            })?,
    };
    Ok(ForwardConfig {
        nats,
        stream: stream_name(raw.stream)?,
        subject: subject.replace("{site}", site),
        replicas,
        keep_for: match raw.keep_for {
            None => DEFAULT_KEEP_FOR,
            Some(value) => duration(&value, "keep_for")?,
        },
        heartbeat_every: Duration::from_secs(30),
    })
}

pub(super) fn build_hq(raw: Spanned<RawHq>, base_dir: &Path) -> Result<HqConfig, Problem> {
    let span = raw.span();
    let raw = raw.into_inner();
    Ok(HqConfig {
        nats: connection(
            raw.nats,
            raw.username,
            raw.password,
            raw.creds_file,
            span,
            "[hq]",
            base_dir,
        )?,
        stream: stream_name(raw.stream)?,
        subjects: match raw.subjects {
            None => DEFAULT_SUBJECTS.to_owned(),
            Some(subjects) => subject_text(subjects, "subjects")?,
        },
        durable: match raw.durable {
            None => DEFAULT_DURABLE.to_owned(),
            Some(durable) => name(durable, "durable")?,
        },
    })
}

fn connection(
    servers: Option<Spanned<Vec<String>>>,
    username: Option<String>,
    password: Option<String>,
    creds_file: Option<Spanned<String>>,
    table_span: std::ops::Range<usize>,
    table: &str,
    base_dir: &Path,
) -> Result<NatsConnection, Problem> {
    let Some(servers) = servers else {
        return Err(Problem::at(
            table_span,
            format!("{table} needs nats = [\"nats://host:4222\", …]: the cluster's servers"),
        ));
    };
    let span = servers.span();
    let servers = servers.into_inner();
    if servers.is_empty() {
        return Err(Problem::at(span, format!("{table} nats lists no server")));
    }
    if let Some(bad) = servers
        .iter()
        .find(|s| !(s.starts_with("nats://") || s.starts_with("tls://")) || s.contains(char::is_whitespace))
    {
        return Err(Problem::at(
            span,
            format!("invalid NATS server {bad:?} in {table}: expected nats://host:port or tls://host:port"),
        ));
    }
    let credentials = match (username, password, creds_file) {
        (None, None, None) => NatsCredentials::None,
        (Some(username), Some(password), None) => NatsCredentials::UserPassword {
            username,
            password: Secret::new(password),
        },
        (None, None, Some(file)) => NatsCredentials::CredsFile(resolve(base_dir, file.get_ref())),
        _ => {
            return Err(Problem::at(
                table_span,
                format!("{table}: give username and password together, or creds_file alone"),
            ));
        }
    };
    Ok(NatsConnection { servers, credentials })
}

fn stream_name(value: Option<Spanned<String>>) -> Result<String, Problem> {
    match value {
        None => Ok(DEFAULT_STREAM.to_owned()),
        Some(value) => name(value, "stream"),
    }
}

/// A JetStream stream or consumer name: no spaces, dots, wildcards or path separators.
fn name(value: Spanned<String>, key: &str) -> Result<String, Problem> {
    let text = value.get_ref();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(value.into_inner())
    } else {
        Err(Problem::at(
            value.span(),
            format!("invalid {key} {text:?}: expected letters, digits, - and _"),
        ))
    }
}

/// A NATS subject: dot-separated tokens, no spaces, no empty token.
fn subject_text(value: Spanned<String>, key: &str) -> Result<String, Problem> {
    let text = value.get_ref();
    let valid = !text.is_empty() && !text.contains(char::is_whitespace) && text.split('.').all(|t| !t.is_empty());
    if valid {
        Ok(value.into_inner())
    } else {
        Err(Problem::at(
            value.span(),
            format!("invalid {key} {text:?}: expected dot-separated tokens like gatehouse.{{site}}.events"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TURNSTILE_T1, error, parse};
    use std::time::Duration;

    #[test]
    fn forwarding_takes_the_documented_defaults_and_names_the_site_in_its_subject() {
        let config = parse("[site]\nid = \"central\"\n[forward]\nnats = [\"nats://127.0.0.1:4222\"]\n").unwrap();
        let forward = config.forward.unwrap();
        assert_eq!(forward.stream, "GATEHOUSE");
        assert_eq!(forward.subject, "gatehouse.central.events");
        assert_eq!(forward.replicas, 3);
        assert_eq!(forward.keep_for, Duration::from_secs(90 * 86400));
        assert_eq!(forward.heartbeat_every, Duration::from_secs(30));
    }

    #[test]
    fn forwarding_needs_a_site_id_and_servers() {
        assert_eq!(
            error("[forward]\nnats = [\"nats://127.0.0.1:4222\"]\n"),
            "config.toml:1:1: [forward] needs the site's id: add id = \"…\" (a-z, 0-9, -) to [site]"
        );
        assert_eq!(
            error("[site]\nid = \"Central Station\"\n"),
            "config.toml:2:6: invalid site id \"Central Station\": expected 1 to 32 of a-z, 0-9 and -"
        );
        assert!(error("[site]\nid = \"c\"\n[forward]\nreplicas = 3\n").contains("[forward] needs nats = ["));
        assert!(
            error("[site]\nid = \"c\"\n[forward]\nnats = [\"nats://x:4222\"]\nsubject = \"all.events\"\n")
                .contains("must contain {site}")
        );
        assert!(error("[site]\nid = \"c\"\n[forward]\nnats = [\"http://x:4222\"]\n").contains("invalid NATS server"));
        assert!(
            error("[site]\nid = \"c\"\n[forward]\nnats = [\"nats://x:4222\"]\nusername = \"u\"\n")
                .contains("give username and password together")
        );
    }

    #[test]
    fn an_hq_config_has_no_devices() {
        let hq = parse("[hq]\nnats = [\"nats://127.0.0.1:4222\"]\n").unwrap().hq.unwrap();
        assert_eq!(
            (hq.stream.as_str(), hq.subjects.as_str(), hq.durable.as_str()),
            ("GATEHOUSE", "gatehouse.*.events", "gatehouse-hq")
        );
        let text = format!("[hq]\nnats = [\"nats://127.0.0.1:4222\"]\n{TURNSTILE_T1}");
        assert!(error(&text).contains("[hq] configures the network view, which has no devices: move device T1"));
    }
}
