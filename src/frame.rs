//! Frame: a TCP/TLS byte stream -> syslog messages (RFC 6587 octet counting or trailers).
//!
//! The decoder never allocates for a frame and never trusts a length: an octet count larger
//! than `max_message_bytes` is truncated or skipped as it streams past, so a hostile
//! `999999999 ` costs nothing. In `auto` mode such a count also cannot swallow the frames
//! that follow it: where a line feed followed by `<` (the start of the next syslog frame)
//! appears, the stream is taken up again there (`grammars/syslog.abnf`, "resynchronisation").
//! Bytes that are no frame are passed on as a raw message (counted as a framing error)
//! instead of closing the connection.

use memchr::memchr2;

use serde::Deserialize;

/// TCP framing (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Per frame: `digits SP <`, or `digits SP` whose counted bytes hold no LF, is octet
    /// counting; anything else newline framing.
    #[default]
    Auto,
    Newline,
    OctetCounting,
}

/// What to do with a message longer than `max_message_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// Keep the first `max_message_bytes` (counted, and flagged on the row).
    #[default]
    Truncate,
    /// Drop the message (counted).
    Drop,
}

/// What the decoder had to do besides finding frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub truncated: u64,
    pub dropped: u64,
    pub framing_errors: u64,
    /// Bytes passed over without becoming part of a message: the rest of oversize frames.
    pub skipped_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// The rest of an oversize octet-counted frame.
    Bytes(usize),
    /// The same in `auto` mode, where a line feed followed by `<` ends the skip early: the
    /// count was a lie (or a line-framed sender's text) and the next frame starts there.
    Resync(usize),
    /// The rest of an oversize newline-framed message.
    ToTrailer,
}

/// Splits a stream into messages. Feed it the unconsumed bytes after each read.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    framing: Framing,
    max: usize,
    oversize: Oversize,
    skip: Skip,
    pub stats: FrameStats,
}

/// Longest octet count we read as one (9 digits: just under 1 GB); longer digit runs are
/// no count.
const MAX_COUNT_DIGITS: usize = 9;

impl FrameDecoder {
    pub fn new(framing: Framing, max_message_bytes: usize, oversize: Oversize) -> Self {
        Self {
            framing,
            max: max_message_bytes,
            oversize,
            skip: Skip::None,
            stats: FrameStats::default(),
        }
    }

    /// Takes every complete frame out of `buf`, calling `emit(message, truncated)` for each,
    /// and returns how many bytes were consumed; keep the rest for the next call. With
    /// `eof`, whatever remains is the last message.
    pub fn decode(&mut self, buf: &[u8], eof: bool, mut emit: impl FnMut(&[u8], bool)) -> usize {
        let mut pos = 0;
        loop {
            match self.skip {
                Skip::Bytes(n) => {
                    let take = n.min(buf.len() - pos);
                    pos += take;
                    self.stats.skipped_bytes += take as u64;
                    if take < n {
                        self.skip = Skip::Bytes(n - take);
                        return pos;
                    }
                    self.skip = Skip::None;
                }
                Skip::Resync(n) => {
                    let window = &buf[pos..pos + n.min(buf.len() - pos)];
                    match frame_start(window) {
                        Some(i) => {
                            // Resume at the `<`; the LF before it is a trailer.
                            pos += i;
                            self.stats.skipped_bytes += i as u64;
                            self.stats.framing_errors += 1;
                            self.skip = Skip::None;
                        }
                        None => {
                            // Keep a last LF: the `<` may come with the next read.
                            let keep = usize::from(window.last() == Some(&b'\n') && !eof);
                            let take = window.len() - keep;
                            pos += take;
                            self.stats.skipped_bytes += take as u64;
                            if take < n {
                                self.skip = Skip::Resync(n - take);
                                return pos;
                            }
                            self.skip = Skip::None;
                        }
                    }
                }
                Skip::ToTrailer => match memchr2(b'\n', b'\0', &buf[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.stats.skipped_bytes += (i + 1) as u64;
                        self.skip = Skip::None;
                    }
                    None => {
                        self.stats.skipped_bytes += (buf.len() - pos) as u64;
                        return buf.len();
                    }
                },
                Skip::None => {}
            }
            // Trailers and padding between frames.
            while pos < buf.len() && matches!(buf[pos], b'\n' | b'\r' | b'\0') {
                pos += 1;
            }
            if pos == buf.len() {
                return pos;
            }
            match self.next_frame(&buf[pos..], eof, &mut emit) {
                Some(used) => pos += used,
                None => return pos,
            }
        }
    }

    /// True while the rest of an oversize frame is being passed over.
    pub fn in_skip(&self) -> bool {
        self.skip != Skip::None
    }

    /// Ends the frame in progress now (its deadline passed): what `buf` holds of it is
    /// handed on, marked truncated (the caller counts it). A frame being skipped was handed
    /// on already.
    pub fn cut(&mut self, buf: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        if self.skip == Skip::None && !buf.is_empty() {
            emit(trim_trailer(&buf[..buf.len().min(self.max)]), true);
        }
        self.skip = Skip::None;
    }

    /// Decodes one frame at the start of `buf`; `None` means "need more bytes".
    fn next_frame(
        &mut self,
        buf: &[u8],
        eof: bool,
        emit: &mut impl FnMut(&[u8], bool),
    ) -> Option<usize> {
        if self.framing != Framing::Newline {
            match self.octet_header(buf, eof) {
                Header::Count { len, header } => {
                    return self.octet_frame(buf, len, header, eof, emit);
                }
                Header::NeedMore => return None,
                Header::Bogus => {
                    let used = self.newline_frame(buf, eof, emit)?;
                    self.stats.framing_errors += 1;
                    return Some(used);
                }
                Header::NotOctet if self.framing == Framing::OctetCounting => {
                    // Not a frame: pass the bytes up to the next trailer on as a raw
                    // message, counted once it is complete.
                    let used = self.newline_frame(buf, eof, emit)?;
                    self.stats.framing_errors += 1;
                    return Some(used);
                }
                Header::NotOctet => {}
            }
        }
        self.newline_frame(buf, eof, emit)
    }

    fn octet_header(&self, buf: &[u8], eof: bool) -> Header {
        let digits = buf
            .iter()
            .take(MAX_COUNT_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || buf[0] == b'0' || digits > MAX_COUNT_DIGITS {
            return Header::NotOctet;
        }
        // Auto mode looks at the byte after the space too (see below).
        let needed = if self.framing == Framing::Auto {
            digits + 2
        } else {
            digits + 1
        };
        if buf.len() < needed {
            return if eof {
                Header::NotOctet
            } else {
                Header::NeedMore
            };
        }
        if buf[digits] != b' ' {
            return Header::NotOctet;
        }
        let Some(len) = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            return Header::NotOctet;
        };
        let header = digits + 1;
        if self.framing == Framing::Auto && buf[header] == b'<' && len > self.max {
            // A count this program will not hold anyway: believed only if the bytes it
            // claims (as far as `max_message_bytes`) start no other frame. `999999999 <...`
            // followed by line-framed messages is a line of its own.
            let seen = &buf[header..buf.len().min(header + self.max)];
            if frame_start(seen).is_some() {
                return Header::Bogus;
            }
            if seen.len() < self.max && !eof {
                return Header::NeedMore;
            }
        }
        if self.framing == Framing::Auto && buf[header] != b'<' {
            // No PRI after the count: still a count if the counted bytes hold no line feed
            // (a newline-framed line that starts with a number has its LF inside them).
            if len > self.max {
                return Header::NotOctet;
            }
            let counted = &buf[header..buf.len().min(header + len)];
            if memchr::memchr(b'\n', counted).is_some() {
                return Header::NotOctet;
            }
            if counted.len() < len {
                return if eof {
                    Header::NotOctet
                } else {
                    Header::NeedMore
                };
            }
        }
        Header::Count { len, header }
    }

    fn octet_frame(
        &mut self,
        buf: &[u8],
        len: usize,
        header: usize,
        eof: bool,
        emit: &mut impl FnMut(&[u8], bool),
    ) -> Option<usize> {
        let body = &buf[header..];
        if len <= self.max {
            if body.len() >= len {
                emit(trim_trailer(&body[..len]), false);
                return Some(header + len);
            }
            if eof {
                // The stream ended inside the frame: pass on what arrived.
                self.stats.truncated += 1;
                emit(trim_trailer(body), true);
                return Some(buf.len());
            }
            return None;
        }
        match self.oversize {
            Oversize::Drop => {
                self.stats.dropped += 1;
                self.skip = self.skip_of(len);
                Some(header)
            }
            Oversize::Truncate => {
                if body.len() < self.max && !eof {
                    return None;
                }
                let keep = self.max.min(body.len());
                self.stats.truncated += 1;
                emit(trim_trailer(&body[..keep]), true);
                self.skip = self.skip_of(len - keep);
                Some(header + keep)
            }
        }
    }

    fn skip_of(&self, n: usize) -> Skip {
        if self.framing == Framing::Auto {
            Skip::Resync(n)
        } else {
            Skip::Bytes(n)
        }
    }

    fn newline_frame(
        &mut self,
        buf: &[u8],
        eof: bool,
        emit: &mut impl FnMut(&[u8], bool),
    ) -> Option<usize> {
        let window = &buf[..buf.len().min(self.max + 1)];
        match memchr2(b'\n', b'\0', window) {
            Some(end) => {
                emit(trim_trailer(&buf[..end]), false);
                Some(end + 1)
            }
            None if buf.len() > self.max => {
                match self.oversize {
                    Oversize::Truncate => {
                        self.stats.truncated += 1;
                        emit(&buf[..self.max], true);
                    }
                    Oversize::Drop => self.stats.dropped += 1,
                }
                self.skip = Skip::ToTrailer;
                Some(self.max)
            }
            None if eof => {
                emit(trim_trailer(buf), false);
                Some(buf.len())
            }
            None => None,
        }
    }
}

enum Header {
    Count {
        len: usize,
        header: usize,
    },
    NeedMore,
    NotOctet,
    /// `auto`: a count larger than `max_message_bytes` whose bytes hold the start of
    /// another frame: the line is read as a line.
    Bogus,
}

/// Where the next syslog frame starts in `bytes`: just after a line feed followed by `<`.
fn frame_start(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\n<").map(|i| i + 1)
}

/// Strips trailing LF, CR and NUL.
pub fn trim_trailer(mut frame: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = frame {
        frame = rest;
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one read at a time, like a socket would, and collects the messages.
    fn run(
        framing: Framing,
        max: usize,
        oversize: Oversize,
        chunks: &[&[u8]],
    ) -> (Vec<(String, bool)>, FrameStats) {
        let mut d = FrameDecoder::new(framing, max, oversize);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            buf.extend_from_slice(chunk);
            let eof = i == chunks.len() - 1;
            let used = d.decode(&buf, eof, |m, t| {
                out.push((String::from_utf8_lossy(m).into_owned(), t))
            });
            buf.drain(..used);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        (out, d.stats)
    }

    fn msgs(v: &[(String, bool)]) -> Vec<&str> {
        v.iter().map(|(m, _)| m.as_str()).collect()
    }

    #[test]
    fn a_huge_count_in_front_of_line_framed_messages_swallows_nothing() {
        let mut stream = b"999999999 <\n".to_vec();
        for i in 0..1000 {
            stream.extend_from_slice(format!("<13>msg {i}\n").as_bytes());
        }
        // Split at every size a socket might deliver.
        for chunk in [1, 7, 100, 4096, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
            let (out, stats) = run(Framing::Auto, 1024, Oversize::Truncate, &chunks);
            assert_eq!(out.len(), 1001, "chunk {chunk}");
            assert_eq!(out[0].0, "999999999 <");
            assert_eq!(out[1000].0, "<13>msg 999");
            assert!(out.iter().all(|(_, t)| !t));
            assert_eq!(stats.framing_errors, 1);
        }
    }

    #[test]
    fn a_huge_count_is_skipped_only_until_the_next_frame_starts() {
        // The counted bytes hold no frame start within max_message_bytes: the count is
        // believed, the frame truncated, and the skip stops at the next `LF <`.
        let mut stream = b"999999 <13>".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 3000));
        stream.extend_from_slice(b"\n<13>next\n5 <13>a");
        for chunk in [1, 13, 1000, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
            let (out, stats) = run(Framing::Auto, 1024, Oversize::Truncate, &chunks);
            assert_eq!(msgs(&out)[1..], ["<13>next", "<13>a"], "chunk {chunk}");
            assert!(out[0].1, "the first is truncated");
            assert_eq!(out[0].0.len(), 1024);
            assert_eq!(stats.truncated, 1);
            assert_eq!(stats.skipped_bytes, 3000 + 4 - 1024 + 1);
        }
        // Octet counting is told, not guessed: the count is trusted there.
        let (out, stats) = run(
            Framing::OctetCounting,
            16,
            Oversize::Drop,
            &[b"30 <13>aaaa\n<13>bbbbbbbbbbbbbbbbb5 <13>c"],
        );
        assert_eq!(msgs(&out), ["<13>c"]);
        assert_eq!((stats.dropped, stats.skipped_bytes), (1, 30));
    }

    #[test]
    fn newline_lf_crlf_nul_trailers() {
        let (out, _) = run(
            Framing::Newline,
            1024,
            Oversize::Truncate,
            &[b"<13>a\n<13>b\r\n<13>c\0<13>d"],
        );
        assert_eq!(msgs(&out), ["<13>a", "<13>b", "<13>c", "<13>d"]);
    }

    #[test]
    fn octet_counting() {
        let (out, stats) = run(
            Framing::OctetCounting,
            1024,
            Oversize::Truncate,
            &[b"5 <13>a6 <13>bc\n7 <13>def"],
        );
        assert_eq!(msgs(&out), ["<13>a", "<13>bc", "<13>def"]);
        assert_eq!(stats, FrameStats::default());
    }

    #[test]
    fn frames_split_across_reads_at_every_byte() {
        let stream: &[u8] = b"11 <13>1 hello\n<13>plain line\n9 <13>x y z";
        for cut in 1..stream.len() {
            let (out, _) = run(
                Framing::Auto,
                1024,
                Oversize::Truncate,
                &[&stream[..cut], &stream[cut..]],
            );
            assert_eq!(
                msgs(&out),
                ["<13>1 hello", "<13>plain line", "<13>x y z"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn auto_does_not_take_a_leading_timestamp_for_a_count() {
        let (out, _) = run(
            Framing::Auto,
            1024,
            Oversize::Truncate,
            &[b"1493738863000 host CEF:0|a\n12 <13>counted\n"],
        );
        assert_eq!(msgs(&out), ["1493738863000 host CEF:0|a", "<13>counted"]);
    }

    #[test]
    fn garbage_between_frames_resynchronises() {
        let (out, stats) = run(
            Framing::OctetCounting,
            1024,
            Oversize::Truncate,
            &[b"5 <13>a", b"garbage!\n", b"5 <13>b"],
        );
        assert_eq!(msgs(&out), ["<13>a", "garbage!", "<13>b"]);
        assert_eq!(stats.framing_errors, 1);
    }

    #[test]
    fn garbage_split_across_reads_is_counted_once() {
        let stream: &[u8] = b"5 <13>agarbage here\n5 <13>b";
        for cut in 1..stream.len() {
            let (out, stats) = run(
                Framing::OctetCounting,
                1024,
                Oversize::Truncate,
                &[&stream[..cut], &stream[cut..]],
            );
            assert_eq!(
                msgs(&out),
                ["<13>a", "garbage here", "<13>b"],
                "cut at {cut}"
            );
            assert_eq!(stats.framing_errors, 1, "cut at {cut}");
        }
    }

    #[test]
    fn oversize_newline_truncated_then_resumes() {
        let long = "x".repeat(2000);
        let stream = format!("<13>{long}\n<13>next\n");
        let (out, stats) = run(
            Framing::Newline,
            600,
            Oversize::Truncate,
            &[stream.as_bytes()],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.len(), 600);
        assert!(out[0].1, "flagged as truncated");
        assert_eq!(out[1], ("<13>next".to_string(), false));
        assert_eq!(stats.truncated, 1);
    }

    #[test]
    fn oversize_dropped_when_asked() {
        let long = "x".repeat(2000);
        let stream = format!("<13>{long}\n2004 <13>{long}<13>next\n");
        let (out, stats) = run(Framing::Auto, 600, Oversize::Drop, &[stream.as_bytes()]);
        assert_eq!(msgs(&out), ["<13>next"]);
        assert_eq!(stats.dropped, 2);
    }

    #[test]
    fn huge_octet_count_is_streamed_past_not_allocated() {
        // Claims ~1 GB; only 600 bytes are kept and the decoder's buffer need never grow.
        let mut d = FrameDecoder::new(Framing::OctetCounting, 600, Oversize::Truncate);
        let mut out = Vec::new();
        let mut buf = b"999999999 <13>".to_vec();
        buf.extend(std::iter::repeat_n(b'A', 4096));
        let used = d.decode(&buf, false, |m, t| out.push((m.len(), t)));
        assert_eq!(out, vec![(600, true)]);
        assert_eq!(used, buf.len(), "the rest of this read is skipped too");
        // The rest of the claimed frame is skipped as it arrives.
        let chunk = vec![b'B'; 65536];
        assert_eq!(
            d.decode(&chunk, false, |_, _| panic!("no frame inside the skip")),
            65536
        );
    }

    #[test]
    fn stream_ending_inside_a_frame_passes_on_what_arrived() {
        let (out, stats) = run(
            Framing::OctetCounting,
            1024,
            Oversize::Truncate,
            &[b"50 <13>only part"],
        );
        assert_eq!(out, vec![("<13>only part".to_string(), true)]);
        assert_eq!(stats.truncated, 1);
    }

    #[test]
    fn auto_takes_counts_without_pri_when_no_line_feed_is_inside() {
        let (out, _) = run(
            Framing::Auto,
            1024,
            Oversize::Truncate,
            &[
                b"11 Feb 12 fw x12 Feb 12 fw yz42 this line has a count-like start\n",
                b"5514 a short line\n",
            ],
        );
        assert_eq!(
            msgs(&out),
            [
                "Feb 12 fw x",
                "Feb 12 fw yz",
                "42 this line has a count-like start",
                "5514 a short line"
            ]
        );
    }

    #[test]
    fn a_number_at_the_start_of_a_line_does_not_hold_the_line_back() {
        let mut d = FrameDecoder::new(Framing::Auto, 65536, Oversize::Truncate);
        let mut out = Vec::new();
        let used = d.decode(b"5514 a short line\n", false, |m, _| out.push(m.to_vec()));
        assert_eq!(out, vec![b"5514 a short line".to_vec()]);
        assert_eq!(used, 18);
    }

    #[test]
    fn zero_leading_and_long_digit_runs_are_not_counts() {
        let (out, _) = run(
            Framing::Auto,
            1024,
            Oversize::Truncate,
            &[b"05 <13>a\n1234567890 <13>b\n"],
        );
        assert_eq!(msgs(&out), ["05 <13>a", "1234567890 <13>b"]);
    }
}
