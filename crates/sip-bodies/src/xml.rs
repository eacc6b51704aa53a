//! A small namespace-aware XML tree, built with `quick-xml`, that every XML
//! body parser in this crate walks.
//!
//! Building a bounded tree first (rather than streaming each format) puts the
//! well-formedness checks, namespace resolution and the size limits of
//! [`crate::limits`] in one place. Prefixes are resolved to namespace URIs
//! here, so format parsers compare `(namespace, local name)` pairs and never
//! see the prefixes clients happen to choose.
//!
//! The writer half ([`Writer`]) escapes all text and attribute values and
//! drops the characters XML 1.0 cannot carry, so generated documents are
//! always well-formed whatever user text they contain.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::error::{Error, Result, snippet};
use crate::limits;

/// The namespace bound to the `xml` prefix by the XML specification
/// (`xml:lang`).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// One element of a parsed document.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    /// Namespace URI, empty when the element is in no namespace.
    pub ns: String,
    /// Local name (without prefix).
    pub name: String,
    /// Attributes other than namespace declarations.
    pub attrs: Vec<Attr>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// All character data directly inside this element, concatenated.
    pub text: String,
}

/// One attribute, its name resolved like an element's (unprefixed attributes
/// are in no namespace, per the Namespaces in XML rules).
#[derive(Debug, Clone, Default)]
pub(crate) struct Attr {
    pub ns: String,
    pub name: String,
    pub value: String,
}

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// Value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// `xml:lang` of this element, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == NS_XML && a.name == "lang")
            .map(|a| a.value.as_str())
    }

    /// Children in namespace `ns` named `name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// First child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Trimmed text of the first child `{ns}name`.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| trim(&c.text))
    }

    /// Character data with XML whitespace trimmed, for token-valued content.
    pub fn trimmed_text(&self) -> &str {
        trim(&self.text)
    }
}

/// Trims XML whitespace (space, tab, CR, LF), not Unicode whitespace: a note
/// that ends in a non-breaking space keeps it.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// A namespace declaration in scope: `prefix` (empty for the default
/// namespace) bound to `uri` (empty un-declares the default namespace).
struct Binding {
    prefix: String,
    uri: String,
}

/// Parses `input` into an element tree, enforcing [`crate::limits`].
///
/// The document must be UTF-8 (a BOM is allowed) and must not contain a
/// DOCTYPE: no SIP body needs one, and refusing it rules out entity tricks.
pub(crate) fn parse(input: &[u8]) -> Result<Element> {
    if input.len() > limits::MAX_XML_BYTES {
        return Err(Error::xml(
            format!("document larger than {} bytes", limits::MAX_XML_BYTES),
            limits::MAX_XML_BYTES,
        ));
    }
    let (base, input) = match input.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3, rest),
        None => (0, input),
    };
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => return Err(Error::xml("invalid UTF-8", base + e.valid_up_to())),
    };
    TreeBuilder::new(text, base).run()
}

struct TreeBuilder<'a> {
    reader: Reader<&'a [u8]>,
    len: usize,
    base: usize,
    stack: Vec<Element>,
    /// Namespace bindings in scope, innermost last.
    bindings: Vec<Binding>,
    /// How many bindings each open element added, to pop them on close.
    binding_counts: Vec<usize>,
    root: Option<Element>,
    elements: usize,
}

impl<'a> TreeBuilder<'a> {
    fn new(text: &'a str, base: usize) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        TreeBuilder {
            reader,
            len: text.len(),
            base,
            stack: Vec::new(),
            bindings: Vec::new(),
            binding_counts: Vec::new(),
            root: None,
            elements: 0,
        }
    }

    fn pos(&self) -> usize {
        let pos = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
        self.base.saturating_add(pos)
    }

    fn err(&self, message: impl AsRef<str>) -> Error {
        Error::xml(message, self.pos())
    }

    fn run(mut self) -> Result<Element> {
        loop {
            let event = match self.reader.read_event() {
                Ok(ev) => ev,
                Err(e) => return Err(self.map_error(&e)),
            };
            match event {
                Event::Start(start) => {
                    let el = self.open(&start)?;
                    self.stack.push(el);
                }
                Event::Empty(start) => {
                    let el = self.open(&start)?;
                    self.close(el)?;
                }
                Event::End(_) => {
                    // quick-xml has already checked the name matches.
                    let Some(el) = self.stack.pop() else {
                        return Err(self.err("unmatched end tag"));
                    };
                    self.close(el)?;
                }
                Event::Text(t) => {
                    let content = t.xml10_content();
                    self.text(&content)?;
                }
                Event::CData(c) => {
                    let content = c.xml10_content();
                    if self.stack.is_empty() {
                        return Err(self.err("CDATA outside the root element"));
                    }
                    self.push_text(&content)?;
                }
                Event::GeneralRef(r) => {
                    let resolved: String = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match &*r {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "apos" => "'".into(),
                            "quot" => "\"".into(),
                            other => {
                                return Err(
                                    self.err(format!("unknown entity &{};", snippet(other)))
                                );
                            }
                        },
                        Err(_) => {
                            return Err(
                                self.err(format!("invalid character reference &{};", snippet(&r)))
                            );
                        }
                    };
                    if self.stack.is_empty() {
                        return Err(self.err("reference outside the root element"));
                    }
                    self.push_text(&resolved)?;
                }
                Event::DocType(_) => return Err(self.err("DOCTYPE is not allowed")),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => {
                    if !self.stack.is_empty() {
                        return Err(Error::xml(
                            "unexpected end of document",
                            self.base + self.len,
                        ));
                    }
                    return self
                        .root
                        .ok_or_else(|| Error::xml("no root element", self.base + self.len));
                }
            }
        }
    }

    fn map_error(&self, e: &quick_xml::Error) -> Error {
        use quick_xml::errors::{IllFormedError, SyntaxError};
        let offset = self
            .base
            .saturating_add(usize::try_from(self.reader.error_position()).unwrap_or(usize::MAX));
        let message: String = match e {
            quick_xml::Error::Syntax(s) => match s {
                SyntaxError::UnclosedTag
                | SyntaxError::UnclosedPI
                | SyntaxError::UnclosedXmlDecl
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedDoctype
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue => {
                    return Error::xml("unexpected end of document", self.base + self.len);
                }
                SyntaxError::InvalidBangMarkup => "invalid markup after <!".into(),
            },
            quick_xml::Error::IllFormed(i) => match i {
                IllFormedError::MissingEndTag(_) => {
                    return Error::xml("unexpected end of document", self.base + self.len);
                }
                IllFormedError::MismatchedEndTag { expected, found } => {
                    format!(
                        "end tag </{}> does not match <{}>",
                        snippet(found),
                        snippet(expected)
                    )
                }
                IllFormedError::UnmatchedEndTag(t) => {
                    format!("end tag </{}> without start tag", snippet(t))
                }
                IllFormedError::DoubleHyphenInComment => "-- inside a comment".into(),
                IllFormedError::UnclosedReference => "unterminated reference".into(),
                IllFormedError::MissingDeclVersion(_) | IllFormedError::UnknownVersion => {
                    "bad XML declaration".into()
                }
                IllFormedError::MissingDoctypeName => "DOCTYPE is not allowed".into(),
            },
            quick_xml::Error::InvalidAttr(_) => "malformed attribute".into(),
            quick_xml::Error::Escape(_) => "invalid reference".into(),
            quick_xml::Error::Encoding(_) => "invalid encoding".into(),
            quick_xml::Error::Namespace(_) => "bad namespace declaration".into(),
            quick_xml::Error::Io(_) => "read error".into(),
        };
        Error::xml(message, offset)
    }

    fn text(&mut self, content: &str) -> Result<()> {
        if self.stack.is_empty() {
            if trim(content).is_empty() {
                return Ok(());
            }
            return Err(self.err("text outside the root element"));
        }
        self.push_text(content)
    }

    fn push_text(&mut self, content: &str) -> Result<()> {
        if !content.chars().all(is_xml_char) {
            return Err(self.err("character not allowed in XML"));
        }
        if let Some(top) = self.stack.last_mut() {
            top.text.push_str(content);
        }
        Ok(())
    }

    /// Builds an element from a start tag: limits, namespace declarations,
    /// name resolution. Pushes its bindings; [`Self::close`] pops them.
    fn open(&mut self, start: &BytesStart<'_>) -> Result<Element> {
        if self.root.is_some() {
            return Err(self.err("content after the root element"));
        }
        if self.stack.len() >= limits::MAX_XML_DEPTH {
            return Err(self.err(format!(
                "elements nested deeper than {}",
                limits::MAX_XML_DEPTH
            )));
        }
        self.elements += 1;
        if self.elements > limits::MAX_XML_ELEMENTS {
            return Err(self.err(format!("more than {} elements", limits::MAX_XML_ELEMENTS)));
        }

        // First pass: collect raw attributes (bounded) and namespace bindings.
        let mut raw: Vec<(String, String)> = Vec::new();
        let mut new_bindings = 0;
        for attr in start.attributes() {
            if raw.len() + new_bindings >= limits::MAX_XML_ATTRIBUTES {
                return Err(self.err(format!(
                    "more than {} attributes on one element",
                    limits::MAX_XML_ATTRIBUTES
                )));
            }
            let attr = attr.map_err(|_| self.err("malformed attribute"))?;
            let key = attr.key.as_ref();
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|_| self.err("invalid reference in attribute value"))?
                .into_owned();
            if !value.chars().all(is_xml_char) {
                return Err(self.err("character not allowed in XML"));
            }
            if key == "xmlns" {
                self.bindings.push(Binding {
                    prefix: String::new(),
                    uri: value,
                });
                new_bindings += 1;
            } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                if value.is_empty() {
                    return Err(self.err(format!("empty namespace for prefix {}", snippet(prefix))));
                }
                self.bindings.push(Binding {
                    prefix: prefix.to_owned(),
                    uri: value,
                });
                new_bindings += 1;
            } else {
                raw.push((key.to_owned(), value));
            }
        }
        self.binding_counts.push(new_bindings);
        if self.bindings.len() > limits::MAX_XML_NAMESPACES {
            return Err(self.err(format!(
                "more than {} namespace declarations in scope",
                limits::MAX_XML_NAMESPACES
            )));
        }

        let qname = start.name();
        let (ns, name) = self.resolve(qname.as_ref(), true)?;
        let mut attrs = Vec::with_capacity(raw.len());
        for (key, value) in raw {
            let (ans, aname) = self.resolve(&key, false)?;
            if attrs.iter().any(|a: &Attr| a.ns == ans && a.name == aname) {
                return Err(self.err(format!("duplicate attribute {}", snippet(&key))));
            }
            attrs.push(Attr {
                ns: ans,
                name: aname,
                value,
            });
        }
        Ok(Element {
            ns,
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
        })
    }

    /// Resolves a qualified name against the bindings in scope. Unprefixed
    /// attributes are in no namespace; unprefixed elements take the default.
    fn resolve(&self, qname: &str, is_element: bool) -> Result<(String, String)> {
        let (prefix, local) = match qname.split_once(':') {
            Some((p, l)) => (p, l),
            None => ("", qname),
        };
        if local.is_empty() || local.contains(':') || (prefix.is_empty() && qname.contains(':')) {
            return Err(self.err(format!("bad name {}", snippet(qname))));
        }
        if prefix.is_empty() {
            if !is_element {
                return Ok((String::new(), local.to_owned()));
            }
            let uri = self
                .bindings
                .iter()
                .rev()
                .find(|b| b.prefix.is_empty())
                .map(|b| b.uri.clone())
                .unwrap_or_default();
            return Ok((uri, local.to_owned()));
        }
        if prefix == "xml" {
            return Ok((NS_XML.to_owned(), local.to_owned()));
        }
        if prefix == "xmlns" {
            return Ok((NS_XMLNS.to_owned(), local.to_owned()));
        }
        match self.bindings.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => Ok((b.uri.clone(), local.to_owned())),
            None => Err(self.err(format!("undeclared prefix {}", snippet(prefix)))),
        }
    }

    fn close(&mut self, el: Element) -> Result<()> {
        let n = self.binding_counts.pop().unwrap_or(0);
        let keep = self.bindings.len().saturating_sub(n);
        self.bindings.truncate(keep);
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => self.root = Some(el),
        }
        Ok(())
    }
}

/// Whether `c` may appear in an XML 1.0 document at all (even as a
/// character reference).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes character data. `\r` becomes `&#13;` so that it survives the
/// parser's line-end normalisation; characters XML cannot carry are dropped.
pub(crate) fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// Escapes an attribute value (always written in double quotes). Tab, CR and
/// LF are written as references so attribute-value normalisation keeps them.
pub(crate) fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// What XML can carry of `s`: the string a parser will return for text
/// generated from `s`. Tests use it to state round-trip expectations.
pub fn xml_safe(s: &str) -> String {
    s.chars().filter(|&c| is_xml_char(c)).collect()
}

/// Whether `s` is an XML NCName (a name usable as an element's local name).
/// Generators skip caller-supplied names that are not, rather than emit an
/// ill-formed document.
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start = |c: char| c.is_alphabetic() || c == '_';
    start(first) && chars.all(|c| start(c) || c.is_alphanumeric() || matches!(c, '-' | '.'))
}

/// A minimal indenting XML writer for the generators. Element and prefix
/// names are chosen by this crate's code; only text and attribute values come
/// from callers, and those are always escaped.
pub(crate) struct Writer {
    out: String,
    stack: Vec<&'static str>,
}

impl Writer {
    /// Starts a document with the XML declaration.
    pub fn new() -> Self {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Writer {
            out,
            stack: Vec::new(),
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }

    fn tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_attr(&mut self.out, v);
            self.out.push('"');
        }
    }

    /// `<name attrs>` followed by a newline; children follow.
    pub fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        self.indent();
        self.tag(name, attrs);
        self.out.push_str(">\n");
        self.stack.push(name);
    }

    /// Closes the innermost element opened with [`Writer::open`].
    pub fn close(&mut self) {
        if let Some(name) = self.stack.pop() {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
    }

    /// `<name attrs/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// `<name attrs>text</name>` on one line.
    pub fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.indent();
        self.tag(name, attrs);
        self.out.push('>');
        escape_text(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// Closes anything still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_prefixes_to_namespaces() {
        let doc = br#"<a:root xmlns:a="urn:a" xmlns="urn:d"><child x="1" a:y="2"/><b:c xmlns:b="urn:a"/></a:root>"#;
        let root = parse(doc).unwrap();
        assert!(root.is("urn:a", "root"));
        assert!(root.children[0].is("urn:d", "child"));
        assert_eq!(root.children[0].attr("x"), Some("1"));
        assert_eq!(root.children[0].attrs[1].ns, "urn:a");
        assert!(root.children[1].is("urn:a", "c"));
    }

    #[test]
    fn undeclared_prefix_is_an_error() {
        let e = parse(b"<a:root/>").unwrap_err();
        assert_eq!(e.to_string(), "xml: undeclared prefix a at byte 9");
    }

    #[test]
    fn bindings_go_out_of_scope() {
        let e = parse(br#"<r><x:a xmlns:x="urn:x"/><x:b/></r>"#).unwrap_err();
        assert!(e.to_string().starts_with("xml: undeclared prefix x"), "{e}");
    }

    #[test]
    fn truncated_document_reports_end() {
        let doc = b"<root><child>text";
        let e = parse(doc).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("xml: unexpected end of document at byte {}", doc.len())
        );
        let e = parse(b"<root><chi").unwrap_err();
        assert_eq!(e.to_string(), "xml: unexpected end of document at byte 10");
    }

    #[test]
    fn mismatched_end_tag_is_named() {
        let e = parse(b"<root><a></b></root>").unwrap_err();
        assert!(
            e.to_string().contains("end tag </b> does not match <a>"),
            "{e}"
        );
    }

    #[test]
    fn entities_and_char_refs_are_resolved() {
        let root = parse(b"<r a=\"&lt;&#10;x\">&amp;&#x41;&quot;<![CDATA[<z>]]></r>").unwrap();
        assert_eq!(root.text, "&A\"<z>");
        assert_eq!(root.attr("a"), Some("<\nx"));
    }

    #[test]
    fn unknown_entity_and_doctype_are_rejected() {
        assert!(
            parse(b"<r>&foo;</r>")
                .unwrap_err()
                .to_string()
                .contains("unknown entity &foo;")
        );
        assert!(
            parse(b"<!DOCTYPE r [<!ENTITY a \"b\">]><r/>")
                .unwrap_err()
                .to_string()
                .contains("DOCTYPE")
        );
    }

    #[test]
    fn characters_xml_forbids_are_rejected() {
        for doc in [
            &b"<r>a\x01b</r>"[..],
            b"<r>&#1;</r>",
            b"<r a=\"&#xFFFE;\"/>",
            "<r>\u{FFFF}</r>".as_bytes(),
        ] {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.starts_with("xml: character not allowed in XML"), "{e}");
        }
        assert!(parse("<r>\t\u{10FFFF}&#x9;</r>".as_bytes()).is_ok());
    }

    #[test]
    fn depth_limit_is_enforced() {
        let mut doc = String::new();
        for _ in 0..=limits::MAX_XML_DEPTH {
            doc.push_str("<a>");
        }
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("nested deeper than"), "{e}");
    }

    #[test]
    fn element_limit_is_enforced() {
        let doc = format!("<r>{}</r>", "<a/>".repeat(limits::MAX_XML_ELEMENTS));
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        let doc = format!("<r>{}</r>", "<a/>".repeat(limits::MAX_XML_ELEMENTS - 1));
        assert!(parse(doc.as_bytes()).is_ok());
    }

    #[test]
    fn attribute_limit_is_enforced() {
        let attrs: String = (0..=limits::MAX_XML_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        let e = parse(format!("<r{attrs}/>").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("attributes"), "{e}");
    }

    #[test]
    fn namespace_limit_is_enforced() {
        let decls = |n: usize, level: usize| -> String {
            (0..n)
                .map(|i| format!(" xmlns:p{level}x{i}=\"urn:{i}\""))
                .collect()
        };
        let per = limits::MAX_XML_ATTRIBUTES - 1;
        let levels = limits::MAX_XML_NAMESPACES / per + 1;
        let mut doc = String::new();
        for l in 0..levels {
            doc.push_str(&format!("<a{}>", decls(per, l)));
        }
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("namespace declarations"), "{e}");
    }

    #[test]
    fn size_limit_is_enforced() {
        let doc = vec![b' '; limits::MAX_XML_BYTES + 1];
        assert!(parse(&doc).unwrap_err().to_string().contains("larger than"));
    }

    #[test]
    fn duplicate_attributes_are_rejected() {
        assert!(parse(b"<r a=\"1\" a=\"2\"/>").is_err());
        assert!(
            parse(br#"<r xmlns:p="urn:x" xmlns:q="urn:x" p:a="1" q:a="2"/>"#).is_err(),
            "same expanded name through two prefixes"
        );
    }

    #[test]
    fn rejects_garbage_around_root() {
        assert!(parse(b"hello<r/>").is_err());
        assert!(parse(b"<r/><r/>").is_err());
        assert!(parse(b"").is_err());
        assert!(
            parse(b"\xff<r/>")
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
    }

    #[test]
    fn escaping_round_trips_every_xml_character() {
        let nasty = "a<b>&c\"d'e\r\n\tf]]>g\u{1}h\u{fffe}i\u{10ffff}";
        let mut w = Writer::new();
        w.leaf("t", &[("v", nasty)], nasty);
        let doc = w.finish();
        let root = parse(doc.as_bytes()).unwrap();
        assert_eq!(root.text, xml_safe(nasty));
        assert_eq!(root.attr("v"), Some(xml_safe(nasty).as_str()));
    }
}
