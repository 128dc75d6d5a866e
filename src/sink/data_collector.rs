//! The Azure Monitor HTTP Data Collector API (`POST {endpoint}/api/logs?api-version=
//! 2016-04-01`, SharedKey signature). Microsoft ended its support on 14 September 2026; it is
//! here for workspaces that still use it.
//!
//! Two row changes the API forces: `TimeGenerated` is a reserved name, so the row's
//! `TimeGenerated` is sent as `CefgateTimeGenerated` and named in `time-generated-field`
//! (the service then sets `TimeGenerated` from it); values over 32 KB are cut to 32 KB with
//! a marker (the service would cut them silently), and counted.
//!
//! A 404 can mean a wrong workspace or a request the service finds too large: a request of
//! several rows is split once before the route is stopped.

use std::sync::Arc;
use std::time::SystemTime;

use super::delivery::{Encoded, Output};
use super::request::{cut_long_values, failure, request_id};
use super::retry::Outcome;
use super::signature::{SharedKeySigner, imf_fixdate};
use crate::errors::error_chain;
use crate::metrics::Metrics;

/// What `TimeGenerated` is renamed to in Data Collector rows.
pub const RENAMED_TIME_GENERATED: &str = "CefgateTimeGenerated";
/// The service's limit for one value.
pub const MAX_VALUE_BYTES: usize = super::limits::DATA_COLLECTOR_MAX_VALUE_BYTES;

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

/// One row as the Data Collector API takes it (see the module notes).
pub fn adapt_row(row: &[u8], out: &mut Vec<u8>, truncated: &mut u64) {
    const FIRST: &[u8] = b"{\"TimeGenerated\":";
    if cut_long_values(
        row,
        MAX_VALUE_BYTES,
        Some(RENAMED_TIME_GENERATED),
        out,
        truncated,
    ) {
        return;
    }
    match row.strip_prefix(FIRST) {
        Some(rest) => {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(RENAMED_TIME_GENERATED.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(rest);
        }
        None => out.extend_from_slice(row),
    }
}

impl Output for DataCollectorApi {
    /// The JSON array with each row adapted (see the module notes): once per chunk.
    async fn encode(&self, _log_type: &str, rows: &[&[u8]]) -> Result<Encoded, Outcome> {
        let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 8).sum::<usize>() + 2);
        let mut truncated = 0;
        body.push(b'[');
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            adapt_row(row, &mut body, &mut truncated);
        }
        body.push(b']');
        Metrics::add(&self.metrics.values_truncated, truncated);
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
        // The renamed first key adds a few bytes per row.
        rows.iter()
            .map(|r| r.len() + 1 + RENAMED_TIME_GENERATED.len())
            .sum::<usize>()
            + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::request::TRUNCATION_MARKER;

    fn adapt(row: &str) -> (String, u64) {
        let mut out = Vec::new();
        let mut n = 0;
        adapt_row(row.as_bytes(), &mut out, &mut n);
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn time_generated_is_renamed() {
        let (row, n) = adapt(r#"{"TimeGenerated":"2026-11-26T10:00:00Z","Computer":"fw"}"#);
        assert_eq!(
            row,
            r#"{"CefgateTimeGenerated":"2026-11-26T10:00:00Z","Computer":"fw"}"#
        );
        assert_eq!(n, 0);
    }

    #[test]
    fn long_values_are_cut_with_a_marker_and_counted() {
        let long = "é".repeat(20_000); // 40,000 bytes
        let (row, n) = adapt(&format!(
            r#"{{"TimeGenerated":"t","Message":"{long}","Short":"x"}}"#
        ));
        let v: serde_json::Value = serde_json::from_str(&row).unwrap();
        let m = v["Message"].as_str().unwrap();
        assert!(
            m.len() <= MAX_VALUE_BYTES && m.ends_with(TRUNCATION_MARKER),
            "{}",
            m.len()
        );
        assert_eq!(v["Short"], "x");
        assert_eq!(v[RENAMED_TIME_GENERATED], "t");
        assert!(v.get("TimeGenerated").is_none());
        assert_eq!(n, 1);
    }
}
