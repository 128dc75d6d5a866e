//! The dead-letter queue: rows the service refused for good, each kept with the refusal,
//! as JSON lines appended to one file.
//!
//! # Sharing the file with `cefgate dlq replay`
//!
//! The running service appends while `cefgate dlq replay` takes the file away, so neither
//! trusts a name it opened earlier. Every append takes an exclusive `flock` on the file and,
//! holding it, checks that the path still names that file (device and inode); when it does
//! not (a replay moved it aside, or someone deleted it), the path is opened again. A replay
//! moves the file aside, then takes the same lock before it reads: a write in progress ends
//! first, and every later one lands in the new file. Every row is therefore in the file the
//! replay read or in the one the service goes on writing. A replay keeps its lock until it
//! is done, which is how the next one tells a file it is sending from one a killed replay
//! left behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::record::Table;
use crate::time::iso8601;

/// One entry of the dead-letter queue, as read back by `cefgate dlq`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub dead_lettered_at: String,
    pub table: String,
    pub route: String,
    pub error: String,
    pub row: Box<serde_json::value::RawValue>,
}

impl DeadLetter {
    pub fn table(&self) -> Option<Table> {
        Table::from_name(&self.table)
    }
}

/// Why a dead letter could not be written, or a dead-letter file not be taken. The path is
/// the caller's to add.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("cannot create its folder: {0}")]
    Folder(#[source] std::io::Error),
    #[error("cannot open it: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot lock it: {0}")]
    Lock(#[source] std::io::Error),
    #[error("another process has held its lock for {} s", LOCK_WAIT.as_secs())]
    Busy,
    #[error("cannot write it: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("cannot move it aside: {0}")]
    Move(#[source] std::io::Error),
}

/// How long an append waits for a lock another process holds (a replay writing lines back
/// holds it for one write; anything longer is a fault, reported and retried).
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// One line of a dead-letter file, judged alone: an entry, or not (invalid UTF-8, not JSON,
/// not an entry, a line cut short by a crash).
#[derive(Debug)]
pub struct Line<'a> {
    /// From 1, counting every line of the file.
    pub number: usize,
    /// The line as it is in the file, without its LF.
    pub raw: &'a [u8],
    pub entry: Option<DeadLetter>,
}

/// The lines of a dead-letter file's content, blank ones left out.
pub fn parse(bytes: &[u8]) -> Vec<Line<'_>> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .map(|(i, raw)| Line {
            number: i + 1,
            raw,
            entry: std::str::from_utf8(raw.strip_suffix(b"\r").unwrap_or(raw))
                .ok()
                .and_then(|text| serde_json::from_str(text).ok()),
        })
        .collect()
}

/// Reads a dead-letter file; lines that are not entries are reported as `Err(line number)`.
pub fn read(path: &Path) -> std::io::Result<Vec<Result<DeadLetter, usize>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(parse(&bytes)
        .into_iter()
        .map(|l| l.entry.ok_or(l.number))
        .collect())
}

/// The content of the dead-letter file at `path`, read under a shared lock (so that no write
/// is half seen); empty when there is none.
pub fn read_shared(path: &Path) -> Result<Vec<u8>, DeadLetterError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DeadLetterError::Open(e)),
    };
    file.lock_shared().map_err(DeadLetterError::Lock)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(DeadLetterError::Read)?;
    Ok(bytes)
}

/// The open file and which file it is.
struct Opened {
    file: File,
    dev: u64,
    ino: u64,
}

/// Appends refused rows to a file, created (with its folder) at the first dead letter, so
/// that an output that never refuses a row leaves no file behind. Shared by every route of
/// an output.
pub struct DeadLetterQueue {
    path: PathBuf,
    file: Mutex<Option<Opened>>,
}

impl DeadLetterQueue {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `rows` (each one JSON object) with why they were refused and where they were
    /// going. One line per row:
    /// `{"deadLetteredAt":..,"table":..,"route":..,"error":..,"row":{..}}`.
    /// Returns once the lines are on disk (synced); on an error none of them is in the file.
    pub fn store(
        &self,
        table: Table,
        route: &str,
        error: &str,
        rows: &[&[u8]],
    ) -> Result<(), DeadLetterError> {
        let mut out = Vec::with_capacity(rows.iter().map(|r| r.len() + 128).sum());
        let when = iso8601(&Utc::now());
        for row in rows {
            // Strings serialize without fail; written into a Vec, nothing can go wrong.
            out.extend_from_slice(b"{\"deadLetteredAt\":");
            out.extend_from_slice(json_string(&when).as_bytes());
            out.extend_from_slice(b",\"table\":");
            out.extend_from_slice(json_string(table.name()).as_bytes());
            out.extend_from_slice(b",\"route\":");
            out.extend_from_slice(json_string(route).as_bytes());
            out.extend_from_slice(b",\"error\":");
            out.extend_from_slice(json_string(error).as_bytes());
            out.extend_from_slice(b",\"row\":");
            out.extend_from_slice(row);
            out.extend_from_slice(b"}\n");
        }
        self.append(&out)
    }

    /// Appends `lines` as they are, each ended by an LF (a replay putting back what it did
    /// not send).
    pub fn append_lines(&self, lines: &[&[u8]]) -> Result<(), DeadLetterError> {
        let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        self.append(&out)
    }

    fn append(&self, out: &[u8]) -> Result<(), DeadLetterError> {
        if out.is_empty() {
            return Ok(());
        }
        let mut slot = self.file.lock().expect("dead-letter lock");
        let result = self.append_locked(&mut slot, out);
        if result.is_err() {
            // Open the path again next time: the fault may be fixed by replacing the file.
            *slot = None;
        }
        result
    }

    fn append_locked(&self, slot: &mut Option<Opened>, out: &[u8]) -> Result<(), DeadLetterError> {
        let file = self.lock_current(slot)?;
        let len = file.metadata().map_err(DeadLetterError::Write)?.len();
        // A line cut short (a crash mid-write, a full disk) must not swallow the next entry.
        let mut last = [0u8];
        let torn = len > 0
            && file
                .read_at(&mut last, len - 1)
                .map_err(DeadLetterError::Write)?
                == 1
            && last[0] != b'\n';
        let written = (|| {
            let mut f: &File = file;
            if torn {
                f.write_all(b"\n")?;
            }
            f.write_all(out)?;
            file.sync_data()
        })();
        if let Err(e) = written {
            // Take back what part of it was written, so that a retry does not add a torn
            // line (a device such as /dev/full has no length to go back to).
            let _ = file.set_len(len);
            return Err(DeadLetterError::Write(e));
        }
        let _ = file.unlock();
        Ok(())
    }

    /// The file the path names now, opened and locked.
    fn lock_current<'s>(&self, slot: &'s mut Option<Opened>) -> Result<&'s File, DeadLetterError> {
        let until = Instant::now() + LOCK_WAIT;
        loop {
            if slot.is_none() {
                *slot = Some(self.open()?);
            }
            let opened = slot.as_ref().expect("opened above");
            match opened.file.try_lock() {
                Ok(()) => {
                    if self.still_names(opened)? {
                        return Ok(&slot.as_ref().expect("checked above").file);
                    }
                    // Moved aside or deleted while it was open: the path is a new file now.
                    *slot = None;
                }
                Err(TryLockError::WouldBlock) => {
                    // A replay holds the file it took; this one is no longer ours to write.
                    if !self.still_names(opened)? {
                        *slot = None;
                        continue;
                    }
                    if Instant::now() > until {
                        return Err(DeadLetterError::Busy);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TryLockError::Error(e)) => return Err(DeadLetterError::Lock(e)),
            }
        }
    }

    fn open(&self) -> Result<Opened, DeadLetterError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(DeadLetterError::Folder)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(DeadLetterError::Open)?;
        let meta = file.metadata().map_err(DeadLetterError::Open)?;
        Ok(Opened {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    fn still_names(&self, opened: &Opened) -> Result<bool, DeadLetterError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.dev() == opened.dev && m.ino() == opened.ino),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(DeadLetterError::Open(e)),
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// A dead-letter file taken by `cefgate dlq replay`: moved aside, locked and read. The lock
/// is held until this is dropped, so that no other replay takes it meanwhile.
#[derive(Debug)]
pub struct Taken {
    /// Where it is now.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    _lock: File,
}

impl Taken {
    /// Deletes the file (its content was sent or written back).
    pub fn remove(self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// The name a replay by this process moves `path` to: `NAME.replaying-PID` (the extension
/// replaced), or with `-N` added when a file of that name is already there.
fn aside_name(path: &Path) -> PathBuf {
    let pid = std::process::id();
    let first = path.with_extension(format!("replaying-{pid}"));
    if !first.exists() {
        return first;
    }
    (1u64..)
        .map(|n| path.with_extension(format!("replaying-{pid}-{n}")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// Moves `path` aside for a replay, waits for a write in progress, and reads it. `None` when
/// there is no such file.
pub fn take(path: &Path) -> Result<Option<Taken>, DeadLetterError> {
    let aside = aside_name(path);
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DeadLetterError::Move(e)),
    }
    let mut file = File::open(&aside).map_err(DeadLetterError::Open)?;
    file.lock().map_err(DeadLetterError::Lock)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(DeadLetterError::Read)?;
    Ok(Some(Taken {
        path: aside,
        bytes,
        _lock: file,
    }))
}

/// A file that a replay moved aside from `path`, as [`aside`] finds it.
#[derive(Debug)]
pub struct Aside {
    pub path: PathBuf,
    /// A running replay holds it (it is sending those rows now).
    pub in_use: bool,
    pub bytes: Vec<u8>,
}

/// The files replays moved `path` aside to (`NAME.replaying-*`), oldest name first: those of
/// a replay that was killed, and those a running replay is sending. Read, not taken.
pub fn aside(path: &Path) -> Result<Vec<Aside>, DeadLetterError> {
    let mut found = Vec::new();
    for p in aside_paths(path).map_err(DeadLetterError::Read)? {
        let mut file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DeadLetterError::Open(e)),
        };
        let in_use = match file.try_lock_shared() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(e)) => return Err(DeadLetterError::Lock(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(DeadLetterError::Read)?;
        found.push(Aside {
            path: p,
            in_use,
            bytes,
        });
    }
    Ok(found)
}

/// Takes every file a killed replay left beside `path` (their lock is free: the process that
/// held it is gone). Those a running replay holds are left to it and named in the second list.
pub fn take_left_aside(path: &Path) -> Result<(Vec<Taken>, Vec<PathBuf>), DeadLetterError> {
    let mut taken = Vec::new();
    let mut in_use = Vec::new();
    for p in aside_paths(path).map_err(DeadLetterError::Read)? {
        let mut file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DeadLetterError::Open(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                in_use.push(p);
                continue;
            }
            Err(TryLockError::Error(e)) => return Err(DeadLetterError::Lock(e)),
        }
        // Another replay may have taken and deleted it between the listing and the lock.
        if !p.exists() {
            continue;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(DeadLetterError::Read)?;
        taken.push(Taken {
            path: p,
            bytes,
            _lock: file,
        });
    }
    Ok((taken, in_use))
}

fn aside_paths(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{stem}.replaying-");
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        // `PID` or `PID-N`, as [`aside_name`] makes them.
        let ours = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .is_some_and(|rest| {
                !rest.is_empty() && rest.split('-').all(|p| p.parse::<u64>().is_ok())
            });
        if ours && entry.file_type()?.is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_in(path: &Path) -> Vec<String> {
        read(path)
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap().row.get().to_string())
            .collect()
    }

    #[test]
    fn a_dead_letter_written_after_the_file_was_moved_aside_lands_in_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.ndjson");
        let queue = DeadLetterQueue::new(&path);
        queue
            .store(Table::Syslog, "r", "e", &[b"{\"n\":1}"])
            .unwrap();
        let taken = take(&path).unwrap().unwrap();
        queue
            .store(Table::Syslog, "r", "e", &[b"{\"n\":2}"])
            .unwrap();
        let before: Vec<_> = parse(&taken.bytes)
            .into_iter()
            .map(|l| l.entry.unwrap().row.get().to_string())
            .collect();
        assert_eq!(before, ["{\"n\":1}"]);
        assert_eq!(rows_in(&path), ["{\"n\":2}"]);
        // And after the file was deleted.
        std::fs::remove_file(&path).unwrap();
        queue
            .store(Table::Syslog, "r", "e", &[b"{\"n\":3}"])
            .unwrap();
        assert_eq!(rows_in(&path), ["{\"n\":3}"]);
    }

    #[test]
    fn a_replay_waits_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.ndjson");
        let queue = DeadLetterQueue::new(&path);
        queue.store(Table::Syslog, "r", "e", &[b"{}"]).unwrap();
        // A writer of another process holds the lock (flock locks belong to the open file).
        let writer = File::open(&path).unwrap();
        writer.lock().unwrap();
        let replay = std::thread::spawn({
            let path = path.clone();
            move || take(&path).unwrap().unwrap()
        });
        crate::tests_support::wait_until(|| !path.exists());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!replay.is_finished(), "the replay waits for the lock");
        writer.unlock().unwrap();
        assert_eq!(parse(&replay.join().unwrap().bytes).len(), 1);
    }

    #[test]
    fn an_entry_after_a_torn_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.ndjson");
        std::fs::write(&path, b"{\"deadLetteredAt\":\"2026-").unwrap();
        let queue = DeadLetterQueue::new(&path);
        queue.store(Table::Syslog, "r", "e", &[b"{}"]).unwrap();
        let lines = read(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].as_ref().unwrap_err(), &1);
        assert!(lines[1].is_ok());
    }

    #[test]
    fn a_dead_letter_path_that_is_a_folder_fails_and_works_once_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.ndjson");
        std::fs::create_dir(&path).unwrap();
        let queue = DeadLetterQueue::new(&path);
        let e = queue.store(Table::Syslog, "r", "e", &[b"{}"]).unwrap_err();
        assert!(matches!(e, DeadLetterError::Open(_)), "{e}");
        std::fs::remove_dir(&path).unwrap();
        queue.store(Table::Syslog, "r", "e", &[b"{}"]).unwrap();
        assert_eq!(rows_in(&path), ["{}"]);
    }

    #[test]
    fn each_line_is_judged_alone() {
        let text = b"{\"deadLetteredAt\":\"t\",\"table\":\"Syslog\",\"route\":\"r\",\"error\":\"e\",\"row\":{}}\n\
            {\"deadLetteredAt\":\"t\",\"table\":\"Syslog\",\"route\":\"\xff\",\"error\":\"e\",\"row\":{}}\n\
            \n\
            not json\n\
            {\"deadLetteredAt\":\"t\",\"table\":\"Syslog\",\"route\":\"r\",\"error\":\"e\",\"row\":{}}";
        let lines = parse(text);
        let judged: Vec<(usize, bool)> = lines
            .iter()
            .map(|l| (l.number, l.entry.is_some()))
            .collect();
        assert_eq!(judged, [(1, true), (2, false), (4, false), (5, true)]);
        assert!(lines[1].raw.starts_with(b"{") && lines[1].raw.ends_with(b"}"));
        assert!(lines[1].raw.contains(&0xff));
    }

    #[test]
    fn left_aside_files_are_taken_unless_a_replay_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.ndjson");
        let killed = dir.path().join("dlq.replaying-1");
        let running = dir.path().join("dlq.replaying-2");
        std::fs::write(&killed, b"a\n").unwrap();
        std::fs::write(&running, b"b\n").unwrap();
        std::fs::write(dir.path().join("other.replaying-3"), b"c\n").unwrap();
        std::fs::write(dir.path().join("dlq.replaying-notes"), b"d\n").unwrap();
        let held = File::open(&running).unwrap();
        held.lock().unwrap();
        let seen = aside(&path).unwrap();
        let seen: Vec<_> = seen.iter().map(|a| (a.path.clone(), a.in_use)).collect();
        assert_eq!(seen, [(killed.clone(), false), (running.clone(), true)]);
        let (taken, in_use) = take_left_aside(&path).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].path, killed);
        assert_eq!(taken[0].bytes, b"a\n");
        assert_eq!(in_use, [running]);
    }
}
