//! JSON lines on stdout or appended to a file: the local outputs.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::batch::Batch;

/// A destination for batches. Called from one thread, in order.
pub trait Sink: Send {
    /// Delivers one batch. An error is counted and reported by the caller.
    fn write(&mut self, batch: &Batch) -> io::Result<()>;
    /// Makes everything written so far durable where the sink can.
    fn flush(&mut self) -> io::Result<()>;
}

/// Rows as JSON lines on any writer (stdout, a file).
pub struct JsonLinesSink<W: Write + Send> {
    out: BufWriter<W>,
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 20, out),
        }
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn write(&mut self, batch: &Batch) -> io::Result<()> {
        self.out.write_all(&batch.body)?;
        // A batch is the unit of delivery: it leaves the process before the next one.
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens `path` for appending (created if missing).
pub fn file(path: &Path) -> io::Result<JsonLinesSink<File>> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(JsonLinesSink::new(file))
}

pub fn stdout() -> JsonLinesSink<io::Stdout> {
    JsonLinesSink::new(io::stdout())
}
