//! The values [`super::CATALOG`] reads that no single field holds: totals summed over the
//! listeners' counters, sums and ages computed from other counters, and the series of the
//! labelled families. All run when `/metrics` is scraped or the report is printed, never
//! on the hot path; the listener and output lists are short (one entry per configured
//! listener or output), so a sum is a handful of atomic loads under one lock.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ListenerCounters, Metrics, OutputCounters, Series, Transport};
use crate::record::PROBLEM_KINDS;

impl Metrics {
    /// The sum of one counter over the listeners of `transport`.
    fn listener_sum(
        &self,
        transport: Transport,
        counter: fn(&ListenerCounters) -> &AtomicU64,
    ) -> u64 {
        let all = self.listeners.lock().expect("metrics lock");
        all.iter()
            .filter(|l| l.transport == transport)
            .map(|l| Metrics::get(counter(l)))
            .sum()
    }

    /// Datagrams read by every UDP listener.
    pub fn udp_datagrams(&self) -> u64 {
        self.listener_sum(Transport::Datagram, |l| &l.messages)
    }

    /// Bytes read by every UDP listener.
    pub fn udp_bytes(&self) -> u64 {
        self.listener_sum(Transport::Datagram, |l| &l.bytes)
    }

    /// Frames read by every TCP and TLS listener.
    pub fn tcp_frames(&self) -> u64 {
        self.listener_sum(Transport::Stream, |l| &l.messages)
    }

    /// Bytes read by every TCP and TLS listener.
    pub fn tcp_bytes(&self) -> u64 {
        self.listener_sum(Transport::Stream, |l| &l.bytes)
    }

    /// Connections accepted by every TCP and TLS listener.
    pub fn connections_accepted(&self) -> u64 {
        self.listener_sum(Transport::Stream, |l| &l.connections_accepted)
    }

    /// Connections open now on every TCP and TLS listener.
    pub fn connections_active(&self) -> u64 {
        self.listener_sum(Transport::Stream, |l| &l.connections_active)
    }

    /// Connections refused by every TCP and TLS listener.
    pub fn connections_refused(&self) -> u64 {
        self.listener_sum(Transport::Stream, |l| &l.connections_refused)
    }

    /// Problems of every kind.
    pub fn problems_total(&self) -> u64 {
        self.problems.iter().map(Metrics::get).sum()
    }

    /// Rows of both tables.
    pub fn rows_total(&self) -> u64 {
        Metrics::get(&self.rows_cef) + Metrics::get(&self.rows_syslog)
    }

    /// How long the oldest chunk has waited in the spool.
    pub fn spool_oldest_age(&self) -> Duration {
        let written = Metrics::get(&self.spool_oldest_chunk_unix_ms);
        if written == 0 {
            return Duration::ZERO;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        Duration::from_millis(now.saturating_sub(written))
    }

    /// [`Metrics::spool_oldest_age`] in whole seconds.
    pub fn spool_oldest_chunk_age_seconds(&self) -> u64 {
        self.spool_oldest_age().as_secs()
    }

    /// One series per problem kind, in [`PROBLEM_KINDS`] order (every kind, also at 0).
    pub(super) fn problems_by_kind(&self) -> Vec<Series> {
        PROBLEM_KINDS
            .iter()
            .zip(&self.problems)
            .map(|(kind, n)| Series {
                labels: vec![kind.name().to_string()],
                value: Metrics::get(n),
            })
            .collect()
    }

    /// One series per listener, labelled with its name.
    fn per_listener(&self, counter: fn(&ListenerCounters) -> &AtomicU64) -> Vec<Series> {
        self.listeners()
            .iter()
            .map(|l| Series {
                labels: vec![l.name.clone()],
                value: Metrics::get(counter(l)),
            })
            .collect()
    }

    pub(super) fn listener_messages(&self) -> Vec<Series> {
        self.per_listener(|l| &l.messages)
    }

    pub(super) fn listener_bytes(&self) -> Vec<Series> {
        self.per_listener(|l| &l.bytes)
    }

    pub(super) fn listener_connections_accepted(&self) -> Vec<Series> {
        self.per_listener(|l| &l.connections_accepted)
    }

    pub(super) fn listener_connections_refused(&self) -> Vec<Series> {
        self.per_listener(|l| &l.connections_refused)
    }

    pub(super) fn listener_connections_active(&self) -> Vec<Series> {
        self.per_listener(|l| &l.connections_active)
    }

    /// One series per output, labelled with its name.
    fn per_output(&self, counter: fn(&OutputCounters) -> &AtomicU64) -> Vec<Series> {
        self.outputs()
            .iter()
            .map(|o| Series {
                labels: vec![o.name.clone()],
                value: Metrics::get(counter(o)),
            })
            .collect()
    }

    pub(super) fn output_rows_kept(&self) -> Vec<Series> {
        self.per_output(|o| &o.rows_kept)
    }

    pub(super) fn output_rows_filtered(&self) -> Vec<Series> {
        self.per_output(|o| &o.rows_filtered)
    }

    pub(super) fn output_bytes_not_sent(&self) -> Vec<Series> {
        self.per_output(|o| &o.bytes_not_sent)
    }

    pub(super) fn route_rows_by_outcome(&self) -> Vec<Series> {
        self.route_rows()
            .into_iter()
            .map(|(route, outcome, n)| Series {
                labels: vec![route, outcome.to_string()],
                value: n,
            })
            .collect()
    }

    pub(super) fn route_stopped_series(&self) -> Vec<Series> {
        self.stopped_routes()
            .into_iter()
            .map(|route| Series {
                labels: vec![route],
                value: 1,
            })
            .collect()
    }

    pub(super) fn response_series(&self) -> Vec<Series> {
        self.responses()
            .into_iter()
            .map(|(k, n)| Series {
                labels: vec![k.output, k.route, k.status.to_string(), k.error_code],
                value: n,
            })
            .collect()
    }
}
