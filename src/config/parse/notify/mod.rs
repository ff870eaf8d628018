//! The `notify` block: `email`, `webhook` and `on` nodes, and the HTTP options webhooks use.

use kdl::{KdlDocument, KdlNode, KdlValue};

use super::checker::{Block, Checker, Children, ProblemKind, optional};
use super::http::with_http_nodes;
use crate::config::{EmailNotice, Notify, NotifyOn, SmtpTls, Spanned, Webhook};

pub(super) const NOTIFY: Block = Block {
    place: "in `notify`",
    name: "notify",
    nodes: with_http_nodes!["email", "webhook", "on"],
    repeatable: &["email", "webhook"],
};

/// The block of an `email` node: SMTP AUTH.
pub(super) const EMAIL: Block = Block {
    place: "in `email`",
    name: "email",
    nodes: &["smtp-user", "smtp-password"],
    repeatable: &[],
};

const EMAIL_EXAMPLE: &str =
    "email \"it-ops@example.com\" smtp=\"smtp.example.com:587\" from=\"roster@example.com\"";
const WEBHOOK_EXAMPLE: &str = "webhook \"https://hooks.example.com/roster\"";
const ON_EXAMPLE: &str = "on \"changes\" \"held\" \"failure\"";
const ON_WORDS: &[(&str, NotifyOn)] = &[
    ("changes", NotifyOn::Changes),
    ("held", NotifyOn::Held),
    ("failure", NotifyOn::Failure),
    ("always", NotifyOn::Always),
];
const TLS_WORDS: &[(&str, SmtpTls)] = &[
    ("starttls", SmtpTls::StartTls),
    ("tls", SmtpTls::Tls),
    ("none", SmtpTls::None),
];

impl Checker<'_> {
    /// `notify { ... }`, when the config has one.
    pub(super) fn notify(&mut self, top: &Children) -> Option<Option<Notify>> {
        let Some(node) = top.get("notify") else {
            return Some(None);
        };
        let entries = self.entries(node, &[]);
        self.no_args(node, &entries.args);
        let doc = self.block(node, "notify")?;
        self.notify_block(node, doc).map(Some)
    }

    fn notify_block(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<Notify> {
        let c = self.children(Some(node), Some(doc), &NOTIFY);
        let emails: Vec<_> = c.all("email").map(|n| self.email(n)).collect();
        let webhooks: Vec<_> = c.all("webhook").map(|n| self.webhook(n)).collect();
        let on = c.get("on").map(|n| self.notify_on(n));
        let http = self.http_options(&c);
        if emails.is_empty() && webhooks.is_empty() {
            self.report(
                ProblemKind::MissingNode,
                node.name().span(),
                "`notify` names nobody to notify",
            )
            .label("no `email` or `webhook` in this block")
            .help(format!(
                "add one, for example: {EMAIL_EXAMPLE} or {WEBHOOK_EXAMPLE}"
            ));
            return None;
        }
        Some(Notify {
            emails: emails.into_iter().collect::<Option<_>>()?,
            webhooks: webhooks.into_iter().collect::<Option<_>>()?,
            on: match on {
                Some(on) => on?,
                None => NotifyOn::DEFAULT.to_vec(),
            },
            http: http?,
        })
    }

    fn email(&mut self, node: &KdlNode) -> Option<EmailNotice> {
        let entries = self.entries(node, &["smtp", "from", "tls", "ca-file"]);
        let to: Vec<_> = entries
            .args
            .iter()
            .map(|e| self.address(node, e.value(), e))
            .collect();
        if to.is_empty() {
            self.one_arg(node, &[], EMAIL_EXAMPLE);
        }
        let smtp = match entries.props.get("smtp") {
            Some(entry) => self.smtp_server(node, entry),
            None => {
                self.missing_property(node, "smtp", "smtp=\"smtp.example.com:587\"");
                None
            }
        };
        let from = match entries.props.get("from") {
            Some(entry) => self.address(node, entry.value(), entry),
            None => {
                self.missing_property(node, "from", "from=\"roster@example.com\"");
                None
            }
        };
        let tls = match entries.props.get("tls") {
            Some(entry) => self.tls_mode(node, entry),
            None => Some(match &smtp {
                Some((_, 465)) => SmtpTls::Tls,
                _ => SmtpTls::StartTls,
            }),
        };
        let ca_file = match entries.props.get("ca-file") {
            Some(entry) => {
                let path = self.string(node, entry);
                Some(path.and_then(|p| self.path(&p, "ca-file")))
            }
            None => None,
        };
        let (user, password) = self.smtp_auth(node)?;
        let (host, port) = smtp?;
        Some(EmailNotice {
            to: to.into_iter().collect::<Option<_>>()?,
            from: from?,
            host,
            port,
            tls: tls?,
            ca_file: optional(ca_file)?,
            user,
            password,
        })
    }

    /// `smtp-user` and `smtp-password` in the email node's block: both or neither.
    #[allow(clippy::type_complexity)]
    fn smtp_auth(
        &mut self,
        node: &KdlNode,
    ) -> Option<(
        Option<Spanned<String>>,
        Option<Spanned<crate::secret::SecretRef>>,
    )> {
        let Some(doc) = node.children() else {
            return Some((None, None));
        };
        let c = self.children(Some(node), Some(doc), &EMAIL);
        let user_node = c.get("smtp-user");
        let password_node = c.get("smtp-password");
        let user = user_node.map(|n| {
            let entry = self.leaf(n, "smtp-user \"roster\"")?;
            self.name_string(n, entry)
        });
        let password = password_node.map(|n| self.secret(n));
        match (user_node, password_node) {
            (Some(user), None) => {
                self.given_without(
                    user,
                    "smtp-password",
                    "no password for this SMTP user",
                    "add smtp-password env=\"SMTP_PASSWORD\" (or file=\"PATH\") beside it",
                );
                None
            }
            (None, Some(password)) => {
                self.given_without(
                    password,
                    "smtp-user",
                    "no SMTP user for this password",
                    "add smtp-user \"NAME\" beside it",
                );
                None
            }
            _ => Some((optional(user)?, optional(password)?)),
        }
    }

    fn missing_property(&mut self, node: &KdlNode, prop: &str, example: &str) {
        self.report(
            ProblemKind::MissingValue,
            node.name().span(),
            format!("`{}` has no `{prop}=`", node.name().value()),
        )
        .label(format!("needs {prop}="))
        .help(format!(
            "write it like this: {EMAIL_EXAMPLE} (here: {example})"
        ));
    }

    /// An email address: something@somewhere, no spaces or angle brackets.
    fn address(
        &mut self,
        node: &KdlNode,
        value: &KdlValue,
        entry: &kdl::KdlEntry,
    ) -> Option<Spanned<String>> {
        let text = match value {
            KdlValue::String(s) => s.clone(),
            other => {
                self.wrong_type(node, entry, other, "a string")
                    .help("put the address in double quotes");
                return None;
            }
        };
        let valid = text.parse::<lettre::Address>().is_ok();
        if !valid {
            self.report(
                ProblemKind::InvalidValue,
                entry.span(),
                format!("{text:?} is not an email address"),
            )
            .label("not an address")
            .help("write a plain address such as it-ops@example.com");
            return None;
        }
        Some(Spanned::new(text, entry.span()))
    }

    /// `smtp="host:port"` (the port is required: 587 for STARTTLS, 465 for TLS, 25 for a relay).
    fn smtp_server(&mut self, node: &KdlNode, entry: &kdl::KdlEntry) -> Option<(String, u16)> {
        let value = self.string(node, entry)?;
        let parsed = value
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .filter(|(host, port)| {
                !host.is_empty() && *port > 0 && !host.contains(['/', ' ', '@'])
            });
        match parsed {
            Some((host, port)) => Some((host.trim_matches(['[', ']']).to_string(), port)),
            None => {
                self.report(
                    ProblemKind::InvalidValue,
                    entry.span(),
                    format!("`smtp=` is {:?}, not a host and port", value.as_str()),
                )
                .label("expected host:port")
                .help("write it like this: smtp=\"smtp.example.com:587\" (465 for implicit TLS, 25 for a local relay)");
                None
            }
        }
    }

    fn tls_mode(&mut self, node: &KdlNode, entry: &kdl::KdlEntry) -> Option<SmtpTls> {
        let value = self.string(node, entry)?;
        if let Some((_, mode)) = TLS_WORDS.iter().find(|(w, _)| *w == value.as_str()) {
            return Some(*mode);
        }
        let names: Vec<&str> = TLS_WORDS.iter().map(|(w, _)| *w).collect();
        self.unknown_value(
            entry.span(),
            &value,
            &names,
            format!("unknown tls \"{}\"", value.as_str()),
            "not a valid tls".into(),
            "`tls=` is one of \"starttls\" (the default), \"tls\" (implicit TLS, port 465), \"none\""
                .into(),
        );
        None
    }

    /// `webhook "https://..."` or `webhook env="NAME"` / `file="PATH"`.
    fn webhook(&mut self, node: &KdlNode) -> Option<Webhook> {
        let by_reference = node
            .entries()
            .iter()
            .any(|e| matches!(e.name().map(|n| n.value()), Some("env" | "file")));
        if by_reference {
            return self.secret(node).map(Webhook::Secret);
        }
        self.no_children(node);
        let url = self.url(node, &["https://", "http://"], WEBHOOK_EXAMPLE)?;
        if url.contains(char::is_whitespace) {
            self.report(
                ProblemKind::InvalidValue,
                url.span,
                "`webhook` has spaces in its URL",
            )
            .label("not a URL")
            .help(format!(
                "write it like this: {WEBHOOK_EXAMPLE}, or take a URL that carries a token \
                 from the environment: webhook env=\"SLACK_WEBHOOK_URL\""
            ));
            return None;
        }
        Some(Webhook::Url(url))
    }

    fn notify_on(&mut self, node: &KdlNode) -> Option<Vec<NotifyOn>> {
        self.no_children(node);
        let entries = self.entries(node, &[]);
        if entries.args.is_empty() {
            self.one_arg(node, &[], ON_EXAMPLE);
            return None;
        }
        let names: Vec<&str> = ON_WORDS.iter().map(|(w, _)| *w).collect();
        let mut on = Vec::new();
        let mut ok = true;
        for entry in &entries.args {
            let Some(value) = self.string(node, entry) else {
                ok = false;
                continue;
            };
            match ON_WORDS.iter().find(|(w, _)| *w == value.as_str()) {
                Some((_, event)) => {
                    if !on.contains(event) {
                        on.push(*event);
                    }
                }
                None => {
                    ok = false;
                    self.unknown_value(
                        entry.span(),
                        &value,
                        &names,
                        format!("unknown notify event \"{}\"", value.as_str()),
                        "not a notify event".into(),
                        "`on` takes \"changes\", \"held\", \"failure\", or \"always\"".into(),
                    );
                }
            }
        }
        ok.then_some(on)
    }
}

#[cfg(test)]
mod tests;
