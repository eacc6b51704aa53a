//! Splitting byte streams (TCP, TLS) into messages, and recognising keep-alives.
//!
//! A stream carries messages back to back, delimited only by Content-Length
//! (RFC 3261 §18.3), interleaved with the CRLF keep-alives of RFC 5626 §3.5.1.
//! Once framing is lost there is no way to find the next message, so any error
//! from [`StreamFramer::next_frame`] means the connection must be closed.

use crate::error::ParseError;
use crate::message::Message;
use crate::parse::{Head, Limits, assemble, head_end_from, parse_head};

/// One item read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A double-CRLF "ping": answer with [`PONG`].
    Ping,
    /// A single CRLF (a "pong", or a stray line ending before a message).
    Pong,
}

/// What the start of the buffer says about keep-alives.
enum KeepAlive {
    Frame(Frame),
    Wait,
    None,
}

/// The answer to a ping.
pub const PONG: &[u8] = b"\r\n";

/// The keep-alive a flow's owner sends (RFC 5626 §4.4.1).
pub const PING: &[u8] = b"\r\n\r\n";

/// Incremental framer for one stream connection.
///
/// Work is linear in the bytes received however they are chunked: the search
/// for the end of the head resumes where the last one stopped, and a parsed
/// head is kept while its body arrives instead of being parsed again on every
/// call.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    failed: bool,
    /// Where the search for the end of the head resumes.
    scan_from: usize,
    /// The parsed head of the message whose body is still arriving, with the
    /// offset of its body and the message's total length.
    pending: Option<(Head, usize, usize)>,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            limits,
            failed: false,
            scan_from: 0,
            pending: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame; `None` until more bytes are needed. After an
    /// error every call returns the same error class: close the connection.
    pub fn next_frame(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.failed {
            return Some(Err(ParseError::StartLine("stream framing lost")));
        }
        if self.pending.is_none() {
            match self.keepalive() {
                KeepAlive::Frame(f) => return Some(Ok(f)),
                KeepAlive::Wait => return None,
                KeepAlive::None => {}
            }
            let Some(end) = head_end_from(&self.buf, self.scan_from) else {
                if self.buf.len() > self.limits.max_message_bytes {
                    return Some(self.fail(ParseError::TooLarge {
                        size: self.buf.len(),
                        limit: self.limits.max_message_bytes,
                    }));
                }
                self.scan_from = self.buf.len().saturating_sub(2);
                return None;
            };
            let (head, body_start) = match parse_head(&self.buf[..end], &self.limits) {
                Ok(h) => h,
                Err(e) => return Some(self.fail(e)),
            };
            let total = body_start + head.content_length.unwrap_or(0);
            if total > self.limits.max_message_bytes {
                return Some(self.fail(ParseError::TooLarge {
                    size: total,
                    limit: self.limits.max_message_bytes,
                }));
            }
            self.pending = Some((head, body_start, total));
        }
        let total = self.pending.as_ref().map_or(0, |p| p.2);
        if self.buf.len() < total {
            return None;
        }
        let (head, body_start, total) = self.pending.take()?;
        let body = self.buf[body_start..total].to_vec();
        self.buf.drain(..total);
        self.scan_from = 0;
        Some(Ok(Frame::Message(assemble(head, body))))
    }

    /// Recognises CRLF keep-alives at the start of the buffer (only between
    /// messages).
    fn keepalive(&mut self) -> KeepAlive {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return KeepAlive::Frame(Frame::Ping);
        }
        if self.buf.starts_with(b"\r\n") {
            // Wait until a ping can be told from a pong followed by a message.
            return match self.buf.get(2..4) {
                None | Some([b'\r']) => KeepAlive::Wait,
                Some([b'\r', _]) if self.buf.len() < 4 => KeepAlive::Wait,
                _ => {
                    self.buf.drain(..2);
                    KeepAlive::Frame(Frame::Pong)
                }
            };
        }
        if self.buf.starts_with(b"\n") {
            self.buf.drain(..1);
            return KeepAlive::Frame(Frame::Pong);
        }
        KeepAlive::None
    }

    fn fail(&mut self, e: ParseError) -> Result<Frame, ParseError> {
        self.failed = true;
        self.buf = Vec::new();
        self.pending = None;
        self.scan_from = 0;
        Err(e)
    }
}

/// True for a datagram that is only a keep-alive (CRLFs), which is ignored.
pub fn is_datagram_keepalive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.iter().all(|&b| b == b'\r' || b == b'\n' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_byte_by_byte_with_keepalives() {
        let mut f = StreamFramer::new(Limits::default());
        let mut input = Vec::new();
        input.extend_from_slice(PING);
        input.extend_from_slice(MSG);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(MSG);
        let mut frames = Vec::new();
        for b in input {
            f.push(&[b]);
            while let Some(fr) = f.next_frame() {
                frames.push(fr.expect("valid"));
            }
        }
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(frames[0], Frame::Ping);
        assert!(matches!(&frames[1], Frame::Message(Message::Request(r)) if r.body == b"hello"));
        assert_eq!(frames[2], Frame::Pong);
        assert!(matches!(&frames[3], Frame::Message(_)));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(&[MSG, MSG].concat());
        assert!(matches!(f.next_frame(), Some(Ok(Frame::Message(_)))));
        assert!(matches!(f.next_frame(), Some(Ok(Frame::Message(_)))));
        assert!(f.next_frame().is_none());
    }

    #[test]
    fn oversize_and_garbage_close_the_stream() {
        let mut f = StreamFramer::new(Limits {
            max_message_bytes: 50,
            max_headers: 10,
        });
        f.push(MSG);
        assert!(matches!(
            f.next_frame(),
            Some(Err(ParseError::TooLarge { .. }))
        ));
        assert!(matches!(f.next_frame(), Some(Err(_))));
        let mut g = StreamFramer::new(Limits::default());
        g.push(b"this is not sip\r\n\r\n");
        assert!(matches!(g.next_frame(), Some(Err(_))));
        let mut h = StreamFramer::new(Limits {
            max_message_bytes: 64,
            max_headers: 10,
        });
        h.push(&[b'A'; 100]);
        assert!(matches!(
            h.next_frame(),
            Some(Err(ParseError::TooLarge { .. }))
        ));
    }

    #[test]
    fn large_message_fed_one_byte_at_a_time_frames_in_linear_time() {
        // 60 KB of header lines and body, one byte per read: with rescanning
        // this took quadratic time (minutes in a debug build).
        let mut msg = Vec::from(&MSG[..MSG.len() - b"Content-Length: 5\r\n\r\nhello".len()]);
        for i in 0..1500 {
            msg.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "x".repeat(10)).as_bytes());
        }
        let body = vec![b'b'; 20_000];
        msg.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        msg.extend_from_slice(&body);
        let mut f = StreamFramer::new(Limits {
            max_message_bytes: 65_535,
            max_headers: 2000,
        });
        let started = std::time::Instant::now();
        let mut got = None;
        for b in &msg {
            f.push(std::slice::from_ref(b));
            if let Some(fr) = f.next_frame() {
                got = Some(fr.expect("valid"));
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        match got {
            Some(Frame::Message(Message::Request(r))) => {
                assert_eq!(r.body, body);
                assert_eq!(r.headers.0.len(), 6 + 1500);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn terminator_split_across_reads_is_found() {
        let (head, body) = MSG.split_at(MSG.len() - 5);
        for cut in 1..5 {
            let mut f = StreamFramer::new(Limits::default());
            let (a, b) = head.split_at(head.len() - cut);
            f.push(a);
            assert!(f.next_frame().is_none());
            f.push(b);
            assert!(f.next_frame().is_none(), "body not there yet");
            f.push(body);
            assert!(
                matches!(f.next_frame(), Some(Ok(Frame::Message(_)))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn datagram_keepalives() {
        assert!(is_datagram_keepalive(b"\r\n\r\n"));
        assert!(is_datagram_keepalive(b"\r\n"));
        assert!(!is_datagram_keepalive(b""));
        assert!(!is_datagram_keepalive(MSG));
    }
}
