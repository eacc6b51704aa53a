//! Character classes and small scanners shared by the grammars (RFC 3261 §25.1).

/// `token` characters: alphanum and `-.!%*_+`'~`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True if `s` is a non-empty token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// `unreserved` = alphanum / mark.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Linear white space inside a header value (folding is already undone).
pub fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits `s` at top-level occurrences of `sep`: separators inside quoted strings
/// (with backslash escapes) or inside `<...>` do not count.
pub fn split_top_level(s: &str, sep: u8) -> Vec<&str> {
    SplitTopLevel::new(s, sep).collect()
}

/// [`split_top_level`] as an iterator, without collecting the parts.
#[derive(Debug, Clone)]
pub struct SplitTopLevel<'a> {
    s: &'a str,
    sep: u8,
    start: usize,
    i: usize,
    in_quotes: bool,
    in_angle: bool,
    done: bool,
}

impl<'a> SplitTopLevel<'a> {
    /// The parts of `s` between top-level `sep` bytes (at least one part).
    pub fn new(s: &'a str, sep: u8) -> SplitTopLevel<'a> {
        // Without the separator anywhere there is nothing to scan: one part.
        let whole = memchr::memchr(sep, s.as_bytes()).is_none();
        SplitTopLevel {
            s,
            sep,
            start: 0,
            i: if whole { s.len() } else { 0 },
            in_quotes: false,
            in_angle: false,
            done: false,
        }
    }
}

impl<'a> Iterator for SplitTopLevel<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let bytes = self.s.as_bytes();
        while self.i < bytes.len() {
            // Jump to the next byte that can matter in the current state;
            // the bytes skipped would have changed nothing.
            let rest = &bytes[self.i..];
            let found = if self.in_quotes {
                memchr::memchr2(b'\\', b'"', rest)
            } else if self.in_angle {
                memchr::memchr2(b'"', b'>', rest)
            } else {
                memchr::memchr3(self.sep, b'"', b'<', rest)
            };
            let Some(skip) = found else {
                self.i = bytes.len();
                break;
            };
            self.i += skip;
            let b = bytes[self.i];
            if self.in_quotes {
                if b == b'\\' {
                    self.i += 1;
                } else if b == b'"' {
                    self.in_quotes = false;
                }
            } else if b == b'"' {
                self.in_quotes = true;
            } else if b == b'<' {
                self.in_angle = true;
            } else if b == b'>' {
                self.in_angle = false;
            } else if b == self.sep && !self.in_angle {
                let part = &self.s[self.start..self.i];
                self.i += 1;
                self.start = self.i;
                return Some(part);
            }
            self.i += 1;
        }
        self.done = true;
        Some(&self.s[self.start.min(self.s.len())..])
    }
}

/// Removes the quotes and backslash escapes of a `quoted-string`; `None` if `s`
/// is not a well-formed quoted string.
pub fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr2(b'\\', b'"', inner.as_bytes()).is_none() {
        // Nothing escaped, no stray quote: the text between the quotes.
        return Some(inner.to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Quotes `s` as a `quoted-string` (RFC 3261 §25.1).
///
/// `"` and `\` are escaped, and so are the control characters that `qdtext`
/// does not admit (U+0000–U+001F except HTAB, and U+007F): they are written as
/// `quoted-pair`s, so [`unquote`] gives back exactly `s`. CR and LF cannot be
/// carried in a quoted string at all (`quoted-pair` excludes them, and they
/// would end the header line), so each is replaced by a space: a value built
/// from user input can never inject a header line.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\r' | '\n' => out.push(' '),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() && c != '\t' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True if a header value holds a control character that the grammar does
/// not allow there: anything below U+0020 except HTAB, unless it is escaped
/// as a `quoted-pair` inside a quoted string (RFC 3261 §25.1 admits
/// `"\" %x00-09 / %x0B-0C / %x0E-7F`, so RFC 4475's `intmeth` carries
/// `\<NUL>` in a display name). CR and LF are refused even when escaped.
pub fn has_bare_control(value: &str) -> bool {
    // Almost every value holds no control character at all (escaped or not):
    // one branch-free pass says so.
    if !value
        .bytes()
        .fold(false, |any, c| any | ((c < b' ') & (c != b'\t')))
    {
        return false;
    }
    let b = value.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_quotes && c == b'\\' {
            match b.get(i + 1) {
                Some(b'\r' | b'\n') => return true,
                Some(_) => i += 2,
                None => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_quotes = !in_quotes;
        } else if c < b' ' && c != b'\t' {
            return true;
        }
        i += 1;
    }
    false
}

/// Returns the value unquoted if it is a quoted string, else as it is.
pub fn unquote_or_raw(s: &str) -> String {
    unquote(s).unwrap_or_else(|| s.to_owned())
}

/// Length of the quoted string that starts at `s[0] == '"'`, including both
/// quotes; `None` if it is not terminated.
pub fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Percent-decodes `s`; `None` on a malformed escape. Decoded bytes that are not
/// UTF-8 are kept as Latin-1 code points so no input is lost.
pub fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits (`from_str_radix` alone would also take "+1").
            let h = bytes.get(i + 1..i + 3)?;
            if !h.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(h).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

/// Percent-encodes every byte of `s` for which `keep` is false.
pub fn escape(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        assert_eq!(
            split_top_level(r#"a, "b,c", <sip:x;y,z>"#, b','),
            vec!["a", r#" "b,c""#, " <sip:x;y,z>"]
        );
        assert_eq!(
            split_top_level(r#""a\"," , b"#, b','),
            vec![r#""a\"," "#, " b"]
        );
    }

    /// The splitter as it was written before it became an iterator.
    fn reference_split(s: &str, sep: u8) -> Vec<&str> {
        let bytes = s.as_bytes();
        let mut parts = Vec::new();
        let mut start = 0;
        let mut in_quotes = false;
        let mut in_angle = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if in_quotes {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == b'<' {
                in_angle = true;
            } else if b == b'>' {
                in_angle = false;
            } else if b == sep && !in_angle {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            i += 1;
        }
        parts.push(&s[start.min(s.len())..]);
        parts
    }

    #[test]
    fn iterator_splits_like_the_reference() {
        for s in [
            "",
            ",",
            r#"a\,b"#,
            r#"<a"b>,c"d>e",f>,g"#,
            r#""a<b",c>d,e"#,
            "a;b,c;d",
            "<a;b>;c",
            ",,",
            "a",
            "a,",
            ",a",
            "a, b ,c",
            r#""a,b""#,
            r#""a\",b" , c"#,
            r#""unterminated, still quoted"#,
            r#""ends in a backslash\"#,
            "<sip:a,b>,<sip:c>",
            "<unclosed, angle",
            "a>b,c<d,e>f,g",
            "é,ü\",\"ö,ß",
        ] {
            for sep in [b',', b';', b'"', b'<', b'>', b'\\', b' '] {
                assert_eq!(
                    SplitTopLevel::new(s, sep).collect::<Vec<_>>(),
                    reference_split(s, sep),
                    "{s:?} split at {}",
                    sep as char
                );
            }
        }
    }

    #[test]
    fn iterator_splits_random_text_like_the_reference() {
        let alphabet = ["a", ",", ";", "\"", "<", ">", "\\", " ", "\u{e9}"];
        let mut seed: u64 = 0x5eed;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            for _ in 0..(seed >> 59) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push_str(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            for sep in [b',', b';', b'"', b'<', b'\\'] {
                assert_eq!(
                    SplitTopLevel::new(&s, sep).collect::<Vec<_>>(),
                    reference_split(&s, sep),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn quoting_round_trips() {
        let s = r#"He said "hi" \o/"#;
        assert_eq!(unquote(&quote(s)).as_deref(), Some(s));
        assert_eq!(unquote("\"unterminated"), None);
        assert_eq!(quoted_len(br#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_len(br#""open"#), None);
    }

    #[test]
    fn quote_escapes_controls_and_neutralises_line_breaks() {
        let s = "BEL:\u{7} NUL:\0 DEL:\u{7f} tab:\t";
        let q = quote(s);
        assert_eq!(q, "\"BEL:\\\u{7} NUL:\\\0 DEL:\\\u{7f} tab:\t\"");
        assert!(!has_bare_control(&q));
        assert_eq!(unquote(&q).as_deref(), Some(s));
        let injected = quote("x\r\nVia: SIP/2.0/UDP evil");
        assert!(!injected.contains(['\r', '\n']));
        assert_eq!(injected, "\"x  Via: SIP/2.0/UDP evil\"");
    }

    #[test]
    fn bare_controls_are_found_outside_quoted_pairs() {
        assert!(!has_bare_control("plain value\twith tab"));
        assert!(has_bare_control("nul\0here"));
        assert!(has_bare_control("\"quoted but bare \0\""));
        assert!(!has_bare_control("\"escaped \\\0 and \\\u{7}\" <sip:a@b>"));
        assert!(has_bare_control(
            "\\\0 outside quotes a backslash escapes nothing"
        ));
        assert!(has_bare_control("\"escaped CR \\\r\""));
        assert!(!has_bare_control("\"unterminated \\"));
    }

    #[test]
    fn escapes_decode_and_encode() {
        assert_eq!(
            unescape("sips%3Auser%40example.com").as_deref(),
            Some("sips:user@example.com")
        );
        assert_eq!(unescape("null-%00-null").as_deref(), Some("null-\0-null"));
        assert_eq!(unescape("bad%2"), None);
        assert_eq!(unescape("bad%+1"), None, "a sign is not a hex digit");
        assert_eq!(unescape("bad%-1"), None);
        assert_eq!(unescape("bad%zz"), None);
        assert_eq!(escape("a:b@c", is_unreserved), "a%3Ab%40c");
    }
}
