//! The HTTP Data Collector API: `POST /api/logs`, signed with the workspace's shared key.

use super::*;

pub(super) async fn data_collector(state: &State, query: &str, req: Request<Incoming>) -> Reply {
    let s = &state.settings;
    if !s.latency.is_zero() {
        tokio::time::sleep(s.latency).await;
    }
    match url_form(query.as_bytes())
        .get("api-version")
        .map(String::as_str)
    {
        None => {
            return dc_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersion",
                "The API version was not specified.",
            );
        }
        Some("2016-04-01") => {}
        Some(_) => {
            return dc_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersion",
                "The API version that you specified was not recognized by the service.",
            );
        }
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match header("content-type").as_deref() {
        None => {
            return dc_error(
                StatusCode::BAD_REQUEST,
                "MissingContentType",
                "The content type was not specified.",
            );
        }
        Some("application/json") => {}
        // The service's signature check uses the exact content type: anything else fails it.
        Some(_) => {
            return dc_error(
                StatusCode::FORBIDDEN,
                "InvalidAuthorization",
                "An invalid signature was specified in the Authorization header",
            );
        }
    }
    let Some(log_type) = header("log-type") else {
        return dc_error(
            StatusCode::BAD_REQUEST,
            "MissingLogType",
            "The value type log type was not specified.",
        );
    };
    if log_type.is_empty()
        || log_type.len() > 100
        || !log_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return dc_error(
            StatusCode::BAD_REQUEST,
            "InvalidLogType",
            "An invalid log type was specified.",
        );
    }
    let Some(date) = header("x-ms-date") else {
        return dc_error(
            StatusCode::FORBIDDEN,
            "InvalidAuthorization",
            "An invalid date format used in the x-ms-date header.",
        );
    };
    // IMF-fixdate only: it must format back to itself (which rejects unpadded days and the
    // older formats a lenient parser would take).
    let when = match httpdate::parse_http_date(&date) {
        Ok(t) if httpdate::fmt_http_date(t) == date => t,
        _ => {
            return dc_error(
                StatusCode::FORBIDDEN,
                "InvalidAuthorization",
                "An invalid date format used in the x-ms-date header.",
            );
        }
    };
    let skew = match SystemTime::now().duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > Duration::from_secs(15 * 60) {
        return dc_error(
            StatusCode::FORBIDDEN,
            "InvalidAuthorization",
            "The x-ms-date header is more than 15 minutes away from the service's time.",
        );
    }
    let authorization = header("authorization").unwrap_or_default();
    let time_field = header("time-generated-field");
    let limit = state.settings.data_collector_max_bytes;
    let body = match read_body(req, limit).await {
        Ok(b) => b,
        Err(_) => {
            return dc_error(
                StatusCode::NOT_FOUND,
                "RequestTooLarge",
                &format!("The request is larger than {limit} bytes."),
            );
        }
    };
    if !state.signer.verify(&authorization, &body, &date) {
        return dc_error(
            StatusCode::FORBIDDEN,
            "InvalidAuthorization",
            "An invalid signature was specified in the Authorization header",
        );
    }
    if let Some(fault) = injected_fault(state, "dc") {
        return fault;
    }
    let rows = match parse_rows(&body) {
        Ok(rows) => rows,
        Err(message) => return dc_error(StatusCode::BAD_REQUEST, "InvalidDataFormat", &message),
    };
    for row in &rows {
        for reserved in ["TimeGenerated", "tenant", "RawData"] {
            if row.fields.contains_key(reserved) {
                return dc_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidDataFormat",
                    &format!("'{reserved}' is a reserved field name."),
                );
            }
        }
        if let Some(field) = &time_field
            && let Some(v) = row.fields.get(field.as_str())
            && serde_json::from_str::<std::borrow::Cow<'_, str>>(v.get())
                .map_or(true, |t| chrono::DateTime::parse_from_rfc3339(&t).is_err())
        {
            return dc_error(
                StatusCode::BAD_REQUEST,
                "InvalidDataFormat",
                &format!("time-generated-field '{field}' is not an ISO 8601 time"),
            );
        }
    }
    if let Some(poison) = &s.poison
        && rows.iter().any(|r| r.raw.get().contains(poison.as_str()))
    {
        return dc_error(
            StatusCode::BAD_REQUEST,
            "InvalidDataFormat",
            "a row has a value that does not fit its column",
        );
    }
    store(
        state,
        &format!("{log_type}_CL"),
        rows,
        DATA_COLLECTOR_MAX_VALUE,
    );
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::OK;
    r
}
