//! TLS syslog (RFC 5425): rustls, PEM certificate and key, optional client certificates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use super::{ListenerContext, ListenerSettings};
use crate::metrics::Metrics;

/// Why a TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read certificates from {path}: {source}")]
    Certificates {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("cannot read the private key from {path}: {source}")]
    Key {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("a tls listener needs `cert` and `key`")]
    NotConfigured,
    #[error("client CA bundle {path} is not usable: {reason}")]
    ClientCa { path: String, reason: String },
}

/// One line per 10 s for failed handshakes (scanners make many); all are counted.
static HANDSHAKE_FAILED: crate::log_throttle::Throttle =
    crate::log_throttle::Throttle::new(std::time::Duration::from_secs(10));

/// Accepts TLS 1.2 and 1.3 sessions with a handshake deadline.
#[derive(Clone)]
pub struct Acceptor {
    inner: TlsAcceptor,
    /// A hash of the certificate, key and CA files as read, so that a reload can tell a
    /// renewed certificate from the one in use.
    files_hash: u64,
}

/// A PEM file's bytes, read once: parsed from these bytes and hashed from them, so what a
/// reload compares is exactly what the acceptor uses.
fn read_pem(path: &Path) -> Result<Vec<u8>, rustls::pki_types::pem::Error> {
    std::fs::read(path).map_err(rustls::pki_types::pem::Error::Io)
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let name = path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Certificates {
            path: name.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(name));
    }
    Ok(certs)
}

/// Two acceptors are the same when they were built from the same file contents: a renewed
/// certificate (same path, new PEM) is a change.
impl PartialEq for Acceptor {
    fn eq(&self, other: &Self) -> bool {
        self.files_hash == other.files_hash
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// Reads the PEM files and builds the TLS settings: the same call checks a configuration
    /// (`cefgate check`) and starts a listener.
    pub fn new(
        cert_path: &Path,
        key_path: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsSetupError> {
        let cert_pem = read_pem(cert_path).map_err(|source| TlsSetupError::Certificates {
            path: cert_path.display().to_string(),
            source,
        })?;
        let key_error = |source| TlsSetupError::Key {
            path: key_path.display().to_string(),
            source,
        };
        let key_pem = read_pem(key_path).map_err(key_error)?;
        let ca_pem = match client_ca {
            Some(ca_path) => {
                Some(
                    read_pem(ca_path).map_err(|source| TlsSetupError::Certificates {
                        path: ca_path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let chain = certificates(cert_path, &cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(key_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let server = match client_ca {
            None => builder.with_no_client_auth().with_single_cert(chain, key)?,
            Some(ca_path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca_path, ca_pem.as_deref().unwrap_or_default())? {
                    roots.add(cert).map_err(|e| TlsSetupError::ClientCa {
                        path: ca_path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsSetupError::ClientCa {
                            path: ca_path.display().to_string(),
                            reason: e.to_string(),
                        })?;
                builder
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain, key)?
            }
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for pem in [Some(&cert_pem), Some(&key_pem), ca_pem.as_ref()]
            .into_iter()
            .flatten()
        {
            hasher.update(&(pem.len() as u64).to_le_bytes());
            hasher.update(pem);
        }
        Ok(Self {
            inner: TlsAcceptor::from(Arc::new(server)),
            files_hash: hasher.digest(),
        })
    }

    /// Runs the handshake; `None` (counted and logged) when it fails or takes too long.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        config: &ListenerSettings,
        ctx: &ListenerContext,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let result = tokio::select! {
            r = tokio::time::timeout(config.handshake_timeout, self.inner.accept(stream)) => r,
            _ = ctx.shutdown.cancelled() => return None,
        };
        match result {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                Metrics::add(&ctx.metrics.tls_handshake_failures, 1);
                if let Some(held) = HANDSHAKE_FAILED.allow() {
                    tracing::warn!(
                        "{peer}: TLS handshake failed: {e}{}",
                        crate::log_throttle::held_back(held)
                    );
                }
                None
            }
            Err(_) => {
                Metrics::add(&ctx.metrics.tls_handshake_failures, 1);
                if let Some(held) = HANDSHAKE_FAILED.allow() {
                    tracing::warn!(
                        "{peer}: TLS handshake timed out after {:?}{}",
                        config.handshake_timeout,
                        crate::log_throttle::held_back(held)
                    );
                }
                None
            }
        }
    }
}
