//! Palo Alto Networks PAN-OS syslog in its default CSV form:
//! `FUTURE_USE,receive time,serial,TYPE,subtype,...` behind any syslog header.
//!
//! Every supported PAN-OS release sends this form (the vendor's CEF mode ended with 10.0), and
//! Sentinel's PAN-OS content reads only the `CommonSecurityLog` rows the CEF mode gave. So a
//! CSV line becomes the row its CEF twin would have given: each field goes to the CEF key the
//! vendor's template sends it as (`grammars/pan-os-fields.tsv`), and each key to its column
//! as the CEF path maps it ([`row`]). The choices are in fixtures/README.md ("PAN-OS CSV").

pub mod row;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use super::cef::twin::CefKey;
use super::syslog::{SyslogHeader, offset_in};
use super::{Format, Message};
use crate::row::{MapContext, ProblemKind, Row};

/// A quoted field whose closing quote never came: the rest of the line is that field.
pub const UNBALANCED_QUOTE: ProblemKind = ProblemKind::new("panos-unbalanced-quote");
/// Fewer fields than the log type's documented core: the missing ones are absent.
pub const TRUNCATED: ProblemKind = ProblemKind::new("panos-truncated");
/// A log type `grammars/pan-os-fields.tsv` does not list: only the header fields are read.
pub const TYPE_UNLISTED: ProblemKind = ProblemKind::new("panos-type-unlisted");

/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[UNBALANCED_QUOTE, TRUNCATED, TYPE_UNLISTED];

/// The most fields a line is split into: a longer line's tail is ignored (newer releases add
/// trailing fields the table does not list yet). Bounds the work a hostile line can cause.
const MAX_FIELDS: usize = 160;

/// The PAN-OS CSV format on the decode seam.
pub struct Panos;

impl Format for Panos {
    fn name(&self) -> &'static str {
        "pan-os"
    }

    fn row<'a>(&self, message: &Message<'a>, cx: &MapContext<'a>) -> Option<Row<'a>> {
        let header = message.header();
        let (_, body) = recognise(message.text, header)?;
        let line = parse(body);
        Some(row::row(header, line, body, cx))
    }
}

/// The CSV body in `text` when the syslog MSG (or the TAG a header parser took from it)
/// starts with a PAN-OS CSV prefix; with its byte offset in `text`.
pub fn recognise<'a>(text: &'a str, header: &SyslogHeader<'a>) -> Option<(usize, &'a str)> {
    let candidate = match header.appname {
        Some(app) if looks_like_panos(app) => app,
        _ => header.msg,
    };
    let at = offset_in(text, candidate)?;
    let body = &text[at..];
    looks_like_panos(body).then_some((at, body))
}

/// `digits,YYYY/MM/DD HH:MM:SS,`: the FUTURE_USE field and the receive time every PAN-OS
/// log type starts with. A fixed-shape check of at most 26 bytes, so a line of another
/// format is turned away in a few nanoseconds.
pub fn looks_like_panos(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    let Some(rest) = b.get(digits..) else {
        return false;
    };
    let Some(time) = rest.strip_prefix(b",") else {
        return false;
    };
    // YYYY/MM/DD HH:MM:SS,
    const SHAPE: &[u8; 20] = b"0000/00/00 00:00:00,";
    time.len() >= SHAPE.len()
        && SHAPE.iter().zip(time).all(|(want, got)| match want {
            b'0' => got.is_ascii_digit(),
            other => other == got,
        })
}

/// One CSV line split into its fields.
#[derive(Debug, Default, PartialEq)]
pub struct Line<'a> {
    /// The fields, unquoted (`""` inside quotes becomes `"`).
    pub fields: Vec<Cow<'a, str>>,
    /// A quote was left open: the last field runs to the end of the line.
    pub unbalanced: bool,
}

impl<'a> Line<'a> {
    /// Field `i`, or `None` when the line is shorter.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.fields.get(i).map(|f| f.as_ref())
    }
}

/// Splits a PAN-OS CSV body. Fields in double quotes may hold commas and `""`; a field that
/// only starts with a quote is read that way too (PAN-OS quotes whole fields). Never fails.
pub fn parse(body: &str) -> Line<'_> {
    let body = body.trim_end_matches(['\r', '\n']);
    let mut line = Line {
        fields: Vec::with_capacity(80),
        unbalanced: false,
    };
    let mut rest = body;
    loop {
        if line.fields.len() == MAX_FIELDS {
            break;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let (field, after) = quoted_field(quoted);
            line.fields.push(field);
            match after {
                Some(after) => match after.find(',') {
                    // Text between the closing quote and the comma is kept.
                    Some(0) => rest = &after[1..],
                    Some(i) => {
                        let last = line.fields.last_mut().expect("just pushed");
                        last.to_mut().push_str(&after[..i]);
                        rest = &after[i + 1..];
                    }
                    None => {
                        if !after.is_empty() {
                            let last = line.fields.last_mut().expect("just pushed");
                            last.to_mut().push_str(after);
                        }
                        break;
                    }
                },
                None => {
                    line.unbalanced = true;
                    break;
                }
            }
        } else {
            match memchr::memchr(b',', rest.as_bytes()) {
                Some(i) => {
                    line.fields.push(Cow::Borrowed(&rest[..i]));
                    rest = &rest[i + 1..];
                }
                None => {
                    line.fields.push(Cow::Borrowed(rest));
                    break;
                }
            }
        }
    }
    line
}

/// The inside of a quoted field starting after its opening quote, and the text after its
/// closing quote (`None` when it never closes).
fn quoted_field(s: &str) -> (Cow<'_, str>, Option<&str>) {
    let mut owned: Option<String> = None;
    let mut from = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(q) = memchr::memchr(b'"', &bytes[i..]) {
        let q = i + q;
        if bytes.get(q + 1) == Some(&b'"') {
            owned.get_or_insert_with(String::new).push_str(&s[from..=q]);
            from = q + 2;
            i = q + 2;
            continue;
        }
        let value = match owned {
            Some(mut o) => {
                o.push_str(&s[from..q]);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(&s[..q]),
        };
        return (value, Some(&s[q + 1..]));
    }
    let value = match owned {
        Some(mut o) => {
            o.push_str(&s[from..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(s),
    };
    (value, None)
}

/// Where a table line's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CSV field at this position.
    Field(usize),
    /// A constant the vendor's template writes (a label, TRAFFIC's severity).
    Constant(&'static str),
}

/// Where a value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// DeviceEventClassID.
    Class,
    /// Activity (the CEF header's Name).
    Name,
    /// LogSeverity, as the number the vendor's CEF sends.
    Severity,
    /// A CEF key: its column, or AdditionalExtensions.
    Key(CefKey),
}

/// One line of `grammars/pan-os-fields.tsv`, resolved.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    pub source: Source,
    pub pan_name: &'static str,
    pub target: Target,
}

/// One log type's mappings, in the table's order, and how many fields its documented core
/// has (the highest position the table lists before the newer trailing fields).
#[derive(Debug, Default)]
pub struct LogType {
    pub mappings: Vec<Mapping>,
    pub core_fields: usize,
}

const TABLE: &str = include_str!("../../../grammars/pan-os-fields.tsv");

/// The last position of the fields every release of 8.1 and later sends, per log type;
/// a line shorter than this is `panos-truncated`.
const CORE: &[(&str, usize)] = &[
    ("TRAFFIC", 53),
    ("THREAT", 60),
    ("SYSTEM", 23),
    ("CONFIG", 24),
    ("GLOBALPROTECT", 48),
];

/// The table by log type. A line that is not `type \t position \t name \t key` is left out
/// (build.rs refuses such a table, so none reaches here).
pub static LOG_TYPES: LazyLock<HashMap<&'static str, LogType>> = LazyLock::new(|| {
    let mut map: HashMap<&'static str, LogType> = HashMap::new();
    for line in TABLE.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(log_type), Some(position), Some(name), Some(key)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let source = match position {
            "=" => Source::Constant(name),
            p => match p.parse() {
                Ok(n) => Source::Field(n),
                Err(_) => continue,
            },
        };
        let target = match key {
            "-" => continue,
            "@class" => Target::Class,
            "@name" => Target::Name,
            "@severity" => Target::Severity,
            k => Target::Key(CefKey::of(k)),
        };
        let entry = map.entry(log_type).or_default();
        entry.mappings.push(Mapping {
            source,
            pan_name: name,
            target,
        });
    }
    for (log_type, core) in CORE {
        if let Some(entry) = map.get_mut(log_type) {
            entry.core_fields = *core;
        }
    }
    map
});

#[cfg(test)]
mod tests;
