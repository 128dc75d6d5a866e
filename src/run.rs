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

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::buffer::{self, BufferSettings};
use crate::config::{Config, Resolved};
use crate::listen::{self, FrameBatch, ListenerContext, ListenerSettings, Protocol};
use crate::metrics::Metrics;
use crate::record::{RecordSettings, RowBuilder};
use crate::sink;
use crate::worker;

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
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
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

fn bind_hint(e: &std::io::Error, address: &SocketAddr) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied if address.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or use a port such as 5514)"
        }
        std::io::ErrorKind::AddrInUse => " (another process already listens there)",
        _ => "",
    }
}

/// Runs until SIGTERM/SIGINT, then drains, counting into `metrics`. Each bound address is
/// logged as `listening on <protocol> <address>`, then `ready`.
pub fn run(config: Config, resolved: Resolved, metrics: Arc<Metrics>) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cefgate-io")
        .build()
        .map_err(RunError::Runtime)?;
    let budget = MemoryBudget::new(config.pipeline.max_memory_bytes);
    let (writer, reader, recovery) = buffer::open(&resolved.buffer, metrics.clone())?;
    if recovery.chunks > 0 || recovery.quarantined > 0 {
        tracing::info!(
            "spool: {} chunk(s) with {} row(s) left from before are delivered first; {} damaged chunk(s) quarantined",
            recovery.chunks,
            recovery.rows,
            recovery.quarantined
        );
    }
    // Fired at the shutdown deadline: the output then leaves what it still holds in the
    // spool (or, without one, dead-letters it).
    let give_up = CancellationToken::new();
    let output = sink::build(&resolved.output, metrics.clone(), give_up.clone())?;
    let driver = runtime.spawn(sink::serve(
        Arc::new(output.delivery),
        reader,
        output.concurrency,
    ));

    let (frame_tx, frame_rx) = flume::bounded::<FrameBatch>(config.pipeline.queue_batches);
    let workers = match config.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let record = RecordSettings {
        time_generated: resolved.time_generated.clone(),
        event_id: config.record.event_id,
        keep_structured_data: config.record.keep_structured_data,
        ..match &config.record.collector_host {
            Some(host) => RecordSettings {
                collector_host: host.clone(),
                ..RecordSettings::default()
            },
            None => RecordSettings::default(),
        }
    };
    let limits = config.batch.limits();
    let mut worker_threads: Vec<JoinHandle<()>> = Vec::with_capacity(workers);
    for i in 0..workers {
        let (rx, tx) = (frame_rx.clone(), writer.clone());
        let (budget, metrics) = (budget.clone(), metrics.clone());
        let builder = RowBuilder::new(record.clone());
        let zone = resolved.zone;
        let thread = std::thread::Builder::new()
            .name(format!("decode-{i}"))
            .spawn(move || worker::decode(builder, zone, limits, rx, tx, budget, metrics))
            .map_err(RunError::Thread)?;
        worker_threads.push(thread);
    }
    drop(frame_rx);

    let served = runtime.block_on(serve(
        &resolved.listeners,
        frame_tx,
        &budget,
        &metrics,
        || {
            // From here on, a full spool takes what is still in memory rather than lose it.
            writer.allow_overflow()
        },
    ));
    // The writers' last clone goes with the workers: the output sees the end of the buffer.
    drop(writer);
    let shutdown_timeout = Duration::from_secs(config.pipeline.shutdown_timeout_secs);
    let deadline = Instant::now() + shutdown_timeout;
    // Never bounded by the deadline: this is the write to the buffer (the spool never waits
    // for space now), and what is not written here would be lost.
    let mut workers_failed = 0;
    for worker in worker_threads {
        if worker.join().is_err() {
            workers_failed += 1;
            tracing::error!("a decode thread failed; the rows it held are lost");
        }
    }
    served?;
    let finished = runtime.block_on(async {
        let mut driver = driver;
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, &mut driver).await.is_ok() {
            return true;
        }
        tracing::warn!(
            "shutdown_timeout_secs ({}) reached with rows undelivered; they {}",
            shutdown_timeout.as_secs(),
            if matches!(resolved.buffer, BufferSettings::Spool(_)) {
                "stay in the spool for the next start"
            } else {
                "go to the dead-letter file"
            }
        );
        give_up.cancel();
        // Requests in flight end within their own timeout.
        tokio::time::timeout(AFTER_GIVE_UP, driver).await.is_ok()
    });
    metrics
        .memory_peak_bytes
        .store(budget.peak() as u64, std::sync::atomic::Ordering::Relaxed);
    if !finished {
        return Err(RunError::OutputStuck(AFTER_GIVE_UP));
    }
    let lost = Metrics::get(&metrics.rows_lost);
    if lost > 0 || workers_failed > 0 {
        return Err(RunError::Lost {
            rows: lost,
            threads: workers_failed,
        });
    }
    if let BufferSettings::Spool(s) = &resolved.buffer {
        let left = crate::spool::chunks_in(&s.path);
        if left > 0 {
            tracing::info!("spool: {left} chunk(s) kept for delivery at the next start");
        }
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// How long the output may take to stop after the shutdown deadline: an HTTP request in
/// flight ends within its own timeout.
const AFTER_GIVE_UP: Duration = Duration::from_secs(120);

/// Binds every listener, serves until a signal, then stops them and waits for them.
async fn serve(
    listeners: &[ListenerSettings],
    frames: flume::Sender<FrameBatch>,
    budget: &Arc<MemoryBudget>,
    metrics: &Arc<Metrics>,
    on_shutdown: impl FnOnce(),
) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut udp_addresses = Vec::new();
    for settings in listeners {
        let l = Arc::new(settings.clone());
        let (protocol, address) = (l.protocol, l.address);
        let ctx = ListenerContext {
            queue: frames.clone(),
            metrics: metrics.clone(),
            allow: Arc::new(l.allow.clone()),
            shutdown: shutdown.clone(),
            budget: budget.clone(),
        };
        let bind_error = |source: std::io::Error| RunError::Bind {
            protocol,
            address: address.to_string(),
            hint: bind_hint(&source, &address),
            source,
        };
        match protocol {
            Protocol::Udp => {
                let socket = listen::udp::bind(&l, address).map_err(bind_error)?;
                let local = socket.local_addr().map_err(bind_error)?;
                tracing::info!("listening on udp {local}");
                udp_addresses.push(local);
                tasks.spawn(listen::udp::serve(socket, l, ctx));
            }
            Protocol::Tcp | Protocol::Tls => {
                let listener = TcpListener::bind(address).await.map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                tracing::info!("listening on {protocol} {local}");
                tasks.spawn(listen::tcp::serve(listener, l, ctx));
            }
        }
    }
    drop(frames);
    tracing::info!("ready");

    let poll_drops = {
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        let record = move || {
            let total: u64 = udp_addresses
                .iter()
                .filter_map(|a| listen::udp::kernel_drops(*a))
                .sum();
            metrics
                .udp_dropped_kernel
                .store(total, std::sync::atomic::Ordering::Relaxed);
        };
        async move {
            loop {
                record();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            // One last reading after the listeners stopped.
            record();
        }
    };
    let poller = tokio::spawn(poll_drops);

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; draining what was read");
    on_shutdown();
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = poller.await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
