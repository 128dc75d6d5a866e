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
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::listen::FrameBatch;
use crate::metrics::{CATALOG, Descriptor, Kind, Live, Metrics, Value};

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

/// Adapts [`Monitor`] to prometheus-client: one descriptor per metric of [`CATALOG`] that
/// is `in_metrics`, in its order, values read now.
#[derive(Debug)]
struct Exporter(Monitor);

impl Exporter {
    /// A [`Live`] value: one the monitor holds, not [`Metrics`].
    fn live(&self, which: Live) -> u64 {
        let monitor = &self.0;
        match which {
            Live::MemoryUsed => monitor.budget.used() as u64,
            Live::MemoryLimit => monitor.budget.max() as u64,
            Live::QueueDepth => monitor.queue.len() as u64,
            Live::Ready => u64::from(monitor.ready().is_ok()),
        }
    }
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => ConstCounter::new(0u64).metric_type(),
        Kind::Gauge => ConstGauge::new(0i64).metric_type(),
    }
}

/// One value, encoded as `kind` says.
fn encode_value(encoder: MetricEncoder<'_>, kind: Kind, value: u64) -> Result<(), std::fmt::Error> {
    match kind {
        Kind::Counter => ConstCounter::new(value).encode(encoder),
        Kind::Gauge => ConstGauge::new(value as i64).encode(encoder),
    }
}

/// The `# HELP` and `# TYPE` lines of `metric`; its values are encoded into the answer.
fn describe<'a>(
    encoder: &'a mut DescriptorEncoder,
    metric: &Descriptor,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(
        metric.base_name(),
        metric.help,
        None,
        metric_type(metric.kind),
    )
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.0.metrics;
        for metric in CATALOG.iter().filter(|m| m.in_metrics) {
            match metric.value {
                Value::Scalar(read) => {
                    encode_value(describe(&mut encoder, metric)?, metric.kind, read(metrics))?
                }
                Value::Live(which) => encode_value(
                    describe(&mut encoder, metric)?,
                    metric.kind,
                    self.live(which),
                )?,
                Value::Family(read) => {
                    let series = read(metrics);
                    // A family with no series yet (no output answered) has no descriptor.
                    if series.is_empty() {
                        continue;
                    }
                    let mut family = describe(&mut encoder, metric)?;
                    for one in series {
                        debug_assert_eq!(one.labels.len(), metric.labels.len(), "{metric:?}");
                        let labels: Vec<(&str, String)> =
                            metric.labels.iter().copied().zip(one.labels).collect();
                        encode_value(family.encode_family(&labels)?, metric.kind, one.value)?;
                    }
                }
            }
        }
        Ok(())
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
            received: m.udp_datagrams() + m.tcp_frames(),
            rows: m.rows_total(),
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
    use crate::metrics::Transport;

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
            .listener("udp 127.0.0.1:5514", Transport::Datagram)
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

    /// A monitor whose every family has a series, so that `/metrics` renders every metric.
    fn monitor_with_every_family() -> Monitor {
        let m = monitor();
        let metrics = &m.metrics;
        metrics.listener("udp 127.0.0.1:5514", Transport::Datagram);
        metrics.listener("tcp 127.0.0.1:5515", Transport::Stream);
        metrics.output("sentinel");
        metrics.record_response("logs-ingestion", "Custom-X", 200, None);
        metrics.add_route_rows("Custom-X", "delivered", 1);
        metrics.route_stopped("Custom-Y");
        m
    }

    /// `(name, type, help)` of every `# TYPE` in an exposition, and the name of every
    /// sample line.
    fn served(text: &str) -> (Vec<(String, String, String)>, Vec<String>) {
        let mut help = std::collections::BTreeMap::new();
        let mut families = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                help.insert(name.to_string(), text.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                let text = help.get(name).cloned().unwrap_or_default();
                families.push((name.to_string(), kind.to_string(), text));
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.push(line[..end].to_string());
            }
        }
        (families, samples)
    }

    #[test]
    fn metrics_reference_lists_every_metric_served() {
        let text = monitor_with_every_family().prometheus();
        let (families, samples) = served(&text);
        let reference = crate::metrics::reference::markdown();
        let listed: std::collections::BTreeMap<String, &crate::metrics::Descriptor> = CATALOG
            .iter()
            .filter(|d| d.in_metrics)
            .map(|d| (d.exposition_name(), d))
            .collect();
        for (name, kind, help) in &families {
            let Some(descriptor) = listed.get(name) else {
                panic!("/metrics serves {name}, which the metrics list does not have");
            };
            let listed_kind = match descriptor.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            assert_eq!(kind, listed_kind, "{name}");
            assert_eq!(help, descriptor.help, "{name}");
            assert!(
                reference.contains(&format!("| `{name}` |")),
                "{name} is not in docs/metrics.md"
            );
        }
        for sample in &samples {
            assert!(
                families.iter().any(|(name, _, _)| name == sample),
                "{sample} has no # TYPE line"
            );
        }
        let served: std::collections::BTreeSet<&String> =
            families.iter().map(|(name, _, _)| name).collect();
        for name in listed.keys() {
            assert!(served.contains(name), "{name} is listed but not served");
        }
    }

    #[test]
    fn the_report_prints_the_listed_names_with_totals_summed_over_listeners() {
        let m = monitor_with_every_family();
        let udp = m
            .metrics
            .listener("udp 127.0.0.1:5514", Transport::Datagram);
        let udp2 = m
            .metrics
            .listener("udp 127.0.0.1:5516", Transport::Datagram);
        let tcp = m.metrics.listener("tcp 127.0.0.1:5515", Transport::Stream);
        Metrics::add(&udp.messages, 2);
        Metrics::add(&udp2.messages, 3);
        Metrics::add(&tcp.messages, 7);
        Metrics::add(&tcp.connections_active, 1);
        let report = m.metrics.report();
        assert!(report.contains("cefgate_udp_datagrams 5\n"), "{report}");
        assert!(report.contains("cefgate_tcp_frames 7\n"), "{report}");
        assert!(
            report.contains("cefgate_connections_active 1\n"),
            "{report}"
        );
        let names: Vec<&str> = report
            .lines()
            .map(|l| l.split(['{', ' ']).next().unwrap_or(l))
            .collect();
        for name in &names {
            let name = name.strip_prefix("cefgate_").expect("prefixed");
            assert!(
                CATALOG.iter().any(|d| d.in_report && d.name == name),
                "the report prints {name}, which the list does not have"
            );
        }
        let text = m.prometheus();
        assert!(text.contains("cefgate_udp_datagrams_total 5\n"), "{text}");
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
        let tcp = m.metrics.listener("tcp 127.0.0.1:5515", Transport::Stream);
        Metrics::add(&tcp.messages, 600);
        Metrics::add(&m.metrics.rows_dead_lettered, 2);
        let b = Snapshot::take(&m.metrics);
        let line = summary_line(&m, &a, &b, Duration::from_secs(60));
        assert!(line.starts_with("received 10/s, rows 0/s"), "{line}");
        assert!(line.contains("dead-lettered 2"), "{line}");
        assert!(!line.contains("dropped"), "{line}");
        assert!(!line.contains("NOT READY"), "{line}");
    }
}
