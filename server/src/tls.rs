//! The origin's TLS identity: a self-signed certificate made at `origin init`.
//!
//! Edges do not use a certificate authority: they pin the SHA-256 fingerprint
//! of the origin's certificate, printed by `origin init` and `origin serve`.
//! The handshake signature is still verified, so only the holder of the
//! certificate's key can pass as the origin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The ALPN protocol name of shanlu's sync protocol.
pub const ALPN: &[u8] = b"shanlu/1";

/// The ALPN name an origin of protocol revision 2 or later also offers
/// (preferred): an edge that negotiates it may send its first requests
/// (`CatalogSince`) right behind the hello, before the Welcome (issue 12).
pub const ALPN_PIPELINED: &[u8] = b"shanlu/2";

/// The ALPN protocol name of the HTTPS fallback.
pub const HTTP_ALPN: &[u8] = b"http/1.1";

/// The name edges ask for; the pinned fingerprint, not the name, is what is checked.
pub const SERVER_NAME: &str = "shanlu-origin";

/// A certificate and its private key, DER-encoded.
pub struct TlsIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// Why TLS material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("making the origin's self-signed certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the settings (`what` says which: the origin's
    /// certificate and key, the protocol versions).
    #[error("setting up TLS: {what}")]
    Config {
        what: &'static str,
        #[source]
        cause: rustls::Error,
    },
    #[error("setting up QUIC: the TLS settings have no cipher suite QUIC can start with")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error(
        "{0:?} is not a certificate fingerprint: give the 64 hex digits `shanlu origin init` printed"
    )]
    BadFingerprint(String),
}

impl TlsError {
    /// Wraps rustls's refusal of `what`.
    fn config(what: &'static str) -> impl FnOnce(rustls::Error) -> TlsError {
        move |cause| TlsError::Config { what, cause }
    }
}

impl TlsIdentity {
    /// A new self-signed certificate for the origin.
    pub fn generate() -> Result<TlsIdentity, TlsError> {
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .map_err(TlsError::Generate)?;
        Ok(TlsIdentity {
            cert_der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    /// Loads `DIR/tls/{cert,key}.der`, making them first if they do not exist.
    pub fn load_or_create(dir: &Path) -> Result<TlsIdentity, TlsError> {
        let tls_dir = dir.join("tls");
        let cert_path = tls_dir.join("cert.der");
        let key_path = tls_dir.join("key.der");
        if cert_path.exists() && key_path.exists() {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|cause| TlsError::Io {
                    action: "reading",
                    path: path.to_owned(),
                    cause,
                })
            };
            return Ok(TlsIdentity {
                cert_der: read(&cert_path)?,
                key_der: read(&key_path)?,
            });
        }
        let identity = TlsIdentity::generate()?;
        std::fs::create_dir_all(&tls_dir).map_err(|cause| TlsError::Io {
            action: "creating",
            path: tls_dir.clone(),
            cause,
        })?;
        write_private(&key_path, &identity.key_der)?;
        std::fs::write(&cert_path, &identity.cert_der).map_err(|cause| TlsError::Io {
            action: "writing",
            path: cert_path.clone(),
            cause,
        })?;
        Ok(identity)
    }

    /// The SHA-256 fingerprint edges pin, as 64 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// A rustls server configuration speaking shanlu's ALPN.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = provider();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::config("TLS 1.3 with the ring provider"))?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(TlsError::config("the origin's certificate and key in tls/"))?;
        config.alpn_protocols = vec![ALPN_PIPELINED.to_vec(), ALPN.to_vec()];
        Ok(config)
    }

    /// The same certificate for the HTTPS listener (ALPN `http/1.1`).
    pub fn https_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = self.server_config()?;
        config.alpn_protocols = vec![HTTP_ALPN.to_vec()];
        Ok(config)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |action| {
        move |cause| TlsError::Io {
            action,
            path: path.to_owned(),
            cause,
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating"))?;
    file.write_all(bytes).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))
}

/// ring's TLS 1.3 suites with AES-128-GCM first (the client's order
/// chooses, and every shanlu client offers this one). AES-128 does ten
/// rounds a block where AES-256 does fourteen; an administrator's upload
/// encrypts and decrypts every byte, and AES-GCM was 5 % of a 2 GiB
/// publish's CPU over QUIC (both ends, with AES-256).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// SHA-256 of a DER certificate, as 64 hex digits.
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, cert_der))
}

/// Parses a fingerprint as printed (64 hex digits, colons and a `sha256:` prefix allowed).
pub fn parse_fingerprint(text: &str) -> Result<String, TlsError> {
    let cleaned: String = text
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if cleaned.len() == 64 && cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(cleaned)
    } else {
        Err(TlsError::BadFingerprint(text.to_owned()))
    }
}

/// A rustls client configuration that accepts exactly the certificate with this fingerprint.
pub fn client_config(pinned_fingerprint: &str) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCert {
        fingerprint: parse_fingerprint(pinned_fingerprint)?,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::config("TLS 1.3 with the ring provider"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Accepts the one certificate whose fingerprint was pinned at `edge init`.
#[derive(Debug)]
struct PinnedCert {
    fingerprint: String,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = fingerprint(end_entity.as_ref());
        if actual == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the origin's certificate fingerprint is {actual}, not the pinned {}; check --origin-cert at edge init",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_made_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = TlsIdentity::load_or_create(dir.path()).expect("create");
        let again = TlsIdentity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 64);
        first.server_config().expect("server config");
        client_config(&first.fingerprint()).expect("client config");
    }

    /// The origin and a client agree on AES-128-GCM, and a client offering
    /// only another suite still gets through.
    #[test]
    fn connections_agree_on_aes_128_gcm() {
        use rustls::crypto::ring::cipher_suite;
        let identity = TlsIdentity::generate().expect("generate");
        let server = Arc::new(identity.server_config().expect("server config"));
        let handshake = |client: rustls::ClientConfig| {
            let name = ServerName::try_from("origin.shanlu").expect("name");
            let mut client = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
            let mut server = rustls::ServerConnection::new(server.clone()).expect("server");
            for _ in 0..10 {
                let mut wire = Vec::new();
                client.write_tls(&mut wire).expect("client writes");
                server.read_tls(&mut wire.as_slice()).expect("server reads");
                server.process_new_packets().expect("server handshake");
                let mut wire = Vec::new();
                server.write_tls(&mut wire).expect("server writes");
                client.read_tls(&mut wire.as_slice()).expect("client reads");
                client.process_new_packets().expect("client handshake");
                if !client.is_handshaking() && !server.is_handshaking() {
                    break;
                }
            }
            assert!(!client.is_handshaking(), "the handshake did not finish");
            client.negotiated_cipher_suite().expect("a suite").suite()
        };
        let client = client_config(&identity.fingerprint()).expect("client config");
        assert_eq!(
            handshake(client),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let mut only_chacha = rustls::crypto::ring::default_provider();
        only_chacha.cipher_suites = vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
        let other = rustls::ClientConfig::builder_with_provider(Arc::new(only_chacha))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                fingerprint: identity.fingerprint(),
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth();
        assert_eq!(
            handshake(other),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
    }

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&hex).expect("plain"), hex);
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", hex.to_uppercase())).expect("prefixed"),
            hex
        );
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(parse_fingerprint(&colons.join(":")).expect("colons"), hex);
        assert!(parse_fingerprint("abc").is_err());
    }

    /// Issue 12: a certificate and key rustls refuses keep rustls's error as
    /// `source()`, and the message says which TLS material was refused.
    #[test]
    fn refused_key_keeps_rustls_error_as_source_issue_12() {
        use std::error::Error as _;
        let mut identity = TlsIdentity::generate().expect("generate");
        identity.key_der = b"not a key".to_vec();
        let err = identity
            .server_config()
            .expect_err("a garbage key is refused");
        assert!(
            err.to_string()
                .contains("the origin's certificate and key in tls/"),
            "{err}"
        );
        let source = err.source().expect("the cause is kept");
        assert!(
            source.downcast_ref::<rustls::Error>().is_some(),
            "{source:?}"
        );
    }
}
