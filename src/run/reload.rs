//! SIGHUP: the configuration file is read again and, when valid, applied to the running
//! listeners and outputs; what shapes the pipeline itself waits for the next start.

use std::path::PathBuf;

use super::listeners::Listeners;
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
    /// The file as last applied: which sections changed, and which changes wait for a start.
    pub(super) config: Config,
    /// What runs, resolved from `config` (secrets read, certificates loaded): a reload
    /// compares these, so a rotated secret or a renewed certificate behind an unchanged
    /// file is a change.
    pub(super) resolved: Resolved,
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
        if config.metrics != self.config.metrics
            || resolved.metrics_bearer_token != self.resolved.metrics_bearer_token
        {
            later.push("[metrics]");
        }
        if config.log != self.config.log {
            later.push("[log]");
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
        let wanted: Vec<&ListenerSettings> = resolved.listeners.iter().collect();
        let (keep, mut gone): (Vec<_>, Vec<_>) = std::mem::take(&mut listeners.running)
            .into_iter()
            .partition(|r| wanted.contains(&&r.settings));
        listeners.running = keep;
        let mut failed = false;
        let mut handovers = Vec::new();
        for settings in &wanted {
            if listeners.running.iter().any(|r| r.settings == **settings) {
                continue;
            }
            if let Some(i) = gone
                .iter()
                .position(|r| r.protocol == settings.protocol && r.address == settings.address)
            {
                handovers.push((gone.remove(i), *settings));
            }
        }
        for l in gone {
            listeners.stop(l).await;
        }
        for (old, settings) in handovers {
            match listeners.replace(old, settings).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    failed = true;
                    tracing::error!("SIGHUP: {e}");
                }
            }
        }
        for settings in wanted {
            if listeners.running.iter().any(|r| r.settings == *settings) {
                continue;
            }
            match listeners.start(settings, None).await {
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
            let before = self.resolved.outputs.iter().find(|p| p.name == plan.name);
            let changed = before.is_none_or(|b| b.settings != plan.settings);
            let same_text = old_names
                .iter()
                .position(|n| *n == plan.name)
                .and_then(|at| self.config.output.get(at))
                .is_some_and(|b| *b == config.output[i]);
            if changed && same_text {
                tracing::info!("SIGHUP: output {}: a secret file changed", plan.name);
            }
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
        self.config = config;
        self.resolved = resolved;
    }
}
