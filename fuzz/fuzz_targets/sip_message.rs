//! SIP datagram parser (`switchboard_sip::parse_datagram`).
//!
//! Never panics, and what it accepts round-trips: the message serialises to
//! bytes that parse back to the same message, and serialising again gives
//! the same bytes. The request checks and the transaction key are exercised
//! on every accepted request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::{Limits, Message, check_request, check_response, parse_datagram};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(m) = parse_datagram(data, &limits) else {
        return;
    };
    let bytes = m.to_bytes();
    // The canonical form may be longer than the input (compact header names
    // are written in full, URIs re-escaped), so it is re-read without a size cap.
    let unbounded = Limits {
        max_message_bytes: usize::MAX,
        ..limits
    };
    let again = parse_datagram(&bytes, &unbounded).expect("a serialised message must parse");
    assert_eq!(again, m, "parse(to_bytes(m)) must equal m");
    assert_eq!(again.to_bytes(), bytes, "serialising must be a fixed point");
    match &m {
        Message::Request(r) => {
            let _ = check_request(r);
            let _ = r.transaction_key();
        }
        Message::Response(r) => {
            let _ = check_response(r);
        }
    }
});
