//! Fortinet FortiGate syslog in FortiOS's default key=value form:
//! `date=2026-11-26 time=09:58:01 devname="FG100F" devid="FG..." logid="0000000013"
//! type="traffic" subtype="forward" level="notice" ...`, behind any syslog header or none.
//!
//! Sentinel's FortiGate content (the ASIM parsers, the workbook, the AMA connector's checks)
//! reads the `CommonSecurityLog` rows FortiOS's CEF mode gives. So a key=value line becomes
//! the row of its CEF twin: the header as FortiOS builds it (event class from `logid`, the
//! `type:subtype ...` name, severity from `level`), each field sent as the CEF key FortiOS
//! sends it as (`grammars/fortigate-fields.tsv`), and every other field as `FTNTFGT<key>`.
//! The choices are in fixtures/README.md ("FortiGate").

pub mod row;

use std::sync::LazyLock;

use super::cef::twin::CefKey;
use super::syslog::{SyslogHeader, offset_in};
use super::{FieldTable, Format, Message};
use crate::row::{MapContext, ProblemKind, Row};

/// A quoted value whose closing quote never came: it runs to the end of the line.
pub const UNBALANCED_QUOTE: ProblemKind = ProblemKind::new("fortigate-unbalanced-quote");
/// Text that is not `key=value` (skipped), or more pairs than a line may have (cut).
pub const MALFORMED: ProblemKind = ProblemKind::new("fortigate-malformed");
/// No `logid` or `type`: the header columns they fill are empty.
pub const INCOMPLETE: ProblemKind = ProblemKind::new("fortigate-incomplete");

/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[UNBALANCED_QUOTE, MALFORMED, INCOMPLETE];

/// The most pairs a line is split into (FortiOS's longest logs have about 120 fields).
/// Bounds the work a hostile line can cause.
const MAX_PAIRS: usize = 256;

/// What FortiOS's CEF mode writes before unmapped keys.
pub const PREFIX: &str = "FTNTFGT";

/// The FortiGate key=value format on the decode seam.
pub struct FortiGate;

impl Format for FortiGate {
    fn name(&self) -> &'static str {
        "fortigate"
    }

    fn row<'a>(&self, message: &Message<'a>, cx: &MapContext<'a>) -> Option<Row<'a>> {
        let header = message.header();
        let body = recognise(message.text, header)?;
        Some(row::row(header, body, cx))
    }
}

/// The key=value body in `text`: right after a PRI (FortiOS's own syslog has no other
/// header), or the syslog MSG (or the TAG a header parser took from it) behind a relay's
/// header.
pub fn recognise<'a>(text: &'a str, header: &SyslogHeader<'a>) -> Option<&'a str> {
    let after_pri = strip_pri(text);
    if looks_like_fortios(after_pri) {
        return Some(after_pri);
    }
    // A relay's RFC 3164 header: its parser may have taken `date=...` for the TAG.
    [header.appname, Some(header.msg)]
        .into_iter()
        .flatten()
        .filter_map(|part| offset_in(text, part))
        .map(|at| &text[at..])
        .find(|body| looks_like_fortios(body))
}

/// `text` after a leading `<digits>`, if any.
fn strip_pri(text: &str) -> &str {
    let Some(rest) = text.strip_prefix('<') else {
        return text;
    };
    let digits = rest.bytes().take(3).take_while(u8::is_ascii_digit).count();
    match rest.as_bytes().get(digits) {
        Some(b'>') if digits > 0 => &rest[digits + 1..],
        _ => text,
    }
}

/// How a FortiOS log starts: `date=YYYY-MM-DD ` (FortiOS 5 to 7), or `logver=` or
/// `timestamp=` (the fields some 7.x releases and FortiAnalyzer put first), and a `logid=`
/// field further on. The prefix check turns other lines away in a few nanoseconds; only a
/// line that passes it is searched for `logid=`.
pub fn looks_like_fortios(s: &str) -> bool {
    let b = s.as_bytes();
    let starts = if let Some(date) = b.strip_prefix(b"date=") {
        const SHAPE: &[u8; 11] = b"0000-00-00 ";
        date.len() > SHAPE.len()
            && SHAPE.iter().zip(date).all(|(want, got)| match want {
                b'0' => got.is_ascii_digit(),
                other => other == got,
            })
    } else {
        b.starts_with(b"logver=") || b.starts_with(b"timestamp=")
    };
    starts && memchr::memmem::find(b, b" logid=").is_some()
}

/// Where a FortiOS key goes in logs of some scope.
#[derive(Debug, Clone)]
pub struct KeyRule {
    /// `*`, or the `type` and `type:subtype` names it applies to.
    scope: Vec<&'static str>,
    /// The CEF key; `None`: not sent as a key.
    pub key: Option<CefKey>,
}

impl KeyRule {
    fn applies(&self, log_type: &str, category: &str) -> bool {
        self.scope
            .iter()
            .any(|s| *s == "*" || *s == log_type || *s == category)
    }
}

/// `grammars/fortigate-fields.tsv`, resolved.
pub struct Table {
    /// FortiOS key -> its rules, in table order.
    pub keys: FieldTable<Vec<KeyRule>>,
    /// `level` -> the CEF header's severity.
    pub levels: FieldTable<&'static str>,
    /// `direction` -> `deviceDirection`.
    pub directions: FieldTable<&'static str>,
}

const TABLE_TEXT: &str = include_str!("../../../grammars/fortigate-fields.tsv");

impl Table {
    /// How `key` is sent in a log of `log_type` whose `type:subtype` is `category`:
    /// `None` when no rule covers it (it is sent as `FTNTFGT<key>`), `Some(None)` when it is
    /// not sent as a key, else its CEF key.
    pub fn key(&self, key: &str, log_type: &str, category: &str) -> Option<Option<CefKey>> {
        self.keys
            .get(key)?
            .iter()
            .find(|r| r.applies(log_type, category))
            .map(|r| r.key)
    }
}

/// The table. A line that is not four tab-separated fields is left out (build.rs refuses
/// such a table, so none reaches here).
pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut table = Table {
        keys: FieldTable::default(),
        levels: FieldTable::default(),
        directions: FieldTable::default(),
    };
    for line in TABLE_TEXT.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(kind), Some(from), Some(to), Some(scope)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        match kind {
            "key" => {
                let rule = KeyRule {
                    scope: scope.split(',').collect(),
                    key: (to != "-").then(|| CefKey::of(to)),
                };
                table.keys.entry(from).or_default().push(rule);
            }
            "level" => {
                table.levels.insert(from, to);
            }
            "direction" => {
                table.directions.insert(from, to);
            }
            _ => {}
        }
    }
    table
});

#[cfg(test)]
mod tests;
