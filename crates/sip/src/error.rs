//! Errors of the SIP codec.
//!
//! Every defect gets its own variant so that a server can answer with a reason
//! phrase that names it ("400 Bad CSeq: method does not match request line")
//! instead of a generic failure. `Display` output is short, ASCII and free of
//! message content, so it can go straight into a reason phrase or a log.

use thiserror::Error;

/// Why a message (or one of its parts) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The bytes end before the message does.
    #[error("truncated message")]
    Truncated,
    /// The message is larger than the configured limit.
    #[error("message too large ({size} > {limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    /// More header lines than the configured limit.
    #[error("too many header fields (limit {limit})")]
    TooManyHeaders { limit: usize },
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A version other than SIP/2.0 (answered with 505).
    #[error("unsupported SIP version")]
    Version,
    /// A header line without a colon, with an empty or invalid name, or not UTF-8.
    #[error("malformed header line {line}: {what}")]
    HeaderLine { line: usize, what: &'static str },
    /// A header value that does not follow its grammar.
    #[error("bad {header} header: {what}")]
    Header { header: String, what: String },
    /// A URI that does not follow its grammar.
    #[error("bad URI: {0}")]
    Uri(&'static str),
    /// A Content-Length that disagrees with the bytes present.
    #[error("bad Content-Length: {0}")]
    ContentLength(&'static str),
}

impl ParseError {
    /// Builds a [`ParseError::Header`] for a named header.
    pub fn header(header: &str, what: impl Into<String>) -> ParseError {
        ParseError::Header {
            header: header.to_owned(),
            what: what.into(),
        }
    }
}
