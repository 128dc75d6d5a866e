//! The `cefgate` command line: parses arguments and calls into the library.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use cefgate::config::{Config, Resolved};
use cefgate::convert::{ConvertSettings, ConvertSummary, convert_stream};
use cefgate::decode::time::SenderZone;
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
    /// How log lines look on stderr: text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Folder for files cefgate makes itself (the dead-letter file when no spool or path is
    /// configured). Default: $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/cefgate,
    /// ~/.local/state/cefgate, /var/lib/cefgate.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    },
    /// Turn captured messages (one per line) into the JSON rows cefgate would post.
    Convert(ConvertArgs),
    /// Send captured messages (text, pcap or pcapng) to a syslog target.
    Replay(ReplayArgs),
    /// Run a local workspace that answers like Azure (both ingestion APIs, token endpoints).
    #[cfg(feature = "emulator")]
    Emulate(EmulateArgs),
    /// Work on a spool without receiving anything.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
    },
    /// Inspect or resend the rows the service refused for good (the dead-letter queue).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Write the man page (cefgate.1) and shell completions (bash, zsh, fish) into a folder,
    /// for packages.
    #[command(hide = true)]
    Assets {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the ARM template of a data collection rule for the logs-ingestion output.
    DcrTemplate {
        /// Route to custom CefGate_*_CL tables (created by the template) instead of the
        /// built-in CommonSecurityLog and Syslog tables.
        #[arg(long)]
        custom_tables: bool,
        /// Input stream for CEF rows (the output's cef_stream).
        #[arg(long, default_value = "Custom-CefGate_CommonSecurityLog")]
        cef_stream: String,
        /// Input stream for syslog rows (the output's syslog_stream).
        #[arg(long, default_value = "Custom-CefGate_Syslog")]
        syslog_stream: String,
    },
}

#[cfg(feature = "emulator")]
#[derive(clap::Args)]
struct EmulateArgs {
    /// Address to listen on (HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    address: String,
    /// Folder for accepted rows: one JSON-lines file per stream or log type.
    #[arg(long, default_value = "emulated-workspace")]
    data: PathBuf,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    workspace_id: String,
    /// Data Collector shared key (base64); default: a published test key. Also read from
    /// CEFGATE_EMULATE_SHARED_KEY.
    #[arg(long, env = "CEFGATE_EMULATE_SHARED_KEY", hide_env_values = true)]
    shared_key: Option<String>,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    tenant_id: String,
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    client_id: String,
    /// Client secret the token endpoint accepts. Also read from CEFGATE_EMULATE_CLIENT_SECRET.
    #[arg(long, env = "CEFGATE_EMULATE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    #[arg(long, default_value = "dcr-00000000000000000000000000000000")]
    dcr_id: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,
    /// Share of ingestion requests answered with a fault (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Statuses used for faults.
    #[arg(long, value_delimiter = ',', default_value = "429,500,503")]
    fault_statuses: Vec<u16>,
    /// Retry-After sent with 429 and 503, in seconds.
    #[arg(long, default_value_t = 1.0)]
    retry_after_secs: f64,
    /// Added to every ingestion request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Check and count accepted rows (GET /counts) without storing them (long load runs).
    #[arg(long)]
    count_only: bool,
    /// An outage: every ingestion request gets 503 from START to START+LENGTH seconds
    /// after start (START:LENGTH).
    #[arg(long, value_name = "START:LENGTH")]
    outage: Option<String>,
    /// Refuse (400) any request with a row containing this text.
    #[arg(long)]
    poison: Option<String>,
    /// Answer the first N ingestion requests with a fault (the first of --fault-statuses).
    #[arg(long, default_value_t = 0)]
    fail_first: u64,
    /// Logs Ingestion request limit in bytes (Azure's is 1 MiB); lower it to test splitting.
    #[arg(long, default_value_t = 1_048_576)]
    max_request_bytes: usize,
    /// Data Collector request limit in bytes (Azure's is 30 MB, answered with 404 when
    /// exceeded); lower it to test splitting.
    #[arg(long, default_value_t = 30 * 1024 * 1024)]
    data_collector_max_bytes: usize,
    /// The PEM certificate registered for the app: client assertions must be signed with its
    /// key.
    #[arg(long)]
    client_certificate: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SpoolAction {
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

#[derive(Subcommand)]
enum DlqAction {
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

#[derive(clap::Args)]
struct ReplayArgs {
    /// Text files (one message per line) or packet captures (.pcap, .pcapng).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Target: udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT.
    #[arg(long, default_value = "tcp://127.0.0.1:5514")]
    to: String,
    /// TCP/TLS framing: newline or octet-counting (default: newline for tcp, octet-counting for tls).
    #[arg(long, value_parser = ["newline", "octet-counting"])]
    framing: Option<String>,
    /// Messages per second (default: as fast as the target takes them).
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Send the whole set N times.
    #[arg(long = "loop", value_name = "N", default_value_t = 1)]
    loops: u64,
    /// Connections (UDP: sockets) sending at once, all opened before the first message; the
    /// messages are shared out among them and --rate is their total.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// tls://: PEM bundle of the CA that signed the server's certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// tls://: client certificate chain (PEM), for servers that require one.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// tls://: client private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = cli.state_dir {
        cefgate::config::set_state_folder(dir);
    }
    let format = cli.log_format;
    // `run` sets up logging once its configuration (with `[log] level`) is read.
    if !matches!(cli.command, Command::Run { .. }) {
        init_logging(format, None);
    }
    let result = match cli.command {
        Command::Run { config } => run(config, format),
        Command::Check { file, config, live } => {
            check(&file.or(config).expect("clap requires one"), live)
        }
        Command::Convert(args) => convert(args),
        Command::Replay(args) => replay(args),
        #[cfg(feature = "emulator")]
        Command::Emulate(args) => emulate(args),
        Command::Dlq { action } => dlq(action),
        Command::Spool {
            action:
                SpoolAction::Drain {
                    config,
                    timeout_secs,
                },
        } => drain(&config, timeout_secs),
        Command::Assets { out } => assets(&out),
        Command::DcrTemplate {
            custom_tables,
            cef_stream,
            syslog_stream,
        } => {
            let destination = if custom_tables {
                cefgate::dcr::Destination::CustomTables
            } else {
                cefgate::dcr::Destination::BuiltIn
            };
            let t = cefgate::dcr::template(destination, &cef_stream, &syslog_stream);
            println!("{}", serde_json::to_string_pretty(&t).expect("JSON"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cefgate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout may carry rows). The level is `RUST_LOG` when set, else
/// `[log] level`, else info.
fn init_logging(format: LogFormat, level: Option<&str>) {
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

fn load(config: Option<&PathBuf>) -> Result<(Config, Resolved), String> {
    match config {
        Some(path) => Config::load(path).map_err(|e| format!("invalid configuration:\n{e}")),
        None => Ok(Config::embedded()),
    }
}

fn check(path: &PathBuf, live: bool) -> Result<(), String> {
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
    let several = resolved.outputs.len() > 1;
    let mut failed = 0;
    let mut tried = 0;
    for plan in &resolved.outputs {
        let prefix = if several {
            format!("{}: ", plan.name)
        } else {
            String::new()
        };
        let answers = cefgate::sink::probe(&plan.settings).map_err(|e| e.to_string())?;
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
        n => Err(format!("{n} route(s) failed the live check (see above)")),
    }
}

fn run(path: Option<PathBuf>, format: LogFormat) -> Result<(), String> {
    let loaded = load(path.as_ref());
    let level = loaded
        .as_ref()
        .ok()
        .and_then(|(c, _)| c.log.level.as_ref().map(|l| l.get_ref().clone()));
    init_logging(format, level.as_deref());
    let (config, resolved) = loaded?;
    for warning in &resolved.warnings {
        tracing::warn!("{warning}");
    }
    let metrics = std::sync::Arc::new(cefgate::metrics::Metrics::default());
    let result = cefgate::run::run(config, resolved, metrics.clone(), path);
    // The counters are printed however the run ended: they say what was read and where it went.
    eprint!("{}", metrics.report());
    result.map_err(|e| e.to_string())
}

/// The man page and completions, from the same clap definition the binary parses with.
fn assets(out: &std::path::Path) -> Result<(), String> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let command = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|e| e.to_string())?;
    std::fs::write(out.join("cefgate.1"), page).map_err(|e| e.to_string())?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "cefgate", out)
            .map_err(|e| e.to_string())?;
    }
    println!(
        "wrote cefgate.1 and completions for bash, zsh and fish to {}",
        out.display()
    );
    Ok(())
}

fn drain(path: &PathBuf, timeout_secs: u64) -> Result<(), String> {
    let (_, resolved) = load(Some(path))?;
    if !resolved
        .outputs
        .iter()
        .any(|p| matches!(p.buffer, cefgate::buffer::BufferSettings::Spool(_)))
    {
        return Err("the configuration has no [spool]: nothing to drain".into());
    }
    let s = cefgate::run::drain(&resolved, std::time::Duration::from_secs(timeout_secs))
        .map_err(|e| e.to_string())?;
    println!(
        "drained {} chunk(s) with {} row(s): {} delivered, {} dead-lettered; {} chunk(s) left",
        s.chunks, s.rows, s.delivered, s.dead_lettered, s.left
    );
    if s.left > 0 {
        return Err(format!(
            "{} chunk(s) are still in the spool: run drain again once the output is reachable",
            s.left
        ));
    }
    Ok(())
}

fn dead_letters(path: &std::path::Path) -> Result<cefgate::dlq::Summary, String> {
    cefgate::dlq::list(path).map_err(|e| e.to_string())
}

fn print_causes(s: &cefgate::dlq::Summary) {
    for ((route, error), n) in &s.by_cause {
        println!("{n:>8}  {route}  {error}");
    }
}

fn dlq(action: DlqAction) -> Result<(), String> {
    match action {
        DlqAction::List { config } => {
            let config = Config::load_unchecked(&config)
                .map_err(|e| format!("invalid configuration:\n{e}"))?;
            for i in 0..config.output.len() {
                let path = config.dead_letter_path(i);
                let s = dead_letters(&path)?;
                println!("{}: {} dead-lettered row(s)", path.display(), s.entries);
                if let (Some(o), Some(n)) = (&s.oldest, &s.newest) {
                    println!("from {o} to {n}");
                }
                print_causes(&s);
                if !s.unreadable.is_empty() {
                    println!("unreadable lines: {:?}", s.unreadable);
                }
                s.details().iter().for_each(|l| println!("{l}"));
            }
            Ok(())
        }
        DlqAction::Replay {
            config,
            timeout_secs,
            dry_run: true,
        } => {
            let config = Config::load_unchecked(&config)
                .map_err(|e| format!("invalid configuration:\n{e}"))?;
            for i in 0..config.output.len() {
                let path = config.dead_letter_path(i);
                let s = dead_letters(&path)?;
                println!(
                    "would send {} row(s) from {} (waiting up to {timeout_secs} s); nothing was sent",
                    s.sendable(),
                    path.display()
                );
                print_causes(&s);
                s.details().iter().for_each(|l| println!("{l}"));
            }
            Ok(())
        }
        DlqAction::Replay {
            config,
            timeout_secs,
            dry_run: false,
        } => {
            let (_, resolved) = load(Some(&config))?;
            let azure: Vec<_> = resolved
                .outputs
                .iter()
                .filter(|p| {
                    matches!(
                        p.settings.destination,
                        cefgate::sink::Destination::LogsIngestion(_)
                            | cefgate::sink::Destination::DataCollector(_)
                    )
                })
                .collect();
            if azure.is_empty() {
                return Err("dlq replay needs a logs-ingestion or data-collector output".into());
            }
            for plan in azure {
                let o = cefgate::dlq::replay(
                    &plan.settings,
                    std::time::Duration::from_secs(timeout_secs),
                )
                .map_err(|e| e.to_string())?;
                println!(
                    "{}: replayed {} row(s): {} delivered, {} dead-lettered again",
                    plan.name, o.rows, o.delivered, o.dead_lettered_again
                );
                o.details().iter().for_each(|l| println!("{l}"));
            }
            Ok(())
        }
    }
}

#[cfg(feature = "emulator")]
fn emulate(args: EmulateArgs) -> Result<(), String> {
    use cefgate::emulate::{EmulatorSettings, serve};
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let defaults = EmulatorSettings::default();
    let (outage_after, outage_for) = match &args.outage {
        None => (None, std::time::Duration::ZERO),
        Some(text) => {
            let (a, b) = text
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)))
                .filter(|(a, b)| *a >= 0.0 && *b >= 0.0)
                .ok_or_else(|| format!("--outage {text:?} is not START:LENGTH in seconds"))?;
            (
                Some(std::time::Duration::from_secs_f64(a)),
                std::time::Duration::from_secs_f64(b),
            )
        }
    };
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err("--fault-rate must be between 0 and 1".into());
    }
    let settings = EmulatorSettings {
        address: args
            .address
            .parse()
            .map_err(|_| format!("--address {:?} is not IP:PORT", args.address))?,
        data_dir: args.data,
        count_only: args.count_only,
        workspace_id: args.workspace_id,
        shared_key: args.shared_key.unwrap_or(defaults.shared_key),
        tenant_id: args.tenant_id,
        client_id: args.client_id,
        client_secret: args.client_secret.unwrap_or(defaults.client_secret),
        dcr_id: args.dcr_id,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime_secs),
        fault_rate: args.fault_rate,
        fault_statuses: args.fault_statuses,
        retry_after_secs: args.retry_after_secs,
        latency: std::time::Duration::from_millis(args.latency_ms),
        outage_after,
        outage_for,
        poison: args.poison,
        fail_first: args.fail_first,
        max_request_bytes: args.max_request_bytes,
        data_collector_max_bytes: args.data_collector_max_bytes,
        client_certificate: match &args.client_certificate {
            None => None,
            Some(path) => Some(
                CertificateDer::from_pem_file(path)
                    .map_err(|e| format!("--client-certificate {}: {e}", path.display()))?
                    .to_vec(),
            ),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let counts = runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            stop.cancel();
        });
        serve(settings, shutdown, |addr| {
            tracing::info!("emulate: listening on http://{addr}");
        })
        .await
    });
    let counts = counts.map_err(|e| e.to_string())?;
    eprintln!("{counts}");
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<(), String> {
    use cefgate::config::Framing;
    use cefgate::replay::{self, ReplayPlan, Target, TlsClient};
    let target = Target::parse(&args.to).map_err(|e| e.to_string())?;
    if matches!(args.rate, Some(r) if r.is_nan() || r <= 0.0) {
        return Err("--rate must be above 0".into());
    }
    let mut messages = Vec::new();
    for file in &args.files {
        messages.extend(replay::capture::read_messages(file).map_err(|e| e.to_string())?);
    }
    let plan = ReplayPlan {
        target,
        framing: args.framing.as_deref().map(|f| match f {
            "octet-counting" => Framing::OctetCounting,
            _ => Framing::Newline,
        }),
        rate: args.rate,
        loops: args.loops,
        connections: args.connections as usize,
        tls: TlsClient {
            ca: args.ca,
            cert: args.cert,
            key: args.key,
        },
    };
    let total = messages.len() as u64 * args.loops;
    let bar = io::stderr().is_terminal().then(|| {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages {per_sec} eta {eta}")
                .expect("valid template"),
        )
    });
    let summary = replay::replay(&plan, &messages, |n| {
        if let Some(b) = &bar {
            b.set_position(n)
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = summary.elapsed.as_secs_f64();
    eprintln!(
        "cefgate: sent {} messages ({} bytes) to {} in {:.3} s: {:.0} msg/s",
        summary.messages,
        summary.bytes,
        args.to,
        secs,
        summary.messages as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn parse_timezone(text: &str) -> Result<SenderZone, String> {
    SenderZone::parse(text).ok_or_else(|| {
        format!(
            "--timezone {text:?} is not UTC, local, an IANA zone such as Europe/Berlin or an offset such as +01:00"
        )
    })
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
        event_id: args.event_id,
        keep_structured_data: args.keep_structured_data,
        ..RecordSettings::default()
    };
    if let Some(host) = args.collector_host {
        record.collector_host = host;
    }
    let builder = RowBuilder::new(record);
    let filter = match &args.predicate {
        None => None,
        Some(text) => Some(cefgate::filter::Predicate::parse(text).map_err(|e| {
            format!(
                "--where: {e}\n  {text}\n  {}^",
                " ".repeat(text[..e.offset.min(text.len())].chars().count())
            )
        })?),
    };
    let away: Vec<&str> = args.project_away.iter().map(String::as_str).collect();
    let project_away = cefgate::filter::ProjectAway::new(&away)
        .map_err(|(i, e)| format!("--project-away {}: {e}", args.project_away[i]))?;
    let filtering = filter.is_some();
    let settings = ConvertSettings {
        received_at,
        zone,
        sender: args.sender.map(|a| a.to_string()),
        filter,
        project_away,
    };

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
