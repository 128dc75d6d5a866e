//! `cefgate run`: the service. Reads the configuration (or takes the built-in default),
//! starts logging at its `[log] level`, then receives syslog/CEF and writes rows until
//! SIGTERM or SIGINT. The counters are printed however the run ends, because they say what
//! was read and where it went.

use std::path::PathBuf;
use std::sync::Arc;

use super::{InvalidConfig, LogFormat, init_logging, load};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML). Without it: UDP and TCP on 127.0.0.1:5514, rows to stdout.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Why `run` did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    #[error(transparent)]
    Run(#[from] cefgate::run::RunError),
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
}

pub fn execute(args: Args, format: LogFormat) -> Result<(), Error> {
    let loaded = load(args.config.as_deref());
    let level = loaded
        .as_ref()
        .ok()
        .and_then(|(c, _)| c.log.level.as_ref().map(|l| l.get_ref().clone()));
    init_logging(format, level.as_deref());
    let (config, resolved) = loaded?;
    for warning in &resolved.warnings {
        tracing::warn!("{warning}");
    }
    let metrics = Arc::new(cefgate::metrics::Metrics::default());
    let runtime = super::Runtime::new()?;
    let result = cefgate::run::run(&runtime, config, resolved, metrics.clone(), args.config);
    drop(runtime);
    eprint!("{}", metrics.report());
    Ok(result?)
}
