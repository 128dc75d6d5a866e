//! The one list of every metric cefgate has: its name, kind, help text and labels, and where
//! its value comes from. `/metrics` (rendered by the monitor), the report `cefgate run`
//! prints at exit ([`Metrics::report`]) and the reference `docs/metrics.md`
//! ([`super::reference`]) are all rendered from [`CATALOG`], so none of them can list a
//! metric the others miss or describe it differently.
//!
//! The list is one invocation of the `catalog!` macro, which writes both the [`Metrics`]
//! struct (one named `AtomicU64` field per counter it holds) and [`CATALOG`]. A macro, not
//! a hand-kept slice next to a hand-kept struct, because then a counter cannot be added to
//! the struct without its descriptor: declaring it *is* adding it to the list. Named
//! fields, not an array indexed by an enum, because the hot path stays what it was: a
//! stage bumps `metrics.udp_denied`, a plain atomic reached without a lookup, and the
//! compiler checks the name. Descriptors read values through `fn` pointers, called only
//! when `/metrics` is scraped or the report is printed.
//!
//! Totals of what each listener counts (`udp_datagrams`, `tcp_bytes`, `connections_active`,
//! ...) are no fields: they are summed from the listeners' counters when read, so that an
//! event is counted once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::{Kind, ListenerCounters, OutputCounters, ResponseKey};
use crate::record::PROBLEM_KINDS;

/// One metric: how it is named, typed, explained and labelled, where its value comes from,
/// and where it is shown.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    /// The name without the `cefgate_` prefix, as the exit report prints it (counters
    /// without the `_total` that `/metrics` appends).
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Label names, in the order every series of a [`Value::Family`] gives their values.
    pub labels: &'static [&'static str],
    pub value: Value,
    /// Served by `/metrics`.
    pub in_metrics: bool,
    /// Printed in the report at exit.
    pub in_report: bool,
}

/// Where a metric's value is read.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// One unlabelled value held in, or summed from, [`Metrics`].
    Scalar(fn(&Metrics) -> u64),
    /// One unlabelled value of the running process that [`Metrics`] does not hold; only the
    /// monitor can read it, so it is never in the exit report.
    Live(Live),
    /// Labelled series read from [`Metrics`], one per label combination.
    Family(fn(&Metrics) -> Vec<Series>),
}

/// The values only the running monitor knows (the memory budget, the decode queue, the
/// readiness verdict): the monitor reads each when it renders `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    MemoryUsed,
    MemoryLimit,
    QueueDepth,
    Ready,
}

/// One series of a labelled family: its label values (in [`Descriptor::labels`] order) and
/// its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub labels: Vec<String>,
    pub value: u64,
}

impl Descriptor {
    /// The name `/metrics` gives it: `cefgate_`, then the name, counters ending in `_total`
    /// (prometheus-client appends it to [`Descriptor::base_name`]).
    pub fn exposition_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("cefgate_{}_total", self.base_name()),
            Kind::Gauge => format!("cefgate_{}", self.base_name()),
        }
    }

    /// The name handed to prometheus-client, which adds the `cefgate_` prefix and, for a
    /// counter, the `_total` suffix (so a `rows_total` counter is registered as `rows`).
    pub fn base_name(&self) -> &'static str {
        self.name.strip_suffix("_total").unwrap_or(self.name)
    }
}

/// Writes the [`Metrics`] struct and [`CATALOG`] from one list of entries; see the module
/// documentation for why. Entries, each ending in `;`, in the order of `/metrics` and the
/// report:
///
/// - `Counter name: "help";` a counter held in the field `name` (doc comments go to the
///   field); `Gauge field as "name": "help";` one whose field is named differently.
/// - `Counter name(): "help";` a value `Metrics::name()` sums or computes when read;
///   `... name() in report only: ...` one that `/metrics` leaves out.
/// - `Gauge name = live Variant: "help";` a [`Live`] value, only in `/metrics`.
/// - `Counter name{label, ...} = method: "help";` a family `Metrics::method()` reads;
///   `... = method, in report too: ...` one also printed at exit.
///
/// After the entries, `held { ... }` gives the struct's other fields, verbatim.
///
/// The entries are read one per recursive expansion, so the list can grow to about 120
/// before the compiler's default `recursion_limit` (128) has to be raised.
macro_rules! catalog {
    (
        $(#[$struct_meta:meta])*
        pub struct Metrics { $($entries:tt)* }
        held { $($held:tt)* }
    ) => {
        catalog!(@entry [$(#[$struct_meta])*] [$($held)*] [] [] $($entries)*);
    };

    (@entry $attrs:tt $held:tt $fields:tt $descriptors:tt) => {
        catalog!(@emit $attrs $held $fields $descriptors);
    };

    // A counter held in a field of the same name.
    (@entry $attrs:tt $held:tt [$($field:tt)*] [$($descriptor:tt)*]
        $(#[$meta:meta])* $kind:ident $name:ident : $help:literal ; $($rest:tt)*) => {
        catalog!(@entry $attrs $held
            [$($field)* $(#[$meta])* pub $name: AtomicU64,]
            [$($descriptor)* catalog!(@scalar $kind, stringify!($name), $help,
                |m| Metrics::get(&m.$name), true),]
            $($rest)*);
    };

    // A counter held in a field named differently from the metric.
    (@entry $attrs:tt $held:tt [$($field:tt)*] [$($descriptor:tt)*]
        $(#[$meta:meta])* $kind:ident $field_name:ident as $name:literal : $help:literal ;
        $($rest:tt)*) => {
        catalog!(@entry $attrs $held
            [$($field)* $(#[$meta])* pub $field_name: AtomicU64,]
            [$($descriptor)* catalog!(@scalar $kind, $name, $help,
                |m| Metrics::get(&m.$field_name), true),]
            $($rest)*);
    };

    // A value computed when read, shown everywhere.
    (@entry $attrs:tt $held:tt $fields:tt [$($descriptor:tt)*]
        $kind:ident $name:ident () : $help:literal ; $($rest:tt)*) => {
        catalog!(@entry $attrs $held $fields
            [$($descriptor)* catalog!(@scalar $kind, stringify!($name), $help,
                |m| m.$name(), true),]
            $($rest)*);
    };

    // A value computed when read, only in the exit report.
    (@entry $attrs:tt $held:tt $fields:tt [$($descriptor:tt)*]
        $kind:ident $name:ident () in report only : $help:literal ; $($rest:tt)*) => {
        catalog!(@entry $attrs $held $fields
            [$($descriptor)* catalog!(@scalar $kind, stringify!($name), $help,
                |m| m.$name(), false),]
            $($rest)*);
    };

    // A value of the running process, only in `/metrics`.
    (@entry $attrs:tt $held:tt $fields:tt [$($descriptor:tt)*]
        $kind:ident $name:ident = live $live:ident : $help:literal ; $($rest:tt)*) => {
        catalog!(@entry $attrs $held $fields
            [$($descriptor)* Descriptor {
                name: stringify!($name),
                kind: Kind::$kind,
                help: $help,
                labels: &[],
                value: Value::Live(Live::$live),
                in_metrics: true,
                in_report: false,
            },]
            $($rest)*);
    };

    // A labelled family, only in `/metrics`.
    (@entry $attrs:tt $held:tt $fields:tt [$($descriptor:tt)*]
        $kind:ident $name:ident { $($label:ident),+ } = $read:ident : $help:literal ;
        $($rest:tt)*) => {
        catalog!(@entry $attrs $held $fields
            [$($descriptor)* catalog!(@family $kind, $name, [$($label),+], $read, $help, false),]
            $($rest)*);
    };

    // A labelled family, in `/metrics` and the exit report.
    (@entry $attrs:tt $held:tt $fields:tt [$($descriptor:tt)*]
        $kind:ident $name:ident { $($label:ident),+ } = $read:ident, in report too :
        $help:literal ; $($rest:tt)*) => {
        catalog!(@entry $attrs $held $fields
            [$($descriptor)* catalog!(@family $kind, $name, [$($label),+], $read, $help, true),]
            $($rest)*);
    };

    (@scalar $kind:ident, $name:expr, $help:literal, $read:expr, $in_metrics:expr) => {
        Descriptor {
            name: $name,
            kind: Kind::$kind,
            help: $help,
            labels: &[],
            value: Value::Scalar($read),
            in_metrics: $in_metrics,
            in_report: true,
        }
    };

    (@family $kind:ident, $name:ident, [$($label:ident),+], $read:ident, $help:literal,
        $in_report:expr) => {
        Descriptor {
            name: stringify!($name),
            kind: Kind::$kind,
            help: $help,
            labels: &[$(stringify!($label)),+],
            value: Value::Family(|m| m.$read()),
            in_metrics: true,
            in_report: $in_report,
        }
    };

    (@emit [$($attrs:tt)*] [$($held:tt)*] [$($field:tt)*] [$($descriptor:expr,)*]) => {
        $($attrs)*
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($field)*
            $($held)*
        }

        /// Every metric, in the order `/metrics` and the exit report give them.
        pub static CATALOG: &[Descriptor] = &[$($descriptor,)*];
    };
}

catalog! {
    /// Every counter cefgate keeps, shared by all stages. Names are those printed in
    /// reports; [`CATALOG`] describes each.
    pub struct Metrics {
        Counter udp_datagrams(): "UDP datagrams read";
        Counter udp_bytes(): "UDP bytes read";
        /// Datagrams dropped because the pipeline was full (UDP cannot push back).
        Counter udp_dropped_queue_full: "UDP datagrams dropped: the decode queue was full";
        /// Datagrams dropped because the memory budget was used up.
        Counter udp_dropped_memory_full:
            "UDP datagrams dropped: the memory budget was used up";
        /// Times a TCP/TLS connection stopped reading because the memory budget was used up.
        Counter reads_paused_memory_full:
            "Times a TCP/TLS connection stopped reading: the memory budget was used up";
        /// The most memory the budget held at once (bytes).
        Gauge memory_peak_bytes: "The most memory the budget held at once";
        /// Datagrams the kernel dropped for the socket (its receive buffer overflowed).
        Counter udp_dropped_kernel:
            "UDP datagrams the kernel dropped: the socket's receive buffer overflowed";
        /// Datagrams from senders outside the allowlist.
        Counter udp_denied: "UDP datagrams from senders outside the allowlist";
        Counter tcp_frames(): "TCP/TLS frames read";
        Counter tcp_bytes(): "TCP/TLS bytes read";
        Counter connections_accepted(): "TCP/TLS connections accepted";
        Gauge connections_active(): "TCP/TLS connections open now";
        // Over `max_connections` or outside the allowlist.
        Counter connections_refused():
            "TCP/TLS connections refused: over max_connections or outside the allowlist";
        Counter connections_idle_closed: "TCP/TLS connections closed after idle_timeout_secs";
        Counter tls_handshake_failures: "TLS handshakes that failed or timed out";
        /// Bytes between frames that were no frame; passed on as raw messages.
        Counter framing_errors:
            "Bytes between frames that were no frame (passed on as raw messages)";
        Counter oversize_truncated: "Messages cut at max_message_bytes";
        Counter oversize_dropped: "Messages over max_message_bytes dropped (oversize = drop)";
        /// Connections refused because their address held `max_connections_per_source`.
        Counter connections_refused_per_source:
            "TCP/TLS connections refused: their address held max_connections_per_source";
        /// TLS connections refused because `max_handshakes` were in progress.
        Counter handshakes_refused: "TLS connections refused: max_handshakes were in progress";
        /// Connections refused for a missing, malformed or late PROXY header.
        Counter proxy_headers_refused:
            "Connections refused for a missing, malformed or late PROXY header";
        /// Connections to a PROXY listener from a peer outside its `proxy_from`.
        Counter proxy_peers_refused:
            "Connections to a PROXY listener from a peer outside its proxy_from";
        /// `accept` failures (out of descriptors, ...), each followed by a back-off.
        Counter accept_errors:
            "accept failures (out of descriptors, ...), each followed by a back-off";
        /// Partial frames cut at `frame_timeout_secs` (their connections closed).
        Counter frames_timed_out:
            "Partial frames cut at frame_timeout_secs (their connections closed)";
        /// Partial frames a connection held when shutdown stopped its reading: handed on,
        /// marked truncated, as at `frame_timeout_secs`.
        Counter frames_cut_at_shutdown:
            "Partial frames handed on, marked truncated, because shutdown stopped their connection's reading";
        /// Bytes of oversize frames passed over (the rest of a frame longer than the limit).
        Counter framing_bytes_skipped: "Bytes of oversize frames passed over";
        Counter rows_cef: "CommonSecurityLog rows built";
        Counter rows_syslog: "Syslog rows built";
        Counter rows_with_problems: "Rows with a problem in CefgateDiagnostics";
        Counter batches_written: "Batches handed to the buffer";
        Counter output_errors: "Output errors";
        /// Rows of a route that is turned off (empty stream or log type).
        Counter rows_unrouted: "Rows of a route that is turned off";
        /// Rows the service accepted.
        Counter rows_delivered: "Rows the output accepted";
        /// Rows the service refused for good, kept in the dead-letter queue.
        Counter rows_dead_lettered: "Rows refused for good, kept in the dead-letter file";
        /// Rows that went nowhere: a dead-letter write failed, or a stage died holding them.
        /// Anything above 0 makes `cefgate run` exit with an error.
        Counter rows_lost:
            "Rows that went nowhere (a dead-letter write failed); above 0 makes run exit 1";
        /// Failed attempts to write the dead-letter file; its rows stay in the buffer,
        /// retried.
        Counter dead_letter_write_errors:
            "Failed writes to the dead-letter file (its rows stay in the buffer and are retried)";
        Counter requests_delivered: "Requests the service accepted";
        /// Requests split in two after a 413 or 400.
        Counter requests_split: "Requests split in two after a 413, 400 or Data Collector 404";
        /// 429/503 answers with Retry-After.
        Counter requests_throttled: "429/503 answers with Retry-After";
        /// Transient failures (5xx, timeouts, connection errors), retried.
        Counter requests_failed: "Transient failures (5xx, timeouts, connection errors), retried";
        /// 401/403 answers, retried after a credential refresh.
        Counter requests_unauthorized: "401/403 answers, retried after a credential refresh";
        /// Values cut at the service's limit (Logs Ingestion 64 KB, Data Collector 32 KB).
        Counter values_truncated: "Values cut at the service's limit";
        /// Rows sent with a TimeGenerated Azure replaces (older than 2 days, or more than 1
        /// day ahead); their time travels in CefgateTimeGenerated.
        Counter rows_time_outside_window:
            "Rows sent with a TimeGenerated Azure replaces; their time is in CefgateTimeGenerated";
        /// Spool: chunks written, and what is waiting now (gauges).
        Counter spool_chunks_written: "Spool chunks written";
        Gauge spool_chunks: "Spool chunks waiting";
        Gauge spool_bytes: "Spool bytes on disk";
        /// Times the spool was full and input was held back.
        Counter spool_full_waits: "Times the spool was full and held input back";
        /// 1 while the spool is full and holds input back, else 0 (a gauge).
        Gauge spool_full_now as "spool_full": "1 while the spool is full and holds input back";
        /// Chunk writes that failed (full disk, I/O errors) and were retried.
        Counter spool_write_errors: "Spool chunk writes that failed and were retried";
        /// Damaged chunks moved to quarantine.
        Counter chunks_quarantined: "Damaged spool chunks moved to quarantine";
        /// Rows found in the spool at start, delivered again (possible duplicates).
        Counter rows_recovered: "Rows found in the spool at start and delivered again";
        /// Chunk writes failing right now and being retried (disk full, I/O errors), a
        /// gauge: while it is above 0 no input is accepted, so `/ready` says not ready.
        Gauge spool_write_failing:
            "Spool chunk writes failing right now and being retried (disk full, I/O errors)";
        /// Chunks left in place because they could not be read (permissions, I/O errors):
        /// their content may be intact, so they are not quarantined; fix the cause and
        /// restart.
        Counter chunks_unreadable:
            "Spool chunks left in place because they could not be read (permissions, I/O errors)";
        /// Connections to the metrics endpoint closed by its cap: new ones when every slot
        /// was answering, and idle ones closed to make room for a new one.
        Counter metrics_connections_refused:
            "Metrics endpoint connections closed by its cap of 32 (new ones, or idle ones to make room)";
        /// Metrics endpoint connections closed after idling (silent, slow header, kept
        /// alive).
        Counter metrics_connections_idle_closed:
            "Metrics endpoint connections closed after idling (silent, slow header, kept alive)";
        /// Metrics endpoint connections open now (a gauge; at most 32).
        Gauge metrics_connections_active: "Metrics endpoint connections open now";
        /// Metrics endpoint requests answered 401 (no or a wrong bearer token).
        Counter metrics_requests_unauthorized:
            "Metrics endpoint requests answered 401 (no or a wrong bearer token)";
        // `/metrics` gives the per-kind `problems` family under this name instead.
        Counter problems_total() in report only:
            "Problems found while building rows (all kinds)";
        Counter rows_total(): "Rows built";
        Gauge spool_oldest_chunk_age_seconds():
            "Age of the oldest chunk in the spool (0 when empty)";
        Gauge memory_used_bytes = live MemoryUsed:
            "Memory the budget holds now ([pipeline] max_memory_bytes is the limit)";
        Gauge memory_limit_bytes = live MemoryLimit:
            "The memory budget ([pipeline] max_memory_bytes)";
        Gauge queue_depth = live QueueDepth: "Frame batches waiting for a decode thread";
        Gauge ready = live Ready: "1 when /ready answers 200";
        Counter problems{kind} = problems_by_kind, in report too:
            "Problems found while building rows, by kind";
        Counter listener_messages{listener} = listener_messages:
            "Messages (datagrams or frames) read, per listener";
        Counter listener_bytes{listener} = listener_bytes: "Bytes read, per listener";
        Counter listener_connections_accepted{listener} = listener_connections_accepted:
            "TCP/TLS connections accepted, per listener";
        Counter listener_connections_refused{listener} = listener_connections_refused:
            "TCP/TLS connections refused, per listener";
        Gauge listener_connections_active{listener} = listener_connections_active:
            "TCP/TLS connections open now, per listener";
        Counter output_rows_kept{output} = output_rows_kept:
            "Rows an output's where kept (every row without one), per output";
        Counter output_rows_filtered{output} = output_rows_filtered:
            "Rows an output's where left out, per output";
        Counter output_bytes_not_sent{output} = output_bytes_not_sent:
            "JSON bytes an output did not send: rows left out and columns removed";
        Counter route_rows{route, outcome} = route_rows_by_outcome:
            "Rows per route (stream or log type) by outcome: delivered, dead_lettered, unrouted";
        Gauge route_stopped{route} = route_stopped_series:
            "1 for a route stopped by a configuration error";
        Counter http_responses{output, route, status, error_code} = response_series:
            "HTTP answers from Azure per output, route, status and x-ms-error-code";
    }
    held {
        /// When the oldest chunk still in the spool was written (Unix ms; 0: none); read as
        /// `spool_oldest_chunk_age_seconds`.
        pub spool_oldest_chunk_unix_ms: AtomicU64,
        /// Problems found while building rows, per kind (in [`PROBLEM_KINDS`] order).
        pub problems: [AtomicU64; PROBLEM_KINDS.len()],
        /// Every listener is bound (set once, after start-up).
        pub listeners_bound: AtomicBool,
        /// Counters per listener, in configuration order.
        pub(super) listeners: Mutex<Vec<Arc<ListenerCounters>>>,
        /// Counters per output, in configuration order.
        pub(super) outputs: Mutex<Vec<Arc<OutputCounters>>>,
        /// HTTP answers per output, route, status and `x-ms-error-code`.
        pub(super) responses: Mutex<BTreeMap<ResponseKey, u64>>,
        /// Rows per route and what became of them (`delivered`, `dead_lettered`,
        /// `unrouted`).
        pub(super) route_rows: Mutex<BTreeMap<(String, &'static str), u64>>,
        /// Routes stopped by a broken configuration (404): not ready.
        pub(super) routes_stopped: Mutex<BTreeSet<String>>,
    }
}
