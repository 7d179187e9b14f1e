//! E-mail deliveries over SMTP with lettre: STARTTLS required for `smtp://`, TLS from the start for `smtps://`,
//! none for `smtp+plain://` (a local relay); plain-text and HTML parts; the delivery id as the Message-ID, so a
//! repeat after a crash is recognisable.

use super::dispatch::Outcome;
use super::message;
use crate::config::{EmailTarget, SmtpSecurity};
use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    pub fn new(target: &EmailTarget) -> anyhow::Result<Mailer> {
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut params = TlsParameters::builder(target.host.clone());
            if let Some(ca) = &target.ca_file {
                let pem = std::fs::read(ca).with_context(|| format!("{}: cannot read the CA file", ca.display()))?;
                params = params.add_root_certificate(
                    Certificate::from_pem(&pem).with_context(|| format!("{}: not a PEM certificate", ca.display()))?,
                );
            }
            Ok(params.build_rustls()?)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.host.clone())
            .port(target.port)
            .timeout(Some(ATTEMPT_TIMEOUT));
        builder = match target.security {
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Implicit => builder.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::Plain => builder.tls(Tls::None),
        };
        if let (Some(user), Some(password)) = (&target.username, &target.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: target.from.parse()?,
            to: target.to.iter().map(|to| to.parse()).collect::<Result<_, _>>()?,
        })
    }

    pub async fn deliver(&self, id: &str, document: &str) -> Outcome {
        let mail = match message::mail(document) {
            Ok(mail) => mail,
            Err(error) => return Outcome::Retry(error),
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject)
            .message_id(Some(format!("<{id}@gatehouse>")));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = match builder.multipart(MultiPart::alternative_plain_html(mail.text, mail.html)) {
            Ok(message) => message,
            Err(error) => return Outcome::Retry(format!("cannot build the e-mail: {error}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Delivered,
            Err(error) => Outcome::Retry(format!("smtp: {error}")),
        }
    }
}
