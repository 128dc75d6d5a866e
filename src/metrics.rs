//! Counters for everything that can go wrong or be dropped, shared by all stages.
//!
//! Plain atomics: each is bumped where it happens and read only for reports, so relaxed
//! ordering is enough. No counter ever carries message content or a secret.
//!
//! Every metric is declared once, in one list (`metrics/catalog.rs`). That list writes the
//! [`Metrics`] struct and the [`CATALOG`] of descriptors, and `/metrics`, the exit report
//! ([`Metrics::report`]) and `docs/metrics.md` ([`mod@reference`]) are all rendered from
//! the catalog. What a listener counts is counted once, in its [`ListenerCounters`]; the
//! totals over all listeners are summed when read (`metrics/readings.rs`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{PROBLEM_KINDS, ProblemCounts};

mod catalog;
mod readings;
pub mod reference;

pub use catalog::{CATALOG, Descriptor, Live, Metrics, Series, Value};

/// Whether a value only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// What a listener reads: datagrams (UDP) or frames of a byte stream (TCP, TLS). The totals
/// `udp_*` and `tcp_*` are summed over the listeners of one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Datagram,
    Stream,
}

/// The counters of one listener (`udp 0.0.0.0:514`). A listener recreated by a reload keeps
/// its counters. They are the only place a listener's events are counted: the totals in
/// the report and `/metrics` are their sums.
#[derive(Debug)]
pub struct ListenerCounters {
    pub name: String,
    pub transport: Transport,
    /// Messages read: datagrams or frames.
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub connections_refused: AtomicU64,
}

impl ListenerCounters {
    /// Counters at 0, for a listener not (yet) in a [`Metrics`].
    pub fn new(name: &str, transport: Transport) -> Self {
        Self {
            name: name.to_string(),
            transport,
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_active: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }
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

    /// The counters of the listener named `name`, made on first use. The name holds the
    /// protocol (`udp 0.0.0.0:514`), so one name always has the same `transport`.
    pub fn listener(&self, name: &str, transport: Transport) -> Arc<ListenerCounters> {
        let mut all = self.listeners.lock().expect("metrics lock");
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return c.clone();
        }
        let c = Arc::new(ListenerCounters::new(name, transport));
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

    /// `name value` lines printed when `run` ends: every metric of [`CATALOG`] that is
    /// `in_report`, in its order; a family gives one `name{label="value"} n` line per series.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for metric in CATALOG.iter().filter(|m| m.in_report) {
            match metric.value {
                Value::Scalar(read) => {
                    let _ = writeln!(out, "cefgate_{} {}", metric.name, read(self));
                }
                Value::Family(read) => {
                    for series in read(self) {
                        let labels: Vec<String> = metric
                            .labels
                            .iter()
                            .zip(&series.labels)
                            .map(|(name, value)| format!("{name}=\"{value}\""))
                            .collect();
                        let _ = writeln!(
                            out,
                            "cefgate_{}{{{}}} {}",
                            metric.name,
                            labels.join(","),
                            series.value
                        );
                    }
                }
                // Held by the running monitor, not here: never `in_report`.
                Value::Live(_) => {}
            }
        }
        out
    }
}
