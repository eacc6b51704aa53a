//! Common Presence and Instant Messaging message format, `message/cpim`
//! (RFC 3862).
//!
//! The conference focus wraps each chat message it fans out in CPIM so every
//! participant sees who really wrote it (the SIP `From` is the focus). A
//! CPIM body is: message headers (`From`, `To`, `cc`, `DateTime`, `Subject`,
//! `NS`, `Require`, extension headers), an empty line, the encapsulated MIME
//! headers (`Content-Type`, …), an empty line, and the content. The content
//! is bytes: it need not be UTF-8. Headers must be UTF-8.
//!
//! Parsing accepts CRLF or bare LF line ends and matches the standard header
//! names case-insensitively; values are trimmed. Generation writes CRLF and
//! always quotes display names, escaping per RFC 3862 §3.2. Characters a
//! header line cannot carry are removed when generating: CR and LF from every
//! value, and `<` `>` from URIs, so user text can never inject a header.

use crate::error::{Error, Format, Result, snippet};
use crate::limits;
use crate::mime;

/// MIME type of CPIM bodies.
pub const CONTENT_TYPE: &str = "message/cpim";

fn invalid(msg: impl AsRef<str>) -> Error {
    Error::invalid(Format::Cpim, msg)
}

/// A `message/cpim` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cpim {
    /// `From`: the real sender.
    pub from: Option<Address>,
    /// `To` headers (one per recipient; a conference message has the
    /// conference or the recipient).
    pub to: Vec<Address>,
    /// `cc` headers.
    pub cc: Vec<Address>,
    /// `DateTime`: RFC 3339 time the sender sent it, kept as text.
    pub date_time: Option<String>,
    /// `Subject` headers, possibly one per language.
    pub subjects: Vec<Subject>,
    /// `NS` declarations of extension header prefixes.
    pub namespaces: Vec<Namespace>,
    /// `Require`: extension header names the recipient must understand.
    pub require: Vec<String>,
    /// Other headers (`MyFeatures.WackyMessageOption: ...`), in order.
    pub extensions: Vec<Header>,
    /// Encapsulated MIME headers (`Content-Type`, `Content-ID`, …) in order.
    pub content_headers: Vec<(String, String)>,
    /// The content, bytes as sent.
    pub body: Vec<u8>,
}

/// A `From` / `To` / `cc` value: `"Display Name" <uri>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// The formal name, if any.
    pub display_name: Option<String>,
    /// The URI between angle brackets.
    pub uri: String,
}

impl Address {
    /// An address with a display name.
    pub fn new(display_name: Option<&str>, uri: impl Into<String>) -> Self {
        Address {
            display_name: display_name.map(str::to_owned),
            uri: uri.into(),
        }
    }
}

/// A `Subject` header with its optional `lang` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject {
    /// Language tag from `;lang=`.
    pub lang: Option<String>,
    /// The subject text.
    pub text: String,
}

/// An `NS` header: binds `prefix` (or the default, when `None`) to `uri`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace {
    /// The header-name prefix being declared.
    pub prefix: Option<String>,
    /// The namespace URI.
    pub uri: String,
}

/// Any other message header, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Name, with its `Prefix.` if it has one. Headers whose name is not a
    /// valid CPIM header name are skipped when generating.
    pub name: String,
    /// Parameters written `Name:;p=v SP value`, values unquoted.
    pub params: Vec<(String, String)>,
    /// The value.
    pub value: String,
}

impl Cpim {
    /// Value of the first encapsulated header `name` (case-insensitive).
    pub fn content_header(&self, name: &str) -> Option<&str> {
        self.content_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The encapsulated `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.content_header("Content-Type")
    }

    /// Parses a CPIM body.
    pub fn parse(body: &[u8]) -> Result<Cpim> {
        if body.len() > limits::MAX_CPIM_BYTES {
            return Err(invalid(format!(
                "message larger than {} bytes",
                limits::MAX_CPIM_BYTES
            )));
        }
        let (head, rest) = mime::split_headers(body)
            .ok_or_else(|| invalid("missing empty line after message headers"))?;
        let (content_head, content) = mime::split_headers(rest)
            .ok_or_else(|| invalid("missing empty line after content headers"))?;
        let head = std::str::from_utf8(head).map_err(|_| invalid("headers are not UTF-8"))?;
        let content_head = std::str::from_utf8(content_head)
            .map_err(|_| invalid("content headers are not UTF-8"))?;

        let mut msg = Cpim {
            body: content.to_vec(),
            ..Cpim::default()
        };
        let lines: Vec<&str> = head
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        if lines.len() > limits::MAX_HEADERS {
            return Err(invalid(format!(
                "more than {} headers",
                limits::MAX_HEADERS
            )));
        }
        for (n, line) in lines.iter().enumerate() {
            parse_header(&mut msg, n + 1, line)?;
        }

        let content_lines = mime::header_lines(content_head);
        if content_lines.len() > limits::MAX_HEADERS {
            return Err(invalid(format!(
                "more than {} content headers",
                limits::MAX_HEADERS
            )));
        }
        for line in content_lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("malformed content header {}", snippet(&line))))?;
            let name = name.trim();
            if !mime::is_token(name) {
                return Err(invalid(format!(
                    "malformed content header {}",
                    snippet(&line)
                )));
            }
            msg.content_headers
                .push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(msg)
    }

    /// Writes the message with CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut line = |name: &str, value: &str| {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&one_line(value));
            out.push_str("\r\n");
        };
        if let Some(f) = &self.from {
            line("From", &format_address(f));
        }
        for t in &self.to {
            line("To", &format_address(t));
        }
        for c in &self.cc {
            line("cc", &format_address(c));
        }
        if let Some(d) = &self.date_time {
            line("DateTime", d);
        }
        for ns in &self.namespaces {
            let uri = uri_safe(&ns.uri);
            match ns.prefix.as_deref().filter(|p| is_name(p)) {
                Some(p) => line("NS", &format!("{p} <{uri}>")),
                None => line("NS", &format!("<{uri}>")),
            }
        }
        let require: Vec<&str> = self
            .require
            .iter()
            .map(String::as_str)
            .filter(|r| is_header_name(r))
            .collect();
        if !require.is_empty() {
            line("Require", &require.join(","));
        }
        let out_params =
            |name: &str, params: &[(String, String)], value: &str, out: &mut String| {
                out.push_str(name);
                out.push(':');
                for (k, v) in params.iter().filter(|(k, _)| is_name(k)) {
                    out.push(';');
                    out.push_str(k);
                    out.push('=');
                    if !v.is_empty() && v.chars().all(|c| is_name_char(c) || c == '.') {
                        out.push_str(v);
                    } else {
                        out.push_str(&quote_string(v));
                    }
                }
                out.push(' ');
                out.push_str(&one_line(value));
                out.push_str("\r\n");
            };
        for s in &self.subjects {
            let params: Vec<(String, String)> = s
                .lang
                .iter()
                .map(|l| ("lang".to_owned(), l.clone()))
                .collect();
            out_params("Subject", &params, &s.text, &mut out);
        }
        for h in self.extensions.iter().filter(|h| is_header_name(&h.name)) {
            out_params(&h.name, &h.params, &h.value, &mut out);
        }
        out.push_str("\r\n");
        for (name, value) in self
            .content_headers
            .iter()
            .filter(|(n, _)| mime::is_token(n))
        {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&one_line(value));
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// `Name-char` of RFC 3862 §3.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-^_`|~".contains(c)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_name_char)
}

/// `[Name-prefix "."] Name`.
fn is_header_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((p, n)) => is_name(p) && is_name(n),
        None => is_name(s),
    }
}

/// Removes what a header line cannot carry and trims, so the value parses
/// back as written.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn uri_safe(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '<' | '>' | '\r' | '\n'))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// CPIM `String`: double quotes with the escapes of RFC 3862 §3.2.
fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads a CPIM `String` at the start of `s` (which begins with `"`):
/// returns the unescaped text and the rest after the closing quote.
fn unquote_string(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    chars.next(); // opening quote
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'u' => {
                        let mut v = 0u32;
                        for _ in 0..4 {
                            let (_, h) = chars.next()?;
                            v = v * 16 + h.to_digit(16)?;
                        }
                        out.push(char::from_u32(v)?);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn format_address(a: &Address) -> String {
    let uri = uri_safe(&a.uri);
    match &a.display_name {
        Some(d) => format!("{} <{uri}>", quote_string(d)),
        None => format!("<{uri}>"),
    }
}

fn parse_address(value: &str, header: &str) -> Result<Address> {
    let bad = || invalid(format!("malformed {header} header"));
    let value = value.trim();
    let (display_name, rest) = if value.starts_with('"') {
        let (name, rest) = unquote_string(value).ok_or_else(bad)?;
        (Some(name), rest.trim_start())
    } else {
        let lt = value.find('<').ok_or_else(bad)?;
        let name = value[..lt].trim();
        ((!name.is_empty()).then(|| name.to_owned()), &value[lt..])
    };
    let inner = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or_else(bad)?;
    if inner.contains(['<', '>']) {
        return Err(bad());
    }
    Ok(Address {
        display_name,
        uri: inner.trim().to_owned(),
    })
}

/// Splits `;p=v;q="w x" value` into parameters and the value.
fn parse_params(mut s: &str, header: &str) -> Result<(Vec<(String, String)>, String)> {
    let bad = || invalid(format!("malformed parameter in {} header", snippet(header)));
    let mut params = Vec::new();
    while let Some(r) = s.strip_prefix(';') {
        let eq = r.find('=').ok_or_else(bad)?;
        let name = &r[..eq];
        if !is_name(name) {
            return Err(bad());
        }
        let after = &r[eq + 1..];
        let (value, rest) = if after.starts_with('"') {
            unquote_string(after).ok_or_else(bad)?
        } else {
            let end = after.find([';', ' ', '\t']).unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        params.push((name.to_owned(), value));
        s = rest;
    }
    Ok((params, s.trim().to_owned()))
}

fn parse_header(msg: &mut Cpim, n: usize, line: &str) -> Result<()> {
    let colon = line
        .find(':')
        .ok_or_else(|| invalid(format!("header line {n} has no colon")))?;
    let name = &line[..colon];
    if !is_header_name(name) {
        return Err(invalid(format!(
            "header line {n} has a malformed name {}",
            snippet(name)
        )));
    }
    let (params, value) = parse_params(&line[colon + 1..], name)?;
    match name.to_ascii_lowercase().as_str() {
        "from" => {
            if msg.from.is_some() {
                return Err(invalid("more than one From header"));
            }
            msg.from = Some(parse_address(&value, "From")?);
        }
        "to" => msg.to.push(parse_address(&value, "To")?),
        "cc" => msg.cc.push(parse_address(&value, "cc")?),
        "datetime" => msg.date_time = Some(value),
        "subject" => {
            let lang = params
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("lang"))
                .map(|(_, v)| v);
            msg.subjects.push(Subject { lang, text: value });
        }
        "ns" => {
            let (prefix, uri) = match value.find('<') {
                Some(lt) => {
                    let p = value[..lt].trim();
                    ((!p.is_empty()).then(|| p.to_owned()), &value[lt..])
                }
                None => return Err(invalid("malformed NS header")),
            };
            let uri = uri
                .strip_prefix('<')
                .and_then(|u| u.strip_suffix('>'))
                .ok_or_else(|| invalid("malformed NS header"))?;
            msg.namespaces.push(Namespace {
                prefix,
                uri: uri.trim().to_owned(),
            });
        }
        "require" => msg.require.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        _ => msg.extensions.push(Header {
            name: name.to_owned(),
            params,
            value,
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_with_quotes_and_escapes_round_trip() {
        let msg = Cpim {
            from: Some(Address::new(
                Some("O'Brien, \"Pat\" \\ \u{1}\t\u{e9}"),
                "sip:pat@example.com",
            )),
            to: vec![Address::new(None, "sip:chat@conf.example.com")],
            content_headers: vec![("Content-Type".into(), "text/plain;charset=UTF-8".into())],
            body: b"hi".to_vec(),
            ..Cpim::default()
        };
        let bytes = msg.to_bytes();
        assert!(bytes.starts_with(
            b"From: \"O'Brien, \\\"Pat\\\" \\\\ \\u0001\\t\xc3\xa9\" <sip:pat@example.com>\r\n"
        ));
        assert_eq!(Cpim::parse(&bytes).unwrap(), msg);
    }

    #[test]
    fn header_injection_is_impossible() {
        let msg = Cpim {
            from: Some(Address::new(
                Some("a\r\nTo: <sip:evil@x>"),
                "sip:a@x>\r\nX: y",
            )),
            subjects: vec![Subject {
                lang: None,
                text: "hello\r\n\r\nbody".into(),
            }],
            ..Cpim::default()
        };
        let parsed = Cpim::parse(&msg.to_bytes()).unwrap();
        assert!(parsed.to.is_empty());
        assert!(parsed.extensions.is_empty());
        assert_eq!(parsed.from.unwrap().uri, "sip:a@xX: y");
        assert_eq!(parsed.subjects[0].text, "hello    body");
    }

    #[test]
    fn errors_are_named() {
        let e = |b: &[u8]| Cpim::parse(b).unwrap_err().to_string();
        assert_eq!(
            e(b"From: <sip:a@b>\r\n"),
            "cpim: missing empty line after message headers"
        );
        assert_eq!(
            e(b"From: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n"),
            "cpim: missing empty line after content headers"
        );
        assert_eq!(e(b"Hello\r\n\r\n\r\n"), "cpim: header line 1 has no colon");
        assert_eq!(
            e(b"From sip:a@b\r\n\r\n\r\n"),
            "cpim: header line 1 has a malformed name From sip"
        );
        assert_eq!(
            e(b"From: sip:a@b\r\n\r\n\r\n"),
            "cpim: malformed From header"
        );
        assert_eq!(
            e(b"To: <a>\r\nFrom: <b>\r\nFrom: <c>\r\n\r\n\r\n"),
            "cpim: more than one From header"
        );
        assert_eq!(
            e(b"From: <b>\r\n\r\nno colon here\r\n\r\n"),
            "cpim: malformed content header no colon here"
        );
    }

    #[test]
    fn body_bytes_are_kept_verbatim() {
        let raw = b"From: <sip:a@b>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n\xff\x00\r\n\r\nmore";
        let msg = Cpim::parse(raw).unwrap();
        assert_eq!(msg.body, b"\xff\x00\r\n\r\nmore");
        assert_eq!(msg.content_type(), Some("application/octet-stream"));
    }

    #[test]
    fn bare_lf_is_accepted() {
        let msg =
            Cpim::parse(b"From: Alice <sip:a@b>\nTo: <sip:c@d>\n\nContent-Type: text/plain\n\nhi")
                .unwrap();
        assert_eq!(msg.from.unwrap().display_name.as_deref(), Some("Alice"));
        assert_eq!(msg.body, b"hi");
    }

    #[test]
    fn no_content_headers() {
        let msg = Cpim {
            from: Some(Address::new(None, "sip:a@b")),
            body: b"Content-Type: not a header".to_vec(),
            ..Cpim::default()
        };
        assert_eq!(Cpim::parse(&msg.to_bytes()).unwrap(), msg);
    }
}
