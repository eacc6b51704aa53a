//! `;name=value` parameter lists, shared by URIs and header values.

use crate::lex;
use std::fmt;

/// One parameter. Names compare case-insensitively; the value is kept as
/// written (for header parameters a quoted value keeps its quotes so that it is
/// re-emitted exactly; use [`Params::get_unquoted`] to read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name as written.
    pub name: String,
    /// The value; `None` for a flag such as `lr`.
    pub value: Option<String>,
}

/// An ordered parameter list. Order is preserved for faithful re-serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// An empty list.
    pub fn new() -> Params {
        Params(Vec::new())
    }

    /// `Some(value)` if the parameter is present (`Some(None)` for a flag without value).
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// The value with surrounding quotes and escapes removed.
    pub fn get_unquoted(&self, name: &str) -> Option<String> {
        self.value(name).map(lex::unquote_or_raw)
    }

    /// True if the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter, replacing an existing one of the same name in place.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
        } else {
            self.0.push(Param {
                name: name.to_owned(),
                value,
            });
        }
    }

    /// Removes every parameter with this name.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// Parses header parameters: `s` is what follows the main value and must be
    /// empty or start (after optional white space) with `;`. White space around
    /// `;` and `=` is tolerated as RFC 3261 allows (SEMI, EQUAL).
    pub fn parse_header_params(s: &str) -> Result<Params, &'static str> {
        let b = s.as_bytes();
        let mut i = skip_ws(b, 0);
        let mut out = Vec::new();
        while i < b.len() {
            if b[i] != b';' {
                return Err("unexpected character before parameter");
            }
            i = skip_ws(b, i + 1);
            let start = i;
            while i < b.len() && lex::is_token_byte(b[i]) {
                i += 1;
            }
            if i == start {
                return Err("empty parameter name");
            }
            let name = &s[start..i];
            i = skip_ws(b, i);
            let mut value = None;
            if i < b.len() && b[i] == b'=' {
                i = skip_ws(b, i + 1);
                let vstart = i;
                if i < b.len() && b[i] == b'"' {
                    let len =
                        lex::quoted_len(&b[i..]).ok_or("unterminated quoted parameter value")?;
                    i += len;
                } else if i < b.len() && b[i] == b'[' {
                    while i < b.len() && b[i] != b']' {
                        i += 1;
                    }
                    if i == b.len() {
                        return Err("unterminated IPv6 reference in parameter");
                    }
                    i += 1;
                } else {
                    while i < b.len()
                        && (lex::is_token_byte(b[i])
                            || matches!(
                                b[i],
                                b':' | b'['
                                    | b']'
                                    | b'/'
                                    | b'@'
                                    | b'&'
                                    | b'$'
                                    | b'='
                                    | b'?'
                                    | b'('
                                    | b')'
                                    | b'<'
                                    | b'>'
                            ))
                    {
                        i += 1;
                    }
                }
                if i == vstart {
                    return Err("empty parameter value");
                }
                value = Some(s[vstart..i].to_owned());
                i = skip_ws(b, i);
            }
            out.push(Param {
                name: name.to_owned(),
                value,
            });
        }
        Ok(Params(out))
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && lex::is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Writes header parameters (`;name=value`, values as stored).
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            f.write_str(";")?;
            f.write_str(&p.name)?;
            if let Some(v) = &p.value {
                f.write_str("=")?;
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_quotes_and_whitespace() {
        let p = Params::parse_header_params(r#" ;  branch  =   z9hG4bK9ikj8 ;lr; +sip.instance="<urn:uuid:1;2>";received=[2001:db8::9]"#)
            .expect("valid");
        assert_eq!(p.value("BRANCH"), Some("z9hG4bK9ikj8"));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(
            p.get_unquoted("+sip.instance").as_deref(),
            Some("<urn:uuid:1;2>")
        );
        assert_eq!(p.value("received"), Some("[2001:db8::9]"));
    }

    #[test]
    fn rejects_empty_names_and_garbage() {
        assert!(Params::parse_header_params(";;").is_err());
        assert!(Params::parse_header_params(";a=").is_err());
        assert!(Params::parse_header_params(" x").is_err());
        assert!(Params::parse_header_params(r#";a="open"#).is_err());
    }

    #[test]
    fn set_replaces_in_place() {
        let mut p = Params::parse_header_params(";a=1;b=2").expect("valid");
        p.set("A", Some("3"));
        p.set("c", None);
        assert_eq!(p.to_string(), ";a=3;b=2;c");
        p.remove("b");
        assert_eq!(p.to_string(), ";a=3;c");
    }
}
