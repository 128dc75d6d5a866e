//! `cefgate dlq`: the rows the service refused for good (the dead-letter queue). `list`
//! counts them by route and error from the local file alone, so no secret is needed to see
//! why rows were refused; `replay` sends them again through the configured output once the
//! cause is fixed (`--dry-run` only says what it would send).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cefgate::config::Config;
use cefgate::dlq::{DlqError, Summary};

use super::{InvalidConfig, load};

#[derive(clap::Subcommand)]
pub enum Action {
    /// Count dead-lettered rows by route and error (reads only the local file: no secret
    /// needed).
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Send the dead-lettered rows again through the configured output.
    Replay {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Give up after this long; rows still undelivered go back to the queue.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
        /// Only say what would be sent (no secret needed, nothing sent or moved).
        #[arg(long)]
        dry_run: bool,
    },
}

/// Why the queue could not be read or resent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    #[error(transparent)]
    Dlq(#[from] DlqError),
    #[error("dlq replay needs a logs-ingestion or data-collector output")]
    NoAzureOutput,
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
}

pub fn execute(action: Action) -> Result<(), Error> {
    match action {
        Action::List { config } => list(&config),
        Action::Replay {
            config,
            timeout_secs,
            dry_run: true,
        } => dry_run(&config, timeout_secs),
        Action::Replay {
            config,
            timeout_secs,
            dry_run: false,
        } => replay(&config, timeout_secs),
    }
}

/// Reads the dead-letter file of each output in turn (without checking secrets) and shows
/// it before reading the next.
fn each_file(config: &Path, mut show: impl FnMut(&Path, &Summary)) -> Result<(), Error> {
    let config = Config::load_unchecked(config).map_err(InvalidConfig)?;
    for i in 0..config.output.len() {
        let path = config.dead_letter_path(i);
        show(&path, &cefgate::dlq::list(&path)?);
    }
    Ok(())
}

fn print_causes(s: &Summary) {
    for ((route, error), n) in &s.by_cause {
        println!("{n:>8}  {route}  {error}");
    }
}

fn list(config: &Path) -> Result<(), Error> {
    each_file(config, |path, s| {
        println!("{}: {} dead-lettered row(s)", path.display(), s.entries);
        if let (Some(o), Some(n)) = (&s.oldest, &s.newest) {
            println!("from {o} to {n}");
        }
        print_causes(s);
        if !s.unreadable.is_empty() {
            println!("unreadable lines: {:?}", s.unreadable);
        }
        s.details().iter().for_each(|l| println!("{l}"));
    })
}

fn dry_run(config: &Path, timeout_secs: u64) -> Result<(), Error> {
    each_file(config, |path, s| {
        println!(
            "would send {} row(s) from {} (waiting up to {timeout_secs} s); nothing was sent",
            s.sendable(),
            path.display()
        );
        print_causes(s);
        s.details().iter().for_each(|l| println!("{l}"));
    })
}

fn replay(config: &Path, timeout_secs: u64) -> Result<(), Error> {
    let (_, resolved) = load(Some(config))?;
    let azure: Vec<_> = resolved
        .outputs
        .iter()
        .filter(|p| p.settings.destination.is_azure())
        .collect();
    if azure.is_empty() {
        return Err(Error::NoAzureOutput);
    }
    let runtime = super::Runtime::new()?;
    for plan in azure {
        let o = cefgate::dlq::replay(&runtime, &plan.settings, Duration::from_secs(timeout_secs))?;
        println!(
            "{}: replayed {} row(s): {} delivered, {} dead-lettered again",
            plan.name, o.rows, o.delivered, o.dead_lettered_again
        );
        o.details().iter().for_each(|l| println!("{l}"));
    }
    Ok(())
}
