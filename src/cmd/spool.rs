//! `cefgate spool drain`: delivers what a stopped instance left in its spool (a pod scaled
//! away, a host retired) through the configured outputs, without receiving anything, then
//! exits: 0 only when the spool is empty afterwards, so that a script knows the folder can
//! go.

use std::path::PathBuf;
use std::time::Duration;

use cefgate::buffer::BufferSettings;

use super::{InvalidConfig, load};

#[derive(clap::Subcommand)]
pub enum Action {
    /// Deliver what a stopped instance left in its spool (a pod scaled away, a host
    /// retired), then exit: 0 when the spool is empty afterwards.
    Drain {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Give up after this long; what is undelivered stays in the spool.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
}

/// Why the spool is not empty.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    #[error("the configuration has no [spool]: nothing to drain")]
    NoSpool,
    #[error(transparent)]
    Drain(#[from] cefgate::run::RunError),
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
    #[error("{0} chunk(s) are still in the spool: run drain again once the output is reachable")]
    Left(usize),
}

pub fn execute(action: Action) -> Result<(), Error> {
    let Action::Drain {
        config,
        timeout_secs,
    } = action;
    let (_, resolved) = load(Some(&config))?;
    if !resolved
        .outputs
        .iter()
        .any(|p| matches!(p.buffer, BufferSettings::Spool(_)))
    {
        return Err(Error::NoSpool);
    }
    let runtime = super::Runtime::new()?;
    let s = cefgate::run::drain(&runtime, &resolved, Duration::from_secs(timeout_secs))?;
    drop(runtime);
    println!(
        "drained {} chunk(s) with {} row(s): {} delivered, {} dead-lettered; {} chunk(s) left",
        s.chunks, s.rows, s.delivered, s.dead_lettered, s.left
    );
    if s.left > 0 {
        return Err(Error::Left(s.left));
    }
    Ok(())
}
