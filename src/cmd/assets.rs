//! `cefgate assets` (hidden): writes the man page (cefgate.1) and the bash, zsh and fish
//! completions into a folder for packages. They come from the same clap definition the
//! binary parses with, so they cannot drift from the real flags.

use std::io;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Why the files were not all written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", folder.display())]
    Folder { folder: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] io::Error),
}

pub fn execute(args: &Args) -> Result<(), Error> {
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(|source| Error::Folder {
        folder: out.clone(),
        source,
    })?;
    let command = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(out.join("cefgate.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "cefgate", out)?;
    }
    println!(
        "wrote cefgate.1 and completions for bash, zsh and fish to {}",
        out.display()
    );
    Ok(())
}
