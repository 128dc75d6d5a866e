//! Sink: where finished batches go. JSON lines on stdout or in a file ([`json_lines`]), or an
//! Azure Monitor API ([`logs_ingestion`], [`data_collector`]), all run by one driver
//! ([`delivery`]: size limits, retries, splitting, dead letters, shutdown). Adding an output
//! means implementing [`delivery::Output`] and building it in [`build`].

pub mod data_collector;
pub mod dead_letter;
pub mod delivery;
pub mod json_lines;
pub mod logs_ingestion;
pub mod retry;
pub mod signature;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use delivery::{Delivery, Settled, serve};
pub use json_lines::JsonLinesOutput;

use crate::auth::{Credential, Secret, TokenSource};
use crate::config::{CredentialKind, OutputConfig, OutputKind};
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
    #[error("cannot read the {what}: {reason}")]
    Secret { what: &'static str, reason: String },
    #[error("the shared key: {0}")]
    SharedKey(#[from] signature::KeyError),
    #[error("cannot set up HTTPS: {0}")]
    Http(String),
    #[error("`{0}` is not set")]
    Missing(&'static str),
}

/// An output, ready for [`serve`] (once in an `Arc`): its driver and how many batches it
/// takes at once.
pub struct BuiltOutput {
    pub delivery: Delivery,
    pub concurrency: usize,
}

/// Reads a secret from the environment variable or the file named in the configuration.
pub fn read_secret(
    what: &'static str,
    env: &Option<toml::Spanned<String>>,
    file: &Option<toml::Spanned<PathBuf>>,
) -> Result<Secret, OutputSetupError> {
    let value = match (env, file) {
        (Some(var), _) => std::env::var(var.get_ref()).map_err(|_| OutputSetupError::Secret {
            what,
            reason: format!("environment variable {} is not set", var.get_ref()),
        })?,
        (None, Some(path)) => {
            std::fs::read_to_string(path.get_ref()).map_err(|e| OutputSetupError::Secret {
                what,
                reason: format!("{}: {e}", path.get_ref().display()),
            })?
        }
        (None, None) => {
            return Err(OutputSetupError::Secret {
                what,
                reason: "not configured".into(),
            });
        }
    };
    Ok(Secret::new(value.trim().to_string()))
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
        .map_err(|e| OutputSetupError::Http(crate::auth::error_chain(&e)))
}

fn text(v: &Option<toml::Spanned<String>>) -> Option<String> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// Builds the output described by `config` (a validated `[output]`). `give_up` is fired
/// at the shutdown deadline.
pub fn build(
    config: &OutputConfig,
    dead_letter_path: &std::path::Path,
    metrics: Arc<Metrics>,
    give_up: CancellationToken,
) -> Result<BuiltOutput, OutputSetupError> {
    let dead_letters = DeadLetterQueue::new(dead_letter_path);
    let retry_max = Duration::from_secs(config.retry_max_secs.max(1));
    let client = || http_client(Duration::from_secs(config.timeout_secs));
    let endpoint = text(&config.endpoint).unwrap_or_default();
    let max = |default: usize| {
        config
            .max_request_bytes
            .as_ref()
            .map_or(default, |m| *m.get_ref())
    };
    let mut built = match config.kind.get_ref() {
        OutputKind::Stdout => local(JsonLinesOutput::stdout(), dead_letters, metrics, give_up),
        OutputKind::File => {
            let path = config
                .path
                .as_ref()
                .ok_or(OutputSetupError::Missing("path"))?
                .get_ref();
            let output = JsonLinesOutput::file(path).map_err(|source| OutputSetupError::Open {
                path: path.display().to_string(),
                source,
            })?;
            local(output, dead_letters, metrics, give_up)
        }
        OutputKind::LogsIngestion => {
            let authority = text(&config.authority_host)
                .unwrap_or_else(|| "https://login.microsoftonline.com".into());
            let env = |name: &str| std::env::var(name).ok();
            let credential = match config
                .credential
                .as_ref()
                .map_or(CredentialKind::ClientSecret, |c| *c.get_ref())
            {
                CredentialKind::ClientSecret => Credential::ClientSecret {
                    authority_host: authority,
                    tenant_id: text(&config.tenant_id).unwrap_or_default(),
                    client_id: text(&config.client_id).unwrap_or_default(),
                    secret: read_secret(
                        "client secret",
                        &config.client_secret_env,
                        &config.client_secret_file,
                    )?,
                },
                CredentialKind::WorkloadIdentity => Credential::WorkloadIdentity {
                    authority_host: text(&config.authority_host)
                        .or_else(|| env("AZURE_AUTHORITY_HOST"))
                        .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
                    tenant_id: text(&config.tenant_id)
                        .or_else(|| env("AZURE_TENANT_ID"))
                        .unwrap_or_default(),
                    client_id: text(&config.client_id)
                        .or_else(|| env("AZURE_CLIENT_ID"))
                        .unwrap_or_default(),
                    token_file: config
                        .federated_token_file
                        .as_ref()
                        .map(|f| f.get_ref().clone())
                        .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                        .unwrap_or_default(),
                },
                CredentialKind::ManagedIdentity => Credential::ManagedIdentity {
                    endpoint: text(&config.managed_identity_endpoint).unwrap_or_else(|| {
                        "http://169.254.169.254/metadata/identity/oauth2/token".into()
                    }),
                    client_id: text(&config.client_id),
                },
            };
            let scope =
                text(&config.scope).unwrap_or_else(|| "https://monitor.azure.com//.default".into());
            let client = client()?;
            let api = LogsIngestionApi {
                client: client.clone(),
                endpoint,
                dcr_id: text(&config.dcr_id).unwrap_or_default(),
                gzip: config.gzip,
                tokens: Arc::new(TokenSource::new(credential, scope, client)),
            };
            let routes = [
                Route::new(
                    Table::CommonSecurityLog,
                    Some(
                        text(&config.cef_stream)
                            .unwrap_or_else(|| "Custom-CefGate_CommonSecurityLog".into()),
                    ),
                ),
                Route::new(
                    Table::Syslog,
                    Some(
                        text(&config.syslog_stream)
                            .unwrap_or_else(|| "Custom-CefGate_Syslog".into()),
                    ),
                ),
            ];
            BuiltOutput {
                delivery: Delivery::new(
                    api,
                    routes,
                    max(1_048_576),
                    dead_letters,
                    metrics,
                    give_up,
                ),
                concurrency: config.concurrency,
            }
        }
        OutputKind::DataCollector => {
            let workspace = text(&config.workspace_id).unwrap_or_default();
            let key = read_secret(
                "shared key",
                &config.shared_key_env,
                &config.shared_key_file,
            )?;
            let signer = signature::SharedKeySigner::new(&workspace, key.expose())?;
            let endpoint = if endpoint.is_empty() {
                format!("https://{workspace}.ods.opinsights.azure.com")
            } else {
                endpoint
            };
            let api = DataCollectorApi {
                client: client()?,
                endpoint,
                signer,
                time_generated_field: text(&config.time_generated_field)
                    .unwrap_or_else(|| data_collector::RENAMED_TIME_GENERATED.into()),
                azure_resource_id: text(&config.azure_resource_id),
                metrics: metrics.clone(),
            };
            let routes = [
                Route::new(
                    Table::CommonSecurityLog,
                    Some(text(&config.cef_log_type).unwrap_or_else(|| "CommonSecurityLog".into())),
                ),
                Route::new(
                    Table::Syslog,
                    Some(text(&config.syslog_log_type).unwrap_or_else(|| "Syslog".into())),
                ),
            ];
            BuiltOutput {
                delivery: Delivery::new(
                    api,
                    routes,
                    max(30_000_000),
                    dead_letters,
                    metrics,
                    give_up,
                ),
                concurrency: config.concurrency,
            }
        }
    };
    built.delivery.retry_max = retry_max;
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
