//! The Azure Monitor HTTP Data Collector API (`POST {endpoint}/api/logs?api-version=
//! 2016-04-01`, SharedKey signature). Microsoft ended its support on 14 September 2026; it is
//! here for workspaces that still use it.
//!
//! Two row changes the API forces, both made when the row is written
//! ([`super::OutputSettings::json_shape`]): `TimeGenerated` is a reserved name, so the row's
//! `TimeGenerated` is written as `CefgateTimeGenerated` and named in `time-generated-field`
//! (the service then sets `TimeGenerated` from it); values over 32 KB are cut to 32 KB with
//! a marker (the service would cut them silently), and counted. Rows reach this module ready;
//! only rows left in a spool or dead-letter file by a release that renamed at send time are
//! renamed here ([`legacy_row`]).
//!
//! A 404 can mean a wrong workspace or a request the service finds too large: a request of
//! several rows is split once before the route is stopped.

use std::sync::Arc;
use std::time::SystemTime;

use super::delivery::{Encoded, Output};
use super::request::{failure, request_id};
use super::retry::Outcome;
use super::signature::{SharedKeySigner, imf_fixdate};
use crate::errors::error_chain;
use crate::metrics::Metrics;

/// What `TimeGenerated` is renamed to in Data Collector rows.
pub const RENAMED_TIME_GENERATED: &str = "CefgateTimeGenerated";

pub struct DataCollectorApi {
    /// The output's name, the `output` label of `cefgate_http_responses_total`.
    pub output: String,
    pub client: reqwest::Client,
    pub endpoint: String,
    pub signer: SharedKeySigner,
    pub time_generated_field: String,
    pub azure_resource_id: Option<String>,
    pub metrics: Arc<Metrics>,
}

/// How a row that still has `TimeGenerated` starts: one written before rows took their
/// output's shape when built.
const LEGACY_START: &[u8] = b"{\"TimeGenerated\":";

/// `row` with `TimeGenerated` renamed, when it is a row written by an older release (kept in a
/// spool chunk or a dead-letter file across an upgrade); `None` for a row already in shape.
pub fn legacy_row(row: &[u8]) -> Option<Vec<u8>> {
    let rest = row.strip_prefix(LEGACY_START)?;
    let mut out = Vec::with_capacity(row.len() + 8);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(RENAMED_TIME_GENERATED.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(rest);
    Some(out)
}

impl Output for DataCollectorApi {
    /// The rows as one JSON array: once per chunk.
    async fn encode(&self, _log_type: &str, rows: &[&[u8]]) -> Result<Encoded, Outcome> {
        let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            match legacy_row(row) {
                Some(renamed) => body.extend_from_slice(&renamed),
                None => body.extend_from_slice(row),
            }
        }
        body.push(b']');
        Ok(Encoded {
            body: body.into(),
            gzip: false,
        })
    }

    async fn send(&self, log_type: &str, _rows: &[&[u8]], request: &Encoded) -> Outcome {
        let body = &request.body;
        let url = format!(
            "{}/api/logs?api-version=2016-04-01",
            self.endpoint.trim_end_matches('/')
        );
        // Signed for every attempt: the date must be fresh.
        let date = imf_fixdate(SystemTime::now());
        let mut builder = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Log-Type", log_type)
            .header("x-ms-date", &date)
            .header("Authorization", self.signer.authorization(body, &date))
            .header("time-generated-field", &self.time_generated_field)
            .header("x-ms-client-request-id", request_id());
        if let Some(id) = &self.azure_resource_id {
            builder = builder.header("x-ms-AzureResourceId", id);
        }
        let response = match builder.body(body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Transient {
                    reason: format!("POST {url}: {}", error_chain(&e)),
                };
            }
        };
        let status = response.status().as_u16();
        super::request::count_response(&self.metrics, &self.output, log_type, &response);
        if status == 200 || status == 202 || status == 204 {
            return Outcome::Delivered;
        }
        let (detail, retry_after) = failure(response).await;
        match status {
            429 | 500 | 503 => match retry_after {
                Some(wait) => Outcome::RetryAfter(wait),
                None => Outcome::Transient { reason: detail },
            },
            403 => Outcome::Unauthorized {
                reason: format!(
                    "{detail}: the signature was refused: check workspace_id and the shared key, and that this \
                     machine's clock is within 15 minutes of the real time"
                ),
            },
            // This API also answers 404 to a request it finds too large.
            404 => Outcome::NotFound {
                reason: format!("{detail}: check endpoint and workspace_id"),
            },
            413 => Outcome::TooLarge,
            400 => Outcome::Rejected { error: detail },
            408 | 502 | 504..=599 => Outcome::Transient { reason: detail },
            _ => Outcome::Rejected { error: detail },
        }
    }

    async fn reset_credentials(&self) {}

    fn request_size(&self, rows: &[&[u8]]) -> usize {
        // A legacy row grows by the longer name when renamed.
        let growth = RENAMED_TIME_GENERATED.len() - "TimeGenerated".len();
        rows.iter()
            .map(|r| {
                r.len()
                    + 1
                    + if r.starts_with(LEGACY_START) {
                        growth
                    } else {
                        0
                    }
            })
            .sum::<usize>()
            + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_left_by_an_older_release_has_its_time_renamed() {
        let old = legacy_row(br#"{"TimeGenerated":"2026-11-26T10:00:00Z","Computer":"fw"}"#);
        assert_eq!(
            old.as_deref(),
            Some(&br#"{"CefgateTimeGenerated":"2026-11-26T10:00:00Z","Computer":"fw"}"#[..])
        );
        assert_eq!(
            legacy_row(br#"{"CefgateTimeGenerated":"2026-11-26T10:00:00Z"}"#),
            None
        );
    }
}
