//! TLS to an IPv6 literal URL (`ldaps://[::1]:636`, or StartTLS on `ldap://[fd00::5]`).
//!
//! ldap3 0.12 hands the URL's host to rustls with its brackets (`[::1]`), which rustls cannot
//! read as a server name, so such a URL could never be verified (shared/CONNECTORS.md). Here
//! roster connects the socket itself and gives ldap3 that stream, a stand-in host name, and a
//! rustls config whose verifier checks the certificate against the address itself (an IP
//! subjectAltName), with the same roots as any other connection: `ca-file`, or the system's.
//! The stand-in name is never sent (SNI is off: RFC 6066 forbids addresses in SNI anyway) and
//! never verified against; nothing about the verification is weakened.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What ldap3 is given as the host; the connection is already open to the real address.
const STAND_IN_HOST: &str = "ipv6-literal.invalid";

/// The address and port of an `ldap://` / `ldaps://` URL whose host is an IPv6 literal.
pub(super) fn literal(url: &str) -> Option<(Ipv6Addr, u16)> {
    let parsed = Url::parse(url).ok()?;
    let addr: Ipv6Addr = parsed
        .host_str()?
        .strip_prefix('[')?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let default_port = if parsed.scheme().eq_ignore_ascii_case("ldaps") {
        636
    } else {
        389
    };
    Some((addr, parsed.port().unwrap_or(default_port)))
}

/// The URL ldap3 is given instead: same scheme and port, the stand-in host.
pub(super) fn stand_in_url(url: &str, port: u16) -> String {
    let scheme = url.split_once("://").map_or("ldaps", |(scheme, _)| scheme);
    format!("{scheme}://{STAND_IN_HOST}:{port}")
}

/// Opens the TCP connection to the address.
pub(super) fn connect(addr: Ipv6Addr, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::new(IpAddr::V6(addr), port), timeout)
}

/// A client config that verifies the server's certificate against `addr`, whatever name
/// the handshake was started with.
pub(super) fn config_for(
    addr: Ipv6Addr,
    roots: RootCertStore,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AddressVerifier {
            inner,
            address: ServerName::IpAddress(IpAddr::V6(addr).into()),
        }))
        .with_no_client_auth();
    config.enable_sni = false;
    Ok(Arc::new(config))
}

/// The system's CA certificates, as ldap3 would use them.
pub(super) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::debug!("a system CA certificate could not be loaded: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    log::debug!("{added} system CA certificates, {ignored} unusable");
    roots
}

/// WebPKI verification, against the address rather than the name the handshake was given.
#[derive(Debug)]
struct AddressVerifier {
    inner: Arc<WebPkiServerVerifier>,
    address: ServerName<'static>,
}

impl ServerCertVerifier for AddressVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _stand_in: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.address, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_literals_are_found_with_their_ports() {
        assert_eq!(
            literal("ldaps://[::1]:6360"),
            Some((Ipv6Addr::LOCALHOST, 6360))
        );
        assert_eq!(literal("ldaps://[::1]"), Some((Ipv6Addr::LOCALHOST, 636)));
        assert_eq!(literal("ldap://[::1]"), Some((Ipv6Addr::LOCALHOST, 389)));
        assert_eq!(literal("ldaps://127.0.0.1:636"), None);
        assert_eq!(literal("ldaps://dc1.example.com"), None);
        assert_eq!(
            stand_in_url("ldaps://[::1]:6360", 6360),
            "ldaps://ipv6-literal.invalid:6360"
        );
    }
}
