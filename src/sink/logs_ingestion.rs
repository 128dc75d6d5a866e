//! The Azure Monitor Logs Ingestion API: `POST {endpoint}/dataCollectionRules/{dcr}/streams/
//! {stream}?api-version=2023-01-01`, a JSON array, gzip by default, a bearer token; 204 is
//! success.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::delivery::Output;
use super::request::{cut_long_values, failure, request_id};
use super::retry::Outcome;
use crate::auth::{TokenSource, error_chain};
use crate::metrics::Metrics;

pub struct LogsIngestionApi {
    pub client: reqwest::Client,
    pub endpoint: String,
    pub dcr_id: String,
    pub gzip: bool,
    pub tokens: Arc<TokenSource>,
    pub metrics: Arc<Metrics>,
}

/// The rows as one JSON array.
pub fn json_array(rows: &[&[u8]]) -> Vec<u8> {
    json_array_cut(rows, usize::MAX, &mut 0)
}

/// The rows as one JSON array, string values longer than `max` cut with a marker (counted).
pub fn json_array_cut(rows: &[&[u8]], max: usize, truncated: &mut u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        if !cut_long_values(row, max, None, &mut body, truncated) {
            body.extend_from_slice(row);
        }
    }
    body.push(b']');
    body
}

/// The service's limit for one value: longer ones it cuts without a word.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

impl Output for LogsIngestionApi {
    async fn send(&self, stream: &str, rows: &[&[u8]]) -> Outcome {
        let mut truncated = 0;
        let json = json_array_cut(rows, MAX_VALUE_BYTES, &mut truncated);
        Metrics::add(&self.metrics.values_truncated, truncated);
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
