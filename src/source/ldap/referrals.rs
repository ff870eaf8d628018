//! Referrals: the parts of a directory that other servers hold.
//!
//! A server answers a search with the entries it holds and, for each subtree it delegates, a
//! search continuation reference (`searchResRef`): LDAP URLs (RFC 4516) of the servers that
//! hold it. Active Directory sends them for its other partitions and for the other domains of
//! a forest. A base that is itself delegated is answered with result code 10 (`referral`).
//!
//! Without `follow-referrals` they are skipped, and counted in the debug log. With it, each
//! one is searched: a new connection with the same TLS settings (ca-file, verification, and
//! StartTLS on an `ldap://` referral whenever the configured connection is encrypted, so a
//! referral never downgrades it), the same bind, the same paged search, with the base, scope
//! and filter of the URL where it names them. The referrals met there are followed in turn, at
//! most `MAX_HOPS` deep; a search that an earlier one of the read covers (same server and
//! filter, a base in a subtree already searched) is not made, which ends loops and keeps an
//! entry from being read twice. Any failure on the way fails the whole read: a read without
//! the referred entries would look like accounts to remove.

use ldap3::{LdapConn, ResultEntry, Scope};
use percent_encoding::percent_decode_str;

use crate::model::SourceRecord;
use crate::model::canonical_dn;
use crate::secret::Secret;
use crate::source::SourceError;

use super::{LdapDirectory, Query, Server};

/// How many referrals deep a read may go. AD's cross-domain referrals are one hop deep.
const MAX_HOPS: u32 = 5;
/// The URL extension that asks for StartTLS (RFC 4516, registered by RFC 4513).
const STARTTLS_EXTENSION: &str = "1.3.6.1.4.1.1466.20037";

/// The state of following referrals during one read.
pub(super) struct Chase<'a> {
    /// The bind password, for the servers the referrals name.
    password: Option<&'a Secret>,
    /// The searches made so far.
    searched: Vec<Searched>,
}

impl<'a> Chase<'a> {
    pub(super) fn new(password: Option<&'a Secret>) -> Self {
        Chase {
            password,
            searched: Vec::new(),
        }
    }

    /// Records a search; false when an earlier search of the read covers it.
    fn first_time(&mut self, server: &Server, query: &Query) -> bool {
        let search = Searched::new(server, query);
        if self.searched.iter().any(|earlier| earlier.covers(&search)) {
            return false;
        }
        self.searched.push(search);
        true
    }
}

impl LdapDirectory {
    /// Searches `query` on the configured server, then follows the referrals it returns
    /// when `follow-referrals` is on.
    pub(super) fn read_tree(
        &self,
        conn: &mut LdapConn,
        server: &Server,
        query: &Query,
        chase: &mut Chase,
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        chase.first_time(server, query);
        let found = self.read_base(conn, server, query, sink)?;
        let followed = self.follow(found.referrals, server, query, 1, chase, sink)?;
        Ok(found.read + followed)
    }

    /// Follows (or, with `follow-referrals #false`, skips) the referrals a search returned.
    fn follow(
        &self,
        referrals: Vec<String>,
        from: &Server,
        query: &Query,
        hop: u32,
        chase: &mut Chase,
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        if referrals.is_empty() {
            return Ok(0);
        }
        if !self.config.follow_referrals {
            log::debug!(
                "skipped {} referrals under {} on {} (follow-referrals is off): {}",
                referrals.len(),
                query.base,
                from.url,
                referrals.join(", ")
            );
            return Ok(0);
        }
        let mut total = 0;
        for referral in referrals {
            total += self
                .follow_one(&referral, query, hop, chase, sink)
                .map_err(|error| match error {
                    nested @ SourceError::Referral { .. } => nested,
                    other => SourceError::Referral {
                        referral: referral.clone(),
                        message: other.to_string(),
                    },
                })?;
        }
        Ok(total)
    }

    fn follow_one(
        &self,
        text: &str,
        from: &Query,
        hop: u32,
        chase: &mut Chase,
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let refused = |message: String| SourceError::Referral {
            referral: text.to_string(),
            message,
        };
        let referral = ReferralUrl::parse(text).map_err(refused)?;
        let query = Query {
            base: referral.base.as_deref().unwrap_or(from.base),
            scope: referral.scope.unwrap_or(from.scope),
            filter: referral.filter.as_deref().unwrap_or(from.filter),
            attrs: from.attrs,
        };
        let server = Server {
            url: referral.server_url(),
            starttls: !referral.ldaps && (referral.starttls || self.server().encrypted()),
        };
        if !chase.first_time(&server, &query) {
            log::debug!("referral {text}: searched already in this read");
            return Ok(0);
        }
        if hop > MAX_HOPS {
            return Err(refused(format!(
                "more than {MAX_HOPS} referrals deep; point base-dn at the server that holds \
                 the entries"
            )));
        }
        log::info!("following the referral {text} under {}", from.base);
        let mut conn = self.open(&server, chase.password)?;
        let found = self.read_base(&mut conn, &server, &query, sink)?;
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        let followed = self.follow(found.referrals, &server, &query, hop + 1, chase, sink)?;
        Ok(found.read + followed)
    }
}

/// The URLs of a search continuation reference. ldap3's `parse_refs` panics on a malformed
/// one; a server's answer must not be able to do that.
pub(super) fn referral_urls(entry: ResultEntry) -> Result<Vec<String>, String> {
    let malformed = || "the server sent a malformed referral (searchResRef)".to_string();
    entry
        .0
        .expect_constructed()
        .ok_or_else(malformed)?
        .into_iter()
        .map(|tag| {
            let bytes = tag.expect_primitive().ok_or_else(malformed)?;
            String::from_utf8(bytes).map_err(|_| malformed())
        })
        .collect()
}

/// A search made during a read, in comparable form.
#[derive(Debug)]
struct Searched {
    /// `ldap://host:port`, lowercase.
    server: String,
    /// `canonical_dn` of the base.
    base: String,
    scope: Scope,
    filter: String,
}

impl Searched {
    fn new(server: &Server, query: &Query) -> Self {
        let url = ReferralUrl::parse(&server.url)
            .map(|u| u.server_url())
            .unwrap_or_else(|_| server.url.clone());
        Searched {
            server: url.to_ascii_lowercase(),
            base: canonical_dn(query.base),
            scope: query.scope,
            filter: query.filter.to_string(),
        }
    }

    /// Whether every entry `other` can return was returned by this search already.
    fn covers(&self, other: &Searched) -> bool {
        if self.server != other.server || self.filter != other.filter {
            return false;
        }
        if self.base == other.base {
            return self.scope == other.scope || self.scope == Scope::Subtree;
        }
        self.scope == Scope::Subtree
            && (self.base.is_empty() || other.base.ends_with(&format!(",{}", self.base)))
    }
}

/// An LDAP URL as a referral gives it: `ldap://host:port/base?attributes?scope?filter?extensions`
/// (RFC 4516). Parts left out mean "as in the search that met the referral".
#[derive(Debug, PartialEq)]
struct ReferralUrl {
    ldaps: bool,
    /// As in the URL; an IPv6 address keeps its brackets.
    host: String,
    port: u16,
    base: Option<String>,
    scope: Option<Scope>,
    filter: Option<String>,
    /// The URL asks for StartTLS (its extension `1.3.6.1.4.1.1466.20037`).
    starttls: bool,
}

impl ReferralUrl {
    fn parse(text: &str) -> Result<ReferralUrl, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| "not an LDAP URL".to_string())?;
        let ldaps = match scheme.to_ascii_lowercase().as_str() {
            "ldap" => false,
            "ldaps" => true,
            _ => return Err("only ldap:// and ldaps:// referrals can be followed".to_string()),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_host_port(authority)?;
        let mut parts = path.splitn(5, '?');
        let base = parts.next().map(decode).transpose()?;
        let _attributes = parts.next();
        let scope = match parts.next().unwrap_or("").to_ascii_lowercase().as_str() {
            "" => None,
            "base" => Some(Scope::Base),
            "one" => Some(Scope::OneLevel),
            "sub" => Some(Scope::Subtree),
            other => return Err(format!("unknown scope {other:?}")),
        };
        let filter = parts.next().map(decode).transpose()?;
        let mut starttls = false;
        for extension in parts.next().unwrap_or("").split(',') {
            let name = extension.split('=').next().unwrap_or("");
            let id = name.trim_start_matches('!');
            if id == STARTTLS_EXTENSION {
                starttls = true;
            } else if name.starts_with('!') {
                return Err(format!(
                    "the URL has a critical extension roster does not know ({id})"
                ));
            }
        }
        Ok(ReferralUrl {
            ldaps,
            host,
            port: port.unwrap_or(if ldaps { 636 } else { 389 }),
            base: base.filter(|b| !b.trim().is_empty()),
            scope,
            filter: filter.filter(|f| !f.trim().is_empty()),
            starttls,
        })
    }

    /// `ldap://host:port`, what ldap3 connects to.
    fn server_url(&self) -> String {
        let scheme = if self.ldaps { "ldaps" } else { "ldap" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| format!("bad address {authority:?}"))?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(
                    rest.strip_prefix(':')
                        .ok_or_else(|| format!("bad address {authority:?}"))?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    // RFC 4516 lets a URL leave the server to the client; a referral must name it.
    if host.is_empty() || host.contains('@') {
        return Err("the URL names no server".to_string());
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("bad port {p:?}"))
                .and_then(|p| match p {
                    0 => Err("bad port 0".to_string()),
                    p => Ok(p),
                })
        })
        .transpose()?;
    Ok((host.to_string(), port))
}

fn decode(part: &str) -> Result<String, String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "the URL is not UTF-8 once decoded".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> ReferralUrl {
        ReferralUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn referral_urls_give_server_base_scope_and_filter() {
        let full =
            url("ldap://dc2.corp.example.com:3268/OU=Staff,DC=corp%20two,DC=com??sub?(uid=a%2A)");
        assert_eq!(
            full,
            ReferralUrl {
                ldaps: false,
                host: "dc2.corp.example.com".into(),
                port: 3268,
                base: Some("OU=Staff,DC=corp two,DC=com".into()),
                scope: Some(Scope::Subtree),
                filter: Some("(uid=a*)".into()),
                starttls: false,
            }
        );
        assert_eq!(full.server_url(), "ldap://dc2.corp.example.com:3268");

        let bare = url("LDAPS://dc2.corp.example.com");
        assert_eq!((bare.ldaps, bare.port), (true, 636));
        assert_eq!((bare.base, bare.scope, bare.filter), (None, None, None));
        assert_eq!(url("ldap://dc2/").port, 389);
        assert_eq!(url("ldap://dc2/dc=x??base").scope, Some(Scope::Base));

        let v6 = url("ldap://[::1]:1389/dc=example,dc=com");
        assert_eq!(v6.server_url(), "ldap://[::1]:1389");
        assert_eq!(url("ldap://[::1]").port, 389);

        assert!(url("ldap://dc2/dc=x????1.3.6.1.4.1.1466.20037").starttls);
        assert!(!url("ldap://dc2/dc=x????e-bindname=cn=x").starttls);
    }

    #[test]
    fn referral_urls_that_cannot_be_followed_are_errors() {
        for (text, why) in [
            ("http://dc2/", "only ldap://"),
            ("dc2.example.com", "not an LDAP URL"),
            ("ldap:///dc=example,dc=com", "names no server"),
            ("ldap://user@dc2/", "names no server"),
            ("ldap://dc2:99999/", "bad port"),
            ("ldap://dc2:0/", "bad port"),
            ("ldap://[::1/", "bad address"),
            ("ldap://dc2/dc=x??subtree", "unknown scope"),
            ("ldap://dc2/dc=x????!x-unknown=1", "critical extension"),
            ("ldap://dc2/dc=%ff", "not UTF-8"),
        ] {
            let err = ReferralUrl::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn a_search_is_covered_by_the_same_one_or_a_subtree_search_above_it() {
        let searched = |url: &str, base: &str, scope| {
            let server = Server {
                url: url.to_string(),
                starttls: false,
            };
            let query = Query {
                base,
                scope,
                filter: "(objectClass=*)",
                attrs: &[],
            };
            Searched::new(&server, &query)
        };
        let staff = searched(
            "ldap://DC1.example.com",
            "OU=Staff, DC=example,DC=com",
            Scope::Subtree,
        );
        assert!(staff.covers(&searched(
            "ldap://dc1.example.com:389/",
            "ou=staff,dc=example,dc=com",
            Scope::Subtree
        )));
        assert!(staff.covers(&searched(
            "ldap://dc1.example.com",
            "ou=Berlin,ou=staff,dc=example,dc=com",
            Scope::OneLevel
        )));
        for other in [
            searched(
                "ldap://dc1.example.com",
                "dc=example,dc=com",
                Scope::Subtree,
            ),
            searched(
                "ldap://dc1.example.com",
                "ou=xstaff,dc=example,dc=com",
                Scope::Base,
            ),
            searched(
                "ldaps://dc1.example.com",
                "ou=staff,dc=example,dc=com",
                Scope::Subtree,
            ),
            searched(
                "ldap://dc2.example.com",
                "ou=staff,dc=example,dc=com",
                Scope::Subtree,
            ),
        ] {
            assert!(!staff.covers(&other), "{other:?}");
        }
        let one_level = searched("ldap://dc1", "dc=example,dc=com", Scope::OneLevel);
        assert!(!one_level.covers(&searched(
            "ldap://dc1",
            "ou=a,dc=example,dc=com",
            Scope::Base
        )));
    }
}
