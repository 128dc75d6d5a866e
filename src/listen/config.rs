//! `[[listener]]`: the raw schema as written, its defaults, and the checks that turn it
//! into the [`ListenerSettings`] a listener runs with.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::frame::{Framing, Oversize};
use crate::listen::{ListenerSettings, Protocol, SenderRules, TlsSetupError, tls::Acceptor};
use crate::row::ForcedFormat;
use crate::settings::{ConfigProblem, Locator, in_range, parse_net, parse_nets, zone};

/// The longest message a listener may be set to keep (16 MiB).
pub const MAX_MESSAGE_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: Spanned<Protocol>,
    pub address: Spanned<String>,
    /// TCP/TLS framing; default `auto` for tcp and `octet-counting` for tls (RFC 5425).
    pub framing: Option<Framing>,
    /// TLS: PEM certificate chain and private key.
    pub cert: Option<Spanned<PathBuf>>,
    pub key: Option<Spanned<PathBuf>>,
    /// TLS: PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: Option<Spanned<PathBuf>>,
    /// Senders allowed to connect or send (CIDR); empty allows everyone.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default)]
    pub oversize: Oversize,
    /// TCP/TLS: connections served at once; more are refused (and counted).
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// TCP/TLS: a connection that sends nothing for this long is closed.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// TCP/TLS: TCP keepalive probes after this much idle time (0 turns them off).
    #[serde(default = "defaults::keepalive_secs")]
    pub keepalive_secs: u64,
    /// TLS: time allowed for the handshake.
    #[serde(default = "defaults::handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// TCP/TLS: connections one sender address may hold at once.
    #[serde(default = "defaults::max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// TCP/TLS: the longest a partial frame may wait for its end.
    #[serde(default = "defaults::frame_timeout_secs")]
    pub frame_timeout_secs: u64,
    /// TLS: handshakes in progress at once.
    #[serde(default = "defaults::max_handshakes")]
    pub max_handshakes: usize,
    /// TCP/TLS: every connection starts with a PROXY header (v1 or v2) naming the sender.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// TCP/TLS with `proxy_protocol`: the balancers (CIDR) allowed to send PROXY headers;
    /// connections from anyone else are refused.
    #[serde(default)]
    pub proxy_from: Vec<Spanned<String>>,
    /// UDP: the socket receive buffer asked of the kernel.
    pub receive_buffer_bytes: Option<usize>,
    /// The zone of this listener's senders for timestamps without one (else `[record]`'s).
    pub timezone: Option<Spanned<String>>,
    /// Per-sender zones: CIDR range or address -> zone; the most specific range wins.
    #[serde(default)]
    pub sender_timezones: std::collections::BTreeMap<String, Spanned<String>>,
    /// The format of this listener's lines (`pan-os`, `cef`, ...; `syslog` for no format),
    /// tried before recognising one by content.
    pub format: Option<Spanned<String>>,
    /// Per-sender formats: CIDR range or address -> format; the most specific range wins.
    #[serde(default)]
    pub sender_formats: std::collections::BTreeMap<String, Spanned<String>>,
}

impl ListenerConfig {
    /// The framing in force: as configured, or the protocol's default.
    fn framing(&self) -> Framing {
        self.framing.unwrap_or(match self.protocol.get_ref() {
            Protocol::Tls => Framing::OctetCounting,
            _ => Framing::Auto,
        })
    }

    /// The TLS settings of a tls listener, read from its PEM files.
    fn tls_acceptor(&self) -> Result<Acceptor, TlsSetupError> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Acceptor::new(
                cert.get_ref(),
                key.get_ref(),
                self.client_ca.as_ref().map(|c| c.get_ref().as_path()),
            ),
            _ => Err(TlsSetupError::NotConfigured),
        }
    }
}

impl ListenerConfig {
    /// Checks this `[[listener]]` (its table spans `whole`), reporting every problem; `seen`
    /// holds the addresses of the listeners before it, and gets this one's. The settings,
    /// when its address is one (other problems make the file invalid anyway).
    pub fn settings(
        &self,
        whole: Range<usize>,
        seen: &mut Vec<(Protocol, SocketAddr)>,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
    ) -> Option<ListenerSettings> {
        let l = self;
        let protocol = *l.protocol.get_ref();
        let address = l.address.get_ref().parse::<SocketAddr>();
        let mut tls = None;
        match address {
            Ok(addr) => {
                let stream = |p: Protocol| p != Protocol::Udp;
                let clash = seen
                    .iter()
                    .any(|(p, a)| overlaps(*a, addr) && stream(*p) == stream(protocol));
                if clash {
                    problems.push(at.problem(
                        Some(l.address.span()),
                        format!("{addr} is already used by another {protocol} listener"),
                    ));
                }
                seen.push((protocol, addr));
            }
            Err(_) => problems.push(at.problem(
                Some(l.address.span()),
                format!(
                    "address {:?} is not IP:PORT (for example \"0.0.0.0:514\" or \"[::]:514\")",
                    l.address.get_ref()
                ),
            )),
        }
        let allow = parse_nets(&l.allow, "allow", at, problems);
        let proxy_from = parse_nets(&l.proxy_from, "proxy_from", at, problems);
        if !l.proxy_from.is_empty() && !l.proxy_protocol {
            problems.push(at.problem(
                Some(l.proxy_from[0].span()),
                "`proxy_from` needs `proxy_protocol = true` (it names who may send PROXY headers)",
            ));
        }
        let table = Some(whole.clone());
        let mut range = |key: &str, value: u64, lo: u64, hi: u64| {
            in_range(at, problems, table.clone(), key, value, lo, hi)
        };
        range(
            "max_message_bytes",
            l.max_message_bytes as u64,
            480,
            MAX_MESSAGE_BYTES,
        );
        range("max_connections", l.max_connections as u64, 1, 65_536);
        range("idle_timeout_secs", l.idle_timeout_secs, 1, 86_400);
        range("keepalive_secs", l.keepalive_secs, 0, 86_400);
        range("handshake_timeout_ms", l.handshake_timeout_ms, 100, 600_000);
        range(
            "max_connections_per_source",
            l.max_connections_per_source as u64,
            1,
            65_536,
        );
        range("frame_timeout_secs", l.frame_timeout_secs, 1, 86_400);
        range("max_handshakes", l.max_handshakes as u64, 1, 65_536);
        range(
            "receive_buffer_bytes",
            l.receive_buffer_bytes
                .unwrap_or_else(defaults::receive_buffer_bytes) as u64,
            4096,
            1 << 30,
        );
        match protocol {
            Protocol::Tls => {
                for (name, value) in [("cert", &l.cert), ("key", &l.key)] {
                    match value {
                        None => problems.push(at.problem(
                            Some(whole.clone()),
                            format!("a tls listener needs `{name}` (a PEM file)"),
                        )),
                        Some(p) if !p.get_ref().is_file() => problems.push(at.problem(
                            Some(p.span()),
                            format!("{name} file {} does not exist", p.get_ref().display()),
                        )),
                        Some(_) => {}
                    }
                }
                if let Some(ca) = &l.client_ca
                    && !ca.get_ref().is_file()
                {
                    problems.push(at.problem(
                        Some(ca.span()),
                        format!("client_ca file {} does not exist", ca.get_ref().display()),
                    ));
                }
                let files = [&l.cert, &l.key, &l.client_ca];
                let present = files
                    .iter()
                    .all(|f| f.as_ref().is_none_or(|f| f.get_ref().is_file()));
                if let (true, Some(cert), Some(_)) = (present, &l.cert, &l.key) {
                    // Built here, once: a file that is no PEM, a key that does not match
                    // or a CA bundle that is no CA is found by `check`.
                    match l.tls_acceptor() {
                        Ok(acceptor) => tls = Some(acceptor),
                        Err(e) => problems.push(at.problem(Some(cert.span()), e.to_string())),
                    }
                }
            }
            Protocol::Udp | Protocol::Tcp => {
                if protocol == Protocol::Udp && l.proxy_protocol {
                    problems.push(at.problem(
                        at.key(table.clone(), "proxy_protocol").or(table.clone()),
                        "`proxy_protocol` only applies to tcp and tls listeners (UDP has no PROXY header: keep the source address with externalTrafficPolicy: Local or a direct route)",
                    ));
                }
                for (name, value) in [
                    ("cert", &l.cert),
                    ("key", &l.key),
                    ("client_ca", &l.client_ca),
                ] {
                    if let Some(v) = value {
                        problems.push(at.problem(
                            Some(v.span()),
                            format!("`{name}` only applies to tls listeners"),
                        ));
                    }
                }
            }
        }
        let mut by_sender = Vec::new();
        for (range, z) in &l.sender_timezones {
            match parse_net(range) {
                Some(net) => by_sender.push((net, zone(z, at, problems))),
                None => problems.push(at.problem(
                    Some(z.span()),
                    format!("sender_timezones key {range:?} is not a CIDR range or IP address"),
                )),
            }
        }
        let format = |f: &Spanned<String>, problems: &mut Vec<ConfigProblem>| {
            f.get_ref()
                .parse::<ForcedFormat>()
                .map_err(|e| problems.push(at.problem(Some(f.span()), e.to_string())))
                .ok()
        };
        let mut format_by_sender = Vec::new();
        for (range, f) in &l.sender_formats {
            match parse_net(range) {
                Some(net) => format_by_sender.extend(format(f, problems).map(|f| (net, f))),
                None => problems.push(at.problem(
                    Some(f.span()),
                    format!("sender_formats key {range:?} is not a CIDR range or IP address"),
                )),
            }
        }
        let zones = SenderRules::new(
            l.timezone.as_ref().map(|z| zone(z, at, problems)),
            by_sender,
            l.format.as_ref().and_then(|f| format(f, problems)),
            format_by_sender,
        );
        let address = address.ok()?;
        Some(ListenerSettings {
            protocol,
            address,
            framing: l.framing(),
            max_message_bytes: l.max_message_bytes,
            oversize: l.oversize,
            max_connections: l.max_connections,
            idle_timeout: Duration::from_secs(l.idle_timeout_secs),
            keepalive: (l.keepalive_secs > 0).then(|| Duration::from_secs(l.keepalive_secs)),
            handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
            max_connections_per_source: l.max_connections_per_source,
            frame_timeout: Duration::from_secs(l.frame_timeout_secs),
            max_handshakes: l.max_handshakes,
            proxy_protocol: l.proxy_protocol,
            proxy_from,
            receive_buffer_bytes: l
                .receive_buffer_bytes
                .unwrap_or_else(defaults::receive_buffer_bytes),
            receive_buffer_asked: l.receive_buffer_bytes.is_some(),
            allow,
            tls,
            zones: std::sync::Arc::new(zones),
        })
    }

    /// What is allowed but unwise in this listener (its table spans `whole`).
    pub fn warnings(
        &self,
        whole: Range<usize>,
        at: &Locator<'_>,
        warnings: &mut Vec<ConfigProblem>,
    ) {
        if self.proxy_protocol
            && self.proxy_from.is_empty()
            && *self.protocol.get_ref() != Protocol::Udp
        {
            warnings.push(at.problem(
                at.key(Some(whole.clone()), "proxy_protocol").or(Some(whole)),
                "warning: this listener believes a PROXY header from any peer, so a host that connects directly can claim any address (past `allow` and `max_connections_per_source`); list the balancers in `proxy_from`",
            ));
        }
    }

    /// The files this listener reads.
    pub fn read_paths(&self) -> impl Iterator<Item = &Spanned<PathBuf>> {
        [&self.cert, &self.key, &self.client_ca]
            .into_iter()
            .flatten()
    }

    /// The files holding a secret (the TLS key).
    pub fn secret_files(&self) -> impl Iterator<Item = &Spanned<PathBuf>> {
        self.key.iter()
    }
}

/// True when binding both addresses (on the same port) would clash: the same address, or a
/// wildcard (`0.0.0.0`, `[::]`, which on Linux also takes IPv4) and an address it covers.
pub fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers =
        |w: SocketAddr, x: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

mod defaults {
    pub fn max_message_bytes() -> usize {
        64 * 1024
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn keepalive_secs() -> u64 {
        60
    }
    pub fn max_connections_per_source() -> usize {
        64
    }
    pub fn frame_timeout_secs() -> u64 {
        30
    }
    pub fn max_handshakes() -> usize {
        128
    }
    pub fn handshake_timeout_ms() -> u64 {
        10_000
    }
    pub fn receive_buffer_bytes() -> usize {
        32 * 1024 * 1024
    }
}
