//! IBM LEEF 1.0 and 2.0: `LEEF:1.0|Vendor|Product|Version|EventID|key=value<TAB>key=value`,
//! and in 2.0 a delimiter field after the event ID (`^`, `x5E`, `0x09`), behind any syslog
//! header (IBM's own puts the host straight before `LEEF:`, with no APP-NAME) or none.
//!
//! No Sentinel content reads LEEF and Microsoft publishes no mapping, so the row is the one
//! the same event would give as CEF: the header as CEF's header fields, each predefined
//! attribute as its CEF counterpart (`grammars/leef-fields.tsv`), every other attribute in
//! `AdditionalExtensions`. The choices are in fixtures/README.md ("LEEF").

pub mod row;

use std::borrow::Cow;
use std::sync::LazyLock;

use super::cef::twin::CefKey;
use super::syslog::{SyslogHeader, offset_in};
use super::{FieldTable, Format, Message};
use crate::row::{MapContext, ProblemKind, Row};

/// The header has fewer than its five (2.0: six) `|` fields: what was there is kept.
pub const TRUNCATED_HEADER: ProblemKind = ProblemKind::new("leef-truncated-header");
/// A 2.0 delimiter field that is neither one character nor `x`/`0x` and 1-4 hex digits:
/// the attributes are split on tabs.
pub const BAD_DELIMITER: ProblemKind = ProblemKind::new("leef-bad-delimiter");
/// Attributes without `=` (skipped), or more than a line may have (cut).
pub const MALFORMED: ProblemKind = ProblemKind::new("leef-malformed");

/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[TRUNCATED_HEADER, BAD_DELIMITER, MALFORMED];

/// The most attributes a line is split into. Bounds the work a hostile line can cause.
const MAX_ATTRIBUTES: usize = 256;

/// The LEEF format on the decode seam.
pub struct Leef;

impl Format for Leef {
    fn name(&self) -> &'static str {
        "leef"
    }

    fn row<'a>(&self, message: &Message<'a>, cx: &MapContext<'a>) -> Option<Row<'a>> {
        let header = message.header();
        if let Some(text) = recognise(message.text, header) {
            return Some(row::row(header, None, parse(text), cx));
        }
        let (ibm, text) = ibm_header(message.text)?;
        Some(row::row(header, Some(ibm), parse(text), cx))
    }
}

/// The record in `text`, from `LEEF:` on: at the start of MSG, of the TAG or APP-NAME a
/// header parser cut from it, or of the text itself.
pub fn recognise<'a>(text: &'a str, header: &SyslogHeader<'a>) -> Option<&'a str> {
    if looks_like_leef(text) {
        return Some(text);
    }
    [header.appname, Some(header.msg)]
        .into_iter()
        .flatten()
        .filter_map(|part| offset_in(text, part))
        .map(|at| &text[at..])
        .find(|record| looks_like_leef(record))
}

/// What IBM's RFC 5424-style header says: `<PRI>1 TIMESTAMP HOST LEEF:...`, with no
/// APP-NAME, PROCID, MSGID or structured data (so a syslog parser turns it away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IbmHeader<'a> {
    pub timestamp: &'a str,
    pub host: &'a str,
}

/// IBM's header and the record after it.
pub fn ibm_header(text: &str) -> Option<(IbmHeader<'_>, &str)> {
    let rest = text.strip_prefix('<')?;
    let close = rest.bytes().take(4).position(|b| b == b'>')?;
    let rest = rest[close + 1..].strip_prefix("1 ")?;
    let (timestamp, rest) = rest.split_once(' ')?;
    let (host, record) = rest.split_once(' ')?;
    looks_like_leef(record).then_some((IbmHeader { timestamp, host }, record))
}

/// `LEEF:1` or `LEEF:2` (`LEEF:1.0|`, `LEEF:2.0|`, and the `LEEF:1|` some senders write).
pub fn looks_like_leef(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 6 && b.starts_with(b"LEEF:") && matches!(b[5], b'1' | b'2')
}

/// One LEEF record, split.
#[derive(Debug, Default, PartialEq)]
pub struct Record<'a> {
    pub version: &'a str,
    pub vendor: Option<&'a str>,
    pub product: Option<&'a str>,
    pub product_version: Option<&'a str>,
    pub event_id: Option<&'a str>,
    /// The attributes in order, values with `\=` and `\|` (and an escaped delimiter) read.
    pub attributes: Vec<(&'a str, Cow<'a, str>)>,
    pub truncated_header: bool,
    pub bad_delimiter: bool,
    /// Attributes without `=` skipped, or the line cut at the bound.
    pub malformed: bool,
}

/// Splits a record starting at `LEEF:`. Never fails.
pub fn parse(text: &str) -> Record<'_> {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut record = Record::default();
    let mut rest = &text["LEEF:".len()..];
    let fields = [
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
    ];
    let [version, vendor, product, product_version, event_id] = fields;
    record.version = version.unwrap_or(rest);
    record.vendor = vendor;
    record.product = product;
    record.product_version = product_version;
    record.event_id = event_id;
    if event_id.is_none() {
        record.truncated_header = true;
        return record;
    }
    let mut delimiter = None;
    if record.version.starts_with('2') {
        // The delimiter field, unless the sender left it out (the attributes start here).
        if let Some(at) = memchr::memchr(b'|', rest.as_bytes())
            && !rest[..at].contains('=')
        {
            match delimiter_of(&rest[..at]) {
                Some(d) => delimiter = Some(d),
                None => record.bad_delimiter = true,
            }
            rest = &rest[at + 1..];
        }
    }
    // 1.0 names no delimiter: tab, as the guide says, unless the line has none and uses
    // `|` (as some firewalls' LEEF 1.0 does).
    let delimiter = delimiter.unwrap_or(if rest.contains('\t') || !rest.contains('|') {
        '\t'
    } else {
        '|'
    });
    split_attributes(rest, delimiter, &mut record);
    record
}

/// The text up to the next `|`, and `rest` moved past it; `None` (and `rest` kept) when
/// there is no `|`.
fn field<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let at = memchr::memchr(b'|', rest.as_bytes())?;
    let value = &rest[..at];
    *rest = &rest[at + 1..];
    Some(value)
}

/// A 2.0 delimiter field: one character, or `x`/`0x` and 1-4 hex digits.
fn delimiter_of(field: &str) -> Option<char> {
    let mut chars = field.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(c);
    }
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
        .or_else(|| field.strip_prefix('x'))
        .or_else(|| field.strip_prefix('X'))?;
    if hex.is_empty() || hex.len() > 4 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
}

/// `key=value` attributes separated by `delimiter`; a backslash before the delimiter, `=`
/// or `|` makes it part of the value.
fn split_attributes<'a>(text: &'a str, delimiter: char, record: &mut Record<'a>) {
    let mut start = 0;
    let mut escaped = false;
    let mut owned_needed = false;
    let push = |piece: &'a str, has_escape: bool, record: &mut Record<'a>| {
        if piece.is_empty() {
            return;
        }
        if record.attributes.len() == MAX_ATTRIBUTES {
            record.malformed = true;
            return;
        }
        let Some(eq) = find_unescaped_eq(piece) else {
            record.malformed = true;
            return;
        };
        let (key, value) = (&piece[..eq], &piece[eq + 1..]);
        let value = if has_escape {
            Cow::Owned(unescape(value, delimiter))
        } else {
            Cow::Borrowed(value)
        };
        record.attributes.push((key.trim(), value));
    };
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            owned_needed = true;
            continue;
        }
        if c == delimiter {
            push(&text[start..i], owned_needed, record);
            start = i + c.len_utf8();
            owned_needed = false;
        }
    }
    push(&text[start..], owned_needed, record);
}

/// The first `=` not preceded by a backslash.
fn find_unescaped_eq(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b[i] == b'=' && (i == 0 || b[i - 1] != b'\\'))
}

/// `\=`, `\|` and an escaped delimiter as the characters; any other backslash stays.
fn unescape(value: &str, delimiter: char) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && (next == '=' || next == '|' || next == delimiter)
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Where a LEEF attribute goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The CEF header's severity.
    Severity,
    Key(CefKey),
}

const TABLE_TEXT: &str = include_str!("../../../grammars/leef-fields.tsv");

/// `grammars/leef-fields.tsv`: attribute -> where it goes. A line that is not two fields is
/// left out (build.rs refuses such a table).
pub static TABLE: LazyLock<FieldTable<Target>> = LazyLock::new(|| {
    TABLE_TEXT
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .map(|(leef, cef)| {
            let target = match cef {
                "@severity" => Target::Severity,
                key => Target::Key(CefKey::of(key)),
            };
            (leef, target)
        })
        .collect()
});

#[cfg(test)]
mod tests;
