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
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::buffer::{self, BufferSettings, Reader};
use crate::config::{Config, Resolved};
use crate::listen::{self, FrameBatch, ListenerContext, ListenerSettings, Protocol};
use crate::metrics::Metrics;
use crate::monitor::{self, Monitor};
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
    #[error("cannot bind the metrics address {address}: {source}")]
    MetricsBind {
        address: SocketAddr,
        source: std::io::Error,
    },
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
/// logged as `listening on <protocol> <address>`, then `ready`. SIGHUP reads `source` (the
/// configuration file) again: see [`Reload`].
pub fn run(
    config: Config,
    resolved: Resolved,
    metrics: Arc<Metrics>,
    source: Option<PathBuf>,
) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cefgate-io")
        .build()
        .map_err(RunError::Runtime)?;
    descriptors(&resolved);
    let budget = MemoryBudget::new(config.pipeline.max_memory_bytes);
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
        let output = Outputs::started(&runtime, plan, reader, &give_up, &metrics)?;
        outputs.push(output);
        writers.push(writer);
    }

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
        let rx = frame_rx.clone();
        let taps = resolved
            .outputs
            .iter()
            .zip(&writers)
            .map(|(plan, writer)| worker::Tap {
                filter: plan.filter.clone(),
                project_away: plan.project_away.clone(),
                writer: writer.clone(),
                counters: metrics.output(&plan.name),
            })
            .collect();
        let (budget, metrics) = (budget.clone(), metrics.clone());
        let builder = RowBuilder::new(record.clone());
        let zone = resolved.zone;
        let thread = std::thread::Builder::new()
            .name(format!("decode-{i}"))
            .spawn(move || worker::decode(builder, zone, limits, rx, taps, budget, metrics))
            .map_err(RunError::Thread)?;
        worker_threads.push(thread);
    }
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
    let shutdown_secs = config.pipeline.shutdown_timeout_secs;
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
            match listeners.start(settings, fingerprint(settings), None).await {
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
        let poller = tokio::spawn(poll_kernel_drops(
            metrics.clone(),
            listeners.udp_addresses.clone(),
            listeners.shutdown.clone(),
        ));
        tokio::spawn(return_memory_after_bursts(
            budget.clone(),
            listeners.shutdown.clone(),
        ));
        let mut reload = Reload {
            source,
            secrets: secrets_of(&config),
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
    let deadline = Instant::now() + shutdown_timeout;
    // The write to the buffer is what makes the rows safe, so it goes on to the deadline
    // (the spool no longer waits for space now). Only a spool write the disk still refuses
    // at the deadline gives its rows up, counted in rows_lost: the shutdown then ends in
    // time instead of being killed with them uncounted.
    for writer in &writers {
        writer.give_up_writes_at(deadline);
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
    let finished = runtime.block_on(async {
        let left = deadline.saturating_duration_since(Instant::now());
        let all = async {
            for output in &mut outputs {
                output.finish().await;
            }
        };
        tokio::pin!(all);
        if tokio::time::timeout(left, &mut all).await.is_ok() {
            return true;
        }
        tracing::warn!(
            "shutdown_timeout_secs ({}) reached with rows undelivered; they {}",
            shutdown_timeout.as_secs(),
            if durable {
                "stay in the spool for the next start"
            } else {
                "go to the dead-letter file"
            }
        );
        give_up.cancel();
        // Requests in flight end within their own timeout.
        tokio::time::timeout(AFTER_GIVE_UP, all).await.is_ok()
    });
    metrics
        .memory_peak_bytes
        .store(budget.peak() as u64, std::sync::atomic::Ordering::Relaxed);
    monitor_stop.cancel();
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
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Descriptors besides connections: listeners, the spool's files, outputs' sockets, the
/// metrics endpoint, the runtime.
const DESCRIPTOR_RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a process starts with 1024 on most
/// systems) and warns when the listeners' `max_connections` could need more than that.
fn descriptors(resolved: &Resolved) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot read or raise the open-file limit: {e}");
            return;
        }
    };
    let connections: u64 = resolved
        .listeners
        .iter()
        .filter(|l| l.protocol != Protocol::Udp)
        .map(|l| l.max_connections as u64 + l.max_handshakes as u64 * u64::from(l.tls.is_some()))
        .sum();
    let need = connections + DESCRIPTOR_RESERVE;
    if need > limit {
        tracing::warn!(
            "the open-file limit is {limit}, but the listeners may hold {connections} connections \
             (max_connections, and max_handshakes for TLS) and cefgate needs about \
             {DESCRIPTOR_RESERVE} more: raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower \
             max_connections, or accepting will fail when they are all in use"
        );
    } else {
        tracing::debug!("open-file limit {limit}");
    }
}

/// How long the output may take to stop after the shutdown deadline: an HTTP request in
/// flight ends within its own timeout.
const AFTER_GIVE_UP: Duration = Duration::from_secs(120);

/// One output's running delivery, and those a reload replaced that still settle their last
/// batches.
struct Outputs {
    name: String,
    reader: Arc<Reader>,
    give_up: CancellationToken,
    metrics: Arc<Metrics>,
    current: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    retired: Vec<tokio::task::JoinHandle<()>>,
}

impl Outputs {
    /// The output of `plan`, delivering from `reader` already.
    fn started(
        runtime: &tokio::runtime::Runtime,
        plan: &crate::config::OutputPlan,
        reader: Reader,
        give_up: &CancellationToken,
        metrics: &Arc<Metrics>,
    ) -> Result<Outputs, sink::OutputSetupError> {
        let mut output = Outputs {
            name: plan.name.clone(),
            reader: Arc::new(reader),
            give_up: give_up.clone(),
            metrics: metrics.clone(),
            current: None,
            retired: Vec::new(),
        };
        let _guard = runtime.enter();
        output.start(&plan.settings)?;
        Ok(output)
    }

    /// Builds an output from `settings` and lets it take batches; the one running before
    /// stops taking them and settles those it holds. Must run inside the runtime.
    fn start(&mut self, settings: &sink::OutputSettings) -> Result<(), sink::OutputSetupError> {
        let built = sink::build(settings, self.metrics.clone(), self.give_up.clone())?;
        if let Some((stop, task)) = self.current.take() {
            stop.cancel();
            self.retired.push(task);
            self.metrics.clear_stopped_routes();
        }
        let stop = CancellationToken::new();
        let mut delivery = built.delivery;
        delivery.retire_on(stop.clone());
        let task = tokio::spawn(sink::serve(
            Arc::new(delivery),
            self.reader.clone(),
            built.concurrency,
            stop.clone(),
        ));
        self.current = Some((stop, task));
        Ok(())
    }

    /// Waits until every output, current and retired, has settled what it took.
    async fn finish(&mut self) {
        if let Some((_, task)) = self.current.as_mut() {
            let _ = task.await;
        }
        for task in &mut self.retired {
            let _ = task.await;
        }
    }
}

/// One listener task and what identifies its settings.
struct RunningListener {
    /// Its settings (with the TLS files' contents): a reload keeps a listener whose
    /// fingerprint did not change.
    fingerprint: String,
    protocol: Protocol,
    /// The configured address (`127.0.0.1:0` stays that, whatever port it got).
    address: SocketAddr,
    /// Ends the listener and its connections.
    stop: CancellationToken,
    /// Ends only the taking of new connections (a child of `stop`).
    accepting: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    udp_address: Option<SocketAddr>,
    /// A second handle on the bound socket, for the settings that replace these: a reload
    /// hands the same socket on, so nothing queued in the kernel is lost and no port is
    /// given up.
    socket: BoundSocket,
}

/// A bound socket, as handed from a listener to the one a reload puts in its place.
enum BoundSocket {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

/// The listeners that run, and what a new one needs.
struct Listeners {
    /// Dropped at shutdown, after the listeners: the workers then see the end of the queue.
    frames: Option<flume::Sender<FrameBatch>>,
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    running: Vec<RunningListener>,
    /// Listeners a reload replaced that still read the connections they had.
    retired: Vec<tokio::task::JoinHandle<()>>,
    udp_addresses: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
}

impl Listeners {
    /// Starts a listener: on `socket` when a reload hands one on, else on a new bind.
    async fn start(
        &self,
        settings: &ListenerSettings,
        fingerprint: String,
        socket: Option<BoundSocket>,
    ) -> Result<RunningListener, RunError> {
        let l = Arc::new(settings.clone());
        let (protocol, address) = (l.protocol, l.address);
        let bind_error = |source: std::io::Error| RunError::Bind {
            protocol,
            address: address.to_string(),
            hint: bind_hint(&source, &address),
            source,
        };
        let stop = self.shutdown.child_token();
        let accepting = stop.child_token();
        let context = |local: SocketAddr| ListenerContext {
            queue: self
                .frames
                .clone()
                .expect("listeners start before shutdown"),
            metrics: self.metrics.clone(),
            counters: self.metrics.listener(&format!("{protocol} {local}")),
            allow: Arc::new(l.allow.clone()),
            shutdown: stop.clone(),
            budget: self.budget.clone(),
        };
        let handed_on = socket.is_some();
        let (task, udp_address, kept) = match (protocol, socket) {
            (Protocol::Udp, socket) => {
                let socket = match socket {
                    Some(BoundSocket::Udp(s)) => {
                        listen::udp::configure_buffer(&s, &l);
                        s
                    }
                    _ => listen::udp::bind(&l, address).map_err(bind_error)?,
                };
                let local = socket.local_addr().map_err(bind_error)?;
                let kept = socket.try_clone().map_err(bind_error)?;
                if handed_on {
                    tracing::info!("udp {local}: new settings in force");
                } else {
                    tracing::info!("listening on udp {local}");
                    self.udp_addresses.lock().expect("lock").push(local);
                }
                let ctx = context(local);
                (
                    tokio::spawn(listen::udp::serve(socket, l, ctx)),
                    Some(local),
                    BoundSocket::Udp(kept),
                )
            }
            (Protocol::Tcp | Protocol::Tls, socket) => {
                let listener = match socket {
                    Some(BoundSocket::Tcp(s)) => {
                        TcpListener::from_std(s.try_clone().map_err(bind_error)?)
                            .map_err(bind_error)?
                    }
                    _ => TcpListener::bind(address).await.map_err(bind_error)?,
                };
                let local = listener.local_addr().map_err(bind_error)?;
                if handed_on {
                    tracing::info!(
                        "{protocol} {local}: new settings for new connections; open ones keep theirs"
                    );
                } else {
                    tracing::info!("listening on {protocol} {local}");
                }
                let kept = std::os::fd::AsFd::as_fd(&listener)
                    .try_clone_to_owned()
                    .and_then(|fd| {
                        let std: std::net::TcpListener = fd.into();
                        std.set_nonblocking(true)?;
                        Ok(std)
                    })
                    .map_err(bind_error)?;
                let ctx = context(local);
                (
                    tokio::spawn(listen::tcp::serve(listener, l, ctx, accepting.clone())),
                    None,
                    BoundSocket::Tcp(kept),
                )
            }
        };
        Ok(RunningListener {
            fingerprint,
            protocol,
            address,
            stop,
            accepting,
            task,
            udp_address,
            socket: kept,
        })
    }

    /// Stops one listener and waits until it has handed on every complete frame.
    async fn stop(&self, l: RunningListener) {
        l.stop.cancel();
        let _ = l.task.await;
        if let Some(a) = l.udp_address {
            self.udp_addresses.lock().expect("lock").retain(|x| *x != a);
        }
    }

    /// Replaces listener `old` by one with new `settings` on the same socket. A UDP reader
    /// stops first (it hands on its batch; datagrams wait in the kernel meanwhile). A TCP or
    /// TLS listener stops accepting; its open connections go on being read, with the
    /// settings they started with, until they end or the service stops.
    async fn replace(
        &mut self,
        old: RunningListener,
        settings: &ListenerSettings,
        fingerprint: String,
    ) -> Result<RunningListener, RunError> {
        let socket = match &old.socket {
            BoundSocket::Udp(s) => s.try_clone().map(BoundSocket::Udp),
            BoundSocket::Tcp(s) => s.try_clone().map(BoundSocket::Tcp),
        };
        let socket = match socket {
            Ok(s) => s,
            Err(source) => {
                let e = RunError::Bind {
                    protocol: old.protocol,
                    address: old.address.to_string(),
                    hint: "",
                    source,
                };
                self.stop(old).await;
                return Err(e);
            }
        };
        let RunningListener {
            protocol,
            stop,
            accepting,
            mut task,
            udp_address,
            ..
        } = old;
        if protocol == Protocol::Udp {
            stop.cancel();
            let _ = (&mut task).await;
        } else {
            accepting.cancel();
        }
        match self.start(settings, fingerprint, Some(socket)).await {
            Ok(new) => {
                if protocol != Protocol::Udp {
                    self.retired.retain(|t| !t.is_finished());
                    self.retired.push(task);
                }
                Ok(new)
            }
            Err(e) => {
                // The old settings cannot take their connections back: stop them cleanly.
                if let Some(a) = udp_address {
                    self.udp_addresses.lock().expect("lock").retain(|x| *x != a);
                }
                stop.cancel();
                if !task.is_finished() {
                    let _ = task.await;
                }
                Err(e)
            }
        }
    }

    async fn stop_all(&mut self) {
        self.shutdown.cancel();
        for l in std::mem::take(&mut self.running) {
            let _ = l.task.await;
        }
        for task in std::mem::take(&mut self.retired) {
            let _ = task.await;
        }
        self.frames = None;
    }
}

/// Protocol, address and settings of a listener, with its TLS files' contents (a renewed
/// certificate is a change).
fn fingerprint(settings: &ListenerSettings) -> String {
    let mut text = format!(
        "{} {} {:?} {} {:?} {} {} {:?} {} {} {:?} {:?} {:?} {} {:?} {:?}",
        settings.protocol,
        settings.address,
        settings.framing,
        settings.max_message_bytes,
        settings.oversize,
        settings.max_connections,
        settings.max_connections_per_source,
        settings.frame_timeout,
        settings.max_handshakes,
        settings.proxy_protocol,
        settings.idle_timeout,
        settings.keepalive,
        settings.handshake_timeout,
        settings.receive_buffer_bytes,
        settings.allow,
        settings.zones,
    );
    if let Some(tls) = &settings.tls {
        text.push_str(&tls.fingerprint());
    }
    text
}

/// What SIGHUP does: reads the configuration file again and, when it is valid, recreates
/// the listeners whose settings changed (others keep their connections) and the output when
/// its settings changed or it writes a file (so that logrotate's HUP reopens it). A new
/// output takes the next batches at once; the old one settles those it holds. Nothing read
/// is dropped: a stopped listener hands on every complete frame first. An invalid file is
/// reported and the running configuration stays. Sections that shape the pipeline itself
/// (`[pipeline]`, `[batch]`, `[record]`, `[spool]`, `[metrics]`, `[log]`) take effect at
/// the next start, which the log says.
struct Reload {
    source: Option<PathBuf>,
    config: Config,
    resolved: Resolved,
    /// A digest of each output's secret files as last read, by output name: a rotated
    /// secret (same path, new contents) is a change, which rebuilds that output.
    secrets: Vec<(String, u64)>,
}

/// A digest of the files an output reads secrets from (client secret, shared key, client
/// certificate and key). Only compared, never shown or logged.
fn secret_files_digest(output: &crate::config::OutputConfig) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for file in [
        &output.client_secret_file,
        &output.shared_key_file,
        &output.client_certificate_file,
        &output.client_key_file,
    ] {
        match file.as_ref().map(|f| std::fs::read(f.get_ref())) {
            Some(Ok(bytes)) => hasher.update(&bytes),
            Some(Err(_)) => hasher.update(b"\0unreadable"),
            None => hasher.update(b"\0none"),
        }
    }
    hasher.digest()
}

fn secrets_of(config: &Config) -> Vec<(String, u64)> {
    config
        .output_names()
        .into_iter()
        .zip(&config.output)
        .map(|(name, o)| (name, secret_files_digest(o.get_ref())))
        .collect()
}

impl Reload {
    async fn apply(&mut self, listeners: &mut Listeners, outputs: &mut [Outputs]) {
        let Some(path) = &self.source else {
            tracing::warn!(
                "SIGHUP: running on the embedded default, there is no configuration file to read again"
            );
            return;
        };
        let (config, resolved) = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: {} is not valid; the running configuration stays:\n{e}",
                    path.display()
                );
                return;
            }
        };
        tracing::info!("SIGHUP: reloading {}", path.display());
        let mut later = Vec::new();
        if config.pipeline != self.config.pipeline {
            later.push("[pipeline]");
        }
        if config.batch != self.config.batch {
            later.push("[batch]");
        }
        if config.record != self.config.record {
            later.push("[record]");
        }
        if config.spool != self.config.spool {
            later.push("[spool]");
        }
        if config.metrics != self.config.metrics {
            later.push("[metrics]");
        }
        if !later.is_empty() {
            tracing::warn!(
                "SIGHUP: changes to {} take effect at the next start",
                later.join(", ")
            );
        }
        // Listeners: keep the unchanged; one on the same protocol and address with other
        // settings hands its socket to its successor (open connections go on); stop the
        // rest first (a recreated one may want the same address), then start the new.
        let wanted: Vec<(String, &ListenerSettings)> = resolved
            .listeners
            .iter()
            .map(|l| (fingerprint(l), l))
            .collect();
        let (keep, mut gone): (Vec<_>, Vec<_>) = std::mem::take(&mut listeners.running)
            .into_iter()
            .partition(|r| wanted.iter().any(|(f, _)| *f == r.fingerprint));
        listeners.running = keep;
        let mut failed = false;
        let mut handovers = Vec::new();
        for (f, settings) in &wanted {
            if listeners.running.iter().any(|r| r.fingerprint == *f) {
                continue;
            }
            if let Some(i) = gone
                .iter()
                .position(|r| r.protocol == settings.protocol && r.address == settings.address)
            {
                handovers.push((gone.remove(i), f.clone(), *settings));
            }
        }
        for l in gone {
            listeners.stop(l).await;
        }
        for (old, f, settings) in handovers {
            match listeners.replace(old, settings, f).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    failed = true;
                    tracing::error!("SIGHUP: {e}");
                }
            }
        }
        for (f, settings) in wanted {
            if listeners.running.iter().any(|r| r.fingerprint == f) {
                continue;
            }
            match listeners.start(settings, f, None).await {
                Ok(l) => listeners.running.push(l),
                Err(e) => {
                    failed = true;
                    tracing::error!("SIGHUP: {e}");
                }
            }
        }
        // Outputs: the same names in the same order can be rebuilt in place; adding,
        // removing or renaming one, or changing its `where` or `project_away`, changes the
        // decode stage, which takes a restart.
        let old_names = self.config.output_names();
        let new_names = config.output_names();
        let shape = |c: &Config| {
            c.output
                .iter()
                .map(|o| {
                    (
                        o.get_ref().predicate.clone(),
                        o.get_ref().project_away.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if old_names != new_names || shape(&config) != shape(&self.config) {
            tracing::warn!(
                "SIGHUP: outputs added, removed or renamed, or a `where` or `project_away` changed: that takes effect at the next start; the outputs' other settings are applied now"
            );
        }
        for (i, plan) in resolved.outputs.iter().enumerate() {
            let Some(output) = outputs.iter_mut().find(|o| o.name == plan.name) else {
                continue;
            };
            let before = self.config.output.get(
                old_names
                    .iter()
                    .position(|n| *n == plan.name)
                    .unwrap_or(usize::MAX),
            );
            let rotated = self
                .secrets
                .iter()
                .find(|(n, _)| *n == plan.name)
                .is_none_or(|(_, d)| *d != secret_files_digest(config.output[i].get_ref()));
            if rotated && before.is_some_and(|b| *b == config.output[i]) {
                tracing::info!("SIGHUP: output {}: a secret file changed", plan.name);
            }
            let changed = rotated || before.is_none_or(|b| *b != config.output[i]);
            let file_output = matches!(plan.settings.destination, sink::Destination::File(_));
            if changed || file_output {
                match output.start(&plan.settings) {
                    Ok(()) => tracing::info!("SIGHUP: output {} was (re)opened", plan.name),
                    Err(e) => {
                        failed = true;
                        tracing::error!(
                            "SIGHUP: output {}: the new settings cannot start ({e}); the old ones keep running",
                            plan.name
                        );
                    }
                }
            }
        }
        tracing::info!(
            "SIGHUP: reload done{}; {} listener(s) running",
            if failed {
                " with errors (see above)"
            } else {
                ""
            },
            listeners.running.len()
        );
        self.secrets = secrets_of(&config);
        self.config = config;
        self.resolved = resolved;
    }
}

/// Gives memory back to the system once a burst has passed: glibc's allocator keeps freed
/// memory in its arenas (measured: 135-200 MiB held after a 1,000-connection burst), and
/// `malloc_trim` returns it. Runs when the budget, having held more than 16 MiB, is down to
/// an eighth of that.
async fn return_memory_after_bursts(budget: Arc<MemoryBudget>, shutdown: CancellationToken) {
    let mut high = 0usize;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.cancelled() => return,
        }
        let used = budget.used();
        high = high.max(used);
        if high > 16 << 20 && used < high / 8 {
            high = used;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory held by the allocator; it has no
            // preconditions and touches no memory in use.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

async fn poll_kernel_drops(
    metrics: Arc<Metrics>,
    addresses: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    shutdown: CancellationToken,
) {
    let record = || {
        let list = addresses.lock().expect("lock").clone();
        let total: u64 = list
            .iter()
            .filter_map(|a| listen::udp::kernel_drops(*a))
            .sum();
        metrics
            .udp_dropped_kernel
            .store(total, std::sync::atomic::Ordering::Relaxed);
    };
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

/// What `cefgate spool drain` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub chunks: usize,
    pub rows: usize,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Chunks still in the spool folders afterwards (not delivered in time).
    pub left: usize,
}

/// `cefgate spool drain`: delivers what a stopped instance left in its spool (a pod scaled
/// away, a host retired) through the configured outputs, and returns. Nothing is received.
/// Rows still undelivered at `timeout` stay in the spool; rows the service refuses go to the
/// dead-letter file, as in a run.
pub fn drain(resolved: &Resolved, timeout: Duration) -> Result<DrainSummary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cefgate-drain")
        .build()
        .map_err(RunError::Runtime)?;
    let metrics = Arc::new(Metrics::default());
    let give_up = CancellationToken::new();
    let mut summary = DrainSummary::default();
    let mut outputs = Vec::new();
    for plan in &resolved.outputs {
        let BufferSettings::Spool(spool) = &plan.buffer else {
            continue;
        };
        if !spool.path.is_dir() {
            continue;
        }
        let (writer, reader, recovery) = buffer::open(&plan.buffer, metrics.clone())?;
        // No input: the spool ends once what it holds is handed out.
        drop(writer);
        summary.chunks += recovery.chunks;
        summary.rows += recovery.rows;
        tracing::info!(
            "{}: {} chunk(s) with {} row(s) to deliver from {}",
            plan.name,
            recovery.chunks,
            recovery.rows,
            spool.path.display()
        );
        let output = Outputs::started(&runtime, plan, reader, &give_up, &metrics)?;
        outputs.push(output);
    }
    let finished = runtime.block_on(async {
        let all = async {
            for output in &mut outputs {
                output.finish().await;
            }
        };
        tokio::pin!(all);
        if tokio::time::timeout(timeout, &mut all).await.is_ok() {
            return true;
        }
        give_up.cancel();
        tokio::time::timeout(AFTER_GIVE_UP, all).await.is_ok()
    });
    if !finished {
        return Err(RunError::OutputStuck(AFTER_GIVE_UP));
    }
    summary.delivered = Metrics::get(&metrics.rows_delivered);
    summary.dead_lettered = Metrics::get(&metrics.rows_dead_lettered);
    summary.left = resolved
        .outputs
        .iter()
        .filter_map(|p| match &p.buffer {
            BufferSettings::Spool(s) => Some(crate::spool::chunks_in(&s.path)),
            BufferSettings::Memory => None,
        })
        .sum();
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(summary)
}
