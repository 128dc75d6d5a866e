//! Fuzzes the TCP framing decoder: a stream must frame the same however the socket splits it
//! (TCP may deliver any byte boundary), never panic, and never hand on a message longer than
//! `max_message_bytes`.
#![no_main]

use cefgate::frame::{FrameDecoder, Framing, Oversize};
use libfuzzer_sys::fuzz_target;

/// Feeds `chunks` one read at a time, as the listener does; returns the messages.
fn frames(
    framing: Framing,
    max: usize,
    oversize: Oversize,
    chunks: &[&[u8]],
) -> Vec<(Vec<u8>, bool)> {
    let mut decoder = FrameDecoder::new(framing, max, oversize);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        buf.extend_from_slice(chunk);
        let eof = i + 1 == chunks.len();
        let used = decoder.decode(&buf, eof, |m, truncated| out.push((m.to_vec(), truncated)));
        assert!(used <= buf.len());
        buf.drain(..used);
    }
    assert!(buf.is_empty(), "bytes left after the end of the stream");
    out
}

fuzz_target!(|data: &[u8]| {
    let [mode, limits, seed, stream @ ..] = data else {
        return;
    };
    if stream.is_empty() {
        return;
    }
    let framing = match mode % 3 {
        0 => Framing::Auto,
        1 => Framing::Newline,
        _ => Framing::OctetCounting,
    };
    let oversize = if limits & 1 == 0 {
        Oversize::Truncate
    } else {
        Oversize::Drop
    };
    let max = 480 + (*limits as usize >> 1) * 8;
    let whole = frames(framing, max, oversize, &[stream]);
    // Split at boundaries drawn from the seed (a small linear congruential generator).
    let mut chunks = Vec::new();
    let mut state = u32::from(*seed) | 1;
    let mut rest = stream;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (state >> 16) as usize % 97;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    let split = frames(framing, max, oversize, &chunks);
    assert_eq!(whole, split, "the split changed the framing");
    for (message, _) in &whole {
        assert!(message.len() <= max, "a message longer than the limit");
    }
});
