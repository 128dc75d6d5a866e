//! The `cefgate` command line: parses arguments and calls into the library.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, Local, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use cefgate::config::{Config, Resolved};
use cefgate::convert::{ConvertSettings, ConvertSummary, convert_stream};
use cefgate::decode::time::parse_zone;
use cefgate::record::{RecordSettings, RowBuilder, TimeSource};

#[derive(Parser)]
#[command(
    name = "cefgate",
    version,
    about = "Syslog/CEF receiver for Microsoft Sentinel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive syslog/CEF and write rows until SIGTERM or SIGINT.
    Run {
        /// Configuration file (TOML). Without it: UDP and TCP on 127.0.0.1:5514, rows to stdout.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and report every problem with its location.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Turn captured messages (one per line) into the JSON rows cefgate would post.
    Convert(ConvertArgs),
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// Files to read, one raw message per line (LF or CRLF); standard input when none.
    files: Vec<PathBuf>,
    /// Pin the receive time (RFC 3339), so that output is reproducible.
    #[arg(long, value_name = "RFC3339")]
    received_at: Option<String>,
    /// Zone for timestamps that carry none: UTC, local, or an offset such as +01:00.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Where TimeGenerated comes from, first match wins: received, rt, end, start, syslog.
    #[arg(long, value_name = "LIST", default_value = "received")]
    time_generated: String,
    /// Name written to CollectorHostName (default: this machine's host name).
    #[arg(long)]
    collector_host: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(&config),
        Command::Convert(args) => convert(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cefgate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout may carry rows); `RUST_LOG` adjusts the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn load(config: Option<&PathBuf>) -> Result<(Config, Resolved), String> {
    match config {
        Some(path) => Config::load(path).map_err(|e| format!("invalid configuration:\n{e}")),
        None => Ok(Config::embedded()),
    }
}

fn check(path: &PathBuf) -> Result<(), String> {
    let (config, _) = load(Some(path))?;
    println!(
        "{}: valid ({} listener{})",
        path.display(),
        config.listener.len(),
        if config.listener.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn run(config: Option<PathBuf>) -> Result<(), String> {
    let (config, resolved) = load(config.as_ref())?;
    let metrics = cefgate::run::run(config, resolved).map_err(|e| e.to_string())?;
    eprint!("{}", metrics.report());
    Ok(())
}

fn parse_timezone(text: &str) -> Result<FixedOffset, String> {
    match text {
        "local" => Ok(*Local::now().offset()),
        other => parse_zone(other).ok_or_else(|| {
            format!("--timezone {other:?} is not UTC, local or an offset such as +01:00")
        }),
    }
}

fn convert(args: ConvertArgs) -> Result<(), String> {
    let received_at = match &args.received_at {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("--received-at {text:?} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let zone = parse_timezone(&args.timezone)?;
    let mut time_generated = Vec::new();
    for name in args.time_generated.split(',') {
        time_generated.push(TimeSource::parse(name).ok_or_else(|| {
            format!(
                "--time-generated: unknown source {name:?} (use received, rt, end, start, syslog)"
            )
        })?);
    }
    let mut record = RecordSettings {
        time_generated,
        ..RecordSettings::default()
    };
    if let Some(host) = args.collector_host {
        record.collector_host = host;
    }
    let builder = RowBuilder::new(record);
    let settings = ConvertSettings { received_at, zone };

    let total: u64 = args
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(total);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut summary = ConvertSummary::default();
    let mut done = 0u64;
    let result = if args.files.is_empty() {
        let stdin = io::stdin();
        convert_stream(
            &builder,
            &settings,
            stdin.lock(),
            &mut out,
            &mut summary,
            |n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            },
        )
        .map_err(|e| format!("converting standard input: {e}"))
    } else {
        args.files.iter().try_for_each(|path| {
            let file =
                File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let before = summary.bytes;
            convert_stream(
                &builder,
                &settings,
                BufReader::with_capacity(1 << 16, file),
                &mut out,
                &mut summary,
                |n| {
                    if let Some(b) = &bar {
                        b.set_position(done + n - before)
                    }
                },
            )
            .map_err(|e| format!("converting {}: {e}", path.display()))?;
            done += summary.bytes - before;
            Ok(())
        })
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let _ = out.flush();
    report(&summary);
    result
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = if total > 0 {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .ok()?,
        )
    } else {
        ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}").ok()?)
    };
    Some(bar)
}

fn report(summary: &ConvertSummary) {
    let mut line = format!(
        "cefgate: {} lines -> {} CommonSecurityLog rows, {} Syslog rows",
        summary.lines, summary.cef_rows, summary.syslog_rows
    );
    if summary.problems.rows_with_problems > 0 {
        line.push_str(&format!(
            "; {} rows with problems (see CefgateDiagnostics):",
            summary.problems.rows_with_problems
        ));
        for (name, n) in summary.problems.nonzero() {
            line.push_str(&format!(" {name}={n}"));
        }
    }
    eprintln!("{line}");
}
