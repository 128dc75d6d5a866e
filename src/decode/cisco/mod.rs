//! Cisco ASA and Firepower Threat Defense syslog: `%ASA-<level>-<id>: <text>` (or `%FTD-`).
//!
//! These are not CEF, but Microsoft's agent (the `Microsoft-CiscoAsa` stream) writes them to
//! `CommonSecurityLog`, and Sentinel's ASA content reads them there. This module recognises the
//! tag behind any syslog header and reads the network fields of the messages listed in
//! `grammars/cisco-asa-messages.tsv`; `record` turns the result into columns.

pub mod row;

use crate::row::ProblemKind;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use super::syslog::{SyslogHeader, offset_in};

/// Which Cisco software sent the message (the tag's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Asa,
    Ftd,
}

impl Product {
    /// The `DeviceProduct` value Microsoft's agent writes.
    pub fn name(self) -> &'static str {
        match self {
            Product::Asa => "ASA",
            Product::Ftd => "FTD",
        }
    }
}

/// Which way a connection goes, as the message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// The `CommunicationDirection` value Sentinel's ASA content reads.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        if word.eq_ignore_ascii_case("inbound") {
            Some(Direction::Inbound)
        } else if word.eq_ignore_ascii_case("outbound") {
            Some(Direction::Outbound)
        } else {
            None
        }
    }
}

/// An address and, when the message gives one, its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub address: &'a str,
    pub port: Option<u16>,
}

/// The network fields of one message; each is absent when the message has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFields<'a> {
    pub action: Option<&'a str>,
    pub direction: Option<Direction>,
    pub protocol: Option<Cow<'a, str>>,
    pub source: Option<Endpoint<'a>>,
    pub destination: Option<Endpoint<'a>>,
    pub source_translated: Option<Endpoint<'a>>,
    pub destination_translated: Option<Endpoint<'a>>,
    pub access_list: Option<&'a str>,
}

/// What was read beyond the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields<'a> {
    /// The message ID is not in the table: the row carries the tag's facts and the text.
    NotListed,
    /// The ID is listed but the text does not have its documented shape.
    Unread,
    Read(NetworkFields<'a>),
}

/// One Cisco message, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiscoMessage<'a> {
    pub product: Product,
    /// The syslog level in the tag, 0 (emergencies) to 7 (debugging).
    pub level: u8,
    /// The message ID, six digits.
    pub id: &'a str,
    /// The message from its tag on, as sent: `Message`.
    pub text: &'a str,
    pub fields: Fields<'a>,
}

/// The Cisco message in `text`, when the syslog TAG (or, for ASA's `host : %ASA-...` form,
/// the start of MSG) is a Cisco tag. Returns the tag's byte offset too, so that the caller can
/// drop header fields the syslog parser took from it.
pub fn recognise<'a>(
    text: &'a str,
    header: &SyslogHeader<'a>,
) -> Option<(usize, CiscoMessage<'a>)> {
    let candidate = match header.appname {
        Some(app) if app.starts_with('%') => app,
        _ => header.msg.trim_start(),
    };
    if !candidate.starts_with('%') {
        return None;
    }
    let at = offset_in(text, candidate)?;
    let message = parse(&text[at..])?;
    Some((at, message))
}

/// Reads `%ASA-<level>-<id>: <text>`; `None` unless `text` starts with such a tag.
pub fn parse(text: &str) -> Option<CiscoMessage<'_>> {
    let rest = text.strip_prefix('%')?;
    let (product, rest) = if let Some(r) = rest.strip_prefix("ASA-") {
        (Product::Asa, r)
    } else if let Some(r) = rest.strip_prefix("FTD-") {
        (Product::Ftd, r)
    } else {
        return None;
    };
    // An optional facility word (`%ASA-session-6-302013`), then the level.
    let rest = match rest.split_once('-') {
        Some((word, r)) if !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphabetic()) => r,
        _ => rest,
    };
    let level = match rest.as_bytes() {
        [l @ b'0'..=b'7', b'-', ..] => l - b'0',
        _ => return None,
    };
    let rest = &rest[2..];
    let id = rest
        .get(..6)
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()))?;
    let body = rest[6..].strip_prefix(':')?;
    let fields = match PATTERNS.get(id) {
        None => Fields::NotListed,
        Some(pattern) => match pattern.read(body.trim_start()) {
            Some(fields) => Fields::Read(fields),
            None => Fields::Unread,
        },
    };
    Some(CiscoMessage {
        product,
        level,
        id,
        text,
        fields,
    })
}

/// `LogSeverity` for a Cisco level: the ASA levels folded into the words Sentinel's content
/// uses (0-2 High, 3-5 Medium, 6-7 Low; sources in fixtures/README.md).
pub fn log_severity(level: u8) -> &'static str {
    match level {
        0..=2 => "High",
        3..=5 => "Medium",
        _ => "Low",
    }
}

/// One line of `grammars/cisco-asa-messages.tsv`.
#[derive(Debug)]
struct Pattern {
    ports: bool,
    direction: Option<Direction>,
    template: &'static str,
}

const TABLE: &str = include_str!("../../../grammars/cisco-asa-messages.tsv");

/// The table by message ID. A malformed line is left out (and fails `table_is_well_formed`).
static PATTERNS: LazyLock<HashMap<&'static str, Pattern>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for line in TABLE.lines() {
        let Some((ids, pattern)) = table_line(line) else {
            continue;
        };
        for id in ids.split(',') {
            map.insert(
                id,
                Pattern {
                    ports: pattern.ports,
                    direction: pattern.direction,
                    template: pattern.template,
                },
            );
        }
    }
    map
});

fn table_line(line: &'static str) -> Option<(&'static str, Pattern)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let mut cols = line.split('\t');
    let (ids, ports, direction, template) =
        (cols.next()?, cols.next()?, cols.next()?, cols.next()?);
    if cols.next().is_some() {
        return None;
    }
    let ports = match ports {
        "yes" => true,
        "no" => false,
        _ => return None,
    };
    let direction = match direction {
        "-" => None,
        d => Some(Direction::parse(d)?),
    };
    Some((
        ids,
        Pattern {
            ports,
            direction,
            template,
        },
    ))
}

impl Pattern {
    /// Matches the template against `body` from its start; `None` when a literal is missing.
    fn read<'a>(&self, body: &'a str) -> Option<NetworkFields<'a>> {
        let mut fields = NetworkFields {
            direction: self.direction,
            ..NetworkFields::default()
        };
        let mut template = self.template;
        let mut rest = body;
        while !template.is_empty() {
            let Some(after) = template.strip_prefix('{') else {
                let end = template.find('{').unwrap_or(template.len());
                rest = rest.strip_prefix(&template[..end])?;
                template = &template[end..];
                continue;
            };
            let close = after.find('}')?;
            let slot = &after[..close];
            template = &after[close + 1..];
            let literal = &template[..template.find('{').unwrap_or(template.len())];
            let end = if literal.is_empty() {
                rest.find(' ').unwrap_or(rest.len())
            } else {
                rest.find(literal)?
            };
            self.fill(&mut fields, slot, &rest[..end])?;
            rest = &rest[end..];
        }
        Some(fields)
    }

    /// Stores one slot's text. `None` (no match) when a word slot is empty or a direction is
    /// not a direction; an address that is not an IP address (ASA `names`) is left out.
    fn fill<'a>(&self, fields: &mut NetworkFields<'a>, slot: &str, value: &'a str) -> Option<()> {
        let word = || (!value.is_empty() && !value.contains(' ')).then_some(value);
        match slot {
            "_" => {}
            "act" => fields.action = Some(word()?),
            "dir" => fields.direction = Some(Direction::parse(value)?),
            "proto" => fields.protocol = Some(protocol(value)?),
            "acl" => fields.access_list = Some(word()?),
            "src" => fields.source = self.endpoint(value),
            "dst" => fields.destination = self.endpoint(value),
            "snat" => fields.source_translated = self.endpoint(value),
            "dnat" => fields.destination_translated = self.endpoint(value),
            "sport" => {
                if let Some(src) = &mut fields.source {
                    src.port = port(value);
                }
            }
            "dport" => {
                if let Some(dst) = &mut fields.destination {
                    dst.port = port(value);
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// `10.1.1.5/443`, `2001:db8::5/443` or `10.1.1.5`, cut before any space or `(`.
    fn endpoint<'a>(&self, value: &'a str) -> Option<Endpoint<'a>> {
        let value = value
            .split([' ', '('])
            .next()
            .unwrap_or_default()
            .trim_end_matches(['.', ',']);
        let (address, port_text) = match value.rsplit_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (value, None),
        };
        address.parse::<IpAddr>().ok()?;
        Some(Endpoint {
            address,
            port: port_text.filter(|_| self.ports).and_then(port),
        })
    }
}

/// Every slot [`Pattern::fill`] knows.
#[cfg(test)]
const SLOTS: [&str; 11] = [
    "_", "act", "dir", "proto", "acl", "src", "dst", "snat", "dnat", "sport", "dport",
];

/// The leading digits of `text` as a port (`1234)(LOCAL\alice` -> 1234).
fn port(text: &str) -> Option<u16> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    text[..digits].parse().ok()
}

/// `tcp` -> `TCP`, `protocol 41` -> `41`: one spelling, so that `Protocol == "TCP"` finds
/// every row. A name the device writes in mixed case (`ICMPv6`) is kept as written.
fn protocol(value: &str) -> Option<Cow<'_, str>> {
    let value = value.strip_prefix("protocol ").unwrap_or(value);
    if value.is_empty() || value.contains(' ') {
        return None;
    }
    let all_lower = !value.bytes().any(|b| b.is_ascii_uppercase());
    Some(
        if all_lower && value.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(value.to_ascii_uppercase())
        } else {
            Cow::Borrowed(value)
        },
    )
}

/// The Cisco ASA/FTD format: a `%ASA-n-id:` or `%FTD-n-id:` tag as the syslog TAG or at
/// the start of MSG, behind any header.
pub struct Cisco;

/// The Cisco message in `message` and its header, with the fields the syslog parser took
/// from the tag or after it dropped (the tag is no program name).
pub fn recognise_message<'a>(
    message: &crate::decode::Message<'a>,
) -> Option<(SyslogHeader<'a>, CiscoMessage<'a>)> {
    let text = message.text;
    let mut header = message.header().clone();
    let (at, cisco) = recognise(text, &header)?;
    let before =
        |s: Option<&'a str>| s.filter(|s| offset_in(text, s).is_some_and(|o| o + s.len() <= at));
    header.hostname = before(header.hostname);
    header.structured_data = before(header.structured_data);
    header.appname = None;
    header.procid = None;
    header.msgid = None;
    header.msg = &text[at..];
    Some((header, cisco))
}

impl crate::decode::Format for Cisco {
    fn name(&self) -> &'static str {
        "cisco-asa"
    }

    fn row<'a>(
        &self,
        message: &crate::decode::Message<'a>,
        cx: &crate::row::MapContext<'a>,
    ) -> Option<crate::row::Row<'a>> {
        let (header, cisco) = recognise_message(message)?;
        Some(row::row(&header, cisco, cx))
    }
}

/// A Cisco ASA/FTD message whose ID has network fields in `grammars/cisco-asa-messages.tsv`
/// but whose text has another shape; the row keeps the text in `Message` without them.
pub const FIELDS_UNREAD: ProblemKind = ProblemKind::new("cisco-fields-unread");
/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[FIELDS_UNREAD];

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> NetworkFields<'_> {
        match parse(text).expect("a Cisco tag").fields {
            Fields::Read(f) => f,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn ep(address: &str, port: Option<u16>) -> Option<Endpoint<'_>> {
        Some(Endpoint { address, port })
    }

    #[test]
    fn table_is_well_formed() {
        let mut ids = 0;
        for (n, line) in TABLE.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (id_list, pattern) =
                table_line(line).unwrap_or_else(|| panic!("line {} is malformed", n + 1));
            for id in id_list.split(',') {
                assert!(
                    id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()),
                    "{id}"
                );
                ids += 1;
            }
            // Slots are known and never adjacent (a slot must end at a literal or the end).
            let mut t = pattern.template;
            while let Some(open) = t.find('{') {
                let close = t[open..].find('}').expect("closed slot") + open;
                let slot = &t[open + 1..close];
                assert!(
                    SLOTS.contains(&slot),
                    "unknown slot {slot:?} on line {}",
                    n + 1
                );
                assert!(
                    !t[close + 1..].starts_with('{'),
                    "adjacent slots on line {}",
                    n + 1
                );
                t = &t[close + 1..];
            }
        }
        assert_eq!(PATTERNS.len(), ids, "an ID is listed twice");
        assert!(ids >= 35);
    }

    #[test]
    fn tag_forms() {
        let m = parse("%ASA-6-302013: Built inbound TCP connection 1 for a:1.1.1.1/1 (1.1.1.1/1) to b:2.2.2.2/2 (2.2.2.2/2)").unwrap();
        assert_eq!((m.product, m.level, m.id), (Product::Asa, 6, "302013"));
        let m = parse("%FTD-1-430002: EventPriority: Low").unwrap();
        assert_eq!((m.product, m.level, m.id), (Product::Ftd, 1, "430002"));
        assert_eq!(m.fields, Fields::NotListed);
        let m = parse("%ASA-session-5-111008: User 'admin' executed").unwrap();
        assert_eq!((m.level, m.id), (5, "111008"));
        for not_a_tag in [
            "%ASA-8-302013: level 8",
            "%ASA-6-30201: five digits",
            "%ASA-6-302013 no colon",
            "%PIX-6-302013: other product",
            "ASA-6-302013: no percent",
            "%ASA-6-",
        ] {
            assert_eq!(parse(not_a_tag), None, "{not_a_tag}");
        }
    }

    #[test]
    fn connection_built_with_translation_and_users() {
        let f = read(
            "%ASA-6-302013: Built outbound TCP connection 1948672 for outside:203.0.113.20/443 (203.0.113.20/443)(LOCAL\\web) to inside:10.1.1.25/53412 (198.51.100.7/53412) (LOCAL\\alice)",
        );
        assert_eq!(f.action, Some("Built"));
        assert_eq!(f.direction, Some(Direction::Outbound));
        assert_eq!(f.protocol.as_deref(), Some("TCP"));
        assert_eq!(f.source, ep("203.0.113.20", Some(443)));
        assert_eq!(f.destination, ep("10.1.1.25", Some(53412)));
        assert_eq!(f.source_translated, ep("203.0.113.20", Some(443)));
        assert_eq!(f.destination_translated, ep("198.51.100.7", Some(53412)));
    }

    #[test]
    fn access_lists_ipv6_and_protocol_numbers() {
        let f = read(
            "%ASA-4-106023: Deny protocol 47 src outside:2001:db8::7 dst inside:2001:db8:1::5 by access-group \"outside_in\" [0x0, 0x0]",
        );
        assert_eq!(f.protocol.as_deref(), Some("47"));
        assert_eq!(f.source, ep("2001:db8::7", None));
        assert_eq!(f.destination, ep("2001:db8:1::5", None));
        assert_eq!(f.access_list, Some("outside_in"));
        let f = read(
            "%ASA-6-106100: access-list inside_in permitted tcp inside/10.1.1.5(51234)(LOCAL\\bob, sg) -> outside/203.0.113.9(443) hit-cnt 1 first hit [0x1, 0x2]",
        );
        assert_eq!(
            (f.action, f.access_list),
            (Some("permitted"), Some("inside_in"))
        );
        assert_eq!(f.source, ep("10.1.1.5", Some(51234)));
        assert_eq!(f.destination, ep("203.0.113.9", Some(443)));
    }

    #[test]
    fn icmp_numbers_are_no_ports_and_names_are_no_addresses() {
        let f = read(
            "%ASA-6-302020: Built inbound ICMP connection for faddr 198.51.100.7/0 gaddr 203.0.113.5/1 laddr 10.1.1.5/1 type 8 code 0",
        );
        assert_eq!(f.source, ep("198.51.100.7", None));
        assert_eq!(f.destination, ep("10.1.1.5", None));
        // With `names` configured the ASA logs a name; it is no IP address, so no column.
        let f = read(
            "%ASA-2-106006: Deny inbound UDP from scanner/137 to 10.1.1.5/137 on interface outside",
        );
        assert_eq!(f.source, None);
        assert_eq!(f.destination, ep("10.1.1.5", Some(137)));
    }

    #[test]
    fn a_listed_id_in_an_unknown_shape_is_unread() {
        let m = parse("%ASA-6-302013: something else entirely").unwrap();
        assert_eq!(m.fields, Fields::Unread);
    }

    #[test]
    fn severities() {
        let words: Vec<_> = (0..8).map(log_severity).collect();
        assert_eq!(
            words,
            [
                "High", "High", "High", "Medium", "Medium", "Medium", "Low", "Low"
            ]
        );
    }
}
