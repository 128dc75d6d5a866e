//! `cefgate emulate`: a local Log Analytics workspace that answers like Azure does, for both
//! ingestion APIs and their token endpoints. The tests post to it, and users can try a
//! configuration with no Azure account.
//!
//! It checks what Azure checks (SharedKey signatures over the byte length, the date format
//! and a 15-minute skew, bearer tokens with their audience and expiry, size limits, reserved
//! names), answers with the documented status and error codes, can inject faults (a share
//! of 429/500/503 with `Retry-After`, latency, an outage window, a poisoned value), and keeps
//! accepted rows as JSON lines, one file per stream or log type.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::sink::signature::SharedKeySigner;

/// The emulated workspace's identity and behaviour.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    pub address: SocketAddr,
    /// Where accepted rows are stored (`<stream>.ndjson`, `<LogType>_CL.ndjson`).
    pub data_dir: PathBuf,
    pub workspace_id: String,
    pub shared_key: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub dcr_id: String,
    pub token_lifetime: Duration,
    /// Share of ingestion requests answered with a fault, 0.0 to 1.0.
    pub fault_rate: f64,
    /// The statuses faults use, picked at random.
    pub fault_statuses: Vec<u16>,
    /// `Retry-After` (seconds) sent with 429 and 503.
    pub retry_after_secs: f64,
    /// Added to every ingestion request.
    pub latency: Duration,
    /// From `outage_after` after start, for `outage_for`, every ingestion request gets 503.
    pub outage_after: Option<Duration>,
    pub outage_for: Duration,
    /// A request with a row containing this text is refused with 400, as a bad row would be.
    pub poison: Option<String>,
    /// The first N ingestion requests get a fault (the first of `fault_statuses`).
    pub fail_first: u64,
    /// Logs Ingestion's request limit (1 MiB in Azure); lower it to exercise splitting.
    pub max_request_bytes: usize,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8080".parse().expect("literal"),
            data_dir: PathBuf::from("emulated-workspace"),
            workspace_id: "00000000-0000-0000-0000-000000000000".into(),
            // The test key of the Data Collector fact sheet (bytes 0x00..0x3f): not a secret.
            shared_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==".into(),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            client_id: "00000000-0000-0000-0000-000000000000".into(),
            client_secret: "emulator-client-secret".into(),
            dcr_id: "dcr-00000000000000000000000000000000".into(),
            token_lifetime: Duration::from_secs(3600),
            fault_rate: 0.0,
            fault_statuses: vec![429, 500, 503],
            retry_after_secs: 1.0,
            latency: Duration::ZERO,
            outage_after: None,
            outage_for: Duration::ZERO,
            poison: None,
            fail_first: 0,
            max_request_bytes: LOGS_INGESTION_MAX,
        }
    }
}

/// Logs Ingestion: 1 MiB per call, compressed or not.
const LOGS_INGESTION_MAX: usize = 1_048_576;
/// Logs Ingestion: longer values are cut by the service.
const LOGS_INGESTION_MAX_VALUE: usize = 64 * 1024;
/// Data Collector: 30 MB per post.
const DATA_COLLECTOR_MAX: usize = 30 * 1024 * 1024;
const DATA_COLLECTOR_MAX_VALUE: usize = 32 * 1024;
const MONITOR_AUDIENCE: &str = "https://monitor.azure.com";

struct Token {
    audience: String,
    expires: Instant,
}

#[derive(Default)]
struct Counts {
    rows: HashMap<String, u64>,
    requests: HashMap<String, u64>,
    tokens_issued: u64,
    /// Values of columns the stream does not declare, dropped as Azure drops them.
    columns_dropped: u64,
}

struct State {
    settings: EmulatorSettings,
    signer: SharedKeySigner,
    started: Instant,
    tokens: Mutex<HashMap<String, Token>>,
    counts: Mutex<Counts>,
    files: Mutex<HashMap<String, std::fs::File>>,
    ingest_requests: std::sync::atomic::AtomicU64,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("the shared key: {0}")]
    Key(#[from] crate::sink::signature::KeyError),
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}

/// A Logs Ingestion error: JSON body and `x-ms-error-code`.
fn li_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let mut r = reply(status, json!({"error": {"code": code, "message": message}}));
    r.headers_mut()
        .insert("x-ms-error-code", code.parse().expect("ascii code"));
    r
}

/// A Data Collector error: `{"Error":..,"Message":..}`.
fn dc_error(status: StatusCode, code: &str, message: &str) -> Reply {
    reply(status, json!({"Error": code, "Message": message}))
}

fn no_content() -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// Runs until `shutdown` fires; returns the final counts as JSON.
pub async fn serve(
    settings: EmulatorSettings,
    shutdown: tokio_util::sync::CancellationToken,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<Value, EmulatorError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| EmulatorError::DataDir(settings.data_dir.display().to_string(), e))?;
    let signer = SharedKeySigner::new(&settings.workspace_id, &settings.shared_key)?;
    let listener = TcpListener::bind(settings.address)
        .await
        .map_err(|e| EmulatorError::Bind(settings.address, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| EmulatorError::Bind(settings.address, e))?;
    let state = Arc::new(State {
        settings,
        signer,
        started: Instant::now(),
        tokens: Mutex::default(),
        counts: Mutex::default(),
        files: Mutex::default(),
        ingest_requests: Default::default(),
    });
    on_ready(local);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("emulate: accept failed: {e}");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Replies are small single writes; without this, Nagle and delayed ACKs add tens of
        // milliseconds to every request.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
    Ok(counts_json(&state))
}

fn counts_json(state: &State) -> Value {
    let counts = state.counts.lock().expect("counts");
    json!({"rows": counts.rows, "requests": counts.requests, "tokens_issued": counts.tokens_issued, "columns_dropped": counts.columns_dropped})
}

fn count_request(state: &State, api: &str, status: StatusCode) {
    let mut counts = state.counts.lock().expect("counts");
    *counts
        .requests
        .entry(format!("{api} {}", status.as_u16()))
        .or_default() += 1;
}

async fn handle(state: &State, req: Request<Incoming>) -> Reply {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match (&method, segments.as_slice()) {
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
            let tenant = tenant.to_string();
            token_endpoint(state, &tenant, req).await
        }
        (&Method::GET, ["metadata", "identity", "oauth2", "token"]) => imds(state, &req, &query),
        (&Method::POST, ["dataCollectionRules", dcr, "streams", stream]) => {
            let (dcr, stream) = (dcr.to_string(), stream.to_string());
            let r = logs_ingestion(state, &dcr, &stream, &query, req).await;
            count_request(state, "logs-ingestion", r.status());
            r
        }
        (&Method::POST, ["api", "logs"]) => {
            let r = data_collector(state, &query, req).await;
            count_request(state, "data-collector", r.status());
            r
        }
        (&Method::GET, ["counts"]) => reply(StatusCode::OK, counts_json(state)),
        (&Method::GET, ["health"]) => reply(StatusCode::OK, json!({"status": "ok"})),
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no such endpoint: {method} {path}")}),
        ),
    };
    tracing::debug!(
        "emulate: {method} {path} -> {} in {:?}",
        response.status(),
        started.elapsed()
    );
    response
}

#[allow(clippy::result_large_err)]
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Reply> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(li_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ContentLengthLimitExceeded",
            &format!("Maximum allowed content length: {limit} bytes"),
        )),
    }
}

fn issue_token(state: &State, audience: &str) -> (String, u64) {
    let token = format!("emu-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let lifetime = state.settings.token_lifetime;
    state.tokens.lock().expect("tokens").insert(
        token.clone(),
        Token {
            audience: audience.to_string(),
            expires: Instant::now() + lifetime,
        },
    );
    state.counts.lock().expect("counts").tokens_issued += 1;
    (token, lifetime.as_secs())
}

fn aad_error(code: &str, description: &str) -> Reply {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": description}),
    )
}

async fn token_endpoint(state: &State, tenant: &str, req: Request<Incoming>) -> Reply {
    let body = match read_body(req, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form: HashMap<String, String> = url_form(&body);
    let s = &state.settings;
    if tenant != s.tenant_id {
        return aad_error(
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            "unsupported_grant_type",
            "AADSTS70003: grant_type must be client_credentials",
        );
    }
    if form.get("client_id") != Some(&s.client_id) {
        return aad_error(
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    let by_secret = form.get("client_secret") == Some(&s.client_secret);
    let by_assertion = form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && form.get("client_assertion").is_some_and(|a| !a.is_empty());
    if !(by_secret || by_assertion) {
        return aad_error(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let Some(scope) = form.get("scope") else {
        return aad_error(
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    };
    let Some(audience) = scope.strip_suffix("/.default") else {
        return aad_error(
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let (token, expires_in) = issue_token(state, audience.trim_end_matches('/'));
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}),
    )
}

fn imds(state: &State, req: &Request<Incoming>, query: &str) -> Reply {
    if req.headers().get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let q = url_form(query.as_bytes());
    let Some(resource) = q.get("resource") else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}),
        );
    };
    let (token, expires_in) = issue_token(state, resource.trim_end_matches('/'));
    reply(
        StatusCode::OK,
        json!({"access_token": token, "expires_in": expires_in.to_string(), "resource": resource, "token_type": "Bearer"}),
    )
}

/// A fault to answer with, if the dice or the outage window say so.
fn injected_fault(state: &State, api: &str) -> Option<Reply> {
    let s = &state.settings;
    let n = state
        .ingest_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let forced = n < s.fail_first;
    if let Some(after) = s.outage_after {
        let elapsed = state.started.elapsed();
        if elapsed >= after && elapsed < after + s.outage_for {
            return Some(match api {
                "li" => li_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "outage (emulated)",
                ),
                _ => dc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "outage (emulated)",
                ),
            });
        }
    }
    let dice = s.fault_rate > 0.0 && fastrand::f64() < s.fault_rate;
    if (forced || dice) && !s.fault_statuses.is_empty() {
        let status = if forced {
            s.fault_statuses[0]
        } else {
            s.fault_statuses[fastrand::usize(..s.fault_statuses.len())]
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = match api {
            "li" => li_error(status, "InjectedFault", "fault injected by cefgate emulate"),
            _ => dc_error(status, "InjectedFault", "fault injected by cefgate emulate"),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let value = format!("{}", s.retry_after_secs);
            r.headers_mut()
                .insert("retry-after", value.parse().expect("number"));
        }
        return Some(r);
    }
    None
}

// The error is the HTTP answer itself, built once per refused request: boxing it gains nothing.
#[allow(clippy::result_large_err)]
fn check_bearer(state: &State, req: &Request<Incoming>) -> Result<(), Reply> {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "A bearer token is required.",
        ));
    };
    let tokens = state.tokens.lock().expect("tokens");
    match tokens.get(token) {
        None => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        )),
        Some(t) if Instant::now() >= t.expires => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        )),
        Some(t) if t.audience != MONITOR_AUDIENCE => Err(li_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAudience",
            &format!(
                "The audience '{}' is invalid; expected {MONITOR_AUDIENCE}.",
                t.audience
            ),
        )),
        Some(_) => Ok(()),
    }
}

async fn logs_ingestion(
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
        count_request(state, "logs-ingestion gzip", StatusCode::OK);
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
    let declared: Option<Vec<&str>> = match stream {
        "Custom-CefGate_CommonSecurityLog" => Some(
            crate::dcr::common_security_log_columns()
                .into_iter()
                .map(|c| c.0)
                .collect(),
        ),
        "Custom-CefGate_Syslog" => Some(
            crate::dcr::syslog_columns()
                .into_iter()
                .map(|c| c.0)
                .collect(),
        ),
        _ => None,
    };
    let mut rows = rows;
    if let Some(declared) = declared {
        let mut dropped = 0;
        for row in &mut rows {
            let before = row.fields.len();
            row.fields.retain(|k, _| declared.contains(k));
            if row.fields.len() != before {
                dropped += (before - row.fields.len()) as u64;
                row.changed = true;
            }
        }
        state.counts.lock().expect("counts").columns_dropped += dropped;
    }
    store(state, stream, rows, LOGS_INGESTION_MAX_VALUE);
    no_content()
}

async fn data_collector(state: &State, query: &str, req: Request<Incoming>) -> Reply {
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
    let body = match read_body(req, DATA_COLLECTOR_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return dc_error(
                StatusCode::NOT_FOUND,
                "RequestTooLarge",
                "The request is larger than 30 MB.",
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

/// One row of a request, kept as sent: fields are read without copying their values.
struct Row<'a> {
    raw: &'a serde_json::value::RawValue,
    fields: std::collections::BTreeMap<&'a str, &'a serde_json::value::RawValue>,
    /// Fields were dropped: store `fields`, not `raw`.
    changed: bool,
}

fn parse_rows(body: &[u8]) -> Result<Vec<Row<'_>>, String> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not a valid JSON array: {e}"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let fields = serde_json::from_str(raw.get())
                .map_err(|e| format!("Item {i} of the array is not a flat JSON object: {e}"))?;
            Ok(Row {
                raw,
                fields,
                changed: false,
            })
        })
        .collect()
}

/// Appends accepted rows, cutting values at the service's limit as it would.
fn store(state: &State, table: &str, rows: Vec<Row<'_>>, max_value: usize) {
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.raw.get().len() + 1).sum());
    let n = rows.len() as u64;
    for row in rows {
        if row.raw.get().len() > max_value {
            // Long enough to hold a long value: cut it through a map.
            let mut map: serde_json::Map<String, Value> = row
                .fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        serde_json::from_str(v.get()).unwrap_or(Value::Null),
                    )
                })
                .collect();
            for v in map.values_mut() {
                if let Value::String(s) = v
                    && s.len() > max_value
                {
                    let mut cut = max_value;
                    while !s.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    s.truncate(cut);
                }
            }
            serde_json::to_writer(&mut out, &map).expect("writing to memory");
        } else if row.changed {
            serde_json::to_writer(&mut out, &row.fields).expect("writing to memory");
        } else {
            out.extend_from_slice(row.raw.get().as_bytes());
        }
        out.push(b'\n');
    }
    let mut files = state.files.lock().expect("files");
    let file = files.entry(table.to_string()).or_insert_with(|| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.settings.data_dir.join(format!("{table}.ndjson")))
            .expect("the data folder is writable")
    });
    if let Err(e) = file.write_all(&out) {
        tracing::error!("emulate: cannot store rows for {table}: {e}");
    }
    *state
        .counts
        .lock()
        .expect("counts")
        .rows
        .entry(table.to_string())
        .or_default() += n;
}

/// `a=b&c=d` (percent- and plus-decoded); an unreadable form is an empty one.
fn url_form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let f =
            url_form(b"scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default&a=b+c&e=%zz&last=%41");
        assert_eq!(f["scope"], "https://monitor.azure.com//.default");
        assert_eq!(f["a"], "b c");
        assert_eq!(f["e"], "%zz");
        assert_eq!(f["last"], "A");
    }
}
