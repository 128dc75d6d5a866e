//! Rows as JSON objects, written straight into a byte buffer (no intermediate
//! `serde_json::Value`): this runs once per message.

use super::{Row, Value};
use crate::decode::time::write_iso8601;

/// Appends `row` as one JSON object (no trailing newline).
pub fn write_json(row: &Row<'_>, out: &mut Vec<u8>) {
    write_json_where(row, |_| true, out);
}

/// Appends `row` as one JSON object with only the columns `keep` accepts; returns how many
/// bytes the others would have taken.
pub fn write_json_where(row: &Row<'_>, keep: impl Fn(&str) -> bool, out: &mut Vec<u8>) -> usize {
    let mut first = true;
    let mut left_out = 0;
    out.push(b'{');
    for (column, value) in &row.columns {
        if !keep(column) {
            let start = out.len();
            write_pair(column, value, out);
            left_out += out.len() - start + 1;
            out.truncate(start);
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_pair(column, value, out);
    }
    out.push(b'}');
    left_out
}

fn write_pair(column: &str, value: &Value<'_>, out: &mut Vec<u8>) {
    write_str(column, out);
    out.push(b':');
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
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs escaping: most values are plain text, and
        // this loop touches every byte of every row (the largest single cost in a profile
        // of `run` before it read words).
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !word_needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
            if NEEDS_ESCAPE[b as usize] {
                out.extend_from_slice(&bytes[start..j]);
                write_escape(b, out);
                start = j + 1;
            }
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
    use crate::record::Table;
    use std::borrow::Cow;

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
}
