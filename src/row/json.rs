//! Rows as JSON objects, written straight into a byte buffer (no intermediate
//! `serde_json::Value`): this runs once per message.

use super::{Row, Value};
use crate::time::write_iso8601;

/// Appended to a string value cut at an output's limit.
pub const TRUNCATION_MARKER: &str = "...[truncated by cefgate]";

/// What an output's API asks of a row's JSON besides its columns: the name `TimeGenerated`
/// goes under, and the longest string value the service keeps. An output decides it once
/// (`sink::OutputSettings::json_shape`) and the row is written that way, so rows leave the
/// buffer as the output sends them and no sink parses or rewrites them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonShape {
    /// The key `TimeGenerated`'s value is written under.
    pub time_column: &'static str,
    /// String values longer than this many bytes (before JSON escaping) are cut to it,
    /// ending with [`TRUNCATION_MARKER`] (the service would cut them without a word).
    pub max_value_bytes: usize,
}

impl JsonShape {
    /// Rows as the row builder made them: `convert`, stdout and files.
    pub const AS_BUILT: JsonShape = JsonShape {
        time_column: super::schema::columns::TIME_GENERATED,
        max_value_bytes: usize::MAX,
    };
}

/// What writing a row left out or changed, for the output's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes the columns left out would have taken (with their commas).
    pub left_out: usize,
    /// String values cut at [`JsonShape::max_value_bytes`].
    pub values_cut: u64,
}

/// Appends `row` as one JSON object (no trailing newline).
pub fn write_json(row: &Row<'_>, out: &mut Vec<u8>) {
    write_json_shaped(row, &JsonShape::AS_BUILT, |_| true, out);
}

/// Appends `row` as one JSON object with only the columns `keep` accepts; returns how many
/// bytes the others would have taken.
pub fn write_json_where(row: &Row<'_>, keep: impl Fn(&str) -> bool, out: &mut Vec<u8>) -> usize {
    write_json_shaped(row, &JsonShape::AS_BUILT, keep, out).left_out
}

/// Appends `row` as one JSON object in `shape`, with only the columns `keep` accepts.
pub fn write_json_shaped(
    row: &Row<'_>,
    shape: &JsonShape,
    keep: impl Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Written {
    let rename = shape.time_column != super::schema::columns::TIME_GENERATED;
    let mut first = true;
    let mut written = Written::default();
    out.push(b'{');
    for (column, value) in &row.columns {
        if !keep(column) {
            let start = out.len();
            write_pair(column, value, out);
            written.left_out += out.len() - start + 1;
            out.truncate(start);
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let column: &str = if rename && *column == super::schema::columns::TIME_GENERATED {
            shape.time_column
        } else {
            column
        };
        match value {
            Value::Str(s) if s.len() > shape.max_value_bytes => {
                write_pair(
                    column,
                    &Value::Str(cut(s, shape.max_value_bytes).into()),
                    out,
                );
                written.values_cut += 1;
            }
            _ => write_pair(column, value, out),
        }
    }
    out.push(b'}');
    written
}

/// `s` cut to at most `max` bytes on a character boundary, the marker included.
fn cut(s: &str, max: usize) -> String {
    let mut end = max.saturating_sub(TRUNCATION_MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut text = String::with_capacity(end + TRUNCATION_MARKER.len());
    text.push_str(&s[..end]);
    text.push_str(TRUNCATION_MARKER);
    text
}

/// How many bytes [`write_json`] would write for `row`, without writing its strings: what an
/// output's `where` leaves out is counted in `bytes_not_sent` at this cost. `scratch` is
/// used for time values only.
pub fn json_len(row: &Row<'_>, scratch: &mut Vec<u8>) -> usize {
    let pairs: usize = row
        .columns
        .iter()
        .map(|(column, value)| pair_len(column, value, scratch))
        .sum();
    // The braces, and a comma between pairs.
    2 + pairs + row.columns.len().saturating_sub(1)
}

fn pair_len(column: &str, value: &Value<'_>, scratch: &mut Vec<u8>) -> usize {
    let key = column.len() + 3;
    key + match value {
        Value::Str(s) => str_len(s),
        Value::Int(n) => itoa::Buffer::new().format(*n).len(),
        Value::Real(x) => ryu::Buffer::new().format_finite(*x).len(),
        Value::Time(t) => {
            scratch.clear();
            write_iso8601(t, scratch);
            scratch.len() + 2
        }
    }
}

/// The length of `s` as a JSON string literal (see [`write_str`]).
fn str_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        return bytes.len() + 2;
    }
    let extra: usize = bytes
        .iter()
        .filter(|&&b| NEEDS_ESCAPE[b as usize])
        .map(|&b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' => 1,
            _ => 5,
        })
        .sum();
    bytes.len() + 2 + extra
}

fn write_pair(column: &str, value: &Value<'_>, out: &mut Vec<u8>) {
    // Column names are the schema's own identifiers (`&'static str` in a row), which never
    // need escaping.
    debug_assert!(!needs_escape(column.as_bytes()), "{column:?}");
    out.push(b'"');
    out.extend_from_slice(column.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Value::Str(s) => write_str(s, out),
        Value::Int(n) => {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(*n).as_bytes());
        }
        Value::Real(x) => {
            // Only finite values reach a row (see record::convert).
            let mut buf = ryu::Buffer::new();
            out.extend_from_slice(buf.format_finite(*x).as_bytes());
        }
        Value::Time(t) => {
            out.push(b'"');
            write_iso8601(t, out);
            out.push(b'"');
        }
    }
}

/// A JSON string literal: `"`, `\` and control characters escaped, everything else as is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most values need no escape: checked a word at a time, then copied whole. This runs
    // for every column of every row (before, a byte loop was the largest single cost in a
    // profile of `run`).
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if NEEDS_ESCAPE[b as usize] {
            out.extend_from_slice(&bytes[start..i]);
            write_escape(b, out);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` needs escaping, eight bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let mut chunks = bytes.chunks_exact(8);
    if chunks
        .by_ref()
        .any(|c| word_needs_escape(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
    {
        return true;
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        false
    } else if bytes.len() >= 8 {
        // The last eight bytes (overlapping bytes already seen is harmless).
        word_needs_escape(word(bytes.len() - 8))
    } else {
        // Fewer than eight bytes: in a register, padded with a byte that needs no escape.
        let mut w = u64::from_le_bytes([b'a'; 8]);
        for (k, &b) in rest.iter().enumerate() {
            w = (w & !(0xff << (8 * k))) | (u64::from(b) << (8 * k));
        }
        word_needs_escape(w)
    }
}

/// One escaped byte.
fn write_escape(b: u8, out: &mut Vec<u8>) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        }
    }
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\`. Each test
/// is exact about whether some byte matches (not about which one).
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0;
    below_space
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that a JSON string must escape: control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Table;
    use std::borrow::Cow;

    #[test]
    fn a_shape_renames_the_time_and_cuts_long_values_with_a_marker() {
        let long = "é".repeat(40);
        let row = Row {
            table: Table::Syslog,
            columns: vec![
                ("TimeGenerated", Value::Str("2026-12-03T10:00:00Z".into())),
                ("Computer", Value::Str("fw".into())),
                ("SyslogMessage", Value::Str(long.as_str().into())),
                ("ProcessID", Value::Int(7)),
            ],
            problems: Vec::new(),
        };
        let shape = JsonShape {
            time_column: "CefgateTimeGenerated",
            max_value_bytes: 40,
        };
        let mut out = Vec::new();
        let written = write_json_shaped(&row, &shape, |c| c != "ProcessID", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["CefgateTimeGenerated"], "2026-12-03T10:00:00Z");
        assert!(v.get("TimeGenerated").is_none());
        let message = v["SyslogMessage"].as_str().unwrap();
        assert!(
            message.len() <= 40 && message.ends_with(TRUNCATION_MARKER),
            "{message}"
        );
        assert!(message.starts_with('é'));
        assert_eq!(written.values_cut, 1);
        assert_eq!(written.left_out, r#","ProcessID":7"#.len());
        // As built: nothing renamed, nothing cut.
        let mut as_built = Vec::new();
        write_json(&row, &mut as_built);
        let v: serde_json::Value = serde_json::from_slice(&as_built).unwrap();
        assert_eq!(v["SyslogMessage"], long.as_str());
        assert_eq!(v["TimeGenerated"], "2026-12-03T10:00:00Z");
    }

    #[test]
    fn escapes_match_serde_json() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "nl\ncr\rtab\t",
            "\u{1}\u{1f}x",
            "café ✓",
            "",
        ] {
            let mut out = Vec::new();
            write_str(s, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn escapes_are_found_at_every_position_of_a_word() {
        // Every byte that needs escaping, and neighbours that do not (space, DEL, `#`, `]`,
        // `[`, multi-byte text), at every offset of strings up to three words long.
        let specials = [
            "\"", "\\", "\n", "\u{0}", "\u{1f}", " ", "\u{7f}", "#", "]", "[", "é", "✓",
        ];
        for len in 0..24 {
            for pos in 0..=len {
                for special in specials {
                    let s = format!("{}{special}{}", "a".repeat(pos), "b".repeat(len - pos));
                    let mut out = Vec::new();
                    write_str(&s, &mut out);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        serde_json::to_string(&s).unwrap(),
                        "{s:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn typed_values() {
        let row = Row {
            table: Table::CommonSecurityLog,
            columns: vec![
                ("A", Value::Str(Cow::Borrowed("x"))),
                ("B", Value::Int(-42)),
                ("C", Value::Real(1.5)),
                (
                    "D",
                    Value::Time(chrono::DateTime::from_timestamp(0, 0).unwrap()),
                ),
            ],
            problems: vec![],
        };
        let mut out = Vec::new();
        write_json(&row, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"A":"x","B":-42,"C":1.5,"D":"1970-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn json_len_is_the_length_write_json_writes() {
        let strings = [
            "",
            "plain",
            "quo\"te",
            "nl\ncr\rtab\t",
            "\u{1}\u{1f}x",
            "café ✓",
        ];
        let times = [
            chrono::DateTime::from_timestamp(0, 0).unwrap(),
            chrono::DateTime::from_timestamp(1_764_000_000, 123_000_000).unwrap(),
            chrono::DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            chrono::DateTime::from_timestamp(-62_000_000_000, 0).unwrap(),
        ];
        let mut scratch = Vec::new();
        for (i, s) in strings.iter().enumerate() {
            for t in times {
                let mut row = Row {
                    table: Table::Syslog,
                    columns: vec![
                        ("A", Value::Str(Cow::Borrowed(s))),
                        ("B", Value::Int(-(i as i64) * 1_000_003)),
                        ("C", Value::Real(1.0 / (i as f64 + 3.0))),
                        ("D", Value::Time(t)),
                    ],
                    problems: vec![],
                };
                for _ in 0..=row.columns.len() {
                    let mut out = Vec::new();
                    write_json(&row, &mut out);
                    assert_eq!(json_len(&row, &mut scratch), out.len(), "{row:?}");
                    row.columns.pop();
                }
            }
        }
    }
}
