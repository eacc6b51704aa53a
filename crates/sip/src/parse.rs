//! Parsing of messages from bytes, and the semantic checks a server applies
//! before acting on a request.

use crate::error::ParseError;
use crate::header::{Header, HeaderName, Headers};
use crate::lex;
use crate::message::{Message, Request, Response};
use crate::method::Method;
use crate::typed::Via;
use crate::uri::Uri;

/// Bounds on what the parser accepts, so one client cannot make the server
/// allocate or scan without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (head and body) accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 64 KiB covers the largest presence documents (25 KB) with room to spare;
    /// 256 header lines is far above what real clients send.
    fn default() -> Limits {
        Limits {
            max_message_bytes: 65_535,
            max_headers: 256,
        }
    }
}

/// The start line and headers of a message, before its body is considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The request or status line.
    pub start: StartLine,
    /// Headers without Content-Length.
    pub headers: Headers,
    /// The declared Content-Length, if any.
    pub content_length: Option<usize>,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI.
        uri: Uri,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// Finds the end of the head: the index just past the blank line. `None` if
/// the blank line has not arrived yet.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    head_end_from(bytes, 0)
}

/// [`head_end`], starting the search at `from`: a stream reader that has
/// already searched `bytes[..n]` without success passes `n.saturating_sub(2)`
/// (a terminator is at most three bytes, the first of them a LF), so bytes
/// arriving one at a time are not rescanned from the start each time.
pub fn head_end_from(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from.min(bytes.len());
    loop {
        let nl = memchr::memchr(b'\n', &bytes[pos..])? + pos;
        let next = nl + 1;
        if bytes.get(next) == Some(&b'\n') {
            return Some(next + 1);
        }
        if bytes.get(next) == Some(&b'\r') && bytes.get(next + 1) == Some(&b'\n') {
            return Some(next + 2);
        }
        pos = next;
    }
}

/// `part` (a slice of `head`) as text: a slice of `whole` (the head already
/// checked to be UTF-8) if there is one, else checked on its own.
fn text_of<'a>(whole: Option<&'a str>, head: &[u8], part: &'a [u8]) -> Option<&'a str> {
    match whole {
        Some(w) => {
            let at = part.as_ptr() as usize - head.as_ptr() as usize;
            w.get(at..at + part.len())
        }
        None => std::str::from_utf8(part).ok(),
    }
}

/// Parses the head (`bytes` must hold at least the whole head). Returns the
/// head and the offset at which the body starts.
pub fn parse_head(bytes: &[u8], limits: &Limits) -> Result<(Head, usize), ParseError> {
    let end = head_end(bytes).ok_or(ParseError::Truncated)?;
    if end > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            size: end,
            limit: limits.max_message_bytes,
        });
    }
    let head = &bytes[..end];
    // Checked once for the whole head: every line, name and value then is
    // valid UTF-8 too (each begins and ends next to an ASCII byte). Only a
    // head that is not UTF-8 is checked piece by piece, to name the piece.
    let whole = std::str::from_utf8(head).ok();
    let text = |part| text_of(whole, head, part);
    // The pieces between line feeds (as `head.split(|&b| b == b'\n')` gives
    // them), without a trailing CR.
    let mut from = 0;
    let mut lines = std::iter::from_fn(|| {
        if from > head.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &head[from..]).map_or(head.len(), |n| from + n);
        let line = &head[from..end];
        from = end + 1;
        Some(line)
    })
    .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().ok_or(ParseError::Truncated)?;
    let start = parse_start_line(first)?;
    // Header lines as read, with the line number each one started on. Values
    // are validated once folding has been undone, because a quoted string (and
    // so the meaning of a backslash) can span a fold.
    let lines_in_head = memchr::memchr_iter(b'\n', head).count();
    let mut headers: Vec<Header> = Vec::with_capacity(lines_in_head.min(limits.max_headers + 2));
    let mut line_numbers: Vec<usize> = Vec::with_capacity(headers.capacity());
    let mut counted = 0;
    for (idx, line) in lines.enumerate() {
        let lineno = idx + 2;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Folded continuation of the previous header (RFC 3261 §7.3.1),
            // Content-Length included: it is joined with a single space.
            let prev = headers.last_mut().ok_or(ParseError::HeaderLine {
                line: lineno,
                what: "continuation line before any header",
            })?;
            let cont = text(line)
                .ok_or(ParseError::HeaderLine {
                    line: lineno,
                    what: "not UTF-8",
                })?
                .trim_matches([' ', '\t']);
            if !cont.is_empty() {
                if !prev.value.is_empty() {
                    prev.value.push(' ');
                }
                prev.value.push_str(cont);
            }
            continue;
        }
        let colon = memchr::memchr(b':', line).ok_or(ParseError::HeaderLine {
            line: lineno,
            what: "missing colon",
        })?;
        let name = text(&line[..colon])
            .ok_or(ParseError::HeaderLine {
                line: lineno,
                what: "name not UTF-8",
            })?
            .trim_end_matches([' ', '\t']);
        if !lex::is_token(name) {
            return Err(ParseError::HeaderLine {
                line: lineno,
                what: "invalid header name",
            });
        }
        let value = text(&line[colon + 1..])
            .ok_or(ParseError::HeaderLine {
                line: lineno,
                what: "value not UTF-8",
            })?
            .trim_matches([' ', '\t']);
        let name = HeaderName::parse(name);
        if name != HeaderName::ContentLength {
            counted += 1;
            if counted > limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
        }
        headers.push(Header {
            name,
            value: value.to_owned(),
        });
        line_numbers.push(lineno);
    }
    let mut content_length: Option<usize> = None;
    for (h, &lineno) in headers.iter().zip(&line_numbers) {
        if lex::has_bare_control(&h.value) {
            return Err(ParseError::HeaderLine {
                line: lineno,
                what: "control character in value",
            });
        }
        if h.name == HeaderName::ContentLength {
            let value = &h.value;
            if content_length.is_some() {
                return Err(ParseError::ContentLength("more than one value"));
            }
            if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::ContentLength("not a non-negative integer"));
            }
            content_length = Some(
                value
                    .parse()
                    .map_err(|_| ParseError::ContentLength("not a number"))?,
            );
        }
    }
    if content_length.is_some() {
        // Content-Length is derived from the body when the message is written.
        headers.retain(|h| h.name != HeaderName::ContentLength);
    }
    Ok((
        Head {
            start,
            headers: Headers(headers),
            content_length,
        },
        end,
    ))
}

/// `SIP/` in any case. Compares bytes: slicing the `str` at 4 would panic when
/// a multi-byte character straddles that offset.
fn starts_with_sip_slash(s: &str) -> bool {
    s.as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

fn parse_start_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::StartLine("not UTF-8"))?;
    if starts_with_sip_slash(line) {
        let (version, rest) = line
            .split_once(' ')
            .ok_or(ParseError::StartLine("missing status code"))?;
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseError::Version);
        }
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine("status code must be three digits"));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::StartLine("bad status code"))?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::StartLine("status code out of range"));
        }
        if reason.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(
            "request line must be: method SP uri SP version",
        ));
    };
    let method = Method::parse(m).ok_or(ParseError::StartLine("invalid method"))?;
    if u.is_empty() {
        return Err(ParseError::StartLine("empty Request-URI"));
    }
    if !v.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if starts_with_sip_slash(v) {
            ParseError::Version
        } else {
            ParseError::StartLine("missing SIP version")
        });
    }
    let uri = Uri::parse(u)?;
    Ok(StartLine::Request { method, uri })
}

pub(crate) fn assemble(head: Head, body: Vec<u8>) -> Message {
    match head.start {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers: head.headers,
            body,
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers: head.headers,
            body,
        }),
    }
}

/// Parses one message received as a datagram (UDP). Bytes beyond the declared
/// Content-Length are ignored (RFC 3261 §18.3); a Content-Length larger than
/// the datagram is an error; without Content-Length the body runs to the end.
pub fn parse_datagram(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: limits.max_message_bytes,
        });
    }
    let (head, body_start) = parse_head(bytes, limits)?;
    let available = bytes.len() - body_start;
    let len = match head.content_length {
        Some(cl) if cl > available => {
            return Err(ParseError::ContentLength("larger than the message"));
        }
        Some(cl) => cl,
        None => available,
    };
    Ok(assemble(head, bytes[body_start..body_start + len].to_vec()))
}

/// Parses exactly one complete message whose length the caller already knows
/// (the stream framer). Content-Length is required on streams.
pub fn parse_exact(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let (head, body_start) = parse_head(bytes, limits)?;
    let cl = head.content_length.unwrap_or(0);
    if body_start + cl != bytes.len() {
        return Err(ParseError::ContentLength(
            "does not match the framed message",
        ));
    }
    Ok(assemble(head, bytes[body_start..].to_vec()))
}

/// Why a syntactically framed request cannot be acted on, with the response
/// status a server should send (400, 416, 505…) and a reason phrase naming
/// the defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    /// The status code to answer with.
    pub status: u16,
    /// A reason phrase naming the defect ("Bad CSeq: …").
    pub reason: String,
}

impl Defect {
    fn bad(e: ParseError) -> Defect {
        Defect {
            status: 400,
            reason: capitalise(&e.to_string()),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Maps an error from [`parse_datagram`]/[`parse_exact`] to the answer owed to
/// the sender when enough of the request survived to answer at all.
pub fn defect_for(e: &ParseError) -> Defect {
    match e {
        ParseError::Version => Defect {
            status: 505,
            reason: "Version Not Supported".into(),
        },
        ParseError::TooLarge { .. } => Defect {
            status: 513,
            reason: "Message Too Large".into(),
        },
        other => Defect::bad(other.clone()),
    }
}

/// The checks every request must pass before any processing (RFC 3261 §8.2,
/// §16.3): mandatory headers present once and well-formed, CSeq method equal
/// to the request method, a usable Request-URI, and well-formed Contact,
/// Route and Record-Route values when present (they decide where requests and
/// responses go, so a defect there is answered with 400 up front, as RFC 4475
/// §3.1.2.13 `regbadct` expects). Per-method rules (Require, Content-Type of
/// MESSAGE…) belong to the method handlers.
pub fn check_request(req: &Request) -> Result<(), Defect> {
    check_request_top_via(req).map(|_| ())
}

/// [`check_request`], returning the topmost Via it parsed on the way, so that
/// a server does not parse it again (for `received`/`rport` and the
/// transaction key).
pub fn check_request_top_via(req: &Request) -> Result<Via, Defect> {
    // Every Via value is parsed once, topmost first: the first defect found
    // is the one reported, as when the top Via was checked on its own first.
    let mut vias = req.headers.values(&HeaderName::Via);
    let top = vias
        .next()
        .ok_or_else(|| ParseError::header("Via", "missing"))
        .and_then(Via::parse)
        .map_err(Defect::bad)?;
    for v in vias {
        Via::parse(v).map_err(Defect::bad)?;
    }
    req.headers.from().map_err(Defect::bad)?;
    req.headers.to().map_err(Defect::bad)?;
    req.headers.call_id().map_err(Defect::bad)?;
    let cseq = req.headers.cseq().map_err(Defect::bad)?;
    if cseq.method != req.method {
        return Err(Defect {
            status: 400,
            reason: "Bad CSeq: method does not match request line".into(),
        });
    }
    req.headers.max_forwards().map_err(Defect::bad)?;
    req.headers.expires().map_err(Defect::bad)?;
    req.headers.content_type().map_err(Defect::bad)?;
    req.headers.contacts().map_err(Defect::bad)?;
    req.headers.routes().map_err(Defect::bad)?;
    req.headers.record_routes().map_err(Defect::bad)?;
    match &req.uri {
        Uri::Sip(u) if !u.headers.is_empty() => Err(Defect {
            status: 400,
            reason: "Bad Request-URI: headers are not allowed in a Request-URI".into(),
        }),
        Uri::Sip(_) | Uri::Tel(_) => Ok(top),
        Uri::Absolute(_) => Err(Defect {
            status: 416,
            reason: "Unsupported URI Scheme".into(),
        }),
    }
}

/// The checks a response must pass before it is matched to a transaction:
/// a Via to travel back on and a well-formed CSeq.
pub fn check_response(resp: &Response) -> Result<(), ParseError> {
    resp.headers.top_via()?;
    resp.headers.cseq()?;
    resp.headers.call_id()?;
    resp.headers.from()?;
    resp.headers.to()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: &str = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: abc@192.0.2.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 0\r\n\r\n";

    fn req(bytes: &[u8]) -> Request {
        match parse_datagram(bytes, &Limits::default()).expect("parses") {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn parses_and_round_trips_a_register() {
        let r = req(REG.as_bytes());
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.headers.call_id().expect("call-id"), "abc@192.0.2.1");
        assert!(check_request(&r).is_ok());
        assert_eq!(r.to_bytes(), REG.as_bytes());
    }

    #[test]
    fn folded_headers_and_bare_lf() {
        let m = "OPTIONS sip:x@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\nSubject: one\n  two\n\ttwo-and-a-half\nTo: <sip:x@example.com>\nFrom: <sip:y@example.com>;tag=9\nCall-ID: c\nCSeq: 2 OPTIONS\n\n";
        let r = req(m.as_bytes());
        assert_eq!(
            r.headers.get(&HeaderName::Subject),
            Some("one two two-and-a-half")
        );
        assert!(check_request(&r).is_ok());
    }

    #[test]
    fn datagram_content_length_rules() {
        let extra = format!("{REG}garbage after the message");
        assert!(req(extra.as_bytes()).body.is_empty());
        let long = REG.replace("Content-Length: 0", "Content-Length: 5");
        assert_eq!(
            parse_datagram(long.as_bytes(), &Limits::default()),
            Err(ParseError::ContentLength("larger than the message"))
        );
        let neg = REG.replace("Content-Length: 0", "Content-Length: -999");
        assert!(matches!(
            parse_datagram(neg.as_bytes(), &Limits::default()),
            Err(ParseError::ContentLength(_))
        ));
        let two = REG.replace("Content-Length: 0", "Content-Length: 0\r\nl: 0");
        assert!(matches!(
            parse_datagram(two.as_bytes(), &Limits::default()),
            Err(ParseError::ContentLength(_))
        ));
    }

    #[test]
    fn start_line_defects() {
        let cases = [
            ("INVITE  sip:a@b SIP/2.0", "double space"),
            ("OPTIONS sip:a@b SIP/2.0  ", "trailing space"),
            ("INVITE sip:user@example.com; lr SIP/2.0", "space in uri"),
            ("INVITE <sip:a@b> SIP/2.0", "angle brackets"),
        ];
        for (line, what) in cases {
            let m = REG.replacen("REGISTER sip:example.com SIP/2.0", line, 1);
            assert!(
                parse_datagram(m.as_bytes(), &Limits::default()).is_err(),
                "{what} should fail"
            );
        }
        let v7 = REG.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1);
        assert_eq!(
            parse_datagram(v7.as_bytes(), &Limits::default()),
            Err(ParseError::Version)
        );
        assert_eq!(defect_for(&ParseError::Version).status, 505);
    }

    #[test]
    fn responses_with_odd_reasons() {
        for (raw, status, reason) in [
            ("SIP/2.0 100 \r\n", 100, ""),
            ("SIP/2.0 100\r\n", 100, ""),
            (
                "SIP/2.0 200 = 2**3 * 5**2 но сто\r\n",
                200,
                "= 2**3 * 5**2 но сто",
            ),
        ] {
            let m = format!("{raw}Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n");
            match parse_datagram(m.as_bytes(), &Limits::default()).expect("parses") {
                Message::Response(r) => {
                    assert_eq!(r.status, status);
                    assert_eq!(r.reason, reason);
                }
                Message::Request(_) => panic!("not a response"),
            }
        }
        let big = "SIP/2.0 4294967301 better not break the receiver\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_datagram(big.as_bytes(), &Limits::default()).is_err());
    }

    #[test]
    fn semantic_checks() {
        let mismatch = REG.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE");
        assert_eq!(
            check_request(&req(mismatch.as_bytes())).map_err(|d| d.status),
            Err(400)
        );
        let nocallid = REG.replace("Call-ID: abc@192.0.2.1\r\n", "");
        let d = check_request(&req(nocallid.as_bytes())).expect_err("missing call-id");
        assert_eq!(d.status, 400);
        assert!(d.reason.contains("Call-ID"), "{}", d.reason);
        let twice = REG.replace(
            "To: <sip:alice@example.com>\r\n",
            "To: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n",
        );
        assert!(check_request(&req(twice.as_bytes())).is_err());
        let scheme = REG.replace(
            "REGISTER sip:example.com",
            "REGISTER nobodyKnowsThisScheme:totallyopaquecontent",
        );
        assert_eq!(
            check_request(&req(scheme.as_bytes())).map_err(|d| d.status),
            Err(416)
        );
        let uri_headers = REG.replace(
            "REGISTER sip:example.com",
            "REGISTER sip:example.com?Route=%3Csip:x%3E",
        );
        assert_eq!(
            check_request(&req(uri_headers.as_bytes())).map_err(|d| d.status),
            Err(400)
        );
    }

    #[test]
    fn multibyte_start_lines_do_not_panic() {
        // "SIP" then a two-byte character straddling offset 4.
        for line in ["SIPé 200 OK", "INVITE sip:a@b SIPé/2.0", "SIé", "é"] {
            let m = REG.replacen("REGISTER sip:example.com SIP/2.0", line, 1);
            assert!(parse_datagram(m.as_bytes(), &Limits::default()).is_err());
        }
    }

    #[test]
    fn quoted_pairs_may_escape_controls_but_bare_ones_are_refused() {
        let escaped = REG.replace(
            "To: <sip:alice@example.com>",
            "To: \"BEL:\\\u{7} NUL:\\\0\" <sip:alice@example.com>",
        );
        let r = req(escaped.as_bytes());
        assert_eq!(
            r.headers.to().expect("to").display.as_deref(),
            Some("BEL:\u{7} NUL:\0")
        );
        let bare = REG.replace("Call-ID: abc@192.0.2.1", "Call-ID: abc\0@192.0.2.1");
        assert!(matches!(
            parse_datagram(bare.as_bytes(), &Limits::default()),
            Err(ParseError::HeaderLine { line: 6, .. })
        ));
        // A fold must not smuggle a control character past the check.
        let folded = REG.replace("Call-ID: abc@192.0.2.1", "Call-ID: abc\r\n \u{1}@192.0.2.1");
        assert!(matches!(
            parse_datagram(folded.as_bytes(), &Limits::default()),
            Err(ParseError::HeaderLine { .. })
        ));
        // Nor may a quoted string opened on one line escape a CR on the next.
        let cr = REG.replace(
            "To: <sip:alice@example.com>",
            "To: \"x\r\n \\\ry\" <sip:alice@example.com>",
        );
        assert!(parse_datagram(cr.as_bytes(), &Limits::default()).is_err());
    }

    #[test]
    fn non_utf8_header_lines_are_named() {
        let at = |what: &str, line: &str| {
            let mut m = REG.as_bytes().to_vec();
            let pos = REG.find(what).expect("present");
            m.splice(pos..pos + what.len(), line.bytes().chain([0xff]));
            parse_datagram(&m, &Limits::default())
        };
        assert_eq!(
            at("Max-Forwards: 70", "Max-Forwards: 70"),
            Err(ParseError::HeaderLine {
                line: 3,
                what: "value not UTF-8"
            })
        );
        assert_eq!(
            at("Max-Forwards", "Max-Forwards"),
            Err(ParseError::HeaderLine {
                line: 3,
                what: "name not UTF-8"
            })
        );
        assert_eq!(
            at("Max-Forwards: 70", "Max-Forwards: 70\r\n "),
            Err(ParseError::HeaderLine {
                line: 4,
                what: "not UTF-8"
            })
        );
        let multibyte = REG.replace(
            "To: <sip:alice@example.com>",
            "To: \"J\u{fc}rgen \u{1f600}\" <sip:alice@example.com>\r\n  \u{e9}t\u{e9}",
        );
        assert_eq!(
            req(multibyte.as_bytes()).headers.get(&HeaderName::To),
            Some("\"J\u{fc}rgen \u{1f600}\" <sip:alice@example.com> \u{e9}t\u{e9}")
        );
    }

    #[test]
    fn folded_content_length_stays_with_content_length() {
        // The continuation used to be glued onto the header before it.
        let m = REG.replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Length:\r\n 3\r\n\r\nabc",
        );
        let r = req(m.as_bytes());
        assert_eq!(r.body, b"abc");
        assert_eq!(
            r.headers.get(&HeaderName::Contact),
            Some("<sip:alice@192.0.2.1>")
        );
        let split = REG.replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Length: 1\r\n 0\r\n\r\n",
        );
        assert_eq!(
            parse_datagram(split.as_bytes(), &Limits::default()),
            Err(ParseError::ContentLength("not a non-negative integer"))
        );
    }

    #[test]
    fn contact_and_route_defects_are_answered_with_400() {
        let regbadct = REG.replace(
            "Contact: <sip:alice@192.0.2.1>",
            "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        );
        let d = check_request(&req(regbadct.as_bytes())).expect_err("regbadct");
        assert_eq!(d.status, 400);
        assert!(d.reason.contains("Contact"), "{}", d.reason);
        let route = REG.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nRoute: <sip:a@b");
        assert_eq!(
            check_request(&req(route.as_bytes())).map_err(|d| d.status),
            Err(400)
        );
        let rr = REG.replace(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nRecord-Route: sip:a b",
        );
        assert_eq!(
            check_request(&req(rr.as_bytes())).map_err(|d| d.status),
            Err(400)
        );
        let star = REG.replace("Contact: <sip:alice@192.0.2.1>", "Contact: *\r\nExpires: 0");
        assert!(check_request(&req(star.as_bytes())).is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let tight = Limits {
            max_message_bytes: 100,
            max_headers: 256,
        };
        assert!(matches!(
            parse_datagram(REG.as_bytes(), &tight),
            Err(ParseError::TooLarge { .. })
        ));
        let few = Limits {
            max_message_bytes: 65_535,
            max_headers: 3,
        };
        assert!(matches!(
            parse_datagram(REG.as_bytes(), &few),
            Err(ParseError::TooManyHeaders { limit: 3 })
        ));
    }

    #[test]
    fn header_line_defects() {
        let nocolon = REG.replace("Max-Forwards: 70", "Max-Forwards 70");
        assert!(matches!(
            parse_datagram(nocolon.as_bytes(), &Limits::default()),
            Err(ParseError::HeaderLine { .. })
        ));
        let badname = REG.replace("Max-Forwards: 70", "Max Forwards: 70");
        assert!(matches!(
            parse_datagram(badname.as_bytes(), &Limits::default()),
            Err(ParseError::HeaderLine { .. })
        ));
        assert_eq!(
            parse_datagram(b"REGISTER sip:x SIP/2.0\r\nVia: a", &Limits::default()),
            Err(ParseError::Truncated)
        );
    }
}
