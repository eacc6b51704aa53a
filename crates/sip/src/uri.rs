//! `sip:`, `sips:` and `tel:` URIs (RFC 3261 §19.1, RFC 3966), and any other
//! absolute URI kept opaque so that it can be carried and answered with 416.
//!
//! Components are stored percent-decoded and re-encoded on output, so two
//! spellings of the same URI compare equal after parsing.

use crate::error::ParseError;
use crate::lex;
use crate::params::{Param, Params};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URI as it appears in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other scheme, kept verbatim.
    Absolute(AbsoluteUri),
}

/// A URI with a scheme the server does not interpret (`http:`, `urn:`, `im:`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUri {
    /// The scheme as written, without the colon.
    pub scheme: String,
    /// Everything after the colon, verbatim.
    pub opaque: String,
}

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, as written (compare case-insensitively).
    Name(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address; written inside `[` `]`.
    V6(Ipv6Addr),
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// True for `sips:`.
    pub secure: bool,
    /// The user part, percent-decoded (it may hold any character, even NUL:
    /// RFC 4475 `escnull`).
    pub user: Option<String>,
    /// The password part, percent-decoded (only with a user part).
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, if written.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `lr`, `maddr`, `gr`, `ob`…), decoded.
    pub params: Params,
    /// URI headers (`?name=value&…`), decoded.
    pub headers: Vec<(String, String)>,
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number with its visual separators, e.g. `+1-201-555-0123`.
    pub number: String,
    /// Parameters (`phone-context`, `ext`…), decoded.
    pub params: Params,
}

impl Uri {
    /// Parses any URI; the scheme decides the grammar.
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let colon = s.find(':').ok_or(ParseError::Uri("missing scheme"))?;
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        let sb = scheme.as_bytes();
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(ParseError::Uri("invalid scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(rest).map(Uri::Tel)
        } else {
            if rest.is_empty()
                || rest
                    .bytes()
                    .any(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"' | 0x7f))
            {
                return Err(ParseError::Uri("invalid characters in URI"));
            }
            Ok(Uri::Absolute(AbsoluteUri {
                scheme: scheme.to_owned(),
                opaque: rest.to_owned(),
            }))
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Mutable access to the SIP URI, if this is one.
    pub fn as_sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The scheme, lower-case for the known ones.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Absolute(a) => &a.scheme,
        }
    }
}

impl SipUri {
    /// A plain `sip:user@host` URI.
    pub fn new(user: Option<&str>, host: Host) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: Vec::new(),
        }
    }

    /// Parses a full `sip:`/`sips:` URI.
    pub fn parse(s: &str) -> Result<SipUri, ParseError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            _ => Err(ParseError::Uri("not a sip or sips URI")),
        }
    }

    fn parse_rest(rest: &str, secure: bool) -> Result<SipUri, ParseError> {
        let (userinfo, hostpart) = match rest.find('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseError::Uri("empty user part"));
                }
                if !u.bytes().all(|b| {
                    lex::is_unreserved(b)
                        || b == b'%'
                        || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
                }) {
                    return Err(ParseError::Uri("invalid character in user part"));
                }
                let user = lex::unescape(u).ok_or(ParseError::Uri("bad escape in user part"))?;
                let password = match p {
                    None => None,
                    Some(p) => {
                        if !p.bytes().all(|b| {
                            lex::is_unreserved(b)
                                || b == b'%'
                                || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
                        }) {
                            return Err(ParseError::Uri("invalid character in password"));
                        }
                        Some(lex::unescape(p).ok_or(ParseError::Uri("bad escape in password"))?)
                    }
                };
                (Some(user), password)
            }
        };
        let hb = hostpart.as_bytes();
        let (host, mut i) = parse_host(hostpart)?;
        let mut port = None;
        if i < hb.len() && hb[i] == b':' {
            let start = i + 1;
            i = start;
            while i < hb.len() && hb[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || i - start > 5 {
                return Err(ParseError::Uri("invalid port"));
            }
            port = Some(
                hostpart[start..i]
                    .parse::<u16>()
                    .map_err(|_| ParseError::Uri("port out of range"))?,
            );
        }
        let tail = &hostpart[i..];
        let (param_part, header_part) = match tail.find('?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        if !param_part.is_empty() && !param_part.starts_with(';') {
            return Err(ParseError::Uri("invalid character after host"));
        }
        let params = parse_uri_params(param_part)?;
        let mut headers = Vec::new();
        if let Some(hp) = header_part {
            for pair in hp.split('&') {
                let (n, v) = pair
                    .split_once('=')
                    .ok_or(ParseError::Uri("URI header without value"))?;
                if n.is_empty()
                    || !pair.bytes().all(|b| {
                        lex::is_unreserved(b)
                            || b == b'%'
                            || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=')
                    })
                {
                    return Err(ParseError::Uri("invalid URI header"));
                }
                headers.push((
                    lex::unescape(n).ok_or(ParseError::Uri("bad escape in URI header"))?,
                    lex::unescape(v).ok_or(ParseError::Uri("bad escape in URI header"))?,
                ));
            }
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The address-of-record key `user@host`, host lower-cased (user names are
    /// compared case-insensitively by Switchboard too, see docs/DECISIONS.md, so
    /// the user is lower-cased as well). `None` without a user part.
    pub fn aor(&self) -> Option<String> {
        use std::fmt::Write as _;
        let user = self.user.as_ref()?;
        let mut aor = String::with_capacity(user.len() + 1 + 24);
        aor.push_str(user);
        aor.push('@');
        write!(aor, "{}", self.host).ok()?;
        aor.make_ascii_lowercase();
        Some(aor)
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }
}

/// Parses a host at the start of `s`; returns it and the index after it.
pub(crate) fn parse_host(s: &str) -> Result<(Host, usize), ParseError> {
    let b = s.as_bytes();
    if b.first() == Some(&b'[') {
        let close = s
            .find(']')
            .ok_or(ParseError::Uri("unterminated IPv6 reference"))?;
        let addr = parse_ipv6(&s[1..close]).ok_or(ParseError::Uri("invalid IPv6 address"))?;
        return Ok((Host::V6(addr), close + 1));
    }
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'.' | b'_')) {
        i += 1;
    }
    if i == 0 {
        return Err(ParseError::Uri("missing host"));
    }
    let name = &s[..i];
    // Only digits and dots can be an IPv4 address.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && let Ok(v4) = name.parse::<Ipv4Addr>()
    {
        return Ok((Host::V4(v4), i));
    }
    if name.starts_with('-') || name.starts_with('.') || name.contains("..") {
        return Err(ParseError::Uri("invalid host name"));
    }
    Ok((Host::Name(name.to_owned()), i))
}

/// An IPv6 address as written inside `[` `]`. Besides RFC 4291 text, takes
/// the form RFC 3261's ABNF allows by mistake, with a third colon between
/// `::` and an embedded IPv4 address (`2001:db8:::192.0.2.1`): RFC 5118 §4.10
/// asks implementations to tolerate it. It is written back with two colons.
fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let i = s.find(":::")?;
    s[i + 3..].parse::<Ipv4Addr>().ok()?;
    format!("{}{}", &s[..i + 2], &s[i + 3..]).parse().ok()
}

fn parse_uri_params(s: &str) -> Result<Params, ParseError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(Params(out));
    }
    for seg in s[1..].split(';') {
        if seg.is_empty() {
            return Err(ParseError::Uri("empty URI parameter"));
        }
        let ok = |b: u8| {
            lex::is_unreserved(b)
                || b == b'%'
                || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
        };
        let (n, v) = match seg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (seg, None),
        };
        if n.is_empty()
            || !n.bytes().all(ok)
            || !v.is_none_or(|v| !v.is_empty() && v.bytes().all(ok))
        {
            return Err(ParseError::Uri("invalid URI parameter"));
        }
        out.push(Param {
            name: lex::unescape(n).ok_or(ParseError::Uri("bad escape in URI parameter"))?,
            value: match v {
                Some(v) => {
                    Some(lex::unescape(v).ok_or(ParseError::Uri("bad escape in URI parameter"))?)
                }
                None => None,
            },
        });
    }
    Ok(Params(out))
}

impl TelUri {
    fn parse_rest(rest: &str) -> Result<TelUri, ParseError> {
        let (number, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if number.is_empty()
            || !number.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
            })
        {
            return Err(ParseError::Uri("invalid telephone number"));
        }
        Ok(TelUri {
            number: number.to_owned(),
            params: parse_uri_params(params)?,
        })
    }
}

impl Host {
    /// The IP address, if the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            Host::Name(_) => None,
        }
    }

    /// Case-insensitive comparison for names, exact for addresses.
    pub fn same_as(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => self == other,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write_ipv4(f, a),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Dotted-quad text of `a`, as `Ipv4Addr`'s Display writes it, without the
/// formatting machinery (hosts are written for every Via key and Contact).
fn write_ipv4(f: &mut fmt::Formatter<'_>, a: &Ipv4Addr) -> fmt::Result {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            buf[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            buf[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + o % 10;
        n += 1;
    }
    f.write_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

/// Writes `s` as [`lex::escape`] encodes it; without a String when nothing
/// needs encoding, which is almost always.
fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str, keep: impl Fn(u8) -> bool) -> fmt::Result {
    if s.bytes().all(|b| b.is_ascii() && keep(b)) {
        f.write_str(s)
    } else {
        f.write_str(&lex::escape(s, keep))
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    let keep = |b: u8| {
        lex::is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
    };
    for p in params.iter() {
        f.write_str(";")?;
        write_escaped(f, &p.name, keep)?;
        if let Some(v) = &p.value {
            f.write_str("=")?;
            write_escaped(f, v, keep)?;
        }
    }
    Ok(())
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            write_escaped(f, u, |b| {
                lex::is_unreserved(b)
                    || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
            })?;
            if let Some(p) = &self.password {
                write!(
                    f,
                    ":{}",
                    lex::escape(p, |b| lex::is_unreserved(b)
                        || matches!(b, b'&' | b'=' | b'+' | b'$' | b','))
                )?;
            }
            f.write_str("@")?;
        }
        fmt::Display::fmt(&self.host, f)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write_params(f, &self.params)?;
        let keep = |b: u8| {
            lex::is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
        };
        for (i, (n, v)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{}={}", lex::escape(n, keep), lex::escape(v, keep))?;
        }
        Ok(())
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}", self.number)?;
        write_params(f, &self.params)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(u) => u.fmt(f),
            Uri::Absolute(a) => write!(f, "{}:{}", a.scheme, a.opaque),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        SipUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_hosts_are_written_as_std_writes_them() {
        let mut n: u32 = 0x0102_0304;
        for a in [
            0u32,
            u32::MAX,
            0x0A00_6409,
            0xC0A8_010A,
            0x6400_0A01,
            0x7F00_0001,
        ] {
            let ip = Ipv4Addr::from(a);
            assert_eq!(Host::V4(ip).to_string(), ip.to_string());
        }
        for _ in 0..2000 {
            n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let ip = Ipv4Addr::from(n);
            assert_eq!(Host::V4(ip).to_string(), ip.to_string());
        }
    }

    #[test]
    fn written_uris_escape_as_before() {
        let keep = |b: u8| {
            lex::is_unreserved(b)
                || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
        };
        for user in [
            "alice",
            "a b",
            "j\u{fc}rgen",
            "100%",
            "x@y",
            "semi;colon",
            "\0nul",
        ] {
            let mut u = SipUri::new(Some(user), Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
            u.params.set("transport", Some("t c\u{e9}p"));
            u.params.set("lr", None);
            let want = format!(
                "sip:{}@192.0.2.1;transport={};lr",
                lex::escape(user, keep),
                lex::escape("t c\u{e9}p", |b| {
                    lex::is_unreserved(b)
                        || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
                })
            );
            assert_eq!(u.to_string(), want);
            assert_eq!(sip(&want), u);
        }
        assert_eq!(
            sip("sip:Alice@Example.COM").aor().as_deref(),
            Some("alice@example.com")
        );
    }

    #[test]
    fn parses_user_host_port_params_headers() {
        let u = sip("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi%20there&x=1");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Name("Example.COM".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.params.contains("lr"));
        assert_eq!(
            u.headers,
            vec![
                ("subject".into(), "hi there".into()),
                ("x".into(), "1".into())
            ]
        );
        assert_eq!(u.aor().as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn unusual_but_valid_user_and_password() {
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(sip(&u.to_string()), u);
    }

    #[test]
    fn escaped_user_decodes_and_reencodes() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(u.to_string(), "sip:sips%3Auser%40example.com@example.net");
        let n = sip("sip:null-%00-null@example.com");
        assert_eq!(n.user.as_deref(), Some("null-\0-null"));
        assert_eq!(sip(&n.to_string()), n);
        let p = sip("sip:cal%6Cer@host5.example.net;%6C%72=%75%64%70;%74%74%6C=%36%37");
        assert_eq!(p.user.as_deref(), Some("caller"));
        assert_eq!(p.params.value("lr"), Some("udp"));
        assert_eq!(p.params.value("ttl"), Some("67"));
    }

    #[test]
    fn ipv6_references() {
        assert_eq!(sip("sip:[2001:db8::10]:5070").port, Some(5070));
        let amb = sip("sip:[2001:db8::10:5070]");
        assert_eq!(amb.port, None);
        assert_eq!(
            amb.host,
            Host::V6("2001:db8::10:5070".parse().expect("addr"))
        );
        assert!(SipUri::parse("sip:2001:db8::10").is_err());
        assert!(SipUri::parse("sip:[2001:db8::10").is_err());
        // RFC 5118 §4.10: the three-colon form from RFC 3261's ABNF bug is
        // tolerated, and only in front of an embedded IPv4 address.
        assert_eq!(
            sip("sip:[2001:db8:::192.0.2.1]").host,
            sip("sip:[2001:db8::192.0.2.1]").host
        );
        assert_eq!(
            sip("sip:[:::192.0.2.1]").host,
            sip("sip:[::192.0.2.1]").host
        );
        assert!(SipUri::parse("sip:[2001:db8:::1]").is_err());
        assert!(SipUri::parse("sip:[2001:::db8::192.0.2.1]").is_err());
        assert_eq!(
            sip("sip:[::ffff:192.0.2.10]").host,
            Host::V6("::ffff:192.0.2.10".parse().expect("addr"))
        );
        assert_eq!(
            sip("sip:user@[2001:db8::1]").to_string(),
            "sip:user@[2001:db8::1]"
        );
    }

    #[test]
    fn tel_and_other_schemes() {
        match Uri::parse("tel:+1-201-555-0123;phone-context=example.com").expect("tel") {
            Uri::Tel(t) => {
                assert_eq!(t.number, "+1-201-555-0123");
                assert_eq!(t.params.value("phone-context"), Some("example.com"));
            }
            other => panic!("not tel: {other:?}"),
        }
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").expect("absolute");
        assert_eq!(u.scheme(), "nobodyKnowsThisScheme");
        assert_eq!(u.to_string(), "nobodyKnowsThisScheme:totallyopaquecontent");
        assert!(Uri::parse("soap.beep://192.0.2.103:3002").is_ok());
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
        assert!(Uri::parse(":x").is_err());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:a@",
            "sip:a@host:",
            "sip:a@host:99999",
            "sip:a@host;",
            "sip:a@host;;lr",
            "sip:a@host x",
            "sip:a b@host",
            "sip:a@host?x",
            "sip:a@-host",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
