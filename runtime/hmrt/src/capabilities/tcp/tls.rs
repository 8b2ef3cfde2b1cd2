//! TLS for `tcp.exchange`: rustls with the aws-lc-rs provider and the platform's roots (what
//! reqwest uses too), or, when the guest turns verification off, a verifier that accepts any
//! certificate but still checks the handshake's signatures; and the leaf certificate's
//! subject, issuer and validity, read with x509-parser.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::sandbox::bindings::tcp::Certificate;
use crate::sandbox::bindings::types::HostError;

/// Longest subject or issuer handed to a guest, in bytes.
const NAME_MAX: usize = 1024;

/// A parsed `tls` record.
#[derive(Debug)]
pub(super) struct Settings {
    name: ServerName<'static>,
    verify: bool,
}

impl Settings {
    /// The name to verify and send (SNI): `server_name`, or else the host (an IP literal is
    /// verified as an address and sends no SNI).
    pub(super) fn new(
        host: &str,
        server_name: Option<String>,
        verify: bool,
    ) -> Result<Settings, HostError> {
        let raw = server_name.unwrap_or_else(|| host.to_owned());
        let bare = raw
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(&raw);
        let name = ServerName::try_from(bare.to_owned()).map_err(|_| {
            let shown = crate::sandbox::untrusted::line(&raw, 256);
            HostError::Invalid(format!("{shown:?} is not a TLS server name"))
        })?;
        Ok(Settings { name, verify })
    }
}

/// Connects TLS over `tcp` as `settings` say.
pub(super) async fn handshake(
    settings: &Settings,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let config = if settings.verify {
        verified_config().await?
    } else {
        unverified_config()?
    };
    TlsConnector::from(config)
        .connect(settings.name.clone(), tcp)
        .await
        .map_err(|e| e.to_string())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The verifying config, built once: the platform verifier reads the system's roots from
/// disk, so that is done off the async workers and not per call.
async fn verified_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: tokio::sync::OnceCell<Result<Arc<ClientConfig>, String>> =
        tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| {
                use rustls_platform_verifier::BuilderVerifierExt as _;
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_platform_verifier()
                    .map(|b| Arc::new(b.with_no_client_auth()))
                    .map_err(|e| format!("the system's root certificates: {e}"))
            })
            .await
            .unwrap_or_else(|e| Err(format!("loading the root certificates: {e}")))
        })
        .await
        .clone()
}

/// The config that accepts any certificate, built once.
fn unverified_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = provider();
            let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    Arc::new(
                        b.dangerous()
                            .with_custom_certificate_verifier(verifier)
                            .with_no_client_auth(),
                    )
                })
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Accepts any server certificate (the guest asked not to verify, to read an internal or
/// self-signed certificate's dates); the handshake's signatures are still checked, so the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The server's leaf certificate, if it sent one that parses.
pub(super) fn leaf_certificate(conn: &ClientConnection) -> Option<Certificate> {
    conn.peer_certificates()?
        .first()
        .and_then(|der| describe(der.as_ref()))
}

/// Subject, issuer and validity of a DER certificate; none if it does not parse.
pub(super) fn describe(der: &[u8]) -> Option<Certificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    Some(Certificate {
        subject: name(cert.subject()),
        issuer: name(cert.issuer()),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// A distinguished name as RFC 4514 writes it, most specific first: `CN=host, O=Org, C=DE`;
/// an attribute without a short name shows its OID, one without a string value `#hex`.
fn name(dn: &x509_parser::x509::X509Name<'_>) -> String {
    use x509_parser::objects::{oid_registry, oid2abbrev};
    let rdns: Vec<String> = dn
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let key = oid2abbrev(attr.attr_type(), oid_registry())
                        .map(str::to_owned)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = match attr.as_str() {
                        Ok(s) => s.to_owned(),
                        Err(_) => format!("#{}", hex(attr.attr_value().data)),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    let text = rdns.into_iter().rev().collect::<Vec<_>>().join(", ");
    // A certificate's text is the server's: one escaped, capped line like every outside string.
    crate::sandbox::untrusted::line(&text, NAME_MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["db.example".to_owned()]).unwrap();
        // In the DER order organisation, then common name; shown most specific first.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "db.example");
        params.not_before = rcgen::date_time_ymd(2024, 1, 2);
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let c = describe(cert.der()).unwrap();
        assert_eq!(c.subject, "CN=db.example, O=Example, Inc.");
        assert_eq!(c.issuer, c.subject);
        assert_eq!(c.not_before, 1_704_153_600);
        assert_eq!(c.not_after, 1_893_542_400);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert!(describe(b"").is_none());
        assert!(describe(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3]).is_none());
        assert!(describe(&[0u8; 300]).is_none());
    }

    #[test]
    fn server_names() {
        assert!(Settings::new("127.0.0.1", None, true).is_ok());
        assert!(Settings::new("[::1]", None, true).is_ok());
        assert!(Settings::new("10.0.0.1", Some("db.example".into()), true).is_ok());
        assert!(matches!(
            Settings::new("h", Some("bad name\n".into()), true),
            Err(HostError::Invalid(_))
        ));
    }
}
