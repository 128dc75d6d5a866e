//! Sink: where finished batches go. JSON lines on stdout or in a file ([`json_lines`]), or an
//! Azure Monitor API ([`logs_ingestion`], [`data_collector`]), all run by one driver
//! ([`delivery`]: size limits, retries, splitting, dead letters, shutdown). Adding an output
//! means implementing [`delivery::Output`] and building it in [`build`].

pub mod config;
pub mod data_collector;
pub mod dead_letter;
pub mod delivery;
pub mod json_lines;
pub mod limits;
pub mod logs_ingestion;
pub mod request;
pub mod retry;
pub mod settings;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use delivery::{Delivery, Settled, serve};
pub use json_lines::JsonLinesOutput;
pub use settings::{DataCollectorSettings, Destination, LogsIngestionSettings, OutputSettings};

use crate::auth::TokenSource;
use crate::metrics::Metrics;
use crate::record::Table;
use data_collector::DataCollectorApi;
use dead_letter::DeadLetterQueue;
use delivery::Route;
use logs_ingestion::LogsIngestionApi;

/// Why an output could not be set up. Names the setting, never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum OutputSetupError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot set up HTTPS: {0}")]
    Http(String),
}

/// An output, ready for [`serve`] (once in an `Arc`): its driver and how many batches it
/// takes at once.
pub struct BuiltOutput {
    pub delivery: Delivery,
    pub concurrency: usize,
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, OutputSetupError> {
    // ring is the one crypto provider in the build; make it the process default for the
    // HTTPS client (installing twice is harmless).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| OutputSetupError::Http(crate::errors::error_chain(&e)))
}

/// Builds the output `settings` describe. `give_up` is fired at the shutdown deadline.
pub fn build(
    settings: &OutputSettings,
    metrics: Arc<Metrics>,
    give_up: CancellationToken,
) -> Result<BuiltOutput, OutputSetupError> {
    let dead_letters = DeadLetterQueue::new(&settings.dead_letter_path);
    let client = || http_client(settings.timeout);
    let max = |default: usize| settings.max_request_bytes.unwrap_or(default);
    let routes = |cef: &Option<String>, syslog: &Option<String>| {
        [
            Route::new(Table::CommonSecurityLog, cef.clone()),
            Route::new(Table::Syslog, syslog.clone()),
        ]
    };
    let mut built = match &settings.destination {
        Destination::Stdout => local(JsonLinesOutput::stdout(), dead_letters, metrics, give_up),
        Destination::File(path) => {
            let output = JsonLinesOutput::file(path).map_err(|source| OutputSetupError::Open {
                path: path.display().to_string(),
                source,
            })?;
            local(output, dead_letters, metrics, give_up)
        }
        Destination::LogsIngestion(li) => {
            let client = client()?;
            let api = LogsIngestionApi {
                output: settings.name.clone(),
                client: client.clone(),
                endpoint: li.endpoint.clone(),
                dcr_id: li.dcr_id.clone(),
                gzip: li.gzip,
                tokens: Arc::new(TokenSource::new(
                    li.credential.clone(),
                    li.scope.clone(),
                    client,
                )),
                metrics: metrics.clone(),
                time_warned: Default::default(),
            };
            let routes = routes(&li.cef_stream, &li.syslog_stream);
            BuiltOutput {
                delivery: Delivery::new(
                    api,
                    routes,
                    max(limits::LOGS_INGESTION_MAX_REQUEST_BYTES),
                    dead_letters,
                    metrics,
                    give_up,
                ),
                concurrency: settings.concurrency,
            }
        }
        Destination::DataCollector(dc) => {
            let api = DataCollectorApi {
                output: settings.name.clone(),
                client: client()?,
                endpoint: dc.endpoint.clone(),
                signer: dc.signer.clone(),
                time_generated_field: dc.time_generated_field.clone(),
                azure_resource_id: dc.azure_resource_id.clone(),
                metrics: metrics.clone(),
            };
            let routes = routes(&dc.cef_log_type, &dc.syslog_log_type);
            BuiltOutput {
                delivery: Delivery::new(
                    api,
                    routes,
                    max(limits::DATA_COLLECTOR_MAX_REQUEST_BYTES),
                    dead_letters,
                    metrics,
                    give_up,
                ),
                concurrency: settings.concurrency,
            }
        }
    };
    built.delivery.retry_max = settings.retry_max;
    Ok(built)
}

/// A local output: both tables into one stream of lines, one batch at a time so that rows
/// keep their order.
fn local(
    output: JsonLinesOutput,
    dead_letters: DeadLetterQueue,
    metrics: Arc<Metrics>,
    give_up: CancellationToken,
) -> BuiltOutput {
    let routes =
        [Table::CommonSecurityLog, Table::Syslog].map(|t| Route::new(t, Some(t.name().into())));
    BuiltOutput {
        delivery: Delivery::new(output, routes, usize::MAX, dead_letters, metrics, give_up),
        concurrency: 1,
    }
}

/// `cefgate check --live`: builds the output and sends an empty request to every route, so
/// that Azure checks the credential, the role and the route without taking a row. Each
/// route's answer is `Ok(note)` or what to fix.
#[allow(clippy::type_complexity)]
pub fn probe(
    runtime: &tokio::runtime::Runtime,
    settings: &OutputSettings,
) -> Result<Vec<(String, Result<String, String>)>, String> {
    let _guard = runtime.enter();
    let built =
        build(settings, Arc::default(), CancellationToken::new()).map_err(|e| e.to_string())?;
    let answers = runtime.block_on(built.delivery.probe());
    Ok(answers
        .into_iter()
        .map(|(route, outcome)| {
            let verdict = match outcome {
                retry::Outcome::Delivered | retry::Outcome::TooLarge => Ok(String::new()),
                retry::Outcome::RetryAfter(wait) => Ok(format!(
                    " (throttled: the service asked to wait {wait:?}, but it took the request)"
                )),
                retry::Outcome::Rejected { error } => {
                    Err(format!("the service refused the request: {error}"))
                }
                retry::Outcome::Transient { reason } => Err(format!(
                    "the service did not answer usefully ({reason}); check endpoint, proxy (HTTPS_PROXY) and network"
                )),
                retry::Outcome::Unauthorized { reason }
                | retry::Outcome::RouteBroken { reason }
                | retry::Outcome::NotFound { reason } => Err(reason),
            };
            (route, verdict)
        })
        .collect())
}
