//! Monitor: what an operator watches while `run` runs. `[metrics] address` serves
//! `/metrics` (Prometheus text format, encoded by prometheus-client), `/health` (the process
//! answers) and `/ready` (listeners bound, no output stopped or full); every
//! `[metrics] summary_interval_secs` one line at info level says what moved. The HTTP
//! server, its connection cap, timeouts and bearer token, is in [`endpoint`] (re-exported
//! here).
//!
//! Everything is read from [`Metrics`] when asked: the pipeline only bumps atomics, and the
//! cost of a scrape is paid by the scrape.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::listen::FrameBatch;
use crate::metrics::{Kind, Metrics};
use crate::record::PROBLEM_KINDS;

pub mod config;
mod endpoint;
pub use endpoint::{Access, HEADER_READ_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, serve};

/// What the monitor reads: the counters, the memory budget and the decode queue.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub metrics: Arc<Metrics>,
    pub budget: Arc<MemoryBudget>,
    /// A receiving end of the decode queue, only for its length.
    pub queue: flume::Receiver<FrameBatch>,
}

impl Monitor {
    /// `Ok` when cefgate takes and delivers data; otherwise every reason it does not.
    pub fn ready(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if !self
            .metrics
            .listeners_bound
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            reasons.push("listeners are not bound (starting or shutting down)".to_string());
        }
        for route in self.metrics.stopped_routes() {
            reasons.push(format!(
                "route {route} is stopped (its rows go to the dead-letter file; see the log)"
            ));
        }
        if Metrics::get(&self.metrics.spool_full_now) > 0 {
            reasons.push("the spool is full: input is held back".to_string());
        }
        // A full disk is not a full spool: the writes fail and are retried, and meanwhile
        // no row is accepted, so a load balancer must send elsewhere.
        if Metrics::get(&self.metrics.spool_write_failing) > 0 {
            reasons.push(
                "the spool cannot write chunks (disk full or I/O errors; see the log): input is held back"
                    .to_string(),
            );
        }
        if self.budget.is_full() {
            reasons.push("the memory budget is used up: input is held back".to_string());
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn prometheus(&self) -> String {
        let mut registry = Registry::with_prefix("cefgate");
        registry.register_collector(Box::new(Exporter(self.clone())));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}

/// Adapts [`Monitor`] to prometheus-client: one descriptor per metric, values read now.
#[derive(Debug)]
struct Exporter(Monitor);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// One labelled family: `(labels, value)` per series.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: Kind,
    series: &[(Vec<(&str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    let metric_type = match kind {
        Kind::Counter => ConstCounter::new(0u64).metric_type(),
        Kind::Gauge => ConstGauge::new(0i64).metric_type(),
    };
    let mut m = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        let e = m.encode_family(labels)?;
        match kind {
            Kind::Counter => ConstCounter::new(*value).encode(e)?,
            Kind::Gauge => ConstGauge::new(*value as i64).encode(e)?,
        }
    }
    Ok(())
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let monitor = &self.0;
        let metrics = &monitor.metrics;
        for (name, kind, help, value) in metrics.scalars() {
            if name == "problems_total" {
                continue; // the `problems` family below carries it, per kind
            }
            // prometheus-client appends `_total` to counters.
            let name = name.strip_suffix("_total").unwrap_or(name);
            match kind {
                Kind::Counter => counter(&mut encoder, name, help, value)?,
                Kind::Gauge => gauge(&mut encoder, name, help, value as i64)?,
            }
        }
        gauge(
            &mut encoder,
            "memory_used_bytes",
            "Memory the budget holds now ([pipeline] max_memory_bytes is the limit)",
            monitor.budget.used() as i64,
        )?;
        gauge(
            &mut encoder,
            "memory_limit_bytes",
            "The memory budget ([pipeline] max_memory_bytes)",
            monitor.budget.max() as i64,
        )?;
        gauge(
            &mut encoder,
            "queue_depth",
            "Frame batches waiting for a decode thread",
            monitor.queue.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "ready",
            "1 when /ready answers 200",
            i64::from(monitor.ready().is_ok()),
        )?;
        let problems: Vec<_> = PROBLEM_KINDS
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    vec![("kind", k.name().to_string())],
                    Metrics::get(&metrics.problems[i]),
                )
            })
            .collect();
        family(
            &mut encoder,
            "problems",
            "Problems found while building rows, by kind",
            Kind::Counter,
            &problems,
        )?;
        let listeners = metrics.listeners();
        let per_listener = |f: fn(&crate::metrics::ListenerCounters) -> u64| {
            listeners
                .iter()
                .map(|l| (vec![("listener", l.name.clone())], f(l)))
                .collect::<Vec<_>>()
        };
        for (name, kind, help, read) in [
            (
                "listener_messages",
                Kind::Counter,
                "Messages (datagrams or frames) read, per listener",
                (|l| Metrics::get(&l.messages)) as fn(&crate::metrics::ListenerCounters) -> u64,
            ),
            (
                "listener_bytes",
                Kind::Counter,
                "Bytes read, per listener",
                |l| Metrics::get(&l.bytes),
            ),
            (
                "listener_connections_accepted",
                Kind::Counter,
                "TCP/TLS connections accepted, per listener",
                |l| Metrics::get(&l.connections_accepted),
            ),
            (
                "listener_connections_refused",
                Kind::Counter,
                "TCP/TLS connections refused, per listener",
                |l| Metrics::get(&l.connections_refused),
            ),
            (
                "listener_connections_active",
                Kind::Gauge,
                "TCP/TLS connections open now, per listener",
                |l| Metrics::get(&l.connections_active),
            ),
        ] {
            family(&mut encoder, name, help, kind, &per_listener(read))?;
        }
        let outputs = metrics.outputs();
        for (name, help, read) in [
            (
                "output_rows_kept",
                "Rows an output's where kept (every row without one), per output",
                (|o| Metrics::get(&o.rows_kept)) as fn(&crate::metrics::OutputCounters) -> u64,
            ),
            (
                "output_rows_filtered",
                "Rows an output's where left out, per output",
                |o| Metrics::get(&o.rows_filtered),
            ),
            (
                "output_bytes_not_sent",
                "JSON bytes an output did not send: rows left out and columns removed",
                |o| Metrics::get(&o.bytes_not_sent),
            ),
        ] {
            let series: Vec<_> = outputs
                .iter()
                .map(|o| (vec![("output", o.name.clone())], read(o)))
                .collect();
            family(&mut encoder, name, help, Kind::Counter, &series)?;
        }
        let routes: Vec<_> = metrics
            .route_rows()
            .into_iter()
            .map(|(route, outcome, n)| {
                (vec![("route", route), ("outcome", outcome.to_string())], n)
            })
            .collect();
        family(
            &mut encoder,
            "route_rows",
            "Rows per route (stream or log type) by outcome: delivered, dead_lettered, unrouted",
            Kind::Counter,
            &routes,
        )?;
        let stopped: Vec<_> = metrics
            .stopped_routes()
            .into_iter()
            .map(|r| (vec![("route", r)], 1))
            .collect();
        family(
            &mut encoder,
            "route_stopped",
            "1 for a route stopped by a configuration error",
            Kind::Gauge,
            &stopped,
        )?;
        let responses: Vec<_> = metrics
            .responses()
            .into_iter()
            .map(|(k, n)| {
                (
                    vec![
                        ("output", k.output.to_string()),
                        ("route", k.route),
                        ("status", k.status.to_string()),
                        ("error_code", k.error_code),
                    ],
                    n,
                )
            })
            .collect();
        family(
            &mut encoder,
            "http_responses",
            "HTTP answers from Azure per output, route, status and x-ms-error-code",
            Kind::Counter,
            &responses,
        )
    }
}

/// Logs one line every `interval` until `shutdown`: rates since the last line, what waits,
/// and what went wrong.
pub async fn summarise(monitor: Arc<Monitor>, interval: Duration, shutdown: CancellationToken) {
    let mut last = Snapshot::take(&monitor.metrics);
    let mut since = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = Snapshot::take(&monitor.metrics);
        tracing::info!("{}", summary_line(&monitor, &last, &now, since.elapsed()));
        last = now;
        since = Instant::now();
    }
}

/// The counters a summary line compares.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    received: u64,
    rows: u64,
    delivered: u64,
    dead_lettered: u64,
    dropped: u64,
    problems: u64,
    retries: u64,
}

impl Snapshot {
    fn take(m: &Metrics) -> Self {
        let g = Metrics::get;
        Snapshot {
            received: g(&m.udp_datagrams) + g(&m.tcp_frames),
            rows: g(&m.rows_cef) + g(&m.rows_syslog),
            delivered: g(&m.rows_delivered),
            dead_lettered: g(&m.rows_dead_lettered),
            dropped: g(&m.udp_dropped_queue_full)
                + g(&m.udp_dropped_memory_full)
                + g(&m.udp_dropped_kernel)
                + g(&m.oversize_dropped),
            problems: g(&m.rows_with_problems),
            retries: g(&m.requests_failed) + g(&m.requests_throttled) + g(&m.requests_unauthorized),
        }
    }
}

fn summary_line(monitor: &Monitor, a: &Snapshot, b: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / secs;
    let m = &monitor.metrics;
    let mut line = format!(
        "received {:.0}/s, rows {:.0}/s, delivered {:.0}/s; spool {} chunk(s) {} bytes, oldest {}s; queue {}; memory {} of {} bytes",
        rate(a.received, b.received),
        rate(a.rows, b.rows),
        rate(a.delivered, b.delivered),
        Metrics::get(&m.spool_chunks),
        Metrics::get(&m.spool_bytes),
        m.spool_oldest_age().as_secs(),
        monitor.queue.len(),
        monitor.budget.used(),
        monitor.budget.max(),
    );
    let since = [
        ("dropped", b.dropped - a.dropped),
        ("dead-lettered", b.dead_lettered - a.dead_lettered),
        ("rows with problems", b.problems - a.problems),
        ("retries", b.retries - a.retries),
    ];
    for (what, n) in since {
        if n > 0 {
            let _ = write!(line, "; {what} {n}");
        }
    }
    if let Err(reasons) = monitor.ready() {
        let _ = write!(line, "; NOT READY: {}", reasons.join("; "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor() -> Monitor {
        let (_tx, rx) = flume::bounded(4);
        Monitor {
            metrics: Arc::default(),
            budget: MemoryBudget::new(1 << 20),
            queue: rx,
        }
    }

    #[test]
    fn prometheus_text_has_types_totals_and_labels() {
        let m = monitor();
        Metrics::add(&m.metrics.rows_delivered, 7);
        m.metrics
            .listener("udp 127.0.0.1:5514")
            .messages
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        m.metrics
            .record_response("logs-ingestion", "Custom-X", 403, Some("OperationFailed"));
        let text = m.prometheus();
        assert!(
            text.contains("# TYPE cefgate_rows_delivered_total counter\n"),
            "{text}"
        );
        assert!(text.contains("cefgate_rows_delivered_total 7\n"), "{text}");
        assert!(
            text.contains("# TYPE cefgate_spool_bytes gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("cefgate_listener_messages_total{listener=\"udp 127.0.0.1:5514\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "cefgate_http_responses_total{output=\"logs-ingestion\",route=\"Custom-X\",status=\"403\",error_code=\"OperationFailed\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("cefgate_problems_total{kind=\"invalid-utf8\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP cefgate_rows_total Rows built"),
            "{text}"
        );
    }

    #[test]
    fn readiness_names_every_reason() {
        let m = monitor();
        assert_eq!(
            m.ready(),
            Err(vec![
                "listeners are not bound (starting or shutting down)".to_string()
            ])
        );
        m.metrics
            .listeners_bound
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(m.ready(), Ok(()));
        m.metrics.route_stopped("Custom-X");
        m.metrics
            .spool_full_now
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let reasons = m.ready().unwrap_err();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("Custom-X"));
    }

    #[test]
    fn a_spool_that_cannot_write_is_not_ready() {
        let m = monitor();
        m.metrics
            .listeners_bound
            .store(true, std::sync::atomic::Ordering::Relaxed);
        m.metrics
            .spool_write_failing
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let reasons = m.ready().unwrap_err();
        assert!(reasons[0].contains("cannot write"), "{reasons:?}");
        m.metrics
            .spool_write_failing
            .store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(m.ready(), Ok(()));
    }

    #[test]
    fn the_summary_line_gives_rates_and_only_nonzero_troubles() {
        let m = monitor();
        m.metrics
            .listeners_bound
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let a = Snapshot::take(&m.metrics);
        Metrics::add(&m.metrics.tcp_frames, 600);
        Metrics::add(&m.metrics.rows_dead_lettered, 2);
        let b = Snapshot::take(&m.metrics);
        let line = summary_line(&m, &a, &b, Duration::from_secs(60));
        assert!(line.starts_with("received 10/s, rows 0/s"), "{line}");
        assert!(line.contains("dead-lettered 2"), "{line}");
        assert!(!line.contains("dropped"), "{line}");
        assert!(!line.contains("NOT READY"), "{line}");
    }
}
