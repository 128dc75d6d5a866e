//! The folder lock: one process at a time owns a spool folder. Two writers on one folder
//! would number their chunks alike and replace each other's, and `cefgate spool drain` while
//! a service runs would deliver chunks twice; the `flock` on `lock`, held for as long as the
//! spool is open, refuses the second one with the first one's pid.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::SpoolError;

/// Takes the folder's lock for the life of the returned file, and writes our pid in it (for
/// the message a second instance gets).
pub(super) fn lock_folder(folder: &Path) -> Result<fs::File, SpoolError> {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::spool::test_support::*;
    use crate::spool::{Spool, SpoolError};

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
}
