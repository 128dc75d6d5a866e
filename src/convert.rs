//! `cefgate convert`: captured lines in, the JSON rows that would be posted out, one per
//! input line and in input order.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};

use crate::decode::TimeContext;
use crate::decode::time::SenderZone;
use crate::record::{ProblemCounts, Reception, RowBuilder, Table};

/// What `convert` needs besides its input.
#[derive(Debug, Clone)]
pub struct ConvertSettings {
    /// Pinned receive time; `None` means the clock when the line was read (read once per
    /// block of lines).
    pub received_at: Option<DateTime<Utc>>,
    /// Zone for timestamps that carry none.
    pub zone: SenderZone,
    /// `--sender`: the address every line is taken to come from.
    pub sender: Option<String>,
    /// `--where`: only rows it keeps are written (the others are counted).
    pub filter: Option<crate::filter::Predicate>,
    /// `--project-away`: columns left out.
    pub project_away: crate::filter::ProjectAway,
    /// `--format`: the format every line is taken to be in (tried first).
    pub format: Option<crate::row::ForcedFormat>,
}

/// What one conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertSummary {
    pub lines: u64,
    pub bytes: u64,
    pub cef_rows: u64,
    pub syslog_rows: u64,
    pub problems: ProblemCounts,
    /// Rows `--where` left out (not written).
    pub dropped: u64,
}

/// Converts every line of `input` (LF or CRLF; a final line without LF counts) and writes one
/// JSON row per line to `output`, in input order. `progress` is called with the bytes read
/// so far.
///
/// The input is cut into blocks of whole lines; one thread per core converts blocks, and
/// this thread reads the input and writes the rows block by block in input order (a
/// block's rows wait until those before it are out). At most a few blocks per thread are in
/// memory at once.
pub fn convert_stream<R: BufRead, W: Write>(
    builder: &RowBuilder,
    settings: &ConvertSettings,
    mut input: R,
    output: &mut W,
    summary: &mut ConvertSummary,
    mut progress: impl FnMut(u64),
) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let (work_tx, work_rx) = flume::unbounded::<(u64, Vec<u8>, DateTime<Utc>)>();
    let (done_tx, done_rx) = flume::unbounded::<(u64, Vec<u8>, ConvertSummary)>();
    std::thread::scope(|scope| -> io::Result<()> {
        for _ in 0..threads {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                for (seq, block, received_at) in work_rx.iter() {
                    // Rows are about twice their line (CommonSecurityLog); room for more, so that a
                    // block's output is not copied to a larger buffer near its end.
                    let mut out = Vec::with_capacity(block.len() * 3 + 1024);
                    let mut part = ConvertSummary::default();
                    let rx = Reception {
                        time: TimeContext::new(received_at, settings.zone),
                        peer: settings.sender.as_deref(),
                        truncated: false,
                        format: settings.format,
                    };
                    // A NUL ends a frame as it does on a TCP stream (see `frames_of`);
                    // blocks without one, nearly all, take the direct path.
                    let has_nul = memchr::memchr(0, &block).is_some();
                    for line in lines_with_ends(&block) {
                        if has_nul && memchr::memchr(0, line).is_some() {
                            for frame in frames_of(line) {
                                convert_line(builder, settings, &rx, frame, &mut out, &mut part);
                            }
                        } else {
                            convert_line(builder, settings, &rx, line, &mut out, &mut part);
                        }
                    }
                    if done_tx.send((seq, out, part)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((work_rx, done_tx));
        let mut order = InOrder::default();
        let limit = threads as u64 * 3;
        let (mut sent, mut carry, mut read) = (0u64, Vec::new(), 0u64);
        let result = (|| -> io::Result<()> {
            loop {
                // Bounded memory: wait for the oldest blocks before reading more.
                while sent - order.next >= limit {
                    let done = done_rx.recv().expect("a converting thread");
                    order.put(done, output, summary)?;
                }
                let mut block: Vec<u8> = std::mem::take(&mut carry);
                // The carried bytes hold no LF: only what is read now is searched for one
                // (a line many blocks long is then read in linear time).
                let fresh = block.len();
                block.reserve(BLOCK);
                let eof = loop {
                    let buf = input.fill_buf()?;
                    if buf.is_empty() {
                        break true;
                    }
                    let n = buf
                        .len()
                        .min(BLOCK.saturating_sub(block.len()).max(1 << 16));
                    block.extend_from_slice(&buf[..n]);
                    input.consume(n);
                    read += n as u64;
                    if block.len() >= BLOCK {
                        break false;
                    }
                };
                if !eof {
                    match memchr::memrchr(b'\n', &block[fresh..]) {
                        Some(last) => carry = block.split_off(fresh + last + 1),
                        None => {
                            // One line longer than a block: keep reading it.
                            carry = block;
                            continue;
                        }
                    }
                }
                if !block.is_empty() {
                    // The lines of a block were read together: one clock read for all of them.
                    let received_at = settings.received_at.unwrap_or_else(Utc::now);
                    work_tx
                        .send((sent, block, received_at))
                        .expect("converting threads");
                    sent += 1;
                }
                while let Ok(done) = done_rx.try_recv() {
                    order.put(done, output, summary)?;
                }
                progress(read);
                if eof {
                    return Ok(());
                }
            }
        })();
        drop(work_tx);
        result?;
        while order.next < sent {
            let done = done_rx.recv().expect("a converting thread");
            order.put(done, output, summary)?;
        }
        summary.bytes += read;
        output.flush()
    })
}

/// Puts converted blocks back in input order.
#[derive(Default)]
struct InOrder {
    /// The next block to write.
    next: u64,
    waiting: std::collections::BTreeMap<u64, (Vec<u8>, ConvertSummary)>,
}

impl InOrder {
    fn put<W: Write>(
        &mut self,
        (seq, out, part): (u64, Vec<u8>, ConvertSummary),
        output: &mut W,
        summary: &mut ConvertSummary,
    ) -> io::Result<()> {
        self.waiting.insert(seq, (out, part));
        while let Some((out, part)) = self.waiting.remove(&self.next) {
            output.write_all(&out)?;
            summary.add(&part);
            self.next += 1;
        }
        Ok(())
    }
}

/// The lines of `block`, each with its LF (the last one without, when the block ends
/// without one); memchr finds the LFs a word at a time.
fn lines_with_ends(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', block)
        .map(|lf| lf + 1)
        .chain(std::iter::once(block.len()))
        .filter_map(move |end| {
            let line = block.get(start..end).filter(|l| !l.is_empty())?;
            start = end;
            Some(line)
        })
}

/// The frames of one line that holds a NUL, cut as TCP's newline framing cuts them: a NUL
/// ends a frame like a line feed, and the NULs, CRs and LFs between frames are padding, not
/// empty messages. So `convert` gives the rows a stream of the same bytes gives.
fn frames_of(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == 0)
        .map(crate::frame::trim_trailer)
        .map(|f| {
            let start = f
                .iter()
                .position(|b| !matches!(b, b'\n' | b'\r'))
                .unwrap_or(f.len());
            &f[start..]
        })
        .filter(|f| !f.is_empty())
}

/// Bytes per block handed to a converting thread.
const BLOCK: usize = 1 << 20;

/// Converts one input line (with its line end) into `out`.
fn convert_line(
    builder: &RowBuilder,
    settings: &ConvertSettings,
    rx: &Reception<'_>,
    line: &[u8],
    out: &mut Vec<u8>,
    summary: &mut ConvertSummary,
) {
    summary.lines += 1;
    // Line ends, and the NULs some senders add, are no part of the message.
    let message = crate::frame::trim_trailer(line);
    let (table, kept) = if settings.filter.is_none() && settings.project_away.is_empty() {
        let table = builder.convert(message, rx, &mut summary.problems, |table, write| {
            write(out);
            table
        });
        (table, true)
    } else {
        builder.convert_row(message, rx, &mut summary.problems, |row| {
            let kept = settings.filter.as_ref().is_none_or(|f| f.keeps(row));
            if kept {
                let away = &settings.project_away;
                crate::record::write_json_where(row, |c| !away.removes(c), out);
            }
            (row.table, kept)
        })
    };
    if kept {
        out.push(b'\n');
    } else {
        summary.dropped += 1;
    }
    match table {
        Table::CommonSecurityLog => summary.cef_rows += 1,
        Table::Syslog => summary.syslog_rows += 1,
    }
}

impl ConvertSummary {
    /// Adds another part's counts to these.
    fn add(&mut self, other: &ConvertSummary) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.cef_rows += other.cef_rows;
        self.syslog_rows += other.syslog_rows;
        self.dropped += other.dropped;
        self.problems.add(&other.problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordSettings;

    fn run(input: &[u8]) -> (Vec<u8>, ConvertSummary) {
        let builder = RowBuilder::new(RecordSettings {
            collector_host: "c".into(),
            ..RecordSettings::default()
        });
        let settings = ConvertSettings {
            received_at: Some(Utc::now()),
            zone: SenderZone::default(),
            sender: None,
            filter: None,
            project_away: Default::default(),
            format: None,
        };
        let mut out = Vec::new();
        let mut summary = ConvertSummary::default();
        convert_stream(&builder, &settings, input, &mut out, &mut summary, |_| {}).unwrap();
        (out, summary)
    }

    #[test]
    fn rows_come_out_in_input_order_across_blocks_and_threads() {
        let mut input = Vec::new();
        for i in 0..60_000 {
            // Lines of varied length, so that blocks end at every kind of place.
            let pad = "x".repeat(i % 97);
            input.extend_from_slice(format!("<13>host app: line-{i} {pad}\n").as_bytes());
        }
        assert!(input.len() > 3 * BLOCK);
        let (out, summary) = run(&input);
        assert_eq!(summary.lines, 60_000);
        assert_eq!(summary.bytes, input.len() as u64);
        for (i, row) in out
            .split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .enumerate()
        {
            let text = std::str::from_utf8(row).unwrap();
            assert!(text.contains(&format!("\"line-{i} ")), "row {i}: {text}");
        }
    }

    #[test]
    fn a_nul_ends_a_frame_as_on_a_tcp_stream() {
        let input =
            b"<13>h a: one\0<13>h a: two\n<13>h a: three\0\0\r\n\0<13>h a: four\n<13>h a: five\n";
        let (out, summary) = run(input);
        let messages: Vec<String> = out
            .split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .map(|r| {
                let row: serde_json::Value = serde_json::from_slice(r).unwrap();
                row["SyslogMessage"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(messages, ["one", "two", "three", "four", "five"]);
        assert_eq!(summary.lines, 5);
        // The same bytes through TCP's framing.
        let mut framed = Vec::new();
        let mut decoder = crate::frame::FrameDecoder::new(
            crate::frame::Framing::Newline,
            65536,
            crate::frame::Oversize::Truncate,
        );
        decoder.decode(input, true, |m, _| {
            framed.push(String::from_utf8_lossy(m).into_owned())
        });
        let framed: Vec<&str> = framed
            .iter()
            .map(|m| m.rsplit(": ").next().unwrap())
            .collect();
        assert_eq!(framed, messages);
    }

    #[test]
    fn a_line_longer_than_a_block_and_a_last_line_without_lf() {
        let long = "y".repeat(BLOCK * 2 + 10);
        let input = format!("<13>h a: first\n<13>h a: {long}\n\n<13>h a: last");
        let (out, summary) = run(input.as_bytes());
        assert_eq!(
            summary.lines, 4,
            "an empty line is a line, a last line without LF too"
        );
        let rows: Vec<&[u8]> = out
            .split(|b| *b == b'\n')
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(rows.len(), 4);
        assert!(std::str::from_utf8(rows[1]).unwrap().contains(&long));
        assert!(std::str::from_utf8(rows[3]).unwrap().contains("\"last\""));
    }
}

/// Every capture `fixtures/<format>/*.log` of the native formats converts to exactly its
/// golden rows `*.ndjson`. To see a difference after a deliberate change:
/// `cefgate convert --received-at 2026-11-26T10:00:00Z --collector-host cefgate-test
/// fixtures/<format>/X.log > fixtures/<format>/X.ndjson`, then review the `git diff`.
#[cfg(test)]
mod format_goldens {
    use std::path::{Path, PathBuf};

    use super::{ConvertSettings, convert_stream};
    use crate::record::{RecordSettings, RowBuilder};

    /// Panics, naming the file and line, at the first row that differs from its golden.
    fn assert_fixtures_match_goldens(format: &str) {
        let builder = RowBuilder::new(RecordSettings {
            collector_host: "cefgate-test".into(),
            ..RecordSettings::default()
        });
        let convert = ConvertSettings {
            received_at: Some(crate::time::test_context().received_at),
            zone: Default::default(),
            sender: None,
            filter: None,
            project_away: Default::default(),
            format: None,
        };
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(format);
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        assert!(!logs.is_empty(), "no captures in {}", folder.display());
        for log in logs {
            let input = std::fs::read(&log).unwrap();
            let want = std::fs::read_to_string(log.with_extension("ndjson")).unwrap();
            let mut out = Vec::new();
            let mut summary = Default::default();
            convert_stream(
                &builder,
                &convert,
                &input[..],
                &mut out,
                &mut summary,
                |_| {},
            )
            .unwrap();
            let got = String::from_utf8(out).unwrap();
            assert_eq!(
                got.lines().count(),
                input.split(|b| *b == b'\n').count() - 1,
                "{}: one row per line",
                log.display()
            );
            for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
                assert_eq!(g, w, "{} line {}", log.display(), n + 1);
            }
            assert_eq!(
                got.lines().count(),
                want.lines().count(),
                "{}",
                log.display()
            );
        }
    }

    #[test]
    fn every_pan_os_fixture_matches_its_golden_rows() {
        assert_fixtures_match_goldens("pan-os");
    }

    #[test]
    fn every_fortigate_fixture_matches_its_golden_rows() {
        assert_fixtures_match_goldens("fortigate");
    }

    #[test]
    fn every_leef_fixture_matches_its_golden_rows() {
        assert_fixtures_match_goldens("leef");
    }
}
