//! What a run asks of the operating system: an open-file limit that fits the listeners,
//! memory handed back after a burst, and the kernel's count of UDP datagrams dropped before
//! cefgate read them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::budget::MemoryBudget;
use crate::config::Resolved;
use crate::listen::{self, Protocol};
use crate::metrics::Metrics;

/// Descriptors besides connections: listeners, the spool's files, outputs' sockets, the
/// metrics endpoint, the runtime.
const DESCRIPTOR_RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a process starts with 1024 on most
/// systems) and warns when the listeners' `max_connections` could need more than that.
pub(super) fn descriptors(resolved: &Resolved) {
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

/// Gives memory back to the system once a burst has passed: glibc's allocator keeps freed
/// memory in its arenas (measured: 135-200 MiB held after a 1,000-connection burst), and
/// `malloc_trim` returns it. Runs when the budget, having held more than 16 MiB, is down to
/// an eighth of that.
pub(super) async fn return_memory_after_bursts(
    budget: Arc<MemoryBudget>,
    shutdown: CancellationToken,
) {
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

/// Reads the kernel's drop counts of the UDP sockets every second into
/// `udp_dropped_kernel`, and once more after the listeners stopped.
pub(super) async fn poll_kernel_drops(
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
