//! Spool: batches on disk between batching and the output, so that what was accepted
//! survives an outage, a restart or a crash.
//!
//! One file per batch ("chunk"), written under a temporary name, synced, and renamed: a chunk
//! either exists whole or not at all. A chunk is deleted only after the output confirmed
//! every row in it (or dead-lettered the ones the service refused for good). On start the
//! chunks left over are delivered first, in order.
//!
//! The format is meant to be read by people: a one-line JSON header, then the rows as JSON
//! lines.
//!
//! ```text
//! {"cefgate_spool":2,"seq":42,"table":"CommonSecurityLog","rows":2,"bytes":123,"crc32":3735928559}
//! {"TimeGenerated":...}
//! {"TimeGenerated":...}
//! ```
//!
//! In version 2 the checksum covers the header's fields as well as the body (see
//! [`header_crc`]): a flipped `table` would otherwise send CEF rows to the Syslog stream.
//! Version 1 chunks (checksum over the body only), left by an older release, are still read.
//!
//! A chunk whose header or checksum does not match (a torn write, a flipped bit) is moved to
//! `quarantine/`, reported and counted, and never blocks the others: no manual clean-up is
//! ever needed. A simple directory of files was chosen over an embedded store because it is
//! inspectable with `head` and `ls`, has no compaction or format migration, and a write is
//! one `write` + `fsync` + `rename`, which costs little next to a network request.
//!
//! What keeps one chunk from ever replacing another:
//! - the folder is locked (`flock` on its `lock` file, held while the spool is open): a
//!   second cefgate on the same path, or `cefgate spool drain` while one runs, is refused;
//! - only a name of exactly 16 lowercase hex digits and `.chunk` is a chunk, and numbering
//!   continues after the highest chunk that is valid (or that could not be read, or is in
//!   quarantine), with checked arithmetic: a stray `ffffffffffffffff.chunk` cannot wrap it;
//! - the final rename refuses to replace a file (`RENAME_NOREPLACE`), and a move to
//!   quarantine picks a name not taken.
//!
//! At start every chunk is checked by streaming it through the checksum (memory stays flat
//! whatever the folder holds); a file larger than any chunk cefgate writes is quarantined
//! without being read. A chunk that cannot be read (permissions, an I/O error) may be
//! intact: it is left where it is, reported and counted, and not queued this run.
//!
//! The newest chunks are also kept in memory (up to [`RECENT_BYTES`]): while the output keeps
//! up, it takes each batch from there instead of reading back the file just written (reading
//! and checking it was 7% of `run`'s CPU with the spool on). The file is still written and
//! synced first, and is what survives; a chunk that fell out of memory is read from disk.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::record::Table;

/// When chunk writes are forced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync every chunk (and its directory entry) before it counts as accepted: survives a
    /// power cut.
    #[default]
    Batch,
    /// Leave it to the kernel: survives a crash of cefgate, not of the machine.
    Never,
}

#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

/// The chunk format written now. Version 1 (checksum over the body only) is still read.
pub const VERSION: u32 = 2;

/// No chunk cefgate writes is larger: a batch body is at most `[batch] max_bytes` (64 MiB at
/// most), or one row alone, and a row of the largest message (16 MiB) escaped as JSON stays
/// well under this. A bigger file is not ours, and is quarantined without being read.
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// Headers are under 200 bytes; a first line longer than this is not a header.
const MAX_HEADER_BYTES: u64 = 4096;

/// Numbers in `quarantine/` at or above this are ignored when numbering continues: they are
/// strays (a `ffffffffffffffff.chunk` moved there), not chunks this spool wrote, and 2^48
/// chunks are centuries of writing.
const QUARANTINE_SEQ_LIMIT: u64 = 1 << 48;

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

/// A chunk waiting for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u64,
    pub size: u64,
}

struct Inner {
    /// The next chunk number; `u64::MAX` means none is left (never reached in practice:
    /// it takes a chunk file numbered just under it).
    next_seq: u64,
    queued: VecDeque<Chunk>,
    bytes: u64,
    closed: bool,
    /// Shutting down: what is still in memory goes to disk even past `max_bytes`.
    overflow: bool,
    /// Shutting down: past this instant a chunk write that fails is not retried, and its
    /// rows are counted lost (the disk refused them and the shutdown deadline has passed).
    give_up_writes_at: Option<std::time::Instant>,
    /// When each chunk still on disk (waiting or being delivered) was written, in Unix ms,
    /// by sequence number: the first is the oldest.
    written: std::collections::BTreeMap<u64, u64>,
    /// The newest chunks' batches, oldest first, and their body bytes (at most
    /// [`RECENT_BYTES`]).
    recent: VecDeque<(u64, Batch)>,
    recent_bytes: usize,
}

/// How many bytes of the newest chunks are also kept in memory: four default batches.
pub const RECENT_BYTES: usize = 4 << 20;

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The spool. Producers (decode threads) block in [`Spool::append`] while it is full;
/// the output takes chunks with [`Spool::next`] and removes them with [`Spool::remove`].
pub struct Spool {
    settings: SpoolSettings,
    quarantine: PathBuf,
    inner: Mutex<Inner>,
    space: Condvar,
    ready: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// The `lock` file, `flock`ed for as long as the spool is open; closing it unlocks.
    _lock: fs::File,
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: String, source: io::Error },
    /// Another process holds the folder's lock: two writers would number their chunks
    /// alike and replace each other's.
    #[error(
        "spool {path} is in use by another cefgate{}: two instances on one spool would overwrite each other's chunks; stop the other one, or give this one its own [spool] path",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { path: String, holder: Option<u32> },
}

fn chunk_name(seq: u64) -> String {
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

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub chunks: usize,
    pub rows: usize,
    /// Damaged chunks and files with a `.chunk` name that is not a chunk's, moved to
    /// `quarantine/`.
    pub quarantined: usize,
    /// Chunks that could not be read (permissions, I/O errors): left in place, not queued.
    pub unreadable: usize,
}

/// Why a chunk is not delivered.
#[derive(Debug)]
enum ReadError {
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
fn verify_file(path: &Path, seq: u64) -> Result<usize, ReadError> {
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

/// Renames `from` to `to` unless `to` exists (`EEXIST` then): a chunk or a quarantined file
/// is never replaced, whatever else put a file there.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
        let c_to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: two valid NUL-terminated paths; renameat2 reads nothing else.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE: a hard link also refuses an existing name.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(e);
        }
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

/// Takes the folder's lock for the life of the returned file, and writes our pid in it (for
/// the message a second instance gets).
fn lock_folder(folder: &Path) -> Result<fs::File, SpoolError> {
    use std::os::fd::AsRawFd;
    let path = folder.join("lock");
    let err = |source| SpoolError::Io {
        path: folder.display().to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(SpoolError::InUse {
                path: folder.display().to_string(),
                holder,
            });
        }
        return Err(err(e));
    }
    file.set_len(0).map_err(err)?;
    writeln!(file, "{}", std::process::id()).map_err(err)?;
    Ok(file)
}

/// The number a quarantined file had in the spool (`<16 hex>.chunk`, `.tmp`, with or
/// without the `.N` a repeated name gets).
fn quarantined_seq(name: &str) -> Option<u64> {
    let (digits, rest) = name.split_at_checked(16)?;
    if !(rest.starts_with(".chunk") || rest.starts_with(".tmp"))
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Moves `path` into `quarantine` under its own name, or `<name>.1`, `<name>.2`, ... when
/// that is taken: a quarantined file is never replaced.
fn move_to_quarantine(quarantine: &Path, path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().unwrap_or(OsStr::new("unnamed"));
    for n in 0u64.. {
        let target = if n == 0 {
            quarantine.join(name)
        } else {
            let mut numbered = OsString::from(name);
            numbered.push(format!(".{n}"));
            quarantine.join(numbered)
        };
        match rename_noreplace(path, &target) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name in quarantine"))
}

/// Why a chunk write did not happen.
enum WriteError {
    /// A file already has the chunk's name: take another number.
    Taken,
    Io(io::Error),
}

impl Spool {
    /// Opens (or creates) the spool folder, locks it, checks every chunk left over,
    /// quarantines the broken ones and queues the rest in order.
    pub fn open(
        settings: SpoolSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Spool>, Recovery), SpoolError> {
        let err = |source| SpoolError::Io {
            path: settings.path.display().to_string(),
            source,
        };
        let quarantine = settings.path.join("quarantine");
        fs::create_dir_all(&quarantine).map_err(err)?;
        // Before anything is looked at: another instance may be writing here.
        let lock = lock_folder(&settings.path)?;
        let mut recovery = Recovery::default();
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&settings.path).map_err(err)? {
            let path = entry.map_err(err)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(seq) = chunk_seq(name) {
                found.push((seq, path));
            } else if name.ends_with(".chunk") {
                // Not a name cefgate writes: reported once, here, and out of the way so that
                // it is neither counted as kept for delivery nor reported again.
                match move_to_quarantine(&quarantine, &path) {
                    Ok(target) => tracing::warn!(
                        "spool: {name} is not a chunk (chunks are named by 16 hex digits and .chunk); moved to {}",
                        target.display()
                    ),
                    Err(e) => tracing::warn!(
                        "spool: {name} is not a chunk (chunks are named by 16 hex digits and .chunk) and cannot be moved to quarantine: {e}"
                    ),
                }
                Metrics::add(&metrics.chunks_quarantined, 1);
                recovery.quarantined += 1;
            } else if name.ends_with(".tmp") {
                // A write that never completed: it was never accepted, but keep it for a look.
                let _ = move_to_quarantine(&quarantine, &path);
                tracing::warn!("spool: incomplete chunk {name} moved to quarantine");
                Metrics::add(&metrics.chunks_quarantined, 1);
            }
        }
        found.sort();
        // Numbering continues after every number this spool has used and still shows: valid
        // chunks, unreadable ones (their number stays taken) and quarantined ones (so that a
        // number is not used twice, which would make `quarantine/` ambiguous).
        let mut highest: Option<u64> = fs::read_dir(&quarantine)
            .map_err(err)?
            .filter_map(Result::ok)
            .filter_map(|e| quarantined_seq(e.file_name().to_str()?))
            .filter(|s| *s < QUARANTINE_SEQ_LIMIT)
            .max();
        let mut queued = VecDeque::new();
        let mut written = std::collections::BTreeMap::new();
        let mut bytes = 0;
        let mut damaged = Vec::new();
        for (seq, path) in found {
            match verify_file(&path, seq) {
                Ok(rows) => {
                    let meta = fs::metadata(&path).ok();
                    let size = meta.as_ref().map_or(0, |m| m.len());
                    queued.push_back(Chunk { seq, size });
                    bytes += size;
                    written.insert(seq, meta.and_then(|m| m.modified().ok()).map_or(0, unix_ms));
                    recovery.chunks += 1;
                    recovery.rows += rows;
                    highest = highest.max(Some(seq));
                }
                Err(ReadError::Unreadable(e)) => {
                    tracing::error!(
                        "spool: chunk {} cannot be read ({e}); left in place and not delivered this run: {}",
                        path.display(),
                        unreadable_hint(&e)
                    );
                    Metrics::add(&metrics.chunks_unreadable, 1);
                    recovery.unreadable += 1;
                    highest = highest.max(Some(seq));
                }
                Err(ReadError::Damaged(reason)) => damaged.push((path, reason)),
            }
        }
        let spool = Arc::new(Spool {
            quarantine,
            inner: Mutex::new(Inner {
                // At most u64::MAX (none left), never wrapped.
                next_seq: highest.map_or(0, |s| s.saturating_add(1)),
                queued,
                bytes,
                closed: false,
                overflow: false,
                give_up_writes_at: None,
                written,
                recent: VecDeque::new(),
                recent_bytes: 0,
            }),
            space: Condvar::new(),
            ready: tokio::sync::Notify::new(),
            metrics,
            settings,
            _lock: lock,
        });
        for (path, reason) in damaged {
            spool.quarantine_path(&path, &reason);
            recovery.quarantined += 1;
        }
        Metrics::add(&spool.metrics.rows_recovered, recovery.rows as u64);
        spool.update_gauges();
        Ok((spool, recovery))
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.settings.path.join(chunk_name(seq))
    }

    fn update_gauges(&self) {
        let inner = self.inner.lock().expect("spool lock");
        self.metrics
            .spool_bytes
            .store(inner.bytes, Ordering::Relaxed);
        self.metrics
            .spool_chunks
            .store(inner.queued.len() as u64, Ordering::Relaxed);
        self.metrics.spool_oldest_chunk_unix_ms.store(
            inner.written.values().next().copied().unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    /// The next chunk number, or `None` when none is left (only after a chunk file numbered
    /// just under `u64::MAX`).
    fn take_seq(&self) -> Option<u64> {
        let mut inner = self.inner.lock().expect("spool lock");
        let seq = inner.next_seq;
        if seq == u64::MAX {
            return None;
        }
        inner.next_seq = seq + 1;
        Some(seq)
    }

    /// Writes `batch` as a chunk and returns once it is durable (per the fsync policy).
    /// Blocks while the spool is full, and retries while the disk refuses (full disk, I/O
    /// errors): the rows are never dropped here, and back-pressure reaches the listeners.
    /// While a write keeps failing, `spool_write_failing` says so (and `/ready` with it).
    pub fn append(&self, batch: Batch) {
        // The header is under 200 bytes.
        let size = (batch.body.len() + 200) as u64;
        {
            let mut inner = self.inner.lock().expect("spool lock");
            // A batch larger than the whole spool still goes in when the spool is empty.
            // (Chunks being delivered count: they are still on disk.)
            let mut waited = false;
            while inner.bytes + size > self.settings.max_bytes && inner.bytes > 0 && !inner.overflow
            {
                if !waited {
                    waited = true;
                    Metrics::add(&self.metrics.spool_full_waits, 1);
                    self.metrics.spool_full_now.store(1, Ordering::Relaxed);
                    tracing::warn!(
                        "spool full ({} bytes): holding input until the output catches up",
                        inner.bytes
                    );
                }
                inner = self.space.wait(inner).expect("spool lock");
            }
            if waited {
                self.metrics.spool_full_now.store(0, Ordering::Relaxed);
            }
        }
        let mut delay = Duration::from_millis(100);
        let mut failing = false;
        let mut seq = None;
        loop {
            let result = match seq.or_else(|| self.take_seq()) {
                None => Err(WriteError::Io(io::Error::other(format!(
                    "no chunk number is left (a file numbered near ffffffffffffffff is in the folder); deliver or move the chunks out of {} and restart",
                    self.settings.path.display()
                )))),
                Some(s) => {
                    seq = Some(s);
                    let header = self.header(s, &batch);
                    self.write_chunk(s, &header, &batch.body)
                }
            };
            match result {
                Ok(size) => {
                    let seq = seq.expect("a written chunk has a number");
                    let mut inner = self.inner.lock().expect("spool lock");
                    inner.queued.push_back(Chunk { seq, size });
                    inner.bytes += size;
                    inner
                        .written
                        .insert(seq, unix_ms(std::time::SystemTime::now()));
                    inner.keep_recent(seq, batch);
                    drop(inner);
                    if failing {
                        self.metrics
                            .spool_write_failing
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                    Metrics::add(&self.metrics.spool_chunks_written, 1);
                    self.update_gauges();
                    self.ready.notify_one();
                    return;
                }
                Err(WriteError::Taken) => {
                    let taken = seq.take().expect("a taken name has a number");
                    tracing::warn!(
                        "spool: {} already holds a file cefgate did not write there; it is left alone and the chunk takes another number",
                        self.path_of(taken).display()
                    );
                }
                Err(WriteError::Io(e)) => {
                    Metrics::add(&self.metrics.spool_write_errors, 1);
                    if !failing {
                        failing = true;
                        self.metrics
                            .spool_write_failing
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let give_up_at = self.inner.lock().expect("spool lock").give_up_writes_at;
                    let now = std::time::Instant::now();
                    if give_up_at.is_some_and(|at| now >= at) {
                        self.metrics
                            .spool_write_failing
                            .fetch_sub(1, Ordering::Relaxed);
                        Metrics::add(&self.metrics.rows_lost, batch.rows as u64);
                        tracing::error!(
                            "spool: cannot write a chunk to {}: {e}; the shutdown deadline has passed, so its {} {} row(s) are lost (free space on that disk, or raise shutdown_timeout_secs)",
                            self.settings.path.display(),
                            batch.rows,
                            batch.table.name()
                        );
                        return;
                    }
                    tracing::error!(
                        "spool: cannot write a chunk to {}: {e}; holding the rows and retrying in {delay:?}",
                        self.settings.path.display()
                    );
                    let wait =
                        give_up_at.map_or(delay, |at| delay.min(at.saturating_duration_since(now)));
                    std::thread::sleep(wait);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// A version 2 header for `batch` as chunk `seq`.
    fn header(&self, seq: u64, batch: &Batch) -> Vec<u8> {
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

    /// temp file -> write -> fsync -> rename (never over an existing file) -> fsync dir. On
    /// any error the temp file is removed: the spool never holds a half-written chunk under
    /// a chunk name.
    fn write_chunk(&self, seq: u64, header: &[u8], body: &[u8]) -> Result<u64, WriteError> {
        let tmp = self.settings.path.join(format!("{seq:016x}.tmp"));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(header)?;
            f.write_all(b"\n")?;
            f.write_all(body)?;
            if self.settings.fsync == FsyncPolicy::Batch {
                f.sync_data()?;
            }
            let size = f.metadata()?.len();
            rename_noreplace(&tmp, &self.path_of(seq))?;
            if self.settings.fsync == FsyncPolicy::Batch {
                fs::File::open(&self.settings.path)?.sync_all()?;
            }
            Ok(size)
        })();
        result.map_err(|e: io::Error| {
            let _ = fs::remove_file(&tmp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                WriteError::Taken
            } else {
                WriteError::Io(e)
            }
        })
    }

    /// The next chunk to deliver, waiting for one; `None` once the spool is closed and empty.
    pub async fn next(&self) -> Option<Chunk> {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.inner.lock().expect("spool lock");
                if let Some(chunk) = inner.queued.pop_front() {
                    return Some(chunk);
                }
                if inner.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// From now on [`Spool::append`] no longer waits for space: at shutdown, the rows still
    /// in memory are written even past `max_bytes` (the overshoot is bounded by the memory
    /// budget), because the alternative is to lose them.
    pub fn allow_overflow(&self) {
        self.inner.lock().expect("spool lock").overflow = true;
        self.space.notify_all();
    }

    /// At shutdown: a chunk that still cannot be written at `deadline` (a full disk, I/O
    /// errors) is given up, its rows counted in `rows_lost` and named in the log, so that
    /// the shutdown ends in `shutdown_timeout_secs` instead of retrying for ever (the
    /// service manager's kill would then lose them uncounted).
    pub fn give_up_writes_at(&self, deadline: std::time::Instant) {
        self.inner.lock().expect("spool lock").give_up_writes_at = Some(deadline);
    }

    /// Says no more chunks will be appended (at shutdown); [`Spool::next`] then ends when
    /// the queue is empty.
    pub fn close(&self) {
        self.inner.lock().expect("spool lock").closed = true;
        self.ready.notify_waiters();
    }

    /// The chunk's batch: from memory when it is still there, else read back from its file;
    /// a broken file is quarantined and `None` returned; one that cannot be read stays for
    /// the next start.
    pub fn read(&self, chunk: Chunk) -> Option<Batch> {
        if let Some(batch) = self
            .inner
            .lock()
            .expect("spool lock")
            .take_recent(chunk.seq)
        {
            return Some(batch);
        }
        let path = self.path_of(chunk.seq);
        match self.read_path(&path, chunk.seq) {
            Ok(batch) => Some(batch),
            Err(ReadError::Damaged(reason)) => {
                self.quarantine_path(&path, &reason);
                self.release(chunk);
                None
            }
            Err(ReadError::Unreadable(e)) => {
                tracing::error!(
                    "spool: chunk {} cannot be read ({e}); left in place for the next start: {}",
                    path.display(),
                    unreadable_hint(&e)
                );
                Metrics::add(&self.metrics.chunks_unreadable, 1);
                self.release(chunk);
                None
            }
        }
    }

    fn read_path(&self, path: &Path, seq: u64) -> Result<Batch, ReadError> {
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

    fn quarantine_path(&self, path: &Path, reason: &str) {
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        match move_to_quarantine(&self.quarantine, path) {
            Ok(target) => tracing::error!(
                "spool: chunk {} is damaged ({reason}); moved to {} and skipped",
                name.to_string_lossy(),
                target.display()
            ),
            Err(e) => tracing::error!(
                "spool: chunk {} is damaged ({reason}) and cannot be moved: {e}",
                path.display()
            ),
        }
        Metrics::add(&self.metrics.chunks_quarantined, 1);
    }

    /// The chunk was delivered (or its refused rows dead-lettered): delete it.
    pub fn remove(&self, chunk: Chunk) {
        if let Err(e) = fs::remove_file(self.path_of(chunk.seq))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(
                "spool: cannot delete delivered chunk {}: {e}",
                chunk_name(chunk.seq)
            );
        }
        self.release(chunk);
    }

    /// Puts a chunk taken with [`Spool::next`] back at the front of the queue (its output
    /// was replaced before it delivered any of it): it is handed out again this run, and
    /// keeps its place on disk and in the spool's size. After [`Spool::close`] the reader
    /// may have ended; the chunk then waits on disk for the next start, as a kept one does.
    pub fn requeue(&self, chunk: Chunk) {
        self.inner
            .lock()
            .expect("spool lock")
            .queued
            .push_front(chunk);
        self.update_gauges();
        self.ready.notify_one();
    }

    /// Gives the chunk's space back (its file is gone or kept for the next start).
    pub fn release(&self, chunk: Chunk) {
        let mut inner = self.inner.lock().expect("spool lock");
        inner.bytes = inner.bytes.saturating_sub(chunk.size);
        inner.written.remove(&chunk.seq);
        drop(inner);
        self.space.notify_all();
        self.update_gauges();
    }

    /// Chunk files in the spool folder (waiting, being delivered, or kept for a restart).
    pub fn chunks_on_disk(&self) -> usize {
        chunks_in(&self.settings.path)
    }

    /// Chunks waiting (not counting those being delivered).
    pub fn queued(&self) -> usize {
        self.inner.lock().expect("spool lock").queued.len()
    }
}

/// What to do about a chunk that cannot be read.
fn unreadable_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        "give the user cefgate runs as read access to it (chown/chmod), then restart or run `cefgate spool drain`"
    } else {
        "check the disk (dmesg); it is tried again at the next start"
    }
}

impl Inner {
    /// Keeps `batch` as the newest chunk in memory, dropping the oldest kept ones past
    /// [`RECENT_BYTES`] (they stay on disk).
    fn keep_recent(&mut self, seq: u64, batch: Batch) {
        self.recent_bytes += batch.body.len();
        self.recent.push_back((seq, batch));
        while self.recent_bytes > RECENT_BYTES {
            let Some((_, old)) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= old.body.len();
        }
    }

    /// The kept batch of chunk `seq`, if still in memory (chunks are taken in order, so the
    /// older ones left in front will not be asked for again this run).
    fn take_recent(&mut self, seq: u64) -> Option<Batch> {
        while let Some(front) = self.recent.front().map(|(s, _)| *s) {
            if front > seq {
                return None;
            }
            let (_, batch) = self.recent.pop_front()?;
            self.recent_bytes -= batch.body.len();
            if front == seq {
                return Some(batch);
            }
        }
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, max: u64) -> SpoolSettings {
        SpoolSettings {
            path: dir.to_path_buf(),
            max_bytes: max,
            fsync: FsyncPolicy::Batch,
        }
    }

    fn batch(table: Table, rows: &[&str]) -> Batch {
        let mut body = Vec::new();
        for r in rows {
            body.extend_from_slice(r.as_bytes());
            body.push(b'\n');
        }
        Batch {
            table,
            rows: rows.len(),
            body,
        }
    }

    #[tokio::test]
    async fn chunks_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        {
            let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            assert_eq!(rec, Recovery::default());
            spool.append(batch(Table::Syslog, &["{\"a\":1}"]));
            spool.append(batch(Table::CommonSecurityLog, &["{\"b\":2}", "{\"b\":3}"]));
            let first = spool.next().await.unwrap();
            let b = spool.read(first).unwrap();
            assert_eq!(b.body, b"{\"a\":1}\n");
            spool.remove(first);
        }
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics).unwrap();
        assert_eq!(
            rec,
            Recovery {
                chunks: 1,
                rows: 2,
                quarantined: 0,
                unreadable: 0,
            }
        );
        let c = spool.next().await.unwrap();
        let b = spool.read(c).unwrap();
        assert_eq!((b.table, b.rows), (Table::CommonSecurityLog, 2));
        spool.append(batch(Table::Syslog, &["{}"]));
        assert!(
            spool.next().await.unwrap().seq > c.seq,
            "numbering continues after a restart"
        );
    }

    #[tokio::test]
    async fn damaged_chunks_are_quarantined_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        {
            let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            for i in 0..3 {
                spool.append(batch(Table::Syslog, &[&format!("{{\"n\":{i}}}")]));
            }
        }
        // Flip a byte in the second chunk's body; leave a torn temp file behind.
        let second = dir.path().join(chunk_name(1));
        let mut data = fs::read(&second).unwrap();
        let last = data.len() - 2;
        data[last] ^= 0x01;
        fs::write(&second, data).unwrap();
        fs::write(
            dir.path().join("0000000000000009.tmp"),
            b"{\"cefgate_spool\":1,",
        )
        .unwrap();
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (2, 1));
        assert!(dir.path().join("quarantine").join(chunk_name(1)).exists());
        assert!(dir.path().join("quarantine/0000000000000009.tmp").exists());
        assert_eq!(Metrics::get(&metrics.chunks_quarantined), 2);
        let seqs = [
            spool.next().await.unwrap().seq,
            spool.next().await.unwrap().seq,
        ];
        assert_eq!(seqs, [0, 2]);
    }

    #[test]
    fn a_full_spool_holds_the_producer_until_space_frees() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 400), metrics.clone()).unwrap();
        let row = "x".repeat(200);
        spool.append(batch(Table::Syslog, &[&row])); // ~300 bytes: the spool is now full
        let producer = {
            let spool = spool.clone();
            let row = row.clone();
            std::thread::spawn(move || spool.append(batch(Table::Syslog, &[&row])))
        };
        // The producer must be waiting: the chunk is not there yet.
        crate::tests_support::wait_until(|| Metrics::get(&metrics.spool_full_waits) == 1);
        assert_eq!(spool.queued(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = runtime.block_on(spool.next()).unwrap();
        spool.remove(first);
        producer.join().unwrap();
        assert_eq!(spool.queued(), 1);
    }

    #[test]
    fn a_failing_write_is_retried_and_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        // The temporary name of the first chunk is taken by a folder: every write fails.
        let blocker = dir.path().join("0000000000000000.tmp");
        fs::create_dir(&blocker).unwrap();
        let producer = {
            let spool = spool.clone();
            std::thread::spawn(move || spool.append(batch(Table::Syslog, &["{\"kept\":1}"])))
        };
        crate::tests_support::wait_until(|| Metrics::get(&metrics.spool_write_errors) >= 1);
        assert_eq!(spool.chunks_on_disk(), 0, "no chunk under a chunk name yet");
        assert_eq!(
            Metrics::get(&metrics.spool_write_failing),
            1,
            "the failing write is shown (and /ready with it)"
        );
        fs::remove_dir(&blocker).unwrap();
        producer.join().unwrap();
        assert_eq!(Metrics::get(&metrics.spool_write_failing), 0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunk = runtime.block_on(spool.next()).unwrap();
        assert_eq!(spool.read(chunk).unwrap().body, b"{\"kept\":1}\n");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn close_ends_the_consumer_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        spool.append(batch(Table::Syslog, &["{}"]));
        spool.close();
        assert!(spool.next().await.is_some());
        assert!(spool.next().await.is_none());
    }

    /// The newest chunks come back from memory (a file damaged after the write does not
    /// matter to them); chunks pushed out of memory by newer ones are read from their file
    /// and checked.
    #[tokio::test]
    async fn the_newest_chunks_are_taken_from_memory_and_older_ones_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 30), metrics.clone()).unwrap();
        let big = "x".repeat(RECENT_BYTES / 4 - 64);
        let bodies: Vec<String> = (0..6)
            .map(|i| format!("{{\"n\":{i},\"{big}\":0}}"))
            .collect();
        for body in &bodies {
            spool.append(batch(Table::Syslog, &[body]));
        }
        // Damage every file: only what is read from disk can notice.
        for seq in 0..6 {
            let path = dir.path().join(chunk_name(seq));
            let mut data = fs::read(&path).unwrap();
            let last = data.len() - 2;
            data[last] ^= 0x01;
            fs::write(&path, data).unwrap();
        }
        let mut from_memory = Vec::new();
        while let Some(chunk) = {
            spool.close();
            spool.next().await
        } {
            if let Some(b) = spool.read(chunk) {
                assert_eq!(
                    b.body,
                    format!("{}\n", bodies[chunk.seq as usize]).as_bytes()
                );
                from_memory.push(chunk.seq);
                spool.remove(chunk);
            }
        }
        assert_eq!(
            from_memory,
            [2, 3, 4, 5],
            "the last {RECENT_BYTES} bytes are in memory"
        );
        assert_eq!(metrics.chunks_quarantined.load(Ordering::Relaxed), 2);
    }

    /// Writes `n` one-row Syslog chunks (rows `{"n":0}`, ...) and closes the spool.
    fn write_chunks(dir: &Path, n: usize) {
        let (spool, _) = Spool::open(settings(dir, 1 << 20), Arc::default()).unwrap();
        for i in 0..n {
            spool.append(batch(Table::Syslog, &[&format!("{{\"n\":{i}}}")]));
        }
    }

    /// Every chunk the spool hands out, read, and its number.
    async fn take_all(spool: &Spool) -> Vec<(u64, Batch)> {
        spool.close();
        let mut out = Vec::new();
        while let Some(chunk) = spool.next().await {
            if let Some(b) = spool.read(chunk) {
                out.push((chunk.seq, b));
            }
        }
        out
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_second_open_of_the_same_folder_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        let Err(e) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()) else {
            panic!("a second open of a locked spool succeeded");
        };
        let message = e.to_string();
        assert!(matches!(e, SpoolError::InUse { .. }), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string())
                && message.contains("in use by another cefgate")
                && message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        drop(first);
        Spool::open(settings(dir.path(), 1 << 20), Arc::default()).expect("unlocked on close");
    }

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

    /// A stray `ffffffffffffffff.chunk` (here a copy of a real chunk) used to make the
    /// counter wrap to 0, and the next chunks replaced undelivered ones.
    #[tokio::test]
    async fn a_stray_last_numbered_chunk_neither_wraps_numbering_nor_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 2);
        let copy = fs::read(dir.path().join(chunk_name(0))).unwrap();
        fs::write(dir.path().join("ffffffffffffffff.chunk"), &copy).unwrap();
        // A valid name with another chunk's header: its number is not trusted either.
        fs::write(dir.path().join("fffffffffffffffe.chunk"), &copy).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.rows, rec.quarantined), (2, 2, 2));
        spool.append(batch(Table::Syslog, &["{\"n\":2}"]));
        let got = take_all(&spool).await;
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            [0, 1, 2],
            "numbering continues after the last valid chunk"
        );
        let bodies: Vec<&[u8]> = got.iter().map(|(_, b)| b.body.as_slice()).collect();
        assert_eq!(
            bodies,
            [&b"{\"n\":0}\n"[..], b"{\"n\":1}\n", b"{\"n\":2}\n"],
            "every row once"
        );
        assert_eq!(chunks_in(dir.path()), 3);
    }

    #[test]
    fn names_that_are_not_chunks_are_quarantined_once_and_never_counted_as_chunks() {
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 1);
        for stray in [
            "zzzz.chunk",
            "000000000000000A.chunk",
            "+00000000000001.chunk",
        ] {
            fs::write(dir.path().join(stray), b"not a chunk").unwrap();
        }
        fs::write(dir.path().join("dead-letters.ndjson"), b"").unwrap();
        assert_eq!(chunks_in(dir.path()), 1, "only the real chunk is one");
        let metrics = Arc::new(Metrics::default());
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (1, 3));
        assert_eq!(Metrics::get(&metrics.chunks_quarantined), 3);
        drop(spool);
        assert_eq!(
            names(dir.path()),
            [
                "0000000000000000.chunk",
                "dead-letters.ndjson",
                "lock",
                "quarantine"
            ]
        );
        // Reported once: the next start finds nothing to report.
        let (_, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (1, 0));
    }

    /// After a drain the folder is empty; numbering used to restart at 0 and the next
    /// damaged chunk 0 replaced the only copy of the older one in `quarantine/`.
    #[tokio::test]
    async fn quarantine_never_replaces_a_file_and_numbering_continues_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let damage = |seq: u64| {
            let path = dir.path().join(chunk_name(seq));
            let mut data = fs::read(&path).unwrap();
            let last = data.len() - 2;
            data[last] ^= 0x01;
            fs::write(&path, data).unwrap();
        };
        write_chunks(dir.path(), 2);
        damage(0);
        let first_damaged = fs::read(dir.path().join(chunk_name(0))).unwrap();
        {
            let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
            assert_eq!(rec.quarantined, 1);
            // The drain: chunk 1 delivered, the folder empty again.
            for (seq, _) in take_all(&spool).await {
                spool.remove(Chunk { seq, size: 0 });
            }
        }
        assert_eq!(chunks_in(dir.path()), 0);
        {
            let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
            spool.append(batch(Table::Syslog, &["{\"n\":9}"]));
        }
        let new: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| n.ends_with(".chunk"))
            .collect();
        assert_eq!(
            new,
            [chunk_name(1)],
            "numbering continues past quarantine (0), not from 0"
        );
        // Even a chunk that does take a quarantined name does not replace it.
        fs::rename(
            dir.path().join(chunk_name(1)),
            dir.path().join(chunk_name(0)),
        )
        .unwrap();
        fs::write(dir.path().join(chunk_name(0)), b"{broken").unwrap();
        let (_, rec) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        assert_eq!(rec.quarantined, 1);
        let q = dir.path().join("quarantine");
        assert_eq!(fs::read(q.join(chunk_name(0))).unwrap(), first_damaged);
        assert_eq!(
            fs::read(q.join(format!("{}.1", chunk_name(0)))).unwrap(),
            b"{broken"
        );
    }

    #[tokio::test]
    async fn a_file_already_under_the_next_name_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        // Something put a file where chunk 0 is about to go, after the spool was opened.
        fs::write(dir.path().join(chunk_name(0)), b"someone else's").unwrap();
        spool.append(batch(Table::Syslog, &["{\"n\":1}"]));
        assert_eq!(
            fs::read(dir.path().join(chunk_name(0))).unwrap(),
            b"someone else's"
        );
        let got = take_all(&spool).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].0, got[0].1.body.as_slice()),
            (1, &b"{\"n\":1}\n"[..])
        );
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

    /// Runs `f` in a thread whose file accesses are checked as user `nobody` even when the
    /// tests run as root (the filesystem uid is per thread on Linux), so that a mode-000
    /// file cannot be read.
    fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: changes this thread's filesystem uid only; restored below.
                let before = unsafe { libc::setfsuid(65534) };
                let out = f();
                unsafe { libc::setfsuid(before as libc::uid_t) };
                out
            })
            .join()
            .unwrap()
        })
    }

    /// A chunk that cannot be read (permissions) used to be quarantined for good; it may be
    /// intact, so it stays where it is, counted, and is delivered once readable.
    #[tokio::test]
    async fn an_unreadable_chunk_stays_in_place_and_is_delivered_once_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 2);
        fs::remove_file(dir.path().join("lock")).unwrap();
        let open_perms = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode));
        for p in [dir.path().to_path_buf(), dir.path().join("quarantine")] {
            open_perms(&p, 0o777).unwrap();
        }
        let victim = dir.path().join(chunk_name(0));
        open_perms(&victim, 0o000).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (rec, queued) = as_nobody(|| {
            let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            (rec, spool.queued())
        });
        assert_eq!(
            (rec.chunks, rec.unreadable, rec.quarantined, queued),
            (1, 1, 0, 1)
        );
        assert_eq!(Metrics::get(&metrics.chunks_unreadable), 1);
        assert!(victim.exists(), "left in place");
        open_perms(&victim, 0o644).unwrap();
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics).unwrap();
        assert_eq!((rec.chunks, rec.unreadable), (2, 0));
        let seqs: Vec<u64> = take_all(&spool).await.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [0, 1]);
    }
}
