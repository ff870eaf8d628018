//! Settings of the REST sources: ServiceNow's Table API and Freshservice's API v2.
//!
//! Kept apart from the LDAP settings in `mod.rs` because they share nothing with them but
//! `timeout`; each is one `source "..."` block in `roster.kdl`.

use crate::secret::SecretRef;

use super::{HttpOptions, Spanned};

/// `source "servicenow" { ... }`: users from `sys_user` through the Table API.
#[derive(Debug, Clone)]
pub struct ServiceNowSource {
    /// The instance, e.g. `https://acme.service-now.com`.
    pub url: Spanned<String>,
    /// The integration account: basic auth, or the resource owner of the OAuth password grant.
    pub username: Spanned<String>,
    pub password: Spanned<SecretRef>,
    /// OAuth instead of basic auth, when `client-id` and `client-secret` are given.
    pub oauth: Option<ServiceNowOAuth>,
    /// An encoded query (`sysparm_query`), default `active=true`. It decides which users the
    /// source holds: inactive users are left out only if it says so.
    pub query: Spanned<String>,
    /// Rows per request (`sysparm_limit`), 1..=1000, default 1000.
    pub page_size: u32,
    /// Timeout, TLS roots and proxy.
    pub http: HttpOptions,
}

/// An OAuth application registry entry of the instance.
#[derive(Debug, Clone)]
pub struct ServiceNowOAuth {
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<SecretRef>,
}

/// `source "freshservice" { ... }`: requesters and/or agents through API v2.
#[derive(Debug, Clone)]
pub struct FreshserviceSource {
    /// The helpdesk, e.g. `https://acme.freshservice.com`.
    pub url: Spanned<String>,
    pub api_key: Spanned<SecretRef>,
    /// Which lists to read, in this order; default requesters only.
    pub include: Vec<FreshserviceList>,
    /// Records per request (`per_page`), 1..=100, default 100.
    pub page_size: u32,
    /// Timeout, TLS roots and proxy.
    pub http: HttpOptions,
}

/// A Freshservice list of people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshserviceList {
    Requesters,
    Agents,
}

impl FreshserviceList {
    /// The API path segment and the key of the records in the answer (the same word).
    pub fn as_str(self) -> &'static str {
        match self {
            FreshserviceList::Requesters => "requesters",
            FreshserviceList::Agents => "agents",
        }
    }
}
