//! The `notify` block: who hears about a run's outcome, how, and on which outcomes.
//!
//! Separate from the connectors' settings because notifications are not part of a sync:
//! a notification that cannot be sent never fails the run (it is logged and recorded on the
//! run instead), so nothing here is needed to plan or apply.

use crate::config::{HttpOptions, Spanned};
use crate::secret::SecretRef;

#[derive(Debug, Clone)]
pub struct Notify {
    pub emails: Vec<EmailNotice>,
    pub webhooks: Vec<Webhook>,
    /// The outcomes that send; `on` absent means `"held" "failure"`.
    pub on: Vec<NotifyOn>,
    /// `timeout`, `ca-file` and `proxy` for the webhooks.
    pub http: HttpOptions,
}

/// `on "changes" "held" "failure"` or `on "always"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyOn {
    /// Changes were planned (plan) or applied (apply, sync).
    Changes,
    /// A cap holds actions: a human must look.
    Held,
    /// The run failed, was refused by a safety check, or an action failed.
    Failure,
    /// Every run, including those with nothing to do.
    Always,
}

impl NotifyOn {
    pub const DEFAULT: [NotifyOn; 2] = [NotifyOn::Held, NotifyOn::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Changes => "changes",
            NotifyOn::Held => "held",
            NotifyOn::Failure => "failure",
            NotifyOn::Always => "always",
        }
    }
}

/// `email "it-ops@example.com" smtp="smtp.example.com:587" from="roster@example.com"`.
#[derive(Debug, Clone)]
pub struct EmailNotice {
    /// The recipients (the node's arguments).
    pub to: Vec<Spanned<String>>,
    pub from: Spanned<String>,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `ca-file=`: PEM certificates trusted for the SMTP server besides the system roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// `smtp-user` and `smtp-password`, in the email node's block: SMTP AUTH.
    pub user: Option<Spanned<String>>,
    pub password: Option<Spanned<SecretRef>>,
}

/// How the SMTP connection is protected (`tls=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `tls="starttls"` (the default, except on port 465): plain connection upgraded with
    /// STARTTLS, which is required; a server that does not offer it is an error, never a
    /// plaintext fallback.
    StartTls,
    /// `tls="tls"` (the default on port 465): TLS from the first byte ("SMTPS").
    Tls,
    /// `tls="none"`: no encryption, for a relay on the same host or network.
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }
}

/// `webhook "https://hooks.example.com/roster"`, or `webhook env="SLACK_WEBHOOK_URL"` for a
/// URL that carries a token.
#[derive(Debug, Clone)]
pub enum Webhook {
    Url(Spanned<String>),
    Secret(Spanned<SecretRef>),
}
