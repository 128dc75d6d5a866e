//! `cefgate check`: validates a configuration file and reports every problem with its
//! location, so that a change can be tried before the service reloads it. With `--live` it
//! also tries each output (a token, an empty batch to every route) and says what to fix when
//! Azure refuses, which a file alone cannot show.

use std::path::{Path, PathBuf};

use super::{InvalidConfig, load};

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(value_name = "FILE", required_unless_present = "config")]
    file: Option<PathBuf>,
    /// The same, as an option.
    #[arg(long = "config", value_name = "FILE", conflicts_with = "file")]
    config: Option<PathBuf>,
    /// Also try the output: get a token and post an empty batch to every route, and say
    /// what to fix when Azure refuses.
    #[arg(long)]
    live: bool,
}

/// Why the file is not fit to run with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// An output could not be tried at all (no client, no credential).
    #[error("{0}")]
    Probe(String),
    #[error("{0} route(s) failed the live check (see above)")]
    RoutesFailed(usize),
    #[error(transparent)]
    Runtime(#[from] super::RuntimeError),
}

pub fn execute(args: Args) -> Result<(), Error> {
    let path = args.file.or(args.config).expect("clap requires one");
    check(&path, args.live)
}

fn check(path: &Path, live: bool) -> Result<(), Error> {
    let (config, resolved) = load(Some(path))?;
    for warning in &resolved.warnings {
        eprintln!("{warning}");
    }
    println!(
        "{}: valid ({} listener{})",
        path.display(),
        config.listener.len(),
        if config.listener.len() == 1 { "" } else { "s" }
    );
    if !live {
        return Ok(());
    }
    let runtime = super::Runtime::new()?;
    let several = resolved.outputs.len() > 1;
    let mut failed = 0;
    let mut tried = 0;
    for plan in &resolved.outputs {
        let prefix = if several {
            format!("{}: ", plan.name)
        } else {
            String::new()
        };
        let answers = cefgate::sink::probe(&runtime, &plan.settings).map_err(Error::Probe)?;
        tried += answers.len();
        for (route, answer) in &answers {
            match answer {
                Ok(note) => println!("{prefix}{route}: ok{note}"),
                Err(what) => {
                    failed += 1;
                    println!("{prefix}{route}: FAILED: {what}");
                }
            }
        }
    }
    if tried == 0 {
        println!("no route is on: nothing to try");
    }
    match failed {
        0 => Ok(()),
        n => Err(Error::RoutesFailed(n)),
    }
}
