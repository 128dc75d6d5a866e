//! Listen: sockets in, batches of frames out. UDP ([`udp`]), TCP and TLS ([`tcp`], [`tls`]).
//!
//! Listeners only read and frame. They hand [`FrameBatch`]es to the decode workers through a
//! bounded queue, each charged to the memory budget. A used-up budget or a full queue makes
//! TCP/TLS readers wait (so the kernel pushes back on the sender) and makes UDP drop and
//! count.

pub mod config;
pub mod proxy;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use serde::Deserialize;

use crate::budget::{Charge, MemoryBudget};
use crate::frame::{Framing, Oversize};
use crate::metrics::Metrics;
use crate::row::ForcedFormat;
use crate::time::SenderZone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    /// What its listener reads, for the totals summed over listeners (`udp_datagrams`
    /// counts UDP listeners, `tcp_frames` TCP and TLS ones).
    pub fn transport(self) -> crate::metrics::Transport {
        match self {
            Protocol::Udp => crate::metrics::Transport::Datagram,
            Protocol::Tcp | Protocol::Tls => crate::metrics::Transport::Stream,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        })
    }
}

/// One listener, as checked from the configuration (its TLS files already read). A reload
/// compares these whole (`==`): a listener runs on until its settings differ, and a field
/// added here is part of that comparison without anyone listing it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSettings {
    pub protocol: Protocol,
    pub address: SocketAddr,
    /// TCP/TLS framing.
    pub framing: Framing,
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    /// TCP/TLS: connections served at once; more are refused (and counted).
    pub max_connections: usize,
    /// TCP/TLS: connections one source address may hold at once, so that one host cannot
    /// take every slot; more are refused (and counted).
    pub max_connections_per_source: usize,
    /// TCP/TLS: a partial frame older than this is handed on (marked truncated) and the
    /// connection closed, however often bytes trickle in.
    pub frame_timeout: Duration,
    /// TLS: handshakes in progress at once. A connection takes one of `max_connections`
    /// only once its handshake is done, so stalled handshakes cannot fill those.
    pub max_handshakes: usize,
    /// TCP/TLS: a PROXY header (v1 or v2) comes first and names the sender, whose address
    /// is then used for `HostIP`, the allowlist and the per-source limit.
    pub proxy_protocol: bool,
    /// TCP/TLS with `proxy_protocol`: the balancers allowed to send PROXY headers (as
    /// nginx's `set_real_ip_from`); a connection from any other address is refused. Empty:
    /// every peer is believed (`check` warns).
    pub proxy_from: Vec<IpNet>,
    /// TCP/TLS: a connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// TCP/TLS: keepalive probes after this much idle time.
    pub keepalive: Option<Duration>,
    pub handshake_timeout: Duration,
    /// UDP: the socket receive buffer asked of the kernel.
    pub receive_buffer_bytes: usize,
    /// The configuration asked for `receive_buffer_bytes` (rather than taking the default):
    /// getting less is then worth a warning.
    pub receive_buffer_asked: bool,
    /// Senders allowed; empty allows everyone.
    pub allow: Vec<IpNet>,
    pub tls: Option<tls::Acceptor>,
    /// The zones of this listener's senders.
    pub zones: Arc<SenderRules>,
}

/// What a listener's configuration says about its senders: which zone a sender's clock is
/// in, and which format its lines are in; each the listener's own, and per-sender ranges
/// (the most specific range wins).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SenderRules {
    zone: Option<SenderZone>,
    /// Most specific range first.
    zone_by_sender: Vec<(IpNet, SenderZone)>,
    format: Option<ForcedFormat>,
    /// Most specific range first.
    format_by_sender: Vec<(IpNet, ForcedFormat)>,
}

impl SenderRules {
    pub fn new(
        zone: Option<SenderZone>,
        mut zone_by_sender: Vec<(IpNet, SenderZone)>,
        format: Option<ForcedFormat>,
        mut format_by_sender: Vec<(IpNet, ForcedFormat)>,
    ) -> Self {
        zone_by_sender.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        format_by_sender.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self {
            zone,
            zone_by_sender,
            format,
            format_by_sender,
        }
    }

    /// The zone of `peer`: its range's, else the listener's, else `fallback`.
    pub fn for_peer(&self, peer: Option<IpAddr>, fallback: SenderZone) -> SenderZone {
        most_specific(&self.zone_by_sender, peer)
            .or(self.zone)
            .unwrap_or(fallback)
    }

    /// The format named for `peer`: its range's, else the listener's; `None` recognises
    /// formats by content.
    pub fn format_of(&self, peer: Option<IpAddr>) -> Option<ForcedFormat> {
        most_specific(&self.format_by_sender, peer).or(self.format)
    }
}

/// The value of the first (most specific) range holding `peer`.
fn most_specific<T: Copy>(ranges: &[(IpNet, T)], peer: Option<IpAddr>) -> Option<T> {
    // `::ffff:10.1.2.3` (a dual-stack socket) is 10.1.2.3.
    let peer = peer?.to_canonical();
    ranges
        .iter()
        .find(|(net, _)| net.contains(&peer))
        .map(|(_, v)| *v)
}

pub use tls::TlsSetupError;

/// Where one frame came from and how it ends in [`FrameBatch::data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub end: u32,
    pub peer: Option<IpAddr>,
    /// The message was cut at `max_message_bytes`.
    pub truncated: bool,
}

/// Several frames in one buffer: one allocation per batch, not per message.
#[derive(Debug, Default)]
pub struct FrameBatch {
    pub received_at: Option<DateTime<Utc>>,
    pub data: Vec<u8>,
    pub frames: Vec<FrameInfo>,
    /// Its memory, on the budget until the batch is decoded and dropped.
    charge: Charge,
    /// The listener's zone rules (none: the configured default).
    pub zones: Option<Arc<SenderRules>>,
}

impl FrameBatch {
    /// Frames kept in one batch before it is handed on.
    pub const MAX_FRAMES: usize = 512;
    /// Bytes kept in one batch before it is handed on.
    pub const MAX_BYTES: usize = 256 * 1024;

    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            received_at: None,
            data: Vec::with_capacity(bytes),
            frames: Vec::with_capacity(64),
            charge: Charge::none(),
            zones: None,
        }
    }

    /// An empty batch for a listener with `zones`.
    pub fn for_listener(bytes: usize, zones: &Arc<SenderRules>) -> Self {
        Self {
            zones: Some(zones.clone()),
            ..Self::with_capacity(bytes)
        }
    }

    /// Charges the memory this batch holds to `budget`, for as long as it lives.
    pub fn charge_to(&mut self, budget: &Arc<MemoryBudget>) {
        let bytes =
            self.data.capacity() + self.frames.capacity() * std::mem::size_of::<FrameInfo>();
        self.charge = budget.charge(bytes);
    }

    pub fn push(&mut self, message: &[u8], peer: Option<IpAddr>, truncated: bool) {
        if self.received_at.is_none() {
            self.received_at = Some(Utc::now());
        }
        self.data.extend_from_slice(message);
        self.frames.push(FrameInfo {
            end: self.data.len() as u32,
            peer,
            truncated,
        });
    }

    pub fn is_full(&self) -> bool {
        self.frames.len() >= Self::MAX_FRAMES || self.data.len() >= Self::MAX_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// `(message, info)` for every frame, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &FrameInfo)> {
        let mut start = 0usize;
        self.frames.iter().map(move |f| {
            let m = &self.data[start..f.end as usize];
            start = f.end as usize;
            (m, f)
        })
    }
}

/// What every connection of a listener shares: the queue to the workers, counters, the
/// allowlist, the memory budget.
#[derive(Clone)]
pub struct ListenerContext {
    pub queue: flume::Sender<FrameBatch>,
    pub metrics: Arc<Metrics>,
    /// This listener's own counters (the `listener` label of `/metrics`).
    pub counters: Arc<crate::metrics::ListenerCounters>,
    pub allow: Arc<Vec<IpNet>>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub budget: Arc<MemoryBudget>,
}

impl ListenerContext {
    /// True when `peer` may send (an empty allowlist allows everyone).
    pub fn allowed(&self, peer: IpAddr) -> bool {
        self.allow.is_empty() || in_ranges(&self.allow, peer)
    }
}

/// True when `ip` is in one of `ranges`; `::ffff:10.1.2.3` (a dual-stack socket) is
/// 10.1.2.3.
pub fn in_ranges(ranges: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ranges.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_iterates_frames_in_order() {
        let mut b = FrameBatch::with_capacity(64);
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        b.push(b"one", Some(peer), false);
        b.push(b"", None, false);
        b.push(b"three", None, true);
        let frames: Vec<_> = b
            .iter()
            .map(|(m, f)| (m.to_vec(), f.peer, f.truncated))
            .collect();
        assert_eq!(
            frames,
            vec![
                (b"one".to_vec(), Some(peer), false),
                (b"".to_vec(), None, false),
                (b"three".to_vec(), None, true)
            ]
        );
    }

    #[test]
    fn allowlist_matches_mapped_addresses() {
        let (queue, _rx) = flume::bounded(1);
        let ctx = ListenerContext {
            queue,
            metrics: Arc::default(),
            counters: Arc::new(crate::metrics::ListenerCounters::new(
                "udp 127.0.0.1:1",
                crate::metrics::Transport::Datagram,
            )),
            allow: Arc::new(vec!["10.0.0.0/8".parse().unwrap()]),
            shutdown: Default::default(),
            budget: MemoryBudget::new(1 << 20),
        };
        assert!(ctx.allowed("10.1.2.3".parse().unwrap()));
        assert!(ctx.allowed("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!ctx.allowed("192.0.2.1".parse().unwrap()));
    }
}

#[cfg(test)]
mod sender_rules_tests {
    use super::*;

    #[test]
    fn the_most_specific_range_names_a_senders_format_else_the_listeners() {
        let f = |name: &str| name.parse::<ForcedFormat>().unwrap();
        let rules = SenderRules::new(
            None,
            Vec::new(),
            Some(f("cef")),
            vec![
                ("10.0.0.0/8".parse().unwrap(), f("syslog")),
                ("10.1.0.0/16".parse().unwrap(), f("pan-os")),
            ],
        );
        let at = |ip: &str| rules.format_of(Some(ip.parse().unwrap())).map(|f| f.name());
        assert_eq!(at("10.1.2.3"), Some("pan-os"));
        assert_eq!(at("10.9.2.3"), Some("syslog"));
        assert_eq!(at("::ffff:10.1.2.3"), Some("pan-os"));
        assert_eq!(at("192.0.2.1"), Some("cef"));
        assert_eq!(rules.format_of(None).map(|f| f.name()), Some("cef"));
        assert_eq!(
            SenderRules::default().format_of(Some("10.1.2.3".parse().unwrap())),
            None
        );
    }
}
