//! TCP syslog (RFC 6587), and the connection reader TLS shares.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::either::Either;

use super::{FrameBatch, ListenerContext, ListenerSettings, proxy};
use crate::frame::FrameDecoder;
use crate::metrics::Metrics;

/// Bytes asked of the socket per read: a connection starts small and doubles its reads while
/// they come back full, up to the largest. Memory a connection holds between reads is its
/// read buffer and an unfinished frame, nothing more: its frames are handed on after every
/// read, and a buffer left empty shrinks back.
const READ_MIN: usize = 8 * 1024;
const READ_MAX: usize = 64 * 1024;

/// One line per 10 s for faults that repeat per connection; the counters have them all.
static ACCEPT_FAILED: crate::log_throttle::Throttle =
    crate::log_throttle::Throttle::new(Duration::from_secs(10));
static REFUSED: crate::log_throttle::Throttle =
    crate::log_throttle::Throttle::new(Duration::from_secs(10));

/// Connections per source address, for `max_connections_per_source`.
#[derive(Default)]
struct Sources(std::sync::Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`Sources`], given back when the connection ends.
struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Sources {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut map = self.0.lock().expect("sources lock");
        let n = map.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.sources.0.lock().expect("sources lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

fn refuse(ctx: &ListenerContext, peer: SocketAddr, why: std::fmt::Arguments<'_>) {
    Metrics::add(&ctx.counters.connections_refused, 1);
    if let Some(held) = REFUSED.allow() {
        tracing::warn!(
            "refused {peer}: {why}{}",
            crate::log_throttle::held_back(held)
        );
    }
}

/// What every connection of one listener shares: its settings and limits.
struct Admission {
    config: Arc<ListenerSettings>,
    ctx: ListenerContext,
    /// `max_connections`.
    slots: Arc<Semaphore>,
    /// `max_handshakes`: TLS handshakes and PROXY headers in progress.
    handshakes: Arc<Semaphore>,
    /// `max_connections_per_source`.
    sources: Arc<Sources>,
}

/// Accepts connections until shutdown. `tls`, when set, wraps each one first.
///
/// Limits, checked in this order: `max_handshakes` for a connection that owes a PROXY header
/// or a TLS handshake (it holds no connection slot meanwhile, so stalled handshakes cannot
/// lock senders out), the allowlist and `max_connections_per_source` for the sender (the
/// one its PROXY header names, when the listener takes them; one host cannot take every
/// slot), then `max_connections`. When the process runs out of descriptors, accepting backs
/// off (10 ms doubling to 1 s) instead of spinning; the kernel queues (and then refuses)
/// connections meanwhile.
///
/// `accepting` ends the taking of new connections only: the connections already open keep
/// being read until they end or `ctx.shutdown` fires. A reload that changes a listener's
/// settings (a renewed certificate, a new timeout) uses that: the old accept loop stops, a
/// new one with the new settings takes over the same socket, and established sessions go
/// on with the settings they started with.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ListenerSettings>,
    ctx: ListenerContext,
    accepting: tokio_util::sync::CancellationToken,
) {
    let admission = Arc::new(Admission {
        slots: Arc::new(Semaphore::new(config.max_connections)),
        handshakes: Arc::new(Semaphore::new(config.max_handshakes)),
        sources: Arc::new(Sources::default()),
        config,
        ctx: ctx.clone(),
    });
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = accepting.cancelled() => break,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) => {
                Metrics::add(&ctx.metrics.accept_errors, 1);
                let out_of_descriptors = matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
                backoff = if out_of_descriptors {
                    (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
                } else {
                    Duration::from_millis(10)
                };
                if let Some(held) = ACCEPT_FAILED.allow() {
                    tracing::warn!(
                        "accept failed: {e}{}; waiting {backoff:?}{}",
                        if out_of_descriptors {
                            " (out of file descriptors: raise LimitNOFILE / ulimit -n, or lower max_connections)"
                        } else {
                            ""
                        },
                        crate::log_throttle::held_back(held)
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = accepting.cancelled() => break,
                    _ = ctx.shutdown.cancelled() => break,
                }
                continue;
            }
        };
        let config = &admission.config;
        if config.proxy_protocol
            && !config.proxy_from.is_empty()
            && !super::in_ranges(&config.proxy_from, peer.ip())
        {
            // Only the balancers in `proxy_from` may say who the sender is; anyone else
            // would pick its own address past the allowlist and the per-source limit.
            Metrics::add(&ctx.metrics.proxy_peers_refused, 1);
            refuse(
                &ctx,
                peer,
                format_args!(
                    "not in proxy_from: only the balancers listed there may send PROXY headers"
                ),
            );
            continue;
        }
        let pending = if config.proxy_protocol || config.tls.is_some() {
            match admission.handshakes.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    Metrics::add(&ctx.metrics.handshakes_refused, 1);
                    refuse(
                        &ctx,
                        peer,
                        format_args!("max_handshakes ({}) in progress", config.max_handshakes),
                    );
                    continue;
                }
            }
        } else {
            None
        };
        connections.spawn(admission.clone().connection(stream, peer, pending));
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Shutdown: every connection stops reading, hands on what it has read, and ends.
    while connections.join_next().await.is_some() {}
}

impl Admission {
    /// One connection: its PROXY header (if the listener takes them), the sender's checks,
    /// its TLS handshake (if any), a connection slot, then its frames until it ends.
    async fn connection(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        pending: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let (config, ctx) = (&self.config, &self.ctx);
        set_keepalive(&stream, config.keepalive);
        let sender = if config.proxy_protocol {
            match proxy::read_header(&mut stream, config.handshake_timeout).await {
                Ok(proxy::Source::Client(address)) => address,
                Ok(proxy::Source::Itself) => peer,
                Err(e) => {
                    Metrics::add(&ctx.metrics.proxy_headers_refused, 1);
                    refuse(ctx, peer, format_args!("{e}"));
                    return;
                }
            }
        } else {
            peer
        };
        if !ctx.allowed(sender.ip()) {
            refuse(ctx, sender, format_args!("not in the allowlist"));
            return;
        }
        let Some(source) = self
            .sources
            .take(sender.ip(), config.max_connections_per_source)
        else {
            Metrics::add(&ctx.metrics.connections_refused_per_source, 1);
            refuse(
                ctx,
                sender,
                format_args!(
                    "its address holds max_connections_per_source ({}) connections",
                    config.max_connections_per_source
                ),
            );
            return;
        };
        let stream = match &config.tls {
            Some(acceptor) => match acceptor.handshake(stream, sender, config, ctx).await {
                Some(tls) => Either::Left(tls),
                None => return,
            },
            None => Either::Right(stream),
        };
        drop(pending);
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            refuse(
                ctx,
                sender,
                format_args!("max_connections ({}) reached", config.max_connections),
            );
            return;
        };
        Metrics::add(&ctx.counters.connections_accepted, 1);
        let _active = Active::new(ctx);
        read_stream(stream, sender, config, ctx).await;
        drop((slot, source));
    }
}

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Counts a connection in its listener's `connections_active` while it lives (the total
/// `connections_active` is their sum).
struct Active(ListenerContext);

impl Active {
    fn new(ctx: &ListenerContext) -> Self {
        Metrics::add(&ctx.counters.connections_active, 1);
        Active(ctx.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.counters.connections_active.fetch_sub(1, Relaxed);
    }
}

fn set_keepalive(stream: &TcpStream, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return;
    };
    let keepalive = TcpKeepalive::new().with_time(idle);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!("cannot set keepalive: {e}");
    }
}

/// Reads one connection to its end (or shutdown, or idle timeout), framing as it goes. Each
/// read's frames are queued before the next read: a full queue stops the reading.
pub async fn read_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    config: &ListenerSettings,
    ctx: &ListenerContext,
) {
    let mut decoder = FrameDecoder::new(config.framing, config.max_message_bytes, config.oversize);
    let mut buf: Vec<u8> = Vec::new();
    let mut read_size = READ_MIN;
    let ip: IpAddr = peer.ip();
    let idle = config.idle_timeout;
    // When the frame in progress began (bytes of it are held, or it is being skipped).
    let mut frame_since: Option<std::time::Instant> = None;
    loop {
        buf.reserve(read_size);
        if ctx.budget.is_full() {
            // The memory budget is used up: read nothing until it has room, so the kernel's
            // buffers fill and the sender's window closes.
            Metrics::add(&ctx.metrics.reads_paused_memory_full, 1);
            tokio::select! {
                _ = ctx.budget.room() => {}
                _ = ctx.shutdown.cancelled() => {}
            }
        }
        // Each byte restarts the idle timer; nothing restarts a frame's deadline.
        let frame_left = frame_since.map(|t| config.frame_timeout.saturating_sub(t.elapsed()));
        let wait = frame_left.map_or(idle, |left| left.min(idle));
        let mut stopping = false;
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read_buf(&mut buf)) => r,
            _ = ctx.shutdown.cancelled() => {
                stopping = true;
                Ok(Ok(0))
            }
        };
        let mut cut = false;
        let eof = match read {
            // Shutdown stopped the reading in the middle of a frame: the sender had not
            // finished it, so it is handed on marked truncated, not as if it were whole (a
            // sender's own close, by contrast, ends its last frame).
            Ok(Ok(0)) if stopping && !buf.is_empty() && !decoder.in_skip() => {
                Metrics::add(&ctx.metrics.frames_cut_at_shutdown, 1);
                tracing::debug!(
                    "{peer}: shutdown with a frame unfinished; handing it on truncated"
                );
                cut = true;
                true
            }
            Ok(Ok(0)) => true,
            Ok(Ok(n)) => {
                Metrics::add(&ctx.counters.bytes, n as u64);
                read_size = if n >= read_size {
                    (read_size * 2).min(READ_MAX)
                } else if n < read_size / 4 {
                    (read_size / 2).max(READ_MIN)
                } else {
                    read_size
                };
                false
            }
            Ok(Err(e)) => {
                tracing::debug!("{peer}: read error: {e}");
                true
            }
            Err(_) if frame_since.is_some_and(|t| t.elapsed() >= config.frame_timeout) => {
                Metrics::add(&ctx.metrics.frames_timed_out, 1);
                tracing::debug!(
                    "{peer}: a frame unfinished after {:?}; handing on what arrived and closing",
                    config.frame_timeout
                );
                cut = true;
                true
            }
            Err(_) => {
                Metrics::add(&ctx.metrics.connections_idle_closed, 1);
                tracing::debug!("{peer}: idle for {idle:?}, closing");
                true
            }
        };
        let mut batch = FrameBatch::for_listener(0, &config.zones);
        batch
            .data
            .reserve(buf.len().min(READ_MAX + config.max_message_bytes));
        if cut {
            // Counted as frames_timed_out or frames_cut_at_shutdown above; the row says
            // message-truncated.
            decoder.cut(&buf, |m, truncated| batch.push(m, Some(ip), truncated));
            buf.clear();
        }
        let before = decoder.stats;
        let used = decoder.decode(&buf, eof, |m, truncated| batch.push(m, Some(ip), truncated));
        buf.drain(..used);
        frame_since = if buf.is_empty() && !decoder.in_skip() {
            None
        } else {
            frame_since.or_else(|| Some(std::time::Instant::now()))
        };
        let stats = decoder.stats;
        Metrics::add(
            &ctx.metrics.oversize_truncated,
            stats.truncated - before.truncated,
        );
        Metrics::add(
            &ctx.metrics.oversize_dropped,
            stats.dropped - before.dropped,
        );
        Metrics::add(
            &ctx.metrics.framing_errors,
            stats.framing_errors - before.framing_errors,
        );
        Metrics::add(
            &ctx.metrics.framing_bytes_skipped,
            stats.skipped_bytes - before.skipped_bytes,
        );
        if buf.is_empty() && buf.capacity() > 2 * read_size {
            buf.shrink_to(READ_MIN);
        }
        if !batch.is_empty() {
            let mut full = batch;
            full.charge_to(&ctx.budget);
            Metrics::add(&ctx.counters.messages, full.len() as u64);
            // Waits while the workers are behind: this is the backpressure.
            if ctx.queue.send_async(full).await.is_err() {
                tracing::error!("{peer}: the pipeline is gone; closing");
                return;
            }
        }
        if eof {
            // Close our side cleanly (for TLS: close_notify) so the sender knows all was read.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
            return;
        }
    }
}
