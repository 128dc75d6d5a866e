//! JSON lines on stdout or appended to a file: the local outputs.
//!
//! They run under the same driver as the Azure outputs, so a failed write is retried with
//! back-off like a failed request, and at shutdown what cannot be written goes to the spool
//! or the dead-letter file instead of being dropped.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use super::delivery::{Encoded, Output};
use super::retry::Outcome;

/// Rows as JSON lines on any writer (stdout, a file).
pub struct JsonLinesOutput {
    what: String,
    /// No `BufWriter`: after a failed write its buffer would still hold part of the batch
    /// and write it twice. Whole batches arrive as one piece, so writes are large anyway.
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesOutput {
    /// `what` names the destination in errors.
    pub fn new(what: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        Self {
            what: what.into(),
            out: Mutex::new(out),
        }
    }

    /// Opens `path` for appending (created if missing).
    pub fn file(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(path.display().to_string(), Box::new(file)))
    }

    pub fn stdout() -> Self {
        Self::new("standard output", Box::new(io::stdout()))
    }

    fn write(&self, rows: &[&[u8]]) -> io::Result<()> {
        let mut out = self.out.lock().expect("output lock");
        for row in rows {
            out.write_all(row)?;
            out.write_all(b"\n")?;
        }
        // A batch is the unit of delivery: it leaves the process before it is acknowledged.
        out.flush()
    }
}

impl Output for JsonLinesOutput {
    /// Writes the rows themselves: there is no request to build.
    async fn send(&self, _route: &str, rows: &[&[u8]], _request: &Encoded) -> Outcome {
        // A write can block (a full pipe, a slow disk): keep the runtime's other tasks moving.
        let written = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.write(rows))
            }
            _ => self.write(rows),
        };
        match written {
            Ok(()) => Outcome::Delivered,
            // Nobody reads any more (`cefgate run | head`): retrying cannot help.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Outcome::RouteBroken {
                reason: format!("{}: {e}", self.what),
            },
            Err(e) => Outcome::Transient {
                reason: format!("cannot write to {}: {e}", self.what),
            },
        }
    }

    fn takes_whole_batches(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(out: &JsonLinesOutput, rows: &[&[u8]]) -> Outcome {
        Output::send(out, "Syslog", rows, &Encoded::default()).await
    }

    #[tokio::test]
    async fn rows_are_written_as_lines_and_errors_classified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.ndjson");
        let out = JsonLinesOutput::file(&path).unwrap();
        let rows: [&[u8]; 2] = [b"{\"a\":1}", b"{\"a\":2}"];
        assert_eq!(send(&out, &rows).await, Outcome::Delivered);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );

        struct Failing(io::ErrorKind);
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(self.0.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(self.0.into())
            }
        }
        let full = JsonLinesOutput::new("disk", Box::new(Failing(io::ErrorKind::StorageFull)));
        assert!(matches!(
            send(&full, &rows).await,
            Outcome::Transient { .. }
        ));
        let gone = JsonLinesOutput::new("pipe", Box::new(Failing(io::ErrorKind::BrokenPipe)));
        assert!(matches!(
            send(&gone, &rows).await,
            Outcome::RouteBroken { .. }
        ));
    }
}
