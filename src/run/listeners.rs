//! The listeners of a run: started at start, stopped at shutdown once they have handed on
//! every complete frame, and, on a reload, kept, stopped, started or replaced on the same
//! socket according to their settings (a replaced TCP or TLS listener's open
//! connections go on with the settings they started with).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::budget::MemoryBudget;
use crate::listen::{self, FrameBatch, ListenerContext, ListenerSettings, Protocol};
use crate::metrics::Metrics;

fn bind_hint(e: &std::io::Error, address: &SocketAddr) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied if address.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or use a port such as 5514)"
        }
        std::io::ErrorKind::AddrInUse => " (another process already listens there)",
        _ => "",
    }
}

/// One listener task and what identifies its settings.
pub(super) struct RunningListener {
    /// Its settings (with the TLS files' contents): a reload keeps a listener whose
    /// settings did not change.
    pub(super) settings: ListenerSettings,
    pub(super) protocol: Protocol,
    /// The configured address (`127.0.0.1:0` stays that, whatever port it got).
    pub(super) address: SocketAddr,
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
pub(super) enum BoundSocket {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

/// The listeners that run, and what a new one needs.
pub(super) struct Listeners {
    /// Dropped at shutdown, after the listeners: the workers then see the end of the queue.
    pub(super) frames: Option<flume::Sender<FrameBatch>>,
    pub(super) budget: Arc<MemoryBudget>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: CancellationToken,
    pub(super) running: Vec<RunningListener>,
    /// Listeners a reload replaced that still read the connections they had.
    pub(super) retired: Vec<tokio::task::JoinHandle<()>>,
    pub(super) udp_addresses: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
}

impl Listeners {
    /// Starts a listener: on `socket` when a reload hands one on, else on a new bind.
    pub(super) async fn start(
        &self,
        settings: &ListenerSettings,
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
            counters: self
                .metrics
                .listener(&format!("{protocol} {local}"), protocol.transport()),
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
            settings: settings.clone(),
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
    pub(super) async fn stop(&self, l: RunningListener) {
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
    pub(super) async fn replace(
        &mut self,
        old: RunningListener,
        settings: &ListenerSettings,
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
        match self.start(settings, Some(socket)).await {
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

    pub(super) async fn stop_all(&mut self) {
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
