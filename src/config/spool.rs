//! `[spool]`: the raw schema, its default and its checks. (Here rather than in `src/spool/`,
//! which is being split separately: it moves there next.)

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::settings::{ConfigProblem, Locator, filesystem_size, in_range, parent_must_exist};

/// `[spool]` (a contract: keep these names).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Where batches wait for delivery (created if missing).
    pub path: Spanned<PathBuf>,
    /// The most the spool may hold; when full, TCP/TLS input waits and UDP drops (counted).
    #[serde(default = "defaults::spool_max_bytes")]
    pub max_bytes: u64,
    /// `batch` (fsync each chunk before it counts as accepted) or `never`.
    #[serde(default)]
    pub fsync: crate::spool::FsyncPolicy,
}

impl SpoolConfig {
    /// Checks the spool (its table spans `whole`): its folder, its bound.
    pub fn check(
        &self,
        whole: std::ops::Range<usize>,
        at: &Locator<'_>,
        problems: &mut Vec<ConfigProblem>,
    ) {
        let sc = self;
        let path = sc.path.get_ref();
        if path.exists() {
            if !path.is_dir() {
                problems.push(at.problem(
                    Some(sc.path.span()),
                    format!(
                        "spool path {} exists and is not a directory",
                        path.display()
                    ),
                ));
            }
        } else {
            parent_must_exist(&sc.path, at, problems);
        }
        in_range(
            at,
            problems,
            Some(whole),
            "max_bytes",
            sc.max_bytes,
            1 << 20,
            1 << 50,
        );
    }

    /// A bound larger than the filesystem (for `outputs` spools of this size) is a warning.
    pub fn warnings(
        &self,
        whole: std::ops::Range<usize>,
        outputs: usize,
        at: &Locator<'_>,
        warnings: &mut Vec<ConfigProblem>,
    ) {
        let sc = self;
        // Every output has its own spool folder with this bound, all on one filesystem.
        let spools = outputs.max(1) as u64;
        let want = sc.max_bytes.saturating_mul(spools);
        if let Some((size, on)) = filesystem_size(sc.path.get_ref())
            && want > size
        {
            warnings.push(at.problem(
                Some(whole),
                format!(
                    "warning: [spool] max_bytes ({want} bytes{}) is more than the whole filesystem holding {} ({size} bytes, at {}): \
                     the disk fills before the spool does, and input then stalls on write errors; \
                     set max_bytes below the free space",
                    if spools > 1 {
                        format!(" for {spools} outputs")
                    } else {
                        String::new()
                    },
                    sc.path.get_ref().display(),
                    on.display()
                ),
            ));
        }
    }
}

mod defaults {
    pub fn spool_max_bytes() -> u64 {
        10 * 1024 * 1024 * 1024
    }
}
