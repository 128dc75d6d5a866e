//! `cefgate run`: wires the stages together and owns their lifetime.
//!
//! ```text
//! listeners (tokio tasks) --FrameBatch--> decode workers (threads) --Batch--> buffer
//!     (memory | spool) --Lease--> output driver (tokio task)
//! ```
//!
//! Everything between the socket read and the buffer's durable storage is charged to one
//! memory budget (`[pipeline] max_memory_bytes`, see [`crate::budget`]): when it is used up,
//! TCP/TLS connections stop reading (the kernel closes the sender's window) and UDP drops
//! and counts. A full spool stops the workers, which fills the budget. Decoding runs on
//! plain threads because it is CPU work that never waits; the listeners are async because
//! they wait on many sockets at once.
//!
//! Shutdown (SIGTERM or SIGINT) is one cancellation: the spool stops waiting for space;
//! listeners stop accepting and reading, hand on every complete frame they hold, and drop
//! their queue ends; the workers drain the queue and write their batches to the buffer
//! (never cut short: that write is what makes the rows safe); the output delivers until
//! `[pipeline] shutdown_timeout_secs`, then leaves the rest in the spool or, without one,
//! in the dead-letter file.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`run`]: the stages started in order, the signal loop, the shutdown sequence |
//! | `decoders.rs` | the decode threads |
//! | `listeners.rs` | starting, stopping and replacing listeners |
//! | `outputs.rs` | each output's delivery, replaced on reload, settled at the end |
//! | `reload.rs` | SIGHUP |
//! | `shutdown.rs` | the shutdown deadline, shared with `spool drain` and `dlq replay` |
//! | `system.rs` | open-file limit, memory returned after bursts, kernel UDP drops |
//! | `drain.rs` | `cefgate spool drain` |

mod decoders;
mod drain;
mod listeners;
mod outputs;
mod reload;
pub(crate) mod shutdown;
mod system;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::buffer::{self, BufferSettings};
use crate::config::{Config, Resolved};
use crate::listen::{self, FrameBatch, Protocol};
use crate::metrics::Metrics;
use crate::monitor::{self, Monitor};
use crate::sink;
use listeners::Listeners;
use outputs::{Outputs, settle_outputs};
use reload::Reload;
use shutdown::Deadline;

pub use drain::{DrainSummary, drain};

/// Why `cefgate run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot bind {protocol} {address}: {source}{hint}")]
    Bind {
        protocol: Protocol,
        address: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("tls listener {address}: {source}")]
    Tls {
        address: String,
        source: listen::tls::TlsSetupError,
    },
    #[error("address {0:?} is not IP:PORT")]
    Address(String),
    #[error("cannot bind the metrics address {address}: {source}")]
    MetricsBind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a decode thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "the output did not stop within {0:?} after the shutdown deadline; rows it held may not be written"
    )]
    OutputStuck(Duration),
    #[error(
        "{rows} row(s) could not be written anywhere and {threads} decode thread(s) failed; see the log above"
    )]
    Lost { rows: u64, threads: usize },
    #[error("output: {0}")]
    OutputSetup(#[from] sink::OutputSetupError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}

/// Runs until SIGTERM/SIGINT, then drains, counting into `metrics`. Each bound address is
/// logged as `listening on <protocol> <address>`, then `ready`. SIGHUP reads `source` (the
/// configuration file) again: see [`Reload`].
///
/// `runtime` is the process's one runtime, which the binary owns (and shuts down).
pub fn run(
    runtime: &tokio::runtime::Runtime,
    config: Config,
    resolved: Resolved,
    metrics: Arc<Metrics>,
    source: Option<PathBuf>,
) -> Result<(), RunError> {
    system::descriptors(&resolved);
    let budget = MemoryBudget::new(resolved.pipeline.max_memory_bytes);
    // Fired at the shutdown deadline: the outputs then leave what they still hold in the
    // spool (or, without one, dead-letter it).
    let give_up = CancellationToken::new();
    // One buffer and one delivery per output: an outage of one fills only its own buffer.
    let mut outputs = Vec::new();
    let mut writers = Vec::new();
    for plan in &resolved.outputs {
        let (writer, reader, recovery) = buffer::open(&plan.buffer, metrics.clone())?;
        if recovery.chunks > 0 || recovery.quarantined > 0 {
            tracing::info!(
                "{}: spool: {} chunk(s) with {} row(s) left from before are delivered first; {} damaged chunk(s) quarantined",
                plan.name,
                recovery.chunks,
                recovery.rows,
                recovery.quarantined
            );
        }
        let output = Outputs::started(runtime, plan, reader, &give_up, &metrics)?;
        outputs.push(output);
        writers.push(writer);
    }

    let (frame_tx, frame_rx) = flume::bounded::<FrameBatch>(resolved.pipeline.queue_batches);
    let worker_threads = decoders::start(&resolved, &writers, &frame_rx, &budget, &metrics)?;
    // The operator's view lives until the very end, so that a scrape sees the drain.
    let monitor = Arc::new(Monitor {
        metrics: metrics.clone(),
        budget: budget.clone(),
        queue: frame_rx.clone(),
    });
    drop(frame_rx);
    let monitor_stop = CancellationToken::new();
    if let Some(address) = resolved.metrics_address {
        let listener = runtime
            .block_on(TcpListener::bind(address))
            .map_err(|source| RunError::MetricsBind { address, source })?;
        let local = listener.local_addr().unwrap_or(address);
        tracing::info!("serving /metrics, /health and /ready on http://{local}");
        runtime.spawn(monitor::serve(
            listener,
            monitor.clone(),
            monitor::Access::from_token(resolved.metrics_bearer_token.as_ref()),
            monitor_stop.clone(),
        ));
    }
    if let Some(interval) = resolved.summary_interval {
        runtime.spawn(monitor::summarise(
            monitor.clone(),
            interval,
            monitor_stop.clone(),
        ));
    }

    // Read at start: a reload does not change it.
    let shutdown_secs = resolved.pipeline.shutdown_timeout_secs;
    let mut listeners = Listeners {
        frames: Some(frame_tx),
        budget: budget.clone(),
        metrics: metrics.clone(),
        shutdown: CancellationToken::new(),
        running: Vec::new(),
        retired: Vec::new(),
        udp_addresses: Arc::default(),
    };
    let served = runtime.block_on(async {
        for settings in &resolved.listeners {
            match listeners.start(settings, None).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    // The listeners already started hold the queue open: stop them, or the
                    // decode threads would wait on it for ever and `run` would never return.
                    listeners.stop_all().await;
                    return Err(e);
                }
            }
        }
        metrics
            .listeners_bound
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("ready");
        let poller = tokio::spawn(system::poll_kernel_drops(
            metrics.clone(),
            listeners.udp_addresses.clone(),
            listeners.shutdown.clone(),
        ));
        tokio::spawn(system::return_memory_after_bursts(
            budget.clone(),
            listeners.shutdown.clone(),
        ));
        let mut reload = Reload {
            source,
            config,
            resolved: resolved.clone(),
        };
        loop {
            match wait_for_signal().await {
                Signal::Stop => break,
                Signal::Reload => reload.apply(&mut listeners, &mut outputs).await,
            }
        }
        tracing::info!("shutting down: no new connections; draining what was read");
        metrics
            .listeners_bound
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // From here on, a full spool takes what is still in memory rather than lose it.
        for writer in &writers {
            writer.allow_overflow();
        }
        listeners.stop_all().await;
        let _ = poller.await;
        Ok::<(), RunError>(())
    });
    let shutdown_timeout = Duration::from_secs(shutdown_secs);
    let deadline = Deadline::after(shutdown_timeout, &give_up);
    // The write to the buffer is what makes the rows safe, so it goes on to the deadline
    // (the spool no longer waits for space now). Only a spool write the disk still refuses
    // at the deadline gives its rows up, counted in rows_lost: the shutdown then ends in
    // time instead of being killed with them uncounted.
    for writer in &writers {
        writer.give_up_writes_at(deadline.instant());
    }
    // The writers' last clones go with the workers: each output sees the end of its buffer.
    drop(writers);
    drop(listeners);
    let mut workers_failed = 0;
    for worker in worker_threads {
        if worker.join().is_err() {
            workers_failed += 1;
            tracing::error!("a decode thread failed; the rows it held are lost");
        }
    }
    served?;
    let durable = outputs.iter().any(|o| o.reader.is_durable());
    let settled = runtime.block_on(settle_outputs(&mut outputs, &deadline, || {
        tracing::warn!(
            "shutdown_timeout_secs ({}) reached with rows undelivered; they {}",
            shutdown_timeout.as_secs(),
            if durable {
                "stay in the spool for the next start"
            } else {
                "go to the dead-letter file"
            }
        );
    }));
    metrics
        .memory_peak_bytes
        .store(budget.peak() as u64, std::sync::atomic::Ordering::Relaxed);
    monitor_stop.cancel();
    settled?;
    let lost = Metrics::get(&metrics.rows_lost);
    if lost > 0 || workers_failed > 0 {
        return Err(RunError::Lost {
            rows: lost,
            threads: workers_failed,
        });
    }
    for plan in &resolved.outputs {
        if let BufferSettings::Spool(s) = &plan.buffer {
            let left = crate::spool::chunks_in(&s.path);
            if left > 0 {
                tracing::info!(
                    "{}: spool: {left} chunk(s) kept for delivery at the next start",
                    plan.name
                );
            }
        }
    }
    Ok(())
}

enum Signal {
    Stop,
    Reload,
}

async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("install the SIGHUP handler");
    tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM received"); Signal::Stop }
        _ = int.recv() => { tracing::info!("SIGINT received"); Signal::Stop }
        _ = hup.recv() => { tracing::info!("SIGHUP received"); Signal::Reload }
    }
}
