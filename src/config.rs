//! The configuration file (TOML) and its validation.
//!
//! The `[[listener]]`, `[output]`, `[batch]` and `[spool]` names are a contract other tools
//! read; keep them. Every problem is reported with the file, line and column it comes from,
//! all at once, so `cefgate check` shows a user everything to fix in one go.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::auth::{CertificateSigner, Credential, Secret};
use crate::buffer::BufferSettings;
use crate::decode::time::SenderZone;
pub use crate::frame::{Framing, Oversize};
pub use crate::listen::Protocol;
use crate::listen::{ListenerSettings, TlsSetupError, ZoneRules, tls::Acceptor};
use crate::record::TimeSource;
use crate::sink::data_collector::RENAMED_TIME_GENERATED;
use crate::sink::signature::SharedKeySigner;
use crate::sink::{DataCollectorSettings, Destination, LogsIngestionSettings, OutputSettings};
use crate::spool::SpoolSettings;

/// The configuration `cefgate run` uses without `--config`: UDP and TCP on 127.0.0.1:5514,
/// rows printed to stdout.
pub const EMBEDDED_DEFAULT: &str = r#"
[[listener]]
protocol = "udp"
address  = "127.0.0.1:5514"

[[listener]]
protocol = "tcp"
address  = "127.0.0.1:5514"
framing  = "auto"

[output]
type = "stdout"
"#;

#[derive(Debug, Clone)]
pub struct Config {
    pub listener: Vec<Spanned<ListenerConfig>>,
    /// `[output]` (one output) or `[[output]]` (several), in file order.
    pub output: Vec<Spanned<OutputConfig>>,
    pub batch: BatchConfig,
    pub record: RecordConfig,
    pub pipeline: PipelineConfig,
    /// The durable spool; without it, batches wait in memory only.
    pub spool: Option<Spanned<SpoolConfig>>,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// The file as written: `O` is one `[output]` table or an `[[output]]` array.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<O> {
    #[serde(default)]
    listener: Vec<Spanned<ListenerConfig>>,
    output: O,
    #[serde(default)]
    batch: BatchConfig,
    #[serde(default)]
    record: RecordConfig,
    #[serde(default)]
    pipeline: PipelineConfig,
    spool: Option<Spanned<SpoolConfig>>,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    log: LogConfig,
}

impl<O> RawConfig<O> {
    fn with_outputs(self, output: Vec<Spanned<OutputConfig>>) -> Config {
        Config {
            listener: self.listener,
            output,
            batch: self.batch,
            record: self.record,
            pipeline: self.pipeline,
            spool: self.spool,
            metrics: self.metrics,
            log: self.log,
        }
    }
}

/// Reads the TOML into a [`Config`], taking `[output]` or `[[output]]`.
fn read_toml(text: &str) -> Result<Config, toml::de::Error> {
    let several = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|doc| doc.get("output").map(toml::Value::is_array))
        .unwrap_or(false);
    if several {
        let raw: RawConfig<Vec<Spanned<OutputConfig>>> = toml::from_str(text)?;
        let outputs = raw.output.clone();
        Ok(raw.with_outputs(outputs))
    } else {
        let raw: RawConfig<Spanned<OutputConfig>> = toml::from_str(text)?;
        let output = raw.output.clone();
        Ok(raw.with_outputs(vec![output]))
    }
}

/// `[metrics]`: what an operator watches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (Prometheus text), `/health` and `/ready` on this address; off
    /// when absent.
    pub address: Option<Spanned<String>>,
    /// Seconds between the one-line summaries logged at info level; 0 turns them off.
    #[serde(default = "defaults::summary_interval_secs")]
    pub summary_interval_secs: u64,
    /// A file holding the token every path but `/health` then needs
    /// (`Authorization: Bearer <token>`); read once at start.
    pub bearer_token_file: Option<Spanned<PathBuf>>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            address: None,
            summary_interval_secs: defaults::summary_interval_secs(),
            bearer_token_file: None,
        }
    }
}

impl MetricsConfig {
    /// The token of `bearer_token_file`, read once: an empty, unreadable or malformed file is
    /// a problem at the key's value. Warns when the endpoint is reachable beyond this host
    /// without a token, and when others can read the file. The token is in no message.
    fn bearer_token(
        &self,
        address: Option<SocketAddr>,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
        warnings: &mut Vec<ConfigProblem>,
    ) -> Option<Secret> {
        if let (Some(addr), Some(span), None) = (address, &self.address, &self.bearer_token_file)
            && !addr.ip().is_loopback()
        {
            warnings.push(at.problem(
                Some(span.span()),
                format!(
                    "warning: the metrics endpoint on {addr} can be reached beyond this host and \
                     anyone who reaches it reads /metrics and /ready; set [metrics] \
                     bearer_token_file (and give the scraper the token) or bind 127.0.0.1"
                ),
            ));
        }
        let file = self.bearer_token_file.as_ref()?;
        let path = file.get_ref();
        let problem = |why: String| {
            at.problem(
                Some(file.span()),
                format!("bearer_token_file {}: {why}", path.display()),
            )
        };
        let text = match small_regular_file(path).and_then(|()| std::fs::read_to_string(path)) {
            Ok(text) => text,
            Err(e) => {
                problems.push(problem(format!(
                    "{e}; it must be a readable file holding the token the metrics endpoint asks for"
                )));
                return None;
            }
        };
        let token = text.trim_end_matches(['\n', '\r']);
        if token.is_empty() {
            problems.push(problem(
                "is empty; put the token in it (one line), or remove bearer_token_file".into(),
            ));
            return None;
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(problem(
                "the token must be one line of visible ASCII characters, without spaces (as \
                 `Authorization: Bearer <token>` carries it)"
                    .into(),
            ));
            return None;
        }
        if let Some(mode) = open_to_others(path) {
            warnings.push(at.problem(
                Some(file.span()),
                format!(
                    "warning: {} holds a secret that other users can read (mode {mode:04o}); \
                     chmod 600 it (or 640, group-owned by the service's group)",
                    path.display()
                ),
            ));
        }
        Some(Secret::new(token.to_string()))
    }
}

/// `[log]`: what cefgate says about itself (on stderr).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a `RUST_LOG`-style filter. `RUST_LOG`
    /// wins when set.
    pub level: Option<Spanned<String>>,
}

/// `[spool]` (a contract: keep these names).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Where batches wait for delivery (created if missing).
    pub path: Spanned<PathBuf>,
    /// The most the spool may hold; when full, TCP/TLS input waits and UDP drops (counted).
    #[serde(default = "defaults::spool_max_bytes")]
    pub max_bytes: u64,
    /// `batch` (fsync each chunk before it counts as accepted) or `never`.
    #[serde(default)]
    pub fsync: crate::spool::FsyncPolicy,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: Spanned<Protocol>,
    pub address: Spanned<String>,
    /// TCP/TLS framing; default `auto` for tcp and `octet-counting` for tls (RFC 5425).
    pub framing: Option<Framing>,
    /// TLS: PEM certificate chain and private key.
    pub cert: Option<Spanned<PathBuf>>,
    pub key: Option<Spanned<PathBuf>>,
    /// TLS: PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<Spanned<PathBuf>>,
    /// Senders allowed to connect or send (CIDR); empty allows everyone.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default)]
    pub oversize: Oversize,
    /// TCP/TLS: connections served at once; more are refused (and counted).
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// TCP/TLS: a connection that sends nothing for this long is closed.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// TCP/TLS: TCP keepalive probes after this much idle time (0 turns them off).
    #[serde(default = "defaults::keepalive_secs")]
    pub keepalive_secs: u64,
    /// TLS: time allowed for the handshake.
    #[serde(default = "defaults::handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// TCP/TLS: connections one sender address may hold at once.
    #[serde(default = "defaults::max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// TCP/TLS: the longest a partial frame may wait for its end.
    #[serde(default = "defaults::frame_timeout_secs")]
    pub frame_timeout_secs: u64,
    /// TLS: handshakes in progress at once.
    #[serde(default = "defaults::max_handshakes")]
    pub max_handshakes: usize,
    /// TCP/TLS: every connection starts with a PROXY header (v1 or v2) naming the sender.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// TCP/TLS with `proxy_protocol`: the balancers (CIDR) allowed to send PROXY headers;
    /// connections from anyone else are refused.
    #[serde(default)]
    pub proxy_from: Vec<Spanned<String>>,
    /// UDP: the socket receive buffer asked of the kernel.
    pub receive_buffer_bytes: Option<usize>,
    /// The zone of this listener's senders for timestamps without one (else `[record]`'s).
    pub timezone: Option<Spanned<String>>,
    /// Per-sender zones: CIDR range or address -> zone; the most specific range wins.
    #[serde(default)]
    pub sender_timezones: std::collections::BTreeMap<String, Spanned<String>>,
}

impl ListenerConfig {
    /// The framing in force: as configured, or the protocol's default.
    fn framing(&self) -> Framing {
        self.framing.unwrap_or(match self.protocol.get_ref() {
            Protocol::Tls => Framing::OctetCounting,
            _ => Framing::Auto,
        })
    }

    /// The TLS settings of a tls listener, read from its PEM files.
    fn tls_acceptor(&self) -> Result<Acceptor, TlsSetupError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Acceptor::new(
                cert.get_ref(),
                key.get_ref(),
                self.client_ca.as_ref().map(|c| c.get_ref().as_path()),
            ),
            _ => Err(TlsSetupError::NotConfigured),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to `path`.
    File,
    /// Azure Monitor Logs Ingestion API (data collection rule + stream, OAuth2).
    LogsIngestion,
    /// Azure Monitor HTTP Data Collector API (workspace ID + shared key; retired 2026-09-14).
    DataCollector,
}

impl OutputKind {
    /// The `type` value.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::File => "file",
            OutputKind::LogsIngestion => "logs-ingestion",
            OutputKind::DataCollector => "data-collector",
        }
    }
}

/// How the Logs Ingestion output gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// App registration: client ID + client secret (client-credentials grant).
    ClientSecret,
    /// Azure VM/VMSS managed identity (IMDS).
    ManagedIdentity,
    /// Workload identity: a federated token file (AKS) exchanged for a token.
    WorkloadIdentity,
    /// An Azure Arc-enabled server's managed identity (the local agent, HIMDS).
    ArcManagedIdentity,
    /// App registration: client ID + certificate (a signed client assertion).
    ClientCertificate,
}

/// `[output]`. A flat table (not a tagged enum) so every field keeps its location; which
/// fields a `type` takes is checked in [`Config::parse`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(rename = "type")]
    pub kind: Spanned<OutputKind>,
    /// The output's name in metrics, logs and folder names; default its type.
    pub name: Option<Spanned<String>>,
    /// A KQL predicate: only rows for which it holds go to this output.
    #[serde(rename = "where")]
    pub predicate: Option<Spanned<String>>,
    /// Columns left out of this output's rows.
    #[serde(default)]
    pub project_away: Vec<Spanned<String>>,
    /// `file`: where rows are appended.
    pub path: Option<Spanned<PathBuf>>,

    /// Azure outputs: the service URL (a data collection endpoint / the DCR's logs
    /// ingestion URL, or `https://<workspace>.ods.opinsights.azure.com`).
    pub endpoint: Option<Spanned<String>>,
    /// Azure outputs: requests in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Azure outputs: time allowed for one request.
    #[serde(default = "defaults::request_timeout_secs")]
    pub timeout_secs: u64,
    /// Azure outputs: the longest wait between retries (the back-off doubles up to it).
    #[serde(default = "defaults::retry_max_secs")]
    pub retry_max_secs: u64,
    /// Azure outputs: largest request body (bytes, uncompressed); default 1 MiB for Logs
    /// Ingestion, 30 MB for Data Collector, which are the services' limits.
    pub max_request_bytes: Option<Spanned<usize>>,
    /// Azure outputs: where rows the service rejects for good are kept, with its error.
    pub dead_letter_path: Option<Spanned<PathBuf>>,

    // Logs Ingestion.
    pub dcr_id: Option<Spanned<String>>,
    /// Input stream for CommonSecurityLog rows; empty turns the CEF route off.
    pub cef_stream: Option<Spanned<String>>,
    /// Input stream for Syslog rows; empty turns the Syslog route off.
    pub syslog_stream: Option<Spanned<String>>,
    #[serde(default = "defaults::gzip")]
    pub gzip: bool,
    pub credential: Option<Spanned<CredentialKind>>,
    pub tenant_id: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret_env: Option<Spanned<String>>,
    pub client_secret_file: Option<Spanned<PathBuf>>,
    pub authority_host: Option<Spanned<String>>,
    /// Token scope; default `https://monitor.azure.com//.default`.
    pub scope: Option<Spanned<String>>,
    /// Workload identity: the federated token file (default `$AZURE_FEDERATED_TOKEN_FILE`).
    pub federated_token_file: Option<Spanned<PathBuf>>,
    /// Managed identity: the IMDS token URL (default the Azure instance metadata service;
    /// for Azure Arc `$IDENTITY_ENDPOINT`, else the local agent on 127.0.0.1:40342).
    pub managed_identity_endpoint: Option<Spanned<String>>,
    /// Azure Arc: the folder the agent's key files are in (default /var/opt/azcmagent/tokens).
    pub arc_key_folder: Option<Spanned<PathBuf>>,
    /// Client certificate: the PEM certificate registered with the app.
    pub client_certificate_file: Option<Spanned<PathBuf>>,
    /// Client certificate: its RSA private key (PEM, PKCS#8 or PKCS#1).
    pub client_key_file: Option<Spanned<PathBuf>>,

    // Data Collector.
    pub workspace_id: Option<Spanned<String>>,
    pub shared_key_env: Option<Spanned<String>>,
    pub shared_key_file: Option<Spanned<PathBuf>>,
    /// Log type for CommonSecurityLog rows (the table is `<type>_CL`); empty turns it off.
    pub cef_log_type: Option<Spanned<String>>,
    /// Log type for Syslog rows; empty turns it off.
    pub syslog_log_type: Option<Spanned<String>>,
    /// The row field whose value becomes `TimeGenerated`.
    pub time_generated_field: Option<Spanned<String>>,
    pub azure_resource_id: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "defaults::max_age_ms")]
    pub max_age_ms: u64,
}

impl BatchConfig {
    pub fn limits(&self) -> crate::batch::BatchLimits {
        crate::batch::BatchLimits {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
            max_age: Duration::from_millis(self.max_age_ms),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: defaults::max_rows(),
            max_bytes: defaults::max_bytes(),
            max_age_ms: defaults::max_age_ms(),
        }
    }
}

/// How rows are built (see `cefgate convert --help` for the same settings as flags).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// `TimeGenerated` precedence: received, rt, end, start, syslog.
    #[serde(default)]
    pub time_generated: Vec<Spanned<String>>,
    /// Zone for timestamps without one: UTC, local, or an offset.
    pub timezone: Option<Spanned<String>>,
    /// `CollectorHostName`; default: this machine's host name.
    pub collector_host: Option<String>,
    /// Add `CefgateEventId` (a hash of the raw message and its receive time) to every row,
    /// to deduplicate in KQL after a redelivery.
    #[serde(default)]
    pub event_id: bool,
    /// Keep RFC 5424 structured data at the front of `SyslogMessage` (the Azure agent
    /// writes MSG alone).
    #[serde(default)]
    pub keep_structured_data: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Decode threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Frame batches waiting for a decode thread; when full, TCP/TLS stop reading and UDP
    /// drops (counted).
    #[serde(default = "defaults::queue_batches")]
    pub queue_batches: usize,
    /// Seconds the output may keep delivering after SIGTERM/SIGINT; what is undelivered
    /// then stays in the spool (or goes to the dead-letter file). Never limits the write of
    /// what was read to the buffer.
    #[serde(default = "defaults::shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// Memory for everything between the socket read and the buffer (frames, batches, rows
    /// in flight without a spool). When used up, TCP/TLS stop reading and UDP drops
    /// (counted). It is also what a `kill -9` or a power cut can lose.
    #[serde(default = "defaults::max_memory_bytes")]
    pub max_memory_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            queue_batches: defaults::queue_batches(),
            shutdown_timeout_secs: defaults::shutdown_timeout_secs(),
            max_memory_bytes: defaults::max_memory_bytes(),
        }
    }
}

mod defaults {
    pub fn max_message_bytes() -> usize {
        64 * 1024
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn keepalive_secs() -> u64 {
        60
    }
    pub fn max_connections_per_source() -> usize {
        64
    }
    pub fn frame_timeout_secs() -> u64 {
        30
    }
    pub fn max_handshakes() -> usize {
        128
    }
    pub fn handshake_timeout_ms() -> u64 {
        10_000
    }
    pub fn receive_buffer_bytes() -> usize {
        32 * 1024 * 1024
    }
    pub fn max_rows() -> usize {
        5000
    }
    pub fn max_bytes() -> usize {
        1024 * 1024
    }
    pub fn max_age_ms() -> u64 {
        1000
    }
    pub fn queue_batches() -> usize {
        256
    }
    pub fn shutdown_timeout_secs() -> u64 {
        30
    }
    pub fn max_memory_bytes() -> usize {
        64 * 1024 * 1024
    }
    pub fn concurrency() -> usize {
        4
    }
    pub fn request_timeout_secs() -> u64 {
        30
    }
    pub fn gzip() -> bool {
        true
    }
    pub fn retry_max_secs() -> u64 {
        60
    }
    pub fn summary_interval_secs() -> u64 {
        60
    }
    pub fn spool_max_bytes() -> u64 {
        10 * 1024 * 1024 * 1024
    }
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// One problem in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Not about a place in the file (it cannot be read, or names no key).
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    /// Where the value of `key = ...` starts in the table that begins at `table` (the whole
    /// file when `None`): from there to the next `[` header.
    fn key(&self, table: Option<Range<usize>>, key: &str) -> Option<Range<usize>> {
        let (start, whole) = match table {
            Some(t) => (t.start.min(self.text.len()), false),
            None => (0, true),
        };
        // A table's span may begin at its header or inside it: go back to its line start.
        let start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') && i > 0 && !whole {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                let eq = line.len() - rest.trim_start().len();
                let value = line[eq + 1..].len() - line[eq + 1..].trim_start().len();
                let at = offset + eq + 1 + value;
                return Some(at..at + 1);
            }
            offset += line.len();
        }
        None
    }

    /// The text of a `[name]` table: from its header to the next header.
    fn section(&self, name: &str) -> Option<Range<usize>> {
        let header = format!("[{name}]");
        let mut offset = 0;
        let mut start = None;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim();
            if start.is_some() && trimmed.starts_with('[') {
                return start.map(|s| s..offset);
            }
            if trimmed.starts_with(&header) {
                start = Some(offset);
            }
            offset += line.len();
        }
        start.map(|s| s..self.text.len())
    }

    fn problem(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigProblem {
        let at = span.map_or(0, |s| s.start.min(self.text.len()));
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigProblem {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// One output as a run needs it.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// `name`, else the type: in metrics, logs and folder names.
    pub name: String,
    pub settings: OutputSettings,
    /// `where`: only rows it keeps go to this output.
    pub filter: Option<crate::filter::Predicate>,
    /// `project_away`: columns left out of this output's rows.
    pub project_away: crate::filter::ProjectAway,
    /// Memory, the spool, or (several outputs) the output's own spool subfolder.
    pub buffer: BufferSettings,
}

/// The settings a run needs, resolved from a valid config.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The zone for timestamps without one, unless a listener or sender has its own.
    pub zone: SenderZone,
    pub time_generated: Vec<TimeSource>,
    /// Every `[[listener]]`, checked, with its TLS settings read.
    pub listeners: Vec<ListenerSettings>,
    /// Every output, with its secret read, its filter compiled and its buffer.
    pub outputs: Vec<OutputPlan>,
    /// `[metrics] address`, when set.
    pub metrics_address: Option<SocketAddr>,
    /// `[metrics] summary_interval_secs`, unless 0.
    pub summary_interval: Option<Duration>,
    /// `[metrics] bearer_token_file`'s token, when set: every path but `/health` needs it.
    pub metrics_bearer_token: Option<Secret>,
    /// What is allowed but unwise (a key file others can read), with its place in the file:
    /// printed by `check`, logged by `run`.
    pub warnings: Vec<ConfigProblem>,
}

impl Config {
    /// Each output's name: its `name`, else its type.
    pub fn output_names(&self) -> Vec<String> {
        self.output
            .iter()
            .map(|o| {
                let o = o.get_ref();
                o.name.as_ref().map_or_else(
                    || o.kind.get_ref().name().to_string(),
                    |n| n.get_ref().clone(),
                )
            })
            .collect()
    }

    /// Where output `index` keeps rows refused for good: its `dead_letter_path`, else
    /// `dead-letters.ndjson` in its spool folder, else in the state folder
    /// ([`state_folder`]); with several outputs the name says whose. Never the working
    /// directory, which may be `/` or a checkout. The file (and its folder) is made at the
    /// first dead letter.
    pub fn dead_letter_path(&self, index: usize) -> PathBuf {
        if let Some(p) = &self.output[index].get_ref().dead_letter_path {
            return p.get_ref().clone();
        }
        let several = self.output.len() > 1;
        let name = &self.output_names()[index];
        match &self.spool {
            Some(s) if several => s
                .get_ref()
                .path
                .get_ref()
                .join(name)
                .join("dead-letters.ndjson"),
            Some(s) => s.get_ref().path.get_ref().join("dead-letters.ndjson"),
            None if several => state_folder().join(format!("dead-letters-{name}.ndjson")),
            None => state_folder().join("dead-letters.ndjson"),
        }
    }

    /// Where output `index` waits for delivery: memory, the `[spool]` folder, or with
    /// several outputs its own subfolder (each with the spool's `max_bytes`).
    fn buffer_of(&self, index: usize) -> BufferSettings {
        match &self.spool {
            None => BufferSettings::Memory,
            Some(sc) => {
                let sc = sc.get_ref();
                let mut path = sc.path.get_ref().clone();
                if self.output.len() > 1 {
                    path.push(&self.output_names()[index]);
                }
                BufferSettings::Spool(SpoolSettings {
                    path,
                    max_bytes: sc.max_bytes,
                    fsync: sc.fsync,
                })
            }
        }
    }

    /// Parses and validates `text`; `file` names it in problems.
    pub fn parse(file: &str, text: &str) -> Result<(Config, Resolved), ConfigError> {
        let at = Locator { file, text };
        let config: Config = read_toml(text).map_err(|e| ConfigError {
            problems: vec![at.problem(e.span(), e.message().trim().to_string())],
        })?;
        let resolved = config.validate(&at)?;
        Ok((config, resolved))
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<(Config, Resolved), ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        Self::parse(&name, &text)
    }

    /// Reads and parses a file without checking it or reading its secrets: enough to find
    /// local files (`cefgate dlq list`), never enough to run.
    pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        let at = Locator {
            file: &name,
            text: &text,
        };
        read_toml(&text).map_err(|e| ConfigError {
            problems: vec![at.problem(e.span(), e.message().trim().to_string())],
        })
    }

    /// The embedded default configuration.
    pub fn embedded() -> (Config, Resolved) {
        Self::parse("<embedded default>", EMBEDDED_DEFAULT).expect("the embedded default is valid")
    }

    fn validate(&self, at: &Locator<'_>) -> Result<Resolved, ConfigError> {
        let mut problems = Vec::new();
        if self.listener.is_empty() {
            problems.push(at.problem(None, "no [[listener]]: cefgate would receive nothing"));
        }
        let mut seen: Vec<(Protocol, SocketAddr)> = Vec::new();
        let mut listeners = Vec::new();
        for spanned in &self.listener {
            let l = spanned.get_ref();
            let protocol = *l.protocol.get_ref();
            let address = l.address.get_ref().parse::<SocketAddr>();
            let mut tls = None;
            match address {
                Ok(addr) => {
                    let stream = |p: Protocol| p != Protocol::Udp;
                    let clash = seen
                        .iter()
                        .any(|(p, a)| overlaps(*a, addr) && stream(*p) == stream(protocol));
                    if clash {
                        problems.push(at.problem(
                            Some(l.address.span()),
                            format!("{addr} is already used by another {protocol} listener"),
                        ));
                    }
                    seen.push((protocol, addr));
                }
                Err(_) => problems.push(at.problem(
                    Some(l.address.span()),
                    format!(
                        "address {:?} is not IP:PORT (for example \"0.0.0.0:514\" or \"[::]:514\")",
                        l.address.get_ref()
                    ),
                )),
            }
            let allow = parse_nets(&l.allow, "allow", at, &mut problems);
            let proxy_from = parse_nets(&l.proxy_from, "proxy_from", at, &mut problems);
            if !l.proxy_from.is_empty() && !l.proxy_protocol {
                problems.push(at.problem(
                    Some(l.proxy_from[0].span()),
                    "`proxy_from` needs `proxy_protocol = true` (it names who may send PROXY headers)",
                ));
            }
            let table = Some(spanned.span());
            let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
                in_range(at, &mut problems, table.clone(), key, value, lo, hi)
            };
            range(
                "max_message_bytes",
                l.max_message_bytes as u64,
                480,
                MAX_MESSAGE_BYTES,
            );
            range("max_connections", l.max_connections as u64, 1, 65_536);
            range("idle_timeout_secs", l.idle_timeout_secs, 1, 86_400);
            range("keepalive_secs", l.keepalive_secs, 0, 86_400);
            range("handshake_timeout_ms", l.handshake_timeout_ms, 100, 600_000);
            range(
                "max_connections_per_source",
                l.max_connections_per_source as u64,
                1,
                65_536,
            );
            range("frame_timeout_secs", l.frame_timeout_secs, 1, 86_400);
            range("max_handshakes", l.max_handshakes as u64, 1, 65_536);
            range(
                "receive_buffer_bytes",
                l.receive_buffer_bytes
                    .unwrap_or_else(defaults::receive_buffer_bytes) as u64,
                4096,
                1 << 30,
            );
            match protocol {
                Protocol::Tls => {
                    for (name, value) in [("cert", &l.cert), ("key", &l.key)] {
                        match value {
                            None => problems.push(at.problem(
                                Some(spanned.span()),
                                format!("a tls listener needs `{name}` (a PEM file)"),
                            )),
                            Some(p) if !p.get_ref().is_file() => problems.push(at.problem(
                                Some(p.span()),
                                format!("{name} file {} does not exist", p.get_ref().display()),
                            )),
                            Some(_) => {}
                        }
                    }
                    if let Some(ca) = &l.client_ca
                        && !ca.get_ref().is_file()
                    {
                        problems.push(at.problem(
                            Some(ca.span()),
                            format!("client_ca file {} does not exist", ca.get_ref().display()),
                        ));
                    }
                    let files = [&l.cert, &l.key, &l.client_ca];
                    let present = files
                        .iter()
                        .all(|f| f.as_ref().is_none_or(|f| f.get_ref().is_file()));
                    if let (true, Some(cert), Some(_)) = (present, &l.cert, &l.key) {
                        // Built here, once: a file that is no PEM, a key that does not match
                        // or a CA bundle that is no CA is found by `check`.
                        match l.tls_acceptor() {
                            Ok(acceptor) => tls = Some(acceptor),
                            Err(e) => problems.push(at.problem(Some(cert.span()), e.to_string())),
                        }
                    }
                }
                Protocol::Udp | Protocol::Tcp => {
                    if protocol == Protocol::Udp && l.proxy_protocol {
                        problems.push(at.problem(
                            at.key(table.clone(), "proxy_protocol").or(table.clone()),
                            "`proxy_protocol` only applies to tcp and tls listeners (UDP has no PROXY header: keep the source address with externalTrafficPolicy: Local or a direct route)",
                        ));
                    }
                    for (name, value) in [
                        ("cert", &l.cert),
                        ("key", &l.key),
                        ("client_ca", &l.client_ca),
                    ] {
                        if let Some(v) = value {
                            problems.push(at.problem(
                                Some(v.span()),
                                format!("`{name}` only applies to tls listeners"),
                            ));
                        }
                    }
                }
            }
            let mut by_sender = Vec::new();
            for (range, z) in &l.sender_timezones {
                match parse_net(range) {
                    Some(net) => by_sender.push((net, zone(z, at, &mut problems))),
                    None => problems.push(at.problem(
                        Some(z.span()),
                        format!("sender_timezones key {range:?} is not a CIDR range or IP address"),
                    )),
                }
            }
            let zones = ZoneRules::new(
                l.timezone.as_ref().map(|z| zone(z, at, &mut problems)),
                by_sender,
            );
            if let Ok(address) = address {
                listeners.push(ListenerSettings {
                    protocol,
                    address,
                    framing: l.framing(),
                    max_message_bytes: l.max_message_bytes,
                    oversize: l.oversize,
                    max_connections: l.max_connections,
                    idle_timeout: Duration::from_secs(l.idle_timeout_secs),
                    keepalive: (l.keepalive_secs > 0)
                        .then(|| Duration::from_secs(l.keepalive_secs)),
                    handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
                    max_connections_per_source: l.max_connections_per_source,
                    frame_timeout: Duration::from_secs(l.frame_timeout_secs),
                    max_handshakes: l.max_handshakes,
                    proxy_protocol: l.proxy_protocol,
                    proxy_from,
                    receive_buffer_bytes: l
                        .receive_buffer_bytes
                        .unwrap_or_else(defaults::receive_buffer_bytes),
                    receive_buffer_asked: l.receive_buffer_bytes.is_some(),
                    allow,
                    tls,
                    zones: std::sync::Arc::new(zones),
                });
            }
        }
        let names = self.output_names();
        for (i, output) in self.output.iter().enumerate() {
            validate_output(output, i, self.output.len() > 1, at, &mut problems);
            if let Some(n) = &output.get_ref().name
                && !valid_name(n.get_ref())
            {
                problems.push(at.problem(
                    Some(n.span()),
                    format!(
                        "output name {:?} must be 1 to 64 letters, digits, `-` or `_` (it names a folder and a metric label)",
                        n.get_ref()
                    ),
                ));
            }
            if names[..i].contains(&names[i]) {
                let span = output
                    .get_ref()
                    .name
                    .as_ref()
                    .map_or(output.span(), |n| n.span());
                problems.push(at.problem(
                    Some(span),
                    format!(
                        "another output is named {:?} too: give each output its own `name`",
                        names[i]
                    ),
                ));
            }
        }
        let mut plans = Vec::new();
        for (i, output) in self.output.iter().enumerate() {
            let o = output.get_ref();
            let filter = o.predicate.as_ref().and_then(|w| {
                match crate::filter::Predicate::parse(w.get_ref()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        problems.push(at.problem(
                            Some(inside_string(at.text, w.span(), e.offset)),
                            format!("in `where`: {e}"),
                        ));
                        None
                    }
                }
            });
            let away: Vec<&str> = o
                .project_away
                .iter()
                .map(|c| c.get_ref().as_str())
                .collect();
            let project_away = match crate::filter::ProjectAway::new(&away) {
                Ok(p) => p,
                Err((k, message)) => {
                    problems.push(at.problem(
                        Some(o.project_away[k].span()),
                        format!("in `project_away`: {message}"),
                    ));
                    crate::filter::ProjectAway::default()
                }
            };
            if !problems.is_empty() {
                continue;
            }
            match o.settings(self.dead_letter_path(i)) {
                Ok(settings) => plans.push(OutputPlan {
                    name: names[i].clone(),
                    settings,
                    filter,
                    project_away,
                    buffer: self.buffer_of(i),
                }),
                Err(e) => problems.push(at.problem(Some(output.span()), e)),
            }
        }
        if let Some(spool) = &self.spool {
            let sc = spool.get_ref();
            let path = sc.path.get_ref();
            if path.exists() {
                if !path.is_dir() {
                    problems.push(at.problem(
                        Some(sc.path.span()),
                        format!(
                            "spool path {} exists and is not a directory",
                            path.display()
                        ),
                    ));
                }
            } else {
                parent_must_exist(&sc.path, at, &mut problems);
            }
            in_range(
                at,
                &mut problems,
                Some(spool.span()),
                "max_bytes",
                sc.max_bytes,
                1 << 20,
                1 << 50,
            );
        }
        let batch = at.section("batch");
        let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
            in_range(at, &mut problems, batch.clone(), key, value, lo, hi)
        };
        range("max_rows", self.batch.max_rows as u64, 1, 1_000_000);
        range("max_bytes", self.batch.max_bytes as u64, 1024, 64 << 20);
        range("max_age_ms", self.batch.max_age_ms, 1, 3_600_000);
        let pipeline = at.section("pipeline");
        let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
            in_range(at, &mut problems, pipeline.clone(), key, value, lo, hi)
        };
        range("workers", self.pipeline.workers as u64, 0, 256);
        range(
            "queue_batches",
            self.pipeline.queue_batches as u64,
            1,
            65_536,
        );
        range(
            "shutdown_timeout_secs",
            self.pipeline.shutdown_timeout_secs,
            0,
            86_400,
        );
        range(
            "max_memory_bytes",
            self.pipeline.max_memory_bytes as u64,
            4 << 20,
            1 << 40,
        );
        let mut time_generated = Vec::new();
        for name in &self.record.time_generated {
            match name.get_ref().parse::<TimeSource>() {
                Ok(t) => time_generated.push(t),
                Err(e) => problems.push(at.problem(
                    Some(name.span()),
                    format!("unknown time_generated source {e}"),
                )),
            }
        }
        if time_generated.is_empty() {
            time_generated.push(TimeSource::Received);
        }
        let zone = match &self.record.timezone {
            None => SenderZone::default(),
            Some(z) => zone(z, at, &mut problems),
        };
        let metrics_address =
            self.metrics
                .address
                .as_ref()
                .and_then(|a| match a.get_ref().parse::<SocketAddr>() {
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        problems.push(at.problem(
                        Some(a.span()),
                        format!(
                            "metrics address {:?} is not IP:PORT (for example \"127.0.0.1:9464\")",
                            a.get_ref()
                        ),
                    ));
                        None
                    }
                });
        if let (Some(m), Some(span)) = (metrics_address, &self.metrics.address) {
            for l in listeners.iter().filter(|l| l.protocol != Protocol::Udp) {
                if overlaps(m, l.address) {
                    problems.push(at.problem(
                        Some(span.span()),
                        format!(
                            "metrics address {m} takes the port of the {} listener on {}: give /metrics a port of its own (for example 9464)",
                            l.protocol, l.address
                        ),
                    ));
                }
            }
        }
        self.check_paths(at, &mut problems);
        in_range(
            at,
            &mut problems,
            at.section("metrics"),
            "summary_interval_secs",
            self.metrics.summary_interval_secs,
            0,
            86_400,
        );
        if let Some(level) = &self.log.level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level.get_ref())
        {
            problems.push(at.problem(
                Some(level.span()),
                format!(
                    "log level {:?} is not a level or filter ({e}); use error, warn, info, debug or trace",
                    level.get_ref()
                ),
            ));
        }
        let mut warnings = Vec::new();
        if let Some(spool) = &self.spool {
            // Every output has its own spool folder with this bound, all on one filesystem.
            let sc = spool.get_ref();
            let spools = self.output.len().max(1) as u64;
            let want = sc.max_bytes.saturating_mul(spools);
            if let Some((size, on)) = filesystem_size(sc.path.get_ref())
                && want > size
            {
                warnings.push(at.problem(
                    Some(spool.span()),
                    format!(
                        "warning: [spool] max_bytes ({want} bytes{}) is more than the whole filesystem holding {} ({size} bytes, at {}): \
                         the disk fills before the spool does, and input then stalls on write errors; \
                         set max_bytes below the free space",
                        if spools > 1 {
                            format!(" for {spools} outputs")
                        } else {
                            String::new()
                        },
                        sc.path.get_ref().display(),
                        on.display()
                    ),
                ));
            }
        }
        let secret_files = self
            .listener
            .iter()
            .filter_map(|l| l.get_ref().key.as_ref())
            .chain(
                self.output
                    .iter()
                    .flat_map(|o| {
                        let o = o.get_ref();
                        [
                            &o.client_secret_file,
                            &o.shared_key_file,
                            &o.client_key_file,
                        ]
                    })
                    .flatten(),
            );
        for l in &self.listener {
            let lc = l.get_ref();
            if lc.proxy_protocol
                && lc.proxy_from.is_empty()
                && *lc.protocol.get_ref() != Protocol::Udp
            {
                warnings.push(at.problem(
                    at.key(Some(l.span()), "proxy_protocol").or(Some(l.span())),
                    "warning: this listener believes a PROXY header from any peer, so a host that connects directly can claim any address (past `allow` and `max_connections_per_source`); list the balancers in `proxy_from`",
                ));
            }
        }
        for file in secret_files {
            if let Some(mode) = open_to_others(file.get_ref()) {
                warnings.push(at.problem(
                    Some(file.span()),
                    format!(
                        "warning: {} holds a secret that other users can read (mode {mode:04o}); \
                         chmod 600 it (or 640, group-owned by the service's group)",
                        file.get_ref().display()
                    ),
                ));
            }
        }
        let metrics_bearer_token =
            self.metrics
                .bearer_token(metrics_address, at, &mut problems, &mut warnings);
        match plans {
            plans if problems.is_empty() => Ok(Resolved {
                metrics_bearer_token,
                warnings,
                zone,
                time_generated,
                listeners,
                outputs: plans,
                metrics_address,
                summary_interval: (self.metrics.summary_interval_secs > 0)
                    .then(|| Duration::from_secs(self.metrics.summary_interval_secs)),
            }),
            _ => {
                // In file order, whatever order they were found in.
                problems.sort_by_key(|p| (p.line, p.column));
                Err(ConfigError { problems })
            }
        }
    }
}

impl Config {
    /// Every path setting: none may be empty or hold a NUL byte (the system calls `run`
    /// makes would refuse them); what cefgate writes (the spool, file outputs, dead letters)
    /// may not be on a kernel pseudo-filesystem such as /proc, nor be the configuration file
    /// itself.
    fn check_paths(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        let mut read: Vec<&Spanned<PathBuf>> = Vec::new();
        let mut written: Vec<&Spanned<PathBuf>> = Vec::new();
        for l in &self.listener {
            let l = l.get_ref();
            read.extend([&l.cert, &l.key, &l.client_ca].into_iter().flatten());
        }
        for o in &self.output {
            let o = o.get_ref();
            read.extend(
                [
                    &o.client_secret_file,
                    &o.federated_token_file,
                    &o.arc_key_folder,
                    &o.client_certificate_file,
                    &o.client_key_file,
                    &o.shared_key_file,
                ]
                .into_iter()
                .flatten(),
            );
            written.extend([&o.path, &o.dead_letter_path].into_iter().flatten());
        }
        if let Some(spool) = &self.spool {
            written.push(&spool.get_ref().path);
        }
        for path in read.iter().chain(&written) {
            let p = path.get_ref();
            if p.as_os_str().is_empty() {
                problems.push(at.problem(Some(path.span()), "the path is empty"));
            } else if p.as_os_str().as_encoded_bytes().contains(&0) {
                problems.push(at.problem(
                    Some(path.span()),
                    format!("the path {:?} holds a NUL byte", p.display()),
                ));
            }
        }
        let config_file = std::fs::canonicalize(at.file).ok();
        for path in written {
            let p = path.get_ref();
            if p.as_os_str().is_empty() || p.as_os_str().as_encoded_bytes().contains(&0) {
                continue;
            }
            if let Some(kind) = pseudo_filesystem(p) {
                problems.push(at.problem(
                    Some(path.span()),
                    format!(
                        "{} is on the kernel's {kind} filesystem, where files cannot be written: choose a folder on a disk (such as /var/lib/cefgate)",
                        p.display()
                    ),
                ));
            } else if config_file.is_some() && canonical_target(p) == config_file {
                problems.push(at.problem(
                    Some(path.span()),
                    format!(
                        "{} is this configuration file: cefgate would write rows into it",
                        p.display()
                    ),
                ));
            }
        }
    }
}

/// The CIDR ranges (or addresses) of list `key`; each entry that is neither is a problem
/// at its place.
fn parse_nets(
    list: &[Spanned<String>],
    key: &str,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::new();
    for net in list {
        match parse_net(net.get_ref()) {
            Some(n) => nets.push(n),
            None => problems.push(at.problem(
                Some(net.span()),
                format!(
                    "{key} entry {:?} is not a CIDR range or IP address",
                    net.get_ref()
                ),
            )),
        }
    }
    nets
}

/// True when binding both addresses (on the same port) would clash: the same address, or a
/// wildcard (`0.0.0.0`, `[::]`, which on Linux also takes IPv4) and an address it covers.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers =
        |w: SocketAddr, x: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// `path` with its folder resolved (the file itself may not exist yet).
fn canonical_target(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
    Some(dir.join(name))
}

/// The name of the kernel pseudo-filesystem (proc, sysfs, ...) `path` or its nearest
/// existing ancestor is on, if any.
fn pseudo_filesystem(path: &Path) -> Option<&'static str> {
    let (_, c) = nearest_existing(path)?;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `stat` a buffer of the right type.
    if unsafe { libc::statfs(c.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = stat.f_type as i64;
    Some(match kind {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x27e0eb | 0x6367_7270 => "cgroup",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x1cd1 => "devpts",
        _ => return None,
    })
}

/// An output name: it names a folder and a metric label.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The file offset of byte `offset` of a string value whose TOML text spans `span`: after
/// its opening quote (or quotes). Exact for literal strings ('...', '\'\'\'...'\'\'\'); in a basic
/// string ("...") escapes before the place shift it.
fn inside_string(text: &str, span: Range<usize>, offset: usize) -> Range<usize> {
    let raw = text.get(span.clone()).unwrap_or_default();
    let open = if raw.starts_with("\"\"\"") || raw.starts_with("\'\'\'") {
        let newline = raw[3..].starts_with('\n');
        3 + usize::from(newline)
    } else {
        1
    };
    let at = (span.start + open + offset).min(span.end);
    at..at
}

/// A secret or key is a regular file of at most 1 MiB: a device (`/dev/zero`) or a fifo
/// would hang the read, and anything larger is no key.
fn small_regular_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > 1 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "larger than 1 MiB: not a key or secret",
        ));
    }
    Ok(())
}

/// `path` made absolute, or, while it does not exist yet, its nearest existing parent
/// (where it will be created), with that folder as a C string for the system calls.
fn nearest_existing(path: &Path) -> Option<(PathBuf, std::ffi::CString)> {
    let path = if path.is_relative() {
        std::env::current_dir().ok()?.join(path)
    } else {
        path.to_path_buf()
    };
    let on = path.ancestors().find(|p| p.exists())?.to_path_buf();
    let c = std::ffi::CString::new(on.as_os_str().as_encoded_bytes()).ok()?;
    Some((on, c))
}

/// The size in bytes of the filesystem that holds `path` (or, while it does not exist yet,
/// its nearest existing parent, which is where it will be created), and that folder.
fn filesystem_size(path: &Path) -> Option<(u64, PathBuf)> {
    let (on, c_path) = nearest_existing(path)?;
    // SAFETY: statvfs fills the zeroed struct it is given; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let size = (st.f_blocks as u64).saturating_mul(st.f_frsize as u64);
    // Pseudo filesystems (proc, some FUSE ones) report no size: nothing to compare.
    (size > 0).then_some((size, on))
}

/// The permission bits of a secret file that others may read, or its group write, or
/// `None`. A key should be 0600, or 0640 group-owned by the service's group (the package's
/// layout), so group read alone is fine.
fn open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o027 != 0).then_some(mode)
}

/// Reads a secret from the environment variable or the file named in the configuration.
fn read_secret(
    what: &'static str,
    env: &Option<toml::Spanned<String>>,
    file: &Option<toml::Spanned<PathBuf>>,
) -> Result<Secret, String> {
    let value = match (env, file) {
        (Some(var), _) => std::env::var(var.get_ref()).map_err(|_| {
            format!(
                "the {what}: environment variable {} is not set",
                var.get_ref()
            )
        })?,
        (None, Some(path)) => small_regular_file(path.get_ref())
            .and_then(|()| std::fs::read_to_string(path.get_ref()))
            .map_err(|e| format!("the {what}: {}: {e}", path.get_ref().display()))?,
        (None, None) => {
            return Err(format!("the {what} is not configured"));
        }
    };
    Ok(Secret::new(value.trim().to_string()))
}

/// `--state-dir`, when given: wins over the environment.
static STATE_FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the state folder for this process (`--state-dir`); the first call wins.
pub fn set_state_folder(dir: PathBuf) {
    let _ = STATE_FOLDER.set(dir);
}

/// Where cefgate keeps state it makes itself: `--state-dir`, else `$STATE_DIRECTORY` (set by systemd's
/// `StateDirectory=`), else `$XDG_STATE_HOME/cefgate`, else `~/.local/state/cefgate`, else
/// `/var/lib/cefgate`.
pub fn state_folder() -> PathBuf {
    if let Some(dir) = STATE_FOLDER.get() {
        return dir.clone();
    }
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("STATE_DIRECTORY") {
        // systemd may list several, separated by colons: the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(first);
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return dir.join("cefgate");
    }
    match var("HOME") {
        Some(home) => home.join(".local/state/cefgate"),
        None => PathBuf::from("/var/lib/cefgate"),
    }
}

fn text(v: &Option<Spanned<String>>) -> Option<String> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// A route name; an empty one turns the route off.
fn route(v: &Option<Spanned<String>>, default: &str) -> Option<String> {
    Some(text(v).unwrap_or_else(|| default.into())).filter(|n| !n.is_empty())
}

impl OutputConfig {
    /// The typed settings of an output that passed [`validate_output`]; reads its secret.
    fn settings(&self, dead_letter_path: PathBuf) -> Result<OutputSettings, String> {
        let env = |name: &str| std::env::var(name).ok();
        let endpoint = text(&self.endpoint).unwrap_or_default();
        let destination = match self.kind.get_ref() {
            OutputKind::Stdout => Destination::Stdout,
            OutputKind::File => Destination::File(
                self.path
                    .as_ref()
                    .ok_or("a file output needs `path`")?
                    .get_ref()
                    .clone(),
            ),
            OutputKind::LogsIngestion => {
                let authority = || {
                    text(&self.authority_host)
                        .unwrap_or_else(|| "https://login.microsoftonline.com".into())
                };
                let credential = match self
                    .credential
                    .as_ref()
                    .map_or(CredentialKind::ClientSecret, |c| *c.get_ref())
                {
                    CredentialKind::ClientSecret => Credential::ClientSecret {
                        authority_host: authority(),
                        tenant_id: text(&self.tenant_id).unwrap_or_default(),
                        client_id: text(&self.client_id).unwrap_or_default(),
                        secret: read_secret(
                            "client secret",
                            &self.client_secret_env,
                            &self.client_secret_file,
                        )?,
                    },
                    CredentialKind::WorkloadIdentity => Credential::WorkloadIdentity {
                        authority_host: text(&self.authority_host)
                            .or_else(|| env("AZURE_AUTHORITY_HOST"))
                            .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
                        tenant_id: text(&self.tenant_id)
                            .or_else(|| env("AZURE_TENANT_ID"))
                            .unwrap_or_default(),
                        client_id: text(&self.client_id)
                            .or_else(|| env("AZURE_CLIENT_ID"))
                            .unwrap_or_default(),
                        token_file: self
                            .federated_token_file
                            .as_ref()
                            .map(|f| f.get_ref().clone())
                            .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                            .unwrap_or_default(),
                    },
                    CredentialKind::ClientCertificate => Credential::ClientCertificate {
                        authority_host: authority(),
                        tenant_id: text(&self.tenant_id).unwrap_or_default(),
                        client_id: text(&self.client_id).unwrap_or_default(),
                        signer: match (&self.client_certificate_file, &self.client_key_file) {
                            (Some(cert), Some(key)) => {
                                for f in [cert.get_ref(), key.get_ref()] {
                                    small_regular_file(f)
                                        .map_err(|e| format!("{}: {e}", f.display()))?;
                                }
                                CertificateSigner::from_pem_files(cert.get_ref(), key.get_ref())?
                            }
                            _ => return Err("client_certificate_file and client_key_file".into()),
                        },
                    },
                    CredentialKind::ArcManagedIdentity => Credential::ArcManagedIdentity {
                        endpoint: text(&self.managed_identity_endpoint)
                            .or_else(|| env("IDENTITY_ENDPOINT"))
                            .unwrap_or_else(|| {
                                "http://127.0.0.1:40342/metadata/identity/oauth2/token".into()
                            }),
                        key_folder: self
                            .arc_key_folder
                            .as_ref()
                            .map(|f| f.get_ref().clone())
                            .unwrap_or_else(|| PathBuf::from("/var/opt/azcmagent/tokens")),
                    },
                    CredentialKind::ManagedIdentity => Credential::ManagedIdentity {
                        endpoint: text(&self.managed_identity_endpoint).unwrap_or_else(|| {
                            "http://169.254.169.254/metadata/identity/oauth2/token".into()
                        }),
                        client_id: text(&self.client_id),
                    },
                };
                Destination::LogsIngestion(LogsIngestionSettings {
                    endpoint,
                    dcr_id: text(&self.dcr_id).unwrap_or_default(),
                    cef_stream: route(&self.cef_stream, "Custom-CefGate_CommonSecurityLog"),
                    syslog_stream: route(&self.syslog_stream, "Custom-CefGate_Syslog"),
                    gzip: self.gzip,
                    credential,
                    scope: text(&self.scope)
                        .unwrap_or_else(|| "https://monitor.azure.com//.default".into()),
                })
            }
            OutputKind::DataCollector => {
                let workspace = text(&self.workspace_id).unwrap_or_default();
                let key = read_secret("shared key", &self.shared_key_env, &self.shared_key_file)?;
                let signer =
                    SharedKeySigner::new(&workspace, key.expose()).map_err(|e| e.to_string())?;
                Destination::DataCollector(DataCollectorSettings {
                    endpoint: if endpoint.is_empty() {
                        format!("https://{workspace}.ods.opinsights.azure.com")
                    } else {
                        endpoint
                    },
                    signer,
                    cef_log_type: route(&self.cef_log_type, "CommonSecurityLog"),
                    syslog_log_type: route(&self.syslog_log_type, "Syslog"),
                    time_generated_field: text(&self.time_generated_field)
                        .unwrap_or_else(|| RENAMED_TIME_GENERATED.into()),
                    azure_resource_id: text(&self.azure_resource_id),
                })
            }
        };
        Ok(OutputSettings {
            // As `Config::output_names`: the label of this output's metrics.
            name: self.name.as_ref().map_or_else(
                || self.kind.get_ref().name().to_string(),
                |n| n.get_ref().clone(),
            ),
            destination,
            concurrency: self.concurrency,
            timeout: Duration::from_secs(self.timeout_secs),
            retry_max: Duration::from_secs(self.retry_max_secs),
            max_request_bytes: self.max_request_bytes.as_ref().map(|m| *m.get_ref()),
            dead_letter_path,
        })
    }
}

/// A `timezone` value, or a problem reported where it is.
fn zone(z: &Spanned<String>, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) -> SenderZone {
    z.get_ref().parse().unwrap_or_else(|e| {
        problems.push(at.problem(Some(z.span()), format!("timezone {e}")));
        SenderZone::default()
    })
}

/// The longest message a listener may be set to keep (16 MiB).
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;

/// Reports `key = value` outside `lo..=hi`, at the key inside `table` when it is found there.
fn in_range(
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
    table: Option<Range<usize>>,
    key: &str,
    value: u64,
    lo: u64,
    hi: u64,
) {
    if (lo..=hi).contains(&value) {
        return;
    }
    let span = at.key(table.clone(), key).or(table);
    problems.push(at.problem(
        span,
        format!("{key} = {value} is out of range: use {lo} to {hi}"),
    ));
}

/// A file cefgate will create needs an existing folder.
fn parent_must_exist(path: &Spanned<PathBuf>, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
    let parent = path
        .get_ref()
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent
        && !dir.is_dir()
    {
        problems.push(at.problem(
            Some(path.span()),
            format!("directory {} does not exist", dir.display()),
        ));
    }
}

/// Keys every Azure output takes.
const AZURE_KEYS: &[&str] = &[
    "endpoint",
    "concurrency",
    "timeout_secs",
    "retry_max_secs",
    "max_request_bytes",
    "dead_letter_path",
];

/// Keys each output type takes (beyond `type`; the one list to extend with a new key), and
/// those it needs.
fn output_keys(kind: OutputKind) -> (Vec<&'static str>, &'static [&'static str]) {
    let with_azure = |own: &[&'static str]| AZURE_KEYS.iter().chain(own).copied().collect();
    match kind {
        OutputKind::Stdout => (vec!["retry_max_secs", "dead_letter_path"], &[]),
        OutputKind::File => (
            vec!["path", "retry_max_secs", "dead_letter_path"],
            &["path"],
        ),
        OutputKind::LogsIngestion => (
            with_azure(&[
                "dcr_id",
                "cef_stream",
                "syslog_stream",
                "gzip",
                "credential",
                "tenant_id",
                "client_id",
                "client_secret_env",
                "client_secret_file",
                "authority_host",
                "scope",
                "federated_token_file",
                "managed_identity_endpoint",
                "arc_key_folder",
                "client_certificate_file",
                "client_key_file",
            ]),
            &["endpoint", "dcr_id"],
        ),
        OutputKind::DataCollector => (
            with_azure(&[
                "workspace_id",
                "shared_key_env",
                "shared_key_file",
                "cef_log_type",
                "syslog_log_type",
                "time_generated_field",
                "azure_resource_id",
            ]),
            &["workspace_id"],
        ),
    }
}

/// The keys written in the `[output]` table, with where each is: read from the text, so that
/// no list of the struct's fields has to be kept.
fn output_keys_present(
    at: &Locator<'_>,
    table: &Range<usize>,
    index: Option<usize>,
) -> Vec<(String, Range<usize>)> {
    let Ok(doc) = at.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let output = match (doc.get("output"), index) {
        (Some(toml::Value::Array(all)), Some(i)) => all.get(i).and_then(|o| o.as_table()),
        (Some(o), None) => o.as_table(),
        _ => None,
    };
    let Some(output) = output else {
        return Vec::new();
    };
    output
        .keys()
        .filter(|k| *k != "type")
        .map(|k| {
            let span = at.key(Some(table.clone()), k).unwrap_or(table.clone());
            (k.clone(), span)
        })
        .collect()
}

fn validate_output(
    output: &Spanned<OutputConfig>,
    index: usize,
    several: bool,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    let o = output.get_ref();
    let kind = *o.kind.get_ref();
    let kind_name = kind.name();
    let (mut allowed, required) = output_keys(kind);
    allowed.extend(["name", "where", "project_away"]);
    let present = output_keys_present(at, &output.span(), several.then_some(index));
    for (name, span) in &present {
        if !allowed.contains(&name.as_str()) {
            problems.push(at.problem(
                Some(span.clone()),
                format!("`{name}` does not apply to a {kind_name} output"),
            ));
        }
    }
    for name in required {
        if !present.iter().any(|(n, _)| n == name) {
            problems.push(at.problem(
                Some(output.span()),
                format!("a {kind_name} output needs `{name}`"),
            ));
        }
    }
    for path in [&o.path, &o.dead_letter_path].into_iter().flatten() {
        parent_must_exist(path, at, problems);
    }
    if let Some(endpoint) = &o.endpoint {
        let e = endpoint.get_ref();
        if !(e.starts_with("https://") || e.starts_with("http://")) || e.len() < 10 {
            problems.push(at.problem(
                Some(endpoint.span()),
                format!("endpoint {e:?} is not an http(s) URL"),
            ));
        }
    }
    let table = Some(output.span());
    in_range(
        at,
        problems,
        table.clone(),
        "concurrency",
        o.concurrency as u64,
        1,
        64,
    );
    in_range(
        at,
        problems,
        table.clone(),
        "timeout_secs",
        o.timeout_secs,
        1,
        3600,
    );
    in_range(
        at,
        problems,
        table.clone(),
        "retry_max_secs",
        o.retry_max_secs,
        1,
        3600,
    );
    for path in [&o.path, &o.dead_letter_path].into_iter().flatten() {
        if path.get_ref().is_dir() {
            problems.push(at.problem(
                Some(path.span()),
                format!(
                    "{} is a directory; give a file name",
                    path.get_ref().display()
                ),
            ));
        }
    }
    if let Some(max) = &o.max_request_bytes {
        let limit = if kind == OutputKind::DataCollector {
            30_000_000
        } else {
            1_048_576
        };
        if *max.get_ref() < 4096 || *max.get_ref() > limit {
            problems.push(at.problem(
                Some(max.span()),
                format!("max_request_bytes must be between 4096 and the service's limit, {limit}"),
            ));
        }
    }
    let secret = |env: &Option<Spanned<String>>,
                  file: &Option<Spanned<PathBuf>>,
                  what: &str,
                  problems: &mut Vec<ConfigProblem>| {
        match (env, file) {
            (Some(e), None) => {
                if std::env::var_os(e.get_ref()).is_none() {
                    problems.push(at.problem(
                        Some(e.span()),
                        format!(
                            "environment variable {} (the {what}) is not set",
                            e.get_ref()
                        ),
                    ));
                }
            }
            (None, Some(f)) => {
                if !f.get_ref().is_file() {
                    problems.push(at.problem(
                        Some(f.span()),
                        format!("{what} file {} does not exist", f.get_ref().display()),
                    ));
                }
            }
            (Some(e), Some(_)) => problems.push(at.problem(
                Some(e.span()),
                format!("give the {what} once: an env variable or a file, not both"),
            )),
            (None, None) => problems.push(at.problem(
                Some(output.span()),
                format!(
                    "the {what} is missing: set `{}_env` or `{}_file`",
                    what.replace(' ', "_"),
                    what.replace(' ', "_")
                ),
            )),
        }
    };
    match kind {
        OutputKind::LogsIngestion => {
            let credential = o
                .credential
                .as_ref()
                .map_or(CredentialKind::ClientSecret, |c| *c.get_ref());
            // An app registration names its tenant and itself.
            let app_ids = |kind: &str, problems: &mut Vec<ConfigProblem>| {
                for (name, v) in [("tenant_id", &o.tenant_id), ("client_id", &o.client_id)] {
                    if v.is_none() {
                        problems.push(at.problem(
                            Some(output.span()),
                            format!("{kind} credentials need `{name}`"),
                        ));
                    }
                }
            };
            match credential {
                CredentialKind::ClientSecret => {
                    app_ids("client-secret", problems);
                    secret(
                        &o.client_secret_env,
                        &o.client_secret_file,
                        "client secret",
                        problems,
                    );
                }
                CredentialKind::WorkloadIdentity => {
                    let tenant =
                        o.tenant_id.is_some() || std::env::var_os("AZURE_TENANT_ID").is_some();
                    let client =
                        o.client_id.is_some() || std::env::var_os("AZURE_CLIENT_ID").is_some();
                    let file = o.federated_token_file.is_some()
                        || std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some();
                    if !(tenant && client && file) {
                        problems.push(at.problem(
                            Some(output.span()),
                            "workload identity needs tenant_id, client_id and federated_token_file (or AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)",
                        ));
                    }
                }
                CredentialKind::ClientCertificate => {
                    app_ids("client-certificate", problems);
                    match (&o.client_certificate_file, &o.client_key_file) {
                        (Some(cert), Some(key)) => {
                            if let Err(e) =
                                CertificateSigner::from_pem_files(cert.get_ref(), key.get_ref())
                            {
                                problems.push(at.problem(Some(cert.span()), e));
                            }
                        }
                        _ => problems.push(at.problem(
                            Some(output.span()),
                            "client-certificate credentials need `client_certificate_file` and `client_key_file`",
                        )),
                    }
                }
                CredentialKind::ManagedIdentity | CredentialKind::ArcManagedIdentity => {}
            }
            for stream in [&o.cef_stream, &o.syslog_stream].into_iter().flatten() {
                let name = stream.get_ref();
                if !name.is_empty() && !name.starts_with("Custom-") {
                    problems.push(at.problem(Some(stream.span()), format!("stream {name:?} must start with `Custom-` (the DCR's input stream, not `Microsoft-...`)")));
                }
            }
        }
        OutputKind::DataCollector => {
            secret(
                &o.shared_key_env,
                &o.shared_key_file,
                "shared key",
                problems,
            );
            // Decoded as at start; the message never holds the key.
            let at_key = o
                .shared_key_env
                .as_ref()
                .map(|e| e.span())
                .or(o.shared_key_file.as_ref().map(|f| f.span()));
            if let Ok(key) = read_secret("shared key", &o.shared_key_env, &o.shared_key_file)
                && let Err(e) = SharedKeySigner::new("", key.expose())
            {
                problems.push(at.problem(at_key, e.to_string()));
            }
            for log_type in [&o.cef_log_type, &o.syslog_log_type].into_iter().flatten() {
                let name = log_type.get_ref();
                let valid = name.len() <= 100
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    problems.push(at.problem(
                        Some(log_type.span()),
                        format!("log type {name:?} must be letters, digits and `_`, at most 100"),
                    ));
                }
            }
        }
        OutputKind::Stdout | OutputKind::File => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_udp_and_tcp_on_5514_to_stdout() {
        let (config, _) = Config::embedded();
        let listeners: Vec<_> = config
            .listener
            .iter()
            .map(|l| {
                (
                    *l.get_ref().protocol.get_ref(),
                    l.get_ref().address.get_ref().clone(),
                )
            })
            .collect();
        assert_eq!(
            listeners,
            vec![
                (Protocol::Udp, "127.0.0.1:5514".to_string()),
                (Protocol::Tcp, "127.0.0.1:5514".to_string())
            ]
        );
        assert_eq!(
            *config.output[0].get_ref().kind.get_ref(),
            OutputKind::Stdout
        );
    }

    #[test]
    fn contract_shape_parses() {
        let text = r#"
[[listener]]
protocol = "udp"
address  = "0.0.0.0:514"

[[listener]]
protocol = "tcp"
address  = "0.0.0.0:514"
framing  = "octet-counting"
allow    = ["10.0.0.0/8", "192.0.2.1"]

[output]
type = "file"
path = "/tmp/rows.ndjson"

[batch]
max_rows  = 5000
max_bytes = 1048576
max_age_ms = 1000
"#;
        let (_, resolved) = Config::parse("test.toml", text).unwrap();
        let tcp = &resolved.listeners[1];
        assert_eq!(tcp.framing, Framing::OctetCounting);
        assert_eq!(resolved.listeners[0].framing, Framing::Auto);
        assert_eq!(tcp.allow.len(), 2);
        assert_eq!(resolved.time_generated, vec![TimeSource::Received]);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"[[listener]]
protocol = "tcp"
address  = "localhost"
allow    = ["10.0.0.0/33"]

[[listener]]
protocol = "tls"
address  = "127.0.0.1:6514"
cert     = "/nonexistent/cert.pem"

[output]
type = "stdout"

[record]
timezone = "Mars"
"#;
        let err = Config::parse("bad.toml", text).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.toml:3:12: address \"localhost\" is not IP:PORT"),
            "{text}"
        );
        assert!(
            text.contains("bad.toml:4:13: allow entry \"10.0.0.0/33\""),
            "{text}"
        );
        assert!(
            text.contains("bad.toml:9:12: cert file /nonexistent/cert.pem does not exist"),
            "{text}"
        );
        assert!(text.contains("a tls listener needs `key`"), "{text}");
        assert!(text.contains("bad.toml:15:12: timezone \"Mars\""), "{text}");
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn syntax_and_unknown_keys_are_located() {
        let err = Config::parse("x.toml", "[output]\ntype = \"stdout\"\nbogus = 1\n").unwrap_err();
        assert_eq!(err.problems[0].line, 3, "{err}");
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
        let err = Config::parse("x.toml", "[[listener]]\nprotocol = \"sctp\"\naddress = \"1.2.3.4:5\"\n[output]\ntype=\"stdout\"\n")
            .unwrap_err();
        assert_eq!(err.problems[0].line, 2, "{err}");
        assert!(err.to_string().contains("sctp"), "{err}");
    }
}
