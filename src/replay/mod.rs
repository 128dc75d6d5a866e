//! `cefgate replay`: sends captured messages to a syslog target, as a device would. It is
//! also the load generator of the benchmarks, so sending is plain blocking I/O with large
//! buffered writes.

pub mod capture;

use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::frame::Framing;

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    pub transport: Transport,
    pub host: String,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--to {0:?} is not udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")]
    BadTarget(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("sending to {address} failed after {sent} messages: {source}")]
    Send {
        address: SocketAddr,
        sent: u64,
        source: io::Error,
    },
    #[error("cannot start a sending thread: {0}")]
    Thread(io::Error),
    #[error("a sending thread panicked")]
    SenderPanicked,
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| ReplayError::BadTarget(text.into()))?;
        let transport = match scheme {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(ReplayError::BadTarget(text.into())),
        };
        let address = rest
            .to_socket_addrs()
            .map_err(|_| ReplayError::Resolve(rest.into()))?
            .next()
            .ok_or_else(|| ReplayError::Resolve(rest.into()))?;
        let host = rest
            .rsplit_once(':')
            .map_or(rest, |(h, _)| h)
            .trim_matches(['[', ']'])
            .to_string();
        Ok(Self {
            transport,
            host,
            address,
        })
    }
}

/// TLS client settings for `tls://` targets.
#[derive(Debug, Clone, Default)]
pub struct TlsClient {
    /// PEM bundle to trust for the server's certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for servers that require one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsClient {
    fn config(&self) -> Result<Arc<ClientConfig>, ReplayError> {
        let tls = |e: String| ReplayError::Tls(e);
        let mut roots = RootCertStore::empty();
        let ca = self
            .ca
            .as_ref()
            .ok_or_else(|| tls("tls:// needs --ca FILE (the CA that signed the server)".into()))?;
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| tls(format!("{}: {e}", ca.display())))?
        {
            let cert = cert.map_err(|e| tls(format!("{}: {e}", ca.display())))?;
            roots.add(cert).map_err(|e| tls(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| tls(format!("{}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls(format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls(e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(tls("--cert and --key go together".into())),
        };
        Ok(Arc::new(config))
    }
}

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub target: Target,
    /// TCP/TLS framing; TLS defaults to octet counting (RFC 5425), TCP to newline.
    pub framing: Option<Framing>,
    /// Messages per second; `None` sends as fast as the socket takes them.
    pub rate: Option<f64>,
    pub loops: u64,
    /// Connections (sockets, for UDP) that send at once; the messages are shared out among
    /// them in order, and `rate` is the total over all of them.
    pub connections: usize,
    pub tls: TlsClient,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplaySummary {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

enum Connection {
    Udp(UdpSocket, SocketAddr),
    Tcp(BufWriter<TcpStream>),
    Tls(Box<BufWriter<TlsStream>>),
}

impl Connection {
    fn stream(&mut self) -> Option<&mut dyn Write> {
        match self {
            Connection::Udp(..) => None,
            Connection::Tcp(w) => Some(w),
            Connection::Tls(w) => Some(&mut **w),
        }
    }

    /// Flushes and closes our side, then waits for the receiver to close its side: when
    /// that returns, the receiver has read everything.
    fn finish(self) -> io::Result<()> {
        match self {
            Connection::Udp(..) => Ok(()),
            Connection::Tcp(w) => {
                let mut s = w.into_inner().map_err(|e| e.into_error())?;
                s.shutdown(std::net::Shutdown::Write)?;
                io::copy(&mut s, &mut io::sink()).map(|_| ())
            }
            Connection::Tls(w) => {
                let mut s = w.into_inner().map_err(|e| e.into_error())?;
                s.conn.send_close_notify();
                s.flush()?;
                io::copy(&mut s, &mut io::sink()).map(|_| ())
            }
        }
    }
}

fn connect(plan: &ReplayPlan) -> Result<Connection, ReplayError> {
    let address = plan.target.address;
    let connect_err = |source| ReplayError::Connect { address, source };
    Ok(match plan.target.transport {
        Transport::Udp => {
            let bind: SocketAddr = if address.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .expect("literal");
            Connection::Udp(UdpSocket::bind(bind).map_err(connect_err)?, address)
        }
        Transport::Tcp => {
            let s = TcpStream::connect(address).map_err(connect_err)?;
            Connection::Tcp(BufWriter::with_capacity(256 * 1024, s))
        }
        Transport::Tls => {
            let config = plan.tls.config()?;
            let name = ServerName::try_from(plan.target.host.clone())
                .map_err(|e| ReplayError::Tls(format!("server name {}: {e}", plan.target.host)))?;
            let mut conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| ReplayError::Tls(e.to_string()))?;
            let mut s = TcpStream::connect(address).map_err(connect_err)?;
            // The handshake now, so that a refused certificate is reported as such, before
            // any message is counted as sent.
            while conn.is_handshaking() {
                conn.complete_io(&mut s).map_err(|e| {
                    ReplayError::Tls(format!("the TLS handshake with {address} failed: {e}"))
                })?;
            }
            Connection::Tls(Box::new(BufWriter::with_capacity(
                256 * 1024,
                rustls::StreamOwned::new(conn, s),
            )))
        }
    })
}

/// Sends `messages` `plan.loops` times. `progress` gets the count sent so far now and then.
pub fn replay(
    plan: &ReplayPlan,
    messages: &[Vec<u8>],
    mut progress: impl FnMut(u64),
) -> Result<ReplaySummary, ReplayError> {
    let total = messages.len() as u64 * plan.loops;
    let connections = plan.connections.max(1) as u64;
    if connections == 1 {
        let conn = connect(plan)?;
        return send(plan, conn, messages, 0..total, plan.rate, &mut progress);
    }
    // Every connection is open before the first message goes out, so that the target holds
    // them all at once.
    let start = StartGate::default();
    let results: Vec<Result<ReplaySummary, ReplayError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|i| {
                let range = total * i / connections..total * (i + 1) / connections;
                let rate = plan
                    .rate
                    .map(|r| r * (range.end - range.start) as f64 / total.max(1) as f64);
                let start = &start;
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let conn = connect(plan);
                        start.arrive_and_wait();
                        send(plan, conn?, messages, range, rate, &mut |_| {})
                    })
            })
            .collect();
        // Only the threads that started are waited for: one that could not be started
        // must not hold the others back forever.
        start.expect(handles.iter().filter(|h| h.is_ok()).count());
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or(Err(ReplayError::SenderPanicked)),
                Err(source) => Err(ReplayError::Thread(source)),
            })
            .collect()
    });
    let mut summary = ReplaySummary::default();
    for result in results {
        let one = result?;
        summary.messages += one.messages;
        summary.bytes += one.bytes;
        summary.elapsed = summary.elapsed.max(one.elapsed);
    }
    progress(summary.messages);
    Ok(summary)
}

/// Sends messages `range` of the looped sequence (index `i` is `messages[i % len]`) over
/// one connection, at `rate` messages a second if given.
fn send(
    plan: &ReplayPlan,
    mut conn: Connection,
    messages: &[Vec<u8>],
    range: std::ops::Range<u64>,
    rate: Option<f64>,
    progress: &mut dyn FnMut(u64),
) -> Result<ReplaySummary, ReplayError> {
    let framing = plan.framing.unwrap_or(match plan.target.transport {
        Transport::Tls => Framing::OctetCounting,
        _ => Framing::Newline,
    });
    let start = Instant::now();
    let mut summary = ReplaySummary::default();
    let address = plan.target.address;
    let mut frame = Vec::with_capacity(4096);
    if messages.is_empty() {
        return Ok(summary);
    }
    for index in range {
        let message = &messages[(index % messages.len() as u64) as usize];
        {
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(summary.messages as f64 / rate);
                let now = Instant::now();
                if due > now {
                    if let Some(w) = conn.stream() {
                        // Do not hold back what was already paced out.
                        w.flush().map_err(|source| ReplayError::Send {
                            address,
                            sent: summary.messages,
                            source,
                        })?;
                    }
                    std::thread::sleep(due - now);
                }
            }
            let sent = match &mut conn {
                Connection::Udp(socket, to) => socket.send_to(message, *to).map(|_| message.len()),
                stream => {
                    let w = stream.stream().expect("a stream connection");
                    frame.clear();
                    match framing {
                        Framing::OctetCounting => {
                            frame.extend_from_slice(message.len().to_string().as_bytes());
                            frame.push(b' ');
                            frame.extend_from_slice(message);
                        }
                        _ => {
                            frame.extend_from_slice(message);
                            frame.push(b'\n');
                        }
                    }
                    w.write_all(&frame).map(|_| frame.len())
                }
            };
            let n = sent.map_err(|source| ReplayError::Send {
                address,
                sent: summary.messages,
                source,
            })?;
            summary.messages += 1;
            summary.bytes += n as u64;
            if summary.messages % 4096 == 0 {
                progress(summary.messages);
            }
        }
    }
    conn.finish().map_err(|source| ReplayError::Send {
        address,
        sent: summary.messages,
        source,
    })?;
    progress(summary.messages);
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Holds the sending threads until every one that was started has connected (or failed to).
/// Unlike a barrier, the number to wait for is given once the threads were started.
#[derive(Default)]
struct StartGate {
    /// Threads arrived, and how many are expected (once known).
    state: std::sync::Mutex<(usize, Option<usize>)>,
    changed: std::sync::Condvar,
}

impl StartGate {
    fn arrive_and_wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        self.changed.notify_all();
        let _open = self
            .changed
            .wait_while(state, |(arrived, expected)| {
                expected.is_none_or(|expected| *arrived < expected)
            })
            .unwrap_or_else(|e| e.into_inner());
    }

    fn expect(&self, threads: usize) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(threads);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod start_gate_tests {
    use super::StartGate;
    use std::sync::Arc;
    use std::time::Duration;

    /// Two of three planned threads started: they go once both arrived and the count is
    /// known, not when a third (which never comes) arrives.
    #[test]
    fn the_threads_that_started_go_once_all_of_them_arrived() {
        let gate = Arc::new(StartGate::default());
        let (went, gone) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (gate, went) = (gate.clone(), went.clone());
            std::thread::spawn(move || {
                gate.arrive_and_wait();
                went.send(()).unwrap();
            });
        }
        assert!(
            gone.recv_timeout(Duration::from_millis(200)).is_err(),
            "nobody goes before the count is known"
        );
        gate.expect(2);
        for _ in 0..2 {
            gone.recv_timeout(Duration::from_secs(10))
                .expect("both threads go");
        }
    }
}
