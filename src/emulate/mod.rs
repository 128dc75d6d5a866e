//! `cefgate emulate`: a local Log Analytics workspace that answers like Azure does, for both
//! ingestion APIs and their token endpoints. The tests post to it, and users can try a
//! configuration with no Azure account.
//!
//! Token endpoints: Entra ID (client secret, federated token), the instance metadata
//! service, and an Azure Arc agent (`/arc/metadata/identity/oauth2/token`, which answers with
//! a key-file challenge written under `<data>/arc-tokens/`).
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

mod data_collector;
mod faults;
mod logs_ingestion;
mod store;
mod tokens;

use data_collector::data_collector;
use faults::injected_fault;
use logs_ingestion::logs_ingestion;
use store::{parse_rows, store};
use tokens::{arc_himds, check_bearer, imds, token_endpoint, url_form};

/// The emulated workspace's identity and behaviour.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    pub address: SocketAddr,
    /// Where accepted rows are stored (`<stream>.ndjson`, `<LogType>_CL.ndjson`).
    pub data_dir: PathBuf,
    /// Accepted rows are checked and counted (`/counts`) but not stored: for long load runs,
    /// whose rows would fill the disk.
    pub count_only: bool,
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
    /// The Data Collector's request limit (30 MB in Azure, answered with 404).
    pub data_collector_max_bytes: usize,
    /// The certificate (DER) registered for the app; client assertions that name a
    /// certificate must be signed with its key.
    pub client_certificate: Option<Vec<u8>>,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8080".parse().expect("literal"),
            data_dir: PathBuf::from("emulated-workspace"),
            count_only: false,
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
            data_collector_max_bytes: DATA_COLLECTOR_MAX,
            client_certificate: None,
        }
    }
}

use crate::sink::limits::{
    DATA_COLLECTOR_MAX_REQUEST_BYTES as DATA_COLLECTOR_MAX,
    DATA_COLLECTOR_MAX_VALUE_BYTES as DATA_COLLECTOR_MAX_VALUE,
    LOGS_INGESTION_MAX_REQUEST_BYTES as LOGS_INGESTION_MAX,
    LOGS_INGESTION_MAX_VALUE_BYTES as LOGS_INGESTION_MAX_VALUE,
};
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
    /// Rows whose TimeGenerated was outside the window and replaced, as Azure does.
    time_generated_replaced: u64,
    /// Logs Ingestion requests that came gzip-compressed (also counted, once, by status).
    gzip_requests: u64,
}

struct State {
    settings: EmulatorSettings,
    signer: SharedKeySigner,
    started: Instant,
    tokens: Mutex<HashMap<String, Token>>,
    counts: Mutex<Counts>,
    files: Mutex<HashMap<String, std::fs::File>>,
    ingest_requests: std::sync::atomic::AtomicU64,
    /// Keys handed out in Azure Arc challenges (the contents of the key files).
    arc_keys: Mutex<Vec<String>>,
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
        arc_keys: Default::default(),
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
    json!({"rows": counts.rows, "requests": counts.requests, "tokens_issued": counts.tokens_issued, "columns_dropped": counts.columns_dropped, "time_generated_replaced": counts.time_generated_replaced, "gzip_requests": counts.gzip_requests})
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
        (&Method::GET, ["arc", "metadata", "identity", "oauth2", "token"]) => {
            arc_himds(state, &req, &query)
        }
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
