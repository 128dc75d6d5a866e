//! The one rename the spool does: never over an existing file. A chunk's final rename and
//! every move into `quarantine/` go through it, which is what keeps one chunk (or a file
//! someone else put in the folder) from ever being replaced by another.

use std::fs;
use std::io;
use std::path::Path;

/// Renames `from` to `to` unless `to` exists (`EEXIST` then): a chunk or a quarantined file
/// is never replaced, whatever else put a file there.
pub(super) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
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
