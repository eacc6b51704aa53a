//! The bits of MIME (RFC 2045/2046) the body formats share: parsing a
//! `Content-Type` value and a block of `Name: value` header lines.

/// A parsed `Content-Type` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    /// `type/subtype`, ASCII-lowercased.
    pub mime: String,
    /// Parameters in order, names lowercased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// Value of parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Whether `s` is a non-empty MIME/SIP token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Parses `type/subtype *(; name=value)`, tolerating whitespace around
/// separators. `None` if the media type itself is malformed; a malformed
/// parameter ends parameter parsing (what came before is kept).
pub(crate) fn parse_content_type(s: &str) -> Option<ContentType> {
    let s = s.trim();
    let (media, mut rest) = match s.find(';') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let (ty, sub) = media.trim().split_once('/')?;
    let (ty, sub) = (ty.trim(), sub.trim());
    if !is_token(ty) || !is_token(sub) {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(r) = rest.strip_prefix(';') else {
            break;
        };
        let r = r.trim_start();
        let Some(eq) = r.find('=') else {
            break;
        };
        let name = r[..eq].trim();
        if !is_token(name) {
            break;
        }
        let after = r[eq + 1..].trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            // quoted-string with backslash escapes
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(end) = end else {
                break;
            };
            (value, &q[end..])
        } else {
            let end = after
                .find(|c: char| c == ';' || c.is_whitespace())
                .unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        params.push((name.to_ascii_lowercase(), value));
        rest = remaining;
    }
    Some(ContentType {
        mime: format!("{}/{}", ty.to_ascii_lowercase(), sub.to_ascii_lowercase()),
        params,
    })
}

/// Writes `value` as a MIME quoted-string.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits `data` at the first empty line: `(header block, rest)`. Accepts
/// CRLF or bare LF line ends. `None` if there is no empty line.
pub(crate) fn split_headers(data: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(rest) = data.strip_prefix(b"\r\n") {
        return Some((&[], rest));
    }
    if let Some(rest) = data.strip_prefix(b"\n") {
        return Some((&[], rest));
    }
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\n', &data[i..]) {
        let nl = i + off;
        let next = &data[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some((&data[..nl + 1], &next[2..]));
        }
        if next.starts_with(b"\n") {
            return Some((&data[..nl + 1], &next[1..]));
        }
        i = nl + 1;
    }
    None
}

/// Splits a header block into logical lines, unfolding continuation lines
/// (starting with space or tab) and dropping line ends.
pub(crate) fn header_lines(block: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in block.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim_start());
            continue;
        }
        lines.push(line.to_owned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc4662_content_type() {
        let ct = parse_content_type(
            "multipart/related;type=\"application/rlmi+xml\" ; start=\"<nXYxAE@pres.vancouver.example.com>\";boundary=\"50UBfW7LSCVLtggUPe5z\"",
        )
        .unwrap();
        assert_eq!(ct.mime, "multipart/related");
        assert_eq!(ct.param("type"), Some("application/rlmi+xml"));
        assert_eq!(
            ct.param("start"),
            Some("<nXYxAE@pres.vancouver.example.com>")
        );
        assert_eq!(ct.param("boundary"), Some("50UBfW7LSCVLtggUPe5z"));
    }

    #[test]
    fn unquoted_and_escaped_params() {
        let ct = parse_content_type("Text/Plain; Charset=utf-8; x=\"a\\\"b\"").unwrap();
        assert_eq!(ct.mime, "text/plain");
        assert_eq!(ct.param("charset"), Some("utf-8"));
        assert_eq!(ct.param("x"), Some("a\"b"));
        assert_eq!(parse_content_type("nonsense"), None);
        assert_eq!(parse_content_type("a/b c"), None);
    }

    #[test]
    fn header_split_and_unfold() {
        let (h, b) = split_headers(b"A: 1\r\nB: 2\r\n x\r\n\r\nbody\r\n\r\n").unwrap();
        assert_eq!(b, b"body\r\n\r\n");
        let lines = header_lines(std::str::from_utf8(h).unwrap());
        assert_eq!(lines, vec!["A: 1".to_owned(), "B: 2 x".to_owned()]);
        assert_eq!(
            split_headers(b"\r\nbody").unwrap(),
            (&b""[..], &b"body"[..])
        );
        assert_eq!(split_headers(b"A: 1\n\nbody").unwrap().1, b"body");
        assert_eq!(split_headers(b"A: 1\r\n"), None);
    }
}
