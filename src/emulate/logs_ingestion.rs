//! The Logs Ingestion API: `POST /dataCollectionRules/{id}/streams/{stream}`.

use super::*;

pub(super) async fn logs_ingestion(
    state: &State,
    dcr: &str,
    stream: &str,
    query: &str,
    req: Request<Incoming>,
) -> Reply {
    let s = &state.settings;
    if !s.latency.is_zero() {
        tokio::time::sleep(s.latency).await;
    }
    if url_form(query.as_bytes())
        .get("api-version")
        .map(String::as_str)
        != Some("2023-01-01")
    {
        return li_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersion",
            "api-version must be 2023-01-01",
        );
    }
    if let Err(r) = check_bearer(state, &req) {
        return r;
    }
    if dcr != s.dcr_id {
        return li_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    }
    if !stream.starts_with("Custom-") {
        return li_error(
            StatusCode::NOT_FOUND,
            "InvalidStream",
            &format!("Stream '{stream}' must be a custom stream."),
        );
    }
    if let Some(fault) = injected_fault(state, "li") {
        return fault;
    }
    let gzip = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        == Some("gzip");
    let limit = s.max_request_bytes;
    let content_type_ok = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let wire = match read_body(req, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !content_type_ok {
        return li_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    let body = if gzip {
        let mut out = Vec::new();
        let decoder = flate2::read::GzDecoder::new(&wire[..]);
        if decoder
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .is_err()
        {
            return li_error(
                StatusCode::BAD_REQUEST,
                "InvalidContentEncoding",
                "The body is not valid gzip.",
            );
        }
        if out.len() > limit {
            return li_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ContentLengthLimitExceeded",
                &format!("Maximum allowed content length: {limit} bytes."),
            );
        }
        state.counts.lock().expect("counts").gzip_requests += 1;
        out
    } else {
        wire.to_vec()
    };
    let rows = match parse_rows(&body) {
        Ok(rows) => rows,
        Err(message) => {
            return li_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &message);
        }
    };
    if let Some(poison) = &s.poison
        && let Some(i) = rows
            .iter()
            .position(|r| r.raw.get().contains(poison.as_str()))
    {
        return li_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &format!("row {i} has a value that does not fit its column"),
        );
    }
    // The stream declarations of `cefgate dcr-template` (default stream names): Azure drops
    // undeclared columns without a word; the emulator drops and counts them.
    let declared = declared_columns(stream);
    let mut rows = rows;
    if let Some(declared) = declared {
        let mut dropped = 0;
        for row in &mut rows {
            let before = row.fields.len();
            row.fields.retain(|k, _| declared.contains(*k));
            if row.fields.len() != before {
                dropped += (before - row.fields.len()) as u64;
                row.changed = true;
            }
        }
        state.counts.lock().expect("counts").columns_dropped += dropped;
    }
    // Azure keeps a TimeGenerated from 2 days before to 1 day after ingestion; others become
    // the ingestion time.
    let now = chrono::Utc::now();
    let mut replaced = 0;
    for row in &mut rows {
        let time = row
            .fields
            .get("TimeGenerated")
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
        if let Some(t) = time
            && (t < now - chrono::TimeDelta::days(2) || t > now + chrono::TimeDelta::days(1))
        {
            row.time_generated = Some(crate::decode::time::iso8601(&now));
            replaced += 1;
        }
    }
    state.counts.lock().expect("counts").time_generated_replaced += replaced;
    store(state, stream, rows, LOGS_INGESTION_MAX_VALUE);
    no_content()
}

/// The columns the stream declarations of `cefgate dcr-template` (default stream names)
/// list, as sets built once: every field of every row is looked up.
fn declared_columns(stream: &str) -> Option<&'static std::collections::HashSet<&'static str>> {
    use std::collections::HashSet;
    use std::sync::OnceLock;
    static CSL: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static SYSLOG: OnceLock<HashSet<&'static str>> = OnceLock::new();
    match stream {
        "Custom-CefGate_CommonSecurityLog" => Some(CSL.get_or_init(|| {
            crate::dcr::common_security_log_columns()
                .into_iter()
                .map(|c| c.0)
                .collect()
        })),
        "Custom-CefGate_Syslog" => Some(SYSLOG.get_or_init(|| {
            crate::dcr::syslog_columns()
                .into_iter()
                .map(|c| c.0)
                .collect()
        })),
        _ => None,
    }
}
