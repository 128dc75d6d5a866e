//! `cefgate run`: wires the stages together and owns their lifetime.
//!
//! ```text
//! listeners (tokio tasks) --FrameBatch--> decode workers (threads) --Batch--> sink (thread)
//! ```
//!
//! Both hand-overs are bounded queues, so a slow sink slows the workers, which fills the
//! frame queue, which stops TCP/TLS reads (UDP drops and counts instead). Decoding runs on
//! plain threads because it is CPU work that never waits; the listeners are async because
//! they wait on many sockets at once.
//!
//! Shutdown (SIGTERM or SIGINT) is one cancellation: listeners stop accepting and reading,
//! hand on every complete frame they hold, and drop their queue ends; the workers drain the
//! queue and flush their batches; the sink writes the last batch and flushes. It must finish
//! within `[pipeline] shutdown_timeout_secs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, BatchLimits, Batcher};
use crate::config::{Config, OutputKind, Protocol, Resolved};
use crate::decode::TimeContext;
use crate::listen::{self, FrameBatch, ListenerContext};
use crate::metrics::Metrics;
use crate::record::{ProblemCounts, Reception, RecordSettings, RowBuilder, Table, write_json};
use crate::sink::{self, BatchSource, Sink};
use crate::spool::{Spool, SpoolSettings};

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
    #[error("cannot open the output {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("shutdown did not finish within {0:?}; rows still in memory were not written")]
    ShutdownTimeout(Duration),
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

/// Runs until SIGTERM/SIGINT, then drains; returns the counters. Each bound address is
/// logged as `listening on <protocol> <address>`, then `ready`.
pub fn run(config: Config, resolved: Resolved) -> Result<Arc<Metrics>, RunError> {
    let metrics = Arc::new(Metrics::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cefgate-io")
        .build()
        .map_err(RunError::Runtime)?;
    let (batch_tx, batch_rx) = flume::bounded::<Batch>(64);
    // Fired at the shutdown deadline: an Azure output then leaves what it still holds in the
    // spool (or, without one, dead-letters it).
    let give_up = CancellationToken::new();
    let spool = match &config.spool {
        None => None,
        Some(sc) => {
            let sc = sc.get_ref();
            let (spool, recovery) = Spool::open(
                SpoolSettings {
                    path: sc.path.get_ref().clone(),
                    max_bytes: sc.max_bytes,
                    fsync: sc.fsync,
                },
                metrics.clone(),
            )?;
            if recovery.chunks > 0 || recovery.quarantined > 0 {
                tracing::info!(
                    "spool: {} chunk(s) with {} row(s) left from before are delivered first; {} damaged chunk(s) quarantined",
                    recovery.chunks,
                    recovery.rows,
                    recovery.quarantined
                );
            }
            Some(spool)
        }
    };
    let source = || match &spool {
        Some(s) => BatchSource::Spool(s.clone()),
        None => BatchSource::Channel(batch_rx.clone()),
    };
    let output = config.output.get_ref();
    let sink = match output.kind.get_ref() {
        OutputKind::Stdout => SinkHandle::Thread(spawn_sink(
            Box::new(sink::stdout()),
            source(),
            metrics.clone(),
        )),
        OutputKind::File => {
            let path = output
                .path
                .as_ref()
                .expect("validated: file has path")
                .get_ref();
            let file = sink::file(path).map_err(|source| RunError::Output {
                path: path.display().to_string(),
                source,
            })?;
            SinkHandle::Thread(spawn_sink(Box::new(file), source(), metrics.clone()))
        }
        OutputKind::LogsIngestion | OutputKind::DataCollector => {
            let azure = sink::azure(
                output,
                &config.dead_letter_path(),
                metrics.clone(),
                give_up.clone(),
                spool.is_some(),
            )?;
            SinkHandle::Task(runtime.spawn(azure.serve(source(), output.concurrency)))
        }
    };
    drop(batch_rx);
    let hand_on = match &spool {
        Some(s) => BatchOut::Spool(s.clone()),
        None => BatchOut::Channel(batch_tx),
    };

    let (frame_tx, frame_rx) = flume::bounded::<FrameBatch>(config.pipeline.queue_batches);

    let workers = match config.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let record = RecordSettings {
        time_generated: resolved.time_generated.clone(),
        event_id: config.record.event_id,
        ..match &config.record.collector_host {
            Some(host) => RecordSettings {
                collector_host: host.clone(),
                ..RecordSettings::default()
            },
            None => RecordSettings::default(),
        }
    };
    let limits = BatchLimits::from(&config.batch);
    let worker_threads: Vec<JoinHandle<()>> = (0..workers)
        .map(|i| {
            let (rx, tx, metrics) = (frame_rx.clone(), hand_on.clone(), metrics.clone());
            let builder = RowBuilder::new(record.clone());
            let zone = resolved.zone;
            std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || decode_worker(builder, zone, limits, rx, tx, metrics))
                .expect("spawn a decode thread")
        })
        .collect();
    drop((frame_rx, hand_on));

    let shutdown_timeout = Duration::from_secs(config.pipeline.shutdown_timeout_secs);
    let served = runtime.block_on(serve(&config, frame_tx, metrics.clone()));
    served?;
    let deadline = Instant::now() + shutdown_timeout;
    for worker in worker_threads {
        join_by(worker, deadline).ok_or(RunError::ShutdownTimeout(shutdown_timeout))?;
    }
    if let Some(spool) = &spool {
        spool.close();
    }
    match sink {
        SinkHandle::Thread(thread) => {
            join_by(thread, deadline).ok_or(RunError::ShutdownTimeout(shutdown_timeout))?
        }
        SinkHandle::Task(task) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let finished = runtime.block_on(async {
                let mut task = task;
                match tokio::time::timeout(left, &mut task).await {
                    Ok(_) => true,
                    Err(_) => {
                        // Out of time: undelivered rows go to the dead-letter queue.
                        tracing::warn!(
                            "shutdown deadline reached with rows undelivered; they go to the dead-letter queue"
                        );
                        give_up.cancel();
                        tokio::time::timeout(Duration::from_secs(10), task).await.is_ok()
                    }
                }
            });
            if !finished {
                return Err(RunError::ShutdownTimeout(shutdown_timeout));
            }
        }
    }
    if let Some(spool) = &spool {
        let left = spool.chunks_on_disk();
        if left > 0 {
            tracing::info!("spool: {left} chunk(s) kept for delivery at the next start");
        }
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(metrics)
}

/// The output stage: a thread for the local outputs, a task for the Azure ones.
enum SinkHandle {
    Thread(JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

fn join_by(handle: JoinHandle<()>, deadline: Instant) -> Option<()> {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().ok()
}

/// Binds every listener, serves until a signal, then stops them and waits for them.
async fn serve(
    config: &Config,
    frames: flume::Sender<FrameBatch>,
    metrics: Arc<Metrics>,
) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut udp_addresses = Vec::new();
    for spanned in &config.listener {
        let l = Arc::new(spanned.get_ref().clone());
        let protocol = *l.protocol.get_ref();
        let address: SocketAddr = l.address.get_ref().parse().expect("validated address");
        let ctx = ListenerContext {
            queue: frames.clone(),
            metrics: metrics.clone(),
            allow: Arc::new(l.allowlist()),
            shutdown: shutdown.clone(),
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
                let acceptor = match protocol {
                    Protocol::Tls => {
                        Some(
                            listen::tls::Acceptor::new(&l).map_err(|source| RunError::Tls {
                                address: address.to_string(),
                                source,
                            })?,
                        )
                    }
                    _ => None,
                };
                let listener = TcpListener::bind(address).await.map_err(bind_error)?;
                let local = listener.local_addr().map_err(bind_error)?;
                tracing::info!("listening on {protocol} {local}");
                tasks.spawn(listen::tcp::serve(listener, l, ctx, acceptor));
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

/// Frames -> rows -> batches, until the frame queue closes and is empty.
fn decode_worker(
    builder: RowBuilder,
    zone: chrono::FixedOffset,
    limits: BatchLimits,
    frames: flume::Receiver<FrameBatch>,
    batches: BatchOut,
    metrics: Arc<Metrics>,
) {
    let mut batcher = Batcher::new(limits);
    // The text of the last peer address, so a connection's frames format it once.
    let mut peer_text = (None::<IpAddr>, String::new());
    let send = |batch: Batch| batches.hand_on(batch);
    loop {
        let wait = batcher.next_due(Instant::now());
        let fb = match frames.recv_timeout(wait) {
            Ok(fb) => fb,
            Err(flume::RecvTimeoutError::Timeout) => {
                batcher.take_aged(Instant::now()).into_iter().for_each(send);
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        let time = TimeContext::new(fb.received_at.unwrap_or_else(Utc::now), zone);
        let now = Instant::now();
        let mut counts = ProblemCounts::default();
        let (mut cef, mut syslog) = (0u64, 0u64);
        for (message, info) in fb.iter() {
            if peer_text.0 != info.peer {
                peer_text = (
                    info.peer,
                    info.peer.map(|p| p.to_string()).unwrap_or_default(),
                );
            }
            let text = String::from_utf8_lossy(message);
            let rx = Reception {
                time,
                peer: info.peer.map(|_| peer_text.1.as_str()),
                truncated: info.truncated,
            };
            let row = builder.build(&text, matches!(text, std::borrow::Cow::Owned(_)), &rx);
            counts.record(&row.problems);
            match row.table {
                Table::CommonSecurityLog => cef += 1,
                Table::Syslog => syslog += 1,
            }
            if let Some(done) = batcher.push(row.table, now, |out| write_json(&row, out)) {
                send(done);
            }
        }
        Metrics::add(&metrics.rows_cef, cef);
        Metrics::add(&metrics.rows_syslog, syslog);
        metrics.add_problems(&counts);
        batcher.take_aged(Instant::now()).into_iter().for_each(send);
    }
    batcher.take_all().into_iter().for_each(send);
}

/// Where the decode workers put finished batches.
#[derive(Clone)]
enum BatchOut {
    /// Straight to the output, in memory.
    Channel(flume::Sender<Batch>),
    /// Into the durable spool; returns once the batch is on disk (waits while it is full).
    Spool(Arc<Spool>),
}

impl BatchOut {
    fn hand_on(&self, batch: Batch) {
        match self {
            BatchOut::Channel(tx) => {
                // The output outlives the workers; a send only fails if it died, and then
                // the rows cannot go anywhere: say so.
                if tx.send(batch).is_err() {
                    tracing::error!("the output stopped; rows are being lost");
                }
            }
            BatchOut::Spool(spool) => spool.append(&batch),
        }
    }
}

/// The local outputs write on their own thread (file I/O blocks).
fn spawn_sink(
    mut sink: Box<dyn Sink>,
    source: BatchSource,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let mut write = |batch: &Batch| match sink.write(batch) {
                Ok(()) => {
                    Metrics::add(&metrics.batches_written, 1);
                    true
                }
                Err(e) => {
                    Metrics::add(&metrics.output_errors, 1);
                    tracing::error!("writing {} rows failed: {e}", batch.rows);
                    false
                }
            };
            match source {
                BatchSource::Channel(rx) => {
                    for batch in rx.iter() {
                        write(&batch);
                    }
                }
                BatchSource::Spool(spool) => {
                    let waiter = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("a current-thread runtime");
                    while let Some(chunk) = waiter.block_on(spool.next()) {
                        if let Some(batch) = spool.read(chunk) {
                            // A failed write keeps the chunk for the next start.
                            if write(&batch) {
                                spool.remove(chunk);
                            } else {
                                spool.release(chunk);
                            }
                        }
                    }
                }
            }
            if let Err(e) = sink.flush() {
                Metrics::add(&metrics.output_errors, 1);
                tracing::error!("flushing the output failed: {e}");
            }
        })
        .expect("spawn the sink thread")
}
