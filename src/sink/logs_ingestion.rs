//! The Azure Monitor Logs Ingestion API: `POST {endpoint}/dataCollectionRules/{dcr}/streams/
//! {stream}?api-version=2023-01-01`, a JSON array, gzip by default, a bearer token; 204 is
//! success.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::delivery::{Encoded, Output};
use super::request::{failure, request_id};
use super::retry::Outcome;
use crate::auth::TokenSource;
use crate::errors::error_chain;
use crate::metrics::Metrics;
use crate::record::TIME_GENERATED_COPY_COLUMN;

pub struct LogsIngestionApi {
    /// The output's name, the `output` label of `cefgate_http_responses_total`.
    pub output: String,
    pub client: reqwest::Client,
    pub endpoint: String,
    pub dcr_id: String,
    pub gzip: bool,
    pub tokens: Arc<TokenSource>,
    pub metrics: Arc<Metrics>,
    /// When rows outside the time window were last reported (the warning is rate-limited).
    pub time_warned: std::sync::Mutex<Option<std::time::Instant>>,
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

/// How far back and ahead of the ingestion time Azure keeps a row's `TimeGenerated`; outside,
/// it replaces the value with the ingestion time.
const KEPT_BEFORE: chrono::TimeDelta = chrono::TimeDelta::days(2);
const KEPT_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);
/// Rows reach the service some time after they are sent: treat rows this close to an edge
/// as outside.
const EDGE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The `TimeGenerated` values Azure keeps, as the first 19 characters of ISO 8601 UTC
/// (`2026-11-26T10:00:00`), so that a row's value is compared as text without parsing.
pub struct TimeWindow {
    oldest: String,
    newest: String,
}

impl TimeWindow {
    pub fn at(now: chrono::DateTime<chrono::Utc>) -> Self {
        let text = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        Self {
            oldest: text(now - KEPT_BEFORE + EDGE),
            newest: text(now + KEPT_AFTER - EDGE),
        }
    }

    fn contains(&self, iso: &str) -> bool {
        let t = iso.get(..19).unwrap_or(iso);
        t >= self.oldest.as_str() && t <= self.newest.as_str()
    }
}

/// A row whose `TimeGenerated` Azure would replace, with the value also written to
/// `CefgateTimeGenerated` (the DCR keeps it); `None` for a row inside the window. Rows start
/// with `{"TimeGenerated":"...` (the row builder writes it first).
pub fn with_time_generated_copy(row: &[u8], window: &TimeWindow) -> Option<Vec<u8>> {
    const FIRST: &[u8] = b"{\"TimeGenerated\":\"";
    let rest = row.strip_prefix(FIRST)?;
    let end = memchr::memchr(b'"', rest)?;
    let time = std::str::from_utf8(&rest[..end]).ok()?;
    if window.contains(time) {
        return None;
    }
    let mut out = Vec::with_capacity(row.len() + 64);
    out.extend_from_slice(&row[..FIRST.len() + end + 1]);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(TIME_GENERATED_COPY_COLUMN.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(time.as_bytes());
    out.push(b'"');
    out.extend_from_slice(&rest[end + 1..]);
    Some(out)
}

impl LogsIngestionApi {
    fn report_outside_window(&self, rows: usize) {
        Metrics::add(&self.metrics.rows_time_outside_window, rows as u64);
        let mut last = self.time_warned.lock().expect("warning lock");
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(
                "{rows} row(s) have a TimeGenerated more than 2 days old or 1 day ahead, which \
                 Azure replaces with the ingestion time; their time is kept in {TIME_GENERATED_COPY_COLUMN} \
                 (counted in rows_time_outside_window; this warning repeats at most once a minute)"
            );
        }
    }
}

/// `json` gzip-compressed at the fast level.
fn gzip(json: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    // Writing into memory cannot fail.
    let _ = gz.write_all(json);
    gz.finish().unwrap_or_default()
}

impl Output for LogsIngestionApi {
    /// The JSON array, with the time of rows outside Azure's window copied, and gzip: once
    /// per chunk, whatever the number of attempts. Long values were cut when the rows were
    /// written ([`super::OutputSettings::json_shape`]); the window is judged here, at send
    /// time, because a row may wait in the spool for days.
    async fn encode(&self, _stream: &str, rows: &[&[u8]]) -> Result<Encoded, Outcome> {
        let window = TimeWindow::at(chrono::Utc::now());
        let kept: Vec<Option<Vec<u8>>> = rows
            .iter()
            .map(|r| with_time_generated_copy(r, &window))
            .collect();
        let outside = kept.iter().flatten().count();
        if outside > 0 {
            self.report_outside_window(outside);
        }
        let rows: Vec<&[u8]> = rows
            .iter()
            .zip(&kept)
            .map(|(row, kept)| kept.as_deref().unwrap_or(row))
            .collect();
        let json = json_array(&rows);
        if !self.gzip {
            return Ok(Encoded {
                body: json.into(),
                gzip: false,
            });
        }
        // Compressing a request of several MB takes milliseconds of CPU: it runs on the
        // blocking pool, so that the I/O threads keep reading sockets meanwhile.
        match tokio::task::spawn_blocking(move || gzip(&json)).await {
            Ok(body) => Ok(Encoded {
                body: body.into(),
                gzip: true,
            }),
            Err(e) => Err(Outcome::Transient {
                reason: format!("compressing the request failed: {e}"),
            }),
        }
    }

    async fn send(&self, stream: &str, _rows: &[&[u8]], request: &Encoded) -> Outcome {
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
        let mut request_builder = self
            .client
            .post(&url)
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .header("x-ms-client-request-id", request_id());
        if request.gzip {
            request_builder = request_builder.header("Content-Encoding", "gzip");
        }
        let response = match request_builder.body(request.body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Transient {
                    reason: format!("POST {url}: {}", error_chain(&e)),
                };
            }
        };
        let status = response.status().as_u16();
        super::request::count_response(&self.metrics, &self.output, stream, &response);
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
                     https://monitor.azure.com//.default (or the sovereign cloud's monitor audience); \
                     if the token expired at once, this machine's clock is off (check NTP)"
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
    fn rows_outside_the_window_keep_their_time_in_a_column() {
        let now = "2026-11-29T12:00:00Z".parse().unwrap();
        let w = TimeWindow::at(now);
        let row = |t: &str| format!("{{\"TimeGenerated\":\"{t}\",\"A\":1}}");
        for inside in [
            "2026-11-29T11:59:59Z",
            "2026-11-27T12:20:00.5Z",
            "2026-11-30T11:00:00Z",
        ] {
            assert_eq!(
                with_time_generated_copy(row(inside).as_bytes(), &w),
                None,
                "{inside}"
            );
        }
        for outside in [
            "2026-11-27T12:05:00Z",
            "2020-01-01T00:00:00Z",
            "2026-11-30T12:00:00Z",
        ] {
            let kept = with_time_generated_copy(row(outside).as_bytes(), &w).expect(outside);
            assert_eq!(
                String::from_utf8(kept).unwrap(),
                format!(
                    "{{\"TimeGenerated\":\"{outside}\",\"CefgateTimeGenerated\":\"{outside}\",\"A\":1}}"
                )
            );
        }
        assert_eq!(with_time_generated_copy(b"{\"A\":1}", &w), None);
    }

    #[test]
    fn rows_become_one_json_array() {
        let rows: [&[u8]; 2] = [b"{\"a\":1}", b"{\"a\":2}"];
        assert_eq!(json_array(&rows), b"[{\"a\":1},{\"a\":2}]");
        assert_eq!(json_array(&[]), b"[]");
    }
}
