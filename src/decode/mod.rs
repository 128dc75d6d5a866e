//! Decode: the format stage. A message's text becomes its row here, through one seam: each
//! format is a module that recognises its messages, parses them and builds their row
//! ([`Format`]); [`FORMATS`] lists them in the order they are tried, and a message none of
//! them recognises becomes a plain `Syslog` row ([`syslog`]).
//!
//! A format's tables are data in `grammars/`, turned into code by `build.rs`. To add one:
//! its module here (recogniser, parser, row), its grammar table, its fixtures, and one line
//! in [`FORMATS`].

pub mod cef;
pub mod cisco;
pub mod fortigate;
pub mod leef;
pub mod pairs;
pub mod panos;
pub mod syslog;

use std::cell::OnceCell;

pub use crate::time;
pub use cef::{CefError, CefEvent, Extension};
pub use cisco::CiscoMessage;
pub use syslog::{ProcessId, SyslogHeader};
pub use time::TimeContext;

use crate::row::{ForcedFormat, MapContext, Problem, ProblemKind, Row};

/// One message as the formats see it: its text, and its syslog header, parsed once, on the
/// first format that asks for it.
pub struct Message<'a> {
    pub text: &'a str,
    time: TimeContext,
    header: OnceCell<SyslogHeader<'a>>,
}

impl<'a> Message<'a> {
    pub fn new(text: &'a str, time: TimeContext) -> Self {
        Self {
            text,
            time,
            header: OnceCell::new(),
        }
    }

    /// The message's syslog header, read the way a plain syslog message is.
    pub fn header(&self) -> &SyslogHeader<'a> {
        self.header
            .get_or_init(|| syslog::parse(self.text, &self.time))
    }

    /// The receive time and sender zone timestamps are read against.
    pub fn time(&self) -> &TimeContext {
        &self.time
    }
}

/// A message format: recognises its messages and builds their rows.
pub trait Format: Sync {
    /// The format's name.
    fn name(&self) -> &'static str;

    /// The row of `message`, or `None` when `message` is not in this format.
    fn row<'a>(&self, message: &Message<'a>, cx: &MapContext<'a>) -> Option<Row<'a>>;
}

/// The formats, in the order they are tried: the first that recognises a message builds its
/// row. CEF comes first because its marker can follow any header, Cisco's tags included.
pub static FORMATS: &[&dyn Format] = &[
    &cef::Cef,
    &cisco::Cisco,
    &panos::Panos,
    &fortigate::FortiGate,
    &leef::Leef,
];

/// The name that forces a plain `Syslog` row: no format is tried.
pub const SYSLOG: &str = "syslog";

/// The configured format did not recognise the line; the other formats were tried.
pub const FORCED_FORMAT_MISSED: ProblemKind = ProblemKind::new("forced-format-missed");

/// Problems of the seam itself.
const SEAM_PROBLEMS: &[ProblemKind] = &[FORCED_FORMAT_MISSED];

/// The problem kinds each format defines, beside [`crate::row::COMMON_PROBLEMS`].
pub const FORMAT_PROBLEMS: &[&[crate::row::ProblemKind]] = &[
    SEAM_PROBLEMS,
    syslog::PROBLEMS,
    cef::PROBLEMS,
    cisco::PROBLEMS,
    panos::PROBLEMS,
    fortigate::PROBLEMS,
    leef::PROBLEMS,
];

/// The names a configuration may force: every format's, and `syslog`.
pub fn format_names() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|f| f.name()).chain([SYSLOG])
}

/// A name that is not a format's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {given:?}: use one of {}", format_names().collect::<Vec<_>>().join(", "))]
pub struct UnknownFormat {
    pub given: String,
}

impl std::str::FromStr for ForcedFormat {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        format_names()
            .find(|n| *n == name)
            .map(ForcedFormat::checked)
            .ok_or_else(|| UnknownFormat {
                given: name.to_string(),
            })
    }
}

/// The row of one message: the configured format's, when one is named and recognises it;
/// else the first format's that recognises it; else a `Syslog` row. A line the named format
/// turns away is tagged `forced-format-missed`, so a wrong setting shows in the rows and
/// the counters instead of going unnoticed.
pub fn row<'a>(text: &'a str, cx: &MapContext<'a>) -> Row<'a> {
    let message = Message::new(text, cx.rx.time);
    let Some(forced) = cx.rx.format else {
        return detect(&message, text, cx);
    };
    if forced.name() == SYSLOG {
        return syslog::row::row(message.header(), text, cx);
    }
    let named = FORMATS.iter().find(|f| f.name() == forced.name());
    if let Some(row) = named.and_then(|f| f.row(&message, cx)) {
        return row;
    }
    let mut row = detect(&message, text, cx);
    row.problems.push(Problem {
        kind: FORCED_FORMAT_MISSED,
        detail: Some(format!("not {}", forced.name())),
    });
    row
}

/// The first format's row that recognises `message`, else a `Syslog` row.
fn detect<'a>(message: &Message<'a>, text: &'a str, cx: &MapContext<'a>) -> Row<'a> {
    for format in FORMATS {
        if let Some(row) = format.row(message, cx) {
            return row;
        }
    }
    syslog::row::row(message.header(), text, cx)
}

#[cfg(test)]
mod tests;

/// FNV-1a, for the formats' tables of field names: keys of a few bytes, looked up once per
/// field of every line, where SipHash's setup cost dominated a profile of the FortiGate
/// path. Not for keys a sender chooses to collide: the tables are fixed at build time and
/// only ever looked up.
#[derive(Clone, Copy)]
pub struct FieldNameHasher(u64);

impl Default for FieldNameHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FieldNameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A table keyed by field names (see [`FieldNameHasher`]).
pub type FieldTable<V> =
    std::collections::HashMap<&'static str, V, std::hash::BuildHasherDefault<FieldNameHasher>>;
