//! Counters for everything that can go wrong or be dropped, shared by all stages.
//!
//! Plain atomics: each is bumped where it happens and read only for reports, so relaxed
//! ordering is enough. No counter ever carries message content or a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::record::{PROBLEM_KINDS, ProblemCounts};

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
    /// Connections refused because their address held `max_connections_per_source`.
    pub connections_refused_per_source: AtomicU64,
    /// TLS connections refused because `max_handshakes` were in progress.
    pub handshakes_refused: AtomicU64,
    /// Connections refused for a missing, malformed or late PROXY header.
    pub proxy_headers_refused: AtomicU64,
    /// Connections to a PROXY listener from a peer outside its `proxy_from`.
    pub proxy_peers_refused: AtomicU64,
    /// `accept` failures (out of descriptors, ...), each followed by a back-off.
    pub accept_errors: AtomicU64,
    /// Partial frames cut at `frame_timeout_secs` (their connections closed).
    pub frames_timed_out: AtomicU64,
    /// Partial frames a connection held when shutdown stopped its reading: handed on,
    /// marked truncated, as at `frame_timeout_secs`.
    pub frames_cut_at_shutdown: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Bytes between frames that were no frame; passed on as raw messages.
    pub framing_errors: AtomicU64,
    pub oversize_truncated: AtomicU64,
    /// Bytes of oversize frames passed over (the rest of a frame longer than the limit).
    pub framing_bytes_skipped: AtomicU64,
    pub oversize_dropped: AtomicU64,
    pub rows_cef: AtomicU64,
    pub rows_syslog: AtomicU64,
    pub rows_with_problems: AtomicU64,
    pub problems: [AtomicU64; PROBLEM_KINDS.len()],
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
    /// Failed attempts to write the dead-letter file; its rows stay in the buffer, retried.
    pub dead_letter_write_errors: AtomicU64,
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
    /// ahead); their time travels in CefgateTimeGenerated.
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
    /// 1 while the spool is full and holds input back, else 0 (a gauge).
    pub spool_full_now: AtomicU64,
    /// When the oldest chunk still in the spool was written (Unix ms; 0: none).
    pub spool_oldest_chunk_unix_ms: AtomicU64,
    /// Chunk writes failing right now and being retried (disk full, I/O errors), a gauge:
    /// while it is above 0 no input is accepted, so `/ready` says not ready.
    pub spool_write_failing: AtomicU64,
    /// Chunks left in place because they could not be read (permissions, I/O errors): their
    /// content may be intact, so they are not quarantined; fix the cause and restart.
    pub chunks_unreadable: AtomicU64,
    /// Connections to the metrics endpoint closed by its cap: new ones when every slot was
    /// answering, and idle ones closed to make room for a new one.
    pub metrics_connections_refused: AtomicU64,
    /// Metrics endpoint connections closed after idling (silent, slow header, kept alive).
    pub metrics_connections_idle_closed: AtomicU64,
    /// Metrics endpoint connections open now (a gauge; at most 32).
    pub metrics_connections_active: AtomicU64,
    /// Metrics endpoint requests answered 401 (no or a wrong bearer token).
    pub metrics_requests_unauthorized: AtomicU64,
    /// Every listener is bound (set once, after start-up).
    pub listeners_bound: AtomicBool,
    /// Counters per listener, in configuration order.
    listeners: Mutex<Vec<Arc<ListenerCounters>>>,
    /// Counters per output, in configuration order.
    outputs: Mutex<Vec<Arc<OutputCounters>>>,
    /// HTTP answers per output, route, status and `x-ms-error-code`.
    responses: Mutex<BTreeMap<ResponseKey, u64>>,
    /// Rows per route and what became of them (`delivered`, `dead_lettered`, `unrouted`).
    route_rows: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Routes stopped by a broken configuration (404): not ready.
    routes_stopped: Mutex<BTreeSet<String>>,
}

/// Whether a value only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// The counters of one listener (`udp 0.0.0.0:514`). A listener recreated by a reload keeps
/// its counters.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    pub name: String,
    /// Messages read: datagrams or frames.
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub connections_refused: AtomicU64,
}

/// The counters of one output (`[[output]] name`).
#[derive(Debug, Default)]
pub struct OutputCounters {
    pub name: String,
    /// Rows its `where` kept (all rows without one).
    pub rows_kept: AtomicU64,
    /// Rows its `where` left out.
    pub rows_filtered: AtomicU64,
    /// JSON bytes it did not send: the rows left out and the columns `project_away` removed.
    pub bytes_not_sent: AtomicU64,
}

/// Labels of an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResponseKey {
    /// The output's name (`[[output]] name`, else its type), as the other per-output
    /// metrics label it.
    pub output: String,
    pub route: String,
    pub status: u16,
    /// `x-ms-error-code`, or empty.
    pub error_code: String,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The counters of the listener named `name`, made on first use.
    pub fn listener(&self, name: &str) -> Arc<ListenerCounters> {
        let mut all = self.listeners.lock().expect("metrics lock");
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return c.clone();
        }
        let c = Arc::new(ListenerCounters {
            name: name.to_string(),
            ..ListenerCounters::default()
        });
        all.push(c.clone());
        c
    }

    /// The counters of the output named `name`, made on first use.
    pub fn output(&self, name: &str) -> Arc<OutputCounters> {
        let mut all = self.outputs.lock().expect("metrics lock");
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return c.clone();
        }
        let c = Arc::new(OutputCounters {
            name: name.to_string(),
            ..OutputCounters::default()
        });
        all.push(c.clone());
        c
    }

    /// Every output's counters.
    pub fn outputs(&self) -> Vec<Arc<OutputCounters>> {
        self.outputs.lock().expect("metrics lock").clone()
    }

    /// Every listener's counters.
    pub fn listeners(&self) -> Vec<Arc<ListenerCounters>> {
        self.listeners.lock().expect("metrics lock").clone()
    }

    /// Counts one HTTP answer (never its body).
    pub fn record_response(
        &self,
        output: &str,
        route: &str,
        status: u16,
        error_code: Option<&str>,
    ) {
        let key = ResponseKey {
            output: output.to_string(),
            route: route.to_string(),
            status,
            error_code: error_code.unwrap_or_default().to_string(),
        };
        *self
            .responses
            .lock()
            .expect("metrics lock")
            .entry(key)
            .or_default() += 1;
    }

    pub fn responses(&self) -> Vec<(ResponseKey, u64)> {
        let map = self.responses.lock().expect("metrics lock");
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts `n` rows of `route` that were `outcome` (`delivered`, `dead_lettered`, ...).
    pub fn add_route_rows(&self, route: &str, outcome: &'static str, n: u64) {
        let mut map = self.route_rows.lock().expect("metrics lock");
        match map.get_mut(&(route.to_string(), outcome)) {
            Some(v) => *v += n,
            None => {
                map.insert((route.to_string(), outcome), n);
            }
        }
    }

    pub fn route_rows(&self) -> Vec<(String, &'static str, u64)> {
        let map = self.route_rows.lock().expect("metrics lock");
        map.iter().map(|((r, o), v)| (r.clone(), *o, *v)).collect()
    }

    /// Marks `route` as stopped (its configuration is wrong).
    pub fn route_stopped(&self, route: &str) {
        self.routes_stopped
            .lock()
            .expect("metrics lock")
            .insert(route.to_string());
    }

    /// A new output (after a reload) starts with every route running.
    pub fn clear_stopped_routes(&self) {
        self.routes_stopped.lock().expect("metrics lock").clear();
    }

    pub fn stopped_routes(&self) -> Vec<String> {
        let set = self.routes_stopped.lock().expect("metrics lock");
        set.iter().cloned().collect()
    }

    /// Folds a worker's local problem counts into the shared ones.
    pub fn add_problems(&self, counts: &ProblemCounts) {
        Self::add(&self.rows_with_problems, counts.rows_with_problems);
        for (i, kind) in PROBLEM_KINDS.into_iter().enumerate() {
            Self::add(&self.problems[i], counts.get(kind));
        }
    }

    /// Every unlabelled counter and gauge: name, kind, help, value. `report`, `/metrics`
    /// and the summary line all read this one list.
    pub fn scalars(&self) -> Vec<(&'static str, Kind, &'static str, u64)> {
        use Kind::{Counter as C, Gauge as G};
        let table: &[(&'static str, Kind, &'static str, &AtomicU64)] = &[
            (
                "udp_datagrams",
                C,
                "UDP datagrams read",
                &self.udp_datagrams,
            ),
            ("udp_bytes", C, "UDP bytes read", &self.udp_bytes),
            (
                "udp_dropped_queue_full",
                C,
                "UDP datagrams dropped: the decode queue was full",
                &self.udp_dropped_queue_full,
            ),
            (
                "udp_dropped_memory_full",
                C,
                "UDP datagrams dropped: the memory budget was used up",
                &self.udp_dropped_memory_full,
            ),
            (
                "reads_paused_memory_full",
                C,
                "Times a TCP/TLS connection stopped reading: the memory budget was used up",
                &self.reads_paused_memory_full,
            ),
            (
                "memory_peak_bytes",
                G,
                "The most memory the budget held at once",
                &self.memory_peak_bytes,
            ),
            (
                "udp_dropped_kernel",
                C,
                "UDP datagrams the kernel dropped: the socket's receive buffer overflowed",
                &self.udp_dropped_kernel,
            ),
            (
                "udp_denied",
                C,
                "UDP datagrams from senders outside the allowlist",
                &self.udp_denied,
            ),
            ("tcp_frames", C, "TCP/TLS frames read", &self.tcp_frames),
            ("tcp_bytes", C, "TCP/TLS bytes read", &self.tcp_bytes),
            (
                "connections_accepted",
                C,
                "TCP/TLS connections accepted",
                &self.connections_accepted,
            ),
            (
                "connections_active",
                G,
                "TCP/TLS connections open now",
                &self.connections_active,
            ),
            (
                "connections_refused",
                C,
                "TCP/TLS connections refused: over max_connections or outside the allowlist",
                &self.connections_refused,
            ),
            (
                "connections_idle_closed",
                C,
                "TCP/TLS connections closed after idle_timeout_secs",
                &self.connections_idle_closed,
            ),
            (
                "tls_handshake_failures",
                C,
                "TLS handshakes that failed or timed out",
                &self.tls_handshake_failures,
            ),
            (
                "framing_errors",
                C,
                "Bytes between frames that were no frame (passed on as raw messages)",
                &self.framing_errors,
            ),
            (
                "oversize_truncated",
                C,
                "Messages cut at max_message_bytes",
                &self.oversize_truncated,
            ),
            (
                "oversize_dropped",
                C,
                "Messages over max_message_bytes dropped (oversize = drop)",
                &self.oversize_dropped,
            ),
            (
                "connections_refused_per_source",
                C,
                "TCP/TLS connections refused: their address held max_connections_per_source",
                &self.connections_refused_per_source,
            ),
            (
                "handshakes_refused",
                C,
                "TLS connections refused: max_handshakes were in progress",
                &self.handshakes_refused,
            ),
            (
                "proxy_headers_refused",
                C,
                "Connections refused for a missing, malformed or late PROXY header",
                &self.proxy_headers_refused,
            ),
            (
                "proxy_peers_refused",
                C,
                "Connections to a PROXY listener from a peer outside its proxy_from",
                &self.proxy_peers_refused,
            ),
            (
                "accept_errors",
                C,
                "accept failures (out of descriptors, ...), each followed by a back-off",
                &self.accept_errors,
            ),
            (
                "frames_timed_out",
                C,
                "Partial frames cut at frame_timeout_secs (their connections closed)",
                &self.frames_timed_out,
            ),
            (
                "frames_cut_at_shutdown",
                C,
                "Partial frames handed on, marked truncated, because shutdown stopped their connection's reading",
                &self.frames_cut_at_shutdown,
            ),
            (
                "framing_bytes_skipped",
                C,
                "Bytes of oversize frames passed over",
                &self.framing_bytes_skipped,
            ),
            (
                "rows_cef",
                C,
                "CommonSecurityLog rows built",
                &self.rows_cef,
            ),
            ("rows_syslog", C, "Syslog rows built", &self.rows_syslog),
            (
                "rows_with_problems",
                C,
                "Rows with a problem in CefgateDiagnostics",
                &self.rows_with_problems,
            ),
            (
                "batches_written",
                C,
                "Batches handed to the buffer",
                &self.batches_written,
            ),
            ("output_errors", C, "Output errors", &self.output_errors),
            (
                "rows_unrouted",
                C,
                "Rows of a route that is turned off",
                &self.rows_unrouted,
            ),
            (
                "rows_delivered",
                C,
                "Rows the output accepted",
                &self.rows_delivered,
            ),
            (
                "rows_dead_lettered",
                C,
                "Rows refused for good, kept in the dead-letter file",
                &self.rows_dead_lettered,
            ),
            (
                "rows_lost",
                C,
                "Rows that went nowhere (a dead-letter write failed); above 0 makes run exit 1",
                &self.rows_lost,
            ),
            (
                "dead_letter_write_errors",
                C,
                "Failed writes to the dead-letter file (its rows stay in the buffer and are retried)",
                &self.dead_letter_write_errors,
            ),
            (
                "requests_delivered",
                C,
                "Requests the service accepted",
                &self.requests_delivered,
            ),
            (
                "requests_split",
                C,
                "Requests split in two after a 413, 400 or Data Collector 404",
                &self.requests_split,
            ),
            (
                "requests_throttled",
                C,
                "429/503 answers with Retry-After",
                &self.requests_throttled,
            ),
            (
                "requests_failed",
                C,
                "Transient failures (5xx, timeouts, connection errors), retried",
                &self.requests_failed,
            ),
            (
                "requests_unauthorized",
                C,
                "401/403 answers, retried after a credential refresh",
                &self.requests_unauthorized,
            ),
            (
                "values_truncated",
                C,
                "Values cut at the service's limit",
                &self.values_truncated,
            ),
            (
                "rows_time_outside_window",
                C,
                "Rows sent with a TimeGenerated Azure replaces; their time is in CefgateTimeGenerated",
                &self.rows_time_outside_window,
            ),
            (
                "spool_chunks_written",
                C,
                "Spool chunks written",
                &self.spool_chunks_written,
            ),
            (
                "spool_chunks",
                G,
                "Spool chunks waiting",
                &self.spool_chunks,
            ),
            ("spool_bytes", G, "Spool bytes on disk", &self.spool_bytes),
            (
                "spool_full_waits",
                C,
                "Times the spool was full and held input back",
                &self.spool_full_waits,
            ),
            (
                "spool_full",
                G,
                "1 while the spool is full and holds input back",
                &self.spool_full_now,
            ),
            (
                "spool_write_errors",
                C,
                "Spool chunk writes that failed and were retried",
                &self.spool_write_errors,
            ),
            (
                "chunks_quarantined",
                C,
                "Damaged spool chunks moved to quarantine",
                &self.chunks_quarantined,
            ),
            (
                "rows_recovered",
                C,
                "Rows found in the spool at start and delivered again",
                &self.rows_recovered,
            ),
            (
                "spool_write_failing",
                G,
                "Spool chunk writes failing right now and being retried (disk full, I/O errors)",
                &self.spool_write_failing,
            ),
            (
                "chunks_unreadable",
                C,
                "Spool chunks left in place because they could not be read (permissions, I/O errors)",
                &self.chunks_unreadable,
            ),
            (
                "metrics_connections_refused",
                C,
                "Metrics endpoint connections closed by its cap of 32 (new ones, or idle ones to make room)",
                &self.metrics_connections_refused,
            ),
            (
                "metrics_connections_idle_closed",
                C,
                "Metrics endpoint connections closed after idling (silent, slow header, kept alive)",
                &self.metrics_connections_idle_closed,
            ),
            (
                "metrics_connections_active",
                G,
                "Metrics endpoint connections open now",
                &self.metrics_connections_active,
            ),
            (
                "metrics_requests_unauthorized",
                C,
                "Metrics endpoint requests answered 401 (no or a wrong bearer token)",
                &self.metrics_requests_unauthorized,
            ),
            (
                "problems_total",
                C,
                "Problems found while building rows (all kinds)",
                &AtomicU64::new(self.problems.iter().map(Self::get).sum()),
            ),
            (
                "rows_total",
                C,
                "Rows built",
                &AtomicU64::new(Self::get(&self.rows_cef) + Self::get(&self.rows_syslog)),
            ),
            (
                "spool_oldest_chunk_age_seconds",
                G,
                "Age of the oldest chunk in the spool (0 when empty)",
                &AtomicU64::new(self.spool_oldest_age().as_secs()),
            ),
        ];
        table
            .iter()
            .map(|&(n, k, h, v)| (n, k, h, Self::get(v)))
            .collect()
    }

    /// How long the oldest chunk has waited in the spool.
    pub fn spool_oldest_age(&self) -> std::time::Duration {
        let written = Self::get(&self.spool_oldest_chunk_unix_ms);
        if written == 0 {
            return std::time::Duration::ZERO;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(written))
    }

    /// `name value` lines, one per counter, printed when `run` ends.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (name, _, _, value) in self.scalars() {
            let _ = writeln!(out, "cefgate_{name} {value}");
        }
        for (i, kind) in PROBLEM_KINDS.into_iter().enumerate() {
            let _ = writeln!(
                out,
                "cefgate_problems{{kind=\"{}\"}} {}",
                kind.name(),
                Self::get(&self.problems[i])
            );
        }
        out
    }
}

/// Lets one log line through per interval and counts those held back, so that a fault that
/// repeats per message or per connection (a closed pipe, a flood of refused connections)
/// fills the counters, not the log.
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were held back since the last
    /// one); `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().expect("throttle lock");
        let now = std::time::Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

/// `" (N more like it held back)"` for a throttled line, or nothing.
pub fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it held back)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let t = Throttle::new(std::time::Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let t = Throttle::new(std::time::Duration::ZERO);
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
    }
}
