//! Typed views of the headers the server interprets. Values are parsed on
//! demand from [`Headers`], so a proxy pays only for what it reads and headers
//! it does not understand pass through untouched.

use crate::error::ParseError;
use crate::header::{HeaderName, Headers};
use crate::lex;
use crate::method::Method;
use crate::params::Params;
use crate::uri::{Host, Uri, parse_host};
use std::fmt;

/// `[display-name] <uri> *(;param)` or `addr-spec *(;param)`: From, To, Contact,
/// Route, Record-Route, Path, Refer-To, P-Asserted-Identity…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`…), as written.
    pub params: Params,
}

impl NameAddr {
    /// A name-addr without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    /// Parses one value; `header` names the header in errors.
    pub fn parse(s: &str, header: &str) -> Result<NameAddr, ParseError> {
        let err = |what: &str| ParseError::header(header, what);
        let s = s.trim_matches(|c| c == ' ' || c == '\t');
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(err("empty value"));
        }
        let (display, uri_start) = if b[0] == b'"' {
            let len = lex::quoted_len(b).ok_or_else(|| err("unterminated quoted display name"))?;
            let display = lex::unquote(&s[..len]).ok_or_else(|| err("bad quoted display name"))?;
            let rest = &s[len..];
            let lt = rest.len() - rest.trim_start_matches([' ', '\t']).len();
            if !rest[lt..].starts_with('<') {
                return Err(err("display name not followed by <uri>"));
            }
            (Some(display), len + lt)
        } else if let Some(lt) = s.find('<').filter(|&lt| !s[..lt].contains([':', '"'])) {
            // A token display name cannot hold ':' or '"'; an addr-spec always
            // has a ':' before any '<' (which can then only sit in a quoted
            // parameter value such as +sip.instance="<urn:…>").
            let disp = s[..lt].trim_matches([' ', '\t']);
            if !disp
                .split([' ', '\t'])
                .filter(|t| !t.is_empty())
                .all(lex::is_token)
            {
                return Err(err("invalid characters in display name"));
            }
            (
                if disp.is_empty() {
                    None
                } else {
                    Some(disp.to_owned())
                },
                lt,
            )
        } else {
            // addr-spec: parameters after the URI belong to the header.
            let end = s.find(';').unwrap_or(s.len());
            let spec = s[..end].trim_end();
            if spec.contains(['?', ',', ' ', '\t']) {
                return Err(err("URI with headers or spaces must be enclosed in <>"));
            }
            let uri = Uri::parse(spec).map_err(|e| err(&e.to_string()))?;
            let params = Params::parse_header_params(&s[end..]).map_err(err)?;
            return Ok(NameAddr {
                display: None,
                uri,
                params,
            });
        };
        let rest = &s[uri_start + 1..];
        let gt = rest.find('>').ok_or_else(|| err("missing >"))?;
        let uri = Uri::parse(&rest[..gt]).map_err(|e| err(&e.to_string()))?;
        let params = Params::parse_header_params(&rest[gt + 1..]).map_err(err)?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", lex::quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact header: `*` (remove all bindings) or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `*`: every binding (REGISTER with Expires: 0 only).
    Star,
    /// The addresses, in order.
    List(Vec<NameAddr>),
}

/// The RFC 3261 branch prefix (§8.1.1.7).
const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport, upper-case (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`…).
    pub transport: String,
    /// The host of the sent-by.
    pub host: Host,
    /// The port of the sent-by, if written.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, `maddr`…), as written.
    pub params: Params,
}

impl Via {
    /// Parses one Via value (`SIP/2.0/UDP host:port;params`).
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let err = |what: &str| ParseError::header("Via", what);
        let mut parts = s.splitn(3, '/');
        let proto = parts.next().unwrap_or("").trim();
        let version = parts
            .next()
            .ok_or_else(|| err("missing protocol version"))?
            .trim();
        let rest = parts
            .next()
            .ok_or_else(|| err("missing transport"))?
            .trim_start();
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(err("protocol must be SIP/2.0"));
        }
        let tend = rest
            .find([' ', '\t'])
            .ok_or_else(|| err("missing sent-by"))?;
        let transport = &rest[..tend];
        if !lex::is_token(transport) {
            return Err(err("invalid transport"));
        }
        let sent_by = rest[tend..].trim_start();
        let (host, mut i) = parse_host(sent_by).map_err(|_| err("invalid sent-by host"))?;
        let b = sent_by.as_bytes();
        let mut j = i;
        while j < b.len() && lex::is_ws(b[j]) {
            j += 1;
        }
        let mut port = None;
        if j < b.len() && b[j] == b':' {
            j += 1;
            while j < b.len() && lex::is_ws(b[j]) {
                j += 1;
            }
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            port = Some(
                sent_by[start..j]
                    .parse::<u16>()
                    .map_err(|_| err("invalid port"))?,
            );
            i = j;
        }
        let params = Params::parse_header_params(&sent_by[i..]).map_err(err)?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The transaction-identifying `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// True when the branch carries the RFC 3261 magic cookie followed by an
    /// identifier. A bare `z9hG4bK` (RFC 4475 §3.2.1 `badbranch`) claims RFC
    /// 3261 behaviour but identifies nothing, so it does not count: matching
    /// on it would merge unrelated transactions from the same sender.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter as an address. Accepted with or without the
    /// `[` `]` around an IPv6 address: RFC 3261's grammar says without, half
    /// the implementations send with, and RFC 5118 §4.5 asks receivers to take
    /// both. `None` if absent or not an address.
    pub fn received(&self) -> Option<std::net::IpAddr> {
        let v = self.params.value("received")?;
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        v.parse().ok()
    }

    /// The `sent-by` as `host[:port]` text, for transaction matching.
    pub fn sent_by(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(48);
        let _ = write!(s, "{}", self.host);
        if let Some(p) = self.port {
            let _ = write!(s, ":{p}");
        }
        s
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number, below 2**31.
    pub seq: u32,
    /// The method, which must be the request's.
    pub method: Method,
}

impl CSeq {
    /// Parses `number method`; the number must be below 2**31 (RFC 3261 §8.1.1.5).
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let err = |what: &str| ParseError::header("CSeq", what);
        let mut it = s.split([' ', '\t']).filter(|t| !t.is_empty());
        let num = it.next().ok_or_else(|| err("empty"))?;
        let method = it.next().ok_or_else(|| err("missing method"))?;
        if it.next().is_some() {
            return Err(err("trailing text"));
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 10 {
            return Err(err("sequence number is not a 32-bit number"));
        }
        let seq: u64 = num
            .parse()
            .map_err(|_| err("sequence number is not a number"))?;
        if seq >= 1 << 31 {
            return Err(err("sequence number too large"));
        }
        let method = Method::parse(method).ok_or_else(|| err("invalid method"))?;
        Ok(CSeq {
            seq: seq as u32,
            method,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A media type (Content-Type, Accept elements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Lower-case type.
    pub ty: String,
    /// Lower-case subtype.
    pub subtype: String,
    /// Parameters (`charset`, `boundary`…), as written.
    pub params: Params,
}

impl MediaType {
    /// Parses `type/subtype *(;param)`.
    pub fn parse(s: &str, header: &str) -> Result<MediaType, ParseError> {
        let err = |what: &str| ParseError::header(header, what);
        let end = s.find(';').unwrap_or(s.len());
        let (ty, sub) = s[..end]
            .split_once('/')
            .ok_or_else(|| err("missing / in media type"))?;
        let (ty, sub) = (ty.trim(), sub.trim());
        if !lex::is_token(ty) || !lex::is_token(sub) {
            return Err(err("invalid media type"));
        }
        let params = Params::parse_header_params(&s[end..]).map_err(err)?;
        Ok(MediaType {
            ty: ty.to_ascii_lowercase(),
            subtype: sub.to_ascii_lowercase(),
            params,
        })
    }

    /// `type/subtype`, lower-case, without parameters.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.ty, self.subtype)
    }

    /// True if this is `ty/subtype` (case-insensitive).
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.ty, self.subtype, self.params)
    }
}

/// Event header (RFC 6665): package and parameters (`id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Package name with template suffixes, lower-case (`presence`, `presence.winfo`).
    pub package: String,
    /// Parameters (`id`…), as written.
    pub params: Params,
}

impl EventHeader {
    /// Parses an Event or Allow-Events element.
    pub fn parse(s: &str) -> Result<EventHeader, ParseError> {
        let err = |what: &str| ParseError::header("Event", what);
        let end = s.find(';').unwrap_or(s.len());
        let package = s[..end].trim();
        if !lex::is_token(package) {
            return Err(err("invalid event package"));
        }
        Ok(EventHeader {
            package: package.to_ascii_lowercase(),
            params: Params::parse_header_params(&s[end..]).map_err(err)?,
        })
    }

    /// The `id` parameter that distinguishes subscriptions in one dialog.
    pub fn id(&self) -> Option<&str> {
        self.params.value("id")
    }
}

impl fmt::Display for EventHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.package, self.params)
    }
}

/// Subscription-State (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// `active`, `pending`, `terminated` or an extension, lower-case.
    pub state: String,
    /// Parameters (`expires`, `reason`, `retry-after`…), as written.
    pub params: Params,
}

impl SubscriptionState {
    /// Parses the header value.
    pub fn parse(s: &str) -> Result<SubscriptionState, ParseError> {
        let err = |what: &str| ParseError::header("Subscription-State", what);
        let end = s.find(';').unwrap_or(s.len());
        let state = s[..end].trim();
        if !lex::is_token(state) {
            return Err(err("invalid state"));
        }
        Ok(SubscriptionState {
            state: state.to_ascii_lowercase(),
            params: Params::parse_header_params(&s[end..]).map_err(err)?,
        })
    }

    /// The `expires` parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(|v| v.parse().ok())
    }

    /// The `reason` parameter.
    pub fn reason(&self) -> Option<&str> {
        self.params.value("reason")
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.state, self.params)
    }
}

/// An authentication header: Authorization, Proxy-Authorization,
/// WWW-Authenticate, Proxy-Authenticate (`scheme name=value, …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Digest`, `NTLM`, `Kerberos`… as written.
    pub scheme: String,
    /// Parameters with quotes removed, names as written.
    pub params: Vec<(String, String)>,
}

impl AuthHeader {
    /// Parses a credentials or challenge value.
    pub fn parse(s: &str, header: &str) -> Result<AuthHeader, ParseError> {
        let err = |what: &str| ParseError::header(header, what);
        let s = s.trim();
        let (scheme, rest) = match s.find([' ', '\t']) {
            Some(i) => (&s[..i], s[i..].trim_start()),
            None => (s, ""),
        };
        if !lex::is_token(scheme) {
            return Err(err("invalid auth scheme"));
        }
        let mut params = Vec::new();
        for part in lex::SplitTopLevel::new(rest, b',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (n, v) = part
                .split_once('=')
                .ok_or_else(|| err("auth parameter without value"))?;
            let (n, v) = (n.trim(), v.trim());
            if !lex::is_token(n) {
                return Err(err("invalid auth parameter name"));
            }
            let v = if v.starts_with('"') {
                lex::unquote(v).ok_or_else(|| err("bad quoted auth parameter"))?
            } else {
                v.to_owned()
            };
            params.push((n.to_owned(), v));
        }
        Ok(AuthHeader {
            scheme: scheme.to_owned(),
            params,
        })
    }

    /// A parameter value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for the Digest scheme.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

/// Parameters that are written without quotes in challenges and credentials
/// (RFC 7616 §3.3/§3.4); everything else is quoted.
const UNQUOTED_AUTH_PARAMS: [&str; 4] = ["algorithm", "stale", "nc", "qop"];

impl fmt::Display for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, (n, v)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            // `qop` is a quoted list in challenges but a bare token in credentials;
            // a comma tells which.
            let bare = UNQUOTED_AUTH_PARAMS
                .iter()
                .any(|u| u.eq_ignore_ascii_case(n))
                && lex::is_token(v);
            if bare {
                write!(f, "{n}={v}")?;
            } else {
                write!(f, "{n}={}", lex::quote(v))?;
            }
        }
        Ok(())
    }
}

fn parse_u32(h: &Headers, name: HeaderName, max: u64) -> Result<Option<u32>, ParseError> {
    let Some(v) = single(h, name.clone())? else {
        return Ok(None);
    };
    let v = v.trim();
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header(
            name.as_str(),
            "not a non-negative integer",
        ));
    }
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n as u32)),
        _ => Err(ParseError::header(name.as_str(), "value out of range")),
    }
}

fn single(h: &Headers, name: HeaderName) -> Result<Option<&str>, ParseError> {
    let mut vals =
        h.0.iter()
            .filter(|x| x.name == name)
            .map(|x| x.value.as_str());
    let first = vals.next();
    if vals.next().is_some() {
        return Err(ParseError::header(name.as_str(), "more than one value"));
    }
    Ok(first)
}

fn name_addrs(h: &Headers, name: HeaderName) -> Result<Vec<NameAddr>, ParseError> {
    h.values(&name)
        .map(|v| NameAddr::parse(v, name.as_str()))
        .collect()
}

/// Typed accessors. Each returns a [`ParseError`] naming the header and the
/// defect when the value is malformed, so callers can answer 400 precisely.
impl Headers {
    /// Call-ID (must appear exactly once in a valid message).
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let v = single(self, HeaderName::CallId)?
            .ok_or_else(|| ParseError::header("Call-ID", "missing"))?
            .trim();
        if v.is_empty() || v.contains([' ', '\t']) {
            return Err(ParseError::header("Call-ID", "invalid value"));
        }
        Ok(v)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(
            single(self, HeaderName::CSeq)?.ok_or_else(|| ParseError::header("CSeq", "missing"))?,
        )
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            single(self, HeaderName::From)?.ok_or_else(|| ParseError::header("From", "missing"))?,
            "From",
        )
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            single(self, HeaderName::To)?.ok_or_else(|| ParseError::header("To", "missing"))?,
            "To",
        )
    }

    /// Every Via value, topmost first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.values(&HeaderName::Via).map(Via::parse).collect()
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        Via::parse(
            self.values(&HeaderName::Via)
                .next()
                .ok_or_else(|| ParseError::header("Via", "missing"))?,
        )
    }

    /// Contact: `*` or the list of addresses (empty if absent).
    pub fn contacts(&self) -> Result<Contacts, ParseError> {
        let vals: Vec<&str> = self.values(&HeaderName::Contact).collect();
        if vals.contains(&"*") {
            if vals.len() != 1 {
                return Err(ParseError::header("Contact", "* must be the only value"));
            }
            return Ok(Contacts::Star);
        }
        Ok(Contacts::List(
            vals.into_iter()
                .map(|v| NameAddr::parse(v, "Contact"))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Route values, topmost first.
    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        name_addrs(self, HeaderName::Route)
    }

    /// Record-Route values, topmost first.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        name_addrs(self, HeaderName::RecordRoute)
    }

    /// Path values (RFC 3327), topmost first.
    pub fn path(&self) -> Result<Vec<NameAddr>, ParseError> {
        name_addrs(self, HeaderName::Path)
    }

    /// Max-Forwards (0..=255), if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        Ok(parse_u32(self, HeaderName::MaxForwards, 255)?.map(|v| v as u8))
    }

    /// Expires in seconds (up to 2**32-1), if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        parse_u32(self, HeaderName::Expires, u32::MAX as u64)
    }

    /// Min-Expires in seconds, if present.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        parse_u32(self, HeaderName::MinExpires, u32::MAX as u64)
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Result<Option<MediaType>, ParseError> {
        single(self, HeaderName::ContentType)?
            .map(|v| MediaType::parse(v, "Content-Type"))
            .transpose()
    }

    /// Event, if present.
    pub fn event(&self) -> Result<Option<EventHeader>, ParseError> {
        single(self, HeaderName::Event)?
            .map(EventHeader::parse)
            .transpose()
    }

    /// Subscription-State, if present.
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState>, ParseError> {
        single(self, HeaderName::SubscriptionState)?
            .map(SubscriptionState::parse)
            .transpose()
    }

    /// Every Authorization value.
    pub fn authorization(&self) -> Result<Vec<AuthHeader>, ParseError> {
        self.get_all(&HeaderName::Authorization)
            .map(|v| AuthHeader::parse(v, "Authorization"))
            .collect()
    }

    /// Every Proxy-Authorization value.
    pub fn proxy_authorization(&self) -> Result<Vec<AuthHeader>, ParseError> {
        self.get_all(&HeaderName::ProxyAuthorization)
            .map(|v| AuthHeader::parse(v, "Proxy-Authorization"))
            .collect()
    }

    /// Every WWW-Authenticate challenge.
    pub fn www_authenticate(&self) -> Result<Vec<AuthHeader>, ParseError> {
        self.get_all(&HeaderName::WwwAuthenticate)
            .map(|v| AuthHeader::parse(v, "WWW-Authenticate"))
            .collect()
    }

    /// Every Proxy-Authenticate challenge.
    pub fn proxy_authenticate(&self) -> Result<Vec<AuthHeader>, ParseError> {
        self.get_all(&HeaderName::ProxyAuthenticate)
            .map(|v| AuthHeader::parse(v, "Proxy-Authenticate"))
            .collect()
    }

    /// Option tags of a Supported/Require/Proxy-Require/Unsupported header, or
    /// the tokens of Allow/Allow-Events, lower-case.
    pub fn tokens(&self, name: &HeaderName) -> Vec<String> {
        self.values(name).map(|v| v.to_ascii_lowercase()).collect()
    }

    /// True if `Supported` lists `tag`.
    pub fn supports(&self, tag: &str) -> bool {
        self.values(&HeaderName::Supported)
            .any(|v| v.eq_ignore_ascii_case(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(r#""Bob \"B\"" <sip:bob@example.com>;tag=a48s"#, "From")
            .expect("quoted");
        assert_eq!(a.display.as_deref(), Some(r#"Bob "B""#));
        assert_eq!(a.tag(), Some("a48s"));
        let b =
            NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").expect("no space");
        assert_eq!(b.display.as_deref(), Some("caller"));
        let c = NameAddr::parse("sip:user@example.com;expires=60", "Contact").expect("addr-spec");
        assert_eq!(c.params.value("expires"), Some("60"));
        assert!(c.uri.as_sip().is_some_and(|u| u.params.is_empty()));
        let d = NameAddr::parse(
            "The Operator <sip:operator@cs.columbia.edu>;tag=287447",
            "From",
        )
        .expect("token display");
        assert_eq!(d.display.as_deref(), Some("The Operator"));
        assert_eq!(
            NameAddr::parse(&a.to_string(), "From").expect("round trip"),
            a
        );
    }

    #[test]
    fn addr_spec_with_angle_brackets_in_a_quoted_parameter() {
        let c = NameAddr::parse(
            r#"sip:alice@192.0.2.1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=60"#,
            "Contact",
        )
        .expect("addr-spec with an instance id");
        assert_eq!(c.display, None);
        assert_eq!(c.uri.to_string(), "sip:alice@192.0.2.1");
        assert_eq!(
            c.params.get_unquoted("+sip.instance").as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!(c.params.value("expires"), Some("60"));
        assert!(NameAddr::parse(r#"a"b <sip:x@y>"#, "To").is_err());
    }

    #[test]
    fn bare_magic_cookie_is_not_an_rfc3261_branch() {
        let bad = Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").expect("parses");
        assert!(!bad.has_rfc3261_branch());
        assert!(
            Via::parse("SIP/2.0/UDP h;branch=z9hG4bKx")
                .expect("ok")
                .has_rfc3261_branch()
        );
        assert!(
            !Via::parse("SIP/2.0/UDP h;branch=390skdjuw")
                .expect("ok")
                .has_rfc3261_branch()
        );
        assert!(
            !Via::parse("SIP/2.0/UDP h")
                .expect("ok")
                .has_rfc3261_branch()
        );
    }

    #[test]
    fn received_with_or_without_ipv6_brackets() {
        let with =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKa")
                .expect("with delimiters");
        let without =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKa")
                .expect("without delimiters");
        let want: std::net::IpAddr = "2001:db8::9:255".parse().expect("addr");
        assert_eq!(with.received(), Some(want));
        assert_eq!(without.received(), Some(want));
        let v4 = Via::parse("SIP/2.0/TCP h;received=192.0.2.200").expect("v4");
        assert_eq!(v4.received(), Some("192.0.2.200".parse().expect("addr")));
        assert_eq!(
            Via::parse("SIP/2.0/TCP h;received=nonsense")
                .expect("ok")
                .received(),
            None
        );
    }

    #[test]
    fn name_addr_rejects_rfc4475_defects() {
        assert!(NameAddr::parse(r#""Mr J. User <sip:j.user@example.com>"#, "From").is_err());
        assert!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43", "From").is_err()
        );
        assert!(
            NameAddr::parse(
                r#""Bell, Alexander" <sip:a.g.bell@ bell-tel.com>;tag=43"#,
                "From"
            )
            .is_err()
        );
        assert!(
            NameAddr::parse(
                "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                "Contact"
            )
            .is_err()
        );
        assert!(
            NameAddr::parse(
                "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
                "Contact"
            )
            .is_ok()
        );
    }

    #[test]
    fn via_with_odd_whitespace_and_ipv6() {
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  ")
                .expect("wsinv via");
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v6 = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;branch=z9hG4bKas3",
        )
        .expect("v6");
        assert_eq!(v6.port, Some(5070));
        assert_eq!(v6.params.value("received"), Some("2001:db8::9:255"));
        assert_eq!(v6.sent_by(), "[2001:db8::9:1]:5070");
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
        assert_eq!(Via::parse(&v6.to_string()).expect("round trip"), v6);
    }

    #[test]
    fn scalars_are_bounded() {
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert_eq!(CSeq::parse("  8   INVITE ").expect("ok").seq, 8);
        let mut h = Headers::new();
        h.push(HeaderName::MaxForwards, "300");
        assert!(h.max_forwards().is_err());
        h.set(HeaderName::MaxForwards, "70");
        assert_eq!(h.max_forwards().expect("ok"), Some(70));
        h.push(HeaderName::Expires, "10000000000000");
        assert!(h.expires().is_err());
        h.set(HeaderName::Expires, "-1");
        assert!(h.expires().is_err());
    }

    #[test]
    fn auth_header_round_trip() {
        let raw = r#"Digest username="alice", realm="example.com", nonce="abc", uri="sip:example.com", response="0123", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="x,y""#;
        let a = AuthHeader::parse(raw, "Authorization").expect("valid");
        assert!(a.is_digest());
        assert_eq!(a.param("CNONCE"), Some("x,y"));
        assert_eq!(a.param("qop"), Some("auth"));
        assert_eq!(
            AuthHeader::parse(&a.to_string(), "Authorization").expect("round trip"),
            a
        );
        assert_eq!(
            AuthHeader::parse("NoOneKnowsThisScheme opaque-data=here", "Authorization")
                .expect("unknown scheme")
                .scheme,
            "NoOneKnowsThisScheme"
        );
    }

    #[test]
    fn contacts_star_and_list() {
        let mut h = Headers::new();
        h.push(HeaderName::Contact, "*");
        assert_eq!(h.contacts().expect("star"), Contacts::Star);
        h.push(HeaderName::Contact, "<sip:a@b>");
        assert!(h.contacts().is_err());
        let mut l = Headers::new();
        l.push(
            HeaderName::Contact,
            r#"<sip:a@b>;q=0.5, "X, Y" <sip:c@d>;+sip.instance="<urn:uuid:1>""#,
        );
        match l.contacts().expect("list") {
            Contacts::List(v) => assert_eq!(v.len(), 2),
            Contacts::Star => panic!("not a star"),
        }
    }

    #[test]
    fn event_and_subscription_state() {
        let mut h = Headers::new();
        h.push(HeaderName::parse("o"), "Presence.winfo;id=7");
        let e = h.event().expect("ok").expect("present");
        assert_eq!(e.package, "presence.winfo");
        assert_eq!(e.id(), Some("7"));
        h.push(
            HeaderName::SubscriptionState,
            "terminated;reason=timeout;expires=0",
        );
        let s = h.subscription_state().expect("ok").expect("present");
        assert_eq!(s.state, "terminated");
        assert_eq!(s.reason(), Some("timeout"));
        assert_eq!(s.expires(), Some(0));
    }
}
