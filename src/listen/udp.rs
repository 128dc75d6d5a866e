//! UDP syslog (RFC 5426): one message per datagram.
//!
//! UDP cannot push back: a datagram the kernel has no room for is lost. So the socket is
//! read by a thread of its own, blocked in `recvmmsg` (up to [`SLOTS`] datagrams per call),
//! rather than by a task of the async runtime, which a busy runtime or a busy machine can
//! delay while the kernel's buffer fills. The receive buffer is forced past
//! `net.core.rmem_max` where the process may do so. The thread keeps the default priority:
//! raised (nice -10), it took the CPU from the decode threads and the queue between them
//! overflowed instead (1.2% lost at 107,000 msgs/s, none at 149,000 without).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use super::{FrameBatch, ListenerContext, ListenerSettings};
use crate::frame::{Oversize, trim_trailer};
use crate::metrics::Metrics;

/// Largest UDP payload (64 KiB); anything larger cannot arrive in one datagram.
const MAX_DATAGRAM: usize = 65_536;

/// Datagrams taken per `recvmmsg` call. Their buffers (`SLOTS` x 64 KiB) are the thread's
/// only memory besides the batch it fills.
const SLOTS: usize = 32;

/// How long the receive thread waits for a datagram before it looks at the shutdown signal
/// (and offers a batch the decode threads had no room for once more).
const WAKE_UP: Duration = Duration::from_millis(20);

/// Binds the socket with the configured receive buffer, and says when the kernel gave less.
pub fn bind(config: &ListenerSettings, address: SocketAddr) -> io::Result<UdpSocket> {
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
    let mut granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < config.receive_buffer_bytes && force_receive_buffer(&socket, config) {
        granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    }
    socket.bind(&address.into())?;
    socket.set_read_timeout(Some(WAKE_UP))?;
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
    Ok(socket.into())
}

/// Applies `receive_buffer_bytes` to a socket already bound (a reload handed it on with
/// new settings); datagrams it holds stay queued.
pub fn configure_buffer(socket: &UdpSocket, config: &ListenerSettings) {
    let socket = socket2::SockRef::from(socket);
    if socket.recv_buffer_size().unwrap_or(0) / 2 == config.receive_buffer_bytes {
        return;
    }
    if let Err(e) = socket.set_recv_buffer_size(config.receive_buffer_bytes) {
        tracing::warn!("udp: cannot set the receive buffer: {e}");
    }
    if socket.recv_buffer_size().unwrap_or(0) / 2 < config.receive_buffer_bytes {
        force_receive_buffer(&socket, config);
    }
}

/// `SO_RCVBUFFORCE`: the configured size even above `net.core.rmem_max`, which a process
/// with `CAP_NET_ADMIN` (root, or the capability in the service unit) may set.
fn force_receive_buffer(socket: &Socket, config: &ListenerSettings) -> bool {
    let size = libc::c_int::try_from(config.receive_buffer_bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the option value is a c_int that lives across the call, and its size is given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The capped-buffer note was given.
static CAPPED_SAID: AtomicBool = AtomicBool::new(false);

/// Receives until shutdown, on a thread of its own (see the module documentation); the
/// future ends when the thread does.
pub async fn serve(socket: UdpSocket, config: Arc<ListenerSettings>, ctx: ListenerContext) {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let local = socket.local_addr().ok();
    let spawned = std::thread::Builder::new()
        .name("udp-receive".into())
        .spawn(move || {
            receive(&socket, &config, &ctx);
            drop(done);
        });
    match spawned {
        Ok(_) => {
            let _ = finished.await;
        }
        Err(e) => tracing::error!("udp {local:?}: cannot start the receive thread: {e}"),
    }
}

/// The receive loop. Datagrams are batched without waiting: a batch is handed on when it is
/// full or when the kernel had no more queued.
fn receive(socket: &UdpSocket, config: &ListenerSettings, ctx: &ListenerContext) {
    let local = socket.local_addr().ok();
    let mut slots = Slots::new();
    let mut batch = FrameBatch::for_listener(64 * 1024, &config.zones);
    let max = config.max_message_bytes;
    while !ctx.shutdown.is_cancelled() {
        let received = match slots.receive(socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                0
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("udp {local:?}: receive error: {e}");
                0
            }
        };
        // Counted once per call, not per datagram: the counters are shared atomics.
        let (mut bytes, mut denied) = (0u64, 0u64);
        for i in 0..received {
            let (data, peer) = slots.datagram(i);
            bytes += data.len() as u64;
            // A sender whose address cannot be read cannot pass an allowlist.
            let Some(peer) = peer.filter(|peer| ctx.allowed(*peer)) else {
                denied += 1;
                continue;
            };
            let message = trim_trailer(data);
            if message.len() > max {
                match config.oversize {
                    Oversize::Truncate => {
                        Metrics::add(&ctx.metrics.oversize_truncated, 1);
                        batch.push(&message[..max], Some(peer), true);
                    }
                    Oversize::Drop => Metrics::add(&ctx.metrics.oversize_dropped, 1),
                }
            } else if !message.is_empty() {
                batch.push(message, Some(peer), false);
            }
        }
        if received > 0 {
            Metrics::add(&ctx.counters.messages, received as u64);
            Metrics::add(&ctx.counters.bytes, bytes);
            Metrics::add(&ctx.metrics.udp_denied, denied);
        }
        // Handed on as soon as the kernel has nothing more queued, so that a quiet sender's
        // message is not held back.
        if (received < SLOTS || batch.is_full()) && !batch.is_empty() {
            let full = std::mem::replace(
                &mut batch,
                FrameBatch::for_listener(64 * 1024, &config.zones),
            );
            if let Some(kept) = hand_on(full, ctx) {
                batch = kept;
            }
        }
    }
    // At shutdown the last batch may wait a little for room.
    if !batch.is_empty()
        && let Some(kept) = hand_on(batch, ctx)
    {
        let frames = kept.len() as u64;
        if ctx
            .queue
            .send_timeout(kept, Duration::from_secs(1))
            .is_err()
        {
            Metrics::add(&ctx.metrics.udp_dropped_queue_full, frames);
        }
    }
}

/// Gives a batch to the decode threads. When they are behind (the queue is full) a batch
/// that still has room comes back, to be handed on with the next datagrams: a burst then
/// waits in the batch and the kernel's buffer rather than being lost. A full batch that
/// finds no room, or any batch when the memory budget is used up, is lost and counted.
fn hand_on(mut batch: FrameBatch, ctx: &ListenerContext) -> Option<FrameBatch> {
    let frames = batch.len() as u64;
    if ctx.budget.is_full() {
        // UDP cannot push back: the datagrams are lost, and counted.
        Metrics::add(&ctx.metrics.udp_dropped_memory_full, frames);
        return None;
    }
    batch.charge_to(&ctx.budget);
    match ctx.queue.try_send(batch) {
        Ok(()) => None,
        Err(flume::TrySendError::Full(batch)) if !batch.is_full() => Some(batch),
        Err(_) => {
            // UDP cannot push back: the datagrams are lost, and counted.
            Metrics::add(&ctx.metrics.udp_dropped_queue_full, frames);
            None
        }
    }
}

/// The buffers, addresses and headers of one `recvmmsg` call.
struct Slots {
    buffers: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point into the same value's own
// vectors, which are never resized after `new`; moving the value moves no vector storage.
unsafe impl Send for Slots {}

impl Slots {
    fn new() -> Self {
        let mut buffers = vec![0u8; SLOTS * MAX_DATAGRAM];
        // SAFETY: sockaddr_storage is plain data, for which all zero bytes are valid.
        let mut addresses: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; SLOTS];
        let mut iovecs: Vec<libc::iovec> = buffers
            .chunks_mut(MAX_DATAGRAM)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            })
            .collect();
        let headers = (0..SLOTS)
            .map(|i| {
                // SAFETY: mmsghdr is plain data, for which all zero bytes are valid.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&raw mut addresses[i]).cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
                h.msg_hdr.msg_iov = &raw mut iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Self {
            buffers,
            addresses,
            iovecs,
            headers,
        }
    }

    /// Waits (up to the socket's read timeout) for one datagram, then takes those already
    /// queued, up to [`SLOTS`]. Returns how many arrived.
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for h in &mut self.headers {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        debug_assert_eq!(self.iovecs.len(), SLOTS);
        // SAFETY: every header points at its own address slot and iovec, and every iovec at
        // its own MAX_DATAGRAM bytes of `buffers`; all live as long as `self`, and the kernel
        // writes no more than the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The payload and sender of datagram `i` of the last [`Slots::receive`].
    fn datagram(&self, i: usize) -> (&[u8], Option<IpAddr>) {
        let len = (self.headers[i].msg_len as usize).min(MAX_DATAGRAM);
        let data = &self.buffers[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len];
        (data, peer_ip(&self.addresses[i]))
    }
}

/// The IP address in a `sockaddr_storage` the kernel filled in.
fn peer_ip(address: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(address.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let v4 =
                unsafe { &*(address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe {
                &*(address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
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
