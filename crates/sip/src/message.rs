//! Requests, responses and their serialisation.

use crate::error::ParseError;
use crate::header::{HeaderName, Headers};
use crate::method::Method;
use crate::typed::Via;
use crate::uri::Uri;
use std::fmt::Write as _;

/// A SIP request. `Content-Length` is not kept among the headers: it is derived
/// from `body` when the request is written, so it can never disagree with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method of the request line.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Every header but Content-Length, in order.
    pub headers: Headers,
    /// The body, exactly Content-Length octets.
    pub body: Vec<u8>,
}

/// A SIP response. As for [`Request`], `Content-Length` is derived from `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100 to 699.
    pub status: u16,
    /// The reason phrase (may be empty, may be any UTF-8).
    pub reason: String,
    /// Every header but Content-Length, in order.
    pub headers: Headers,
    /// The body, exactly Content-Length octets.
    pub body: Vec<u8>,
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The headers, whichever kind this is.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Writes the message in wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// Appends `s` to a start or header line. A CR or LF would end the line
/// early (and let a value built from user input inject header lines or a
/// body), so each is written as a space, as unfolding would have made it.
fn push_line_text(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if memchr::memchr2(b'\r', b'\n', b).is_none() {
        out.extend_from_slice(b);
    } else {
        out.extend(
            b.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    }
}

/// Writes the headers, then the Content-Length derived from `body`, then the
/// body. A Content-Length line among `headers` is skipped: the one written is
/// always the body's true length.
fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        push_line_text(out, &h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Appends `n` in decimal (as `n.to_string()` writes it).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn estimate(headers: &Headers, body: &[u8]) -> usize {
    headers
        .iter()
        .map(|h| h.name.as_str().len() + h.value.len() + 4)
        .sum::<usize>()
        + body.len()
        + 64
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Writes the request in wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let uri = self.uri.to_string();
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body) + uri.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// The transaction key of this request (RFC 3261 §17.2.3): topmost Via
    /// branch and sent-by, and the method, with ACK folded into INVITE.
    pub fn transaction_key(&self) -> Result<TransactionKey, ParseError> {
        let via = self.headers.top_via()?;
        TransactionKey::for_server(&via, &self.method)
    }
}

impl Response {
    /// A response with the default reason phrase and no headers.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: default_reason(status).to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Writes the response in wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(estimate(&self.headers, &self.body) + self.reason.len());
        out.extend_from_slice(b"SIP/2.0 ");
        push_decimal(&mut out, usize::from(self.status));
        out.push(b' ');
        push_line_text(&mut out, &self.reason);
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// True for 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// The response to `req` per RFC 3261 §8.2.6: Via, From, To, Call-ID and
    /// CSeq copied, nothing else. The caller adds a To tag where one is needed.
    pub fn to_request(req: &Request, status: u16) -> Response {
        let mut resp = Response::new(status);
        // The five copied headers and room for what the caller adds (a
        // challenge; Contact, Supported, Date…) without growing the list.
        resp.headers.0.reserve(12);
        for h in req.headers.iter() {
            if matches!(
                h.name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                resp.headers.0.push(h.clone());
            }
        }
        resp
    }

    /// Sets the reason phrase (builder style). Control characters are replaced so
    /// that a reason built from user input cannot break the status line.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Response {
        let r: String = reason.into();
        self.reason = r
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Response {
        self.headers.push(name, value);
        self
    }

    /// Adds a To tag if the To header has none (builder style).
    pub fn with_to_tag(mut self, tag: &str) -> Response {
        if let Ok(mut to) = self.headers.to()
            && to.tag().is_none()
        {
            to.params.set("tag", Some(tag));
            let was = self.headers.get(&HeaderName::To).map_or(0, str::len);
            let mut value = String::with_capacity(was + tag.len() + 16);
            let _ = write!(value, "{to}");
            self.headers.set(HeaderName::To, value);
        }
        self
    }

    /// The topmost Via (the one the response travels back along).
    pub fn top_via(&self) -> Result<Via, ParseError> {
        self.headers.top_via()
    }
}

/// Identifies a transaction (RFC 3261 §17.1.3 / §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// The Via branch.
    pub branch: String,
    /// The Via sent-by (server side only; empty for client transactions).
    pub sent_by: String,
    /// The method, with ACK mapped to INVITE (ACK for non-2xx matches the INVITE).
    pub method: Method,
}

impl TransactionKey {
    /// Key of a server transaction for a request with this top Via and method.
    pub fn for_server(via: &Via, method: &Method) -> Result<TransactionKey, ParseError> {
        let branch = via
            .branch()
            .ok_or_else(|| ParseError::header("Via", "missing branch parameter"))?;
        let method = if *method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        let mut sent_by = via.sent_by();
        sent_by.make_ascii_lowercase();
        Ok(TransactionKey {
            branch: branch.to_owned(),
            sent_by,
            method,
        })
    }

    /// Key of a client transaction: the branch we put in the top Via and the
    /// method of the request (responses carry it in CSeq).
    pub fn for_client(branch: &str, method: &Method) -> TransactionKey {
        let method = if *method == Method::Ack {
            Method::Invite
        } else {
            method.clone()
        };
        TransactionKey {
            branch: branch.to_owned(),
            sent_by: String::new(),
            method,
        }
    }
}

/// The reason phrases of RFC 3261 §21 and later RFCs.
pub fn default_reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_to_string_writes_them() {
        for n in [0, 7, 10, 99, 100, 404, 65_535, 1_000_000, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
    use crate::parse::{Limits, parse_datagram};

    fn sample() -> Request {
        let mut r = Request::new(
            Method::Message,
            Uri::parse("sip:bob@example.com").expect("uri"),
        );
        r.headers
            .push(HeaderName::Via, "SIP/2.0/UDP h;branch=z9hG4bK1");
        r.headers
            .push(HeaderName::From, "<sip:a@example.com>;tag=1");
        r.headers.push(HeaderName::To, "<sip:bob@example.com>");
        r.headers.push(HeaderName::CallId, "c1");
        r.headers.push(HeaderName::CSeq, "1 MESSAGE");
        r.body = b"hi".to_vec();
        r
    }

    #[test]
    fn stale_content_length_headers_are_not_written() {
        let mut r = sample();
        r.headers.push(HeaderName::ContentLength, "99");
        r.headers.push(HeaderName::parse("l"), "0");
        let bytes = r.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("Content-Length").count(), 1, "{text}");
        assert!(text.ends_with("Content-Length: 2\r\n\r\nhi"), "{text}");
        let back = parse_datagram(&bytes, &Limits::default()).expect("re-parses");
        assert_eq!(back, Message::Request(sample()));
    }

    #[test]
    fn line_breaks_in_values_cannot_inject_headers() {
        let mut r = sample();
        r.headers.push(
            HeaderName::Subject,
            "hello\r\nVia: SIP/2.0/UDP evil;branch=z9hG4bKx\r\n\r\nbody",
        );
        let bytes = r.to_bytes();
        match parse_datagram(&bytes, &Limits::default()).expect("re-parses") {
            Message::Request(back) => {
                assert_eq!(back.headers.count(&HeaderName::Via), 1);
                assert_eq!(back.body, b"hi");
                assert_eq!(
                    back.headers.get(&HeaderName::Subject),
                    Some("hello  Via: SIP/2.0/UDP evil;branch=z9hG4bKx    body")
                );
            }
            Message::Response(_) => panic!("not a response"),
        }
        let mut resp = Response::new(200);
        resp.reason = "OK\r\nX-Evil: 1".into();
        let text = String::from_utf8(resp.to_bytes()).expect("utf-8");
        assert!(text.starts_with("SIP/2.0 200 OK  X-Evil: 1\r\n"), "{text}");
    }
}
