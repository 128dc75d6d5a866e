//! What every component's settings module shares with the configuration shell: the problem
//! type with its FILE:LINE:COL, the locator that finds a key's place in the file, and small
//! checks (ranges, CIDR lists, zones, secret files), and the state folder: where cefgate keeps
//! files it makes itself, which defaults settings such as the dead-letter path. Low on purpose: it imports no component
//! settings and not the configuration shell, so a component's `config` module and the shell can both
//! use it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use toml::Spanned;

use crate::auth::Secret;
use crate::decode::time::SenderZone;

pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// One problem in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Not about a place in the file (it cannot be read, or names no key).
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Finds places in the configuration text and makes problems at them.
pub struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    /// Where the value of `key = ...` starts in the table that begins at `table` (the whole
    /// file when `None`): from there to the next `[` header.
    pub fn key(&self, table: Option<Range<usize>>, key: &str) -> Option<Range<usize>> {
        let (start, whole) = match table {
            Some(t) => (t.start.min(self.text.len()), false),
            None => (0, true),
        };
        // A table's span may begin at its header or inside it: go back to its line start.
        let start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') && i > 0 && !whole {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                let eq = line.len() - rest.trim_start().len();
                let value = line[eq + 1..].len() - line[eq + 1..].trim_start().len();
                let at = offset + eq + 1 + value;
                return Some(at..at + 1);
            }
            offset += line.len();
        }
        None
    }

    /// The text of a `[name]` table: from its header to the next header.
    pub fn section(&self, name: &str) -> Option<Range<usize>> {
        let header = format!("[{name}]");
        let mut offset = 0;
        let mut start = None;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim();
            if start.is_some() && trimmed.starts_with('[') {
                return start.map(|s| s..offset);
            }
            if trimmed.starts_with(&header) {
                start = Some(offset);
            }
            offset += line.len();
        }
        start.map(|s| s..self.text.len())
    }

    pub fn problem(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigProblem {
        let at = span.map_or(0, |s| s.start.min(self.text.len()));
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigProblem {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// The CIDR ranges (or addresses) of list `key`; each entry that is neither is a problem
/// at its place.
pub fn parse_nets(
    list: &[Spanned<String>],
    key: &str,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::new();
    for net in list {
        match parse_net(net.get_ref()) {
            Some(n) => nets.push(n),
            None => problems.push(at.problem(
                Some(net.span()),
                format!(
                    "{key} entry {:?} is not a CIDR range or IP address",
                    net.get_ref()
                ),
            )),
        }
    }
    nets
}

/// The file offset of byte `offset` of a string value whose TOML text spans `span`: after
/// its opening quote (or quotes). Exact for literal strings ('...', '\'\'\'...'\'\'\'); in a basic
/// string ("...") escapes before the place shift it.
pub fn inside_string(text: &str, span: Range<usize>, offset: usize) -> Range<usize> {
    let raw = text.get(span.clone()).unwrap_or_default();
    let open = if raw.starts_with("\"\"\"") || raw.starts_with("\'\'\'") {
        let newline = raw[3..].starts_with('\n');
        3 + usize::from(newline)
    } else {
        1
    };
    let at = (span.start + open + offset).min(span.end);
    at..at
}

/// A secret or key is a regular file of at most 1 MiB: a device (`/dev/zero`) or a fifo
/// would hang the read, and anything larger is no key.
pub fn small_regular_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > 1 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "larger than 1 MiB: not a key or secret",
        ));
    }
    Ok(())
}

/// The permission bits of a secret file that others may read, or its group write, or
/// `None`. A key should be 0600, or 0640 group-owned by the service's group (the package's
/// layout), so group read alone is fine.
pub fn open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o027 != 0).then_some(mode)
}

/// Reads a secret from the environment variable or the file named in the configuration.
pub fn read_secret(
    what: &'static str,
    env: &Option<toml::Spanned<String>>,
    file: &Option<toml::Spanned<PathBuf>>,
) -> Result<Secret, String> {
    let value = match (env, file) {
        (Some(var), _) => std::env::var(var.get_ref()).map_err(|_| {
            format!(
                "the {what}: environment variable {} is not set",
                var.get_ref()
            )
        })?,
        (None, Some(path)) => small_regular_file(path.get_ref())
            .and_then(|()| std::fs::read_to_string(path.get_ref()))
            .map_err(|e| format!("the {what}: {}: {e}", path.get_ref().display()))?,
        (None, None) => {
            return Err(format!("the {what} is not configured"));
        }
    };
    Ok(Secret::new(value.trim().to_string()))
}

/// A `timezone` value, or a problem reported where it is.
pub fn zone(
    z: &Spanned<String>,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) -> SenderZone {
    z.get_ref().parse().unwrap_or_else(|e| {
        problems.push(at.problem(Some(z.span()), format!("timezone {e}")));
        SenderZone::default()
    })
}

/// Reports `key = value` outside `lo..=hi`, at the key inside `table` when it is found there.
pub fn in_range(
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
    table: Option<Range<usize>>,
    key: &str,
    value: u64,
    lo: u64,
    hi: u64,
) {
    if (lo..=hi).contains(&value) {
        return;
    }
    let span = at.key(table.clone(), key).or(table);
    problems.push(at.problem(
        span,
        format!("{key} = {value} is out of range: use {lo} to {hi}"),
    ));
}

/// A file cefgate will create needs an existing folder.
pub fn parent_must_exist(
    path: &Spanned<PathBuf>,
    at: &Locator<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    let parent = path
        .get_ref()
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent
        && !dir.is_dir()
    {
        problems.push(at.problem(
            Some(path.span()),
            format!("directory {} does not exist", dir.display()),
        ));
    }
}

/// The value of an optional string setting.
pub fn text(v: &Option<Spanned<String>>) -> Option<String> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// A route name; an empty one turns the route off.
pub fn route(v: &Option<Spanned<String>>, default: &str) -> Option<String> {
    Some(text(v).unwrap_or_else(|| default.into())).filter(|n| !n.is_empty())
}

/// `path` made absolute, or, while it does not exist yet, its nearest existing parent
/// (where it will be created), with that folder as a C string for the system calls.
pub fn nearest_existing(path: &Path) -> Option<(PathBuf, std::ffi::CString)> {
    let path = if path.is_relative() {
        std::env::current_dir().ok()?.join(path)
    } else {
        path.to_path_buf()
    };
    let on = path.ancestors().find(|p| p.exists())?.to_path_buf();
    let c = std::ffi::CString::new(on.as_os_str().as_encoded_bytes()).ok()?;
    Some((on, c))
}

/// The size in bytes of the filesystem that holds `path` (or, while it does not exist yet,
/// its nearest existing parent, which is where it will be created), and that folder.
pub fn filesystem_size(path: &Path) -> Option<(u64, PathBuf)> {
    let (on, c_path) = nearest_existing(path)?;
    // SAFETY: statvfs fills the zeroed struct it is given; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let size = (st.f_blocks as u64).saturating_mul(st.f_frsize as u64);
    // Pseudo filesystems (proc, some FUSE ones) report no size: nothing to compare.
    (size > 0).then_some((size, on))
}

/// `--state-dir`, when given: wins over the environment.
static STATE_FOLDER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the state folder for this process (`--state-dir`); the first call wins.
pub fn set_state_folder(dir: PathBuf) {
    let _ = STATE_FOLDER.set(dir);
}

/// Where cefgate keeps state it makes itself: `--state-dir`, else `$STATE_DIRECTORY` (set by systemd's
/// `StateDirectory=`), else `$XDG_STATE_HOME/cefgate`, else `~/.local/state/cefgate`, else
/// `/var/lib/cefgate`.
pub fn state_folder() -> PathBuf {
    if let Some(dir) = STATE_FOLDER.get() {
        return dir.clone();
    }
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("STATE_DIRECTORY") {
        // systemd may list several, separated by colons: the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(first);
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return dir.join("cefgate");
    }
    match var("HOME") {
        Some(home) => home.join(".local/state/cefgate"),
        None => PathBuf::from("/var/lib/cefgate"),
    }
}
