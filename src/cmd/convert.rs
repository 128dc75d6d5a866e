//! `cefgate convert`: turns captured messages (one per line, from files or standard input)
//! into the JSON rows cefgate would post, offline. It shows what a device's lines become
//! before any traffic is pointed at the service, makes goldens reproducible (`--received-at`),
//! and tries an output's `where` and `project_away` on real captures. A summary of rows and
//! problems goes to stderr.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use cefgate::convert::{ConvertSettings, ConvertSummary, convert_stream};
use cefgate::decode::time::{SenderZone, UnknownZone};
use cefgate::filter::{Predicate, PredicateError, ProjectAway};
use cefgate::record::{RecordSettings, RowBuilder, TimeSource, UnknownTimeSource};
use cefgate::row::ForcedFormat;

#[derive(clap::Args)]
pub struct Args {
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
    /// Take every line as received from this address: it fills Syslog's HostIP, and
    /// Computer where a line carries no host (default: no sender; HostIP `Unknown IP`).
    #[arg(long, value_name = "ADDR")]
    sender: Option<std::net::IpAddr>,
    /// Add CefgateEventId (a hash of the raw message and its receive time) to every row.
    #[arg(long)]
    event_id: bool,
    /// Keep RFC 5424 structured data at the front of SyslogMessage (the Azure agent drops it).
    #[arg(long)]
    keep_structured_data: bool,
    /// Write only the rows this KQL predicate keeps (an output's `where`); the kept and
    /// dropped counts go to stderr.
    #[arg(long = "where", value_name = "EXPR")]
    predicate: Option<String>,
    /// Leave these columns out (an output's `project_away`).
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    project_away: Vec<String>,
    /// Take every line to be in this format (as a listener's `format`; `syslog` for none).
    /// A line it does not recognise is recognised by content and tagged
    /// forced-format-missed.
    #[arg(long, value_name = "NAME",
          value_parser = format_parser())]
    format: Option<ForcedFormat>,
}

/// `--format`: the names clap lists in the help and checks, parsed into the format.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = ForcedFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(cefgate::decode::format_names())
        .try_map(|name| name.parse::<ForcedFormat>())
}

/// Why the options were refused or the input could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--received-at {text:?} is not an RFC 3339 time: {source}")]
    ReceivedAt {
        text: String,
        source: chrono::ParseError,
    },
    #[error("--timezone {0}")]
    Timezone(#[from] UnknownZone),
    #[error("--time-generated: unknown source {0}")]
    TimeGenerated(#[from] UnknownTimeSource),
    #[error("--where: {0}")]
    Where(#[from] PredicateError),
    #[error("--project-away {column}: {message}")]
    ProjectAway { column: String, message: String },
    #[error("converting standard input: {0}")]
    Stdin(io::Error),
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("converting {}: {source}", path.display())]
    Input { path: PathBuf, source: io::Error },
}

/// The options as the converter takes them, checked in the order they are listed.
fn settings(args: &Args) -> Result<(RowBuilder, ConvertSettings), Error> {
    let received_at = match &args.received_at {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|source| Error::ReceivedAt {
                    text: text.clone(),
                    source,
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let zone: SenderZone = args.timezone.parse()?;
    let time_generated = args
        .time_generated
        .split(',')
        .map(str::parse::<TimeSource>)
        .collect::<Result<_, _>>()?;
    let mut record = RecordSettings {
        time_generated,
        event_id: args.event_id,
        keep_structured_data: args.keep_structured_data,
        ..RecordSettings::default()
    };
    if let Some(host) = &args.collector_host {
        record.collector_host = host.clone();
    }
    let filter = args
        .predicate
        .as_deref()
        .map(str::parse::<Predicate>)
        .transpose()?;
    let away: Vec<&str> = args.project_away.iter().map(String::as_str).collect();
    let project_away = ProjectAway::new(&away).map_err(|(i, message)| Error::ProjectAway {
        column: args.project_away[i].clone(),
        message,
    })?;
    let settings = ConvertSettings {
        received_at,
        zone,
        sender: args.sender.map(|a| a.to_string()),
        filter,
        project_away,
        format: args.format,
    };
    Ok((RowBuilder::new(record), settings))
}

pub fn execute(args: Args) -> Result<(), Error> {
    let (builder, settings) = settings(&args)?;
    let filtering = settings.filter.is_some();
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
        .map_err(Error::Stdin)
    } else {
        args.files.iter().try_for_each(|path| {
            let file = File::open(path).map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
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
            .map_err(|source| Error::Input {
                path: path.clone(),
                source,
            })?;
            done += summary.bytes - before;
            Ok(())
        })
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let _ = out.flush();
    report(&summary);
    if filtering {
        eprintln!(
            "cefgate: --where kept {} rows and dropped {}",
            summary.lines - summary.dropped,
            summary.dropped
        );
    }
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
