//! Resource lists (RFC 4826 §3): named, nestable lists of URIs.
//!
//! Switchboard uses them in two places: a client's ad-hoc list in a batch
//! `SUBSCRIBE` body (RFC 5367 style) and exporting a user's stored contact
//! groups. Items keep their document order and kind, so an `<entry-ref>` or
//! `<external>` the server does not resolve survives a parse/generate round
//! trip instead of vanishing. Elements from other namespaces are ignored.

use crate::error::{Error, Format, Result, snippet};
use crate::xml::{self, Element, Writer};

/// MIME type of resource-lists documents.
pub const CONTENT_TYPE: &str = "application/resource-lists+xml";
/// Resource-lists namespace (RFC 4826).
pub const NS_RESOURCE_LISTS: &str = "urn:ietf:params:xml:ns:resource-lists";

const F: Format = Format::ResourceLists;

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(F, msg)
}

/// A `<resource-lists>` document: a sequence of top-level lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceLists {
    /// The top-level `<list>` elements.
    pub lists: Vec<List>,
}

/// A `<list>`: optionally named, holding entries and sub-lists in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    /// The `name` attribute (used in XCAP paths; unique among siblings).
    pub name: Option<String>,
    /// `<display-name>` for the list (a contact group's label).
    pub display_name: Option<DisplayName>,
    /// Members in document order.
    pub items: Vec<ListItem>,
}

/// One member of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    /// `<entry uri="...">`: one resource.
    Entry(Entry),
    /// A nested `<list>`.
    List(List),
    /// `<entry-ref ref="...">`: a reference to an entry elsewhere (an XCAP
    /// URI relative to the XCAP root). Kept, not resolved.
    EntryRef(Reference),
    /// `<external anchor="...">`: a reference to a list elsewhere. Kept,
    /// not resolved.
    External(Reference),
}

/// An `<entry>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The resource's URI (required).
    pub uri: String,
    /// `<display-name>`: how the owner labels this contact.
    pub display_name: Option<DisplayName>,
}

/// An `<entry-ref>` or `<external>`: where it points and its label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reference {
    /// The `ref` (entry-ref) or `anchor` (external) attribute.
    pub target: String,
    /// `<display-name>`.
    pub display_name: Option<DisplayName>,
}

/// A `<display-name>` with optional `xml:lang`; text kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayName {
    /// The label text.
    pub text: String,
    /// Language tag.
    pub lang: Option<String>,
}

impl DisplayName {
    /// A display name without a language tag.
    pub fn new(text: impl Into<String>) -> Self {
        DisplayName {
            text: text.into(),
            lang: None,
        }
    }
}

impl ResourceLists {
    /// Parses a resource-lists body.
    pub fn parse(body: &[u8]) -> Result<ResourceLists> {
        let root = xml::parse(body)?;
        if !root.is(NS_RESOURCE_LISTS, "resource-lists") {
            return Err(invalid(format!(
                "root element must be <resource-lists> in {NS_RESOURCE_LISTS}, not <{}>",
                snippet(&root.name)
            )));
        }
        let lists = root
            .children
            .iter()
            .filter(|c| c.is(NS_RESOURCE_LISTS, "list"))
            .map(parse_list)
            .collect::<Result<Vec<_>>>()?;
        Ok(ResourceLists { lists })
    }

    /// Writes the document.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        w.open("resource-lists", &[("xmlns", NS_RESOURCE_LISTS)]);
        for l in &self.lists {
            write_list(&mut w, l);
        }
        w.finish()
    }

    /// Every entry URI, depth first, in document order: what an RLS
    /// subscribes to. References are not followed.
    pub fn entry_uris(&self) -> Vec<&str> {
        fn walk<'a>(list: &'a List, out: &mut Vec<&'a str>) {
            for item in &list.items {
                match item {
                    ListItem::Entry(e) => out.push(&e.uri),
                    ListItem::List(l) => walk(l, out),
                    ListItem::EntryRef(_) | ListItem::External(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        for l in &self.lists {
            walk(l, &mut out);
        }
        out
    }
}

fn parse_display_name(el: &Element) -> Option<DisplayName> {
    el.child(NS_RESOURCE_LISTS, "display-name")
        .map(|d| DisplayName {
            text: d.text.clone(),
            lang: d.lang().map(str::to_owned),
        })
}

fn required(el: &Element, attr: &str) -> Result<String> {
    el.attr(attr)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("missing {attr} attribute on <{}>", el.name)))
}

fn parse_list(el: &Element) -> Result<List> {
    let mut list = List {
        name: el.attr("name").map(str::to_owned),
        display_name: parse_display_name(el),
        items: Vec::new(),
    };
    for c in &el.children {
        if c.ns != NS_RESOURCE_LISTS {
            continue;
        }
        let item = match c.name.as_str() {
            "entry" => ListItem::Entry(Entry {
                uri: required(c, "uri")?,
                display_name: parse_display_name(c),
            }),
            "list" => ListItem::List(parse_list(c)?),
            "entry-ref" => ListItem::EntryRef(Reference {
                target: required(c, "ref")?,
                display_name: parse_display_name(c),
            }),
            "external" => ListItem::External(Reference {
                target: required(c, "anchor")?,
                display_name: parse_display_name(c),
            }),
            _ => continue,
        };
        list.items.push(item);
    }
    Ok(list)
}

fn write_display_name(w: &mut Writer, d: &DisplayName) {
    match &d.lang {
        Some(lang) => w.leaf("display-name", &[("xml:lang", lang)], &d.text),
        None => w.leaf("display-name", &[], &d.text),
    }
}

fn write_labelled(w: &mut Writer, name: &'static str, attr: (&str, &str), d: Option<&DisplayName>) {
    match d {
        Some(d) => {
            w.open(name, &[attr]);
            write_display_name(w, d);
            w.close();
        }
        None => w.empty(name, &[attr]),
    }
}

fn write_list(w: &mut Writer, l: &List) {
    let attrs: Vec<(&str, &str)> = l.name.iter().map(|n| ("name", n.as_str())).collect();
    if l.display_name.is_none() && l.items.is_empty() {
        w.empty("list", &attrs);
        return;
    }
    w.open("list", &attrs);
    if let Some(d) = &l.display_name {
        write_display_name(w, d);
    }
    for item in &l.items {
        match item {
            ListItem::Entry(e) => {
                write_labelled(w, "entry", ("uri", &e.uri), e.display_name.as_ref())
            }
            ListItem::List(sub) => write_list(w, sub),
            ListItem::EntryRef(r) => {
                write_labelled(w, "entry-ref", ("ref", &r.target), r.display_name.as_ref());
            }
            ListItem::External(r) => {
                write_labelled(
                    w,
                    "external",
                    ("anchor", &r.target),
                    r.display_name.as_ref(),
                );
            }
        }
    }
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_without_uri_is_named() {
        let doc = br#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list><entry/></list></resource-lists>"#;
        assert_eq!(
            ResourceLists::parse(doc).unwrap_err().to_string(),
            "resource-lists: missing uri attribute on <entry>"
        );
    }

    #[test]
    fn wrong_root_is_named() {
        let e = ResourceLists::parse(b"<lists/>").unwrap_err().to_string();
        assert!(e.starts_with("resource-lists: root element must be"), "{e}");
    }

    #[test]
    fn entry_uris_walks_nested_lists_in_order() {
        let rl = ResourceLists {
            lists: vec![List {
                name: Some("a".into()),
                display_name: None,
                items: vec![
                    ListItem::Entry(Entry {
                        uri: "sip:1@x".into(),
                        display_name: None,
                    }),
                    ListItem::List(List {
                        items: vec![ListItem::Entry(Entry {
                            uri: "sip:2@x".into(),
                            display_name: Some(DisplayName::new("Two")),
                        })],
                        ..List::default()
                    }),
                    ListItem::EntryRef(Reference {
                        target: "users/x/index/~~/y".into(),
                        display_name: None,
                    }),
                ],
            }],
        };
        assert_eq!(rl.entry_uris(), vec!["sip:1@x", "sip:2@x"]);
        assert_eq!(ResourceLists::parse(rl.to_xml().as_bytes()).unwrap(), rl);
    }
}
