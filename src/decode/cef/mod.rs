//! The CEF payload parser: `CEF:Version|Vendor|Product|Version|ClassID|Name|Severity|ext`.
//!
//! Implements `grammars/cef.abnf`. Fields borrow from the input and are only copied when an
//! escape has to be undone, so the common, escape-free line costs no allocation beyond the
//! vector of extension pairs.

pub mod action;
pub mod fields;
mod header;
pub mod row;
pub mod twin;

use crate::row::ProblemKind;
use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::{memchr2, memmem};
use nom::{
    IResult, Parser,
    bytes::complete::{tag, take_while1},
    character::complete::{char, digit1},
};

/// A decoded CEF record. Header fields keep their wire order; extension pairs keep theirs,
/// duplicates included, so the record stage can decide what a repeated key means.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CefEvent<'a> {
    pub version: &'a str,
    pub device_vendor: Cow<'a, str>,
    pub device_product: Cow<'a, str>,
    pub device_version: Cow<'a, str>,
    pub device_event_class_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub severity: Cow<'a, str>,
    /// The extension as written; [`CefEvent::extension`] reads its pairs.
    pub extension: &'a str,
}

impl<'a> CefEvent<'a> {
    /// The extension's pairs, in wire order, duplicates included.
    pub fn extension(&self) -> Extension<'a> {
        Extension::new(self.extension)
    }

    /// Every pair with its value decoded, collected (for tests and tools; the record stage
    /// streams them).
    pub fn pairs(&self) -> Vec<(&'a str, Cow<'a, str>)> {
        self.extension().map(|(k, v)| (k, v.decoded())).collect()
    }
}

/// Why a text that carries a CEF marker could not be read as a whole CEF record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CefError<'a> {
    #[error("no CEF marker (`CEF:<version>|`)")]
    NoMarker,
    /// Fewer than the seven header fields. `event` holds the fields that were found (the
    /// rest empty) and any extension pairs that followed them.
    #[error("CEF header has {} of 7 fields", .found + 1)]
    TruncatedHeader {
        event: Box<CefEvent<'a>>,
        found: usize,
    },
}

/// Where the CEF record starts in `text`: the first `CEF:<digits>|`.
pub fn find_marker(text: &str) -> Option<usize> {
    static FINDER: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"CEF:"));
    let finder = &*FINDER;
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = finder.find(&bytes[from..]) {
        let at = from + pos;
        let rest = &bytes[at + 4..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b'|') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

fn marker(input: &str) -> IResult<&str, &str> {
    let (rest, (_, version, _)) = (tag("CEF:"), digit1, char('|')).parse(input)?;
    Ok((rest, version))
}

/// One header field up to its unescaped `|`; `None` when the text ends first.
fn header_field(input: &str) -> Option<(&str, Cow<'_, str>)> {
    let bytes = input.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    loop {
        let off = memchr2(b'|', b'\\', &bytes[i..])?;
        let at = i + off;
        if bytes[at] == b'|' {
            let raw = &input[..at];
            let value = if escaped {
                Cow::Owned(unescape_header(raw))
            } else {
                Cow::Borrowed(raw)
            };
            return Some((&input[at + 1..], value));
        }
        escaped = true;
        i = at + 2; // skip the escaped character (or run past the end: lone backslash)
        if i > bytes.len() {
            return None;
        }
    }
}

fn unescape_header(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('|' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a CEF record without the `CEF:` marker starts. Two shapes put `CEF` in the syslog
/// tag instead:
/// - RFC 3164, `... host CEF: 0|Vendor|...` (also `CEF[pid]:`): what util-linux `logger -t CEF`
///   sends, as in Microsoft's own test command for its agent, which takes ident `CEF` with a
///   message `0|...` as CEF; relays and some appliances send it too. The record starts right
///   after the tag, at `<digits>|`.
/// - RFC 5424, `... CEF <pid> <msgid> 0|Vendor|...` (Microsoft Defender for Identity, ATA):
///   the record starts at the first ` <digits>|` after ` CEF `, when seven header fields
///   follow.
pub fn find_unmarked(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    // Only the first ` CEF ` is tried as an RFC 5424 APP-NAME: trying each would rescan the
    // rest of the text for every one (quadratic on hostile input).
    let mut app_name_tried = false;
    while let Some(off) = memmem::find(&bytes[from..], b"CEF") {
        let at = from + off;
        from = at + 3;
        let starts_token = at == 0 || matches!(bytes[at - 1], b' ' | b'>');
        if !starts_token {
            continue;
        }
        match bytes.get(at + 3) {
            Some(b':' | b'[') => {
                if let Some(start) = after_rfc3164_tag(bytes, at + 3) {
                    return Some(start);
                }
            }
            Some(b' ') if at > 0 && !app_name_tried => {
                app_name_tried = true;
                if let Some(start) = after_rfc5424_app_name(text, at + 4) {
                    return Some(start);
                }
            }
            _ => {}
        }
    }
    None
}

/// `[pid]:` then spaces then `<digits>|` from `i` (just past `CEF`): where the digits start.
fn after_rfc3164_tag(bytes: &[u8], mut i: usize) -> Option<usize> {
    if bytes.get(i) == Some(&b'[') {
        // A pid has a few digits; looking no further keeps hostile text linear.
        let close = bytes[i..].iter().take(12).position(|b| *b == b']')?;
        if !bytes[i + 1..i + close].iter().all(u8::is_ascii_digit) {
            return None;
        }
        i += close + 1;
    }
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    let spaces = bytes[i..].iter().take_while(|b| **b == b' ').count();
    if spaces == 0 {
        return None;
    }
    let start = i + spaces;
    let digits = bytes[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (digits > 0 && bytes.get(start + digits) == Some(&b'|')).then_some(start)
}

/// The RFC 5424 shape: the first ` <digits>|` from `from` (just past ` CEF `), when a whole
/// CEF header follows it.
fn after_rfc5424_app_name(text: &str, mut from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    while let Some(off) = memchr::memchr(b'|', &bytes[from..]) {
        let pipe = from + off;
        let digits = bytes[..pipe]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let start = pipe - digits;
        if digits > 0 && start > 0 && bytes[start - 1] == b' ' {
            return parse_unmarked(&text[start..]).is_ok().then_some(start);
        }
        from = pipe + 1;
    }
    None
}

/// Parses a CEF record that starts at its marker (`CEF:`).
pub fn parse(input: &str) -> Result<CefEvent<'_>, CefError<'_>> {
    let (rest, version) = marker(input).map_err(|_| CefError::NoMarker)?;
    parse_after_version(version, rest)
}

/// Parses a CEF record written without `CEF:`: `<version>|Vendor|...`.
pub fn parse_unmarked(input: &str) -> Result<CefEvent<'_>, CefError<'_>> {
    let parsed: IResult<&str, (&str, char)> = (digit1, char('|')).parse(input);
    let (rest, (version, _)) = parsed.map_err(|_| CefError::NoMarker)?;
    parse_after_version(version, rest)
}

fn parse_after_version<'a>(
    version: &'a str,
    mut rest: &'a str,
) -> Result<CefEvent<'a>, CefError<'a>> {
    let mut fields: Vec<Cow<'_, str>> = Vec::with_capacity(6);
    let mut complete = true;
    while fields.len() < 6 {
        match header_field(rest) {
            Some((next, value)) => {
                fields.push(value);
                rest = next;
            }
            None => {
                // No more pipes. `key=...` here is an extension behind a short header (its
                // pairs are kept); anything else is one more header field, and when that
                // is the sixth (severity without its closing pipe) the header is whole.
                if !rest.is_empty() && key_at(rest.trim_start()).is_none() {
                    fields.push(Cow::Owned(unescape_header(rest)));
                    rest = "";
                }
                complete = fields.len() == 6;
                break;
            }
        }
    }
    let found = fields.len();
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let event = CefEvent {
        version,
        device_vendor: next(),
        device_product: next(),
        device_version: next(),
        device_event_class_id: next(),
        name: next(),
        severity: next(),
        extension: rest,
    };
    if complete {
        Ok(event)
    } else {
        Err(CefError::TruncatedHeader {
            event: Box::new(event),
            found,
        })
    }
}

fn is_key_first(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Bytes a key may contain, as a table: the scan back from every `=` tests each key byte.
const KEY_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b',' | b'[' | b']' | b'-');
        b += 1;
    }
    table
};

#[inline]
fn is_key_char(b: u8) -> bool {
    KEY_CHARS[b as usize]
}

/// A key followed by `=` at the very start of `input`.
fn key_at(input: &str) -> Option<(&str, &str)> {
    let first = *input.as_bytes().first()?;
    if !is_key_first(first) {
        return None;
    }
    let parsed: IResult<&str, (&str, char)> = (
        take_while1(|c: char| c.is_ascii() && is_key_char(c as u8)),
        char('='),
    )
        .parse(input);
    parsed.ok().map(|(rest, (key, _))| (key, rest))
}

/// The start of the key that ends just before the `=` at `eq`, when that key is preceded by
/// a space at or after `min` (the key-boundary rule of `grammars/cef.abnf`).
fn key_start_before(bytes: &[u8], eq: usize, min: usize) -> Option<usize> {
    let mut k = eq;
    while k > min && is_key_char(bytes[k - 1]) {
        k -= 1;
    }
    if k == eq || k == min || bytes[k - 1] != b' ' || !is_key_first(bytes[k]) {
        return None;
    }
    Some(k)
}

/// The extension's `key=value` pairs, read lazily: the record stage maps each pair as it is
/// found, so no list of pairs is ever built.
#[derive(Debug, Clone)]
pub struct Extension<'a> {
    text: &'a str,
    /// `(key start, position of "=")` of the next pair.
    next: Option<(usize, usize)>,
    unkeyed: Option<&'a str>,
}

impl<'a> Extension<'a> {
    /// Positions at the first pair. Leading text that is no `key=` runs to the first real
    /// key boundary and is kept apart ([`Extension::take_unkeyed`]).
    pub fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let start = bytes.iter().take_while(|&&b| b == b' ').count();
        let mut ext = Self {
            text,
            next: None,
            unkeyed: None,
        };
        if start == bytes.len() {
            return ext;
        }
        ext.next = match key_at(&text[start..]) {
            Some((key, _)) => Some((start, start + key.len())),
            None => {
                let scan = scan_value(bytes, start);
                let leading = trim_end_ws(&text[start..scan.end]);
                if !leading.is_empty() {
                    ext.unkeyed = Some(leading);
                }
                scan.next_key
            }
        };
        ext
    }

    /// Text after the header that belongs to no key (malformed), if any, as written.
    pub fn take_unkeyed(&mut self) -> Option<&'a str> {
        self.unkeyed.take()
    }

    /// The extension as written.
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

impl<'a> Iterator for Extension<'a> {
    type Item = (&'a str, RawValue<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (key_start, eq) = self.next?;
        let scan = scan_value(self.text.as_bytes(), eq + 1);
        let raw = trim_end_ws(&self.text[eq + 1..scan.end]);
        self.next = scan.next_key;
        let value = RawValue {
            raw,
            escaped: scan.escaped,
        };
        Some((&self.text[key_start..eq], value))
    }
}

/// An extension value as written, escapes included. Readers choose how much to undo:
/// [`RawValue::decoded`] is the CEF grammar's reading, [`RawValue::as_stored`] is what
/// Microsoft's agent stores in a column, and [`RawValue::as_written`] is what it keeps in
/// `AdditionalExtensions` (fixtures/README.md, "Rows as Microsoft's agent writes them").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawValue<'a> {
    raw: &'a str,
    /// The value holds a backslash.
    escaped: bool,
}

impl<'a> RawValue<'a> {
    /// The value with every escape of the grammar undone: `\\`, `\=`, `\|`, and `\n` and
    /// `\r` as line breaks.
    #[inline]
    pub fn decoded(self) -> Cow<'a, str> {
        unescape_value(self.raw, self.escaped, true)
    }

    /// The value as a column stores it: `\\`, `\=` and `\|` undone, `\n` and `\r` kept
    /// as the two characters they are on the wire.
    #[inline]
    pub fn as_stored(self) -> Cow<'a, str> {
        unescape_value(self.raw, self.escaped, false)
    }

    /// The value exactly as written, escapes included.
    #[inline]
    pub fn as_written(self) -> &'a str {
        self.raw
    }
}

/// Where a value ends, and where the next pair's key starts and its `=` stands.
struct ValueScan {
    /// End of the value, before the separating space.
    end: usize,
    /// `(key start, position of "=")` of the next pair.
    next_key: Option<(usize, usize)>,
    /// The value contains a backslash (so it may need unescaping).
    escaped: bool,
}

/// Scans a value from `from` to the next key boundary (grammars/cef.abnf).
fn scan_value(bytes: &[u8], from: usize) -> ValueScan {
    let mut escaped = false;
    let mut i = from;
    while let Some(at) = find_eq_or_backslash(bytes, i) {
        if bytes[at] == b'\\' {
            escaped = true;
            i = at + 2;
            continue;
        }
        if let Some(k) = key_start_before(bytes, at, from) {
            return ValueScan {
                end: k - 1,
                next_key: Some((k, at)),
                escaped,
            };
        }
        i = at + 1;
    }
    ValueScan {
        end: bytes.len(),
        next_key: None,
        escaped,
    }
}

/// The first `=` or `\` at or after `from`. Eight bytes at a time (SWAR): values are short,
/// and on them this beats both a byte loop and a SIMD search's setup (benches/decode.rs).
#[inline]
fn find_eq_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const EQ: u64 = LO * b'=' as u64;
    const BS: u64 = LO * b'\\' as u64;
    let mut i = from;
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let (a, b) = (word ^ EQ, word ^ BS);
        // A zero byte in `a` or `b` marks a match; the lowest flagged byte is exact.
        let found = (a.wrapping_sub(LO) & !a & HI) | (b.wrapping_sub(LO) & !b & HI);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b == b'=' || b == b'\\')
        .map(|p| i + p)
}

fn trim_end_ws(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    &s[..end]
}

fn unescape_value(raw: &str, escaped: bool, line_breaks: bool) -> Cow<'_, str> {
    if !escaped {
        return Cow::Borrowed(raw);
    }
    // The text between backslashes is copied in runs; only escapes are looked at one by one.
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut start = 0;
    for at in memchr::memchr_iter(b'\\', bytes) {
        if at < start {
            continue; // the second byte of an escaped backslash
        }
        out.push_str(&raw[start..at]);
        match bytes.get(at + 1) {
            Some(b'=') => out.push('='),
            Some(b'\\') => out.push('\\'),
            Some(b'|') => out.push('|'),
            Some(b'n') if line_breaks => out.push('\n'),
            Some(b'r') if line_breaks => out.push('\r'),
            // Not an escape: the backslash stays and what follows is copied as text.
            Some(_) => {
                out.push('\\');
                start = at + 1;
                continue;
            }
            None => out.push('\\'),
        }
        start = at + 2;
    }
    out.push_str(raw.get(start..).unwrap_or(""));
    Cow::Owned(out)
}

/// Escapes a header field value per the grammar (the inverse of the decoder).
pub fn escape_header(value: &str) -> String {
    value.replace('\\', "\\\\").replace('|', "\\|")
}

/// Escapes an extension value per the grammar (the inverse of the decoder).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

pub use fields::{ColumnType, FIELDS, FieldSpec, lookup};

/// The CEF format: a record behind a `CEF:<n>|` marker anywhere in the message, or behind a
/// `CEF` syslog tag without one.
pub struct Cef;

/// A CEF record found in a message: the syslog header before it, the record, and its text.
#[cfg(test)]
pub struct Found<'a> {
    pub header: crate::decode::SyslogHeader<'a>,
    pub event: Result<CefEvent<'a>, CefError<'a>>,
    pub text: &'a str,
}

/// Where the CEF record in `text` starts, and whether a `CEF:<n>|` marker opens it.
#[inline]
fn locate(text: &str) -> Option<(usize, bool)> {
    match find_marker(text) {
        Some(at) => Some((at, true)),
        None => find_unmarked(text).map(|at| (at, false)),
    }
}

/// The CEF record in `message`, if it carries one (what [`Cef`]'s row is built from; the
/// decode tests look at it).
#[cfg(test)]
pub fn recognise<'a>(message: &crate::decode::Message<'a>) -> Option<Found<'a>> {
    let text = message.text;
    let (at, marked) = locate(text)?;
    let record = &text[at..];
    Some(Found {
        header: header::header_before(text, at, message.time()),
        event: if marked {
            parse(record)
        } else {
            parse_unmarked(record)
        },
        text: record,
    })
}

impl crate::decode::Format for Cef {
    fn name(&self) -> &'static str {
        "cef"
    }

    fn row<'a>(
        &self,
        message: &crate::decode::Message<'a>,
        cx: &crate::row::MapContext<'a>,
    ) -> Option<crate::row::Row<'a>> {
        // The same steps as [`recognise`], without moving the record through a `Found`
        // (a copy of a few hundred bytes per message, measurable in `benches/decode.rs`).
        let text = message.text;
        let (at, marked) = locate(text)?;
        let record = &text[at..];
        let header = header::header_before(text, at, message.time());
        let event = if marked {
            parse(record)
        } else {
            parse_unmarked(record)
        };
        Some(row::row(&header, event, record, cx))
    }
}

/// A CEF record with fewer than seven header fields; the raw text is kept in `Message`.
pub const HEADER_INCOMPLETE: ProblemKind = ProblemKind::new("cef-header-incomplete");
/// Text after the CEF header that belongs to no key; kept in `AdditionalExtensions`.
pub const TEXT_WITHOUT_KEY: ProblemKind = ProblemKind::new("cef-text-without-key");
/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[HEADER_INCOMPLETE, TEXT_WITHOUT_KEY];

#[cfg(test)]
mod tests;
