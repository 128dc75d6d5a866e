//! The client-certificate credential: a client assertion (a JWT signed with the
//! certificate's RSA key, RS256, naming the certificate by its SHA-1 thumbprint in `x5t`)
//! exchanged for a token, as Microsoft Entra ID takes it.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long an assertion is valid; Entra ID takes up to ten minutes.
const LIFETIME_SECS: i64 = 600;

/// Signs client assertions with one certificate's key. `Debug` shows the thumbprint only.
#[derive(Clone)]
pub struct CertificateSigner {
    key: Arc<RsaKeyPair>,
    /// base64url(SHA-1(certificate DER)), the `x5t` header.
    thumbprint: String,
}

/// By certificate: a renewed one (another thumbprint) is a change.
impl PartialEq for CertificateSigner {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint == other.thumbprint
    }
}

impl std::fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateSigner(x5t {})", self.thumbprint)
    }
}

/// base64url(SHA-1(der)): how a JWT names the certificate that signed it.
pub fn thumbprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl CertificateSigner {
    /// Reads the certificate (the first in `cert`) and its RSA private key (PKCS#8 or
    /// PKCS#1 PEM). The error names the file, never the key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        let der = CertificateDer::from_pem_file(cert)
            .map_err(|e| format!("{}: no PEM certificate ({e})", cert.display()))?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("{}: no PEM private key ({e})", key.display()))?;
        let pair = match &key_der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(format!(
                    "{}: the key must be an RSA key (PKCS#8 or PKCS#1)",
                    key.display()
                ));
            }
        }
        .map_err(|e| format!("{}: not a usable RSA key ({e})", key.display()))?;
        Ok(Self {
            key: Arc::new(pair),
            thumbprint: thumbprint(der.as_ref()),
        })
    }

    /// A client assertion for `client_id`, addressed to the token endpoint `audience`.
    pub fn assertion(&self, audience: &str, client_id: &str) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint});
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": format!("{:032x}", fastrand::u128(..)),
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECS,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
