//! The HTTP side of the monitor: `/metrics`, `/health` and `/ready` on `[metrics] address`,
//! with limits no client can get past, so that it never takes what the listeners and
//! outputs need.
//!
//! - **A connection cap.** At most [`MAX_CONNECTIONS`] connections are open at once. Every
//!   connection is accepted at once (the kernel's queue keeps moving, so `/health` is answered
//!   during a flood); when all slots are taken, the connection idle the longest is closed to
//!   make room, and when every one is being answered, the new one is closed. Both count in
//!   `cefgate_metrics_connections_refused_total`. A connection is idle while no request is
//!   being answered: connected and silent, sending its header slowly, or kept alive after
//!   its answer.
//! - **Timeouts.** A connection idle for [`IDLE_TIMEOUT`] is closed
//!   (`cefgate_metrics_connections_idle_closed_total`), whatever it is doing: a header sent
//!   one byte a second, a keep-alive connection, a client that does not read its answer.
//!   hyper's `header_read_timeout` ([`HEADER_READ_TIMEOUT`]) does the same for a header.
//!   A request head is at most [`MAX_HEAD_BYTES`].
//! - **A descriptor reserve.** The cap is the reserve: the endpoint holds at most
//!   `MAX_CONNECTIONS` + 2 descriptors (its listening socket, the connections, and the one
//!   just accepted while the connection it replaces closes: the accept loop waits for it),
//!   however many clients connect, so the rest of `RLIMIT_NOFILE` stays for the syslog
//!   listeners, the outputs and the spool.
//! - **A bearer token** (`[metrics] bearer_token_file`): when set, every path but `/health`
//!   needs `Authorization: Bearer <token>`; otherwise 401 with `WWW-Authenticate: Bearer`.
//!   Only the token's SHA-256 digest is kept here, and digests are compared in constant
//!   time. The token is in no answer, log line or metric.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::Monitor;
use crate::auth::Secret;
use crate::metrics::Metrics;

/// Connections open at once, at most.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection with no request being answered for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request head (request line and headers) must arrive within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read (hyper's read buffer; its minimum is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Who may read the endpoint: anyone, or the holders of `[metrics] bearer_token_file`'s
/// token. Holds the token's digest, never the token.
#[derive(Clone, Default)]
pub struct Access {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.digest {
            Some(_) => "Access(bearer token)",
            None => "Access(open)",
        })
    }
}

impl Access {
    /// Every path open to anyone.
    pub fn open() -> Self {
        Self::default()
    }

    /// Every path but `/health` needs `Authorization: Bearer <token>`.
    pub fn bearer(token: &Secret) -> Self {
        Self {
            digest: Some(Sha256::digest(token.expose().as_bytes()).into()),
        }
    }

    /// `Access::bearer` when a token is set, else open.
    pub fn from_token(token: Option<&Secret>) -> Self {
        token.map_or_else(Self::open, Self::bearer)
    }

    pub fn needs_token(&self) -> bool {
        self.digest.is_some()
    }

    /// Whether `headers` may read a protected path.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.digest else {
            return true;
        };
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(space) = value.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, rest) = value.split_at(space);
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return false;
        }
        let given: [u8; 32] = Sha256::digest(rest.trim_ascii()).into();
        constant_time_eq(&given, expected)
    }
}

/// Equality of two digests in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

/// One open connection, as the cap sees it.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// A request is being answered now.
    busy: AtomicBool,
    /// When it was opened or last answered: milliseconds since [`Slots::epoch`].
    idle_since_ms: AtomicU64,
    /// Cancelled to close it (to make room for a new connection).
    close: CancellationToken,
    /// Cancelled once its socket is closed.
    closed: CancellationToken,
}

/// The open connections, at most [`MAX_CONNECTIONS`].
#[derive(Debug)]
struct Slots {
    epoch: Instant,
    open: Mutex<Vec<Arc<Slot>>>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Slots {
    fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            epoch: Instant::now(),
            open: Mutex::new(Vec::with_capacity(MAX_CONNECTIONS)),
            next_id: AtomicU64::new(0),
            metrics,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A slot for a new connection: a free one, or the one of the connection idle the
    /// longest, which is told to close (and returned second, to wait for); `None` when every
    /// connection is being answered.
    fn admit(&self) -> Option<(Arc<Slot>, Option<Arc<Slot>>)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let evicted = if open.len() >= MAX_CONNECTIONS {
            Metrics::add(&self.metrics.metrics_connections_refused, 1);
            let longest_idle = open
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.busy.load(Ordering::Relaxed))
                .min_by_key(|(_, s)| s.idle_since_ms.load(Ordering::Relaxed))
                .map(|(i, _)| i)?;
            let evicted = open.swap_remove(longest_idle);
            evicted.close.cancel();
            Some(evicted)
        } else {
            None
        };
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            close: CancellationToken::new(),
            closed: CancellationToken::new(),
        });
        open.push(slot.clone());
        self.metrics
            .metrics_connections_active
            .store(open.len() as u64, Ordering::Relaxed);
        Some((slot, evicted))
    }

    fn release(&self, slot: &Slot) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|s| s.id != slot.id);
        self.metrics
            .metrics_connections_active
            .store(open.len() as u64, Ordering::Relaxed);
    }

    /// How long `slot` has been idle (zero while it is answered).
    fn idle_for(&self, slot: &Slot) -> Duration {
        if slot.busy.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let since = slot.idle_since_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }
}

/// Serves `/metrics`, `/health` and `/ready` until `shutdown`, within the limits above.
pub async fn serve(
    listener: TcpListener,
    monitor: Arc<Monitor>,
    access: Access,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Slots::new(monitor.metrics.clone()));
    let access = Arc::new(access);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors (another part of the process holds them), or a connection
            // reset before it was taken: back off a little.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some((slot, evicted)) = slots.admit() else {
            drop(stream); // every slot is answering: closed at once
            continue;
        };
        if let Some(evicted) = evicted {
            // Its descriptor is free before the next accept: the cap holds at every instant,
            // not only on average. Closing takes one task switch.
            tokio::select! {
                _ = evicted.closed.cancelled() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        connections.spawn(connection(
            stream,
            slot,
            slots.clone(),
            monitor.clone(),
            access.clone(),
        ));
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// One connection, until it ends, idles for [`IDLE_TIMEOUT`] or its slot is taken.
async fn connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    slots: Arc<Slots>,
    monitor: Arc<Monitor>,
    access: Arc<Access>,
) {
    // Dropped last, after the socket, however the task ends (a panic included).
    let _open = Open {
        slot: slot.clone(),
        slots: slots.clone(),
    };
    let service = {
        let (slot, slots) = (slot.clone(), slots.clone());
        service_fn(move |req: Request<Incoming>| {
            slot.busy.store(true, Ordering::Relaxed);
            let response = answer(&monitor, &access, &req);
            slot.idle_since_ms.store(slots.now_ms(), Ordering::Relaxed);
            slot.busy.store(false, Ordering::Relaxed);
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    // Declared after `_open`, so dropped (the socket closed) before it.
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
    loop {
        let left = IDLE_TIMEOUT.saturating_sub(slots.idle_for(&slot));
        if left.is_zero() {
            Metrics::add(&slots.metrics.metrics_connections_idle_closed, 1);
            break;
        }
        tokio::select! {
            biased;
            _ = slot.close.cancelled() => break,
            _ = &mut conn => break,
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// Frees a connection's slot when its task ends, and says its socket is closed.
struct Open {
    slot: Arc<Slot>,
    slots: Arc<Slots>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.slots.release(&self.slot);
        self.slot.closed.cancel();
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// The answer to one request.
fn answer(monitor: &Monitor, access: &Access, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/health" && !access.allows(req.headers()) {
        Metrics::add(&monitor.metrics.metrics_requests_unauthorized, 1);
        let mut response = reply(
            StatusCode::UNAUTHORIZED,
            TEXT,
            "unauthorized: send Authorization: Bearer <the token in [metrics] bearer_token_file> \
             (/health needs none)\n"
                .into(),
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer realm=\"cefgate\""),
        );
        return response;
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            monitor.prometheus(),
        ),
        "/health" => reply(StatusCode::OK, TEXT, "ok\n".into()),
        "/ready" => match monitor.ready() {
            Ok(()) => reply(StatusCode::OK, TEXT, "ready\n".into()),
            Err(reasons) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {}\n", reasons.join("; ")),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /health or /ready\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = authorization {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_token_is_needed_only_when_one_is_set() {
        let open = Access::open();
        assert!(open.allows(&headers(None)));
        assert!(!open.needs_token());
        let guarded = Access::bearer(&Secret::new("t0ken".into()));
        assert!(guarded.needs_token());
        for (given, ok) in [
            (None, false),
            (Some("Bearer t0ken"), true),
            (Some("bearer t0ken"), true),
            (Some("BEARER   t0ken "), true),
            (Some("Bearer t0ke"), false),
            (Some("Bearer t0ken2"), false),
            (Some("Bearer "), false),
            (Some("Bearer"), false),
            (Some("Basic t0ken"), false),
            (Some("t0ken"), false),
        ] {
            assert_eq!(guarded.allows(&headers(given)), ok, "{given:?}");
        }
        assert!(!format!("{guarded:?}").contains("t0ken"));
    }

    #[test]
    fn the_cap_closes_the_longest_idle_connection_and_refuses_when_all_are_busy() {
        let metrics = Arc::new(Metrics::default());
        let slots = Slots::new(metrics.clone());
        let first: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|i| {
                let (s, evicted) = slots.admit().unwrap();
                assert!(evicted.is_none());
                s.idle_since_ms.store(100 + i as u64, Ordering::Relaxed);
                s
            })
            .collect();
        first[0].busy.store(true, Ordering::Relaxed);
        let (newcomer, evicted) = slots.admit().expect("room made");
        assert_eq!(evicted.unwrap().id, first[1].id);
        // The oldest idle one is the second: the first is busy.
        assert!(!first[0].close.is_cancelled());
        assert!(first[1].close.is_cancelled());
        assert_eq!(Metrics::get(&metrics.metrics_connections_refused), 1);
        assert_eq!(
            Metrics::get(&metrics.metrics_connections_active),
            MAX_CONNECTIONS as u64
        );
        slots.release(&first[1]); // its task ends: nothing more to release
        assert_eq!(
            Metrics::get(&metrics.metrics_connections_active),
            MAX_CONNECTIONS as u64
        );
        for s in slots.open.lock().unwrap().iter() {
            s.busy.store(true, Ordering::Relaxed);
        }
        assert!(slots.admit().is_none());
        assert_eq!(Metrics::get(&metrics.metrics_connections_refused), 2);
        slots.release(&newcomer);
        assert_eq!(
            Metrics::get(&metrics.metrics_connections_active),
            MAX_CONNECTIONS as u64 - 1
        );
    }
}
