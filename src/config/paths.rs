//! Checks over every path setting at once (empty, NUL, pseudo-filesystems, the
//! configuration file itself).

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Config;
use crate::settings::{ConfigProblem, Locator, nearest_existing};

impl Config {
    /// Every path setting: none may be empty or hold a NUL byte (the system calls `run`
    /// makes would refuse them); what cefgate writes (the spool, file outputs, dead letters)
    /// may not be on a kernel pseudo-filesystem such as /proc, nor be the configuration file
    /// itself.
    pub(super) fn check_paths(&self, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) {
        let mut read: Vec<&Spanned<PathBuf>> = Vec::new();
        let mut written: Vec<&Spanned<PathBuf>> = Vec::new();
        for l in &self.listener {
            read.extend(l.get_ref().read_paths());
        }
        for o in &self.output {
            read.extend(o.get_ref().read_paths());
            written.extend(o.get_ref().written_paths());
        }
        if let Some(spool) = &self.spool {
            written.push(&spool.get_ref().path);
        }
        for path in read.iter().chain(&written) {
            let p = path.get_ref();
            if p.as_os_str().is_empty() {
                problems.push(at.problem(Some(path.span()), "the path is empty"));
            } else if p.as_os_str().as_encoded_bytes().contains(&0) {
                problems.push(at.problem(
                    Some(path.span()),
                    format!("the path {:?} holds a NUL byte", p.display()),
                ));
            }
        }
        let config_file = std::fs::canonicalize(at.file).ok();
        for path in written {
            let p = path.get_ref();
            if p.as_os_str().is_empty() || p.as_os_str().as_encoded_bytes().contains(&0) {
                continue;
            }
            if let Some(kind) = pseudo_filesystem(p) {
                problems.push(at.problem(
                    Some(path.span()),
                    format!(
                        "{} is on the kernel's {kind} filesystem, where files cannot be written: choose a folder on a disk (such as /var/lib/cefgate)",
                        p.display()
                    ),
                ));
            } else if config_file.is_some() && canonical_target(p) == config_file {
                problems.push(at.problem(
                    Some(path.span()),
                    format!(
                        "{} is this configuration file: cefgate would write rows into it",
                        p.display()
                    ),
                ));
            }
        }
    }
}

/// `path` with its folder resolved (the file itself may not exist yet).
fn canonical_target(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
    Some(dir.join(name))
}

/// The name of the kernel pseudo-filesystem (proc, sysfs, ...) `path` or its nearest
/// existing ancestor is on, if any.
fn pseudo_filesystem(path: &Path) -> Option<&'static str> {
    let (_, c) = nearest_existing(path)?;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `stat` a buffer of the right type.
    if unsafe { libc::statfs(c.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = stat.f_type as i64;
    Some(match kind {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x27e0eb | 0x6367_7270 => "cgroup",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x1cd1 => "devpts",
        _ => return None,
    })
}
