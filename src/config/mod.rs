//! The configuration file (TOML) and its validation.
//!
//! The `[[listener]]`, `[output]`, `[batch]` and `[spool]` names are a contract other tools
//! read; keep them. Every problem is reported with the file, line and column it comes from,
//! all at once, so `cefgate check` shows a user everything to fix in one go.

//!
//! This is the shell: it reads the file, hands each section to the settings module of its
//! component (`listen::config`, `sink::config`, ...), collects every problem in file order, and gathers
//! the typed settings into [`Resolved`]. What the problems and locations are lives in
//! [`crate::settings`], which the components use too.

mod paths;
mod sections;
mod spool;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::Secret;
pub use crate::batch::config::BatchConfig;
use crate::buffer::BufferSettings;
use crate::decode::time::SenderZone;
pub use crate::frame::{Framing, Oversize};
use crate::listen::ListenerSettings;
pub use crate::listen::Protocol;
use crate::listen::config::overlaps;
pub use crate::listen::config::{ListenerConfig, MAX_MESSAGE_BYTES};
pub use crate::monitor::config::MetricsConfig;
use crate::record::TimeSource;
pub use crate::settings::ConfigProblem;
use crate::settings::{Locator, open_to_others};
pub use crate::settings::{set_state_folder, state_folder};
use crate::sink::OutputSettings;
pub use crate::sink::config::{CredentialKind, OutputConfig, OutputKind};
use crate::spool::SpoolSettings;
pub use sections::{LogConfig, PipelineConfig, RecordConfig};
pub use spool::SpoolConfig;

/// The configuration `cefgate run` uses without `--config`: UDP and TCP on 127.0.0.1:5514,
/// rows printed to stdout.
pub const EMBEDDED_DEFAULT: &str = r#"
[[listener]]
protocol = "udp"
address  = "127.0.0.1:5514"

[[listener]]
protocol = "tcp"
address  = "127.0.0.1:5514"
framing  = "auto"

[output]
type = "stdout"
"#;

#[derive(Debug, Clone)]
pub struct Config {
    pub listener: Vec<Spanned<ListenerConfig>>,
    /// `[output]` (one output) or `[[output]]` (several), in file order.
    pub output: Vec<Spanned<OutputConfig>>,
    pub batch: BatchConfig,
    pub record: RecordConfig,
    pub pipeline: PipelineConfig,
    /// The durable spool; without it, batches wait in memory only.
    pub spool: Option<Spanned<SpoolConfig>>,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

/// The file as written: `O` is one `[output]` table or an `[[output]]` array.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<O> {
    #[serde(default)]
    listener: Vec<Spanned<ListenerConfig>>,
    output: O,
    #[serde(default)]
    batch: BatchConfig,
    #[serde(default)]
    record: RecordConfig,
    #[serde(default)]
    pipeline: PipelineConfig,
    spool: Option<Spanned<SpoolConfig>>,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    log: LogConfig,
}

impl<O> RawConfig<O> {
    fn with_outputs(self, output: Vec<Spanned<OutputConfig>>) -> Config {
        Config {
            listener: self.listener,
            output,
            batch: self.batch,
            record: self.record,
            pipeline: self.pipeline,
            spool: self.spool,
            metrics: self.metrics,
            log: self.log,
        }
    }
}

/// A file's name (as problems give it) and text; one that cannot be read is a problem.
fn read_file(path: &Path) -> Result<(String, String), ConfigError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((name, text)),
        Err(e) => Err(ConfigError {
            problems: vec![ConfigProblem {
                file: name,
                line: 0,
                column: 0,
                message: format!("cannot read the configuration: {e}"),
            }],
        }),
    }
}

/// Reads the TOML into a [`Config`], taking `[output]` or `[[output]]`.
fn read_toml(text: &str) -> Result<Config, toml::de::Error> {
    let several = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|doc| doc.get("output").map(toml::Value::is_array))
        .unwrap_or(false);
    if several {
        let raw: RawConfig<Vec<Spanned<OutputConfig>>> = toml::from_str(text)?;
        let outputs = raw.output.clone();
        Ok(raw.with_outputs(outputs))
    } else {
        let raw: RawConfig<Spanned<OutputConfig>> = toml::from_str(text)?;
        let output = raw.output.clone();
        Ok(raw.with_outputs(vec![output]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// `name`, else the type: in metrics, logs and folder names.
    pub name: String,
    pub settings: OutputSettings,
    /// `where`: only rows it keeps go to this output.
    pub filter: Option<crate::filter::Predicate>,
    /// `project_away`: columns left out of this output's rows.
    pub project_away: crate::filter::ProjectAway,
    /// Memory, the spool, or (several outputs) the output's own spool subfolder.
    pub buffer: BufferSettings,
}

/// The settings a run needs, resolved from a valid config.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The zone for timestamps without one, unless a listener or sender has its own.
    pub zone: SenderZone,
    pub time_generated: Vec<TimeSource>,
    /// Every `[[listener]]`, checked, with its TLS settings read.
    pub listeners: Vec<ListenerSettings>,
    /// Every output, with its secret read, its filter compiled and its buffer.
    pub outputs: Vec<OutputPlan>,
    /// `[metrics] address`, when set.
    pub metrics_address: Option<SocketAddr>,
    /// `[metrics] summary_interval_secs`, unless 0.
    pub summary_interval: Option<Duration>,
    /// `[metrics] bearer_token_file`'s token, when set: every path but `/health` needs it.
    pub metrics_bearer_token: Option<Secret>,
    /// What is allowed but unwise (a key file others can read), with its place in the file:
    /// printed by `check`, logged by `run`.
    pub warnings: Vec<ConfigProblem>,
    /// `[pipeline]`: threads, queue, memory and the shutdown deadline.
    pub pipeline: sections::PipelineConfig,
    /// `[record]` with `time_generated` resolved: how rows are built.
    pub record: crate::record::RecordSettings,
    /// `[batch]`: when a batch is handed on.
    pub batch: crate::batch::BatchLimits,
}

impl Config {
    /// Each output's name: its `name`, else its type.
    pub fn output_names(&self) -> Vec<String> {
        self.output
            .iter()
            .map(|o| {
                let o = o.get_ref();
                o.name.as_ref().map_or_else(
                    || o.kind.get_ref().name().to_string(),
                    |n| n.get_ref().clone(),
                )
            })
            .collect()
    }

    /// Where output `index` keeps rows refused for good: its `dead_letter_path`, else
    /// `dead-letters.ndjson` in its spool folder, else in the state folder
    /// ([`state_folder`]); with several outputs the name says whose. Never the working
    /// directory, which may be `/` or a checkout. The file (and its folder) is made at the
    /// first dead letter.
    pub fn dead_letter_path(&self, index: usize) -> PathBuf {
        if let Some(p) = &self.output[index].get_ref().dead_letter_path {
            return p.get_ref().clone();
        }
        let several = self.output.len() > 1;
        let name = &self.output_names()[index];
        match &self.spool {
            Some(s) if several => s
                .get_ref()
                .path
                .get_ref()
                .join(name)
                .join("dead-letters.ndjson"),
            Some(s) => s.get_ref().path.get_ref().join("dead-letters.ndjson"),
            None if several => state_folder().join(format!("dead-letters-{name}.ndjson")),
            None => state_folder().join("dead-letters.ndjson"),
        }
    }

    /// Where output `index` waits for delivery: memory, the `[spool]` folder, or with
    /// several outputs its own subfolder (each with the spool's `max_bytes`).
    fn buffer_of(&self, index: usize) -> BufferSettings {
        match &self.spool {
            None => BufferSettings::Memory,
            Some(sc) => {
                let sc = sc.get_ref();
                let mut path = sc.path.get_ref().clone();
                if self.output.len() > 1 {
                    path.push(&self.output_names()[index]);
                }
                BufferSettings::Spool(SpoolSettings {
                    path,
                    max_bytes: sc.max_bytes,
                    fsync: sc.fsync,
                })
            }
        }
    }

    /// Parses and validates `text`; `file` names it in problems.
    pub fn parse(file: &str, text: &str) -> Result<(Config, Resolved), ConfigError> {
        let at = Locator { file, text };
        let config: Config = read_toml(text).map_err(|e| ConfigError {
            problems: vec![at.problem(e.span(), e.message().trim().to_string())],
        })?;
        let resolved = config.validate(&at)?;
        Ok((config, resolved))
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<(Config, Resolved), ConfigError> {
        let (name, text) = read_file(path)?;
        Self::parse(&name, &text)
    }

    /// Reads and parses a file without checking it or reading its secrets: enough to find
    /// local files (`cefgate dlq list`), never enough to run.
    pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
        let (name, text) = read_file(path)?;
        let at = Locator {
            file: &name,
            text: &text,
        };
        read_toml(&text).map_err(|e| ConfigError {
            problems: vec![at.problem(e.span(), e.message().trim().to_string())],
        })
    }

    /// The embedded default configuration.
    pub fn embedded() -> (Config, Resolved) {
        Self::parse("<embedded default>", EMBEDDED_DEFAULT).expect("the embedded default is valid")
    }

    fn validate(&self, at: &Locator<'_>) -> Result<Resolved, ConfigError> {
        let mut problems = Vec::new();
        if self.listener.is_empty() {
            problems.push(at.problem(None, "no [[listener]]: cefgate would receive nothing"));
        }
        let mut seen: Vec<(Protocol, SocketAddr)> = Vec::new();
        let mut listeners = Vec::new();
        for spanned in &self.listener {
            listeners.extend(spanned.get_ref().settings(
                spanned.span(),
                &mut seen,
                at,
                &mut problems,
            ));
        }
        let names = self.output_names();
        // Outputs whose own checks passed: their settings (secrets, PEM files) are read even
        // when another part of the file has a problem, so that one `check` reports them all.
        let mut checked = vec![false; self.output.len()];
        for (i, output) in self.output.iter().enumerate() {
            let before = problems.len();
            crate::sink::config::check(output, i, self.output.len() > 1, at, &mut problems);
            if names[..i].contains(&names[i]) {
                let span = output
                    .get_ref()
                    .name
                    .as_ref()
                    .map_or(output.span(), |n| n.span());
                problems.push(at.problem(
                    Some(span),
                    format!(
                        "another output is named {:?} too: give each output its own `name`",
                        names[i]
                    ),
                ));
            }
            checked[i] = problems.len() == before;
        }
        let mut plans = Vec::new();
        for (i, output) in self.output.iter().enumerate() {
            let o = output.get_ref();
            let before = problems.len();
            let (filter, project_away) = o.filters(at, &mut problems);
            if !checked[i] || problems.len() > before {
                continue;
            }
            match o.settings(self.dead_letter_path(i)) {
                Ok(settings) => plans.push(OutputPlan {
                    name: names[i].clone(),
                    settings,
                    filter,
                    project_away,
                    buffer: self.buffer_of(i),
                }),
                Err(e) => problems.push(at.problem(e.span.or(Some(output.span())), e.message)),
            }
        }
        if let Some(spool) = &self.spool {
            spool.get_ref().check(spool.span(), at, &mut problems);
        }
        self.batch.check(at, &mut problems);
        self.pipeline.check(at, &mut problems);
        let (time_generated, zone) = self.record.resolve(at, &mut problems);
        let metrics_address = self.metrics.address(at, &mut problems);
        if let (Some(m), Some(span)) = (metrics_address, &self.metrics.address) {
            for l in listeners.iter().filter(|l| l.protocol != Protocol::Udp) {
                if overlaps(m, l.address) {
                    problems.push(at.problem(
                        Some(span.span()),
                        format!(
                            "metrics address {m} takes the port of the {} listener on {}: give /metrics a port of its own (for example 9464)",
                            l.protocol, l.address
                        ),
                    ));
                }
            }
        }
        self.check_paths(at, &mut problems);
        self.metrics.check(at, &mut problems);
        self.log.check(at, &mut problems);
        let mut warnings = Vec::new();
        if let Some(spool) = &self.spool {
            spool
                .get_ref()
                .warnings(spool.span(), self.output.len(), at, &mut warnings);
        }
        let secret_files = self
            .listener
            .iter()
            .flat_map(|l| l.get_ref().secret_files())
            .chain(self.output.iter().flat_map(|o| o.get_ref().secret_files()));
        for l in &self.listener {
            l.get_ref().warnings(l.span(), at, &mut warnings);
        }
        for file in secret_files {
            if let Some(mode) = open_to_others(file.get_ref()) {
                warnings.push(at.problem(
                    Some(file.span()),
                    format!(
                        "warning: {} holds a secret that other users can read (mode {mode:04o}); \
                         chmod 600 it (or 640, group-owned by the service's group)",
                        file.get_ref().display()
                    ),
                ));
            }
        }
        let metrics_bearer_token =
            self.metrics
                .bearer_token(metrics_address, at, &mut problems, &mut warnings);
        match plans {
            plans if problems.is_empty() => Ok(Resolved {
                pipeline: self.pipeline.clone(),
                record: self.record.settings(time_generated.clone()),
                batch: self.batch.limits(),
                metrics_bearer_token,
                warnings,
                zone,
                time_generated,
                listeners,
                outputs: plans,
                metrics_address,
                summary_interval: (self.metrics.summary_interval_secs > 0)
                    .then(|| Duration::from_secs(self.metrics.summary_interval_secs)),
            }),
            _ => {
                // In file order, whatever order they were found in.
                problems.sort_by_key(|p| (p.line, p.column));
                Err(ConfigError { problems })
            }
        }
    }
}

#[cfg(test)]
mod reference_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_udp_and_tcp_on_5514_to_stdout() {
        let (config, _) = Config::embedded();
        let listeners: Vec<_> = config
            .listener
            .iter()
            .map(|l| {
                (
                    *l.get_ref().protocol.get_ref(),
                    l.get_ref().address.get_ref().clone(),
                )
            })
            .collect();
        assert_eq!(
            listeners,
            vec![
                (Protocol::Udp, "127.0.0.1:5514".to_string()),
                (Protocol::Tcp, "127.0.0.1:5514".to_string())
            ]
        );
        assert_eq!(
            *config.output[0].get_ref().kind.get_ref(),
            OutputKind::Stdout
        );
    }

    #[test]
    fn contract_shape_parses() {
        let text = r#"
[[listener]]
protocol = "udp"
address  = "0.0.0.0:514"

[[listener]]
protocol = "tcp"
address  = "0.0.0.0:514"
framing  = "octet-counting"
allow    = ["10.0.0.0/8", "192.0.2.1"]

[output]
type = "file"
path = "/tmp/rows.ndjson"

[batch]
max_rows  = 5000
max_bytes = 1048576
max_age_ms = 1000
"#;
        let (_, resolved) = Config::parse("test.toml", text).unwrap();
        let tcp = &resolved.listeners[1];
        assert_eq!(tcp.framing, Framing::OctetCounting);
        assert_eq!(resolved.listeners[0].framing, Framing::Auto);
        assert_eq!(tcp.allow.len(), 2);
        assert_eq!(resolved.time_generated, vec![TimeSource::Received]);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"[[listener]]
protocol = "tcp"
address  = "localhost"
allow    = ["10.0.0.0/33"]

[[listener]]
protocol = "tls"
address  = "127.0.0.1:6514"
cert     = "/nonexistent/cert.pem"

[output]
type = "stdout"

[record]
timezone = "Mars"
"#;
        let err = Config::parse("bad.toml", text).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.toml:3:12: address \"localhost\" is not IP:PORT"),
            "{text}"
        );
        assert!(
            text.contains("bad.toml:4:13: allow entry \"10.0.0.0/33\""),
            "{text}"
        );
        assert!(
            text.contains("bad.toml:9:12: cert file /nonexistent/cert.pem does not exist"),
            "{text}"
        );
        assert!(text.contains("a tls listener needs `key`"), "{text}");
        assert!(text.contains("bad.toml:15:12: timezone \"Mars\""), "{text}");
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn syntax_and_unknown_keys_are_located() {
        let err = Config::parse("x.toml", "[output]\ntype = \"stdout\"\nbogus = 1\n").unwrap_err();
        assert_eq!(err.problems[0].line, 3, "{err}");
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
        let err = Config::parse("x.toml", "[[listener]]\nprotocol = \"sctp\"\naddress = \"1.2.3.4:5\"\n[output]\ntype=\"stdout\"\n")
            .unwrap_err();
        assert_eq!(err.problems[0].line, 2, "{err}");
        assert!(err.to_string().contains("sctp"), "{err}");
    }
}
