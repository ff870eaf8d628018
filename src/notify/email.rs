//! Email over SMTP, through lettre's blocking transport and rustls (system roots).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::RunReport;
use crate::config::{EmailNotice, SmtpTls};
use crate::http::{Scrubber, error_chain};
use crate::store::{Channel, Delivery};

/// How long one SMTP exchange may take: a dead mail server must not keep a schedule waiting.
const TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn send(notice: &EmailNotice, report: &RunReport) -> Delivery {
    let to = notice
        .to
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let scrubber = Scrubber::new();
    let error = deliver(notice, report, &scrubber)
        .err()
        .map(|e| scrubber.scrub(&e));
    Delivery {
        channel: Channel::Email,
        to,
        error,
    }
}

fn deliver(notice: &EmailNotice, report: &RunReport, scrubber: &Scrubber) -> Result<(), String> {
    let mailbox = |address: &str| {
        address
            .parse::<Mailbox>()
            .map_err(|e| format!("{address:?} is not an email address: {e}"))
    };
    let mut message = Message::builder()
        .from(mailbox(&notice.from)?)
        .subject(report.subject());
    for to in &notice.to {
        message = message.to(mailbox(to)?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(report.email_body())
        .map_err(|e| format!("cannot build the message: {e}"))?;

    let server = format!("{}:{}", notice.host, notice.port);
    let tls = |mode: fn(TlsParameters) -> Tls| {
        let mut params = TlsParameters::builder(notice.host.clone());
        if let Some(ca_file) = &notice.ca_file {
            let pem = std::fs::read(ca_file)
                .map_err(|e| format!("cannot read ca-file {}: {e}", ca_file.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!("ca-file {} is not PEM certificates: {e}", ca_file.display())
            })?;
            params = params.add_root_certificate(cert);
        }
        params
            .build()
            .map(mode)
            .map_err(|e| format!("SMTP server {server}: cannot set up TLS: {e}"))
    };
    let tls = match notice.tls {
        SmtpTls::StartTls => tls(Tls::Required)?,
        SmtpTls::Tls => tls(Tls::Wrapper)?,
        SmtpTls::None => Tls::None,
    };
    let mut builder = SmtpTransport::builder_dangerous(&notice.host)
        .port(notice.port)
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&notice.user, &notice.password) {
        let password = password
            .resolve()
            .map_err(|e| format!("smtp-password: {e}"))?;
        scrubber.learn(&password);
        scrubber.learn_basic(user, password.expose());
        builder = builder.credentials(Credentials::new(
            user.value.clone(),
            password.expose().to_string(),
        ));
    }
    builder.build().send(&message).map(|_| ()).map_err(|e| {
        format!(
            "SMTP server {server} ({}): {}",
            notice.tls.as_str(),
            error_chain(&e)
        )
    })
}
