//! `cefgate replay`: sends captured messages (text with one message per line, pcap or
//! pcapng) to a syslog target over UDP, TCP or TLS, at a given rate and over several
//! connections: to reproduce what a device sent, and to load a receiver (cefgate or another)
//! with real traffic. The summary line says how fast the target took them.

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use cefgate::config::Framing;
use cefgate::replay::{self, ReplayError, ReplayPlan, Target, TlsClient};

#[derive(clap::Args)]
pub struct Args {
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

/// Why nothing, or not everything, was sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--rate must be above 0")]
    Rate,
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

pub fn execute(args: Args) -> Result<(), Error> {
    let target = Target::parse(&args.to)?;
    if matches!(args.rate, Some(r) if r.is_nan() || r <= 0.0) {
        return Err(Error::Rate);
    }
    let mut messages = Vec::new();
    for file in &args.files {
        messages.extend(replay::capture::read_messages(file).map_err(ReplayError::from)?);
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
    })?;
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
