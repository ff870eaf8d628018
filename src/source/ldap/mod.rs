//! LDAP and Active Directory as a source of users.
//!
//! One `read_users` call is one connection: connect (plain, LDAPS or StartTLS), simple bind
//! (or stay anonymous), one paged subtree search per configured base DN (and, with
//! `follow-referrals`, one connection per referral followed), unbind. Entries are
//! handed to the sink as they arrive, so memory stays flat however large the directory is.
//!
//! The client is ldap3's blocking `LdapConn`, which drives its own current-thread Tokio
//! runtime: it must run on a plain thread, never inside another runtime.
//!
//! Errors are sorted by the phase that failed, because each calls for a different fix:
//! `Connect` (network, host, port), `Tls` (certificates: the message names the problem and
//! the setting that fixes it), `Bind` (credentials), `Search` (the read started and did not
//! finish: whatever the sink received is incomplete and must not be planned from).
//! The bind password is only ever passed to ldap3; no message or log line contains it.
//!
//! How values become strings: ldap3 returns every value that is valid UTF-8 as text and the
//! others as bytes. `objectGUID` is always rendered from its bytes as the standard GUID
//! string (the first three fields little-endian, as Windows prints it), whichever way ldap3
//! returned it, since 16 random bytes are sometimes valid UTF-8. Any other binary value is
//! rendered as lowercase hex. ldap3 moves every value of an attribute to the binary side as
//! soon as one of them is not UTF-8, so such an attribute is hex throughout.
//!
//! Active Directory (`active-directory #true`):
//! - **Disabled and expired accounts**: `userAccountControl` with bit 0x2 set, or an
//!   `accountExpires` (100-ns ticks since 1601; 0 and 2^63-1 mean never) at or before now.
//!   Both attributes are requested whatever the mapping asks for. The source reads the clock
//!   for this; the planner never does. With `disabled "skip"` (the default) such an account is
//!   left out, so it is "missing from the source", which in remove mode takes it out of service
//!   in the target. With `disabled "inactive"` it is kept, its record marked
//!   `SourceRecord::out_of_service`; the mapping makes it a `DesiredUser` with `active: false`.
//! - **Ranged attributes.** AD returns at most `MaxValRange` (1500) values of an attribute per
//!   answer, as `member;range=0-1499`. Such an entry is held back until its search ends, then
//!   completed with base-scope searches for `member;range=1500-*` and so on, until a range ends
//!   in `*`; the values are merged under the plain name. A range that cannot be completed fails
//!   the read: a half-read attribute is never handed on.
//!
//! Referrals (`searchResRef`, which AD returns for its other partitions and domains) are taken
//! out of the result stream before `SearchEntry::construct`, which panics on them. They are
//! skipped unless `follow-referrals #true`; then they are followed (`referrals.rs`), with the
//! same TLS settings and bind, and a referral that cannot be followed fails the read.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{LdapConn, LdapConnSettings, LdapError, LdapResult, Scope, SearchEntry, StdStream};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::config::{DisabledAccounts, LdapSource};
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::{GroupQuery, GroupRecord, Source, SourceChange, SourceError, TrackedRead};

// Not wired into the read yet: its parsers and rules stand tested on their own (see its doc).
#[allow(dead_code)]
mod content_sync;
mod groups;
mod ipv6;
mod referrals;
mod sync_read;
mod tracking;

use referrals::{Chase, referral_urls};

/// AD's `userAccountControl` flag of a disabled account (ACCOUNTDISABLE).
const UAC_ACCOUNT_DISABLE: i64 = 0x2;
/// `accountExpires` values that mean "never".
const NEVER_EXPIRES: [i64; 2] = [0, i64::MAX];
/// Seconds between 1601-01-01 and 1970-01-01, the two epochs of `accountExpires` and Unix time.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;
/// More range requests than this for one entry means the server is not making progress.
const MAX_RANGE_REQUESTS: u32 = 10_000;

/// An LDAP directory (OpenLDAP, Active Directory, ...) read with a paged subtree search.
pub struct LdapDirectory {
    config: LdapSource,
    /// During an incremental read: the DNs of the changed accounts that `disabled "skip"`
    /// left out, which become explicit delete signals (the source says they are out).
    skipped: std::sync::Mutex<Option<Vec<String>>>,
}

/// A server to read from: the configured one, or one a referral names.
struct Server {
    /// `ldap://host:port` or `ldaps://host:port`.
    url: String,
    /// StartTLS on an `ldap://` URL.
    starttls: bool,
}

impl Server {
    /// Whether the connection is encrypted: LDAPS, or StartTLS on `ldap://`.
    fn encrypted(&self) -> bool {
        self.url.to_ascii_lowercase().starts_with("ldaps://") || self.starttls
    }
}

/// One search: where, how deep, which entries, which attributes.
struct Query<'a> {
    base: &'a str,
    scope: Scope,
    filter: &'a str,
    attrs: &'a [String],
}

/// What one paged search returned besides the entries handed on.
struct BaseRead {
    read: u64,
    /// The referral URLs met, as the server sent them.
    referrals: Vec<String>,
}

impl LdapDirectory {
    /// Keeps the settings; nothing is resolved or contacted until `read_users`.
    pub fn new(config: LdapSource) -> Self {
        LdapDirectory {
            config,
            skipped: std::sync::Mutex::new(None),
        }
    }

    fn url(&self) -> &str {
        &self.config.url.value
    }

    /// The limit for connecting (TCP, StartTLS and the TLS handshake together) and for each
    /// operation after that. Zero would make every operation fail at once, so it means one second.
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    /// The configured server.
    fn server(&self) -> Server {
        Server {
            url: self.url().to_string(),
            starttls: self.config.starttls,
        }
    }

    /// Resolved before any network traffic, so a missing secret is reported as such and not
    /// as a refused bind.
    fn bind_password(&self) -> Result<Option<Secret>, SourceError> {
        match (&self.config.bind_dn, &self.config.bind_password) {
            (Some(_), Some(secret)) => Ok(Some(secret.value.resolve()?)),
            _ => Ok(None),
        }
    }

    fn conn_settings(&self, server: &Server) -> Result<LdapConnSettings, SourceError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            // ldap3 ignores StartTLS on ldaps://, which is already encrypted.
            .set_starttls(server.starttls);
        if let Some(ca_file) = &self.config.ca_file {
            settings = settings.set_config(client_config_trusting(&ca_file.value)?);
        }
        // Without ca-file ldap3 builds a config from the system roots (rustls-native-certs).
        Ok(settings)
    }

    /// Opens a connection to `server` and binds, with the configured credentials.
    fn open(&self, server: &Server, password: Option<&Secret>) -> Result<LdapConn, SourceError> {
        let mut conn = self.connect(server)?;
        self.bind(&mut conn, server, password)?;
        Ok(conn)
    }

    fn connect(&self, server: &Server) -> Result<LdapConn, SourceError> {
        let settings = self.conn_settings(server)?;
        if self.config.bind_dn.is_some() && !server.encrypted() && first_warning_for(&server.url) {
            log::warn!(
                "the bind password is sent unencrypted to {}: use ldaps:// or starttls",
                server.url
            );
        }
        let (settings, url) = match ipv6::literal(&server.url).filter(|_| server.encrypted()) {
            Some((addr, port)) => {
                let stream = ipv6::connect(addr, port, self.timeout())
                    .map_err(|e| self.connect_error(server, &LdapError::from(e)))?;
                let roots = match &self.config.ca_file {
                    Some(ca_file) => roots_trusting(&ca_file.value)?,
                    None => ipv6::system_roots(),
                };
                let config = ipv6::config_for(addr, roots).map_err(|message| SourceError::Tls {
                    url: server.url.clone(),
                    message,
                })?;
                (
                    settings
                        .set_std_stream(StdStream::Tcp(stream))
                        .set_config(config),
                    ipv6::stand_in_url(&server.url, port),
                )
            }
            None => (settings, server.url.clone()),
        };
        LdapConn::with_settings(settings, &url).map_err(|e| self.connect_error(server, &e))
    }

    /// Sorts a failure to open the connection into a network problem or a TLS problem.
    fn connect_error(&self, server: &Server, err: &LdapError) -> SourceError {
        let url = server.url.clone();
        let ca_file = self.config.ca_file.as_ref().map(|c| c.value.as_path());
        if let Some(tls) = find_rustls_error(err) {
            return SourceError::Tls {
                url,
                message: describe_tls_error(tls, ca_file),
            };
        }
        match err {
            // During connect the only LDAP operation is the StartTLS request.
            LdapError::LdapResult { result } => SourceError::Tls {
                url,
                message: format!("the server refused StartTLS: {}", describe_result(result)),
            },
            LdapError::DNSName { .. } => SourceError::Tls {
                url,
                message: "the host in the URL is not a name or address a certificate can be \
                          checked against"
                    .to_string(),
            },
            LdapError::Timeout { .. } => SourceError::Connect {
                url,
                message: format!(
                    "no answer within {} s; check the host, the port and any firewall between",
                    self.timeout().as_secs()
                ),
            },
            LdapError::Io { source }
                if server.encrypted()
                    && matches!(
                        source.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
            {
                let how = match source.kind() {
                    io::ErrorKind::UnexpectedEof => "closed",
                    _ => "reset",
                };
                SourceError::Tls {
                    url,
                    message: format!(
                        "the server {how} the connection during the TLS handshake; is this port \
                         serving TLS (ldaps://) or plain LDAP (ldap://, with starttls)?"
                    ),
                }
            }
            LdapError::Io { source } if source.kind() == io::ErrorKind::ConnectionRefused => {
                SourceError::Connect {
                    url,
                    message:
                        "connection refused; is the server running and listening on this port?"
                            .to_string(),
                }
            }
            other => SourceError::Connect {
                url,
                message: other.to_string(),
            },
        }
    }

    /// Simple bind as `bind_dn`; without one the connection stays anonymous.
    fn bind(
        &self,
        conn: &mut LdapConn,
        server: &Server,
        password: Option<&Secret>,
    ) -> Result<(), SourceError> {
        let Some(dn) = &self.config.bind_dn else {
            log::debug!("reading {} anonymously (no bind-dn)", server.url);
            return Ok(());
        };
        let bind_error = |message: String| SourceError::Bind {
            url: server.url.clone(),
            dn: dn.value.clone(),
            // The server's diagnostic text is quoted in messages; never let it echo the password.
            message: match password {
                Some(p) => message.replace(p.expose(), "<redacted>"),
                None => message,
            },
        };
        // A simple bind with a DN and an empty password is an "unauthenticated bind", which
        // many servers accept as anonymous: it would look like success and read nothing.
        let Some(password) = password else {
            return Err(bind_error(
                "bind-dn is set but bind-password is not; add bind-password env=\"NAME\" or \
                 file=\"PATH\""
                    .to_string(),
            ));
        };
        conn.with_timeout(self.timeout());
        match conn
            .simple_bind(&dn.value, password.expose())
            .and_then(LdapResult::success)
        {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result }) => {
                Err(bind_error(self.describe_bind_refusal(&result)))
            }
            Err(other) => {
                let mut message = self.describe_transport_error(&other);
                if !server.encrypted()
                    && matches!(other, LdapError::ResultRecv { .. } | LdapError::EndOfStream)
                {
                    // What a TLS-only port does with a plain LDAP request.
                    message.push_str("; if this port serves LDAPS, use an ldaps:// URL");
                }
                Err(bind_error(message))
            }
        }
    }

    fn describe_bind_refusal(&self, result: &LdapResult) -> String {
        match result.rc {
            49 => {
                let from = self
                    .config
                    .bind_password
                    .as_ref()
                    .map(|s| format!(" (read from {})", s.value))
                    .unwrap_or_default();
                match ad_bind_subcode(&result.text) {
                    Some((code, what)) => format!(
                        "invalid credentials (LDAP result 49): Active Directory says {what} \
                         (data {code})"
                    ),
                    None => format!(
                        "invalid credentials (LDAP result 49); check bind-dn and the bind \
                         password{from}"
                    ),
                }
                .replace("{from}", &from)
            }
            8 | 13 => format!(
                "{}; the server wants an encrypted connection: use ldaps:// or starttls",
                describe_result(result)
            ),
            _ => describe_result(result),
        }
    }

    /// Failures of the connection itself, once it is open.
    fn describe_transport_error(&self, err: &LdapError) -> String {
        match err {
            LdapError::Timeout { .. } => format!("no answer within {} s", self.timeout().as_secs()),
            LdapError::FilterParsing => format!("invalid filter {:?}", self.config.filter.value),
            LdapError::EndOfStream
            | LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. } => format!("the connection was lost ({err})"),
            LdapError::LdapResult { result } => describe_result(result),
            other => other.to_string(),
        }
    }

    /// One paged search of `query` on `server`, every entry handed to `sink` as it arrives.
    /// Referrals met on the way (`searchResRef`, or a base that is itself a referral when
    /// `follow-referrals` is on) are returned, not followed: see `read_tree`.
    fn read_base(
        &self,
        conn: &mut LdapConn,
        server: &Server,
        query: &Query,
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<BaseRead, SourceError> {
        let base = query.base;
        let failed = |read: u64, message: String| SourceError::Search {
            url: server.url.clone(),
            base: base.to_string(),
            read,
            message,
        };
        let describe = |err: &LdapError| match err {
            LdapError::FilterParsing => format!("invalid filter {:?}", query.filter),
            other => self.describe_transport_error(other),
        };
        // No `EntriesOnly`: referrals are taken out of the stream here instead, so that they
        // can be followed; `SearchEntry::construct` must never see one (it panics on them).
        let page_size = i32::try_from(self.config.page_size.max(1)).unwrap_or(i32::MAX);
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(PagedResults::new(page_size))];
        // The timeout carries over to every page and restarts at every reply.
        conn.with_timeout(self.timeout());
        let mut stream = conn
            .streaming_search_with(
                adapters,
                base,
                query.scope,
                query.filter,
                query.attrs.to_vec(),
            )
            .map_err(|e| failed(0, describe(&e)))?;
        let mut read = 0;
        let mut left_out = 0;
        let mut referrals = Vec::new();
        // Entries with ranged attributes wait for the search to end: the connection is busy
        // with it until then.
        let mut held: Vec<SearchEntry> = Vec::new();
        let mut hand_on = |entry: SearchEntry, read: &mut u64| match self.account_record(entry) {
            Some(record) => {
                sink(record);
                *read += 1;
            }
            None => left_out += 1,
        };
        loop {
            match stream.next() {
                Ok(Some(entry)) if entry.is_intermediate() => {}
                Ok(Some(entry)) if entry.is_ref() => match referral_urls(entry) {
                    Ok(urls) => referrals.extend(urls),
                    Err(m) if self.config.follow_referrals => return Err(failed(read, m)),
                    Err(m) => log::debug!("{m} under {base}: skipped"),
                },
                Ok(Some(entry)) => {
                    let entry = SearchEntry::construct(entry);
                    if has_ranges(&entry) {
                        held.push(entry);
                    } else {
                        hand_on(entry, &mut read);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(failed(read, describe(&e))),
            }
        }
        // Entries can all arrive and the search still fail: a size or time limit, a base
        // that does not exist, a page the server refused. Only rc 0 means the read is complete,
        // or rc 10 (referral: the base is on another server) when referrals are followed.
        let result = stream.result();
        match result.rc {
            0 => {}
            10 if self.config.follow_referrals && !result.refs.is_empty() => {
                referrals.extend(result.refs.iter().cloned());
            }
            _ => return Err(failed(read, describe_search_result(&result))),
        }
        for mut entry in held {
            let dn = entry.dn.clone();
            complete_ranges(&mut entry, &mut |attr| self.read_range(conn, &dn, attr)).map_err(
                |message| failed(read, format!("ranged retrieval for {dn} failed: {message}")),
            )?;
            hand_on(entry, &mut read);
        }
        if left_out > 0 {
            log::info!(
                "left out {left_out} disabled or expired Active Directory accounts under {base}"
            );
        }
        log::debug!("read {read} entries under {base} from {}", server.url);
        Ok(BaseRead { read, referrals })
    }

    /// The record of an entry, or `None` for an Active Directory account out of service that
    /// `disabled "skip"` leaves out.
    fn account_record(&self, entry: SearchEntry) -> Option<SourceRecord> {
        let mut record = record_from_entry(entry);
        let Some(ad) = &self.config.active_directory else {
            return Some(record);
        };
        let Some(why) = out_of_service(&record, chrono::Utc::now().timestamp()) else {
            return Some(record);
        };
        match ad.disabled {
            DisabledAccounts::Skip => {
                log::debug!("{} is {why}: left out", record.origin);
                if let Ok(mut skipped) = self.skipped.lock()
                    && let Some(skipped) = skipped.as_mut()
                {
                    skipped.push(record.origin.clone());
                }
                None
            }
            DisabledAccounts::Inactive => {
                log::debug!(
                    "{} is {why}: kept, to be inactive in the target",
                    record.origin
                );
                record.out_of_service = true;
                Some(record)
            }
        }
    }

    /// One base-scope search of `dn` for one ranged attribute (`member;range=1500-*`).
    fn read_range(&self, conn: &mut LdapConn, dn: &str, attr: &str) -> Result<SearchEntry, String> {
        conn.with_timeout(self.timeout());
        let result = conn
            .search(dn, Scope::Base, "(objectClass=*)", vec![attr])
            .map_err(|e| self.describe_transport_error(&e))?;
        let (entries, _) = result
            .success()
            .map_err(|e| self.describe_transport_error(&e))?;
        entries
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .ok_or_else(|| format!("asked for {attr}, the server returned no entry"))
    }

    /// One whole read: connect and bind, one paged subtree search per base DN (and the
    /// referrals each returns, see `read_tree`), unbind.
    fn read_all(
        &self,
        bases: &[&str],
        filter: &str,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let mut chase = Chase::new(password.as_ref());
        let mut total = 0;
        for base in bases {
            let query = Query {
                base,
                scope: Scope::Subtree,
                filter,
                attrs,
            };
            total += self.read_tree(&mut conn, &server, &query, &mut chase, sink)?;
        }
        // The read is complete; a failed unbind changes nothing about it.
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        Ok(total)
    }

    /// The content-sync cookies of every base, when the server offers content sync and
    /// every base answers with one; `None` otherwise (modifyTimestamp tracking).
    fn content_sync_cookies(&self) -> Result<Option<sync_read::SyncCookie>, SourceError> {
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let bases: Vec<&str> = self
            .config
            .base_dns
            .iter()
            .map(|b| b.value.as_str())
            .collect();
        let failed = |message: String| SourceError::Search {
            url: server.url.clone(),
            base: bases.join("; "),
            read: 0,
            message: format!("taking the content-sync cookies: {message}"),
        };
        let cookies = match self.offers_content_sync(&mut conn).map_err(failed)? {
            true => self.take_cookies(&mut conn, &bases).map_err(failed)?,
            false => None,
        };
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        Ok(cookies)
    }

    /// An incremental read by content sync since `cookie` (see `sync_read`).
    fn read_tracked_by_sync(
        &self,
        attrs: &[String],
        cookie: &sync_read::SyncCookie,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let bases: Vec<&str> = self
            .config
            .base_dns
            .iter()
            .map(|b| b.value.as_str())
            .collect();
        let offered =
            self.offers_content_sync(&mut conn)
                .map_err(|message| SourceError::Search {
                    url: server.url.clone(),
                    base: bases.join("; "),
                    read: 0,
                    message: format!("reading the root DSE: {message}"),
                })?;
        if !offered {
            return Err(SourceError::NeedsCompleteRead(
                "the server no longer offers content sync (no Sync Request control in its \
                 root DSE)"
                    .into(),
            ));
        }
        let mut attrs = attrs.to_vec();
        attrs.push(sync_read::ENTRY_UUID.to_string());
        let (records, deleted, next) =
            self.read_changes(&mut conn, &server, &bases, &attrs, cookie, sink)?;
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        Ok(TrackedRead {
            records,
            deleted,
            cookie: Some(next.to_string()),
        })
    }

    /// The attributes to ask for: the mapping's, and what AD account states need.
    fn requested_attributes(&self, attrs: &[String]) -> Vec<String> {
        let mut attrs = attrs.to_vec();
        if self.config.active_directory.is_some() {
            for needed in ["useraccountcontrol", "accountexpires"] {
                if !attrs.iter().any(|a| a.eq_ignore_ascii_case(needed)) {
                    attrs.push(needed.to_string());
                }
            }
        }
        attrs
    }
}

impl Source for LdapDirectory {
    fn describe(&self) -> String {
        self.config.url.value.clone()
    }

    fn read_users(
        &mut self,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let attrs = self.requested_attributes(attrs);
        let bases: Vec<&str> = self
            .config
            .base_dns
            .iter()
            .map(|b| b.value.as_str())
            .collect();
        self.read_all(&bases, &self.config.filter.value, &attrs, sink)
    }

    fn read_groups(
        &mut self,
        query: &GroupQuery,
        sink: &mut dyn FnMut(GroupRecord),
    ) -> Result<u64, SourceError> {
        self.read_group_entries(query, sink)
    }

    fn tracks_changes(&self) -> bool {
        true
    }

    fn server_identity(&mut self) -> Result<String, SourceError> {
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let bases: Vec<String> = self
            .config
            .base_dns
            .iter()
            .map(|b| b.value.clone())
            .collect();
        let identity =
            tracking::identity(&mut conn, &server.url, &bases, self.timeout()).map_err(|message| {
                SourceError::Search {
                    url: server.url.clone(),
                    base: bases.join("; "),
                    read: 0,
                    message: format!("reading the server's identity: {message}"),
                }
            });
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        identity
    }

    fn check_cookie(&self, cookie: &str) -> Result<(), String> {
        if sync_read::SyncCookie::is_one(cookie) {
            let parsed = sync_read::SyncCookie::parse(cookie)?;
            let configured = self.config.base_dns.iter().map(|b| b.value.as_str());
            if !configured.eq(parsed.bases.iter().map(|(b, _)| b.as_str())) {
                return Err("the cookie is for other base DNs".into());
            }
            return Ok(());
        }
        tracking::Cookie::parse(cookie).map(|_| ())
    }

    fn read_tracked(
        &mut self,
        attrs: &[String],
        since: Option<&str>,
        sink: &mut dyn FnMut(SourceChange),
    ) -> Result<TrackedRead, SourceError> {
        let mut attrs = self.requested_attributes(attrs);
        if let Some(cookie) = since.filter(|c| sync_read::SyncCookie::is_one(c)) {
            let cookie = sync_read::SyncCookie::parse(cookie).map_err(SourceError::Unsupported)?;
            return self.read_tracked_by_sync(&attrs, &cookie, sink);
        }
        let since = since
            .map(tracking::Cookie::parse)
            .transpose()
            .map_err(SourceError::Unsupported)?;
        // Before the read: a change committed while it runs has a higher USN than this.
        let ad = self.ad_root()?;
        if let Some(tracking::Cookie::Usn(was)) = &since {
            let now = ad.as_ref().map(|a| &a.position);
            if now.is_none_or(|n| n.service != was.service || n.invocation_id != was.invocation_id)
            {
                return Err(SourceError::Unsupported(format!(
                    "the cookie counts update sequence numbers of the DC {} (invocationId {}), \
                     and {} is not that DC now: run a complete read",
                    was.service,
                    was.invocation_id,
                    self.url()
                )));
            }
        }
        // A complete read on a server with content sync: the cookies first, then the usual
        // paged read, each record with its entryUUID (see `sync_read`).
        // (Active Directory offers no content sync: it is tracked by uSNChanged.)
        let sync_cookie = match (&since, &ad) {
            (None, None) => self.content_sync_cookies()?,
            _ => None,
        };
        if sync_cookie.is_some() {
            attrs.push(sync_read::ENTRY_UUID.to_string());
            let bases: Vec<&str> = self
                .config
                .base_dns
                .iter()
                .map(|b| b.value.as_str())
                .collect();
            let records =
                self.read_all(&bases, &self.config.filter.value, &attrs, &mut |mut r| {
                    sync_read::mark(&mut r);
                    sink(SourceChange::Record(r));
                })?;
            return Ok(TrackedRead {
                records,
                deleted: 0,
                cookie: sync_cookie.map(|c| c.to_string()),
            });
        }
        attrs.push(tracking::MODIFY_TIMESTAMP.to_string());
        // AD: each record with its objectGUID, which a tombstone names too, so that a delete
        // is known not to be of a newer entry under the same DN (`SourceChange::Deleted`).
        if ad.is_some()
            && !attrs
                .iter()
                .any(|a| a.eq_ignore_ascii_case(tracking::OBJECT_GUID))
        {
            attrs.push(tracking::OBJECT_GUID.to_string());
        }
        let filter = match &since {
            Some(cookie) => cookie.filter(&self.config.filter.value),
            None => self.config.filter.value.clone(),
        };
        let bases: Vec<&str> = self
            .config
            .base_dns
            .iter()
            .map(|b| b.value.as_str())
            .collect();
        if let Ok(mut skipped) = self.skipped.lock() {
            *skipped = since.is_some().then(Vec::new);
        }
        let mut newest = tracking::Newest::default();
        let read = self.read_all(&bases, &filter, &attrs, &mut |mut record| {
            newest.see(&record);
            if ad.is_some() {
                record.source_id = record.first(tracking::OBJECT_GUID).map(str::to_lowercase);
            }
            sink(SourceChange::Record(record));
        });
        let mut skipped: Vec<(String, Option<String>)> = self
            .skipped
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_default()
            .into_iter()
            .map(|origin| (origin, None))
            .collect();
        let records = read?;
        if let (Some(tracking::Cookie::Usn(was)), Some(root)) = (&since, &ad) {
            skipped.extend(self.deleted_since(root, was, &bases)?);
        }
        let deleted = skipped.len() as u64;
        for (origin, id) in skipped {
            sink(SourceChange::Deleted { origin, id });
        }
        let cookie = match ad {
            // AD: where the DC stood when this read began, whatever the read saw.
            Some(root) => Some(tracking::Cookie::Usn(root.position)),
            // Nothing changed: the next read starts where this one did.
            None => newest.cookie().or(since),
        };
        Ok(TrackedRead {
            records,
            deleted,
            cookie: cookie.map(|c| c.to_string()),
        })
    }
}

impl LdapDirectory {
    /// The DC's rootDSE position if the server is Active Directory, on a connection of its own.
    fn ad_root(&self) -> Result<Option<tracking::AdRoot>, SourceError> {
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let root =
            tracking::ad_root(&mut conn, self.timeout()).map_err(|message| SourceError::Search {
                url: server.url.clone(),
                base: String::new(),
                read: 0,
                message: format!("reading the rootDSE: {message}"),
            });
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        root
    }

    /// The former DNs of the users deleted since `was`, each with its objectGUID, from the
    /// DC's tombstones.
    fn deleted_since(
        &self,
        root: &tracking::AdRoot,
        was: &tracking::UsnPosition,
        bases: &[&str],
    ) -> Result<Vec<(String, Option<String>)>, SourceError> {
        let Some(domain) = &root.domain else {
            log::warn!(
                "{}: the rootDSE names no defaultNamingContext, so deletes are not read",
                self.url()
            );
            return Ok(Vec::new());
        };
        let password = self.bind_password()?;
        let server = self.server();
        let mut conn = self.open(&server, password.as_ref())?;
        let deleted = tracking::deleted_since(
            &mut conn,
            domain,
            was,
            bases,
            self.timeout(),
            self.config.page_size,
        )
        .map_err(|message| SourceError::Search {
            url: server.url.clone(),
            base: format!("CN=Deleted Objects,{domain}"),
            read: 0,
            message: format!("reading deleted objects: {message}"),
        });
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", server.url);
        }
        deleted
    }
}

/// A Rustls config that trusts exactly the CA certificates in `path`, not the system roots:
/// a private directory CA should not make every public CA able to impersonate the directory.
fn client_config_trusting(path: &Path) -> Result<Arc<ClientConfig>, SourceError> {
    let roots = roots_trusting(path)?;
    // The provider is named rather than taken from the process default, which is ambiguous
    // (and panics) as soon as a second Rustls provider is compiled in.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::CaFile {
            path: path.display().to_string(),
            message: format!("TLS setup failed: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The CA certificates in `path`, each checked to be usable as a CA.
fn roots_trusting(path: &Path) -> Result<RootCertStore, SourceError> {
    let ca_error = |message: String| SourceError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))?;
    for (index, cert) in certs.enumerate() {
        let cert = cert.map_err(|e| ca_error(format!("certificate {}: {e}", index + 1)))?;
        roots.add(cert).map_err(|e| {
            ca_error(format!(
                "certificate {} cannot be used as a CA: {e}",
                index + 1
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(ca_error(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".to_string(),
        ));
    }
    Ok(roots)
}

/// The Rustls error behind an ldap3 error, if any. tokio-rustls wraps it in an `io::Error`,
/// whose `source()` skips the wrapped error itself, hence the `get_ref` at each step.
fn find_rustls_error<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// Says what was wrong with the server's certificate and which setting fixes it.
fn describe_tls_error(err: &rustls::Error, ca_file: Option<&Path>) -> String {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return format!("TLS handshake failed: {err}");
    };
    match cert {
        CertificateError::UnknownIssuer => match ca_file {
            Some(path) => format!(
                "certificate is not trusted (UnknownIssuer): no CA in ca-file {} signed it; set \
                 ca-file to the CA that signed the server certificate",
                path.display()
            ),
            None => "certificate is not trusted (UnknownIssuer); set ca-file to the CA that signed \
                     the server certificate"
                .to_string(),
        },
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            "the certificate has no subjectAltName at all, and certificates are checked \
             against their subjectAltName only (never the CN): the server needs a certificate \
             that lists its host names and addresses as subjectAltName (Samba's self-made one \
             has none)"
                .to_string()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate is not valid for the host in the URL (NotValidForName); use a host name or \
             address listed in the certificate's subjectAltName"
                .to_string()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired (Expired); the server needs a renewed certificate".to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet (NotValidYet); check the clocks of this machine and the server"
                .to_string()
        }
        CertificateError::Revoked => "certificate has been revoked (Revoked)".to_string(),
        other => format!("certificate was refused ({other:?})"),
    }
}

/// The sub-code Active Directory puts in the text of a refused bind (`... AcceptSecurityContext
/// error, data 533, v4563`), in plain words with what to do. `None` for other servers' text
/// and for codes AD does not document for binds.
fn ad_bind_subcode(text: &str) -> Option<(&'static str, &'static str)> {
    const CODES: &[(&str, &str)] = &[
        (
            "52e",
            "the password is wrong for this account: check the bind password{from}",
        ),
        (
            "525",
            "there is no such user: check bind-dn (the DN, or user@domain, of the account)",
        ),
        (
            "530",
            "the account may not log on at this time of day (its logon hours)",
        ),
        (
            "531",
            "the account may not log on from this computer (its allowed workstations)",
        ),
        (
            "532",
            "the account's password has expired: set a new one for the bind account and \
             update the bind password",
        ),
        (
            "533",
            "the account is disabled: enable the bind account in Active Directory",
        ),
        (
            "701",
            "the account has expired (accountExpires): extend it in Active Directory",
        ),
        (
            "773",
            "the account must change its password before it can log on: set a new password \
             and update the bind password",
        ),
        (
            "775",
            "the account is locked out after too many failed logons: wait for the lockout to \
             end or unlock it, and check that the bind password is right",
        ),
    ];
    let lower = text.to_ascii_lowercase();
    let (_, after) = lower.split_once("data ")?;
    let code: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    CODES
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(code, what)| (*code, *what))
}

/// A failed search result, with a hint where one helps.
fn describe_search_result(result: &LdapResult) -> String {
    let hint = match result.rc {
        32 => "; check base-dn: the server has no such entry",
        3 | 4 | 11 => "; the server stopped the search at a limit: raise the bind account's limits",
        50 => "; the bind account may not search here",
        10 => {
            return format!(
                "{}; the base is on another server ({}): point base-dn at that server or set \
                 follow-referrals #true",
                describe_result(result),
                result.refs.join(", ")
            );
        }
        _ => "",
    };
    format!("{}{hint}", describe_result(result))
}

/// `invalidCredentials (LDAP result 49): server text`.
fn describe_result(result: &LdapResult) -> String {
    let name = match result.rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        88 => "abandoned",
        _ => "error",
    };
    let text = result.text.trim();
    if text.is_empty() {
        format!("{name} (LDAP result {})", result.rc)
    } else {
        format!("{name} (LDAP result {}): {text}", result.rc)
    }
}

/// Why an Active Directory account is out of service, if it is: `"disabled"`
/// (`userAccountControl` bit 0x2) or `"expired"` (`accountExpires` at or before `now_unix`).
/// Values that are not numbers say nothing; they are logged.
fn out_of_service(record: &SourceRecord, now_unix: i64) -> Option<&'static str> {
    let number = |name: &str| -> Option<i64> {
        let value = record.first(name)?;
        match value.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                log::warn!("{}: {name} {value:?} is not a number", record.origin);
                None
            }
        }
    };
    if number("useraccountcontrol").is_some_and(|uac| uac & UAC_ACCOUNT_DISABLE != 0) {
        return Some("disabled");
    }
    let expires = number("accountexpires").filter(|t| !NEVER_EXPIRES.contains(t))?;
    (filetime_to_unix(expires) <= now_unix).then_some("expired")
}

/// 100-ns ticks since 1601-01-01 UTC → seconds since 1970-01-01 UTC.
fn filetime_to_unix(ticks: i64) -> i64 {
    ticks.div_euclid(10_000_000) - FILETIME_UNIX_OFFSET_SECS
}

/// `member;range=0-1499` → (`member`, 0, Some(1499)); `member;range=1500-*` → (.., None).
/// Other options stay in the name: `member;binary;range=0-9` → `member;binary`.
fn parse_range(name: &str) -> Option<(String, u64, Option<u64>)> {
    let mut base = Vec::new();
    let mut range = None;
    for part in name.split(';') {
        match part.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("range=") => range = Some(&part[6..]),
            _ => base.push(part),
        }
    }
    let (start, end) = range?.split_once('-')?;
    let start = start.parse().ok()?;
    let end = match end {
        "*" => None,
        end => Some(end.parse().ok()?),
    };
    Some((base.join(";").to_ascii_lowercase(), start, end))
}

fn has_ranges(entry: &SearchEntry) -> bool {
    entry
        .attrs
        .keys()
        .chain(entry.bin_attrs.keys())
        // Options are after a `;`: most names have none and are not parsed.
        .any(|name| name.contains(';') && parse_range(name).is_some())
}

/// Moves the values of each ranged attribute (`member;range=0-1499`) onto its plain,
/// lowercase name (`member`). Returns, for each range that is not the last, the attribute and
/// the start of the next range; and the ranges found, for checking an answer.
fn merge_ranges<V>(attrs: &mut HashMap<String, Vec<V>>) -> Vec<(String, u64, Option<u64>)> {
    let ranged: Vec<String> = attrs
        .keys()
        .filter(|name| parse_range(name).is_some())
        .cloned()
        .collect();
    let mut found = Vec::new();
    for name in ranged {
        let Some((base, start, end)) = parse_range(&name) else {
            continue;
        };
        let values = attrs.remove(&name).unwrap_or_default();
        attrs.entry(base.clone()).or_default().extend(values);
        found.push((base, start, end));
    }
    found
}

/// Completes every ranged attribute of `entry`: asks `fetch` for `NAME;range=N-*` from the end
/// of each range until the server answers a range that ends in `*`, merging the values under
/// the plain name. `fetch` is a base-scope search of the entry.
fn complete_ranges(
    entry: &mut SearchEntry,
    fetch: &mut dyn FnMut(&str) -> Result<SearchEntry, String>,
) -> Result<(), String> {
    let mut pending: Vec<(String, u64)> = Vec::new();
    let queue = |found: Vec<(String, u64, Option<u64>)>, pending: &mut Vec<(String, u64)>| {
        for (base, _, end) in found {
            if let Some(end) = end {
                pending.push((base, end + 1));
            }
        }
    };
    let found = merge_ranges(&mut entry.attrs);
    queue(found, &mut pending);
    let found = merge_ranges(&mut entry.bin_attrs);
    queue(found, &mut pending);
    let mut requests = 0;
    while let Some((base, start)) = pending.pop() {
        requests += 1;
        if requests > MAX_RANGE_REQUESTS {
            return Err(format!(
                "more than {MAX_RANGE_REQUESTS} range requests; the server is not making progress"
            ));
        }
        let wanted = format!("{base};range={start}-*");
        let mut part = fetch(&wanted)?;
        let mut found = merge_ranges(&mut part.attrs);
        found.extend(merge_ranges(&mut part.bin_attrs));
        found.retain(|(name, _, _)| *name == base);
        let next = match found.as_slice() {
            [(_, got, end)] if *got == start => *end,
            [] => {
                return Err(format!(
                    "asked for {wanted}, the answer has no range of it (did the entry change \
                     during the read?)"
                ));
            }
            other => {
                let got: Vec<String> = other
                    .iter()
                    .map(|(_, s, e)| {
                        format!("{s}-{}", e.map_or("*".to_string(), |e| e.to_string()))
                    })
                    .collect();
                return Err(format!(
                    "asked for {wanted}, the answer has range {}",
                    got.join(", ")
                ));
            }
        };
        if let Some(values) = part.attrs.remove(&base) {
            entry.attrs.entry(base.clone()).or_default().extend(values);
        }
        if let Some(values) = part.bin_attrs.remove(&base) {
            entry
                .bin_attrs
                .entry(base.clone())
                .or_default()
                .extend(values);
        }
        if let Some(end) = next {
            if end < start {
                return Err(format!("asked for {wanted}, the answer ends at {end}"));
            }
            pending.push((base, end + 1));
        }
    }
    Ok(())
}

/// A search entry as a `SourceRecord`: origin is the DN, attribute names lowercase.
fn record_from_entry(entry: SearchEntry) -> SourceRecord {
    let mut record = SourceRecord::new(entry.dn);
    for (name, values) in entry.attrs {
        if is_guid_attribute(&name) {
            let name = name.to_ascii_lowercase();
            for value in values {
                record.push(&name, render_binary(&name, value.as_bytes()));
            }
        } else {
            record.extend(name, values);
        }
    }
    for (name, values) in entry.bin_attrs {
        let name = name.to_ascii_lowercase();
        for value in values {
            record.push(&name, render_binary(&name, &value));
        }
    }
    record
}

pub(crate) fn is_guid_attribute(name: &str) -> bool {
    name.eq_ignore_ascii_case("objectguid")
}

/// A GUID attribute of 16 bytes as a GUID string; any other binary value as lowercase hex.
pub(crate) fn render_binary(lowercase_name: &str, bytes: &[u8]) -> String {
    match <&[u8; 16]>::try_from(bytes) {
        Ok(guid) if is_guid_attribute(lowercase_name) => render_guid(guid),
        _ => hex(bytes),
    }
}

/// The text form of a Windows GUID: the first three fields (4, 2 and 2 bytes) are stored
/// little-endian, the last 8 bytes in order. This is how AD tools print `objectGUID`.
pub fn render_guid(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        hex(&b[10..])
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Whether this run has not yet warned about `url`: a plan connects more than once (groups,
/// users, ranged attributes, referrals) and one warning per server says it all.
fn first_warning_for(url: &str) -> bool {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    match WARNED.lock() {
        Ok(warned) if warned.iter().any(|w| w == url) => false,
        Ok(mut warned) => {
            warned.push(url.to_string());
            true
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_renders_first_three_fields_little_endian() {
        let bytes = [
            0xe6, 0x0c, 0x8b, 0x2d, 0x32, 0xaa, 0x31, 0x4f, 0xa6, 0xe8, 0x0a, 0x1b, 0x2c, 0x3d,
            0x4e, 0x5f,
        ];
        assert_eq!(render_guid(&bytes), "2d8b0ce6-aa32-4f31-a6e8-0a1b2c3d4e5f");
    }

    #[test]
    fn binary_values_other_than_guids_are_hex() {
        assert_eq!(
            render_binary("jpegphoto", &[0xff, 0xd8, 0x00, 0x10]),
            "ffd80010"
        );
        // A 16-byte value is a GUID only under a GUID attribute name.
        assert_eq!(render_binary("objectsid", &[0xab; 16]), "ab".repeat(16));
        // An objectGUID of the wrong length is shown as it is, not forced into a GUID.
        assert_eq!(render_binary("objectguid", &[1, 2, 3]), "010203");
    }

    /// An AD account record with the two attributes that decide its state.
    fn account(uac: Option<&str>, expires: Option<&str>) -> SourceRecord {
        let mut record = SourceRecord::new("CN=Test,OU=Staff,DC=corp,DC=example,DC=com");
        if let Some(uac) = uac {
            record.push("userAccountControl", uac);
        }
        if let Some(expires) = expires {
            record.push("accountExpires", expires);
        }
        record
    }

    #[test]
    fn disabled_accounts_are_found_by_user_account_control_bit_2() {
        let now = 1_700_000_000;
        for (uac, want) in [
            ("512", None),               // NORMAL_ACCOUNT
            ("514", Some("disabled")),   // NORMAL_ACCOUNT | ACCOUNTDISABLE
            ("66048", None),             // ... | DONT_EXPIRE_PASSWORD
            ("66050", Some("disabled")), // ... | DONT_EXPIRE_PASSWORD | ACCOUNTDISABLE
            ("2", Some("disabled")),
            ("4096", None), // WORKSTATION_TRUST_ACCOUNT
            (" 514 ", Some("disabled")),
            ("not a number", None),
        ] {
            assert_eq!(
                out_of_service(&account(Some(uac), None), now),
                want,
                "{uac}"
            );
        }
        assert_eq!(out_of_service(&account(None, None), now), None);
    }

    #[test]
    fn expired_accounts_are_found_by_account_expires_and_zero_and_max_mean_never() {
        // 2020-01-01T00:00:00Z is 132223104000000000 ticks since 1601, as AD stores it.
        let jan_2020 = 1_577_836_800;
        assert_eq!(filetime_to_unix(132_223_104_000_000_000), jan_2020);
        let expires = "132223104000000000";
        assert_eq!(
            out_of_service(&account(Some("512"), Some(expires)), jan_2020 + 1),
            Some("expired")
        );
        assert_eq!(
            out_of_service(&account(Some("512"), Some(expires)), jan_2020),
            Some("expired"),
            "an account expires at its accountExpires"
        );
        assert_eq!(
            out_of_service(&account(Some("512"), Some(expires)), jan_2020 - 1),
            None
        );
        for never in ["0", "9223372036854775807"] {
            assert_eq!(
                out_of_service(&account(Some("512"), Some(never)), i64::MAX / 2),
                None,
                "{never} means never"
            );
        }
        assert_eq!(
            out_of_service(&account(Some("514"), Some("0")), jan_2020),
            Some("disabled")
        );
        assert_eq!(
            out_of_service(&account(None, Some("garbage")), jan_2020),
            None
        );
    }

    #[test]
    fn range_options_are_parsed() {
        assert_eq!(
            parse_range("member;range=0-1499"),
            Some(("member".to_string(), 0, Some(1499)))
        );
        assert_eq!(
            parse_range("member;range=1500-*"),
            Some(("member".to_string(), 1500, None))
        );
        assert_eq!(
            parse_range("Member;Range=3000-4499"),
            Some(("member".to_string(), 3000, Some(4499)))
        );
        assert_eq!(
            parse_range("member;binary;range=0-9"),
            Some(("member;binary".to_string(), 0, Some(9)))
        );
        assert_eq!(parse_range("member"), None);
        assert_eq!(parse_range("member;range=x-9"), None);
        assert_eq!(parse_range("member;range=10"), None);
        assert_eq!(parse_range("memberOf;lang-en"), None);
    }

    fn members(from: usize, to: usize) -> Vec<String> {
        (from..to)
            .map(|i| format!("CN=User {i:05},OU=Staff,DC=corp,DC=example,DC=com"))
            .collect()
    }

    /// An entry as AD returns it: the first 1500 `member` values under a ranged name, and an
    /// empty plain `member`.
    fn big_group() -> SearchEntry {
        let mut attrs = HashMap::new();
        attrs.insert("member;range=0-1499".to_string(), members(0, 1500));
        attrs.insert("member".to_string(), Vec::new());
        attrs.insert("cn".to_string(), vec!["Everyone".to_string()]);
        SearchEntry {
            dn: "CN=Everyone,OU=Groups,DC=corp,DC=example,DC=com".to_string(),
            attrs,
            bin_attrs: HashMap::new(),
        }
    }

    fn answer(name: &str, values: Vec<String>) -> SearchEntry {
        SearchEntry {
            dn: "CN=Everyone,OU=Groups,DC=corp,DC=example,DC=com".to_string(),
            attrs: HashMap::from([(name.to_string(), values)]),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn ranged_values_merge_under_the_plain_name() {
        let mut entry = big_group();
        assert!(has_ranges(&entry));
        let found = merge_ranges(&mut entry.attrs);
        assert_eq!(found, [("member".to_string(), 0, Some(1499))]);
        assert_eq!(entry.attrs["member"].len(), 1500);
        assert!(!has_ranges(&entry));
        assert_eq!(entry.attrs["cn"], ["Everyone"]);
    }

    #[test]
    fn ranged_attributes_are_completed_until_the_range_ends_in_a_star() {
        let mut entry = big_group();
        let mut asked = Vec::new();
        complete_ranges(&mut entry, &mut |attr| {
            asked.push(attr.to_string());
            Ok(match attr {
                "member;range=1500-*" => answer("member;range=1500-2999", members(1500, 3000)),
                "member;range=3000-*" => answer("member;range=3000-*", members(3000, 3210)),
                other => return Err(format!("unexpected request {other}")),
            })
        })
        .expect("completed");
        assert_eq!(asked, ["member;range=1500-*", "member;range=3000-*"]);
        assert_eq!(
            entry.attrs["member"],
            members(0, 3210),
            "every value, in order"
        );
        let record = record_from_entry(entry);
        assert_eq!(record.values("member").len(), 3210);
        assert!(record.attrs.keys().all(|k| !k.contains("range")));
    }

    #[test]
    fn a_range_that_cannot_be_completed_is_an_error() {
        // The server answers a different range than asked for.
        let err = complete_ranges(&mut big_group(), &mut |_| {
            Ok(answer("member;range=1000-1999", members(1000, 2000)))
        })
        .expect_err("wrong range");
        assert!(err.contains("the answer has range 1000-1999"), "{err}");
        // The attribute is gone from the answer (the group changed meanwhile).
        let err = complete_ranges(&mut big_group(), &mut |_| Ok(answer("cn", vec![])))
            .expect_err("no range");
        assert!(err.contains("no range of it"), "{err}");
        // The search itself fails.
        let err = complete_ranges(&mut big_group(), &mut |_| {
            Err("busy (LDAP result 51)".into())
        })
        .expect_err("failed search");
        assert_eq!(err, "busy (LDAP result 51)");
        // A server that never ends the range.
        let mut n = 0;
        let err = complete_ranges(&mut big_group(), &mut |attr| {
            n += 1;
            let start: usize = attr["member;range=".len()..attr.len() - 2]
                .parse()
                .expect("a start");
            Ok(answer(
                &format!("member;range={start}-{start}"),
                members(0, 1),
            ))
        })
        .expect_err("no progress");
        assert!(err.contains("not making progress"), "{err}");
        assert_eq!(n, MAX_RANGE_REQUESTS);
    }

    #[test]
    fn ad_object_guids_render_as_guid_strings_whichever_side_ldap3_puts_them() {
        let guid = [
            0xe6, 0x0c, 0x8b, 0x2d, 0x32, 0xaa, 0x31, 0x4f, 0xa6, 0xe8, 0x0a, 0x1b, 0x2c, 0x3d,
            0x4e, 0x5f,
        ];
        let binary = SearchEntry {
            dn: "CN=Ada,OU=Staff,DC=corp,DC=example,DC=com".to_string(),
            attrs: HashMap::from([("sAMAccountName".to_string(), vec!["ada".to_string()])]),
            bin_attrs: HashMap::from([("objectGUID".to_string(), vec![guid.to_vec()])]),
        };
        let record = record_from_entry(binary);
        assert_eq!(
            record.values("objectguid"),
            ["2d8b0ce6-aa32-4f31-a6e8-0a1b2c3d4e5f"]
        );
        assert_eq!(record.values("samaccountname"), ["ada"]);
        // 16 random bytes can be valid UTF-8; ldap3 then hands them over as text.
        let text = SearchEntry {
            dn: "CN=Bo,OU=Staff,DC=corp,DC=example,DC=com".to_string(),
            attrs: HashMap::from([("objectGUID".to_string(), vec!["ABCDEFGHIJKLMNOP".into()])]),
            bin_attrs: HashMap::new(),
        };
        assert_eq!(
            record_from_entry(text).values("objectguid"),
            ["44434241-4645-4847-494a-4b4c4d4e4f50"]
        );
    }

    fn ad_directory(disabled: DisabledAccounts) -> LdapDirectory {
        let spanned = |s: &str| crate::config::Spanned::new(s.to_string(), (0, 0).into());
        LdapDirectory::new(LdapSource {
            url: spanned("ldaps://dc1.corp.example.com"),
            starttls: false,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            base_dns: vec![spanned("DC=corp,DC=example,DC=com")],
            filter: spanned("(objectClass=user)"),
            page_size: 1000,
            timeout_secs: 5,
            active_directory: Some(crate::config::ActiveDirectory { disabled }),
            follow_referrals: false,
        })
    }

    fn ad_entry(uac: &str) -> SearchEntry {
        SearchEntry {
            dn: "CN=Test,OU=Staff,DC=corp,DC=example,DC=com".to_string(),
            attrs: HashMap::from([
                ("userAccountControl".to_string(), vec![uac.to_string()]),
                ("accountExpires".to_string(), vec!["0".to_string()]),
            ]),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn disabled_accounts_are_skipped_or_marked_inactive() {
        let skip = ad_directory(DisabledAccounts::Skip);
        assert!(skip.account_record(ad_entry("514")).is_none());
        let kept = skip.account_record(ad_entry("512")).expect("enabled");
        assert!(!kept.out_of_service);

        let mark = ad_directory(DisabledAccounts::Inactive);
        let marked = mark.account_record(ad_entry("514")).expect("kept");
        assert!(marked.out_of_service);
        assert!(
            !mark
                .account_record(ad_entry("512"))
                .expect("enabled")
                .out_of_service
        );

        assert_eq!(
            skip.requested_attributes(&["samaccountname".into(), "userAccountControl".into()]),
            ["samaccountname", "userAccountControl", "accountexpires"]
        );
    }

    #[test]
    fn active_directory_bind_subcodes_are_named_in_plain_words() {
        let refused = |data: &str| {
            let directory = ad_directory(DisabledAccounts::Skip);
            directory.describe_bind_refusal(&LdapResult {
                rc: 49,
                matched: String::new(),
                text: format!(
                    "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, \
                     data {data}, v4563\u{0}"
                ),
                refs: Vec::new(),
                ctrls: Vec::new(),
            })
        };
        for (code, words) in [
            ("52e", "the password is wrong"),
            ("525", "there is no such user"),
            ("530", "logon hours"),
            ("531", "from this computer"),
            ("532", "password has expired"),
            ("533", "the account is disabled"),
            ("701", "the account has expired"),
            ("773", "must change its password"),
            ("775", "locked out"),
        ] {
            let message = refused(code);
            assert!(
                message.starts_with("invalid credentials (LDAP result 49): Active Directory says")
                    && message.contains(words)
                    && message.ends_with(&format!("(data {code})")),
                "{code}: {message}"
            );
            assert!(!message.contains("{from}"), "{message}");
        }
        // Another server's text, or a code AD does not document for binds: the plain advice.
        assert_eq!(
            refused("999"),
            "invalid credentials (LDAP result 49); check bind-dn and the bind password"
        );
        assert_eq!(ad_bind_subcode("Invalid credentials"), None);
    }

    #[test]
    fn a_certificate_without_any_subject_alt_name_is_said_to_have_none() {
        use rustls::pki_types::ServerName;
        let none = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("dc1.example.com")
                .expect("a name")
                .to_owned(),
            presented: Vec::new(),
        });
        let message = describe_tls_error(&none, None);
        assert!(message.contains("no subjectAltName at all"), "{message}");
        let other = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("dc1.example.com")
                .expect("a name")
                .to_owned(),
            presented: vec!["DnsName(\"dc2.example.com\")".into()],
        });
        assert!(describe_tls_error(&other, None).contains("NotValidForName"));
    }

    #[test]
    fn ldap_result_descriptions_name_the_code() {
        let result = LdapResult {
            rc: 32,
            matched: String::new(),
            text: "no such base".to_string(),
            refs: vec![],
            ctrls: vec![],
        };
        assert_eq!(
            describe_search_result(&result),
            "noSuchObject (LDAP result 32): no such base; check base-dn: the server has no such entry"
        );
    }
}
