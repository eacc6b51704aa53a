//! Helpers shared by the RFC 4475 and RFC 5118 conformance tests.

#![allow(dead_code)]

use std::path::PathBuf;
use switchboard_sip::framing::{Frame, StreamFramer};
use switchboard_sip::parse::Limits;
use switchboard_sip::{Defect, Message, Request, Response, check_request, defect_for};

/// The directory holding one RFC's messages.
pub fn data_dir(rfc: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(rfc)
}

/// The bytes of a message file, e.g. `load("rfc4475", "wsinv")`.
pub fn load(rfc: &str, name: &str) -> Vec<u8> {
    let path = data_dir(rfc).join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every message name in an RFC's directory, sorted.
pub fn names(rfc: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(data_dir(rfc))
        .expect("data directory")
        .filter_map(|e| {
            let p = e.expect("entry").path();
            if p.extension()? != "dat" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

/// Parses a datagram with the default limits.
pub fn datagram(bytes: &[u8]) -> Result<Message, switchboard_sip::ParseError> {
    switchboard_sip::parse_datagram(bytes, &Limits::default())
}

/// Asserts that serialising `m` and parsing the result gives `m` back, and
/// that serialising is then a fixed point.
pub fn assert_round_trip(name: &str, m: &Message) {
    let bytes = m.to_bytes();
    let again =
        datagram(&bytes).unwrap_or_else(|e| panic!("{name}: serialised form does not parse: {e}"));
    assert_eq!(&again, m, "{name}: parse(to_bytes(m)) != m");
    assert_eq!(
        again.to_bytes(),
        bytes,
        "{name}: to_bytes is not a fixed point"
    );
}

/// Parses a message that must be well formed; asserts the round trip.
pub fn parse_valid(rfc: &str, name: &str) -> Message {
    let m = datagram(&load(rfc, name)).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
    assert_round_trip(name, &m);
    m
}

/// A request that must parse, pass `check_request` and round-trip.
pub fn valid_request(rfc: &str, name: &str) -> Request {
    match parse_valid(rfc, name) {
        Message::Request(r) => {
            if let Err(d) = check_request(&r) {
                panic!("{name} must pass check_request: {d:?}");
            }
            r
        }
        Message::Response(_) => panic!("{name} is a request"),
    }
}

/// A response that must parse and round-trip.
pub fn valid_response(rfc: &str, name: &str) -> Response {
    match parse_valid(rfc, name) {
        Message::Response(r) => r,
        Message::Request(_) => panic!("{name} is a response"),
    }
}

/// Where a request was stopped, and the answer owed.
#[derive(Debug)]
pub enum Stopped {
    /// `parse_datagram` refused it; the defect is `defect_for` the error.
    Parse(Defect),
    /// It parsed, and `check_request` refused it.
    Check(Defect),
}

impl Stopped {
    pub fn defect(&self) -> &Defect {
        match self {
            Stopped::Parse(d) | Stopped::Check(d) => d,
        }
    }
}

/// The defect with which a request is rejected; panics if it is accepted.
pub fn rejection(bytes: &[u8], name: &str) -> Stopped {
    match datagram(bytes) {
        Err(e) => Stopped::Parse(defect_for(&e)),
        Ok(Message::Request(r)) => match check_request(&r) {
            Err(d) => Stopped::Check(d),
            Ok(()) => panic!("{name} must be rejected, but it was accepted"),
        },
        Ok(Message::Response(_)) => panic!("{name} is a request"),
    }
}

/// Frames `bytes` with a [`StreamFramer`] split into two reads at every
/// offset and asserts that the first frame is a message equal to `expected`
/// (what follows it, such as `dblreq`'s trailing noise, is not looked at).
pub fn assert_frames_at_every_split(name: &str, bytes: &[u8], expected: &Message) {
    for cut in 0..=bytes.len() {
        let mut f = StreamFramer::new(Limits::default());
        let mut first = None;
        for part in [&bytes[..cut], &bytes[cut..]] {
            f.push(part);
            if first.is_none() {
                first = f.next_frame();
            }
        }
        match first {
            Some(Ok(Frame::Message(m))) => assert_eq!(&m, expected, "{name} cut {cut}"),
            other => panic!("{name} cut {cut}: first frame {other:?}"),
        }
    }
}
