//! `cefgate emulate` (cargo feature `emulator`, on by default): a local workspace that
//! answers like Azure — both ingestion APIs and the token endpoints — and stores what it
//! accepts as JSON lines. It lets the tests and the README's first steps run end to end
//! without a subscription, and can inject faults, outages and latency to try retries,
//! splitting and the spool.

use std::path::PathBuf;
use std::time::Duration;

use cefgate::emulate::{EmulatorError, EmulatorSettings, serve};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    address: String,
    /// Folder for accepted rows: one JSON-lines file per stream or log type.
    #[arg(long, default_value = "emulated-workspace")]
    data: PathBuf,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    workspace_id: String,
    /// Data Collector shared key (base64); default: a published test key. Also read from
    /// CEFGATE_EMULATE_SHARED_KEY.
    #[arg(long, env = "CEFGATE_EMULATE_SHARED_KEY", hide_env_values = true)]
    shared_key: Option<String>,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    tenant_id: String,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    client_id: String,
    /// Client secret the token endpoint accepts. Also read from CEFGATE_EMULATE_CLIENT_SECRET.
    #[arg(long, env = "CEFGATE_EMULATE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    #[arg(long, default_value = "dcr-00000000000000000000000000000000")]
    dcr_id: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,
    /// Share of ingestion requests answered with a fault (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Statuses used for faults.
    #[arg(long, value_delimiter = ',', default_value = "429,500,503")]
    fault_statuses: Vec<u16>,
    /// Retry-After sent with 429 and 503, in seconds.
    #[arg(long, default_value_t = 1.0)]
    retry_after_secs: f64,
    /// Added to every ingestion request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Check and count accepted rows (GET /counts) without storing them (long load runs).
    #[arg(long)]
    count_only: bool,
    /// An outage: every ingestion request gets 503 from START to START+LENGTH seconds
    /// after start (START:LENGTH).
    #[arg(long, value_name = "START:LENGTH")]
    outage: Option<String>,
    /// Refuse (400) any request with a row containing this text.
    #[arg(long)]
    poison: Option<String>,
    /// Answer the first N ingestion requests with a fault (the first of --fault-statuses).
    #[arg(long, default_value_t = 0)]
    fail_first: u64,
    /// Logs Ingestion request limit in bytes (Azure's is 1 MiB); lower it to test splitting.
    #[arg(long, default_value_t = cefgate::sink::limits::LOGS_INGESTION_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// Data Collector request limit in bytes (Azure's is 30 MB, kept here as 30,000,000; answered with 404 when
    /// exceeded); lower it to test splitting.
    #[arg(long, default_value_t = cefgate::sink::limits::DATA_COLLECTOR_MAX_REQUEST_BYTES)]
    data_collector_max_bytes: usize,
    /// The PEM certificate registered for the app: client assertions must be signed with its
    /// key.
    #[arg(long)]
    client_certificate: Option<PathBuf>,
}

/// Why the emulator did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--outage {0:?} is not START:LENGTH in seconds")]
    Outage(String),
    #[error("--fault-rate must be between 0 and 1")]
    FaultRate,
    #[error("--address {0:?} is not IP:PORT")]
    Address(String),
    #[error("--client-certificate {}: {source}", path.display())]
    ClientCertificate { path: PathBuf, source: pem::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Serve(#[from] EmulatorError),
}

/// `START:LENGTH` in seconds, both at least 0.
fn outage(text: &str) -> Result<(Duration, Duration), Error> {
    let (a, b) = text
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)))
        .filter(|(a, b)| *a >= 0.0 && *b >= 0.0)
        .ok_or_else(|| Error::Outage(text.to_string()))?;
    Ok((Duration::from_secs_f64(a), Duration::from_secs_f64(b)))
}

pub fn execute(args: Args) -> Result<(), Error> {
    let defaults = EmulatorSettings::default();
    let (outage_after, outage_for) = match &args.outage {
        None => (None, Duration::ZERO),
        Some(text) => {
            let (after, length) = outage(text)?;
            (Some(after), length)
        }
    };
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(Error::FaultRate);
    }
    let settings = EmulatorSettings {
        address: args
            .address
            .parse()
            .map_err(|_| Error::Address(args.address.clone()))?,
        data_dir: args.data,
        count_only: args.count_only,
        workspace_id: args.workspace_id,
        shared_key: args.shared_key.unwrap_or(defaults.shared_key),
        tenant_id: args.tenant_id,
        client_id: args.client_id,
        client_secret: args.client_secret.unwrap_or(defaults.client_secret),
        dcr_id: args.dcr_id,
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        fault_rate: args.fault_rate,
        fault_statuses: args.fault_statuses,
        retry_after_secs: args.retry_after_secs,
        latency: Duration::from_millis(args.latency_ms),
        outage_after,
        outage_for,
        poison: args.poison,
        fail_first: args.fail_first,
        max_request_bytes: args.max_request_bytes,
        data_collector_max_bytes: args.data_collector_max_bytes,
        client_certificate: match args.client_certificate {
            None => None,
            Some(path) => Some(
                CertificateDer::from_pem_file(&path)
                    .map_err(|source| Error::ClientCertificate { path, source })?
                    .to_vec(),
            ),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let counts = runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            stop.cancel();
        });
        serve(settings, shutdown, |addr| {
            tracing::info!("emulate: listening on http://{addr}");
        })
        .await
    })?;
    eprintln!("{counts}");
    Ok(())
}
