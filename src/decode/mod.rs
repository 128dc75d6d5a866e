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
pub mod panos;
pub mod syslog;

use std::cell::OnceCell;

pub use crate::time;
pub use cef::{CefError, CefEvent, Extension};
pub use cisco::CiscoMessage;
pub use syslog::{ProcessId, SyslogHeader};
pub use time::TimeContext;

use crate::row::{MapContext, Row};

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
pub static FORMATS: &[&dyn Format] = &[&cef::Cef, &cisco::Cisco, &panos::Panos];

/// The problem kinds each format defines, beside [`crate::row::COMMON_PROBLEMS`].
pub const FORMAT_PROBLEMS: &[&[crate::row::ProblemKind]] = &[
    syslog::PROBLEMS,
    cef::PROBLEMS,
    cisco::PROBLEMS,
    panos::PROBLEMS,
];

/// The row of one message: the first format's that recognises it, else a `Syslog` row.
pub fn row<'a>(text: &'a str, cx: &MapContext<'a>) -> Row<'a> {
    let message = Message::new(text, cx.rx.time);
    for format in FORMATS {
        if let Some(row) = format.row(&message, cx) {
            return row;
        }
    }
    syslog::row::row(message.header(), text, cx)
}

#[cfg(test)]
mod tests;
