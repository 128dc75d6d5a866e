//! cefgate receives syslog and CEF from firewalls, proxies and IDS appliances and turns every
//! message into a Microsoft Sentinel row: `CommonSecurityLog` for CEF, `Syslog` for the rest.
//!
//! # How a message flows
//!
//! Data moves one way through these stages; each is a module (or will be), and each hands
//! the next one owned or borrowed data, never a callback:
//!
//! ```text
//! listen -> frame -> decode -> record -> batch -> spool -> sink
//! ```
//!
//! | stage | module | what it does |
//! |---|---|---|
//! | listen | [`listen`] | UDP, TCP and TLS sockets, limits, allowlist, peer address -> [`listen::FrameBatch`] |
//! | frame | [`frame`] | octet-counting and newline framing of TCP/TLS streams |
//! | decode | [`decode`] | syslog header ([`decode::syslog`], via `syslog_loose`), CEF record ([`decode::cef`], nom), timestamps ([`decode::time`]) |
//! | record | [`record`] | one decoded message -> one typed row; CEF keys mapped by the dictionary in `grammars/cef-fields.tsv`; problems recorded on the row |
//! | batch | [`batch`] | rows routed per table, flushed by rows, bytes and age |
//! | spool | [`spool`] | batches on disk (checksummed chunks) until the API confirms them |
//! | sink | [`sink`] | stdout, files, the Logs Ingestion and Data Collector APIs (retries, splitting, dead letters) |
//!
//! [`run`] wires the stages into the `cefgate run` service (threads, queues, back-pressure,
//! shutdown), configured by [`config`] and counted in [`metrics`]. Off the stream path:
//! [`convert`] runs decode and record over captured lines offline (`cefgate convert`),
//! [`replay`] sends captures to a syslog target (`cefgate replay`), [`emulate`] is a local
//! Azure workspace (`cefgate emulate`), [`dcr`] writes the data collection rule
//! (`cefgate dcr-template`), [`dlq`] lists and resends dead letters (`cefgate dlq`), [`auth`]
//! gets bearer tokens, and `main.rs` is the command line.
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
pub mod emulate;
pub mod frame;
pub mod listen;
pub mod metrics;
pub mod record;
pub mod replay;
pub mod run;
pub mod sink;
pub mod spool;

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
