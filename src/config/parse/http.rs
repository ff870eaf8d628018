//! The nodes every HTTP connector takes besides its URL and credentials: `timeout`,
//! `ca-file`, `proxy`, `proxy-user` and `proxy-password`, read into `HttpOptions`.
//!
//! One reader for all of them, so that the SCIM target and the REST sources accept the same
//! nodes with the same checks; a connector added later names its block's nodes with
//! `with_http_nodes!` and reads them with `http_options`.

use kdl::KdlNode;

use super::checker::{Checker, Children, ProblemKind, optional};
use super::values::TIMEOUT;
use crate::config::{HttpOptions, Spanned};

/// The node names of a block of an HTTP connector: its own, then those `http_options` reads.
macro_rules! with_http_nodes {
    ($($node:literal),* $(,)?) => {
        &[$($node,)* "timeout", "ca-file", "proxy", "proxy-user", "proxy-password"]
    };
}
pub(super) use with_http_nodes;

const PROXY_SCHEMES: &[&str] = &["http://", "https://", "socks5://", "socks5h://"];
const PROXY_EXAMPLE: &str = "proxy \"http://proxy.example.com:3128\"";
const PROXY_USER_EXAMPLE: &str = "proxy-user \"sync\"";

impl Checker<'_> {
    /// The HTTP options of a block; `None` when one of them is invalid (already reported).
    pub(super) fn http_options(&mut self, c: &Children) -> Option<HttpOptions> {
        let timeout = c
            .get("timeout")
            .map(|n| self.leaf_whole(n, &TIMEOUT, "timeout 30"));
        let ca_file = c
            .get("ca-file")
            .map(|n| self.leaf_path(n, "ca-file \"/etc/ssl/corp-ca.pem\""));
        let proxy_node = c.get("proxy");
        let proxy = proxy_node.map(|n| self.proxy(n));
        let user_node = c.get("proxy-user");
        let proxy_user = user_node.map(|n| {
            let entry = self.leaf(n, PROXY_USER_EXAMPLE)?;
            self.name_string(n, entry)
        });
        let password_node = c.get("proxy-password");
        let proxy_password = password_node.map(|n| self.secret(n));
        // Each problem below is reported once, at the node that is given.
        let mut complete = true;
        match (user_node, password_node) {
            (Some(user), None) => {
                complete = false;
                self.given_without(
                    user,
                    "proxy-password",
                    "no password for this proxy user",
                    "add proxy-password env=\"PROXY_PASSWORD\" (or file=\"PATH\"), or remove proxy-user",
                );
            }
            (None, Some(password)) => {
                complete = false;
                self.given_without(
                    password,
                    "proxy-user",
                    "password for no proxy user",
                    format!(
                        "add the proxy's user ({PROXY_USER_EXAMPLE}), or remove proxy-password"
                    ),
                );
            }
            _ => {}
        }
        if proxy_node.is_none() {
            for login in [user_node, password_node].into_iter().flatten() {
                complete = false;
                let name = login.name().value();
                self.given_without(
                    login,
                    "proxy",
                    "no proxy to log in to",
                    format!("add the proxy ({PROXY_EXAMPLE}), or remove `{name}`"),
                );
            }
        }
        let options = HttpOptions {
            timeout_secs: timeout.unwrap_or(Some(30))? as u64,
            ca_file: optional(ca_file)?,
            proxy: optional(proxy)?,
            proxy_user: optional(proxy_user)?,
            proxy_password: optional(proxy_password)?,
        };
        complete.then_some(options)
    }

    /// `proxy "http://host:port"`: a scheme reqwest can proxy through, a host, an optional
    /// port, and nothing else. The proxy's login is never part of the URL: a password there
    /// would be a secret written inline.
    fn proxy(&mut self, node: &KdlNode) -> Option<Spanned<String>> {
        let value = self.url(node, PROXY_SCHEMES, PROXY_EXAMPLE)?;
        let Some(problem) = proxy_problem(&value) else {
            return Some(value);
        };
        match problem {
            ProxyProblem::InlinePassword => {
                self.secrets.push(value.span);
                self.report(
                    ProblemKind::InlineSecret,
                    value.span,
                    "`proxy` holds a password written inline",
                )
                .label("secret written here")
                .help("give the login as proxy-user \"NAME\" and proxy-password env=\"NAME\" or file=\"PATH\"");
            }
            ProxyProblem::User => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    "`proxy` names its user in the URL",
                )
                .label("user in the URL")
                .help(format!(
                    "give the user as {PROXY_USER_EXAMPLE}, and the URL without it"
                ));
            }
            ProxyProblem::Port => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    "`proxy` has a port that is not a number from 1 to 65535",
                )
                .label("bad port")
                .help(format!("write it like this: {PROXY_EXAMPLE}"));
            }
            ProxyProblem::Path => {
                self.report(
                    ProblemKind::InvalidValue,
                    value.span,
                    "`proxy` has a path, a query or a fragment",
                )
                .label("more than a host and port")
                .help(format!(
                    "a proxy is a scheme, a host and a port: {PROXY_EXAMPLE}"
                ));
            }
        }
        None
    }
}

/// What is wrong with a proxy URL whose scheme and host `Checker::url` has accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyProblem {
    /// `http://user:password@host`.
    InlinePassword,
    /// `http://user@host`.
    User,
    Port,
    Path,
}

fn proxy_problem(url: &str) -> Option<ProxyProblem> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    if let Some((login, _)) = authority.rsplit_once('@') {
        return Some(if login.contains(':') {
            ProxyProblem::InlinePassword
        } else {
            ProxyProblem::User
        });
    }
    if !matches!(after, "" | "/") {
        return Some(ProxyProblem::Path);
    }
    // An IPv6 host is in brackets; its colons are not the port's.
    let port = match authority.rsplit_once(']') {
        Some((_, after_host)) => after_host.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => None,
        Some(_) => Some(ProxyProblem::Port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::source::{CHERWELL, FRESHSERVICE, REST, SERVICENOW};
    use crate::config::parse::target::SCIM;

    #[test]
    fn every_http_block_takes_the_http_nodes() {
        for block in [&SCIM, &SERVICENOW, &FRESHSERVICE, &REST, &CHERWELL] {
            for node in [
                "timeout",
                "ca-file",
                "proxy",
                "proxy-user",
                "proxy-password",
            ] {
                assert!(block.nodes.contains(&node), "{node} {}", block.place);
            }
        }
    }

    #[test]
    fn proxy_urls() {
        for good in [
            "http://proxy.example.com:3128",
            "https://proxy.example.com",
            "socks5://127.0.0.1:1080/",
            "http://[::1]:3128",
            "http://[::1]",
        ] {
            assert_eq!(proxy_problem(good), None, "{good}");
        }
        for (bad, problem) in [
            (
                "http://sync:hunter2@proxy:3128",
                ProxyProblem::InlinePassword,
            ),
            ("http://sync@proxy:3128", ProxyProblem::User),
            ("http://proxy:99999", ProxyProblem::Port),
            ("http://proxy:0", ProxyProblem::Port),
            ("http://proxy:", ProxyProblem::Port),
            ("http://proxy:port", ProxyProblem::Port),
            ("http://proxy:3128/path", ProxyProblem::Path),
            ("http://proxy:3128?x=1", ProxyProblem::Path),
        ] {
            assert_eq!(proxy_problem(bad), Some(problem), "{bad}");
        }
    }
}
