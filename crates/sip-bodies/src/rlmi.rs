//! RLMI documents (RFC 4662 §5) and the `multipart/related` bodies that carry
//! them in resource-list NOTIFYs.
//!
//! A list NOTIFY is a `multipart/related` body (RFC 2387) whose root part is
//! an [`Rlmi`] document; each `<instance cid="...">` points to another part
//! (a PIDF document, or for a nested list another `multipart/related`) by its
//! `Content-ID`. [`build_rlmi_notify`] assembles such a body and returns the
//! `Content-Type` header value to send with it; [`parse_rlmi_notify`] takes
//! one apart (for the test user agent, and for interoperating with other
//! RLSs) and checks every `cid` resolves.
//!
//! Boundaries are derived from a hash of the content (no randomness, so
//! output is reproducible in tests) and checked against every part: a
//! boundary that occurs anywhere in the content is never used.

use crate::error::{Error, Format, Result, snippet};
use crate::limits;
use crate::mime;
use crate::xml::{self, Element, Writer, trim};

/// MIME type of RLMI documents.
pub const CONTENT_TYPE: &str = "application/rlmi+xml";
/// RLMI namespace (RFC 4662).
pub const NS_RLMI: &str = "urn:ietf:params:xml:ns:rlmi";

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::Rlmi, msg)
}

fn invalid_mp(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::Multipart, msg)
}

/// An RLMI `<list>` document: the state of one subscribed list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rlmi {
    /// The list's URI (`uri`, required).
    pub uri: String,
    /// `version`: increases by one per NOTIFY within a subscription, so the
    /// subscriber can detect loss.
    pub version: u32,
    /// `fullState`: true when every resource is listed, false for a delta.
    pub full_state: bool,
    /// `<name>`s of the list.
    pub names: Vec<Name>,
    /// `<resource>`s, one per list member mentioned.
    pub resources: Vec<Resource>,
}

/// A `<name>` with optional `xml:lang`; text kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name {
    /// The name text.
    pub text: String,
    /// Language tag.
    pub lang: Option<String>,
}

/// One list member (`<resource>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    /// The member's URI (required).
    pub uri: String,
    /// Display names.
    pub names: Vec<Name>,
    /// Back-end subscriptions for this member (usually one).
    pub instances: Vec<Instance>,
}

token_enum! {
    /// `state` of an [`Instance`]: the back-end subscription's state.
    pub enum InstanceState {
        /// `active`: state is being delivered.
        Active => "active",
        /// `pending`: awaiting authorisation.
        Pending => "pending",
        /// `terminated`: ended; see `reason`.
        Terminated => "terminated",
    }
}

/// An `<instance>`: one back-end subscription for a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `id` (required), stable across NOTIFYs.
    pub id: String,
    /// `state` (required).
    pub state: InstanceState,
    /// `reason` for a terminated instance (`rejected`, `noresource`, …).
    pub reason: Option<String>,
    /// `cid`: Content-ID (without `<>`) of the body part with this
    /// resource's state, present when this NOTIFY carries it.
    pub cid: Option<String>,
}

impl Rlmi {
    /// Parses an RLMI document.
    pub fn parse(body: &[u8]) -> Result<Rlmi> {
        let root = xml::parse(body)?;
        if !root.is(NS_RLMI, "list") {
            return Err(invalid(format!(
                "root element must be <list> in {NS_RLMI}, not <{}>",
                snippet(&root.name)
            )));
        }
        let uri = required(&root, "uri")?;
        let version = trim(&required(&root, "version")?)
            .parse::<u32>()
            .map_err(|_| invalid("version on <list> must be a number"))?;
        let full_state = match trim(&required(&root, "fullState")?) {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(invalid("fullState on <list> must be true or false")),
        };
        let mut rlmi = Rlmi {
            uri,
            version,
            full_state,
            names: parse_names(&root),
            resources: Vec::new(),
        };
        for r in root.children.iter().filter(|c| c.is(NS_RLMI, "resource")) {
            let mut resource = Resource {
                uri: required(r, "uri")?,
                names: parse_names(r),
                instances: Vec::new(),
            };
            for i in r.children.iter().filter(|c| c.is(NS_RLMI, "instance")) {
                let state = required(i, "state")?;
                let state = InstanceState::from_token(trim(&state)).ok_or_else(|| {
                    invalid("state on <instance> must be active, pending or terminated")
                })?;
                resource.instances.push(Instance {
                    id: required(i, "id")?,
                    state,
                    reason: i.attr("reason").map(str::to_owned),
                    cid: i.attr("cid").map(str::to_owned),
                });
            }
            rlmi.resources.push(resource);
        }
        Ok(rlmi)
    }

    /// Writes the document.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        let version = self.version.to_string();
        w.open(
            "list",
            &[
                ("xmlns", NS_RLMI),
                ("uri", &self.uri),
                ("version", &version),
                ("fullState", if self.full_state { "true" } else { "false" }),
            ],
        );
        write_names(&mut w, &self.names);
        for r in &self.resources {
            if r.names.is_empty() && r.instances.is_empty() {
                w.empty("resource", &[("uri", &r.uri)]);
                continue;
            }
            w.open("resource", &[("uri", &r.uri)]);
            write_names(&mut w, &r.names);
            for i in &r.instances {
                let mut attrs = vec![("id", i.id.as_str()), ("state", i.state.as_str())];
                if let Some(reason) = &i.reason {
                    attrs.push(("reason", reason));
                }
                if let Some(cid) = &i.cid {
                    attrs.push(("cid", cid));
                }
                w.empty("instance", &attrs);
            }
            w.close();
        }
        w.finish()
    }
}

fn required(el: &Element, attr: &str) -> Result<String> {
    el.attr(attr)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("missing {attr} attribute on <{}>", el.name)))
}

fn parse_names(el: &Element) -> Vec<Name> {
    el.children
        .iter()
        .filter(|c| c.is(NS_RLMI, "name"))
        .map(|c| Name {
            text: c.text.clone(),
            lang: c.lang().map(str::to_owned),
        })
        .collect()
}

fn write_names(w: &mut Writer, names: &[Name]) {
    for n in names {
        match &n.lang {
            Some(lang) => w.leaf("name", &[("xml:lang", lang)], &n.text),
            None => w.leaf("name", &[], &n.text),
        }
    }
}

/// One body part of a `multipart/related` body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BodyPart {
    /// Content-ID without the angle brackets (`abc@host`), as RLMI `cid`
    /// attributes and the `start` parameter refer to it.
    pub content_id: String,
    /// Full Content-Type value, parameters included
    /// (`application/pidf+xml;charset="UTF-8"`).
    pub content_type: String,
    /// The part's bytes, carried as `binary`.
    pub body: Vec<u8>,
}

/// A finished multipart body and the `Content-Type` header value that must
/// accompany it (it names the boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartBody {
    /// Value for the SIP `Content-Type` header.
    pub content_type: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// A parsed `multipart/related` body: the root part (named by `start`, or
/// the first part) and the others in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRelated {
    /// The root part.
    pub root: BodyPart,
    /// All other parts, in body order.
    pub parts: Vec<BodyPart>,
}

impl MultipartRelated {
    /// The part with Content-ID `cid` (without `<>`), root included.
    pub fn part(&self, cid: &str) -> Option<&BodyPart> {
        std::iter::once(&self.root)
            .chain(&self.parts)
            .find(|p| p.content_id == cid)
    }
}

/// Characters allowed in a Content-ID or a Content-Type we write: printable
/// ASCII without the delimiters that would break the header or the
/// `start="<...>"` parameter.
fn header_safe(s: &str, extra_forbidden: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| (' '..='~').contains(&c) && !extra_forbidden.contains(&c))
}

/// FNV-1a, enough to spread boundaries; not a security measure (collision
/// with content is checked explicitly).
fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Assembles a `multipart/related` body with `root` first.
///
/// Fails only if a Content-ID or Content-Type cannot be written into a
/// header (control characters, non-ASCII, or `<>"` in a Content-ID), which
/// would otherwise corrupt the body or break the `cid` references.
pub fn build_multipart_related(root: &BodyPart, parts: &[BodyPart]) -> Result<MultipartBody> {
    let all: Vec<&BodyPart> = std::iter::once(root).chain(parts).collect();
    for p in &all {
        if !header_safe(&p.content_id, &['<', '>', '"', ' ']) {
            return Err(invalid_mp(format!(
                "Content-ID {} cannot be written",
                snippet(&p.content_id)
            )));
        }
        if !header_safe(&p.content_type, &[]) || mime::parse_content_type(&p.content_type).is_none()
        {
            return Err(invalid_mp(format!(
                "Content-Type {} cannot be written",
                snippet(&p.content_type)
            )));
        }
    }
    let mut h = 0xcbf2_9ce4_8422_2325;
    for p in &all {
        h = fnv1a(h, p.content_id.as_bytes());
        h = fnv1a(h, p.content_type.as_bytes());
        h = fnv1a(h, &p.body);
    }
    let collides = |b: &str| {
        let finder = memchr::memmem::Finder::new(b.as_bytes());
        all.iter().any(|p| {
            finder.find(&p.body).is_some() || p.content_id.contains(b) || p.content_type.contains(b)
        })
    };
    // Each part of length n contains at most n distinct candidates, so this
    // terminates after at most (total length + 1) attempts.
    let mut counter: u64 = 0;
    let boundary = loop {
        let candidate = format!("sb-{:016x}{:x}", fnv1a(h, &counter.to_le_bytes()), counter);
        if !collides(&candidate) {
            break candidate;
        }
        counter += 1;
    };

    let mut body = Vec::new();
    for p in &all {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <");
        body.extend_from_slice(p.content_id.as_bytes());
        body.extend_from_slice(b">\r\nContent-Type: ");
        body.extend_from_slice(p.content_type.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&p.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");

    let root_type = mime::parse_content_type(&root.content_type)
        .map(|ct| ct.mime)
        .unwrap_or_default();
    let content_type = format!(
        "multipart/related;type={};start={};boundary={}",
        mime::quote(&root_type),
        mime::quote(&format!("<{}>", root.content_id)),
        mime::quote(&boundary)
    );
    Ok(MultipartBody { content_type, body })
}

/// Builds a resource-list NOTIFY body: `rlmi` as the root part (Content-ID
/// `rlmi_cid`) followed by `parts`, each of which the RLMI document should
/// reference by `cid`.
pub fn build_rlmi_notify(rlmi: &Rlmi, rlmi_cid: &str, parts: &[BodyPart]) -> Result<MultipartBody> {
    let root = BodyPart {
        content_id: rlmi_cid.to_owned(),
        content_type: format!("{CONTENT_TYPE};charset=\"UTF-8\""),
        body: rlmi.to_xml().into_bytes(),
    };
    build_multipart_related(&root, parts)
}

fn strip_angles(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(s)
}

/// Parses a `multipart/related` body given its `Content-Type` header value.
///
/// Every part must have a Content-ID and a Content-Type (RFC 4662 requires
/// both); transfer encodings other than binary/8bit/7bit are rejected, as SIP
/// carries binary. Limits: [`limits::MAX_MULTIPART_BYTES`],
/// [`limits::MAX_MULTIPART_PARTS`], [`limits::MAX_HEADERS`] per part.
pub fn parse_multipart_related(content_type: &str, body: &[u8]) -> Result<MultipartRelated> {
    if body.len() > limits::MAX_MULTIPART_BYTES {
        return Err(invalid_mp(format!(
            "body larger than {} bytes",
            limits::MAX_MULTIPART_BYTES
        )));
    }
    let ct = mime::parse_content_type(content_type)
        .ok_or_else(|| invalid_mp("malformed Content-Type"))?;
    if ct.mime != "multipart/related" {
        return Err(invalid_mp(format!(
            "Content-Type must be multipart/related, not {}",
            snippet(&ct.mime)
        )));
    }
    let boundary = ct
        .param("boundary")
        .ok_or_else(|| invalid_mp("missing boundary parameter"))?;
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(invalid_mp("boundary must be 1 to 70 characters"));
    }
    let raw = split_parts(body, boundary.as_bytes())?;
    let mut parsed = Vec::with_capacity(raw.len());
    for (n, part) in raw.iter().enumerate() {
        parsed.push(parse_part(n + 1, part)?);
    }
    let root_index = match ct.param("start") {
        Some(start) => {
            let cid = strip_angles(start);
            parsed
                .iter()
                .position(|p| p.content_id == cid)
                .ok_or_else(|| {
                    invalid_mp(format!("no part has the start Content-ID {}", snippet(cid)))
                })?
        }
        None => 0,
    };
    if parsed.is_empty() {
        return Err(invalid_mp("no body parts"));
    }
    let root = parsed.remove(root_index);
    Ok(MultipartRelated {
        root,
        parts: parsed,
    })
}

/// Finds the parts between delimiter lines. A delimiter is `--boundary` at
/// the start of the body or after a line end; the closing one has `--`
/// appended. Text before the first delimiter (preamble) and after the last
/// (epilogue) is ignored.
fn split_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Result<Vec<&'a [u8]>> {
    let mut delim = Vec::with_capacity(boundary.len() + 3);
    delim.extend_from_slice(b"\n--");
    delim.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delim);
    // Position just after the first delimiter.
    let mut pos = if body.starts_with(&delim[1..]) {
        delim.len() - 1
    } else {
        match finder.find(body) {
            Some(i) => i + delim.len(),
            None => return Err(invalid_mp("boundary not found in body")),
        }
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the line end that ends the delimiter line.
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let after = &rest[pad..];
        let start = if after.starts_with(b"\r\n") {
            pos + pad + 2
        } else if after.starts_with(b"\n") {
            pos + pad + 1
        } else {
            return Err(invalid_mp("malformed boundary line"));
        };
        let Some(next) = finder.find(&body[start - 1..]) else {
            return Err(invalid_mp("missing closing boundary"));
        };
        // `start - 1` is the '\n' ending the delimiter line, so an empty part
        // whose next delimiter immediately follows is found too.
        let end_nl = start - 1 + next;
        if parts.len() == limits::MAX_MULTIPART_PARTS {
            return Err(invalid_mp(format!(
                "more than {} parts",
                limits::MAX_MULTIPART_PARTS
            )));
        }
        let mut end = end_nl;
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
        parts.push(&body[start..end.max(start)]);
        pos = end_nl + delim.len();
    }
}

fn parse_part(n: usize, part: &[u8]) -> Result<BodyPart> {
    let (head, body) = mime::split_headers(part)
        .ok_or_else(|| invalid_mp(format!("part {n} has no header end")))?;
    let head = std::str::from_utf8(head)
        .map_err(|_| invalid_mp(format!("part {n} headers are not UTF-8")))?;
    let lines = mime::header_lines(head);
    if lines.len() > limits::MAX_HEADERS {
        return Err(invalid_mp(format!(
            "part {n} has more than {} headers",
            limits::MAX_HEADERS
        )));
    }
    let mut content_id = None;
    let mut content_type = None;
    for line in &lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid_mp(format!("part {n} has a malformed header line")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-id" => content_id = Some(strip_angles(value).to_owned()),
            "content-type" => content_type = Some(value.to_owned()),
            "content-transfer-encoding" => {
                let v = value.to_ascii_lowercase();
                if !matches!(v.as_str(), "binary" | "8bit" | "7bit") {
                    return Err(invalid_mp(format!(
                        "part {n} has unsupported Content-Transfer-Encoding {}",
                        snippet(value)
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(BodyPart {
        content_id: content_id.ok_or_else(|| invalid_mp(format!("part {n} has no Content-ID")))?,
        content_type: content_type
            .ok_or_else(|| invalid_mp(format!("part {n} has no Content-Type")))?,
        body: body.to_vec(),
    })
}

/// A parsed resource-list NOTIFY body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlmiNotify {
    /// The RLMI root document.
    pub rlmi: Rlmi,
    /// Content-ID of the RLMI part.
    pub rlmi_cid: String,
    /// The other parts (resource states), in body order.
    pub parts: Vec<BodyPart>,
}

impl RlmiNotify {
    /// The part an instance's `cid` refers to.
    pub fn part(&self, cid: &str) -> Option<&BodyPart> {
        self.parts.iter().find(|p| p.content_id == cid)
    }
}

/// Parses a resource-list NOTIFY body: a `multipart/related` whose root is
/// `application/rlmi+xml`, and every `cid` in it names a part of the body.
pub fn parse_rlmi_notify(content_type: &str, body: &[u8]) -> Result<RlmiNotify> {
    let mp = parse_multipart_related(content_type, body)?;
    let root_type = mime::parse_content_type(&mp.root.content_type).map(|c| c.mime);
    if root_type.as_deref() != Some(CONTENT_TYPE) {
        return Err(invalid_mp(format!("root part must be {CONTENT_TYPE}")));
    }
    let rlmi = Rlmi::parse(&mp.root.body)?;
    for r in &rlmi.resources {
        for i in &r.instances {
            if let Some(cid) = &i.cid
                && !mp.parts.iter().any(|p| &p.content_id == cid)
            {
                return Err(invalid(format!(
                    "instance {} refers to missing part {}",
                    snippet(&i.id),
                    snippet(cid)
                )));
            }
        }
    }
    Ok(RlmiNotify {
        rlmi,
        rlmi_cid: mp.root.content_id,
        parts: mp.parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(cid: &str, body: &[u8]) -> BodyPart {
        BodyPart {
            content_id: cid.into(),
            content_type: "application/pidf+xml;charset=\"UTF-8\"".into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn boundary_never_occurs_in_content() {
        // Build once, then put the chosen boundary inside a part: the next
        // build must pick another one.
        let root = part("root@x", b"<list/>");
        let first = build_multipart_related(&root, &[part("a@x", b"hello")]).unwrap();
        let ct = mime::parse_content_type(&first.content_type).unwrap();
        let b1 = ct.param("boundary").unwrap().to_owned();
        let evil = format!("\r\n--{b1}--\r\n");
        let second = build_multipart_related(&root, &[part("a@x", evil.as_bytes())]).unwrap();
        let b2 = mime::parse_content_type(&second.content_type)
            .unwrap()
            .param("boundary")
            .unwrap()
            .to_owned();
        assert_ne!(b1, b2);
        let parsed = parse_multipart_related(&second.content_type, &second.body).unwrap();
        assert_eq!(parsed.parts[0].body, evil.as_bytes());
    }

    #[test]
    fn forbidden_content_id_is_refused() {
        let root = part("ro\"ot", b"x");
        assert!(build_multipart_related(&root, &[]).is_err());
        let root = part("root", b"x");
        assert!(build_multipart_related(&root, &[part("a\r\nX: y", b"")]).is_err());
    }

    #[test]
    fn empty_and_binary_parts_survive() {
        let root = part("r@x", b"");
        let parts = [part("a@x", b"\r\n"), part("b@x", &[0, 255, 13, 10, 45, 45])];
        let mp = build_multipart_related(&root, &parts).unwrap();
        let parsed = parse_multipart_related(&mp.content_type, &mp.body).unwrap();
        assert_eq!(parsed.root, root);
        assert_eq!(parsed.parts, parts);
    }

    #[test]
    fn errors_are_named() {
        let e = |ct: &str, b: &[u8]| parse_multipart_related(ct, b).unwrap_err().to_string();
        assert_eq!(
            e("text/plain", b""),
            "multipart: Content-Type must be multipart/related, not text/plain"
        );
        assert_eq!(
            e("multipart/related", b""),
            "multipart: missing boundary parameter"
        );
        assert_eq!(
            e("multipart/related;boundary=x", b"hello"),
            "multipart: boundary not found in body"
        );
        assert_eq!(
            e(
                "multipart/related;boundary=x",
                b"--x\r\nContent-Type: a/b\r\n\r\nbody"
            ),
            "multipart: missing closing boundary"
        );
        assert_eq!(
            e(
                "multipart/related;boundary=x",
                b"--x\r\nContent-Type: a/b\r\n\r\nbody\r\n--x--"
            ),
            "multipart: part 1 has no Content-ID"
        );
        assert_eq!(
            e(
                "multipart/related;boundary=x;start=\"<q>\"",
                b"--x\r\nContent-ID: <p>\r\nContent-Type: a/b\r\n\r\nbody\r\n--x--"
            ),
            "multipart: no part has the start Content-ID q"
        );
    }

    #[test]
    fn dangling_cid_is_reported() {
        let rlmi = Rlmi {
            uri: "sip:list@x".into(),
            version: 0,
            full_state: true,
            names: vec![],
            resources: vec![Resource {
                uri: "sip:a@x".into(),
                names: vec![],
                instances: vec![Instance {
                    id: "i1".into(),
                    state: InstanceState::Active,
                    reason: None,
                    cid: Some("nothere@x".into()),
                }],
            }],
        };
        let mp = build_rlmi_notify(&rlmi, "rlmi@x", &[]).unwrap();
        assert_eq!(
            parse_rlmi_notify(&mp.content_type, &mp.body)
                .unwrap_err()
                .to_string(),
            "rlmi: instance i1 refers to missing part nothere@x"
        );
    }

    #[test]
    fn bad_attributes_are_named() {
        let doc = br#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@x" version="a" fullState="true"/>"#;
        assert_eq!(
            Rlmi::parse(doc).unwrap_err().to_string(),
            "rlmi: version on <list> must be a number"
        );
        let doc = br#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@x" version="1"/>"#;
        assert_eq!(
            Rlmi::parse(doc).unwrap_err().to_string(),
            "rlmi: missing fullState attribute on <list>"
        );
        let doc = br#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@x" version="1" fullState="true"><resource uri="sip:a"><instance id="x" state="gone"/></resource></list>"#;
        assert_eq!(
            Rlmi::parse(doc).unwrap_err().to_string(),
            "rlmi: state on <instance> must be active, pending or terminated"
        );
    }
}
