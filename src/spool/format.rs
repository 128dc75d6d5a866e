//! The chunk file: its name, its header line and checksum, and how a file is checked and
//! read back. Everything that knows the bytes of a chunk lives here, so that what the writer
//! puts on disk and what the recovery and the reader accept are defined in one place; the
//! rest of the spool handles chunks by number and never looks inside a file.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::record::Table;

/// The chunk format written now. Version 1 (checksum over the body only) is still read.
pub const VERSION: u32 = 2;

/// No chunk cefgate writes is larger: a batch body is at most `[batch] max_bytes` (64 MiB at
/// most), or one row alone, and a row of the largest message (16 MiB) escaped as JSON stays
/// well under this. A bigger file is not ours, and is quarantined without being read.
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// Headers are under 200 bytes; a first line longer than this is not a header.
const MAX_HEADER_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct Header {
    cefgate_spool: u32,
    seq: u64,
    table: String,
    rows: usize,
    bytes: usize,
    crc32: u32,
}

/// The checksum of a version 2 chunk starts with its header's fields, in this fixed text
/// form (JSON key order and spacing are not fixed, so the JSON itself cannot be hashed);
/// the body follows.
fn header_crc(seq: u64, table: &str, rows: usize, bytes: usize) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(
        format!("cefgate_spool:{VERSION}\nseq:{seq}\ntable:{table}\nrows:{rows}\nbytes:{bytes}\n")
            .as_bytes(),
    );
    hasher
}

/// A version 2 header for `batch` as chunk `seq`.
pub(super) fn encode_header(seq: u64, batch: &Batch) -> Vec<u8> {
    let table = batch.table.name();
    let mut crc = header_crc(seq, table, batch.rows, batch.body.len());
    crc.update(&batch.body);
    serde_json::to_vec(&Header {
        cefgate_spool: VERSION,
        seq,
        table: table.into(),
        rows: batch.rows,
        bytes: batch.body.len(),
        crc32: crc.finalize(),
    })
    .expect("a header serialises")
}

pub(super) fn chunk_name(seq: u64) -> String {
    format!("{seq:016x}.chunk")
}

/// The number of a chunk file name: exactly 16 lowercase hex digits and `.chunk`, as
/// [`chunk_name`] writes them. Anything else (`zzzz.chunk`, `+fff.chunk`, upper case) is not
/// a chunk. `u64::MAX` is never used, so `ffffffffffffffff.chunk` is not one either.
pub fn chunk_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".chunk")?;
    if digits.len() != 16
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(digits, 16)
        .ok()
        .filter(|s| *s != u64::MAX)
}

/// Chunk files in a spool folder: only names [`chunk_seq`] accepts, so a stray
/// `zzzz.chunk` is never reported as kept for delivery.
pub fn chunks_in(folder: &Path) -> usize {
    fs::read_dir(folder)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().and_then(chunk_seq).is_some())
                .count()
        })
        .unwrap_or(0)
}

/// Why a chunk is not delivered.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The file could not be read (permissions, an I/O error): its content may be intact,
    /// so it stays where it is.
    Unreadable(io::Error),
    /// The content is not a whole chunk cefgate wrote: it goes to quarantine.
    Damaged(String),
}

impl From<String> for ReadError {
    fn from(reason: String) -> Self {
        ReadError::Damaged(reason)
    }
}

impl From<&str> for ReadError {
    fn from(reason: &str) -> Self {
        ReadError::Damaged(reason.into())
    }
}

/// The header line of chunk `seq`, checked against its file name.
fn parse_header(line: &[u8], seq: u64) -> Result<(Header, Table), String> {
    let header: Header = serde_json::from_slice(line).map_err(|e| format!("bad header: {e}"))?;
    if header.cefgate_spool != 1 && header.cefgate_spool != VERSION {
        return Err(format!("unknown spool version {}", header.cefgate_spool));
    }
    if header.seq != seq {
        return Err(format!(
            "the header says chunk {:016x}, the file name {seq:016x}",
            header.seq
        ));
    }
    let table = Table::from_name(&header.table)
        .ok_or_else(|| format!("unknown table {:?}", header.table))?;
    Ok((header, table))
}

/// The body's checksum (seeded with the header fields for version 2), length and rows, fed
/// piece by piece so that a chunk can be checked without holding it in memory.
struct BodyCheck {
    hasher: crc32fast::Hasher,
    bytes: u64,
    rows: usize,
}

impl BodyCheck {
    fn new(h: &Header) -> Self {
        let hasher = if h.cefgate_spool == 1 {
            crc32fast::Hasher::new()
        } else {
            header_crc(h.seq, &h.table, h.rows, h.bytes)
        };
        BodyCheck {
            hasher,
            bytes: 0,
            rows: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.rows += memchr::memchr_iter(b'\n', data).count();
    }

    fn finish(self, h: &Header) -> Result<(), String> {
        if self.bytes != h.bytes as u64 {
            return Err(format!(
                "body is {} bytes, the header says {}",
                self.bytes, h.bytes
            ));
        }
        // Every row ends with a newline (JSON escapes those inside values).
        if self.rows != h.rows {
            return Err(format!(
                "body has {} rows, the header says {}",
                self.rows, h.rows
            ));
        }
        if self.hasher.finalize() != h.crc32 {
            return Err("checksum mismatch".into());
        }
        Ok(())
    }
}

/// Checks a regular file of at most [`MAX_CHUNK_BYTES`] before anything is read from it.
fn check_file_type(meta: &fs::Metadata) -> Result<(), ReadError> {
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_CHUNK_BYTES {
        return Err(format!(
            "{} bytes, larger than any chunk cefgate writes ({MAX_CHUNK_BYTES}); not read",
            meta.len()
        )
        .into());
    }
    Ok(())
}

/// Checks chunk `seq` at `path` by streaming it (the memory used does not depend on its
/// size) and returns its row count.
pub(super) fn verify_file(path: &Path, seq: u64) -> Result<usize, ReadError> {
    check_file_type(&fs::symlink_metadata(path).map_err(ReadError::Unreadable)?)?;
    let file = fs::File::open(path).map_err(ReadError::Unreadable)?;
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(ReadError::Unreadable)?;
    if line.pop() != Some(b'\n') {
        return Err("no header line".into());
    }
    let (header, _) = parse_header(&line, seq)?;
    let mut check = BodyCheck::new(&header);
    loop {
        let data = reader.fill_buf().map_err(ReadError::Unreadable)?;
        if data.is_empty() {
            break;
        }
        let n = data.len();
        check.feed(data);
        reader.consume(n);
        if check.bytes > header.bytes as u64 {
            break;
        }
    }
    check.finish(&header)?;
    Ok(header.rows)
}

/// Reads chunk `seq` at `path` whole and checks it.
pub(super) fn read_file(path: &Path, seq: u64) -> Result<Batch, ReadError> {
    check_file_type(&fs::symlink_metadata(path).map_err(ReadError::Unreadable)?)?;
    let mut file = fs::File::open(path).map_err(ReadError::Unreadable)?;
    let mut data = Vec::new();
    // At most MAX_CHUNK_BYTES + 1 even if the file grew since it was checked.
    (&mut file)
        .take(MAX_CHUNK_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(ReadError::Unreadable)?;
    let nl = data
        .iter()
        .take(MAX_HEADER_BYTES as usize)
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let (header, table) = parse_header(&data[..nl], seq)?;
    data.drain(..=nl);
    let mut check = BodyCheck::new(&header);
    check.feed(&data);
    check.finish(&header)?;
    Ok(Batch {
        table,
        rows: header.rows,
        body: data,
    })
}

/// What to do about a chunk that cannot be read.
pub(super) fn unreadable_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        "give the user cefgate runs as read access to it (chown/chmod), then restart or run `cefgate spool drain`"
    } else {
        "check the disk (dmesg); it is tried again at the next start"
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::spool::Spool;
    use crate::spool::test_support::*;

    #[test]
    fn only_exact_chunk_names_are_chunks() {
        assert_eq!(chunk_seq("000000000000002a.chunk"), Some(42));
        for name in [
            "ffffffffffffffff.chunk",
            "zzzz.chunk",
            "2a.chunk",
            "000000000000002A.chunk",
            "+00000000000002a.chunk",
            "000000000000002a.chunk.1",
            "0000000000000000002a.chunk",
            ".chunk",
        ] {
            assert_eq!(chunk_seq(name), None, "{name}");
        }
    }

    /// The header is covered by the checksum: a flipped table used to send CEF rows to the
    /// Syslog stream, a changed row count went unnoticed.
    #[test]
    fn a_changed_header_field_is_caught_and_the_chunk_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
            spool.append(batch(Table::CommonSecurityLog, &["{\"a\":1}"]));
            spool.append(batch(Table::CommonSecurityLog, &["{\"a\":2}", "{\"a\":3}"]));
            spool.append(batch(Table::CommonSecurityLog, &["{\"a\":4}"]));
        }
        let edit = |seq: u64, from: &str, to: &str| {
            let path = dir.path().join(chunk_name(seq));
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{text}");
            fs::write(&path, text.replacen(from, to, 1)).unwrap();
        };
        edit(0, "\"table\":\"CommonSecurityLog\"", "\"table\":\"Syslog\"");
        // A row count that still matches the body's lines is only caught by the checksum.
        edit(1, "\"rows\":2", "\"rows\":1");
        let metrics = Arc::new(Metrics::default());
        let (_, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics).unwrap();
        assert_eq!((rec.chunks, rec.rows, rec.quarantined), (1, 1, 2));
        let q = dir.path().join("quarantine");
        assert!(q.join(chunk_name(0)).exists() && q.join(chunk_name(1)).exists());
    }

    #[tokio::test]
    async fn version_1_chunks_left_by_an_older_release_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"{\"a\":1}\n{\"a\":2}\n";
        let header = format!(
            "{{\"cefgate_spool\":1,\"seq\":7,\"table\":\"CommonSecurityLog\",\"rows\":2,\"bytes\":{},\"crc32\":{}}}\n",
            body.len(),
            crc32fast::hash(body)
        );
        fs::write(
            dir.path().join(chunk_name(7)),
            [header.as_bytes(), body].concat(),
        )
        .unwrap();
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        assert_eq!((rec.chunks, rec.rows, rec.quarantined), (1, 2, 0));
        spool.append(batch(Table::Syslog, &["{}"]));
        let got = take_all(&spool).await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].0, got[0].1.table, got[0].1.body.as_slice()),
            (7, Table::CommonSecurityLog, &body[..])
        );
        assert_eq!(got[1].0, 8);
        let written = fs::read_to_string(dir.path().join(chunk_name(8))).unwrap();
        assert!(written.starts_with("{\"cefgate_spool\":2,"), "{written}");
    }

    /// A file bigger than any chunk is quarantined from its size alone, and a FIFO (which
    /// would block a read) from its type.
    #[test]
    fn an_oversized_or_special_file_is_quarantined_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let huge = fs::File::create(dir.path().join(chunk_name(0))).unwrap();
        huge.set_len(1 << 30).unwrap(); // sparse: no disk used
        let fifo = std::ffi::CString::new(
            dir.path()
                .join(chunk_name(1))
                .as_os_str()
                .as_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let (_, rec) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (0, 2));
        assert_eq!(chunks_in(dir.path()), 0);
    }
}
