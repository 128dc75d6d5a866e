//! `[record]`, `[pipeline]` and `[log]`: their raw schemas, defaults and checks. `[record]`
//! stays here because `src/record/` is not edited in this change; `[pipeline]` is read by
//! `run`, `[log]` by the command line.

use serde::Deserialize;
use toml::Spanned;

use crate::decode::time::SenderZone;
use crate::record::{RecordSettings, TimeSource};
use crate::settings::{ConfigProblem, Locator, in_range, zone};

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

impl RecordConfig {
    /// How rows are built, with the `TimeGenerated` sources already resolved.
    pub fn settings(&self, time_generated: Vec<TimeSource>) -> RecordSettings {
        let collector_host = match &self.collector_host {
            Some(host) => host.clone(),
            None => RecordSettings::default().collector_host,
        };
        RecordSettings {
            collector_host,
            time_generated,
            event_id: self.event_id,
            keep_structured_data: self.keep_structured_data,
        }
    }

    /// The `TimeGenerated` sources (default: received) and the default zone; each name or
    /// zone that is wrong is a problem at its place.
    pub fn resolve(
        &self,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
    ) -> (Vec<TimeSource>, SenderZone) {
        let mut time_generated = Vec::new();
        for name in &self.time_generated {
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
        let zone = match &self.timezone {
            None => SenderZone::default(),
            Some(z) => zone(z, at, problems),
        };
        (time_generated, zone)
    }
}

impl PipelineConfig {
    /// Reports every value out of its range, at its key in the `[pipeline]` table.
    pub fn check(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        let pipeline = at.section("pipeline");
        let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
            in_range(at, problems, pipeline.clone(), key, value, lo, hi)
        };
        range("workers", self.workers as u64, 0, 256);
        range("queue_batches", self.queue_batches as u64, 1, 65_536);
        range(
            "shutdown_timeout_secs",
            self.shutdown_timeout_secs,
            0,
            86_400,
        );
        range(
            "max_memory_bytes",
            self.max_memory_bytes as u64,
            4 << 20,
            1 << 40,
        );
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

impl LogConfig {
    /// A `level` that is neither a level nor a filter is a problem at its value.
    pub fn check(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        if let Some(level) = &self.level
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
    }
}

mod defaults {
    pub fn queue_batches() -> usize {
        256
    }
    pub fn shutdown_timeout_secs() -> u64 {
        30
    }
    pub fn max_memory_bytes() -> usize {
        64 * 1024 * 1024
    }
}
