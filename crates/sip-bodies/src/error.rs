//! The one error type shared by every parser in this crate.
//!
//! The server copies an error's `Display` text into the reason phrase of a
//! `400 Bad Request`, so every message is short, printable ASCII, has no line
//! breaks, and names the defect and where it is. Text taken from the input
//! (an element name, a header name) is passed through `snippet` first so
//! that a hostile document cannot smuggle CR/LF or non-ASCII into a response.

use std::fmt;

/// Which body format an [`Error`] is about, so the reason phrase starts with
/// a word the sender can act on (`pidf: ...`, `cpim: ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `application/pidf+xml` (RFC 3863, 4479, 4480).
    Pidf,
    /// `application/resource-lists+xml` (RFC 4826).
    ResourceLists,
    /// `application/rlmi+xml` (RFC 4662).
    Rlmi,
    /// `multipart/related` (RFC 2387) as used by RFC 4662 NOTIFYs.
    Multipart,
    /// `application/watcherinfo+xml` (RFC 3858).
    WatcherInfo,
    /// `application/conference-info+xml` (RFC 4575).
    ConferenceInfo,
    /// `message/cpim` (RFC 3862).
    Cpim,
    /// `application/im-iscomposing+xml` (RFC 3994).
    IsComposing,
    /// `application/sdp` for IM sessions.
    Sdp,
}

impl Format {
    /// The short lowercase name used as the message prefix.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pidf => "pidf",
            Format::ResourceLists => "resource-lists",
            Format::Rlmi => "rlmi",
            Format::Multipart => "multipart",
            Format::WatcherInfo => "watcherinfo",
            Format::ConferenceInfo => "conference-info",
            Format::Cpim => "cpim",
            Format::IsComposing => "iscomposing",
            Format::Sdp => "sdp",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a body could not be parsed.
///
/// Two layers fail differently: the XML itself may be ill-formed (or exceed a
/// [size limit](crate::limits)), reported as [`Error::Xml`] with a byte
/// offset; or the XML is fine but the document breaks its format's rules,
/// reported as [`Error::Invalid`] naming the element or attribute at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The XML layer failed: not well-formed, not UTF-8, or over a limit.
    #[error("xml: {message} at byte {offset}")]
    Xml {
        /// Short ASCII description of the defect.
        message: String,
        /// Byte offset into the body where the defect was detected.
        offset: usize,
    },
    /// The document is well-formed but violates its format.
    #[error("{format}: {message}")]
    Invalid {
        /// The body format whose rules were broken.
        format: Format,
        /// Short ASCII description of the defect.
        message: String,
    },
}

impl Error {
    /// Builds an XML-layer error; the message is sanitised.
    pub(crate) fn xml(message: impl AsRef<str>, offset: usize) -> Self {
        Error::Xml {
            message: sanitize(message.as_ref()),
            offset,
        }
    }

    /// Builds a format-level error; the message is sanitised.
    pub(crate) fn invalid(format: Format, message: impl AsRef<str>) -> Self {
        Error::Invalid {
            format,
            message: sanitize(message.as_ref()),
        }
    }

    /// The format the error is about, or `None` for XML-layer errors (which
    /// are the same whatever the document was meant to be).
    pub fn format(&self) -> Option<Format> {
        match self {
            Error::Xml { .. } => None,
            Error::Invalid { format, .. } => Some(*format),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maximum length of a piece of input quoted in an error message.
const SNIPPET_MAX: usize = 40;

/// Makes a piece of untrusted input safe to quote in a reason phrase:
/// printable ASCII only (others become `?`), at most [`SNIPPET_MAX`] chars.
pub(crate) fn snippet(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == SNIPPET_MAX {
            out.push_str("...");
            break;
        }
        out.push(if (' '..='~').contains(&c) { c } else { '?' });
    }
    out
}

/// Last line of defence: whatever a message contains, the result is
/// printable ASCII without line breaks and of bounded length.
fn sanitize(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::with_capacity(s.len().min(MAX));
    for c in s.chars() {
        if out.len() >= MAX {
            out.push_str("...");
            break;
        }
        out.push(if (' '..='~').contains(&c) { c } else { '?' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_ascii_without_line_breaks() {
        let e = Error::invalid(Format::Pidf, "bad <\u{e9}l\u{e9}ment>\r\nInjected: yes");
        let s = e.to_string();
        assert_eq!(s, "pidf: bad <?l?ment>??Injected: yes");
    }

    #[test]
    fn snippet_truncates_long_input() {
        let s = snippet(&"a".repeat(100));
        assert_eq!(s.len(), SNIPPET_MAX + 3);
        assert!(s.ends_with("..."));
    }

    #[test]
    fn xml_error_names_offset() {
        let e = Error::xml("unexpected end of document", 123);
        assert_eq!(e.to_string(), "xml: unexpected end of document at byte 123");
        assert_eq!(e.format(), None);
    }
}
