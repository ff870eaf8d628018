//! Settings of the REST sources: ServiceNow's Table API, Freshservice's API v2, and any
//! other JSON API (`source "rest"`).
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

/// `source "rest" { ... }`: users from any JSON API, described by where the records are,
/// how the API pages and how it authenticates.
#[derive(Debug, Clone)]
pub struct RestApiSource {
    /// The endpoint that lists the users, e.g. `https://itsm.example.com/api/v2/people`,
    /// without a query (query parameters are `param` nodes).
    pub url: Spanned<String>,
    /// `param "NAME" "VALUE"`: query parameters sent with every page, in order.
    pub params: Vec<(String, String)>,
    pub auth: RestAuth,
    pub paging: RestPaging,
    /// Records per request, when the paging style sends a page size; default 100.
    pub page_size: u32,
    /// JSON Pointer (RFC 6901) to the array of records in each answer; `""` is the whole body.
    pub records: Spanned<String>,
    /// JSON Pointer to the total number of records the API says it holds, when it says.
    pub total: Option<Spanned<String>>,
    /// JSON Pointer, inside a record, to the value that names it in messages (its origin).
    pub id: Option<Spanned<String>>,
    /// Requests per second, never exceeded.
    pub rate_limit: Option<f64>,
    /// Timeout, TLS roots and proxy.
    pub http: HttpOptions,
}

/// How a `source "rest"` proves who is asking (`auth "KIND" { ... }`).
#[derive(Debug, Clone)]
pub enum RestAuth {
    /// `auth "none"`: a public or network-protected API.
    None,
    /// `auth "basic" { user "..."; password env="..." }`.
    Basic {
        user: Spanned<String>,
        password: Spanned<SecretRef>,
    },
    /// `auth "bearer" { token env="..." }`: `Authorization: Bearer <token>`.
    Bearer { token: Spanned<SecretRef> },
    /// `auth "api-key" { header "X-API-Key"; key env="..." }`: the key as the whole value of
    /// a named header.
    ApiKey {
        header: Spanned<String>,
        key: Spanned<SecretRef>,
    },
    /// `auth "oauth" { token-url ...; client-id ...; client-secret env=...; scope ... }`: the
    /// OAuth 2.0 client credentials grant (RFC 6749 §4.4).
    OAuth(RestOAuth),
}

/// An OAuth 2.0 client of the client credentials grant.
#[derive(Debug, Clone)]
pub struct RestOAuth {
    pub token_url: Spanned<String>,
    pub client_id: Spanned<String>,
    pub client_secret: Spanned<SecretRef>,
    /// `scope`, sent when given.
    pub scope: Option<String>,
}

/// How a `source "rest"` walks through the pages of its answer (`paging "STYLE" ...`).
#[derive(Debug, Clone, PartialEq)]
pub enum RestPaging {
    /// `paging "none"`: one answer holds every record.
    None,
    /// `paging "offset" offset="offset" limit="limit"`: the offset advances by the records
    /// received, starting at 0.
    Offset { offset: String, limit: String },
    /// `paging "page" page="page" size="per_page" first=1`: page numbers from `first`.
    Page {
        page: String,
        size: String,
        first: u64,
    },
    /// `paging "cursor" next="/meta/next" param="cursor" size="limit"`: the cursor at the
    /// JSON Pointer `next` of each answer is sent as `param` for the next page.
    Cursor {
        next: String,
        param: String,
        size: Option<String>,
    },
    /// `paging "next-link" next="/links/next" size="limit"`: the URL at the JSON Pointer
    /// `next` of each answer is the next page.
    NextLink { next: String, size: Option<String> },
    /// `paging "link-header" size="per_page"`: the `Link: <...>; rel="next"` header.
    LinkHeader { size: Option<String> },
}

/// `source "cherwell" { ... }`: the users of one Cherwell business object (such as
/// "Customer - Internal"), through the REST API's search (`getsearchresults`).
#[derive(Debug, Clone)]
pub struct CherwellSource {
    /// The REST API root, e.g. `https://cherwell.example.com/CherwellAPI`.
    pub url: Spanned<String>,
    /// The REST API client key (CSM Administrator → REST API client settings).
    pub client_id: Spanned<String>,
    pub username: Spanned<String>,
    pub password: Spanned<SecretRef>,
    /// `busObId` of the business object that holds the people.
    pub business_object: Spanned<String>,
    /// `filter "FIELD-ID" "eq" "VALUE"`: search filters, all sent (Cherwell ANDs filters on
    /// different fields and ORs those on the same field).
    pub filters: Vec<CherwellFilter>,
    /// Rows per search page (`pageSize`), 1..=1000, default 200.
    pub page_size: u32,
    /// Timeout, TLS roots and proxy.
    pub http: HttpOptions,
}

/// One search filter of `getsearchresults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CherwellFilter {
    pub field_id: String,
    /// `eq`, `gt`, `lt`, `contains`, `startswith`.
    pub operator: String,
    pub value: String,
}
