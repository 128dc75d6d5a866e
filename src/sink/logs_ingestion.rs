//! The Azure Monitor Logs Ingestion API: `POST {endpoint}/dataCollectionRules/{dcr}/streams/
//! {stream}?api-version=2023-01-01`, a JSON array, gzip by default, a bearer token; 204 is
//! success.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::delivery::Output;
use super::retry::{Outcome, parse_retry_after};
use crate::auth::{TokenSource, error_chain};

pub struct LogsIngestionApi {
    pub client: reqwest::Client,
    pub endpoint: String,
    pub dcr_id: String,
    pub gzip: bool,
    pub tokens: Arc<TokenSource>,
}

/// The rows as one JSON array.
pub fn json_array(rows: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.push(b']');
    body
}

/// A short random ID for `x-ms-client-request-id`, so both sides can find a request.
pub fn request_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// What a failed response says: `HTTP <status> (<service ids>): <start of the body>`, and its
/// `Retry-After`, if any. Shared by both APIs.
pub async fn failure(response: reqwest::Response) -> (String, Option<std::time::Duration>) {
    let status = response.status().as_u16();
    let ids = service_ids(&response);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = response.text().await.unwrap_or_default();
    let detail = format!(
        "HTTP {status} ({ids}): {}",
        text.chars().take(500).collect::<String>()
    );
    (detail, retry_after)
}

/// `x-ms-request-id` and `x-ms-error-code` of a response, for the log.
pub fn service_ids(response: &reqwest::Response) -> String {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "x-ms-request-id {}, x-ms-error-code {}",
        header("x-ms-request-id"),
        header("x-ms-error-code")
    )
}

impl Output for LogsIngestionApi {
    async fn send(&self, stream: &str, rows: &[&[u8]]) -> Outcome {
        let json = json_array(rows);
        let token = match self.tokens.token().await {
            Ok(t) => t,
            Err(e) if e.is_transient() => {
                return Outcome::Transient {
                    reason: format!("no token: {e}"),
                };
            }
            Err(e) => {
                return Outcome::Unauthorized {
                    reason: format!("no token: {e}"),
                };
            }
        };
        let url = format!(
            "{}/dataCollectionRules/{}/streams/{stream}?api-version=2023-01-01",
            self.endpoint.trim_end_matches('/'),
            self.dcr_id
        );
        let mut request = self
            .client
            .post(&url)
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .header("x-ms-client-request-id", request_id());
        let body = if self.gzip {
            let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
            gz.write_all(&json).expect("writing to memory");
            request = request.header("Content-Encoding", "gzip");
            gz.finish().expect("writing to memory")
        } else {
            json
        };
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Transient {
                    reason: format!("POST {url}: {}", error_chain(&e)),
                };
            }
        };
        let status = response.status().as_u16();
        if status == 204 || status == 200 {
            return Outcome::Delivered;
        }
        let (detail, retry_after) = failure(response).await;
        match status {
            413 => Outcome::TooLarge,
            400 => Outcome::Rejected { error: detail },
            429 | 503 => match retry_after {
                Some(wait) => Outcome::RetryAfter(wait),
                None => Outcome::Transient { reason: detail },
            },
            401 => Outcome::Unauthorized {
                reason: format!(
                    "{detail}: the token was refused; if the error is InvalidAudience, the scope must be \
                     https://monitor.azure.com//.default (or the sovereign cloud's monitor audience)"
                ),
            },
            403 => Outcome::Unauthorized {
                reason: format!(
                    "{detail}: the identity may not ingest into this data collection rule; it needs the \
                     Monitoring Metrics Publisher role on the DCR (new role assignments take up to 30 minutes)"
                ),
            },
            404 => Outcome::RouteBroken {
                reason: format!(
                    "{detail}: check endpoint, dcr_id (the DCR's immutable ID) and the stream name {stream:?}"
                ),
            },
            408 | 500..=599 => Outcome::Transient { reason: detail },
            _ => Outcome::Rejected { error: detail },
        }
    }

    async fn reset_credentials(&self) {
        self.tokens.invalidate().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_one_json_array() {
        let rows: [&[u8]; 2] = [b"{\"a\":1}", b"{\"a\":2}"];
        assert_eq!(json_array(&rows), b"[{\"a\":1},{\"a\":2}]");
        assert_eq!(json_array(&[]), b"[]");
    }
}
