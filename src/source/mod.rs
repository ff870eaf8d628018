//! Source connectors: the directories roster reads desired state from.
//!
//! A source streams `SourceRecord`s to a sink as it reads them, page by page; it never
//! collects the whole directory. An error from `read_users` means the read is incomplete:
//! the caller must then refuse to plan, so that a half-read directory never turns into
//! removals. Connectors are the only code (with targets) that touches the network.

pub mod cherwell;
pub mod csv;
pub mod freshservice;
pub mod ldap;
pub mod ldif;
pub(crate) mod rest;
pub mod rest_api;
pub mod servicenow;

pub use crate::model::{GroupQuery, GroupRecord, canonical_dn};

use crate::config::SourceConfig;
use crate::model::SourceRecord;
use crate::secret::SecretError;

/// What a tracked read hands on: a record (new or changed, or every record of a complete
/// read), or an explicit signal that the record at `origin` is gone from the source.
#[derive(Debug)]
pub enum SourceChange {
    Record(SourceRecord),
    /// The source says so (a delete, or an account it now leaves out): never inferred from
    /// a record's absence.
    Deleted {
        origin: String,
        /// The source's own id of the record that was there, when the source names it (an
        /// AD tombstone's `objectGUID`): a record of another id read at `origin` by the same
        /// read is a newer entry there, which the delete is not about.
        id: Option<String>,
    },
    /// An explicit delete that names the record by the source's own id only (LDAP content
    /// sync names deleted entries by `entryUUID`): the record read with that
    /// `SourceRecord::source_id` is gone.
    DeletedId {
        id: String,
    },
}

/// How a tracked read ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackedRead {
    pub records: u64,
    /// Delete signals handed on (once the pipeline has read them: those that took a record
    /// out of the desired state).
    pub deleted: u64,
    /// Where the next incremental read starts; `None` when the source gave nothing to start
    /// from (the next read is then complete).
    pub cookie: Option<String>,
}

/// A directory to read users from.
pub trait Source: Send {
    /// A short description for messages, e.g. `ldap://127.0.0.1:3890`. Never holds a secret.
    fn describe(&self) -> String;

    /// Reads every user record, handing each to `sink` as soon as it arrives. `attrs` are the
    /// attribute names the mapping needs (lowercase). Returns the number of records read.
    fn read_users(
        &mut self,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError>;

    /// Reads every group entry `query` selects, handing each to `sink` with its members as
    /// references. Like `read_users`, an error means the read is incomplete. Sources without
    /// groups keep this default, which says so.
    fn read_groups(
        &mut self,
        query: &GroupQuery,
        sink: &mut dyn FnMut(GroupRecord),
    ) -> Result<u64, SourceError> {
        let _ = (query, sink);
        Err(SourceError::Unsupported(format!(
            "the source {} has no groups to read: remove the `group` block",
            self.describe()
        )))
    }

    /// Whether this source tracks changes, so that it can be read incrementally. Sources
    /// that cannot (export files) keep this default and are always read whole.
    fn tracks_changes(&self) -> bool {
        false
    }

    /// Who answers at the configured address (for LDAP, the URL with the base entries'
    /// `entryUUID` and AD's DC identity): a cookie from another server is not used.
    fn server_identity(&mut self) -> Result<String, SourceError> {
        Err(self.untracked())
    }

    /// Why `cookie` cannot be a starting point, if it cannot (a cookie this source did not
    /// write, or damaged). Checked before any read.
    fn check_cookie(&self, cookie: &str) -> Result<(), String> {
        let _ = cookie;
        Err(format!("the source {} keeps no cookies", self.describe()))
    }

    /// A read that also says where the next incremental read starts: every record when
    /// `since` is `None`, otherwise only what changed since that cookie (and the explicit
    /// deletes the source reports). Like `read_users`, an error means the read is incomplete.
    fn read_tracked(
        &mut self,
        attrs: &[String],
        since: Option<&str>,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        let _ = (attrs, since, sink);
        Err(self.untracked())
    }

    /// The error of a tracked read asked of a source that tracks nothing.
    fn untracked(&self) -> SourceError {
        SourceError::Unsupported(format!(
            "the source {} tracks no changes: it is always read whole",
            self.describe()
        ))
    }
}

/// Builds the source connector a config names. Does not connect yet.
pub fn open(config: &SourceConfig) -> Box<dyn Source> {
    match config {
        SourceConfig::Ldap(ldap) => Box::new(ldap::LdapDirectory::new(ldap.clone())),
        SourceConfig::ServiceNow(instance) => {
            Box::new(servicenow::ServiceNowInstance::new(instance.clone()))
        }
        SourceConfig::Freshservice(helpdesk) => {
            Box::new(freshservice::FreshserviceHelpdesk::new(helpdesk.clone()))
        }
        SourceConfig::Cherwell(server) => Box::new(cherwell::CherwellServer::new(server.clone())),
        SourceConfig::Rest(api) => Box::new(rest_api::RestApi::new(api.clone())),
        SourceConfig::Csv(csv) => Box::new(csv::CsvFile::new(csv.clone())),
        SourceConfig::Ldif(ldif) => Box::new(ldif::LdifFile::new(ldif.clone())),
    }
}

/// Why a source read failed. Every variant says what was being done and where; none
/// carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("TLS with {url} failed: {message}")]
    Tls { url: String, message: String },
    #[error("bind as {dn} to {url} failed: {message}")]
    Bind {
        url: String,
        dn: String,
        message: String,
    },
    #[error("search of {base} on {url} failed part-way, after {read} records: {message}")]
    Search {
        url: String,
        base: String,
        read: u64,
        message: String,
    },
    /// A referral that `follow-referrals #true` could not follow (a URL that cannot be
    /// followed, or a connection, bind or search there that failed): the entries it holds
    /// are missing, so the read is incomplete.
    #[error("following the referral {referral} failed, so the read is incomplete: {message}")]
    Referral { referral: String, message: String },
    #[error("bind password for the source: {0}")]
    Secret(SecretError),
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: String, message: String },
    /// A REST source answered 401 or 403: the credentials (or their rights) were refused.
    #[error("{url}: the source refused the credentials (HTTP {status}); {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    /// A REST source read that did not finish. Whatever the sink received is a part of the
    /// directory, never to be planned from.
    #[error("reading {url} failed after {read} records, so the read is incomplete: {message}")]
    Incomplete {
        url: String,
        read: u64,
        message: String,
    },
    /// A REST source's secret (password, client secret, API key) could not be read.
    #[error("{what} for the source: {error}")]
    Credential {
        what: &'static str,
        error: SecretError,
    },
    /// The source cannot be set up as configured (a URL that is not one, an HTTP client
    /// that cannot be built).
    #[error("source setup: {0}")]
    Setup(String),
    /// A file source (CSV, LDIF) that cannot be opened, or with a line that cannot be read;
    /// `line` is where the bad record starts, when the problem has a place in the file.
    #[error(
        "{path}{}: {message}",
        line.map(|l| format!(", line {l}")).unwrap_or_default()
    )]
    File {
        path: String,
        line: Option<u64>,
        message: String,
    },
    /// An incremental read the source cannot answer with changes (LDAP content sync: the
    /// server's session log no longer reaches back to the cookie, or it answered with a
    /// present phase): nothing it read may be used; the caller makes a complete read instead.
    #[error("an incremental read is not possible: {0}")]
    NeedsCompleteRead(String),
    /// The config asks for something this kind of source cannot do.
    #[error("{0}")]
    Unsupported(String),
}

// By hand, not `#[from]`: the message already includes the cause, and a `source()` would make
// reports print it twice.
impl From<SecretError> for SourceError {
    fn from(e: SecretError) -> Self {
        SourceError::Secret(e)
    }
}
