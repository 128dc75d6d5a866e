//! The commands of the `cefgate` binary: the clap definition every command is parsed with
//! (also the source of the man page and completions, see [`assets`]), and one module per
//! command with its arguments, what it does and its error.
//!
//! Each command returns a typed error; `main` prints it once as `cefgate: ...` and exits
//! with status 1. Values the configuration takes too (`convert --timezone`,
//! `--time-generated`, `--where`) reach the command as text and are read with the library
//! type's `FromStr`, the parser and message the configuration uses: as a clap value parser
//! they would be usage errors instead (clap's wording, status 2).

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use cefgate::config::{Config, ConfigError, Resolved};

mod assets;
mod check;
mod convert;
mod dcr_template;
mod dlq;
#[cfg(feature = "emulator")]
mod emulate;
mod replay;
mod run;
mod spool;

#[derive(Parser)]
#[command(
    name = "cefgate",
    version,
    about = "Syslog/CEF receiver for Microsoft Sentinel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines look on stderr: text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Folder for files cefgate makes itself (the dead-letter file when no spool or path is
    /// configured). Default: $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/cefgate,
    /// ~/.local/state/cefgate, /var/lib/cefgate.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Receive syslog/CEF and write rows until SIGTERM or SIGINT.
    Run(run::Args),
    /// Validate a configuration file and report every problem with its location.
    Check(check::Args),
    /// Turn captured messages (one per line) into the JSON rows cefgate would post.
    Convert(convert::Args),
    /// Send captured messages (text, pcap or pcapng) to a syslog target.
    Replay(replay::Args),
    /// Run a local workspace that answers like Azure (both ingestion APIs, token endpoints).
    #[cfg(feature = "emulator")]
    Emulate(emulate::Args),
    /// Work on a spool without receiving anything.
    #[command(subcommand)]
    Spool(spool::Action),
    /// Inspect or resend the rows the service refused for good (the dead-letter queue).
    #[command(subcommand)]
    Dlq(dlq::Action),
    /// Write the man page (cefgate.1) and shell completions (bash, zsh, fish) into a folder,
    /// for packages.
    #[command(hide = true)]
    Assets(assets::Args),
    /// Print the ARM template of a data collection rule for the logs-ingestion output.
    DcrTemplate(dcr_template::Args),
}

/// Why a command failed: the failing command's own error, printed as it says.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error(transparent)]
    Run(#[from] run::Error),
    #[error(transparent)]
    Check(#[from] check::Error),
    #[error(transparent)]
    Convert(#[from] convert::Error),
    #[error(transparent)]
    Replay(#[from] replay::Error),
    #[cfg(feature = "emulator")]
    #[error(transparent)]
    Emulate(#[from] emulate::Error),
    #[error(transparent)]
    Spool(#[from] spool::Error),
    #[error(transparent)]
    Dlq(#[from] dlq::Error),
    #[error(transparent)]
    Assets(#[from] assets::Error),
}

impl Command {
    /// Runs the command. Logging is started already, except for `run`, which starts it
    /// with `format` once its configuration (with `[log] level`) is read.
    pub fn execute(self, format: LogFormat) -> Result<(), CmdError> {
        match self {
            Command::Run(args) => run::execute(args, format)?,
            Command::Check(args) => check::execute(args)?,
            Command::Convert(args) => convert::execute(args)?,
            Command::Replay(args) => replay::execute(args)?,
            #[cfg(feature = "emulator")]
            Command::Emulate(args) => emulate::execute(args)?,
            Command::Spool(action) => spool::execute(action)?,
            Command::Dlq(action) => dlq::execute(action)?,
            Command::Assets(args) => assets::execute(&args)?,
            Command::DcrTemplate(args) => dcr_template::execute(&args),
        }
        Ok(())
    }
}

/// The process's one tokio runtime, for the commands that do I/O (`run`, `check --live`,
/// `spool drain`, `dlq replay`): built here, lent to the library, and shut down here, so
/// that nothing the library starts outlives the command by more than a moment.
pub struct Runtime(Option<tokio::runtime::Runtime>);

/// The runtime could not start (no threads, no epoll).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the runtime: {0}")]
pub struct RuntimeError(#[source] io::Error);

impl Runtime {
    pub fn new() -> Result<Self, RuntimeError> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("cefgate-io")
            .build()
            .map(|r| Self(Some(r)))
            .map_err(RuntimeError)
    }
}

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Runtime {
    /// Tasks still running (a connection being read, a request in flight after the
    /// deadline) get a moment, not a wait for ever.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        }
    }
}

/// Logs go to stderr (stdout may carry rows). The level is `RUST_LOG` when set, else
/// `[log] level`, else info.
pub fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A configuration file that cannot be used, with every problem and where it is.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{0}")]
pub struct InvalidConfig(#[from] pub ConfigError);

/// The checked configuration in `config`, or without one the built-in default (UDP and TCP
/// on 127.0.0.1:5514, rows to stdout).
fn load(config: Option<&Path>) -> Result<(Config, Resolved), InvalidConfig> {
    match config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::embedded()),
    }
}
