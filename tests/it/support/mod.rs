//! A harness for end-to-end tests: the real `cefgate run` binary on loopback ports chosen by
//! the kernel, writing rows to a file. Every wait is a condition polled up to a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Cefgate {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub output: PathBuf,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// `[metrics] address`, when configured.
    pub metrics: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// Collects the child's stderr lines as they come.
fn capture_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = stderr.clone();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    stderr
}

/// The lines of a file still being written, without a last line that is not finished.
fn whole_lines(text: &str) -> std::str::Lines<'_> {
    text[..text.rfind('\n').map_or(0, |i| i + 1)].lines()
}

/// Polls `check` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Cefgate {
    /// Starts cefgate with `listeners` (TOML `[[listener]]` tables) plus a file output and
    /// short batch ages, and waits until it is ready.
    pub fn start(listeners: &str) -> Self {
        Self::start_with(listeners, "")
    }

    pub fn start_with(listeners: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("rows.ndjson");
        let config = format!(
            "{listeners}\n[output]\ntype = \"file\"\npath = \"{}\"\n\n[batch]\nmax_age_ms = 20\n\n[record]\ncollector_host = \"cefgate-test\"\n{extra}",
            output.display()
        );
        Self::start_raw(dir, output, &config, &[])
    }

    /// Starts cefgate with a whole configuration (`output` is where a file output writes, if
    /// any) and extra environment variables.
    pub fn start_raw(
        dir: tempfile::TempDir,
        output: PathBuf,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_in(dir, output, config, env, None)
    }

    /// As [`Cefgate::start_raw`], started in the folder `cwd`.
    pub fn start_in(
        dir: tempfile::TempDir,
        output: PathBuf,
        config: &str,
        env: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
    ) -> Self {
        Self::start_with_command(dir, output, config, env, |command| {
            if let Some(cwd) = cwd {
                command.current_dir(cwd);
            }
        })
    }

    /// As [`Cefgate::start_raw`], with at most `files` open files (soft and hard limit).
    pub fn start_with_file_limit(
        dir: tempfile::TempDir,
        output: PathBuf,
        config: &str,
        files: u64,
    ) -> Self {
        use std::os::unix::process::CommandExt;
        Self::start_with_command(dir, output, config, &[], move |command| {
            // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: files,
                        rlim_max: files,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    fn start_with_command(
        dir: tempfile::TempDir,
        output: PathBuf,
        config: &str,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Self {
        let config_path = dir.path().join("cefgate.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cefgate"));
        adjust(&mut command);
        let mut child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cefgate starts");
        let stderr = capture_stderr(&mut child);
        let mut me = Self {
            child: Some(child),
            dir,
            output,
            udp: None,
            tcp: None,
            tls: None,
            metrics: None,
            stderr,
        };
        wait_for("cefgate to be ready", DEADLINE, || {
            let lines = me.stderr.lock().unwrap();
            if lines
                .iter()
                .any(|l| l.contains("invalid configuration") || l.contains("cefgate:"))
            {
                panic!("cefgate failed to start:\n{}", lines.join("\n"));
            }
            lines.iter().any(|l| l.ends_with(" ready")).then_some(())
        });
        for line in me.stderr.lock().unwrap().iter() {
            if let Some(rest) = line.split("/ready on http://").nth(1) {
                me.metrics = Some(rest.trim().parse().unwrap());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let (protocol, address) = rest.split_once(' ').unwrap();
                let address: SocketAddr = address.trim().parse().unwrap();
                match protocol {
                    "udp" => me.udp = Some(address),
                    "tcp" => me.tcp = Some(address),
                    "tls" => me.tls = Some(address),
                    other => panic!("unknown protocol {other}"),
                }
            }
        }
        me
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Rows written so far.
    pub fn rows(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        whole_lines(&text)
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad row {l:?}: {e}")))
            .collect()
    }

    /// Waits until at least `n` rows were written, and returns them.
    pub fn wait_rows(&self, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} rows"), DEADLINE, || {
            let rows = self.rows();
            (rows.len() >= n).then_some(rows)
        })
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits up to `within` for the exit, whatever its status; returns
    /// the status and the final counters.
    pub fn stop_within(&mut self, within: Duration) -> (std::process::ExitStatus, Counters) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let status = wait_for("cefgate to exit", within, || child.try_wait().unwrap());
        let counters = wait_for("the final counters", Duration::from_secs(5), || {
            let text = self.stderr();
            text.contains("cefgate_problems{kind=\"message-truncated\"}")
                .then_some(text)
        });
        (status, Counters(counters))
    }

    /// Sends SIGTERM and waits for a clean exit; returns the final counters.
    pub fn stop(&mut self) -> Counters {
        let (status, counters) = self.stop_within(DEADLINE);
        assert!(
            status.success(),
            "cefgate exited with {status}:\n{}",
            counters.0
        );
        counters
    }
}

impl Drop for Cefgate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The `cefgate_name value` report printed at exit.
pub struct Counters(pub String);

impl Counters {
    pub fn get(&self, name: &str) -> u64 {
        let prefix = format!("cefgate_{name} ");
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no counter {name} in:\n{}", self.0))
            .trim()
            .parse()
            .unwrap()
    }
}

pub const UDP_AND_TCP: &str = r#"
[[listener]]
protocol = "udp"
address = "127.0.0.1:0"

[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"
"#;

/// `cefgate emulate` on a kernel-chosen loopback port, storing rows in a temporary folder.
pub struct Emulator {
    child: Option<Child>,
    pub data: tempfile::TempDir,
    pub url: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Emulator {
    pub fn start(args: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", args)
    }

    /// On a given address (to restart "the same endpoint" after an outage).
    pub fn start_at(address: &str, args: &[&str]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cefgate"))
            .args(["emulate", "--address", address, "--data"])
            .arg(data.path())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cefgate emulate starts");
        let stderr = capture_stderr(&mut child);
        let url = wait_for("the emulator to listen", DEADLINE, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cefgate emulate exited ({status}):\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            stderr.lock().unwrap().iter().find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .map(|u| u.trim().to_string())
            })
        });
        Self {
            child: Some(child),
            data,
            url,
            stderr,
        }
    }

    /// Rows stored for a stream (`Custom-...`) or log type table (`..._CL`).
    pub fn rows(&self, table: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.data.path().join(format!("{table}.ndjson")))
            .unwrap_or_default();
        whole_lines(&text)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn wait_rows(&self, table: &str, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} rows in {table}"), DEADLINE, || {
            let rows = self.rows(table);
            (rows.len() >= n).then_some(rows)
        })
    }

    /// The emulator's counts (requests per API and status, rows per table, tokens issued).
    pub fn counts(&self) -> Value {
        let port = self.url.rsplit(':').next().unwrap();
        let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        use std::io::{Read, Write};
        write!(s, "GET /counts HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
/// A TCP connection to `to` from the loopback address `from` (127.0.0.2 is another host as
/// far as cefgate can tell).
pub fn connect_from(from: &str, to: SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// `GET path` over HTTP/1.0: the status and the body.
pub fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the HTTP endpoint answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
