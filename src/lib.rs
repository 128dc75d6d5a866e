//! cefgate receives syslog and CEF from firewalls, proxies and IDS appliances and turns every
//! message into a Microsoft Sentinel row: `CommonSecurityLog` for CEF, `Syslog` for the rest.
//!
//! # How a message flows
//!
//! Data moves one way through these stages; each is a module (or will be), and each hands
//! the next one owned or borrowed data, never a callback:
//!
//! ```text
//! listen -> frame -> decode (formats) -> record -> filter -> batch -> buffer (memory | spool) -> sink
//! ```
//!
//! | stage | module | what it does |
//! |---|---|---|
//! | listen | [`listen`] | UDP, TCP and TLS sockets, limits, allowlist, PROXY headers ([`listen::proxy`]), peer address -> [`listen::FrameBatch`] |
//! | frame | [`frame`] | octet-counting and newline framing of TCP/TLS streams |
//! | decode | [`decode`] | the format seam: each format ([`decode::cef`], [`decode::cisco`]) recognises its messages, parses them and builds their row; [`decode::FORMATS`] is the order they are tried in; the rest become [`decode::syslog`] rows |
//! | record | [`record`] | raw bytes -> the format's row, plus what every row gets (UTF-8 and truncation problems, event ID, diagnostics), counted |
//! | filter | [`filter`] | per output: which rows it takes (a KQL `where`) and which columns it drops (`project_away`) |
//! | (thread) | [`worker`] | the decode stage: frame batches -> decode -> record -> batch, one thread per core |
//! | batch | [`batch`] | rows routed per table, flushed by rows, bytes and age |
//! | buffer | [`buffer`] | the one hand-over to the output: in memory, or in the [`spool`] (checksummed chunks on disk until the API confirms them); leases acknowledged or kept |
//! | sink | [`sink`] | stdout, files, the Logs Ingestion and Data Collector APIs, all run by one driver (retries, splitting, dead letters, shutdown) |
//!
//! Below the stages: [`row`] holds what formats produce and later stages read (the row, its
//! typed values, problems, the generated column names, the JSON writer), and [`time`] reads
//! and writes timestamps.
//!
//! [`budget`] is the memory budget every stage from the socket read to the buffer charges
//! (back-pressure, and the bound on what a crash can lose). [`run`] wires the stages into the
//! `cefgate run` service (threads, queues, shutdown), and [`config`] sits above them all: it
//! checks the TOML file once into the typed settings each stage owns
//! ([`listen::ListenerSettings`], [`sink::OutputSettings`], ...). Counted in [`metrics`], and
//! shown to operators by [`monitor`] (`/metrics`, `/health`, `/ready`, the summary line). Off the stream path:
//! [`convert`] runs decode and record over captured lines offline (`cefgate convert`),
//! [`replay`] sends captures to a syslog target (`cefgate replay`), `emulate` is a local
//! Azure workspace (`cefgate emulate`, the default-on cargo feature `emulator`), [`dcr`] writes the data collection rule
//! (`cefgate dcr-template`), [`dlq`] lists and resends dead letters (`cefgate dlq`), [`auth`]
//! gets bearer tokens, [`errors`] writes an error with its causes for people, [`log_throttle`] rate-limits log lines that repeat, and `main.rs` with `cmd/` (a file per command) is the command line.
//!
//! The formal grammars the decoders implement live in `grammars/` at the top of the
//! repository; the tests in `tests/` replay the captures in `fixtures/`.

pub mod auth;
pub mod batch;
pub mod budget;
pub mod buffer;
pub mod config;
pub mod convert;
pub mod dcr;
pub mod decode;
pub mod dlq;
#[cfg(feature = "emulator")]
pub mod emulate;
pub mod errors;
pub mod filter;
pub mod frame;
pub mod listen;
pub mod log_throttle;
pub mod metrics;
pub mod monitor;
pub mod record;
pub mod replay;
pub mod row;
pub mod run;
pub mod settings;
pub mod sink;
pub mod spool;
pub mod time;
pub mod worker;

#[cfg(test)]
pub(crate) mod tests_support {
    /// Polls `done` every 5 ms for up to 10 s; panics when it never holds.
    pub fn wait_until(mut done: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < until,
                "condition not met within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
