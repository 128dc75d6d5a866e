//! Counters for everything that can go wrong or be dropped, shared by all stages.
//!
//! Plain atomics: each is bumped where it happens and read only for reports, so relaxed
//! ordering is enough. No counter ever carries message content or a secret.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{ProblemCounts, ProblemKind};

/// Every counter cefgate keeps. Names are those printed in reports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub udp_datagrams: AtomicU64,
    pub udp_bytes: AtomicU64,
    /// Datagrams dropped because the pipeline was full (UDP cannot push back).
    pub udp_dropped_queue_full: AtomicU64,
    /// Datagrams dropped because the memory budget was used up.
    pub udp_dropped_memory_full: AtomicU64,
    /// Times a TCP/TLS connection stopped reading because the memory budget was used up.
    pub reads_paused_memory_full: AtomicU64,
    /// The most memory the budget held at once (bytes).
    pub memory_peak_bytes: AtomicU64,
    /// Datagrams the kernel dropped for the socket (its receive buffer overflowed).
    pub udp_dropped_kernel: AtomicU64,
    /// Datagrams from senders outside the allowlist.
    pub udp_denied: AtomicU64,
    pub tcp_frames: AtomicU64,
    pub tcp_bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    /// Connections refused: over `max_connections` or outside the allowlist.
    pub connections_refused: AtomicU64,
    pub connections_idle_closed: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Bytes between frames that were no frame; passed on as raw messages.
    pub framing_errors: AtomicU64,
    pub oversize_truncated: AtomicU64,
    pub oversize_dropped: AtomicU64,
    pub rows_cef: AtomicU64,
    pub rows_syslog: AtomicU64,
    pub rows_with_problems: AtomicU64,
    pub problems: [AtomicU64; ProblemKind::ALL.len()],
    pub batches_written: AtomicU64,
    pub output_errors: AtomicU64,
    /// Rows of a route that is turned off (empty stream or log type).
    pub rows_unrouted: AtomicU64,
    /// Rows the service accepted.
    pub rows_delivered: AtomicU64,
    /// Rows the service refused for good, kept in the dead-letter queue.
    pub rows_dead_lettered: AtomicU64,
    /// Rows that went nowhere: a dead-letter write failed, or a stage died holding them.
    /// Anything above 0 makes `cefgate run` exit with an error.
    pub rows_lost: AtomicU64,
    pub requests_delivered: AtomicU64,
    /// Requests split in two after a 413 or 400.
    pub requests_split: AtomicU64,
    /// 429/503 answers with Retry-After.
    pub requests_throttled: AtomicU64,
    /// Transient failures (5xx, timeouts, connection errors), retried.
    pub requests_failed: AtomicU64,
    /// 401/403 answers, retried after a credential refresh.
    pub requests_unauthorized: AtomicU64,
    /// Values cut at the service's limit (Logs Ingestion 64 KB, Data Collector 32 KB).
    pub values_truncated: AtomicU64,
    /// Rows sent with a TimeGenerated Azure replaces (older than 2 days, or more than 1 day
    /// ahead); their time travels in CefgateReceivedTime.
    pub rows_time_outside_window: AtomicU64,
    /// Spool: chunks written, and what is waiting now (gauges).
    pub spool_chunks_written: AtomicU64,
    pub spool_chunks: AtomicU64,
    pub spool_bytes: AtomicU64,
    /// Times the spool was full and input was held back.
    pub spool_full_waits: AtomicU64,
    /// Chunk writes that failed (full disk, I/O errors) and were retried.
    pub spool_write_errors: AtomicU64,
    /// Damaged chunks moved to quarantine.
    pub chunks_quarantined: AtomicU64,
    /// Rows found in the spool at start, delivered again (possible duplicates).
    pub rows_recovered: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Folds a worker's local problem counts into the shared ones.
    pub fn add_problems(&self, counts: &ProblemCounts) {
        Self::add(&self.rows_with_problems, counts.rows_with_problems);
        for kind in ProblemKind::ALL {
            Self::add(&self.problems[kind as usize], counts.get(kind));
        }
    }

    /// `name value` lines, one per counter, for logs and `/metrics`-style scraping.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let fields: [(&str, &AtomicU64); 43] = [
            ("udp_datagrams", &self.udp_datagrams),
            ("udp_bytes", &self.udp_bytes),
            ("udp_dropped_queue_full", &self.udp_dropped_queue_full),
            ("udp_dropped_memory_full", &self.udp_dropped_memory_full),
            ("reads_paused_memory_full", &self.reads_paused_memory_full),
            ("memory_peak_bytes", &self.memory_peak_bytes),
            ("udp_dropped_kernel", &self.udp_dropped_kernel),
            ("udp_denied", &self.udp_denied),
            ("tcp_frames", &self.tcp_frames),
            ("tcp_bytes", &self.tcp_bytes),
            ("connections_accepted", &self.connections_accepted),
            ("connections_active", &self.connections_active),
            ("connections_refused", &self.connections_refused),
            ("connections_idle_closed", &self.connections_idle_closed),
            ("tls_handshake_failures", &self.tls_handshake_failures),
            ("framing_errors", &self.framing_errors),
            ("oversize_truncated", &self.oversize_truncated),
            ("oversize_dropped", &self.oversize_dropped),
            ("rows_cef", &self.rows_cef),
            ("rows_syslog", &self.rows_syslog),
            ("rows_with_problems", &self.rows_with_problems),
            ("batches_written", &self.batches_written),
            ("output_errors", &self.output_errors),
            ("rows_unrouted", &self.rows_unrouted),
            ("rows_delivered", &self.rows_delivered),
            ("rows_dead_lettered", &self.rows_dead_lettered),
            ("rows_lost", &self.rows_lost),
            ("requests_delivered", &self.requests_delivered),
            ("requests_split", &self.requests_split),
            ("requests_throttled", &self.requests_throttled),
            ("requests_failed", &self.requests_failed),
            ("requests_unauthorized", &self.requests_unauthorized),
            ("values_truncated", &self.values_truncated),
            ("rows_time_outside_window", &self.rows_time_outside_window),
            ("spool_chunks_written", &self.spool_chunks_written),
            ("spool_chunks", &self.spool_chunks),
            ("spool_bytes", &self.spool_bytes),
            ("spool_full_waits", &self.spool_full_waits),
            ("spool_write_errors", &self.spool_write_errors),
            ("chunks_quarantined", &self.chunks_quarantined),
            ("rows_recovered", &self.rows_recovered),
            (
                "problems_total",
                &AtomicU64::new(self.problems.iter().map(Self::get).sum()),
            ),
            (
                "rows_total",
                &AtomicU64::new(Self::get(&self.rows_cef) + Self::get(&self.rows_syslog)),
            ),
        ];
        for (name, counter) in fields {
            let _ = writeln!(out, "cefgate_{name} {}", Self::get(counter));
        }
        for kind in ProblemKind::ALL {
            let _ = writeln!(
                out,
                "cefgate_problems{{kind=\"{}\"}} {}",
                kind.name(),
                Self::get(&self.problems[kind as usize])
            );
        }
        out
    }
}
