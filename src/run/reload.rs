//! SIGHUP: the configuration file is read again and, when valid, applied to the running
//! listeners and outputs; what shapes the pipeline itself waits for the next start.

use std::path::PathBuf;

use super::listeners::{Listeners, fingerprint};
use super::outputs::Outputs;
use crate::config::{Config, Resolved};
use crate::listen::ListenerSettings;
use crate::sink;

/// What SIGHUP does: reads the configuration file again and, when it is valid, recreates
/// the listeners whose settings changed (others keep their connections) and the output when
/// its settings changed or it writes a file (so that logrotate's HUP reopens it). A new
/// output takes the next batches at once; the old one settles those it holds. Nothing read
/// is dropped: a stopped listener hands on every complete frame first. An invalid file is
/// reported and the running configuration stays. Sections that shape the pipeline itself
/// (`[pipeline]`, `[batch]`, `[record]`, `[spool]`, `[metrics]`, `[log]`) take effect at
/// the next start, which the log says.
pub(super) struct Reload {
    pub(super) source: Option<PathBuf>,
    pub(super) config: Config,
    pub(super) resolved: Resolved,
    /// A digest of each output's secret files as last read, by output name: a rotated
    /// secret (same path, new contents) is a change, which rebuilds that output.
    pub(super) secrets: Vec<(String, u64)>,
}

/// A digest of the files an output reads secrets from (client secret, shared key, client
/// certificate and key). Only compared, never shown or logged.
fn secret_files_digest(output: &crate::config::OutputConfig) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for file in [
        &output.client_secret_file,
        &output.shared_key_file,
        &output.client_certificate_file,
        &output.client_key_file,
    ] {
        match file.as_ref().map(|f| std::fs::read(f.get_ref())) {
            Some(Ok(bytes)) => hasher.update(&bytes),
            Some(Err(_)) => hasher.update(b"\0unreadable"),
            None => hasher.update(b"\0none"),
        }
    }
    hasher.digest()
}

pub(super) fn secrets_of(config: &Config) -> Vec<(String, u64)> {
    config
        .output_names()
        .into_iter()
        .zip(&config.output)
        .map(|(name, o)| (name, secret_files_digest(o.get_ref())))
        .collect()
}

impl Reload {
    pub(super) async fn apply(&mut self, listeners: &mut Listeners, outputs: &mut [Outputs]) {
        let Some(path) = &self.source else {
            tracing::warn!(
                "SIGHUP: running on the embedded default, there is no configuration file to read again"
            );
            return;
        };
        let (config, resolved) = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: {} is not valid; the running configuration stays:\n{e}",
                    path.display()
                );
                return;
            }
        };
        tracing::info!("SIGHUP: reloading {}", path.display());
        let mut later = Vec::new();
        if config.pipeline != self.config.pipeline {
            later.push("[pipeline]");
        }
        if config.batch != self.config.batch {
            later.push("[batch]");
        }
        if config.record != self.config.record {
            later.push("[record]");
        }
        if config.spool != self.config.spool {
            later.push("[spool]");
        }
        if config.metrics != self.config.metrics {
            later.push("[metrics]");
        }
        if !later.is_empty() {
            tracing::warn!(
                "SIGHUP: changes to {} take effect at the next start",
                later.join(", ")
            );
        }
        // Listeners: keep the unchanged; one on the same protocol and address with other
        // settings hands its socket to its successor (open connections go on); stop the
        // rest first (a recreated one may want the same address), then start the new.
        let wanted: Vec<(String, &ListenerSettings)> = resolved
            .listeners
            .iter()
            .map(|l| (fingerprint(l), l))
            .collect();
        let (keep, mut gone): (Vec<_>, Vec<_>) = std::mem::take(&mut listeners.running)
            .into_iter()
            .partition(|r| wanted.iter().any(|(f, _)| *f == r.fingerprint));
        listeners.running = keep;
        let mut failed = false;
        let mut handovers = Vec::new();
        for (f, settings) in &wanted {
            if listeners.running.iter().any(|r| r.fingerprint == *f) {
                continue;
            }
            if let Some(i) = gone
                .iter()
                .position(|r| r.protocol == settings.protocol && r.address == settings.address)
            {
                handovers.push((gone.remove(i), f.clone(), *settings));
            }
        }
        for l in gone {
            listeners.stop(l).await;
        }
        for (old, f, settings) in handovers {
            match listeners.replace(old, settings, f).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    failed = true;
                    tracing::error!("SIGHUP: {e}");
                }
            }
        }
        for (f, settings) in wanted {
            if listeners.running.iter().any(|r| r.fingerprint == f) {
                continue;
            }
            match listeners.start(settings, f, None).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    failed = true;
                    tracing::error!("SIGHUP: {e}");
                }
            }
        }
        // Outputs: the same names in the same order can be rebuilt in place; adding,
        // removing or renaming one, or changing its `where` or `project_away`, changes the
        // decode stage, which takes a restart.
        let old_names = self.config.output_names();
        let new_names = config.output_names();
        let shape = |c: &Config| {
            c.output
                .iter()
                .map(|o| {
                    (
                        o.get_ref().predicate.clone(),
                        o.get_ref().project_away.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if old_names != new_names || shape(&config) != shape(&self.config) {
            tracing::warn!(
                "SIGHUP: outputs added, removed or renamed, or a `where` or `project_away` changed: that takes effect at the next start; the outputs' other settings are applied now"
            );
        }
        for (i, plan) in resolved.outputs.iter().enumerate() {
            let Some(output) = outputs.iter_mut().find(|o| o.name == plan.name) else {
                continue;
            };
            let before = self.config.output.get(
                old_names
                    .iter()
                    .position(|n| *n == plan.name)
                    .unwrap_or(usize::MAX),
            );
            let rotated = self
                .secrets
                .iter()
                .find(|(n, _)| *n == plan.name)
                .is_none_or(|(_, d)| *d != secret_files_digest(config.output[i].get_ref()));
            if rotated && before.is_some_and(|b| *b == config.output[i]) {
                tracing::info!("SIGHUP: output {}: a secret file changed", plan.name);
            }
            let changed = rotated || before.is_none_or(|b| *b != config.output[i]);
            let file_output = matches!(plan.settings.destination, sink::Destination::File(_));
            if changed || file_output {
                match output.start(&plan.settings) {
                    Ok(()) => tracing::info!("SIGHUP: output {} was (re)opened", plan.name),
                    Err(e) => {
                        failed = true;
                        tracing::error!(
                            "SIGHUP: output {}: the new settings cannot start ({e}); the old ones keep running",
                            plan.name
                        );
                    }
                }
            }
        }
        tracing::info!(
            "SIGHUP: reload done{}; {} listener(s) running",
            if failed {
                " with errors (see above)"
            } else {
                ""
            },
            listeners.running.len()
        );
        self.secrets = secrets_of(&config);
        self.config = config;
        self.resolved = resolved;
    }
}
