//! SCIM 2.0 target (RFC 7643 resources, RFC 7644 protocol).
//!
//! `ScimService` is the only place that speaks SCIM: it lists `/Users` page by page, finds
//! accounts by `userName`, creates them with roster's key as `externalId`, changes them with
//! one PATCH each, and deletes them. Everything above it works with `TargetUser`,
//! `DesiredUser` and `UserUpdate` and never sees a SCIM document.
//!
//! What it guarantees to its callers, and why:
//! - **A listing is complete or an error.** The planner removes accounts that are missing from
//!   the source, so a short snapshot would look like a reason to deprovision. Paging stops only
//!   at an empty page or once `totalResults` distinct users were seen (the largest total any
//!   page stated); a listing that ends early, or a server that repeats pages, is an error
//!   rather than a partial snapshot.
//! - **Nothing in the target is lost by a change.** E-mail is a multi-valued attribute and
//!   value-path filters are not portable, so an e-mail change reads the account and replaces
//!   `emails` with the same list, only "the" address changed. Phones are only ever added.
//! - **Conditional changes.** With a version, PATCH and DELETE carry `If-Match`; a changed
//!   object answers 412, reported as `TargetError::Stale`.
//! - **Transient failures are retried** by `crate::http`'s one policy (exponential backoff
//!   with jitter, `Retry-After`), so callers see only failures that outlasted the retries. A
//!   request that may already have been processed is resent only when resending cannot apply
//!   it twice (see `Call::resend`).
//! - **`rate-limit` is never exceeded**, across all threads sharing the service, retries
//!   included: every attempt first takes a slot from the client's one `Pacer`.
//! - **The token never leaves the `Authorization` header.** It is kept as a `Secret`
//!   (redacted in `Debug`), sent as a sensitive header, and scrubbed from any text the server
//!   sends back before that text becomes part of an error.

use std::collections::HashSet;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::{self, HeaderValue};
use serde_json::{Map, Value, json};

use crate::config::ScimTarget;
use crate::http::{
    self, Authorization, Body, HttpClient, Pacer, Reply, Request, Resend, Role, Settings,
    SetupError, quote_body,
};
use crate::model::{Capabilities, DesiredUser, FieldValue, TargetUser};
use crate::plan::Field;

use super::{BulkCreate, GroupUpdate, StatusMeaning, Target, TargetError, UserUpdate};
use crate::model::TargetGroup;

mod bulk;
mod changes;
mod groups;
mod lookup;
mod owner;
mod provider;
mod resource;

use lookup::{Attribute, Found, Lookup};
use provider::{Learned, ProviderConfig, Stated};
use resource::{RawUser, UserReader};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";
/// The page of a listing when neither `page-size` nor the provider says (the old default).
const DEFAULT_PAGE: u32 = 500;
/// The largest page asked for, whatever the provider advertises: `page-size`'s own maximum,
/// so that one answer stays a few megabytes.
const MAX_PAGE: u32 = 1000;

/// RFC 3986 unreserved characters stay as they are; everything else in a path segment or a
/// query value is percent-encoded (a space as `%20`, which every server decodes, unlike `+`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A SCIM 2.0 service provider, used as roster's target. Shared by the applier's threads.
#[derive(Debug)]
pub struct ScimService {
    /// The API root without a trailing slash, e.g. `https://example.com/scim/v2`.
    base: String,
    http: HttpClient,
    /// `Bearer <token>`.
    auth: Authorization,
    /// The target fields the mapping writes, read into `TargetUser::fields`.
    fields: Vec<FieldPath>,
    /// Reads users straight from answers' bytes (`resource.rs`); `None` when a field needs
    /// the resource as a tree.
    users: Option<UserReader>,
    /// `page-size`, when configured; otherwise `listing_page_size` asks the provider.
    page_size: Option<u32>,
    /// What the provider can do: `/ServiceProviderConfig` and what answers showed.
    learned: Learned,
    /// The config's owner, written with every key (`owner.rs`); `None` writes bare keys.
    owner: Option<String>,
}

/// The two kinds of resource roster reads and writes, each under its own endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Resource {
    Users,
    Groups,
}

impl Resource {
    /// The endpoint's path segment (RFC 7644 §3.2).
    fn endpoint(self) -> &'static str {
        match self {
            Resource::Users => "Users",
            Resource::Groups => "Groups",
        }
    }

    /// One of them, for messages.
    fn noun(self) -> &'static str {
        match self {
            Resource::Users => "user",
            Resource::Groups => "group",
        }
    }

    /// Many of them, for messages.
    fn plural(self) -> &'static str {
        match self {
            Resource::Users => "users",
            Resource::Groups => "groups",
        }
    }
}

impl ScimService {
    /// Reads the token and builds the HTTP client; does not connect yet.
    /// `fields` are target attribute paths: `title`, `name.givenName`, or with an extension
    /// schema, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`.
    pub fn new(config: &ScimTarget, fields: Vec<String>) -> Result<Self, TargetError> {
        let base = config.url.value.trim_end_matches('/').to_string();
        check_api_root(&base)?;
        let fields = fields
            .iter()
            .map(|f| FieldPath::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let pacer = config
            .rate_limit
            .map(Pacer::new)
            .transpose()
            .map_err(TargetError::Setup)?;
        let token = config.token.value.resolve()?;
        let http = HttpClient::new(Settings {
            role: Role::Target,
            http: &config.http,
            // Some providers answer only `application/json`; both are the same SCIM document.
            accept: "application/scim+json, application/json",
            pacer,
            secrets: std::slice::from_ref(&token),
        })
        .map_err(|e| match e {
            SetupError::ProxyPassword(_) => TargetError::Setup(e.to_string()),
            SetupError::Invalid(message) => TargetError::Setup(message),
        })?;

        Ok(ScimService {
            base,
            http,
            auth: Authorization::bearer(&token),
            users: UserReader::new(&fields),
            fields,
            page_size: config.page_size.map(|n| n.max(1)),
            learned: Learned::new(Stated::new(config.provider, &config.compatibility)),
            owner: None,
        })
    }

    /// Writes `owner` with every key from now on (`roster:OWNER:KEY`, see `owner.rs`).
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_string());
        self
    }

    /// A key as this service writes it into an externalId.
    fn external_id(&self, key: &str) -> String {
        match &self.owner {
            Some(owner) => owner::external_id(owner, key),
            None => key.to_string(),
        }
    }

    /// `/ServiceProviderConfig`, read on first use and kept for the run. A provider that has
    /// none (404, 501, ...) or answers something unreadable is "unknown": every capability
    /// is then tried, and what answers contain is checked. Credentials refused, or a
    /// transient failure that outlasted the retries, is an error.
    fn provider_config(&self) -> Result<ProviderConfig, TargetError> {
        if let Some(known) = self.learned.known_config() {
            return Ok(known);
        }
        let call = Call::new(Method::GET, format!("{}/ServiceProviderConfig", self.base));
        let capabilities = match self.execute(&call) {
            Ok(reply) => match call.json(&reply) {
                Ok(document) => ProviderConfig::parse(&document),
                Err(err) => {
                    log::info!("{err}; the provider's capabilities are tried instead");
                    ProviderConfig::default()
                }
            },
            Err(err @ TargetError::Http { status, .. }) if !err.is_transient() || status == 501 => {
                log::info!("{err}; the provider's capabilities are tried instead");
                ProviderConfig::default()
            }
            Err(err) => return Err(err),
        };
        let capabilities = self.learned.stated.over(capabilities);
        log::debug!("{}: capabilities {capabilities:?}", self.base);
        if let Ok(mut slot) = self.learned.capabilities.lock() {
            *slot = Some(capabilities);
        }
        Ok(capabilities)
    }

    /// Pages through a list endpoint (`{url}?{query}startIndex=..&count=..`) until
    /// `totalResults` resources were seen, handing each new one to `each` until it returns
    /// `false`. A listing that ends early, repeats itself or runs past its total is an error,
    /// never a short snapshot: a short snapshot would look like accounts to remove.
    /// Returns how many resources were handed over.
    fn page<T>(
        &self,
        resource: Resource,
        query: &str,
        parse: &dyn Fn(&Call, &Value) -> Result<T, TargetError>,
        id: impl Fn(&T) -> &str,
        each: &mut dyn FnMut(T) -> bool,
    ) -> Result<u64, TargetError> {
        let parse = |call: &Call, resource: Value| parse(call, &resource);
        self.page_with(resource, query, &Trees, &parse, id, each)
    }

    /// `page`, with each page read by `pages` (into trees, or users straight from bytes).
    fn page_with<'p, P: Pages + 'p, T>(
        &self,
        resource: Resource,
        query: &str,
        pages: &'p P,
        parse: &'p ParseRaw<'p, P, T>,
        id: impl Fn(&T) -> &str,
        each: &mut dyn FnMut(T) -> bool,
    ) -> Result<u64, TargetError> {
        let url = self.collection_url(resource);
        let noun = resource.plural();
        // The configured or advertised page, capped by what the provider is stated to take.
        let page_size = self.learned.page_size(self.listing_page_size()?);
        let mut start: u64 = 1;
        let mut seen: HashSet<String> = HashSet::new();
        // The largest `totalResults` any page stated: a total that falls while paging means
        // resources were deleted under the listing, which shifts the offsets and can skip one
        // that still exists, so the listing must still reach the largest (issue 11.5).
        let mut stated: u64 = 0;
        loop {
            let call = Call::new(
                Method::GET,
                format!("{url}?{query}startIndex={start}&count={page_size}"),
            );
            let reply = self.execute(&call)?;
            let mut page = pages.read(&call, &reply)?;
            stated = stated.max(page.total);
            page.total = stated;
            if page.resources.is_empty() {
                // An empty page before `totalResults` means resources were skipped (a server
                // cap on startIndex, or deletions shifting the offsets).
                if (seen.len() as u64) < page.total {
                    return Err(call.invalid(format!(
                        "the listing ended after {} of the {} {noun} it announced; run again, \
                         the snapshot would be incomplete",
                        seen.len(),
                        page.total
                    )));
                }
                break;
            }
            let mut new = 0;
            for resource in page.resources {
                let item = parse(&call, resource)?;
                if !seen.insert(id(&item).to_string()) {
                    log::warn!(
                        "{} {}: {} listed twice; keeping the first",
                        call.method,
                        call.url,
                        id(&item)
                    );
                    continue;
                }
                new += 1;
                if !each(item) {
                    return Ok(seen.len() as u64);
                }
            }
            if new == 0 {
                return Err(call.invalid(format!(
                    "the page repeats {noun} already listed (does the server ignore startIndex?)"
                )));
            }
            if seen.len() as u64 >= page.total {
                break;
            }
            // Advance by what came back, not by `count`: a server may return fewer than asked
            // without being at the end (RFC 7644 §3.4.2.4).
            start += page.len;
            if start > page.total + u64::from(page_size) {
                return Err(call.invalid(format!(
                    "startIndex {start} passed totalResults {} without reaching it; the server's paging is inconsistent",
                    page.total
                )));
            }
        }
        Ok(seen.len() as u64)
    }

    /// The page size of listings: `page-size` when configured, else the largest page the
    /// provider accepts (`filter.maxResults`, RFC 7643 §5), at most `MAX_PAGE`, else
    /// `DEFAULT_PAGE`. A listing of 100,000 accounts costs a round trip per page, and a
    /// no-change plan is bound by it (issue 16), so the page is as large as allowed.
    fn listing_page_size(&self) -> Result<u32, TargetError> {
        if let Some(configured) = self.page_size {
            return Ok(configured);
        }
        let advertised = self.provider_config()?.filter_max_results;
        Ok(advertised.map_or(DEFAULT_PAGE, |n| {
            u32::try_from(n.min(u64::from(MAX_PAGE))).unwrap_or(MAX_PAGE)
        }))
    }

    /// `{base}/Users` or `{base}/Groups`.
    fn collection_url(&self, resource: Resource) -> String {
        format!("{}/{}", self.base, resource.endpoint())
    }

    /// `{base}/Users/{id}` or `{base}/Groups/{id}`.
    fn resource_url(&self, resource: Resource, id: &str) -> Result<String, TargetError> {
        // An empty id would address the collection: `DELETE /Users/` is not a user's delete.
        if id.is_empty() {
            let noun = resource.noun();
            return Err(TargetError::Setup(format!(
                "a {noun} call without a {noun} id"
            )));
        }
        // Ids come from the server and may hold anything: one path segment, encoded.
        Ok(format!(
            "{}/{}",
            self.collection_url(resource),
            encode_component(id)
        ))
    }

    /// Fetches one user as the raw resource, with its version; 404 is an error here.
    fn fetch_user(&self, id: &str) -> Result<(Value, Option<String>), TargetError> {
        let call = Call::new(Method::GET, self.resource_url(Resource::Users, id)?);
        let reply = self.execute(&call)?;
        let resource = call.json(&reply)?;
        let version = meta_version(&resource).or(etag(&reply));
        Ok((resource, version))
    }

    fn user_from(
        &self,
        call: &Call,
        resource: &Value,
        etag: Option<String>,
    ) -> Result<TargetUser, TargetError> {
        self.user_of_raw(call, RawUser::of_tree(resource), etag)
    }

    /// The user an answer holds (a GET's, a create's), read straight from its bytes.
    fn user_from_reply(&self, call: &Call, reply: &Reply) -> Result<TargetUser, TargetError> {
        let Some(reader) = &self.users else {
            return self.user_from(call, &call.json(reply)?, etag(reply));
        };
        match reader.user(&reply.body) {
            Some(raw) => self.user_of_raw(call, raw, etag(reply)),
            None => Err(not_json(call, reply)),
        }
    }

    /// A user as read, with its externalId split into owner and key.
    fn user_of_raw(
        &self,
        call: &Call,
        raw: RawUser<'_>,
        etag: Option<String>,
    ) -> Result<TargetUser, TargetError> {
        let mut user = raw.into_user(&self.fields).map_err(|m| call.invalid(m))?;
        if let Some(external_id) = user.external_id.take() {
            let (owner, key) = owner::read(&external_id);
            (user.owner, user.external_id) = (owner, Some(key));
        }
        // meta.version and ETag are the same value by RFC 7644 §3.14; the body's is preferred
        // because listings only have that one, and versions are compared as strings.
        user.version = user.version.or(etag);
        Ok(user)
    }

    /// Sends a request, retrying transient failures. `Ok` only for a 2xx answer.
    fn execute(&self, call: &Call) -> Result<Reply, TargetError> {
        let mut request =
            Request::new(call.method.clone(), call.url.clone(), call.resend()).auth(&self.auth);
        if let Some(version) = &call.if_match {
            let value = HeaderValue::from_str(version).map_err(|_| {
                call.invalid(format!("version {version:?} cannot be sent as If-Match"))
            })?;
            request = request.header(header::IF_MATCH, value);
        }
        if let Some(body) = &call.body {
            request = request.body(Body::Bytes {
                content_type: SCIM_JSON,
                bytes: body.clone(),
            });
        }
        self.http
            .send(&request)
            .map_err(|failure| self.target_error(call, failure))
    }

    /// A failure in the target's terms.
    fn target_error(&self, call: &Call, failure: http::Failure) -> TargetError {
        TargetError::from_http(
            call.method.to_string(),
            call.url.clone(),
            failure,
            |status, body| {
                let (code, detail) = parse_error_body(body.as_bytes());
                // The body was scrubbed; what JSON escapes hid in it is scrubbed now.
                let detail = detail
                    .map(|d| self.http.scrub(&d))
                    .or_else(|| empty_answer_detail(status));
                (code, detail)
            },
            |status, code| match status {
                401 | 403 => Some(StatusMeaning::Unauthorized(super::Credential::Token)),
                412 => Some(StatusMeaning::Stale),
                // A duplicate: 409 `uniqueness`, or 400 `uniqueness` from some servers.
                409 => Some(StatusMeaning::Conflict),
                400 if code == Some("uniqueness") => Some(StatusMeaning::Conflict),
                _ => None,
            },
        )
    }
}

impl ScimService {
    /// The fallback for providers without PATCH: reads the account and writes it back whole
    /// with the change, conditional on the version read (If-Match) when it has one. The read
    /// must show the version planned.
    fn put_user(
        &self,
        id: &str,
        version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        let url = self.resource_url(Resource::Users, id)?;
        let (mut resource, current) = self.fetch_user(id)?;
        if let (Some(expected), Some(current)) = (version, &current)
            && expected != current
        {
            return Err(TargetError::Stale {
                method: "PUT".into(),
                url,
            });
        }
        let emails = update
            .email
            .as_ref()
            .map(|email| emails_with(resource.get("emails"), email));
        let Some(object) = resource.as_object_mut() else {
            return Err(TargetError::InvalidResponse {
                method: "GET".into(),
                url,
                message: "a user that is not a JSON object".into(),
            });
        };
        object.remove("meta");
        apply_update(object, update, emails, &self.fields);
        let mut call = Call::new(Method::PUT, url).body(&resource);
        call.if_match = current.or(version.map(str::to_string));
        let answer = self.execute(&call)?;
        self.read_back(&call, &answer, id, update)
    }

    /// Checks that a change stuck: from the answer's resource (200), else by a GET. A change
    /// the provider accepted and dropped is an error that names it; returns the new version.
    fn read_back(
        &self,
        call: &Call,
        answer: &Reply,
        id: &str,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        let after = if answer.is_empty() {
            None
        } else {
            let resource = call.json(answer)?;
            // An answer without a user in it (some send `{}`) proves nothing: read it.
            get_str(&resource, "id")
                .is_some()
                .then(|| self.user_from(call, &resource, etag(answer)))
                .transpose()?
        };
        let after = match after {
            Some(user) => user,
            None => match self.get_user(id)? {
                Some(user) => user,
                None => {
                    return Err(call.invalid("the account is gone right after the change"));
                }
            },
        };
        let dropped = dropped_changes(update, &after);
        if !dropped.is_empty() {
            let fields: Vec<Field> = dropped.iter().map(|(f, _)| f.clone()).collect();
            let described: Vec<&str> = dropped.iter().map(|(_, d)| d.as_str()).collect();
            return Err(TargetError::Ignored {
                message: format!(
                    "{} {}: the target accepted the change but ignored {}{}",
                    call.method,
                    call.url,
                    described.join(", "),
                    if fields.contains(&Field::Active) {
                        ": this provider cannot deactivate accounts this way; use `mode delete`, \
                     or deprovision them in the provider"
                    } else {
                        ": this provider does not keep what roster writes there; stop mapping it, \
                     or fix it in the provider"
                    }
                ),
                fields,
            });
        }
        Ok(after.version.or(call.version_after(answer).ok().flatten()))
    }
}

/// The changes of `update` that `after` does not show: the plan's field, and the change
/// described for a message.
fn dropped_changes(update: &UserUpdate, after: &TargetUser) -> Vec<(Field, String)> {
    let mut dropped: Vec<(Field, String)> = Vec::new();
    let mut check = |field: &Field, ok: bool, what: String| {
        if !ok {
            dropped.push((field.clone(), what));
        }
    };
    if let Some(key) = &update.external_id {
        let kept = owner::written(after);
        check(
            &Field::Key,
            kept.as_deref() == Some(key),
            format!("`externalId` (sent {key:?}, it kept {kept:?})"),
        );
    }
    if let Some(username) = &update.username {
        check(
            &Field::Username,
            after.username.to_lowercase() == username.to_lowercase(),
            format!(
                "`userName` (sent {username:?}, it kept {:?})",
                after.username
            ),
        );
    }
    if let Some(name) = &update.name {
        check(
            &Field::Name,
            after.name.as_deref() == Some(name),
            format!("`displayName` (sent {name:?}, it kept {:?})", after.name),
        );
    }
    if let Some(email) = &update.email {
        check(
            &Field::Email,
            after
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email)),
            format!("`emails` (sent {email:?}, it kept {:?})", after.email),
        );
    }
    let phones: HashSet<String> = after
        .phones
        .iter()
        .map(|p| crate::model::phone_digits(p))
        .collect();
    for phone in &update.add_phones {
        check(
            &Field::Phone,
            phones.contains(&crate::model::phone_digits(phone)),
            format!("`phoneNumbers` (added {phone:?})"),
        );
    }
    for (path, value) in &update.fields {
        let now = after.fields.get(path);
        let field = Field::Attribute(path.clone());
        match value {
            FieldValue::Set(v) => check(
                &field,
                now == Some(v),
                format!("`{path}` (sent {v:?}, it kept {now:?})"),
            ),
            FieldValue::Clear => check(
                &field,
                now.is_none(),
                format!("`{path}` (cleared, it kept {now:?})"),
            ),
        }
    }
    if let Some(active) = update.active {
        check(
            &Field::Active,
            after.active == active,
            format!("`active` (sent {active}, it kept {})", after.active),
        );
    }
    dropped
}

/// `update` written into a resource being PUT back; `emails` is the full new list.
fn apply_update(
    object: &mut Map<String, Value>,
    update: &UserUpdate,
    emails: Option<Value>,
    fields: &[FieldPath],
) {
    if let Some(key) = &update.external_id {
        object.insert("externalId".into(), key.clone().into());
    }
    if let Some(username) = &update.username {
        object.insert("userName".into(), username.clone().into());
    }
    if let Some(name) = &update.name {
        object.insert("displayName".into(), name.clone().into());
    }
    if let Some(emails) = emails {
        object.insert("emails".into(), emails);
    }
    if !update.add_phones.is_empty() {
        let mut phones = multi_values(&Value::Object(object.clone()), "phoneNumbers").to_vec();
        phones.extend(
            update
                .add_phones
                .iter()
                .map(|p| json!({ "value": p, "type": "work" })),
        );
        object.insert("phoneNumbers".into(), Value::Array(phones));
    }
    for (name, value) in &update.fields {
        let path = fields
            .iter()
            .find(|f| &f.name == name)
            .cloned()
            .or_else(|| FieldPath::parse(name).ok());
        let Some(path) = path else { continue };
        match value {
            FieldValue::Set(v) => path.write(object, Value::String(v.clone())),
            FieldValue::Clear => path.clear(object),
        }
    }
    if let Some(active) = update.active {
        object.insert("active".into(), active.into());
    }
}

/// What an error answer without a body means, so that a message never ends in "HTTP 501: ".
fn empty_answer_detail(status: u16) -> Option<String> {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    Some(match status {
        501 => "Not Implemented, with an empty answer: the target does not support this request \
                (some providers implement only part of SCIM; see the README's compatibility table)"
            .to_string(),
        405 => {
            "Method Not Allowed, with an empty answer: the target does not take this method here"
                .to_string()
        }
        _ => format!("{}, with an empty answer", reason?),
    })
}

/// PATCH refused as a method (501, 405): the provider wants PUT.
fn is_patch_refused(err: &TargetError) -> bool {
    matches!(
        err,
        TargetError::Http {
            status: 501 | 405,
            ..
        }
    )
}

impl Target for ScimService {
    fn describe(&self) -> String {
        self.base.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::SCIM
    }

    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        let mut each = |user| {
            sink(user);
            true
        };
        match &self.users {
            Some(reader) => self.page_with(
                Resource::Users,
                "",
                reader,
                &|call, raw| self.user_of_raw(call, raw, None),
                |user| &user.id,
                &mut each,
            ),
            None => self.page(
                Resource::Users,
                "",
                &|call, resource| self.user_from(call, resource, None),
                |user| &user.id,
                &mut each,
            ),
        }
    }

    fn lists_changes(&self) -> bool {
        true
    }

    fn list_users_changed(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        sink: &mut dyn FnMut(TargetUser),
    ) -> Result<super::ChangedUsers, TargetError> {
        self.users_changed(since, sink)
    }

    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError> {
        let call = Call::new(Method::GET, self.resource_url(Resource::Users, id)?);
        match self.execute(&call) {
            Ok(answer) => self.user_from_reply(&call, &answer).map(Some),
            Err(TargetError::Http { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError> {
        // See `lookup.rs`: absence only from a filter proved honoured, else by a listing.
        match self.filtered::<TargetUser>(Attribute::UserName, username)? {
            Lookup::Found(user) => Ok(Some(user)),
            Lookup::Absent => Ok(None),
            Lookup::Unproven => {
                self.scan(&|user: &TargetUser| user.has(Attribute::UserName, username).then_some(0))
            }
        }
    }

    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
        let keyed = DesiredUser {
            key: self.external_id(&user.key),
            ..user.clone()
        };
        let body = create_body(&keyed, &self.fields);
        let call = Call::new(Method::POST, self.collection_url(Resource::Users)).body(&body);
        let answer = self.execute(&call)?;
        self.user_from_reply(&call, &answer)
    }

    /// `/Bulk`, when the provider serves it: see `bulk.rs`.
    fn bulk_creates(&self) -> Result<Option<usize>, TargetError> {
        self.bulk_operations()
    }

    fn create_users(&self, users: &[DesiredUser]) -> Vec<BulkCreate> {
        self.bulk_create(users)
    }

    fn update_user(
        &self,
        id: &str,
        version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        let keyed;
        let update = match &update.external_id {
            Some(key) => {
                keyed = UserUpdate {
                    external_id: Some(self.external_id(key)),
                    ..update.clone()
                };
                &keyed
            }
            None => update,
        };
        let url = self.resource_url(Resource::Users, id)?;
        let mut if_match = version.map(str::to_string);
        let mut emails = None;
        if let Some(email) = &update.email {
            // Read-modify-write of `emails`: the read must show the version the caller
            // planned against, and the write is conditional on what was read, so that an
            // address added meanwhile is not overwritten.
            let (resource, current) = self.fetch_user(id)?;
            if let (Some(expected), Some(current)) = (version, &current) {
                if expected != current {
                    return Err(TargetError::Stale {
                        method: "PATCH".into(),
                        url,
                    });
                }
            }
            if_match = if_match.or(current);
            emails = Some(emails_with(resource.get("emails"), email));
        }
        let ops = patch_operations(update, emails);
        if ops.is_empty() {
            return Ok(version.map(str::to_string));
        }
        if self.learned.patch_refused() {
            return self.put_user(id, version, update);
        }
        let body = json!({ "schemas": [PATCH_SCHEMA], "Operations": ops });
        let mut call = Call::new(Method::PATCH, url).body(&body);
        call.if_match = if_match;
        let answer = match self.execute(&call) {
            Ok(answer) => answer,
            Err(err) if is_patch_refused(&err) => {
                log::info!("{err}: the target refuses PATCH; changes go by GET then PUT");
                self.learned.refuse_patch();
                return self.put_user(id, version, update);
            }
            Err(err) => Err(err)?,
        };
        self.read_back(&call, &answer, id, update)
    }

    /// `active=false`, what Entra and Okta send on unassign.
    fn remove_user(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        let update = UserUpdate {
            active: Some(false),
            ..UserUpdate::default()
        };
        self.update_user(id, version, &update).map(|_| ())
    }

    fn delete_user(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        let mut call = Call::new(Method::DELETE, self.resource_url(Resource::Users, id)?);
        call.if_match = version.map(str::to_string);
        match self.execute(&call) {
            Ok(_) | Err(TargetError::Http { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    // Groups: see `scim/groups.rs`.

    fn list_groups(&self, sink: &mut dyn FnMut(TargetGroup)) -> Result<u64, TargetError> {
        self.list_all_groups(sink)
    }

    fn get_group(&self, id: &str) -> Result<Option<TargetGroup>, TargetError> {
        self.fetch_group(id)
    }

    fn find_group(&self, key: &str, name: &str) -> Result<Option<TargetGroup>, TargetError> {
        self.lookup_group(key, name)
    }

    fn create_group(&self, key: &str, name: &str) -> Result<TargetGroup, TargetError> {
        self.post_group(key, name)
    }

    fn update_group(
        &self,
        id: &str,
        version: Option<&str>,
        update: &GroupUpdate,
    ) -> Result<Option<String>, TargetError> {
        self.patch_group(id, version, update)
    }

    fn delete_group(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        self.remove_group(id, version)
    }

    fn max_member_changes(&self) -> usize {
        groups::MAX_MEMBER_CHANGES
    }

    fn change_members(
        &self,
        group_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), TargetError> {
        self.patch_members(group_id, add, remove)
    }
}

/// One request, kept whole so that it can be resent.
#[derive(Debug)]
struct Call {
    method: Method,
    url: String,
    body: Option<Vec<u8>>,
    if_match: Option<String>,
}

impl Call {
    fn new(method: Method, url: String) -> Call {
        Call {
            method,
            url,
            body: None,
            if_match: None,
        }
    }

    fn body(mut self, body: &Value) -> Call {
        // Straight into bytes: `Value`'s `Display` writes through a formatter, a piece at a
        // time. A `Value` always serializes.
        self.body =
            Some(serde_json::to_vec(body).unwrap_or_else(|_| body.to_string().into_bytes()));
        self
    }

    fn invalid(&self, message: impl Into<String>) -> TargetError {
        TargetError::InvalidResponse {
            method: self.method.to_string(),
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// Whether resending after a failure cannot apply the request twice. POST creates a new
    /// account each time, and a PATCH without If-Match may add a phone twice; a PATCH with
    /// If-Match that was applied answers 412 the second time (safe, if misleading).
    fn resend(&self) -> Resend {
        match self.method {
            Method::GET | Method::DELETE => Resend::Safe,
            Method::PATCH if self.if_match.is_some() => Resend::Safe,
            _ => Resend::OnlyUnprocessed,
        }
    }

    /// The body of a 2xx answer as JSON; anything else is an invalid response.
    fn json(&self, reply: &Reply) -> Result<Value, TargetError> {
        reply.json().map_err(|e| self.invalid(e.0))
    }

    /// The version after a change: 200 carries the resource, 204 nothing, so the version is
    /// in the body's `meta` or in the ETag.
    fn version_after(&self, reply: &Reply) -> Result<Option<String>, TargetError> {
        let from_body = if reply.is_empty() {
            None
        } else {
            meta_version(&self.json(reply)?)
        };
        Ok(from_body.or(etag(reply)))
    }
}

/// The ETag of an answer (the version, by RFC 7644 §3.14).
fn etag(reply: &Reply) -> Option<String> {
    reply.header(header::ETAG.as_str()).map(str::to_string)
}

/// A path segment or query value, percent-encoded.
fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A page of a ListResponse: its resources, read one way or another (`Pages`).
struct ListPage<R> {
    total: u64,
    resources: Vec<R>,
    len: u64,
}

impl<R> ListPage<R> {
    fn new(resources: Vec<R>, total: u64) -> ListPage<R> {
        ListPage {
            total,
            len: resources.len() as u64,
            resources,
        }
    }
}

/// An answer `UserReader` could not read: not JSON, said as for every answer that is not
/// (the parse into a tree says where).
fn not_json(call: &Call, reply: &Reply) -> TargetError {
    match call.json(reply) {
        Err(e) => e,
        Ok(_) => call.invalid("an answer that could not be read as JSON"),
    }
}

/// What makes a ListResponse unreadable, whichever way it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageFault {
    NoTotal,
    ResourcesNotAList,
}

impl PageFault {
    fn error(self, call: &Call) -> TargetError {
        call.invalid(match self {
            PageFault::NoTotal => "ListResponse without a numeric totalResults",
            PageFault::ResourcesNotAList => "ListResponse whose Resources is not a list",
        })
    }
}

/// A ListResponse's tree as a page of trees.
fn page_of_tree(mut body: Value) -> Result<ListPage<Value>, PageFault> {
    let total = get_ci(&body, "totalResults")
        .and_then(Value::as_u64)
        .ok_or(PageFault::NoTotal)?;
    // `Resources` may be left out when there are none (RFC 7644 §3.4.2).
    let resources = match take_ci(&mut body, "Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(PageFault::ResourcesNotAList),
    };
    Ok(ListPage::new(resources, total))
}

/// How a listing's pages are read.
trait Pages {
    /// A resource as the page holds it, perhaps borrowing the answer's bytes.
    type Raw<'a>;
    fn read<'a>(
        &self,
        call: &Call,
        reply: &'a Reply,
    ) -> Result<ListPage<Self::Raw<'a>>, TargetError>;
}

/// What a listing makes of each resource its pages hold.
type ParseRaw<'p, P, T> =
    dyn for<'a> Fn(&Call, <P as Pages>::Raw<'a>) -> Result<T, TargetError> + 'p;

/// Pages parsed into trees: any resource, read by whatever the caller reads of it.
struct Trees;

impl Pages for Trees {
    type Raw<'a> = Value;
    fn read(&self, call: &Call, reply: &Reply) -> Result<ListPage<Value>, TargetError> {
        page_of_tree(call.json(reply)?).map_err(|fault| fault.error(call))
    }
}

/// Pages of users, read straight from the answer's bytes.
impl Pages for UserReader {
    type Raw<'a> = RawUser<'a>;
    fn read<'a>(
        &self,
        call: &Call,
        reply: &'a Reply,
    ) -> Result<ListPage<RawUser<'a>>, TargetError> {
        match self.page(&reply.body) {
            Some(page) => page.into_page().map_err(|fault| fault.error(call)),
            None => Err(not_json(call, reply)),
        }
    }
}

/// A target attribute the mapping writes, split for reading and building documents.
#[derive(Debug, Clone)]
struct FieldPath {
    /// As configured: the key in `TargetUser::fields` and the PATCH path.
    name: String,
    /// The extension schema URN the attribute belongs to, if not the core User schema.
    schema: Option<String>,
    /// Attribute and sub-attributes, e.g. `["name", "givenName"]`.
    segments: Vec<String>,
}

impl FieldPath {
    fn parse(name: &str) -> Result<FieldPath, TargetError> {
        // An extension attribute is `<schema URN>:<attr>[.<sub>]`; the URN itself holds dots
        // (`...:enterprise:2.0:User`), so split at its last colon before splitting on dots.
        let (schema, path) = match name.rsplit_once(':') {
            Some((urn, attr)) if name.to_ascii_lowercase().starts_with("urn:") => {
                (Some(urn.to_string()), attr)
            }
            _ => (None, name),
        };
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        let valid = |s: &String| {
            s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if segments.len() > 2 || !segments.iter().all(valid) {
            return Err(TargetError::Setup(format!(
                "target field {name:?} is not a SCIM attribute path (like `title`, `name.givenName` \
                 or `<schema URN>:employeeNumber`)"
            )));
        }
        Ok(FieldPath {
            name: name.to_string(),
            schema,
            segments,
        })
    }

    /// The attribute the path starts at: the extension's schema URN, or the attribute.
    fn root(&self) -> &str {
        self.schema.as_deref().unwrap_or(&self.segments[0])
    }

    fn read<'v>(&self, resource: &'v Value) -> Option<&'v Value> {
        let mut node = match &self.schema {
            Some(urn) => get_ci(resource, urn)?,
            None => resource,
        };
        for segment in &self.segments {
            node = get_ci(node, segment)?;
        }
        Some(node)
    }

    /// Removes the value from a resource being written back, if it is there.
    fn clear(&self, resource: &mut Map<String, Value>) {
        let mut node = resource;
        if let Some(urn) = &self.schema {
            match node.get_mut(urn).and_then(Value::as_object_mut) {
                Some(inner) => node = inner,
                None => return,
            }
        }
        let Some((last, parents)) = self.segments.split_last() else {
            return;
        };
        for segment in parents {
            match node.get_mut(segment).and_then(Value::as_object_mut) {
                Some(inner) => node = inner,
                None => return,
            }
        }
        let key = node.keys().find(|k| k.eq_ignore_ascii_case(last)).cloned();
        if let Some(key) = key {
            node.remove(&key);
        }
    }

    /// Sets the value in a resource being built, creating the objects on the way.
    fn write(&self, resource: &mut Map<String, Value>, value: Value) {
        let mut node = resource;
        if let Some(urn) = &self.schema {
            node = object_entry(node, urn);
        }
        let (last, parents) = match self.segments.split_last() {
            Some(split) => split,
            None => return,
        };
        for segment in parents {
            node = object_entry(node, segment);
        }
        node.insert(last.clone(), value);
    }
}

/// The object under `key`, made one if it is missing or not an object.
fn object_entry<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(inner) => inner,
        _ => unreachable!("replaced by an object just above"),
    }
}

/// An attribute of a JSON object; SCIM attribute names are case-insensitive (RFC 7643 §2.1).
fn get_ci<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Takes out the value `get_ci` finds.
fn take_ci(value: &mut Value, name: &str) -> Option<Value> {
    let object = value.as_object_mut()?;
    if object.contains_key(name) {
        return object.remove(name);
    }
    let key = object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))?
        .clone();
    object.remove(&key)
}

fn get_str<'v>(value: &'v Value, name: &str) -> Option<&'v str> {
    get_ci(value, name).and_then(Value::as_str)
}

fn meta_version(resource: &Value) -> Option<String> {
    get_ci(resource, "meta")
        .and_then(|meta| get_str(meta, "version"))
        .map(str::to_string)
}

fn multi_values<'v>(resource: &'v Value, name: &str) -> &'v [Value] {
    get_ci(resource, name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Which of an account's addresses roster reads and writes as its e-mail: the primary one,
/// else the work one, else the first.
fn email_index<E>(
    emails: &[E],
    is_primary: impl Fn(&E) -> bool,
    is_work: impl Fn(&E) -> bool,
) -> Option<usize> {
    emails
        .iter()
        .position(is_primary)
        .or_else(|| emails.iter().position(is_work))
        .or(if emails.is_empty() { None } else { Some(0) })
}

/// `email_index` of a tree's `emails`.
fn email_index_of(emails: &[Value]) -> Option<usize> {
    email_index(
        emails,
        |e| get_ci(e, "primary").and_then(Value::as_bool) == Some(true),
        |e| get_str(e, "type").is_some_and(|t| t.eq_ignore_ascii_case("work")),
    )
}

/// The account's `emails` with roster's address set to `email`, every other one kept.
/// An address that is neither primary nor work (a lone "home" address, say) is not roster's
/// to overwrite: the new address is put first as the primary work one instead.
fn emails_with(current: Option<&Value>, email: &str) -> Value {
    let mut emails: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let owned = email_index_of(&emails).filter(|&i| {
        let e = &emails[i];
        get_ci(e, "primary").and_then(Value::as_bool) == Some(true)
            || get_str(e, "type").is_some_and(|t| t.eq_ignore_ascii_case("work"))
    });
    match owned.and_then(|i| emails[i].as_object_mut()) {
        Some(entry) => {
            entry.insert("value".into(), Value::String(email.to_string()));
        }
        None => emails.insert(
            0,
            json!({ "value": email, "type": "work", "primary": true }),
        ),
    }
    Value::Array(emails)
}

fn create_body(user: &DesiredUser, fields: &[FieldPath]) -> Value {
    let mut schemas = vec![Value::String(USER_SCHEMA.into())];
    let mut body = Map::new();
    body.insert("externalId".into(), user.key.clone().into());
    body.insert("userName".into(), user.username.clone().into());
    if let Some(name) = &user.name {
        body.insert("displayName".into(), name.clone().into());
    }
    if let Some(email) = &user.email {
        body.insert(
            "emails".into(),
            json!([{ "value": email, "type": "work", "primary": true }]),
        );
    }
    if !user.phones.is_empty() {
        let phones: Vec<Value> = user
            .phones
            .iter()
            .map(|p| json!({ "value": p, "type": "work" }))
            .collect();
        body.insert("phoneNumbers".into(), Value::Array(phones));
    }
    for (name, value) in &user.fields {
        let FieldValue::Set(value) = value else {
            continue;
        };
        // A field the service was not told about is still written, as a core attribute path.
        let path = fields
            .iter()
            .find(|f| &f.name == name)
            .cloned()
            .or_else(|| FieldPath::parse(name).ok());
        let Some(path) = path else { continue };
        if let Some(urn) = &path.schema {
            if !schemas.iter().any(|s| s.as_str() == Some(urn)) {
                schemas.push(Value::String(urn.clone()));
            }
        }
        path.write(&mut body, Value::String(value.clone()));
    }
    body.insert("active".into(), user.active.into());
    body.insert("schemas".into(), Value::Array(schemas));
    Value::Object(body)
}

/// The PATCH operations for an update, in a fixed order. `emails` is the full new list.
fn patch_operations(update: &UserUpdate, emails: Option<Value>) -> Vec<Value> {
    let replace =
        |path: &str, value: Value| json!({ "op": "replace", "path": path, "value": value });
    let mut ops = Vec::new();
    if let Some(external_id) = &update.external_id {
        ops.push(replace("externalId", external_id.clone().into()));
    }
    if let Some(username) = &update.username {
        ops.push(replace("userName", username.clone().into()));
    }
    if let Some(name) = &update.name {
        ops.push(replace("displayName", name.clone().into()));
    }
    if let Some(emails) = emails {
        ops.push(replace("emails", emails));
    }
    if !update.add_phones.is_empty() {
        // `add` on a multi-valued attribute appends (RFC 7644 §3.5.2.1): existing phones stay.
        let phones: Vec<Value> = update
            .add_phones
            .iter()
            .map(|p| json!({ "value": p, "type": "work" }))
            .collect();
        ops.push(json!({ "op": "add", "path": "phoneNumbers", "value": phones }));
    }
    for (path, value) in &update.fields {
        ops.push(match value {
            FieldValue::Set(v) => replace(path, v.clone().into()),
            FieldValue::Clear => json!({ "op": "remove", "path": path }),
        });
    }
    if let Some(active) = update.active {
        ops.push(replace("active", active.into()));
    }
    ops
}

/// The `scimType` and `detail` of an error answer. A body that is not a SCIM error (a proxy's
/// HTML page, plain text) is quoted, shortened, as the detail.
fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => {
            let scim_type = get_str(&value, "scimType").map(str::to_string);
            let detail = get_str(&value, "detail")
                .map(str::to_string)
                .or_else(|| Some(quote_body(body)));
            (scim_type, detail)
        }
        _ if body.iter().all(u8::is_ascii_whitespace) => (None, None),
        _ => (None, Some(quote_body(body))),
    }
}

fn check_api_root(base: &str) -> Result<(), TargetError> {
    let url = reqwest::Url::parse(base)
        .map_err(|e| TargetError::Setup(format!("target url {base:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Setup(format!(
            "target url {base:?} must start with https:// (or http://)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Also keeps credentials out of every error message, which all carry the URL.
        return Err(TargetError::Setup(
            "the target url carries credentials: put the token in `token` instead".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TargetError::Setup(format!(
            "target url {base:?} must be the API root, without ? or #"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn paths(names: &[&str]) -> Vec<FieldPath> {
        names
            .iter()
            .map(|n| FieldPath::parse(n).expect("valid path"))
            .collect()
    }

    #[test]
    fn retries_are_bounded_and_keep_creates_single() {
        use crate::http::{Failure, Jitter, retry_wait};
        use std::time::Duration;

        let get = Call::new(Method::GET, "u".into());
        let post = Call::new(Method::POST, "u".into());
        let delete = Call::new(Method::DELETE, "u".into());
        let http = |status, retry_after| Failure::Status {
            status,
            retry_after,
            body: String::new(),
            retries: 0,
        };
        let transport = Failure::Transport {
            message: "reset".into(),
            retries: 0,
        };
        // The whole backoff (jitter at its top), so the waits are exact.
        let wait = |call: &Call, failure: &Failure, retries| {
            retry_wait(failure, call.resend(), retries, Jitter::at(1.0))
        };
        assert_eq!(
            wait(&get, &http(500, None), 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            wait(&get, &http(500, None), 2),
            Some(Duration::from_secs(2))
        );
        assert_eq!(wait(&get, &http(500, None), 3), None);
        assert_eq!(wait(&get, &http(400, None), 0), None);
        assert_eq!(
            wait(&get, &http(429, Some(5)), 0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(wait(&get, &http(429, Some(3600)), 0), None);
        assert!(wait(&get, &transport, 0).is_some());
        assert!(wait(&delete, &transport, 0).is_some());
        assert_eq!(wait(&post, &transport, 0), None);
        assert_eq!(wait(&post, &http(500, None), 0), None);
        assert!(wait(&post, &http(503, None), 0).is_some());
        assert!(wait(&post, &http(429, None), 0).is_some());
        let mut patch = Call::new(Method::PATCH, "u".into());
        assert_eq!(wait(&patch, &transport, 0), None);
        patch.if_match = Some("W/\"1\"".into());
        assert!(wait(&patch, &transport, 0).is_some());
        assert_eq!(
            Call::new(Method::PUT, "u".into()).resend(),
            Resend::OnlyUnprocessed
        );
    }

    #[test]
    fn a_resource_becomes_a_target_user() {
        let resource = json!({
            "id": "42", "externalId": "k-1", "userName": "alice", "displayName": "Alice",
            "emails": [{"value": "a@home", "type": "home"}, {"value": "a@work", "type": "work"}],
            "phoneNumbers": [{"value": "+1 555"}, {"value": "+1 666", "type": "mobile"}],
            "name": {"givenName": "Al"}, "nickName": "ally", "title": 3,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "E7"},
            "meta": {"version": "W/\"3\""}
        });
        let fields = paths(&[
            "nickName",
            "name.givenName",
            "title",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ]);
        let user = RawUser::of_tree(&resource)
            .into_user(&fields)
            .expect("valid");
        assert_eq!(user.id, "42");
        assert_eq!(user.external_id.as_deref(), Some("k-1"));
        assert_eq!(user.name.as_deref(), Some("Alice"));
        assert_eq!(user.email.as_deref(), Some("a@work"));
        assert_eq!(user.phones, ["+1 555", "+1 666"]);
        assert!(user.active);
        assert_eq!(user.version.as_deref(), Some("W/\"3\""));
        assert_eq!(
            user.fields.get("nickName").map(String::as_str),
            Some("ally")
        );
        assert_eq!(
            user.fields.get("name.givenName").map(String::as_str),
            Some("Al")
        );
        assert_eq!(user.fields.get("title"), None, "only strings are read");
        assert_eq!(
            user.fields
                .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")
                .map(String::as_str),
            Some("E7")
        );

        assert!(
            RawUser::of_tree(&json!({"userName": "x"}))
                .into_user(&[])
                .is_err()
        );
        assert!(
            RawUser::of_tree(&json!({"id": "1"}))
                .into_user(&[])
                .is_err()
        );
        let inactive = RawUser::of_tree(
            &json!({"id": "1", "userName": "x", "active": "False", "externalId": ""}),
        )
        .into_user(&[])
        .expect("valid");
        assert!(!inactive.active);
        assert_eq!(inactive.external_id, None);
    }

    #[test]
    fn email_rule_prefers_primary_then_work_then_first() {
        let emails = |v: Value| {
            let emails = v.as_array().expect("array");
            email_index_of(emails).map(|i| emails[i].clone())
        };
        let primary = json!([{"value": "w", "type": "work"}, {"value": "p", "primary": true}]);
        assert_eq!(
            emails(primary)
                .and_then(|e| e["value"].as_str().map(String::from))
                .as_deref(),
            Some("p")
        );
        let first = json!([{"value": "h", "type": "home"}, {"value": "o", "type": "other"}]);
        assert_eq!(
            emails(first)
                .and_then(|e| e["value"].as_str().map(String::from))
                .as_deref(),
            Some("h")
        );
        assert_eq!(emails(json!([])), None);
    }

    #[test]
    fn email_change_keeps_the_other_addresses() {
        let current = json!([{"value": "h@x", "type": "home"}, {"value": "old@x", "type": "work", "primary": true}]);
        assert_eq!(
            emails_with(Some(&current), "new@x"),
            json!([{"value": "h@x", "type": "home"}, {"value": "new@x", "type": "work", "primary": true}])
        );
        let home_only = json!([{"value": "h@x", "type": "home"}]);
        assert_eq!(
            emails_with(Some(&home_only), "new@x"),
            json!([{"value": "new@x", "type": "work", "primary": true}, {"value": "h@x", "type": "home"}])
        );
        assert_eq!(
            emails_with(None, "new@x"),
            json!([{"value": "new@x", "type": "work", "primary": true}])
        );
    }

    #[test]
    fn create_body_nests_dotted_and_extension_fields() {
        let user = DesiredUser {
            key: "k".into(),
            username: "bob".into(),
            name: Some("Bob".into()),
            email: Some("b@x".into()),
            phones: vec!["1".into()],
            fields: BTreeMap::from([
                (
                    "name.givenName".to_string(),
                    FieldValue::Set("Robert".into()),
                ),
                ("nickName".to_string(), FieldValue::Clear),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
                        .to_string(),
                    FieldValue::Set("R&D".into()),
                ),
            ]),
            active: true,
        };
        let body = create_body(&user, &paths(&["name.givenName"]));
        assert_eq!(body["active"], true);
        let inactive = create_body(
            &DesiredUser {
                active: false,
                ..user.clone()
            },
            &[],
        );
        assert_eq!(
            inactive["active"], false,
            "created inactive when the source says so"
        );
        assert_eq!(body["externalId"], "k");
        assert_eq!(body["name"]["givenName"], "Robert");
        assert_eq!(body.get("nickName"), None);
        assert_eq!(
            body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
        assert_eq!(
            body["schemas"],
            json!([
                USER_SCHEMA,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ])
        );
        assert_eq!(
            body["emails"],
            json!([{"value": "b@x", "type": "work", "primary": true}])
        );
        assert_eq!(body["active"], true);
    }

    #[test]
    fn patch_operations_come_in_a_fixed_order() {
        let update = UserUpdate {
            external_id: Some("k".into()),
            username: Some("u".into()),
            name: Some("N".into()),
            email: Some("e".into()),
            add_phones: vec!["1".into()],
            fields: BTreeMap::from([
                ("nickName".into(), FieldValue::Clear),
                ("title".into(), FieldValue::Set("T".into())),
            ]),
            active: Some(false),
        };
        let ops = patch_operations(&update, Some(json!([{"value": "e"}])));
        let summary: Vec<String> = ops
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["op"].as_str().unwrap_or("?"),
                    o["path"].as_str().unwrap_or("?")
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "replace externalId",
                "replace userName",
                "replace displayName",
                "replace emails",
                "add phoneNumbers",
                "remove nickName",
                "replace title",
                "replace active"
            ]
        );
        assert!(patch_operations(&UserUpdate::default(), None).is_empty());
    }

    #[test]
    fn field_paths_are_checked() {
        assert!(FieldPath::parse("title").is_ok());
        assert!(FieldPath::parse("name.givenName").is_ok());
        assert!(FieldPath::parse("emails[type eq \"work\"].value").is_err());
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a.b.c").is_err());
    }

    #[test]
    fn error_bodies_give_type_and_detail() {
        let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"taken"}"#;
        assert_eq!(
            parse_error_body(scim),
            (Some("uniqueness".into()), Some("taken".into()))
        );
        assert_eq!(
            parse_error_body(b"<html>Bad gateway</html>"),
            (None, Some("<html>Bad gateway</html>".into()))
        );
        assert_eq!(parse_error_body(b""), (None, None));
        let long = "x".repeat(1000);
        assert_eq!(
            parse_error_body(long.as_bytes()).1.map(|d| d.len()),
            Some(crate::http::MAX_QUOTED_BODY + 3)
        );
    }
}
