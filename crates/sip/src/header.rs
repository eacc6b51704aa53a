//! Header names and the ordered header list of a message.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names get variants (compared cheaply and
        /// written in canonical case); compact forms (RFC 3261 §7.3.3 and later
        /// RFCs) parse to the same variant as the long form. Anything else is kept
        /// as written and compared case-insensitively.
        #[derive(Debug, Clone, Eq)]
        pub enum HeaderName {
            $( #[doc = concat!("`", $canon, "`")] $variant, )*
            /// Any other header, with its name as written.
            Other(Box<str>),
        }

        impl HeaderName {
            /// Parses a field name (already checked to be a token).
            pub fn parse(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                }
                $( if name.eq_ignore_ascii_case($canon) { return HeaderName::$variant; } )*
                HeaderName::Other(name.into())
            }

            /// The canonical spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", b'a';
    AcceptEncoding => "Accept-Encoding";
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", b'i';
    Contact => "Contact", b'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", b'e';
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    CSeq => "CSeq";
    Date => "Date";
    Event => "Event", b'o';
    Expires => "Expires";
    From => "From", b'f';
    Identity => "Identity", b'y';
    MaxForwards => "Max-Forwards";
    MinExpires => "Min-Expires";
    PAssertedIdentity => "P-Asserted-Identity";
    Path => "Path";
    Priority => "Priority";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    RejectContact => "Reject-Contact", b'j';
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", b'x';
    SipETag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
    Subject => "Subject", b's';
    SubscriptionState => "Subscription-State";
    Supported => "Supported", b'k';
    Timestamp => "Timestamp";
    To => "To", b't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", b'v';
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> HeaderName {
        HeaderName::parse(s)
    }
}

/// One header line (after unfolding). Comma-joined values stay in one line as
/// received; typed accessors split them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name.
    pub name: HeaderName,
    /// The value, unfolded and without surrounding white space.
    pub value: String,
}

/// The headers of a message, in order. Order matters for Via, Route and
/// Record-Route, so this is a list, not a map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of a header.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every line of a header, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// How many lines of this header there are.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// True if at least one line of the header exists.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| &h.name == name)
    }

    /// Appends a line at the end.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a line before every other line (a proxy's Via, Record-Route).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Replaces every line of a header by one value, keeping the position of the
    /// first (or appending if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(pos) => {
                self.0[pos].value = value;
                let mut i = 0;
                self.0.retain(|h| {
                    let keep = i <= pos || h.name != name;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Removes every line of a header.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Iterates over every line.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The comma-separated elements of every line of a header, trimmed, in order
    /// (commas inside quotes or `<>` do not split).
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| crate::lex::SplitTopLevel::new(v, b','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("o"), HeaderName::Event);
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::parse("x-foo"));
        assert_ne!(HeaderName::parse("X-Foo"), HeaderName::Via);
        assert_eq!(HeaderName::parse("q").as_str(), "q");
    }

    #[test]
    fn set_collapses_and_values_split() {
        let mut h = Headers::new();
        h.push(HeaderName::Supported, "a, b");
        h.push(HeaderName::Via, "x");
        h.push(HeaderName::Supported, "c");
        assert_eq!(
            h.values(&HeaderName::Supported).collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        h.set(HeaderName::Supported, "d");
        assert_eq!(
            h.get_all(&HeaderName::Supported).collect::<Vec<_>>(),
            vec!["d"]
        );
        assert_eq!(h.0[0].name, HeaderName::Supported);
        assert_eq!(h.count(&HeaderName::Via), 1);
    }
}
