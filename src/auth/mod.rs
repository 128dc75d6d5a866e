//! Bearer tokens for the Logs Ingestion API: client secret, managed identity (IMDS) and
//! workload identity (federated token file), cached and refreshed before they expire.
//!
//! Kept small and our own rather than a full identity SDK: three HTTP exchanges, all of
//! which the tests run against `cefgate emulate`. Secrets live in [`Secret`], whose `Debug`
//! and `Display` never show them, and no error carries a request body.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::errors::error_chain;
use serde::Deserialize;

pub mod certificate;
pub use certificate::CertificateSigner;

/// A secret value (client secret, shared key). Printing it prints `<redacted>`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// By value: a reload compares resolved settings, and a rotated secret is a change.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    ClientSecret {
        authority_host: String,
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    ManagedIdentity {
        /// The IMDS token URL.
        endpoint: String,
        /// A user-assigned identity's client ID; `None` for the system-assigned one.
        client_id: Option<String>,
    },
    WorkloadIdentity {
        authority_host: String,
        tenant_id: String,
        client_id: String,
        /// Re-read for every token: the platform rotates it.
        token_file: PathBuf,
    },
    /// An app registration with a certificate: a client assertion signed with its key.
    ClientCertificate {
        authority_host: String,
        tenant_id: String,
        client_id: String,
        signer: CertificateSigner,
    },
    /// An Azure Arc-enabled server's managed identity: the local agent (HIMDS) answers a
    /// first request with 401 and the path of a key file in `WWW-Authenticate`; the key,
    /// readable only by members of the agent's group, proves the caller is on the machine.
    ArcManagedIdentity {
        /// The HIMDS token URL.
        endpoint: String,
        /// The only folder a key file may be read from (the agent's own), so that whatever
        /// answers on the endpoint cannot make cefgate read another file.
        key_folder: PathBuf,
    },
}

/// The HIMDS API version Arc-enabled servers serve tokens with.
const ARC_API_VERSION: &str = "2019-11-01";
/// A key file is small; anything larger is not one.
const ARC_KEY_MAX_BYTES: u64 = 4096;

/// The key file named in an Arc agent's `WWW-Authenticate: Basic realm=<path>`, if it is a
/// `.key` file directly inside `folder`.
pub fn arc_key_file(www_authenticate: &str, folder: &std::path::Path) -> Result<PathBuf, String> {
    let path = www_authenticate
        .trim()
        .strip_prefix("Basic realm=")
        .ok_or_else(|| format!("unexpected WWW-Authenticate {www_authenticate:?}"))?;
    let path = PathBuf::from(path.trim());
    let inside = path.parent() == Some(folder)
        && path.extension().is_some_and(|e| e == "key")
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !inside {
        return Err(format!(
            "the key file {} is not a .key file in {}",
            path.display(),
            folder.display()
        ));
    }
    Ok(path)
}

/// Why no token could be had. Says what to fix; never contains a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("cannot reach the token endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the token endpoint {url} refused: HTTP {status} {code}: {description}")]
    Refused {
        url: String,
        status: u16,
        code: String,
        description: String,
    },
    #[error("the token endpoint {url} answered something that is not a token: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("cannot read the federated token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error(
        "cannot read the Azure Arc key file {path}: {reason} (cefgate's user must be in the himds group)"
    )]
    ArcKey { path: String, reason: String },
}

impl AuthError {
    /// True for failures that a later try can cure by itself (network, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Unreachable { .. } | AuthError::BadResponse { .. } => true,
            AuthError::Refused { status, .. } => *status == 429 || *status >= 500,
            AuthError::TokenFile { .. } | AuthError::ArcKey { .. } => false,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; IMDS sends it as a string.
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Num(n)) => Some(n),
        Some(N::Text(t)) => t.parse().ok(),
        None => None,
    })
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Hands out a valid token, fetching a new one when the cached one is near its expiry.
pub struct TokenSource {
    credential: Credential,
    scope: String,
    client: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    pub fn new(credential: Credential, scope: String, client: reqwest::Client) -> Self {
        Self {
            credential,
            scope,
            client,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for at least a few more minutes.
    pub async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        // Refresh five minutes early, or halfway through a short-lived token.
        let early = Duration::from_secs(300).min(lifetime / 2);
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - early,
        });
        tracing::debug!("new access token, valid for {lifetime:?}");
        Ok(token)
    }

    /// The scope as the `resource` the metadata services take (no `/.default`).
    fn resource(&self) -> &str {
        self.scope
            .trim_end_matches("/.default")
            .trim_end_matches('/')
    }

    fn arc_query(&self) -> [(&'static str, &str); 2] {
        [
            ("api-version", ARC_API_VERSION),
            ("resource", self.resource()),
        ]
    }

    /// A client-credentials request authenticated by a client assertion (a federated token
    /// or one signed with a certificate).
    fn assertion_request(
        &self,
        url: &str,
        client_id: &str,
        assertion: &str,
    ) -> reqwest::RequestBuilder {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", self.scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ];
        self.client.post(url).form(&form)
    }

    /// The Arc agent's challenge: read the key file it names and ask again with it.
    async fn arc_second_request(
        &self,
        url: &str,
        key_folder: &std::path::Path,
        challenge: &reqwest::Response,
    ) -> Result<reqwest::Response, AuthError> {
        let refused = |reason: String| AuthError::Refused {
            url: url.to_string(),
            status: 401,
            code: "arc_challenge".into(),
            description: reason,
        };
        let header = challenge
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refused("401 without WWW-Authenticate".into()))?;
        let path = arc_key_file(header, key_folder).map_err(refused)?;
        let key_error = |reason: String| AuthError::ArcKey {
            path: path.display().to_string(),
            reason,
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| key_error(e.to_string()))?
            .len();
        if size > ARC_KEY_MAX_BYTES {
            return Err(key_error(format!(
                "{size} bytes is too large for a key file"
            )));
        }
        // Members of the agent's group (himds) may read it; cefgate must be one.
        let key = std::fs::read_to_string(&path).map_err(|e| key_error(e.to_string()))?;
        self.client
            .get(url)
            .query(&self.arc_query())
            .header("Metadata", "true")
            .header("Authorization", format!("Basic {}", key.trim()))
            .send()
            .await
            .map_err(|e| AuthError::Unreachable {
                url: url.to_string(),
                reason: error_chain(&e),
            })
    }

    /// Forgets the cached token (after a 401/403), so the next call fetches a fresh one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<(String, Duration), AuthError> {
        let (url, request) = match &self.credential {
            Credential::ClientSecret {
                authority_host,
                tenant_id,
                client_id,
                secret,
            } => {
                let url = token_url(authority_host, tenant_id);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose()),
                    ("scope", self.scope.as_str()),
                ];
                (url.clone(), self.client.post(url).form(&form))
            }
            Credential::WorkloadIdentity {
                authority_host,
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion =
                    std::fs::read_to_string(token_file).map_err(|e| AuthError::TokenFile {
                        path: token_file.display().to_string(),
                        reason: e.to_string(),
                    })?;
                let url = token_url(authority_host, tenant_id);
                let request = self.assertion_request(&url, client_id, assertion.trim());
                (url, request)
            }
            Credential::ClientCertificate {
                authority_host,
                tenant_id,
                client_id,
                signer,
            } => {
                let url = token_url(authority_host, tenant_id);
                let assertion =
                    signer
                        .assertion(&url, client_id)
                        .map_err(|reason| AuthError::BadResponse {
                            url: url.clone(),
                            reason,
                        })?;
                let request = self.assertion_request(&url, client_id, &assertion);
                (url, request)
            }
            Credential::ArcManagedIdentity { endpoint, .. } => (
                endpoint.clone(),
                self.client
                    .get(endpoint)
                    .query(&self.arc_query())
                    .header("Metadata", "true"),
            ),
            Credential::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                let mut query = vec![("api-version", "2018-02-01"), ("resource", self.resource())];
                if let Some(id) = client_id {
                    query.push(("client_id", id.as_str()));
                }
                (
                    endpoint.clone(),
                    self.client
                        .get(endpoint)
                        .query(&query)
                        .header("Metadata", "true"),
                )
            }
        };
        let mut response = request.send().await.map_err(|e| AuthError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if let Credential::ArcManagedIdentity { key_folder, .. } = &self.credential
            && response.status().as_u16() == 401
        {
            response = self.arc_second_request(&url, key_folder, &response).await?;
        }
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| AuthError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if !(200..300).contains(&status) {
            let err: ErrorResponse = serde_json::from_slice(&body).unwrap_or_default();
            return Err(AuthError::Refused {
                url,
                status,
                code: err.error,
                description: err.error_description,
            });
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| AuthError::BadResponse {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600).max(1));
        Ok((token.access_token, lifetime))
    }
}

fn token_url(authority_host: &str, tenant_id: &str) -> String {
    format!(
        "{}/{tenant_id}/oauth2/v2.0/token",
        authority_host.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        let c = Credential::ClientSecret {
            authority_host: "https://login.example".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn expires_in_as_number_or_text() {
        let a: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":3599}"#).unwrap();
        let b: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","expires_in":"86399"}"#).unwrap();
        assert_eq!((a.expires_in, b.expires_in), (Some(3599), Some(86399)));
    }

    #[test]
    fn an_arc_key_file_must_be_a_key_file_in_the_agent_folder() {
        let folder = std::path::Path::new("/var/opt/azcmagent/tokens");
        assert_eq!(
            arc_key_file("Basic realm=/var/opt/azcmagent/tokens/ab12.key", folder).unwrap(),
            folder.join("ab12.key")
        );
        for bad in [
            "Basic realm=/etc/shadow",
            "Basic realm=/var/opt/azcmagent/tokens/../../../etc/x.key",
            "Basic realm=/var/opt/azcmagent/tokens/sub/x.key",
            "Basic realm=/var/opt/azcmagent/tokens/x.txt",
            "Bearer x",
        ] {
            assert!(arc_key_file(bad, folder).is_err(), "{bad}");
        }
    }
}
