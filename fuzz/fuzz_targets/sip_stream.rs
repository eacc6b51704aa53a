//! Stream framing (`switchboard_sip::framing::StreamFramer`).
//!
//! Input layout: the first byte `n` says how many of the following bytes
//! (at most 8) are chunk lengths; the rest is the stream, delivered in
//! chunks of those lengths (cycled) with small limits so that the size
//! checks are reached. Never panics, and chunking does not matter: the
//! frames, and whether and where framing failed, are the same as when the
//! whole stream arrives in one read. Every framed message round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::framing::{Frame, StreamFramer};
use switchboard_sip::{Limits, parse_datagram};

const LIMITS: Limits = Limits {
    max_message_bytes: 4096,
    max_headers: 64,
};

/// Frames until the framer wants more bytes; `Err(())` marks a failure.
fn drain(f: &mut StreamFramer, out: &mut Vec<Result<Frame, ()>>) {
    while let Some(fr) = f.next_frame() {
        let failed = fr.is_err();
        out.push(fr.map_err(|_| ()));
        if failed {
            return;
        }
    }
}

fn frames(stream: &[u8], chunks: &[usize]) -> Vec<Result<Frame, ()>> {
    let mut f = StreamFramer::new(LIMITS);
    let mut out = Vec::new();
    if chunks.is_empty() {
        f.push(stream);
        drain(&mut f, &mut out);
        return out;
    }
    let mut rest = stream;
    for &len in chunks.iter().cycle() {
        if rest.is_empty() || out.last().is_some_and(Result::is_err) {
            break;
        }
        let (now, later) = rest.split_at(len.min(rest.len()));
        f.push(now);
        rest = later;
        drain(&mut f, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 9).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    let chunks: Vec<usize> = lens.iter().map(|&l| usize::from(l) + 1).collect();
    let whole = frames(stream, &[]);
    let chunked = frames(stream, &chunks);
    assert_eq!(
        whole, chunked,
        "framing must not depend on how reads are chunked"
    );
    for fr in whole.iter().flatten() {
        if let Frame::Message(m) = fr {
            let unbounded = Limits {
                max_message_bytes: usize::MAX,
                ..LIMITS
            };
            let again =
                parse_datagram(&m.to_bytes(), &unbounded).expect("framed message re-parses");
            assert_eq!(&again, m);
        }
    }
});
