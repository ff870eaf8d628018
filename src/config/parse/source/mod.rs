//! The `source` block: which kind of source, and the settings of the LDAP and file sources.
//!
//! The REST sources (`rest.rs` for ServiceNow and Freshservice, `rest_api.rs` for any JSON
//! API) and the Active Directory settings of the LDAP block
//! (`active_directory.rs`) are children, each kind of source reading as one piece.

use kdl::{KdlDocument, KdlNode};

use super::checker::{Block, Checker, Children, ProblemKind, optional};
use super::values::{PAGE_SIZE, TIMEOUT};
use crate::config::{CsvSource, LdapSource, LdifSource, SourceConfig, Spanned};

mod active_directory;
mod cherwell;
mod rest;
mod rest_api;

pub(super) use cherwell::CHERWELL;
pub(super) use rest::{FRESHSERVICE, SERVICENOW};
pub(super) use rest_api::{AUTH_API_KEY, AUTH_BASIC, AUTH_BEARER, AUTH_OAUTH, REST};

pub(super) const SOURCE_TYPES: &[&str] = &[
    "ldap",
    "csv",
    "ldif",
    "servicenow",
    "freshservice",
    "rest",
    "cherwell",
];

pub(super) const LDAP: Block = Block {
    place: "in `source \"ldap\"`",
    name: "source \"ldap\"",
    nodes: &[
        "url",
        "starttls",
        "ca-file",
        "tls-insecure-skip-verify",
        "bind-dn",
        "bind-password",
        "base-dn",
        "filter",
        "page-size",
        "timeout",
        "active-directory",
        "disabled",
        "follow-referrals",
    ],
    repeatable: &[],
};

pub(super) const CSV: Block = Block {
    place: "in `source \"csv\"`",
    name: "source \"csv\"",
    nodes: &["path", "delimiter"],
    repeatable: &[],
};

pub(super) const LDIF: Block = Block {
    place: "in `source \"ldif\"`",
    name: "source \"ldif\"",
    nodes: &["path"],
    repeatable: &[],
};

pub(super) const DELIMITER_HELP: &str =
    "`delimiter` is one character such as \",\" or \";\", or \"tab\"";

impl Checker<'_> {
    /// `source "ldap" { ... }`
    pub(super) fn source(&mut self, top: &Children) -> Option<SourceConfig> {
        let node = self.require(
            top,
            None,
            "source",
            "source \"ldap\" { url \"ldaps://dc1.example.com:636\" ... }",
        )?;
        let kind = self.block_type(node, SOURCE_TYPES, "source")?;
        let children = self.block(node, &format!("source \"{kind}\""))?;
        match kind.as_str() {
            "csv" => self.csv(node, children).map(SourceConfig::Csv),
            "ldif" => self.ldif(node, children).map(SourceConfig::Ldif),
            "servicenow" => self
                .servicenow(node, children)
                .map(SourceConfig::ServiceNow),
            "freshservice" => self
                .freshservice(node, children)
                .map(SourceConfig::Freshservice),
            "rest" => self.rest_api(node, children).map(SourceConfig::Rest),
            "cherwell" => self.cherwell(node, children).map(SourceConfig::Cherwell),
            _ => self.ldap(node, children).map(SourceConfig::Ldap),
        }
    }

    pub(super) fn ldap(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LdapSource> {
        const URL: &str = "url \"ldaps://dc1.example.com:636\"";
        let c = self.children(Some(node), Some(doc), &LDAP);
        let url_node = self.require(&c, Some(node), "url", URL);
        let url = url_node.and_then(|n| self.url(n, &["ldap://", "ldaps://"], URL));
        let starttls = c.get("starttls").map(|n| (n, self.leaf_bool(n)));
        if let (Some(url), Some((starttls_node, Some(true)))) = (&url, starttls) {
            if url.to_ascii_lowercase().starts_with("ldaps://") {
                let value = starttls_node.entries().iter().find(|e| e.name().is_none());
                self.report(
                    ProblemKind::InvalidValue,
                    value.map_or(starttls_node.name().span(), |e| e.span()),
                    "`starttls` cannot be used with an ldaps:// URL",
                )
                .label("conflicts with the ldaps:// URL")
                .help("ldaps:// is TLS from the start: use starttls only with an ldap:// URL");
            }
        }
        let ca_file = c
            .get("ca-file")
            .map(|n| self.leaf_path(n, "ca-file \"/etc/ssl/corp-ca.pem\""));
        if let Some(n) = c.get("tls-insecure-skip-verify") {
            // Kept in the schema only to say why it is gone (ARCHITECTURE.md, decisions).
            self.report(
                ProblemKind::Unsupported,
                n.span(),
                "`tls-insecure-skip-verify` is not supported: roster always verifies the \
                 directory's certificate",
            )
            .label("remove this node")
            .help(
                "give the CA that signed the server's certificate with ca-file \"PATH\"; an \
                 unverified connection would let anyone on the path decide who gets accounts",
            );
        }
        let bind_dn_node = c.get("bind-dn");
        let bind_dn = bind_dn_node.map(|n| {
            let entry = self.leaf(n, "bind-dn \"cn=sync,ou=Service,dc=example,dc=com\"")?;
            self.name_string(n, entry)
        });
        let password_node = c.get("bind-password");
        let bind_password = password_node.map(|n| self.secret(n));
        match (bind_dn_node, password_node) {
            (Some(dn), None) => self.given_without(
                dn,
                "bind-password",
                "no password for this bind DN",
                "add bind-password env=\"LDAP_BIND_PASSWORD\" (or file=\"PATH\"), or remove bind-dn to bind anonymously",
            ),
            (None, Some(password)) => self.given_without(
                password,
                "bind-dn",
                "password for no bind DN",
                "add bind-dn \"cn=sync,ou=Service,dc=example,dc=com\", or remove bind-password",
            ),
            _ => {}
        }
        let base_dns = self
            .require(
                &c,
                Some(node),
                "base-dn",
                "base-dn \"ou=People,dc=example,dc=com\"",
            )
            .map(|n| self.base_dns(n));
        let filter = c.get("filter").map(|n| self.filter(n));
        let page_size = c
            .get("page-size")
            .map(|n| self.leaf_whole(n, &PAGE_SIZE, "page-size 500"));
        let timeout = c
            .get("timeout")
            .map(|n| self.leaf_whole(n, &TIMEOUT, "timeout 30"));
        let (active_directory, follow_referrals) = self.active_directory(&c);

        Some(LdapSource {
            url: url?,
            starttls: starttls.map(|(_, b)| b).unwrap_or(Some(false))?,
            ca_file: optional(ca_file)?,
            bind_dn: optional(bind_dn)?,
            bind_password: optional(bind_password)?,
            base_dns: base_dns??,
            filter: filter.unwrap_or_else(|| {
                Some(Spanned::new(
                    "(objectClass=*)".to_string(),
                    node.name().span(),
                ))
            })?,
            page_size: page_size.unwrap_or(Some(500))? as u32,
            timeout_secs: timeout.unwrap_or(Some(30))? as u64,
            active_directory: active_directory?,
            follow_referrals: follow_referrals?,
        })
    }

    pub(super) fn base_dns(&mut self, node: &KdlNode) -> Option<Vec<Spanned<String>>> {
        self.names(node, "base-dn \"ou=People,dc=example,dc=com\"")
    }

    pub(super) fn filter(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        let value = self.leaf_string(node, "filter \"(objectClass=inetOrgPerson)\"")?;
        if let Err(why) = check_filter(&value) {
            self.report(
                ProblemKind::InvalidValue,
                value.span,
                format!("`filter` is not a valid LDAP filter: {why}"),
            )
            .label(why)
            .help("an LDAP filter is wrapped in parentheses, like (&(objectClass=person)(uid=*))");
            return None;
        }
        Some(value)
    }

    pub(super) fn csv(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<CsvSource> {
        const PATH: &str = "path \"people.csv\"";
        let c = self.children(Some(node), Some(doc), &CSV);
        let path = self
            .require(&c, Some(node), "path", PATH)
            .map(|n| self.leaf_path(n, PATH));
        let delimiter = c.get("delimiter").map(|n| self.delimiter(n));
        Some(CsvSource {
            path: path??,
            delimiter: delimiter.unwrap_or(Some(b','))?,
        })
    }

    pub(super) fn ldif(&mut self, node: &KdlNode, doc: &KdlDocument) -> Option<LdifSource> {
        const PATH: &str = "path \"export.ldif\"";
        let c = self.children(Some(node), Some(doc), &LDIF);
        let path = self
            .require(&c, Some(node), "path", PATH)
            .map(|n| self.leaf_path(n, PATH));
        Some(LdifSource { path: path?? })
    }

    /// `delimiter ";"`: one ASCII character that cannot be confused with CSV's quoting or
    /// line ends; `"tab"` (or a written `\t`) for tab-separated files.
    pub(super) fn delimiter(&mut self, node: &KdlNode) -> Option<u8> {
        let value = self.leaf_string(node, "delimiter \";\"")?;
        let why = match value.as_bytes() {
            b"tab" | b"\\t" => return Some(b'\t'),
            [b'"'] => "the double quote is CSV's quoting character",
            [b'\n' | b'\r'] => "a line end separates records, not fields",
            [byte] => return Some(*byte),
            [] => "it is empty",
            _ if value.chars().count() == 1 => "it is not an ASCII character",
            _ => "it is more than one character",
        };
        self.report(
            ProblemKind::InvalidValue,
            value.span,
            format!(
                "`delimiter` \"{}\" cannot be used: {why}",
                value.as_str().escape_debug()
            ),
        )
        .label("not a delimiter")
        .help(DELIMITER_HELP);
        None
    }
}

/// Checks that an LDAP filter is wrapped in parentheses that balance.
pub(super) fn check_filter(filter: &str) -> Result<(), String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Err("the filter is empty".to_string());
    }
    if !filter.starts_with('(') || !filter.ends_with(')') {
        return Err("not wrapped in parentheses".to_string());
    }
    let mut depth = 0usize;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err("a `)` has no matching `(`".to_string()),
            ')' => depth -= 1,
            _ => {}
        }
    }
    match depth {
        0 => Ok(()),
        1 => Err("1 `(` is not closed".to_string()),
        n => Err(format!("{n} `(` are not closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn filters() {
        assert!(check_filter("(objectClass=*)").is_ok());
        assert!(check_filter("(&(objectClass=person)(|(uid=a)(uid=b)))").is_ok());
        assert_eq!(
            check_filter("objectClass=*"),
            Err("not wrapped in parentheses".into())
        );
        assert_eq!(check_filter("(&(a=b)"), Err("1 `(` is not closed".into()));
        assert_eq!(
            check_filter("(a=b))(c=d)"),
            Err("a `)` has no matching `(`".into())
        );
        assert_eq!(check_filter(" "), Err("the filter is empty".into()));
    }
}
