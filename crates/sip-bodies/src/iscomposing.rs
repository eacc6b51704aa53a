//! Message composition indications (RFC 3994): the "is typing" status
//! messages a user agent sends in a MESSAGE (or INFO, inside an IM session)
//! while its user composes a message, and when they stop.
//!
//! A document carries the composition `state` (required) and three optional
//! elements, in this order: `lastactive` (when the composer was last
//! active), `contenttype` (what is being composed: `text`, `audio`,
//! `text/html` …) and `refresh` (seconds within which an active composer
//! promises to send another active indication, RFC 3994 §3.2 and §3.3).
//!
//! Parsing follows the crate's conventions, with these choices for this
//! format:
//!
//! * The schema types `<state>` as a plain string and the receiver only acts
//!   on `active`, so any value other than `active` (after trimming XML
//!   whitespace) reads as [`State::Idle`]: an indication the server does not
//!   understand must not make a "typing…" marker appear. A missing
//!   `<state>` is an error.
//! * `<lastactive>` (an `xs:dateTime`) and `<contenttype>` are kept as
//!   trimmed text, not validated: the server only relays them.
//! * `<refresh>` is an `xs:positiveInteger`: an optional `+`, digits, not
//!   zero. Values beyond `u32::MAX` seconds saturate rather than fail, since
//!   the schema allows them.
//! * More than one of any of the four elements is an error (the document
//!   would be ambiguous); elements of other namespaces (the schema's
//!   `##other` extension point) and unknown elements are ignored, in any
//!   order.

use crate::error::{Error, Format, Result, snippet};
use crate::xml::{self, Element, Writer};

/// MIME type of composition indications.
pub const CONTENT_TYPE: &str = "application/im-iscomposing+xml";
/// The isComposing namespace (RFC 3994).
pub const NS_ISCOMPOSING: &str = "urn:ietf:params:xml:ns:im-iscomposing";

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::IsComposing, msg)
}

token_enum! {
    /// The composition state.
    pub enum State {
        /// `active`: the user is composing a message.
        Active => "active",
        /// `idle`: the user is not composing (or stopped).
        Idle => "idle",
    }
}

/// An `<isComposing>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsComposing {
    /// `<state>`.
    pub state: State,
    /// `<lastactive>`: when the composer was last active, an XML Schema
    /// `dateTime` (`2003-01-27T10:43:00Z`), kept as sent.
    pub last_active: Option<String>,
    /// `<contenttype>`: the kind of message being composed, a MIME type or
    /// only its top-level type (`text`, `audio`).
    pub content_type: Option<String>,
    /// `<refresh>`: seconds until the composer sends its next `active`
    /// indication, if it stays active. Positive: [`IsComposing::to_xml`]
    /// leaves out a `Some(0)`, which no document can carry.
    pub refresh: Option<u32>,
}

impl IsComposing {
    /// A document with only a state.
    pub fn new(state: State) -> IsComposing {
        IsComposing {
            state,
            last_active: None,
            content_type: None,
            refresh: None,
        }
    }

    /// Parses a composition indication.
    pub fn parse(body: &[u8]) -> Result<IsComposing> {
        let root = xml::parse(body)?;
        if !root.is(NS_ISCOMPOSING, "isComposing") {
            return Err(invalid(format!(
                "root element must be <isComposing> in {NS_ISCOMPOSING}, not <{}>",
                snippet(&root.name)
            )));
        }
        let state = match at_most_one(&root, "state")? {
            Some(s) if s == State::Active.as_str() => State::Active,
            Some(_) => State::Idle,
            None => return Err(invalid("missing <state> in <isComposing>")),
        };
        Ok(IsComposing {
            state,
            last_active: at_most_one(&root, "lastactive")?.map(str::to_owned),
            content_type: at_most_one(&root, "contenttype")?.map(str::to_owned),
            refresh: at_most_one(&root, "refresh")?
                .map(parse_refresh)
                .transpose()?,
        })
    }

    /// Writes the document.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        w.open("isComposing", &[("xmlns", NS_ISCOMPOSING)]);
        w.leaf("state", &[], self.state.as_str());
        if let Some(t) = &self.last_active {
            w.leaf("lastactive", &[], t);
        }
        if let Some(c) = &self.content_type {
            w.leaf("contenttype", &[], c);
        }
        if let Some(r) = self.refresh.filter(|&r| r > 0) {
            w.leaf("refresh", &[], &r.to_string());
        }
        w.finish()
    }
}

/// Trimmed text of the child `name`, if there is exactly one; an error if
/// there are several.
fn at_most_one<'a>(root: &'a Element, name: &'a str) -> Result<Option<&'a str>> {
    let mut found = root.children_named(NS_ISCOMPOSING, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(invalid(format!("more than one <{name}> in <isComposing>")));
    }
    Ok(first.map(Element::trimmed_text))
}

/// An `xs:positiveInteger` (already trimmed), saturating at `u32::MAX`.
fn parse_refresh(s: &str) -> Result<u32> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("<refresh> must be a positive number of seconds"));
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Err(invalid("<refresh> must be positive, not 0"));
    }
    // Only digits remain, so the one possible failure is overflow.
    Ok(significant.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3994's idle example: a composer that was recording audio, with
    /// the schema location (naming the RFC's misspelt namespace) and the
    /// prefix of XML Schema instances that come with it.
    const RFC3994_IDLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>idle</state>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <contenttype>audio</contenttype>
</isComposing>
"#;

    /// The active counterpart, laid out like the RFC 3994 examples: typing
    /// text, next indication promised within 90 s.
    const RFC3994_ACTIVE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>active</state>
  <contenttype>text</contenttype>
  <refresh>90</refresh>
</isComposing>
"#;

    fn doc(inner: &str) -> String {
        format!(r#"<isComposing xmlns="{NS_ISCOMPOSING}">{inner}</isComposing>"#)
    }

    fn err(body: &str) -> String {
        IsComposing::parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn rfc3994_idle_example() {
        let d = IsComposing::parse(RFC3994_IDLE.as_bytes()).unwrap();
        assert_eq!(
            d,
            IsComposing {
                state: State::Idle,
                last_active: Some("2003-01-27T10:43:00Z".into()),
                content_type: Some("audio".into()),
                refresh: None,
            }
        );
        assert_eq!(IsComposing::parse(d.to_xml().as_bytes()).unwrap(), d);
    }

    #[test]
    fn rfc3994_active_example() {
        let d = IsComposing::parse(RFC3994_ACTIVE.as_bytes()).unwrap();
        assert_eq!(
            d,
            IsComposing {
                state: State::Active,
                last_active: None,
                content_type: Some("text".into()),
                refresh: Some(90),
            }
        );
        assert_eq!(IsComposing::parse(d.to_xml().as_bytes()).unwrap(), d);
    }

    #[test]
    fn minimal_documents() {
        let d = IsComposing::parse(doc("<state>active</state>").as_bytes()).unwrap();
        assert_eq!(d, IsComposing::new(State::Active));
        // With a prefix instead of a default namespace, and whitespace.
        let d = IsComposing::parse(
            format!(
                "<c:isComposing xmlns:c=\"{NS_ISCOMPOSING}\">\n <c:state>\r\n idle\t</c:state>\n</c:isComposing>"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(d, IsComposing::new(State::Idle));
    }

    #[test]
    fn generated_document_reads_back() {
        let mut d = IsComposing::new(State::Active);
        d.content_type = Some("text/plain".into());
        d.refresh = Some(60);
        d.last_active = Some("2024-05-01T12:00:00.5+02:00".into());
        let xml = d.to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(xml.contains("<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\">"));
        assert!(xml.contains("<state>active</state>"));
        assert_eq!(IsComposing::parse(xml.as_bytes()).unwrap(), d);
        // The elements come in the schema's order.
        let at = |s: &str| xml.find(s).unwrap();
        assert!(at("<state>") < at("<lastactive>"));
        assert!(at("<lastactive>") < at("<contenttype>"));
        assert!(at("<contenttype>") < at("<refresh>"));
    }

    #[test]
    fn zero_refresh_is_not_written() {
        let mut d = IsComposing::new(State::Active);
        d.refresh = Some(0);
        let xml = d.to_xml();
        assert!(!xml.contains("refresh"), "{xml}");
        assert_eq!(
            IsComposing::parse(xml.as_bytes()).unwrap(),
            IsComposing::new(State::Active)
        );
    }

    #[test]
    fn user_text_is_escaped() {
        let mut d = IsComposing::new(State::Idle);
        d.content_type = Some("text/x-<&>\"'".into());
        d.last_active = Some("]]> \r\n x".into());
        assert_eq!(IsComposing::parse(d.to_xml().as_bytes()).unwrap(), d);
    }

    #[test]
    fn unknown_states_read_as_idle() {
        for state in ["gone", "", "Active", "ACTIVE", "paused", "active idle"] {
            let d = IsComposing::parse(doc(&format!("<state>{state}</state>")).as_bytes()).unwrap();
            assert_eq!(d.state, State::Idle, "{state:?}");
        }
        let d = IsComposing::parse(doc("<state/>").as_bytes()).unwrap();
        assert_eq!(d.state, State::Idle);
    }

    #[test]
    fn extensions_and_order_are_tolerated() {
        let d = IsComposing::parse(
            doc(r#"<refresh>30</refresh>
                <x:mood xmlns:x="urn:example:ext" level="3"><x:happy/></x:mood>
                <unknown>zzz</unknown>
                <contenttype>video</contenttype>
                <state>active</state>"#)
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            d,
            IsComposing {
                state: State::Active,
                last_active: None,
                content_type: Some("video".into()),
                refresh: Some(30),
            }
        );
        // A <state> of another namespace is not the state.
        assert_eq!(
            err(&doc(r#"<state xmlns="urn:example:ext">active</state>"#)),
            "iscomposing: missing <state> in <isComposing>"
        );
    }

    #[test]
    fn refresh_is_a_positive_integer() {
        let refresh = |v: &str| {
            IsComposing::parse(
                doc(&format!("<state>active</state><refresh>{v}</refresh>")).as_bytes(),
            )
            .map(|d| d.refresh.unwrap())
        };
        assert_eq!(refresh("1"), Ok(1));
        assert_eq!(refresh(" 120\n"), Ok(120));
        assert_eq!(refresh("+0045"), Ok(45));
        assert_eq!(refresh("4294967295"), Ok(u32::MAX));
        assert_eq!(refresh("99999999999999999999999"), Ok(u32::MAX));
        for bad in ["", "-5", "1.5", "abc", "+", "1 2", "0x10", "١٢"] {
            assert_eq!(
                refresh(bad).unwrap_err().to_string(),
                "iscomposing: <refresh> must be a positive number of seconds",
                "{bad:?}"
            );
        }
        for zero in ["0", "000", "+0"] {
            assert_eq!(
                refresh(zero).unwrap_err().to_string(),
                "iscomposing: <refresh> must be positive, not 0",
                "{zero:?}"
            );
        }
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(
            err(&doc("")),
            "iscomposing: missing <state> in <isComposing>"
        );
        assert_eq!(
            err(&doc("<state>active</state><state>idle</state>")),
            "iscomposing: more than one <state> in <isComposing>"
        );
        assert_eq!(
            err(&doc(
                "<state>idle</state><contenttype>a</contenttype><contenttype>b</contenttype>"
            )),
            "iscomposing: more than one <contenttype> in <isComposing>"
        );
        assert_eq!(
            err("<isComposing><state>active</state></isComposing>"),
            "iscomposing: root element must be <isComposing> in urn:ietf:params:xml:ns:im-iscomposing, not <isComposing>"
        );
        assert_eq!(
            err(r#"<presence xmlns="urn:ietf:params:xml:ns:im-iscomposing"/>"#),
            "iscomposing: root element must be <isComposing> in urn:ietf:params:xml:ns:im-iscomposing, not <presence>"
        );
    }

    #[test]
    fn malformed_xml_is_an_xml_error() {
        for body in [
            &b""[..],
            b"<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state>",
            b"<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</isComposing>",
            b"<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>&nbsp;</state></isComposing>",
            b"\xff\xfe<isComposing/>",
        ] {
            let e = IsComposing::parse(body).unwrap_err();
            assert_eq!(e.format(), None, "{e}");
            assert!(e.to_string().starts_with("xml: "), "{e}");
        }
    }

    #[test]
    fn size_limit_applies() {
        let padding = " ".repeat(crate::limits::MAX_XML_BYTES);
        let body = doc(&format!("<state>active</state>{padding}"));
        let e = IsComposing::parse(body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
