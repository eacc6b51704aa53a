//! The error type of the test user agent.

use switchboard_sip::{ParseError, Response};
use thiserror::Error;

/// Why an operation of the user agent failed.
#[derive(Debug, Error)]
pub enum UaError {
    /// Nothing arrived in time; the text says what was awaited.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A URI, header or message could not be parsed.
    #[error("SIP parse error: {0}")]
    Parse(#[from] ParseError),
    /// The request got a final response other than the one the operation
    /// needs (for example a non-2xx answer to INVITE or SUBSCRIBE).
    #[error("request failed: {} {}", .0.status, .0.reason)]
    Status(Box<Response>),
    /// The TLS configuration or handshake failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The connection to the server is gone.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer or the caller broke a protocol rule the agent depends on
    /// (a 2xx without To tag, answering an ACK, a request without Via branch…).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl UaError {
    /// The final response carried by [`UaError::Status`].
    pub fn response(&self) -> Option<&Response> {
        match self {
            UaError::Status(r) => Some(r),
            _ => None,
        }
    }

    /// The status code carried by [`UaError::Status`].
    pub fn status(&self) -> Option<u16> {
        self.response().map(|r| r.status)
    }
}
