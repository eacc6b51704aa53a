//! SIP request methods.

use std::fmt;

/// A request method. Methods are case-sensitive tokens (RFC 3261 §7.1), so
/// `invite` is an extension method, not INVITE. The known ones get variants so
/// that dispatch is a cheap match; anything else is kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Message,
    Refer,
    /// Used by Skype for Business clients for roaming data and presence publication.
    Service,
    /// Skype for Business "best effort" NOTIFY (no response expected).
    Benotify,
    /// Any other token.
    Extension(Box<str>),
}

impl Method {
    /// Parses a method token; `None` if `s` is empty or contains non-token characters.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "MESSAGE" => Method::Message,
            "REFER" => Method::Refer,
            "SERVICE" => Method::Service,
            "BENOTIFY" => Method::Benotify,
            other => {
                if other.is_empty() || !other.bytes().all(crate::lex::is_token_byte) {
                    return None;
                }
                Method::Extension(other.into())
            }
        })
    }

    /// The token as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Service => "SERVICE",
            Method::Benotify => "BENOTIFY",
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_round_trip() {
        for m in [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "REGISTER",
            "OPTIONS",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "PUBLISH",
            "MESSAGE",
            "REFER",
            "SERVICE",
            "BENOTIFY",
        ] {
            let parsed = Method::parse(m).expect("known method parses");
            assert!(
                !matches!(parsed, Method::Extension(_)),
                "{m} should be a known variant"
            );
            assert_eq!(parsed.as_str(), m);
        }
    }

    #[test]
    fn methods_are_case_sensitive_and_extensible() {
        assert_eq!(
            Method::parse("invite"),
            Some(Method::Extension("invite".into()))
        );
        assert_eq!(
            Method::parse("!interesting-Method0123456789_*+`.%indeed'~"),
            Some(Method::Extension(
                "!interesting-Method0123456789_*+`.%indeed'~".into()
            ))
        );
        assert_eq!(Method::parse(""), None);
        assert_eq!(Method::parse("IN VITE"), None);
        assert_eq!(Method::parse("A:B"), None);
    }
}
