//! LDAP and Active Directory as a source of users.
//!
//! One `read_users` call is one connection: connect (plain, LDAPS or StartTLS), simple bind
//! (or stay anonymous), one paged subtree search per configured base DN, unbind. Entries are
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

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConn, LdapConnSettings, LdapError, LdapResult, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::config::LdapSource;
use crate::model::SourceRecord;
use crate::secret::Secret;

use super::{GroupQuery, GroupRecord, Source, SourceError};

mod groups;

/// An LDAP directory (OpenLDAP, Active Directory, ...) read with a paged subtree search.
pub struct LdapDirectory {
    config: LdapSource,
}

impl LdapDirectory {
    /// Keeps the settings; nothing is resolved or contacted until `read_users`.
    pub fn new(config: LdapSource) -> Self {
        LdapDirectory { config }
    }

    fn url(&self) -> &str {
        &self.config.url.value
    }

    /// The limit for connecting (TCP, StartTLS and the TLS handshake together) and for each
    /// operation after that. Zero would make every operation fail at once, so it means one second.
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    /// Whether the connection is encrypted: LDAPS, or StartTLS on `ldap://`.
    fn uses_tls(&self) -> bool {
        self.url().to_ascii_lowercase().starts_with("ldaps://") || self.config.starttls
    }

    /// Resolved before any network traffic, so a missing secret is reported as such and not
    /// as a refused bind.
    fn bind_password(&self) -> Result<Option<Secret>, SourceError> {
        match (&self.config.bind_dn, &self.config.bind_password) {
            (Some(_), Some(secret)) => Ok(Some(secret.value.resolve()?)),
            _ => Ok(None),
        }
    }

    fn conn_settings(&self) -> Result<LdapConnSettings, SourceError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            // ldap3 ignores StartTLS on ldaps://, which is already encrypted.
            .set_starttls(self.config.starttls);
        if self.config.tls_insecure_skip_verify {
            log::warn!(
                "TLS certificate verification is off for {} (tls-insecure-skip-verify): anyone on \
                 the network path can read and change this connection, bind password included",
                self.url()
            );
            // ldap3 installs its accept-anything verifier only in a config it builds itself,
            // so the ca-file config must not be passed along here: it would verify after all.
            settings = settings.set_no_tls_verify(true);
        } else if let Some(ca_file) = &self.config.ca_file {
            settings = settings.set_config(client_config_trusting(&ca_file.value)?);
        }
        // Without ca-file ldap3 builds a config from the system roots (rustls-native-certs).
        Ok(settings)
    }

    fn connect(&self) -> Result<LdapConn, SourceError> {
        let settings = self.conn_settings()?;
        if self.config.bind_dn.is_some() && !self.uses_tls() {
            log::warn!(
                "the bind password is sent unencrypted to {}: use ldaps:// or starttls",
                self.url()
            );
        }
        LdapConn::with_settings(settings, self.url()).map_err(|e| self.connect_error(&e))
    }

    /// Sorts a failure to open the connection into a network problem or a TLS problem.
    fn connect_error(&self, err: &LdapError) -> SourceError {
        let url = self.url().to_string();
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
                if self.uses_tls() && source.kind() == io::ErrorKind::UnexpectedEof =>
            {
                SourceError::Tls {
                    url,
                    message: "the server closed the connection during the TLS handshake; is this \
                              port serving TLS (ldaps://) or plain LDAP (ldap://, with starttls)?"
                        .to_string(),
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
    fn bind(&self, conn: &mut LdapConn, password: Option<&Secret>) -> Result<(), SourceError> {
        let Some(dn) = &self.config.bind_dn else {
            log::debug!("reading {} anonymously (no bind-dn)", self.url());
            return Ok(());
        };
        let bind_error = |message: String| SourceError::Bind {
            url: self.url().to_string(),
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
                if !self.uses_tls()
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
                format!(
                    "invalid credentials (LDAP result 49); check bind-dn and the bind password{from}"
                )
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

    /// One paged subtree search under `base`, every entry handed to `sink` as it arrives.
    /// Returns how many entries were read.
    fn read_base(
        &self,
        conn: &mut LdapConn,
        base: &str,
        filter: &str,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let failed = |read: u64, message: String| SourceError::Search {
            url: self.url().to_string(),
            base: base.to_string(),
            read,
            message,
        };
        // EntriesOnly must come first: it drops referrals (searchResRef), on which
        // `SearchEntry::construct` would panic; AD returns them for its partitions.
        let page_size = i32::try_from(self.config.page_size.max(1)).unwrap_or(i32::MAX);
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(page_size)),
        ];
        // The timeout carries over to every page and restarts at every reply.
        conn.with_timeout(self.timeout());
        let mut stream = conn
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .map_err(|e| failed(0, self.describe_transport_error(&e)))?;
        let mut read = 0;
        loop {
            match stream.next() {
                Ok(Some(entry)) => {
                    sink(record_from_entry(SearchEntry::construct(entry)));
                    read += 1;
                }
                Ok(None) => break,
                Err(e) => return Err(failed(read, self.describe_transport_error(&e))),
            }
        }
        // Entries can all arrive and the search still fail: a size or time limit, a base
        // that does not exist, a page the server refused. Only rc 0 means the read is complete.
        let result = stream.result();
        if result.rc != 0 {
            return Err(failed(read, describe_search_result(&result)));
        }
        log::debug!("read {read} entries under {base} from {}", self.url());
        Ok(read)
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
        let password = self.bind_password()?;
        let mut conn = self.connect()?;
        self.bind(&mut conn, password.as_ref())?;
        let mut total = 0;
        for base in &self.config.base_dns {
            total += self.read_base(
                &mut conn,
                &base.value,
                &self.config.filter.value,
                attrs,
                sink,
            )?;
        }
        // The read is complete; a failed unbind changes nothing about it.
        if let Err(e) = conn.unbind() {
            log::debug!("unbind from {} failed: {e}", self.url());
        }
        Ok(total)
    }

    fn read_groups(
        &mut self,
        query: &GroupQuery,
        sink: &mut dyn FnMut(GroupRecord),
    ) -> Result<u64, SourceError> {
        self.read_group_entries(query, sink)
    }
}

/// A Rustls config that trusts exactly the CA certificates in `path`, not the system roots:
/// a private directory CA should not make every public CA able to impersonate the directory.
fn client_config_trusting(path: &Path) -> Result<Arc<ClientConfig>, SourceError> {
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
    // The provider is named rather than taken from the process default, which is ambiguous
    // (and panics) as soon as a second Rustls provider is compiled in.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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

/// A failed search result, with a hint where one helps.
fn describe_search_result(result: &LdapResult) -> String {
    let hint = match result.rc {
        32 => "; check base-dn: the server has no such entry",
        3 | 4 | 11 => "; the server stopped the search at a limit: raise the bind account's limits",
        50 => "; the bind account may not search here",
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

/// A search entry as a `SourceRecord`: origin is the DN, attribute names lowercase.
fn record_from_entry(entry: SearchEntry) -> SourceRecord {
    let mut record = SourceRecord::new(entry.dn);
    for (name, values) in entry.attrs {
        let name = name.to_ascii_lowercase();
        for value in values {
            let value = if is_guid_attribute(&name) {
                render_binary(&name, value.as_bytes())
            } else {
                value
            };
            record.push(&name, value);
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

pub(crate) fn is_guid_attribute(lowercase_name: &str) -> bool {
    lowercase_name == "objectguid"
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
