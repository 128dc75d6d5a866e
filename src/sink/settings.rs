//! What an output needs to run, checked and read (secrets, keys) once when the configuration
//! is loaded: nothing here can be missing or malformed by the time [`super::build`] runs.

use std::path::PathBuf;
use std::time::Duration;

use super::signature::SharedKeySigner;
use crate::auth::Credential;
use crate::row::JsonShape;

/// One output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSettings {
    /// The output's name (`name`, else its type): the `output` label of its metrics.
    pub name: String,
    pub destination: Destination,
    /// Requests in flight at once (Azure outputs; local outputs write one batch at a time).
    pub concurrency: usize,
    /// Time allowed for one request.
    pub timeout: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// Largest request body (uncompressed); `None` is the service's limit.
    pub max_request_bytes: Option<usize>,
    /// Where rows refused for good are kept.
    pub dead_letter_path: PathBuf,
}

/// Where rows go, and what that destination needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to a file.
    File(PathBuf),
    LogsIngestion(LogsIngestionSettings),
    DataCollector(DataCollectorSettings),
}

impl Destination {
    /// An Azure API (rows it refuses for good become dead letters `cefgate dlq` can resend),
    /// as opposed to a local stdout or file output.
    pub fn is_azure(&self) -> bool {
        match self {
            Destination::Stdout | Destination::File(_) => false,
            Destination::LogsIngestion(_) | Destination::DataCollector(_) => true,
        }
    }
}

impl OutputSettings {
    /// How this output's rows are written, decided here once for the output type: the
    /// worker writes every row this way, so nothing downstream rewrites a row.
    /// - Logs Ingestion: values cut at 64 KiB (the service cuts longer ones silently).
    /// - Data Collector: `TimeGenerated` is a reserved name there, so the time travels as
    ///   `CefgateTimeGenerated` (named in the `time-generated-field` header); values cut at
    ///   32 KiB.
    /// - stdout and files: rows as built.
    pub fn json_shape(&self) -> JsonShape {
        match &self.destination {
            Destination::Stdout | Destination::File(_) => JsonShape::AS_BUILT,
            Destination::LogsIngestion(_) => JsonShape {
                max_value_bytes: super::limits::LOGS_INGESTION_MAX_VALUE_BYTES,
                ..JsonShape::AS_BUILT
            },
            Destination::DataCollector(_) => JsonShape {
                time_column: super::data_collector::RENAMED_TIME_GENERATED,
                max_value_bytes: super::limits::DATA_COLLECTOR_MAX_VALUE_BYTES,
            },
        }
    }
}

/// The Logs Ingestion API: a data collection rule and its streams.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsIngestionSettings {
    pub endpoint: String,
    pub dcr_id: String,
    /// Input stream per table; `None` turns that table's route off.
    pub cef_stream: Option<String>,
    pub syslog_stream: Option<String>,
    pub gzip: bool,
    pub credential: Credential,
    pub scope: String,
}

/// The Data Collector API: a workspace, its shared key and a log type per table.
#[derive(Debug, Clone, PartialEq)]
pub struct DataCollectorSettings {
    pub endpoint: String,
    pub signer: SharedKeySigner,
    /// Log type per table; `None` turns that table's route off.
    pub cef_log_type: Option<String>,
    pub syslog_log_type: Option<String>,
    pub time_generated_field: String,
    pub azure_resource_id: Option<String>,
}
