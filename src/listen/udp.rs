//! UDP syslog (RFC 5426): one message per datagram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{FrameBatch, ListenerContext, ListenerSettings};
use crate::frame::{Oversize, trim_trailer};
use crate::metrics::Metrics;

/// Largest UDP payload (64 KiB); anything larger cannot arrive in one datagram.
const MAX_DATAGRAM: usize = 65_536;

/// Binds the socket with the configured receive buffer, and says when the kernel gave less.
pub fn bind(config: &ListenerSettings, address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    if let Err(e) = socket.set_recv_buffer_size(config.receive_buffer_bytes) {
        tracing::warn!("udp {address}: cannot set the receive buffer: {e}");
    }
    // Linux reports twice what it grants (bookkeeping overhead).
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    if granted < config.receive_buffer_bytes && !CAPPED_SAID.swap(true, Ordering::Relaxed) {
        // Once per process, after the bind worked; a warning only when it was asked for.
        let text = format!(
            "udp {address}: the kernel capped the receive buffer at {granted} bytes \
             ({} asked); raise net.core.rmem_max to absorb bursts",
            config.receive_buffer_bytes
        );
        if config.receive_buffer_asked {
            tracing::warn!("{text}");
        } else {
            tracing::info!("{text}");
        }
    }
    UdpSocket::from_std(socket.into())
}

/// The capped-buffer note was given.
static CAPPED_SAID: AtomicBool = AtomicBool::new(false);

/// Receives until shutdown. Datagrams are batched without waiting: after one arrives, those
/// already queued in the kernel are taken too, up to a batch.
pub async fn serve(socket: UdpSocket, config: Arc<ListenerSettings>, ctx: ListenerContext) {
    let local = socket.local_addr().ok();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut batch = FrameBatch::for_listener(64 * 1024, &config.zones);
    let max = config.max_message_bytes;
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = ctx.shutdown.cancelled() => break,
        };
        let mut next = Some(first);
        while let Some(result) = next.take() {
            match result {
                Ok((n, peer)) => {
                    Metrics::add(&ctx.metrics.udp_datagrams, 1);
                    Metrics::add(&ctx.metrics.udp_bytes, n as u64);
                    Metrics::add(&ctx.counters.messages, 1);
                    Metrics::add(&ctx.counters.bytes, n as u64);
                    if !ctx.allowed(peer.ip()) {
                        Metrics::add(&ctx.metrics.udp_denied, 1);
                    } else {
                        let message = trim_trailer(&buf[..n]);
                        if message.len() > max {
                            match config.oversize {
                                Oversize::Truncate => {
                                    Metrics::add(&ctx.metrics.oversize_truncated, 1);
                                    batch.push(&message[..max], Some(peer.ip()), true);
                                }
                                Oversize::Drop => Metrics::add(&ctx.metrics.oversize_dropped, 1),
                            }
                        } else if !message.is_empty() {
                            batch.push(message, Some(peer.ip()), false);
                        }
                    }
                }
                Err(e) => tracing::debug!("udp {local:?}: receive error: {e}"),
            }
            if !batch.is_full() {
                next = match socket.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                    other => Some(other),
                };
            }
        }
        if !batch.is_empty() {
            let mut full = std::mem::replace(
                &mut batch,
                FrameBatch::for_listener(64 * 1024, &config.zones),
            );
            let frames = full.len() as u64;
            if ctx.budget.is_full() {
                // UDP cannot push back: the datagrams are lost, and counted.
                Metrics::add(&ctx.metrics.udp_dropped_memory_full, frames);
                continue;
            }
            full.charge_to(&ctx.budget);
            if ctx.queue.try_send(full).is_err() {
                // UDP cannot push back: the datagrams are lost, and counted.
                Metrics::add(&ctx.metrics.udp_dropped_queue_full, frames);
            }
        }
    }
}

/// The kernel's drop counter for the UDP socket bound to `local` (from /proc/net/udp{,6}).
pub fn kernel_drops(local: SocketAddr) -> Option<u64> {
    let file = if local.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    let table = std::fs::read_to_string(file).ok()?;
    let port = format!(":{:04X}", local.port());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|l| l.ends_with(&port))
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<u64>().ok())
        .reduce(|a, b| a + b)
}
