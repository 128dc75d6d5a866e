//! `quarantine/`: where a chunk goes that is not a whole chunk cefgate wrote (a torn write, a
//! flipped bit, a stray file with a chunk's name), so that it never blocks the others and is
//! kept for a look. A move there never replaces a file, and the numbers found there stay
//! taken, so that a name in `quarantine/` always means one chunk.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Spool;
use super::rename::rename_noreplace;
use crate::metrics::Metrics;

/// Numbers in `quarantine/` at or above this are ignored when numbering continues: they are
/// strays (a `ffffffffffffffff.chunk` moved there), not chunks this spool wrote, and 2^48
/// chunks are centuries of writing.
const QUARANTINE_SEQ_LIMIT: u64 = 1 << 48;

/// The number a quarantined file had in the spool (`<16 hex>.chunk`, `.tmp`, with or
/// without the `.N` a repeated name gets).
pub(super) fn quarantined_seq(name: &str) -> Option<u64> {
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
pub(super) fn move_to_quarantine(quarantine: &Path, path: &Path) -> io::Result<PathBuf> {
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

/// The highest number in `quarantine/` that this spool could have written (strays at or
/// above [`QUARANTINE_SEQ_LIMIT`] are not counted).
pub(super) fn highest_seq(quarantine: &Path) -> io::Result<Option<u64>> {
    Ok(fs::read_dir(quarantine)?
        .filter_map(Result::ok)
        .filter_map(|e| quarantined_seq(e.file_name().to_str()?))
        .filter(|s| *s < QUARANTINE_SEQ_LIMIT)
        .max())
}

impl Spool {
    /// Moves a damaged chunk to quarantine, says why and counts it.
    pub(super) fn quarantine_path(&self, path: &Path, reason: &str) {
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
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use crate::record::Table;
    use crate::spool::format::chunk_name;
    use crate::spool::test_support::*;
    use crate::spool::{Chunk, Spool, chunks_in};

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
}
