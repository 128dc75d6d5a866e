//! The `cefgate` command line: parses the arguments, starts logging and runs one command
//! from [`cmd`] (one module per command). A command's error is printed here, once, as
//! `cefgate: ...`, with exit status 1; clap's own usage errors keep its exit status 2.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

use cmd::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = cli.state_dir {
        cefgate::config::set_state_folder(dir);
    }
    // `run` sets up logging once its configuration (with `[log] level`) is read.
    if !matches!(cli.command, Command::Run(_)) {
        cmd::init_logging(cli.log_format, None);
    }
    match cli.command.execute(cli.log_format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cefgate: {e}");
            ExitCode::FAILURE
        }
    }
}
