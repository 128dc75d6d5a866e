//! TCP syslog (RFC 6587), and the connection reader TLS shares.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{FrameBatch, ListenerContext, ListenerSettings};
use crate::frame::FrameDecoder;
use crate::metrics::Metrics;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// Accepts connections until shutdown. `tls`, when set, wraps each one first.
/// One line per 10 s for faults that repeat per connection; the counters have them all.
static ACCEPT_FAILED: crate::metrics::Throttle =
    crate::metrics::Throttle::new(Duration::from_secs(10));
static REFUSED: crate::metrics::Throttle = crate::metrics::Throttle::new(Duration::from_secs(10));

pub async fn serve(listener: TcpListener, config: Arc<ListenerSettings>, ctx: ListenerContext) {
    let tls = config.tls.clone();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                if let Some(held) = ACCEPT_FAILED.allow() {
                    tracing::warn!("accept failed: {e}{}", crate::metrics::held_back(held));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !ctx.allowed(peer.ip()) {
            Metrics::add(&ctx.metrics.connections_refused, 1);
            Metrics::add(&ctx.counters.connections_refused, 1);
            if let Some(held) = REFUSED.allow() {
                tracing::info!(
                    "refused {peer}: not in the allowlist{}",
                    crate::metrics::held_back(held)
                );
            }
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Metrics::add(&ctx.metrics.connections_refused, 1);
            Metrics::add(&ctx.counters.connections_refused, 1);
            if let Some(held) = REFUSED.allow() {
                tracing::warn!(
                    "refused {peer}: max_connections ({}) reached{}",
                    config.max_connections,
                    crate::metrics::held_back(held)
                );
            }
            continue;
        };
        set_keepalive(&stream, config.keepalive);
        Metrics::add(&ctx.metrics.connections_accepted, 1);
        Metrics::add(&ctx.counters.connections_accepted, 1);
        let (config, ctx, tls) = (config.clone(), ctx.clone(), tls.clone());
        connections.spawn(async move {
            Metrics::add(&ctx.metrics.connections_active, 1);
            Metrics::add(&ctx.counters.connections_active, 1);
            match tls {
                None => read_stream(stream, peer, &config, &ctx).await,
                Some(acceptor) => {
                    if let Some(stream) = acceptor.handshake(stream, peer, &config, &ctx).await {
                        read_stream(stream, peer, &config, &ctx).await;
                    }
                }
            }
            ctx.metrics
                .connections_active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            ctx.counters
                .connections_active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(slot);
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Shutdown: every connection stops reading, hands on what it has read, and ends.
    while connections.join_next().await.is_some() {}
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
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
    let mut batch = FrameBatch::for_listener(READ_SIZE, &config.zones);
    let ip: IpAddr = peer.ip();
    let idle = config.idle_timeout;
    loop {
        if buf.capacity() - buf.len() < READ_SIZE {
            buf.reserve(READ_SIZE);
        }
        if ctx.budget.is_full() {
            // The memory budget is used up: read nothing until it has room, so the kernel's
            // buffers fill and the sender's window closes.
            Metrics::add(&ctx.metrics.reads_paused_memory_full, 1);
            tokio::select! {
                _ = ctx.budget.room() => {}
                _ = ctx.shutdown.cancelled() => {}
            }
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => r,
            _ = ctx.shutdown.cancelled() => Ok(Ok(0)),
        };
        let eof = match read {
            Ok(Ok(0)) => true,
            Ok(Ok(n)) => {
                Metrics::add(&ctx.metrics.tcp_bytes, n as u64);
                Metrics::add(&ctx.counters.bytes, n as u64);
                false
            }
            Ok(Err(e)) => {
                tracing::debug!("{peer}: read error: {e}");
                true
            }
            Err(_) => {
                Metrics::add(&ctx.metrics.connections_idle_closed, 1);
                tracing::debug!("{peer}: idle for {idle:?}, closing");
                true
            }
        };
        let before = decoder.stats;
        let used = decoder.decode(&buf, eof, |m, truncated| batch.push(m, Some(ip), truncated));
        buf.drain(..used);
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
        if !batch.is_empty() && (eof || batch.is_full() || buf.is_empty()) {
            let mut full = std::mem::replace(
                &mut batch,
                FrameBatch::for_listener(READ_SIZE, &config.zones),
            );
            full.charge_to(&ctx.budget);
            Metrics::add(&ctx.metrics.tcp_frames, full.len() as u64);
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
