//! The PROXY protocol (HAProxy's v1 text and v2 binary headers): behind a load balancer,
//! the header in front of a connection's first byte names the real sender, which cefgate
//! then uses for `HostIP`, the allowlist and the per-source limits. Parsed by the `ppp`
//! crate; this module reads exactly the header's bytes off the stream (never the data
//! behind it) and bounds what it reads.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Who a connection speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client the balancer relayed.
    Client(SocketAddr),
    /// A v2 `LOCAL` command (a health check) or a v1 `UNKNOWN`: the connection speaks for
    /// itself.
    Itself,
}

/// Why a connection's header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header (the listener has proxy_protocol = true)")]
    Missing,
    #[error("a malformed PROXY header: {0}")]
    Malformed(String),
    #[error("the PROXY header did not arrive within {0:?}")]
    Timeout(Duration),
    #[error("the connection ended inside the PROXY header")]
    Truncated,
}

/// The v2 signature; v1 starts with `PROXY `.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes (the specification's limit).
const V1_MAX: usize = 107;
/// The most v2 address and TLV bytes taken: HAProxy's TLVs (SSL details, unique IDs) fit.
const V2_MAX_PAYLOAD: usize = 4096;

/// What [`parse`] found at the start of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes.
    Header { source: Source, len: usize },
    /// At least this many bytes more are needed to decide.
    NeedMore(usize),
}

/// Reads the header at the start of `bytes`, which may hold data after it.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = bytes.len().min(V2_SIGNATURE.len());
    if bytes[..prefix] == V2_SIGNATURE[..prefix] && bytes.len() < 16 {
        return Ok(Parsed::NeedMore(16 - bytes.len()));
    }
    if bytes.starts_with(V2_SIGNATURE) {
        let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        if length > V2_MAX_PAYLOAD {
            return Err(ProxyError::Malformed(format!(
                "a v2 header announcing {length} bytes (at most {V2_MAX_PAYLOAD} taken)"
            )));
        }
        if bytes.len() < 16 + length {
            return Ok(Parsed::NeedMore(16 + length - bytes.len()));
        }
        let header = ppp::v2::Header::try_from(&bytes[..16 + length])
            .map_err(|e| ProxyError::Malformed(e.to_string()))?;
        let source = match (header.command, header.addresses) {
            (ppp::v2::Command::Local, _) => Source::Itself,
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => {
                Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            (_, other) => {
                return Err(ProxyError::Malformed(format!(
                    "a v2 PROXY command with {other:?} addresses (IPv4 or IPv6 wanted)"
                )));
            }
        };
        return Ok(Parsed::Header {
            source,
            len: 16 + length,
        });
    }
    let v1 = b"PROXY ";
    let prefix = bytes.len().min(v1.len());
    if bytes[..prefix] != v1[..prefix] {
        return Err(ProxyError::Missing);
    }
    let Some(end) = bytes.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        if bytes.len() >= V1_MAX {
            return Err(ProxyError::Malformed(format!(
                "a v1 header without CRLF in its first {V1_MAX} bytes"
            )));
        }
        return Ok(Parsed::NeedMore(1));
    };
    let line = &bytes[..end + 2];
    let header =
        ppp::v1::Header::try_from(line).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    let source = match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => {
            Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        ppp::v1::Addresses::Tcp6(a) => {
            Source::Client(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        ppp::v1::Addresses::Unknown => Source::Itself,
    };
    Ok(Parsed::Header {
        source,
        len: line.len(),
    })
}

/// Reads the header off `stream` within `deadline`, taking exactly its bytes.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<Source, ProxyError> {
    let read = async {
        let mut bytes = Vec::with_capacity(64);
        // Enough to tell v1 from v2 without reading past the shortest v1 header.
        let mut want = 6;
        loop {
            let start = bytes.len();
            bytes.resize(start + want, 0);
            if stream.read_exact(&mut bytes[start..]).await.is_err() {
                return Err(ProxyError::Truncated);
            }
            match parse(&bytes)? {
                Parsed::Header { source, .. } => return Ok(source),
                Parsed::NeedMore(n) => want = n,
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(ProxyError::Timeout(deadline)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> Result<Parsed, ProxyError> {
        parse(bytes)
    }

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        b.push(family);
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 127.0.0.2 127.0.0.1 51234 5514\r\n<13>after";
        assert_eq!(
            header(line),
            Ok(Parsed::Header {
                source: Source::Client("127.0.0.2:51234".parse().unwrap()),
                len: 43
            })
        );
        let line = b"PROXY TCP6 2001:db8::2 2001:db8::1 40000 514\r\n";
        assert!(matches!(
            header(line),
            Ok(Parsed::Header { source: Source::Client(a), .. }) if a == "[2001:db8::2]:40000".parse().unwrap()
        ));
        assert_eq!(
            header(b"PROXY UNKNOWN\r\n"),
            Ok(Parsed::Header {
                source: Source::Itself,
                len: 15
            })
        );
    }

    #[test]
    fn v2_proxy_ipv4_ipv6_and_local() {
        let mut ipv4 = vec![127, 0, 0, 2, 127, 0, 0, 1];
        ipv4.extend_from_slice(&51234u16.to_be_bytes());
        ipv4.extend_from_slice(&5514u16.to_be_bytes());
        let bytes = v2(1, 0x11, &ipv4);
        assert_eq!(
            header(&bytes),
            Ok(Parsed::Header {
                source: Source::Client("127.0.0.2:51234".parse().unwrap()),
                len: 28
            })
        );
        let mut ipv6 = Vec::new();
        ipv6.extend_from_slice(
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ipv6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ipv6.extend_from_slice(&[0x9c, 0x40, 0x02, 0x02]);
        assert!(matches!(
            header(&v2(1, 0x21, &ipv6)),
            Ok(Parsed::Header { source: Source::Client(a), len: 52 }) if a.port() == 40000
        ));
        // LOCAL: a balancer's health check, no addresses.
        assert_eq!(
            header(&v2(0, 0x00, &[])),
            Ok(Parsed::Header {
                source: Source::Itself,
                len: 16
            })
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        // No header at all.
        assert_eq!(header(b"<13>hello"), Err(ProxyError::Missing));
        assert_eq!(header(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
        // A v2 length that lies beyond what is taken.
        let mut lie = v2(1, 0x11, &[]);
        lie[14..16].copy_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(header(&lie), Err(ProxyError::Malformed(_))));
        // A v2 length too short for its family.
        assert!(matches!(
            header(&v2(1, 0x11, &[1, 2, 3])),
            Err(ProxyError::Malformed(_))
        ));
        // An unknown family or a unix socket.
        assert!(matches!(
            header(&v2(1, 0x41, &[0; 12])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            header(&v2(1, 0x31, &[0; 216])),
            Err(ProxyError::Malformed(_))
        ));
        // v1 without its CRLF in 107 bytes, or with nonsense.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(header(&long), Err(ProxyError::Malformed(_))));
        assert!(matches!(
            header(b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n"),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            header(b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_headers_ask_for_more() {
        assert_eq!(header(b"PROXY"), Ok(Parsed::NeedMore(1)));
        assert_eq!(header(b"PROXY TCP4 1.2.3.4"), Ok(Parsed::NeedMore(1)));
        assert_eq!(header(&V2_SIGNATURE[..5]), Ok(Parsed::NeedMore(11)));
        let full = v2(1, 0x11, &[0; 12]);
        assert_eq!(header(&full[..20]), Ok(Parsed::NeedMore(8)));
    }

    #[tokio::test]
    async fn the_reader_takes_only_the_header() {
        let data = b"PROXY TCP4 127.0.0.2 127.0.0.1 51234 5514\r\n<13>first".to_vec();
        let mut stream = std::io::Cursor::new(data);
        let source = read_header(&mut stream, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(source, Source::Client("127.0.0.2:51234".parse().unwrap()));
        let mut rest = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, "<13>first");
        let mut short = std::io::Cursor::new(b"PROXY TCP4 1.2".to_vec());
        assert_eq!(
            read_header(&mut short, Duration::from_secs(1)).await,
            Err(ProxyError::Truncated)
        );
    }
}
