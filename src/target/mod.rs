//! Target connectors: the user-management systems roster writes to.
//!
//! A target lists its users as a stream (`list_users`) and performs single-object changes
//! for the applier. Changes are expressed in roster's terms (`UserUpdate`); the connector
//! turns them into its own protocol (SCIM PATCH operations, LoginTC domain membership, ...).
//!
//! The seam is semantic: the applier asks to *remove* an account (take it out of service)
//! or to *delete* it, and each connector decides what that means (SCIM: `active=false` /
//! DELETE; LoginTC: leave the domain / leave the domain and delete the user). A target states
//! what it can hold (`Capabilities`), and `roster validate` refuses a mapping that asks for
//! more.

pub mod file;
pub mod logintc;
pub mod luma;
pub mod scim;
pub mod xmatters;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::TargetConfig;
use crate::model::{Capabilities, DesiredUser, FieldValue, TargetGroup, TargetUser};
use crate::secret::SecretError;

/// A user-management system to keep in line with the source.
pub trait Target: Send + Sync {
    /// A short description for messages, e.g. `https://example.com/scim/v2`. Never a secret.
    fn describe(&self) -> String;

    /// What this target can hold and do.
    fn capabilities(&self) -> Capabilities;

    /// How a user's remove and delete read in a plan on this target ("leaves domain Office
    /// VPN, token revoked"), where it has words of its own. Asked after `list_users`.
    fn removal_words(&self) -> RemovalWords {
        RemovalWords::default()
    }

    /// Reads every user, handing each to `sink` as it arrives. An error means the snapshot is
    /// incomplete (the caller must not plan on it).
    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError>;

    /// Whether this kind of target may be able to list only the users changed since a time
    /// (`list_users_changed`); the provider behind it may still turn out unable to.
    fn lists_changes(&self) -> bool {
        false
    }

    /// Lists only the users changed after `since` (SCIM: `meta.lastModified gt`), handing
    /// each to `sink`, and says how many users the target holds in all, so that the caller
    /// can tell whether any were deleted (a deletion leaves nothing to list). `Cannot` when
    /// the target cannot list by change after all: whatever reached `sink` must then be
    /// dropped and the users listed whole. An error means the listing is incomplete.
    fn list_users_changed(
        &self,
        since: DateTime<Utc>,
        sink: &mut dyn FnMut(TargetUser),
    ) -> Result<ChangedUsers, TargetError> {
        let _ = (since, sink);
        Ok(ChangedUsers::Cannot(format!(
            "the target {} cannot list its users by change",
            self.describe()
        )))
    }

    /// Fetches one user by the target's id; `None` when it no longer exists.
    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError>;

    /// Finds a user by username (case-insensitively, as SCIM compares userName).
    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError>;

    /// Creates a user, active, with `user.key` as its externalId where the target has one.
    /// A user that exists already is refused with `TargetError::Conflict`.
    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError>;

    /// Changes a user. With `version`, the change is conditional (If-Match) and a changed
    /// object answers `TargetError::Stale`. Returns the new version, if the target gives one.
    fn update_user(
        &self,
        id: &str,
        version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError>;

    /// Takes a user out of service, keeping the account (SCIM: `active=false`; LoginTC:
    /// out of the domain, which revokes the token). A user already out is not an error.
    fn remove_user(&self, id: &str, version: Option<&str>) -> Result<(), TargetError>;

    /// Deletes a user (LoginTC: out of the domain, then out of the organization). A user
    /// that is already gone is not an error.
    fn delete_user(&self, id: &str, version: Option<&str>) -> Result<(), TargetError>;

    // Creates in bulk, for the adds of an initial plan (`--initial`).

    /// The most users one `create_users` call takes, when this target can create many in
    /// one request (SCIM `/Bulk`, as the provider advertises it); `None`: one `create_user`
    /// per account. An error is the provider's configuration unreadable for a reason that
    /// would fail a create as well (credentials, a transient failure).
    fn bulk_creates(&self) -> Result<Option<usize>, TargetError> {
        Ok(None)
    }

    /// Creates `users` (as many as `bulk_creates` says, at most) in as few requests as the
    /// target allows, and says for each, in order, what became of it (`BulkCreate`). The
    /// default sends nothing: every user is `NotSent`, for `create_user` to create.
    fn create_users(&self, users: &[DesiredUser]) -> Vec<BulkCreate> {
        users.iter().map(|_| BulkCreate::NotSent).collect()
    }

    // Groups, for group sync. A target without groups keeps these defaults, which refuse
    // with a message naming the target; the default `list_groups` refusal stops a plan
    // before anything is applied.

    /// Reads every group with its members, handing each to `sink`. An error means the
    /// snapshot is incomplete.
    fn list_groups(&self, sink: &mut dyn FnMut(TargetGroup)) -> Result<u64, TargetError> {
        let _ = sink;
        Err(self.no_groups())
    }

    /// Fetches one group by the target's id; `None` when it no longer exists.
    fn get_group(&self, id: &str) -> Result<Option<TargetGroup>, TargetError> {
        let _ = id;
        Err(self.no_groups())
    }

    /// The group carrying externalId `key`, else the group named `name` (case-insensitively).
    fn find_group(&self, key: &str, name: &str) -> Result<Option<TargetGroup>, TargetError> {
        let _ = (key, name);
        Err(self.no_groups())
    }

    /// Creates an empty group named `name` with `key` as its externalId.
    fn create_group(&self, key: &str, name: &str) -> Result<TargetGroup, TargetError> {
        let _ = (key, name);
        Err(self.no_groups())
    }

    /// Renames a group or sets its externalId; conditional on `version` like `update_user`.
    fn update_group(
        &self,
        id: &str,
        version: Option<&str>,
        update: &GroupUpdate,
    ) -> Result<Option<String>, TargetError> {
        let _ = (id, version, update);
        Err(self.no_groups())
    }

    /// Deletes a group. A group that is already gone is not an error.
    fn delete_group(&self, id: &str, version: Option<&str>) -> Result<(), TargetError> {
        let _ = (id, version);
        Err(self.no_groups())
    }

    /// The most member changes (adds and removes together) one `change_members` call takes.
    fn max_member_changes(&self) -> usize {
        100
    }

    /// Adds and removes members (target user ids) of a group in one request. Adding a member
    /// already there, or removing one already gone, is not an error.
    fn change_members(
        &self,
        group_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), TargetError> {
        let _ = (group_id, add, remove);
        Err(self.no_groups())
    }

    // Batch targets (a file): the calls above stage the changes, `finish_apply` makes them.

    /// The calls stage their changes, and `finish_apply` makes them all at once (a file
    /// target writes its file once per apply). The applier then journals the staged actions
    /// as applied only after `finish_apply` succeeded, and as failed when it failed.
    fn writes_at_finish(&self) -> bool {
        false
    }

    /// Ends an apply: a batch target makes what was staged. Returns the state for the store
    /// to keep (`TargetConfig::kept_state_key`), for a target that cannot be listed, when it
    /// changed, and the accounts the target refused or took with a warning. An error means
    /// nothing staged was made.
    fn finish_apply(&self) -> Result<Finished, TargetError> {
        Ok(Finished::default())
    }

    /// The refusal of the group methods' defaults.
    fn no_groups(&self) -> TargetError {
        TargetError::Unsupported(format!(
            "the target {} has no groups: remove the `group` block and `group-all`",
            self.describe()
        ))
    }
}

/// What became of one user of a `create_users` call.
#[derive(Debug)]
#[must_use]
pub enum BulkCreate {
    /// Created, with the target's id.
    Created(String),
    /// The target refused this one and created nothing: its error (`TargetError::Conflict`
    /// for a duplicate, as `create_user` answers one).
    Refused(TargetError),
    /// Not sent, or refused with its whole request before anything was processed (too large
    /// for a request, Bulk not served after all): nothing was created, `create_user` may.
    NotSent,
    /// Sent, and what became of it is not known (a 5xx, a timeout, an answer without it): it
    /// may exist now, so it must be looked up before it is created again. Says why.
    Unknown(String),
}

/// How a listing of the users changed since a time went (`Target::list_users_changed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedUsers {
    /// `changed` users were handed over; the target holds `total` users in all.
    Listed { changed: u64, total: u64 },
    /// The target cannot list by change (why, in words): list it whole.
    Cannot(String),
}

/// How a batch target's `finish_apply` went, account by account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// The state for the store to keep, when it changed.
    pub kept: Option<String>,
    /// Accounts (target ids) the target refused, with its message: their actions failed.
    pub refused: BTreeMap<String, String>,
    /// Accounts the target took with a warning, with its message: their actions applied.
    pub warnings: BTreeMap<String, String>,
}

/// What a remove and a delete of a user mean on a target, in its words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalWords {
    pub remove: Option<String>,
    pub delete: Option<String>,
}

/// The changes to make to one target group. Unset members are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdate {
    pub external_id: Option<String>,
    pub name: Option<String>,
}

/// The changes to make to one target user. Unset members are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub external_id: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Phones to add; phones are never removed.
    pub add_phones: Vec<String>,
    pub fields: BTreeMap<String, FieldValue>,
    pub active: Option<bool>,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        *self == UserUpdate::default()
    }
}

/// Builds the target connector a config names. Does not connect yet.
/// `owner` is the config's owner, which a target that keeps owners writes with each account;
/// `fields` are the target field names the mapping writes (aliases and attributes); `kept`
/// is what the state store kept for a target that cannot be listed
/// (`TargetConfig::kept_state_key`).
pub fn open(
    config: &TargetConfig,
    owner: &str,
    fields: Vec<String>,
    kept: Option<&str>,
) -> Result<Box<dyn Target>, TargetError> {
    match config {
        TargetConfig::Scim(scim) => Ok(Box::new(
            scim::ScimService::new(scim, fields)?.with_owner(owner),
        )),
        TargetConfig::LoginTc(logintc) => Ok(Box::new(logintc::LoginTc::new(logintc)?)),
        TargetConfig::File(file) => Ok(Box::new(file::File::new(file, fields, kept)?)),
        TargetConfig::XMatters(xm) => Ok(Box::new(xmatters::XMatters::new(xm, fields)?)),
        TargetConfig::Luma(luma) => Ok(Box::new(luma::Luma::new(luma, fields, kept)?)),
    }
}

/// Why a target call failed. Says which call, on what, and what the target answered;
/// never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{method} {url}: {} (HTTP {status}){}", .who.refusal(), detail_suffix(.detail))]
    Unauthorized {
        method: String,
        url: String,
        status: u16,
        detail: Option<String>,
        /// Whose credential was refused, for the message.
        who: Credential,
    },
    #[error("{method} {url}: HTTP {status}{}{}", code_suffix(.code), detail_suffix(.detail))]
    Http {
        method: String,
        url: String,
        status: u16,
        /// The target's own error code (SCIM `scimType`, a LoginTC error code), if it gave one.
        code: Option<String>,
        detail: Option<String>,
        /// Seconds to wait before retrying, from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The object exists already (a create refused as a duplicate).
    #[error("{method} {url}: already exists (HTTP {status}){}", detail_suffix(.detail))]
    Conflict {
        method: String,
        url: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("{method} {url}: the object changed since the plan (stale: HTTP 412)")]
    Stale { method: String, url: String },
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    #[error("{method} {url}: unexpected answer: {message}")]
    InvalidResponse {
        method: String,
        url: String,
        message: String,
    },
    /// A file target's file could not be written (or its directory is missing).
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("target token: {0}")]
    Secret(SecretError),
    #[error("target setup: {0}")]
    Setup(String),
    /// The config asks for something this kind of target cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The target accepted a change and kept something else: `fields` are the plan's fields
    /// it dropped (recorded by apply, so that later plans leave them out and say why).
    #[error("{message}")]
    Ignored {
        fields: Vec<crate::plan::Field>,
        message: String,
    },
}

/// Which credential a target refused, so the message names it as its users know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A SCIM bearer token.
    Token,
    /// The LoginTC organization API key.
    LoginTcKey,
    /// The xMatters REST user's username and password (and `client-id` with OAuth).
    XMatters,
    /// The Luma user's username, password and sub-domain.
    Luma,
}

/// What a status means beyond "an HTTP error", as a connector reads its target's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusMeaning {
    /// The credential was refused.
    Unauthorized(Credential),
    /// The object changed since it was read (a failed `If-Match`).
    Stale,
    /// A create refused because the object exists.
    Conflict,
}

impl TargetError {
    /// A failure of the shared HTTP client in the seam's terms: the part every HTTP target
    /// maps alike. `status_detail` reads the target's own error body into its error code and
    /// a detail (already scrubbed); `meaning` says which statuses (with that code) mean more
    /// than an HTTP error on this target.
    pub(crate) fn from_http(
        method: String,
        url: String,
        failure: crate::http::Failure,
        status_detail: impl FnOnce(u16, &str) -> (Option<String>, Option<String>),
        meaning: impl FnOnce(u16, Option<&str>) -> Option<StatusMeaning>,
    ) -> TargetError {
        match failure {
            crate::http::Failure::Status {
                status,
                retry_after,
                body,
                ..
            } => {
                let (code, detail) = status_detail(status, &body);
                match meaning(status, code.as_deref()) {
                    Some(StatusMeaning::Unauthorized(who)) => TargetError::Unauthorized {
                        method,
                        url,
                        status,
                        detail,
                        who,
                    },
                    Some(StatusMeaning::Stale) => TargetError::Stale { method, url },
                    Some(StatusMeaning::Conflict) => TargetError::Conflict {
                        method,
                        url,
                        status,
                        detail,
                    },
                    None => TargetError::Http {
                        method,
                        url,
                        status,
                        code,
                        detail,
                        retry_after,
                    },
                }
            }
            crate::http::Failure::Transport { message, .. } => TargetError::Transport {
                method,
                url,
                message,
            },
            crate::http::Failure::Request(message) => TargetError::Setup(format!(
                "{method} {url}: cannot build the request: {message}"
            )),
        }
    }
}

impl Credential {
    fn refusal(self) -> &'static str {
        match self {
            Credential::Token => "the target refused the credentials",
            Credential::LoginTcKey => "the LoginTC API refused the key",
            Credential::XMatters => {
                "xMatters refused the credentials (check username and password, and client-id with OAuth)"
            }
            Credential::Luma => {
                "Luma refused the login (check username, password and sub-domain in target \"luma\")"
            }
        }
    }
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default()
}

impl TargetError {
    /// Worth retrying: 429, 5xx, timeouts and dropped connections.
    pub fn is_transient(&self) -> bool {
        match self {
            TargetError::Http { status, .. } => {
                *status == 429 || (*status >= 500 && !matches!(*status, 501 | 505))
            }
            TargetError::Transport { .. } => true,
            _ => false,
        }
    }

    /// A create refused because the account already exists.
    pub fn is_conflict(&self) -> bool {
        matches!(self, TargetError::Conflict { .. })
    }

    /// The target answered that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TargetError::Http { status: 404, .. })
    }

    /// How long the target asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            TargetError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

// By hand, not `#[from]`: the message already includes the cause, and a `source()` would make
// reports print it twice.
impl From<SecretError> for TargetError {
    fn from(e: SecretError) -> Self {
        TargetError::Secret(e)
    }
}

/// A reply's JSON body, or `TargetError::InvalidResponse` naming the call: how the REST
/// connectors (LoginTC, xMatters) read an answer.
pub(crate) fn reply_json(
    method: &reqwest::Method,
    reply: &crate::http::Reply,
) -> Result<serde_json::Value, TargetError> {
    reply.json().map_err(|e| TargetError::InvalidResponse {
        method: method.to_string(),
        url: reply.url.clone(),
        message: e.0,
    })
}
