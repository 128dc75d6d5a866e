//! Captures to replay: text files (one message per line) and packet captures (pcap, pcapng)
//! whose UDP datagrams and TCP streams are taken apart into syslog messages.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::frame::{FrameDecoder, trim_trailer};
use crate::frame::{Framing, Oversize};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable packet capture: {source}")]
    Pcap {
        path: String,
        source: pcap_file::PcapError,
    },
    #[error("{path}: link type {link:?} is not supported (Ethernet, raw IP and Linux cooked are)")]
    LinkType { path: String, link: DataLink },
}

/// Messages are kept whole but never larger than this when cut out of a TCP stream.
const MAX_MESSAGE: usize = 1 << 20;

/// Reads every message of `path`, in order. Packet captures are recognised by their magic
/// number; anything else is text with one message per line (LF or CRLF).
pub fn read_messages(path: &Path) -> Result<Vec<Vec<u8>>, CaptureError> {
    let name = path.display().to_string();
    let io = |source| CaptureError::Io {
        path: name.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    match &magic[..n] {
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d] => pcap_messages(&name, file),
        [0x0a, 0x0d, 0x0d, 0x0a] => pcapng_messages(&name, file),
        _ => {
            let mut out = Vec::new();
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(io)?;
                let line = trim_trailer(&line);
                if !line.is_empty() {
                    out.push(line.to_vec());
                }
            }
            Ok(out)
        }
    }
}

fn pcap_messages(name: &str, file: std::fs::File) -> Result<Vec<Vec<u8>>, CaptureError> {
    let pcap_err = |source| CaptureError::Pcap {
        path: name.to_string(),
        source,
    };
    let mut reader = PcapReader::new(BufReader::new(file)).map_err(pcap_err)?;
    let link = reader.header().datalink;
    let mut streams = Streams::default();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(pcap_err)?;
        streams.packet(name, link, &packet.data)?;
    }
    Ok(streams.finish())
}

fn pcapng_messages(name: &str, file: std::fs::File) -> Result<Vec<Vec<u8>>, CaptureError> {
    let pcap_err = |source| CaptureError::Pcap {
        path: name.to_string(),
        source,
    };
    let mut reader = PcapNgReader::new(BufReader::new(file)).map_err(pcap_err)?;
    let mut links = Vec::new();
    let mut streams = Streams::default();
    while let Some(block) = reader.next_block() {
        match block.map_err(pcap_err)? {
            Block::InterfaceDescription(idb) => links.push(idb.linktype),
            Block::EnhancedPacket(epb) => {
                let link = links
                    .get(epb.interface_id as usize)
                    .copied()
                    .unwrap_or(DataLink::ETHERNET);
                streams.packet(name, link, &epb.data)?;
            }
            Block::SimplePacket(spb) => {
                let link = links.first().copied().unwrap_or(DataLink::ETHERNET);
                streams.packet(name, link, &spb.data)?;
            }
            _ => {}
        }
    }
    Ok(streams.finish())
}

type FlowKey = (IpAddr, u16, IpAddr, u16);

struct Flow {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    decoder: FrameDecoder,
}

/// Messages in capture order: a datagram when it is seen, a TCP message when its last byte is.
#[derive(Default)]
struct Streams {
    messages: Vec<Vec<u8>>,
    flows: HashMap<FlowKey, Flow>,
    order: Vec<FlowKey>,
}

impl Streams {
    fn packet(&mut self, name: &str, link: DataLink, data: &[u8]) -> Result<(), CaptureError> {
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
            other => {
                return Err(CaptureError::LinkType {
                    path: name.to_string(),
                    link: other,
                });
            }
        };
        // Packets that are not IP/UDP/TCP (ARP, truncated frames) are not syslog: skip them.
        let Ok(packet) = sliced else { return Ok(()) };
        let (src, dst) = match &packet.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
            ),
            _ => return Ok(()),
        };
        match &packet.transport {
            Some(TransportSlice::Udp(udp)) => {
                let message = trim_trailer(udp.payload());
                if !message.is_empty() {
                    self.messages.push(message.to_vec());
                }
            }
            Some(TransportSlice::Tcp(tcp)) => {
                let key = (src, tcp.source_port(), dst, tcp.destination_port());
                let flow = self.flows.entry(key).or_insert_with(|| {
                    self.order.push(key);
                    Flow {
                        next_seq: None,
                        buf: Vec::new(),
                        decoder: FrameDecoder::new(Framing::Auto, MAX_MESSAGE, Oversize::Truncate),
                    }
                });
                let seq = tcp.sequence_number();
                let mut payload = tcp.payload();
                if tcp.syn() {
                    flow.next_seq = Some(seq.wrapping_add(1));
                    return Ok(());
                }
                if payload.is_empty() {
                    return Ok(());
                }
                let expected = *flow.next_seq.get_or_insert(seq);
                // Retransmissions: drop what was already taken.
                let behind = expected.wrapping_sub(seq) as usize;
                if behind < (1 << 30) {
                    if behind >= payload.len() {
                        return Ok(());
                    }
                    payload = &payload[behind..];
                }
                flow.next_seq = Some(seq.wrapping_add(tcp.payload().len() as u32));
                flow.buf.extend_from_slice(payload);
                let messages = &mut self.messages;
                let used = flow
                    .decoder
                    .decode(&flow.buf, false, |m, _| messages.push(m.to_vec()));
                flow.buf.drain(..used);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        for key in &self.order {
            let flow = self.flows.get_mut(key).expect("flow");
            let messages = &mut self.messages;
            flow.decoder
                .decode(&flow.buf, true, |m, _| messages.push(m.to_vec()));
        }
        self.messages
    }
}
