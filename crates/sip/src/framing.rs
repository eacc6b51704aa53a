//! Splitting byte streams (TCP, TLS) into messages, and recognising keep-alives.
//!
//! A stream carries messages back to back, delimited only by Content-Length
//! (RFC 3261 §18.3), interleaved with the CRLF keep-alives of RFC 5626 §3.5.1.
//! Once framing is lost there is no way to find the next message, so any error
//! from [`StreamFramer::next_frame`] means the connection must be closed.

use crate::error::ParseError;
use crate::message::Message;
use crate::parse::{Limits, assemble, head_end, parse_head};

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

/// The answer to a ping.
pub const PONG: &[u8] = b"\r\n";

/// The keep-alive a flow's owner sends (RFC 5626 §4.4.1).
pub const PING: &[u8] = b"\r\n\r\n";

/// Incremental framer for one stream connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    failed: bool,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            limits,
            failed: false,
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
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Some(Ok(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            // Wait until a ping can be told from a pong followed by a message.
            match self.buf.get(2..4) {
                None | Some([b'\r']) => return None,
                Some([b'\r', _]) if self.buf.len() < 4 => return None,
                _ => {
                    self.buf.drain(..2);
                    return Some(Ok(Frame::Pong));
                }
            }
        }
        if self.buf.starts_with(b"\n") {
            self.buf.drain(..1);
            return Some(Ok(Frame::Pong));
        }
        let Some(end) = head_end(&self.buf) else {
            if self.buf.len() > self.limits.max_message_bytes {
                return Some(self.fail(ParseError::TooLarge {
                    size: self.buf.len(),
                    limit: self.limits.max_message_bytes,
                }));
            }
            return None;
        };
        let (head, body_start) = match parse_head(&self.buf[..end], &self.limits) {
            Ok(h) => h,
            Err(e) => return Some(self.fail(e)),
        };
        let cl = head.content_length.unwrap_or(0);
        let total = body_start + cl;
        if total > self.limits.max_message_bytes {
            return Some(self.fail(ParseError::TooLarge {
                size: total,
                limit: self.limits.max_message_bytes,
            }));
        }
        if self.buf.len() < total {
            return None;
        }
        let body = self.buf[body_start..total].to_vec();
        self.buf.drain(..total);
        Some(Ok(Frame::Message(assemble(head, body))))
    }

    fn fail(&mut self, e: ParseError) -> Result<Frame, ParseError> {
        self.failed = true;
        self.buf = Vec::new();
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
    fn datagram_keepalives() {
        assert!(is_datagram_keepalive(b"\r\n\r\n"));
        assert!(is_datagram_keepalive(b"\r\n"));
        assert!(!is_datagram_keepalive(b""));
        assert!(!is_datagram_keepalive(MSG));
    }
}
