//! The Azure services' documented limits, written once: the outputs keep to them, the
//! configuration checks against them, and the emulator enforces them.

/// Logs Ingestion: one call's body, compressed and uncompressed alike (the service answers
/// 413 `ContentLengthLimitExceeded` above it).
pub const LOGS_INGESTION_MAX_REQUEST_BYTES: usize = 1_048_576;
/// Logs Ingestion: the longest value the service keeps; it cuts longer ones without a word.
pub const LOGS_INGESTION_MAX_VALUE_BYTES: usize = 64 * 1024;
/// Data Collector: one post's body. Microsoft's pages say "30 MB"; the decimal reading is
/// the smaller one, so it is the one that is safe to keep to.
pub const DATA_COLLECTOR_MAX_REQUEST_BYTES: usize = 30_000_000;
/// Data Collector: the longest value the service keeps.
pub const DATA_COLLECTOR_MAX_VALUE_BYTES: usize = 32 * 1024;
/// The smallest request limit a configuration may set (`max_request_bytes`).
pub const MIN_REQUEST_BYTES: usize = 4096;
