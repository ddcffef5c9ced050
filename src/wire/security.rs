//! Transport security: TLS with mutual authentication (rustls on the `ring`
//! provider, so no OpenSSL or cmake at build time) and the optional shared
//! token for plain-TCP clusters on a trusted network.
//!
//! A [`Security`] is cheap to clone (it holds `Arc`s) and travels inside
//! `SchedulerOptions`, `WorkerOptions` and `ClientOptions` down to
//! [`super::transport::connect`] and [`super::transport::accept`].
//! `Security::default()` is plain TCP with no token, so code that never asks
//! for security is unchanged.
//!
//! Trust model (as Dask's): the cluster's CA is the trust boundary. Every
//! connection is mutually authenticated: a server only accepts a client
//! certificate signed by the CA, and a client only accepts a server
//! certificate signed by the CA. Host names are *not* checked against the
//! certificate, because workers' addresses are often not known when the
//! certificates are made; any holder of a CA-signed certificate is a member
//! of the cluster.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Errors setting up TLS: each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A certificate or key file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (CA file, certificate, key).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{what} {path}: {message}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Only some of the CA file, certificate and key were given.
    #[error("incomplete TLS settings: {0}")]
    Incomplete(String),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The three files of one role's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the cluster CA's certificate(s): peers must present a
    /// certificate signed by it.
    pub ca_file: PathBuf,
    /// PEM certificate chain of this process (its role's certificate).
    pub cert: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files from three optional settings: all or none must be given.
    /// `names` are the setting names for the message, e.g. `["--tls-ca-file", ...]`.
    pub fn from_parts(
        ca_file: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        names: [&str; 3],
    ) -> Result<Option<TlsFiles>, SecurityError> {
        match (ca_file, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca_file), Some(cert), Some(key)) => Ok(Some(TlsFiles { ca_file, cert, key })),
            (ca, cert, key) => {
                let missing: Vec<&str> = [ca.is_none(), cert.is_none(), key.is_none()]
                    .iter()
                    .zip(names)
                    .filter(|(m, _)| **m)
                    .map(|(_, n)| n)
                    .collect();
                Err(SecurityError::Incomplete(format!(
                    "TLS needs a CA file, a certificate and a key; missing {}",
                    missing.join(", ")
                )))
            }
        }
    }
}

struct TlsConfigs {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    /// The HTTP port's server side: the same certificate, a client
    /// certificate optional (browsers have none).
    http: Arc<ServerConfig>,
}

/// How a process secures its connections: TLS (client and server sides,
/// from one role certificate) and/or a shared token. Default: plain TCP, no
/// token.
#[derive(Clone, Default)]
pub struct Security {
    tls: Option<Arc<TlsConfigs>>,
    token: Option<Arc<str>>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token: options structs are logged with `{:?}`.
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, message: impl fmt::Display) -> SecurityError {
    SecurityError::Pem {
        what,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn parse_certs(what: &'static str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, path, "no PEM CERTIFICATE found"));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Security {
    /// Plain TCP, no token (the default).
    pub fn plain() -> Security {
        Security::default()
    }

    /// TLS from a role's files (read now, so a bad file fails at startup).
    pub fn tls(files: &TlsFiles) -> Result<Security, SecurityError> {
        let ca = read_file("CA file", &files.ca_file)?;
        let cert = read_file("certificate", &files.cert)?;
        let key = read_file("key", &files.key)?;
        Self::tls_from_pem_named(&ca, &cert, &key, files)
    }

    /// TLS from PEM text held in memory (CA certificate(s), this process's
    /// certificate chain, its private key).
    pub fn tls_from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Security, SecurityError> {
        let names = TlsFiles {
            ca_file: "<CA in memory>".into(),
            cert: "<certificate in memory>".into(),
            key: "<key in memory>".into(),
        };
        Self::tls_from_pem_named(ca_pem, cert_pem, key_pem, &names)
    }

    fn tls_from_pem_named(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        names: &TlsFiles,
    ) -> Result<Security, SecurityError> {
        let cas = parse_certs("CA file", &names.ca_file, ca_pem)?;
        let chain = parse_certs("certificate", &names.cert, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem_error("key", &names.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| pem_error("CA file", &names.ca_file, format!("not a usable CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let config_err = |e: rustls::Error| SecurityError::Config(e.to_string());

        // Servers demand a client certificate signed by the CA: this is the
        // mutual authentication that refuses outsiders at the TLS handshake.
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| SecurityError::Config(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config_err)?;

        // The HTTP port (dashboard, metrics) serves HTTPS with the same
        // certificate; a browser presents no client certificate, so one is
        // optional there (checked against the CA when given) and the
        // dashboard is guarded by the token instead.
        let http_client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| SecurityError::Config(e.to_string()))?;
        let http = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_client_cert_verifier(http_client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config_err)?;

        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| SecurityError::Config(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterCaVerifier { inner: server_verifier }))
            .with_client_auth_cert(chain, key)
            .map_err(config_err)?;
        Ok(Security {
            tls: Some(Arc::new(TlsConfigs {
                client: Arc::new(client),
                server: Arc::new(server),
                http: Arc::new(http),
            })),
            token: None,
        })
    }

    /// The same security with a shared token: connections send it in the
    /// handshake, and accepting sides refuse peers that do not present it.
    /// An empty token means none.
    pub fn with_token(mut self, token: impl Into<String>) -> Security {
        let token: String = token.into();
        self.token = (!token.is_empty()).then(|| token.into());
        self
    }

    /// With TLS, the server side of the HTTP port (dashboard, `/metrics`):
    /// HTTPS with this process's certificate, a client certificate
    /// optional (a browser has none; the dashboard's token guards it).
    /// None without TLS (plain HTTP).
    pub fn http_server_config(&self) -> Option<ServerConfig> {
        self.tls.as_ref().map(|t| (*t.http).clone())
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address scheme this process's listeners advertise: `tls` or `tcp`.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() {
            "tls"
        } else {
            "tcp"
        }
    }

    /// The token sent in handshakes, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.tls.as_ref().map(|t| t.client.clone())
    }

    pub(crate) fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.tls.as_ref().map(|t| t.server.clone())
    }

    /// Whether a peer offering `offered` may connect: always without a
    /// configured token, else only with the same token, compared in
    /// constant time so the comparison leaks nothing of the token.
    pub fn token_accepted(&self, offered: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(expected) => constant_time_eq(expected.as_bytes(), offered.unwrap_or("").as_bytes()),
        }
    }
}

/// Compares two byte strings in time that does not depend on where they
/// differ (`subtle`; a length mismatch returns at once, which reveals only
/// the token's length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Server-certificate verifier: the chain must lead to the cluster CA (and be
/// valid now), but the host name is not checked — see the module docs.
#[derive(Debug)]
struct ClusterCaVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the name only after the chain verified, so a name
            // mismatch here means: signed by our CA, valid, other host name.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_checks() {
        let plain = Security::default();
        assert!(plain.token_accepted(None));
        assert!(plain.token_accepted(Some("anything")));
        let s = Security::default().with_token("abc");
        assert!(s.token_accepted(Some("abc")));
        assert!(!s.token_accepted(Some("abd")));
        assert!(!s.token_accepted(None));
        assert!(!format!("{s:?}").contains("abc"), "Debug must not print the token");
        assert!(Security::default().with_token("").token().is_none());
    }

    #[test]
    fn partial_tls_files_are_refused() {
        let names = ["ca", "cert", "key"];
        assert!(TlsFiles::from_parts(None, None, None, names).unwrap().is_none());
        let e = TlsFiles::from_parts(Some("a".into()), None, Some("c".into()), names).unwrap_err();
        assert!(e.to_string().contains("missing cert"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            ca_file: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/k.pem".into(),
        };
        let e = Security::tls(&files).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
