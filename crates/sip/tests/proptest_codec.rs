//! Property tests of the codec.
//!
//! 1. parse ∘ serialise = identity: generated requests and responses (with
//!    URIs, display names, parameters and bodies that need escaping and
//!    quoting) survive `to_bytes` → `parse_datagram`, and the same through a
//!    `StreamFramer` fed in arbitrary chunks; the typed views of the parsed
//!    headers give back the typed values the headers were written from.
//! 2. No panics: arbitrary and SIP-flavoured bytes into every parser, and
//!    mutated valid messages; whatever a parser accepts, it writes back in a
//!    form it accepts again as the same value.
//!
//! Case counts are kept low enough for the whole file to run in a few
//! seconds in a debug build; raise `PROPTEST_CASES` for a longer soak.

use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchboard_sip::framing::{Frame, PING, StreamFramer};
use switchboard_sip::parse::{Limits, parse_head};
use switchboard_sip::text::quote;
use switchboard_sip::typed::Contacts;
use switchboard_sip::uri::AbsoluteUri;
use switchboard_sip::{
    AuthHeader, CSeq, HeaderName, Headers, Host, MediaType, Message, Method, NameAddr, Param,
    Params, Request, Response, SipUri, TelUri, Uri, Via, check_request, check_response,
    parse_datagram,
};

/// `n` cases, unless `PROPTEST_CASES` asks for another number (a soak).
fn cases(n: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = n;
    }
    c
}

// ------------------------------------------------------------- strategies

const TOKEN: &str = "[A-Za-z0-9.!%*_+`'~-]{1,10}";

fn token() -> impl Strategy<Value = String> {
    TOKEN
}

/// Any text without CR or LF (those cannot be carried in a quoted string or
/// a header value at all): exercises escaping of `"`, `\`, control
/// characters and non-ASCII.
fn quotable_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>().prop_filter("no line breaks", |c| *c != '\r' && *c != '\n'),
            2 => prop::sample::select(vec!['"', '\\', '\0', '\t', ' ', '\u{7}', '\u{7f}', 'é', '<', ',', ';']),
            5 => prop::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(String::from_iter)
}

/// Text for a URI component: anything at all, since components are stored
/// decoded and escaped on output.
fn uri_text(min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>(),
            3 => prop::sample::select(vec![
                '@', ':', ';', '?', '&', '=', '%', ' ', '<', '>', '"', '/', '[', ']', '\0', '+', '$', ',',
            ]),
            6 => prop::char::range('a', 'z'),
        ],
        min..10,
    )
    .prop_map(String::from_iter)
}

fn host_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", 1..4)
        .prop_map(|labels| labels.join("."))
        .prop_filter("not an IPv4 literal", |n| n.parse::<Ipv4Addr>().is_err())
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        host_name().prop_map(Host::Name),
        any::<Ipv4Addr>().prop_map(Host::V4),
        any::<Ipv6Addr>().prop_map(Host::V6),
    ]
}

fn uri_params() -> impl Strategy<Value = Params> {
    prop::collection::vec((uri_text(1), prop::option::of(uri_text(1))), 0..4).prop_map(|ps| {
        Params(
            ps.into_iter()
                .map(|(name, value)| Param { name, value })
                .collect(),
        )
    })
}

fn sip_uri(with_headers: bool) -> BoxedStrategy<SipUri> {
    let headers = if with_headers { 0..3usize } else { 0..1usize };
    (
        any::<bool>(),
        prop::option::of((uri_text(1), prop::option::of(uri_text(0)))),
        host(),
        prop::option::of(any::<u16>()),
        uri_params(),
        prop::collection::vec((uri_text(1), uri_text(0)), headers),
    )
        .prop_map(move |(secure, userinfo, host, port, params, headers)| {
            let (user, password) = match userinfo {
                Some((u, p)) => (Some(u), p),
                None => (None, None),
            };
            SipUri {
                secure,
                user,
                password,
                host,
                port,
                params,
                headers: if with_headers { headers } else { Vec::new() },
            }
        })
        .boxed()
}

fn tel_uri() -> impl Strategy<Value = TelUri> {
    ("\\+?[0-9][0-9().-]{0,12}", uri_params())
        .prop_map(|(number, params)| TelUri { number, params })
}

fn absolute_uri() -> impl Strategy<Value = AbsoluteUri> {
    (
        "[a-z][a-z0-9+.-]{0,6}",
        "[!#-;=?-~]{1,16}", // printable, without '"', '<' and '>'
    )
        .prop_filter("not a scheme with its own grammar", |(s, _)| {
            !["sip", "sips", "tel"].contains(&s.as_str())
        })
        .prop_map(|(scheme, opaque)| AbsoluteUri { scheme, opaque })
}

fn any_uri() -> BoxedStrategy<Uri> {
    prop_oneof![
        6 => sip_uri(true).prop_map(Uri::Sip),
        1 => tel_uri().prop_map(Uri::Tel),
        1 => absolute_uri().prop_map(Uri::Absolute),
    ]
    .boxed()
}

/// A header parameter as the parser stores it: a token, or a quoted string
/// kept with its quotes.
fn header_param() -> impl Strategy<Value = Param> {
    (
        token(),
        prop::option::of(prop_oneof![
            token(),
            quotable_text().prop_map(|t| quote(&t))
        ]),
    )
        .prop_map(|(name, value)| Param { name, value })
}

fn header_params() -> impl Strategy<Value = Params> {
    prop::collection::vec(header_param(), 0..3).prop_map(Params)
}

fn name_addr(uri: impl Strategy<Value = Uri> + 'static) -> BoxedStrategy<NameAddr> {
    (prop::option::of(quotable_text()), uri, header_params())
        .prop_map(|(display, uri, params)| NameAddr {
            display,
            uri,
            params,
        })
        .boxed()
}

/// From/To: a name-addr with a tag (To may lack one).
fn from_to(tag: bool) -> BoxedStrategy<NameAddr> {
    (name_addr(any_uri()), token())
        .prop_map(move |(mut na, t)| {
            na.params.remove("tag");
            if tag {
                na.params.0.push(Param {
                    name: "tag".into(),
                    value: Some(t),
                });
            }
            na
        })
        .boxed()
}

/// A Contact as registrars see them: q, expires and an instance id.
fn contact() -> BoxedStrategy<NameAddr> {
    (
        name_addr(sip_uri(true).prop_map(Uri::Sip)),
        prop::option::of(0u16..=1000),
        prop::option::of(any::<u32>()),
        prop::option::of("[0-9a-f]{8}"),
    )
        .prop_map(|(mut na, q, expires, instance)| {
            if let Some(q) = q {
                na.params.0.push(Param {
                    name: "q".into(),
                    value: Some(format!("{}.{:03}", q / 1000, q % 1000)),
                });
            }
            if let Some(e) = expires {
                na.params.0.push(Param {
                    name: "expires".into(),
                    value: Some(e.to_string()),
                });
            }
            if let Some(i) = instance {
                na.params.0.push(Param {
                    name: "+sip.instance".into(),
                    value: Some(format!("\"<urn:uuid:{i}-0000-1000-8000-000A95A0E128>\"")),
                });
            }
            na
        })
        .boxed()
}

fn via() -> BoxedStrategy<Via> {
    (
        prop::sample::select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "X-NEW"]),
        host(),
        prop::option::of(any::<u16>()),
        "[A-Za-z0-9.!%*_+`'~-]{1,12}",
        prop::option::of(prop_oneof![
            any::<Ipv4Addr>().prop_map(|a| a.to_string()),
            any::<Ipv6Addr>().prop_map(|a| a.to_string()),
            any::<Ipv6Addr>().prop_map(|a| format!("[{a}]")),
        ]),
        prop::option::of(prop::option::of(any::<u16>())),
        header_params(),
    )
        .prop_map(|(transport, host, port, branch, received, rport, extra)| {
            let mut params = vec![Param {
                name: "branch".into(),
                value: Some(format!("z9hG4bK{branch}")),
            }];
            if let Some(r) = received {
                params.push(Param {
                    name: "received".into(),
                    value: Some(r),
                });
            }
            if let Some(r) = rport {
                params.push(Param {
                    name: "rport".into(),
                    value: r.map(|p| p.to_string()),
                });
            }
            params.extend(extra.0);
            Via {
                transport: transport.to_owned(),
                host,
                port,
                params: Params(params),
            }
        })
        .boxed()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Register,
            Method::Options,
            Method::Message,
            Method::Subscribe,
            Method::Notify,
            Method::Publish,
            Method::Refer,
            Method::Service,
            Method::Benotify,
        ]),
        token().prop_map(|t| Method::parse(&t).expect("a token is a method")),
    ]
}

/// `word` characters of a Call-ID (RFC 3261 §25.1), without `@`.
fn call_id() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,16}",
        prop::option::of(host_name()),
    )
        .prop_map(|(w, h)| match h {
            Some(h) => format!("{w}@{h}"),
            None => w,
        })
}

/// Extension headers: token names (prefixed so that none is a known header)
/// and values without control characters or surrounding white space.
fn extension_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            token().prop_map(|t| format!("X-{t}")),
            prop::collection::vec(
                prop_oneof![
                    4 => any::<char>().prop_filter("no controls", |c| !c.is_control() || *c == '\t'),
                    4 => prop::char::range('a', 'z'),
                    1 => Just(' '),
                ],
                0..20,
            )
            .prop_map(|cs| String::from_iter(cs).trim_matches([' ', '\t']).to_owned()),
        ),
        0..4,
    )
}

/// The typed values a generated message was built from, to compare with the
/// typed views of the parsed message.
#[derive(Debug, Clone)]
struct Typed {
    vias: Vec<Via>,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: CSeq,
    contacts: Option<Contacts>,
    routes: Vec<NameAddr>,
    record_routes: Vec<NameAddr>,
}

fn typed_headers(method: Method) -> BoxedStrategy<Typed> {
    (
        prop::collection::vec(via(), 1..4),
        from_to(true),
        from_to(false),
        call_id(),
        0u32..(1 << 31),
        prop_oneof![
            3 => prop::collection::vec(contact(), 1..4).prop_map(|c| Some(Contacts::List(c))),
            1 => Just(Some(Contacts::Star)),
            2 => Just(None),
        ],
        prop::collection::vec(name_addr(sip_uri(false).prop_map(Uri::Sip)), 0..3),
        prop::collection::vec(name_addr(sip_uri(false).prop_map(Uri::Sip)), 0..3),
    )
        .prop_map(
            move |(vias, from, to, call_id, seq, contacts, routes, record_routes)| Typed {
                vias,
                from,
                to,
                call_id,
                cseq: CSeq {
                    seq,
                    method: method.clone(),
                },
                contacts,
                routes,
                record_routes,
            },
        )
        .boxed()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn headers_from(t: &Typed, extra: &[(String, String)], split_lists: bool) -> Headers {
    let mut h = Headers::new();
    if split_lists {
        for v in &t.vias {
            h.push(HeaderName::Via, v.to_string());
        }
    } else {
        h.push(HeaderName::Via, join(&t.vias));
    }
    for r in &t.record_routes {
        h.push(HeaderName::RecordRoute, r.to_string());
    }
    if !t.routes.is_empty() {
        h.push(HeaderName::Route, join(&t.routes));
    }
    h.push(HeaderName::From, t.from.to_string());
    h.push(HeaderName::To, t.to.to_string());
    h.push(HeaderName::CallId, t.call_id.clone());
    h.push(HeaderName::CSeq, t.cseq.to_string());
    match &t.contacts {
        Some(Contacts::Star) => h.push(HeaderName::Contact, "*"),
        Some(Contacts::List(c)) if split_lists => {
            for c in c {
                h.push(HeaderName::Contact, c.to_string());
            }
        }
        Some(Contacts::List(c)) => h.push(HeaderName::Contact, join(c)),
        None => {}
    }
    for (n, v) in extra {
        h.push(HeaderName::parse(n), v.clone());
    }
    h
}

fn request_uri() -> impl Strategy<Value = Uri> {
    prop_oneof![
        4 => sip_uri(false).prop_map(Uri::Sip),
        1 => tel_uri().prop_map(Uri::Tel),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn request() -> BoxedStrategy<(Request, Typed)> {
    method()
        .prop_flat_map(|m| {
            (
                request_uri(),
                typed_headers(m.clone()),
                extension_headers(),
                any::<bool>(),
                body(),
            )
                .prop_map(move |(uri, typed, extra, split, body)| {
                    let req = Request {
                        method: m.clone(),
                        uri,
                        headers: headers_from(&typed, &extra, split),
                        body,
                    };
                    (req, typed)
                })
        })
        .boxed()
}

fn reason() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>().prop_filter("no controls", |c| !c.is_control() || *c == '\t'),
            5 => prop::char::range('a', 'z'),
            1 => Just(' '),
        ],
        0..16,
    )
    .prop_map(String::from_iter)
}

fn response() -> BoxedStrategy<(Response, Typed)> {
    (
        method().prop_flat_map(typed_headers),
        100u16..=699,
        reason(),
        extension_headers(),
        any::<bool>(),
        body(),
    )
        .prop_map(|(typed, status, reason, extra, split, body)| {
            let resp = Response {
                status,
                reason,
                headers: headers_from(&typed, &extra, split),
                body,
            };
            (resp, typed)
        })
        .boxed()
}

fn assert_typed_views(h: &Headers, t: &Typed) -> Result<(), TestCaseError> {
    prop_assert_eq!(h.vias().expect("vias"), t.vias.clone());
    prop_assert_eq!(h.from().expect("from"), t.from.clone());
    prop_assert_eq!(h.to().expect("to"), t.to.clone());
    prop_assert_eq!(h.call_id().expect("call-id"), t.call_id.as_str());
    prop_assert_eq!(h.cseq().expect("cseq"), t.cseq.clone());
    let contacts = h.contacts().expect("contacts");
    match &t.contacts {
        None => prop_assert_eq!(contacts, Contacts::List(Vec::new())),
        Some(c) => prop_assert_eq!(contacts, c.clone()),
    }
    prop_assert_eq!(h.routes().expect("routes"), t.routes.clone());
    prop_assert_eq!(
        h.record_routes().expect("record-routes"),
        t.record_routes.clone()
    );
    Ok(())
}

/// Splits `bytes` at the given fractions and feeds the pieces to a framer.
fn frame_all(bytes: &[u8], cuts: &[prop::sample::Index]) -> Result<Vec<Frame>, String> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut f = StreamFramer::new(Limits::default());
    let mut frames = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        f.push(&bytes[last..p]);
        last = p;
        while let Some(fr) = f.next_frame() {
            frames.push(fr.map_err(|e| e.to_string())?);
        }
    }
    if f.buffered() != 0 {
        return Err(format!("{} bytes left over", f.buffered()));
    }
    Ok(frames)
}

// ------------------------------------------------- parse ∘ serialise = id

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn requests_survive_serialise_then_parse((req, typed) in request()) {
        let bytes = req.to_bytes();
        let parsed = parse_datagram(&bytes, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&parsed, &Message::Request(req.clone()));
        assert_typed_views(&req.headers, &typed)?;
        prop_assert_eq!(check_request(&req), Ok(()));
    }

    #[test]
    fn responses_survive_serialise_then_parse((resp, typed) in response()) {
        let bytes = resp.to_bytes();
        let parsed = parse_datagram(&bytes, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&parsed, &Message::Response(resp.clone()));
        assert_typed_views(&resp.headers, &typed)?;
        prop_assert!(check_response(&resp).is_ok());
    }

    #[test]
    fn streams_of_messages_frame_the_same_however_they_are_chunked(
        (a, _) in request(),
        (b, _) in response(),
        pings in 0usize..3,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for _ in 0..pings {
            bytes.extend_from_slice(PING);
        }
        bytes.extend_from_slice(&a.to_bytes());
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&b.to_bytes());
        bytes.extend_from_slice(&a.to_bytes());
        let frames = frame_all(&bytes, &cuts).map_err(TestCaseError::fail)?;
        let mut expected = vec![Frame::Ping; pings];
        expected.extend([
            Frame::Message(Message::Request(a.clone())),
            Frame::Pong,
            Frame::Message(Message::Response(b)),
            Frame::Message(Message::Request(a)),
        ]);
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn uris_survive_display_then_parse(uri in any_uri()) {
        prop_assert_eq!(Uri::parse(&uri.to_string()), Ok(uri));
    }

    #[test]
    fn name_addrs_survive_display_then_parse(na in name_addr(any_uri())) {
        prop_assert_eq!(NameAddr::parse(&na.to_string(), "To"), Ok(na));
    }

    #[test]
    fn auth_headers_survive_display_then_parse(
        scheme in "[A-Za-z][A-Za-z0-9-]{0,8}",
        params in prop::collection::vec((token(), quotable_text()), 0..5),
    ) {
        let a = AuthHeader { scheme, params };
        prop_assert_eq!(AuthHeader::parse(&a.to_string(), "Authorization"), Ok(a));
    }
}

// ------------------------------------------------------------- no panics

/// Bytes in the shape of SIP, so that random input gets past the first
/// checks of each parser.
fn sipish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let snippets: Vec<Vec<u8>> = [
        "SIP/2.0 ",
        "INVITE ",
        "sip:",
        "\r\n",
        "Via: SIP/2.0/UDP ",
        ";branch=z9hG4bK",
        "Content-Length: ",
        "l: ",
        "\r\n\r\n",
        "<sip:a@[::1]>",
        "\"",
        "\\",
        "é",
        "%",
        "\r\n ",
        "To: ",
        "From: ",
        "CSeq: 1 INVITE",
        "Call-ID: ",
        "Contact: ",
        ";tag=",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(
                b"sip:@;=?&<>\"\\[]:,. %/0123456789abcdefABCDEF\t\r\nSIP/2.0 zZ".to_vec()
            )
            .prop_map(|b| vec![b]),
            2 => prop::sample::select(snippets),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ],
        0..max,
    )
    .prop_map(|pieces| pieces.concat())
}

fn sipish_text(max: usize) -> impl Strategy<Value = String> {
    sipish_bytes(max).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The corpus plus some generated messages, to mutate.
fn seed_messages() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for rfc in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(dir.join(rfc)).expect("corpus") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "dat") {
                out.push(std::fs::read(p).expect("read"));
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                any::<u8>(),
                prop::sample::select(b"\r\n \t:;,\"\\<>[]%@=0".to_vec())
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
}

fn mutate(mut m: Vec<u8>, ops: &[Mutation]) -> Vec<u8> {
    for op in ops {
        match op {
            Mutation::Flip(i, b) if !m.is_empty() => {
                let i = i.index(m.len());
                m[i] ^= b;
            }
            Mutation::Insert(i, b) => {
                let i = i.index(m.len() + 1);
                m.insert(i, *b);
            }
            Mutation::Delete(i) if !m.is_empty() => {
                let i = i.index(m.len());
                m.remove(i);
            }
            Mutation::Duplicate(a, b) if !m.is_empty() => {
                let (a, b) = (a.index(m.len()), b.index(m.len()));
                let (lo, hi) = (a.min(b), a.max(b).min(a.min(b) + 64));
                let piece = m[lo..hi].to_vec();
                m.splice(hi..hi, piece);
            }
            _ => {}
        }
    }
    m
}

/// Whatever `parse_datagram` accepts must serialise to bytes it accepts as
/// the same message.
fn accepted_input_round_trips(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = parse_datagram(bytes, &Limits::default()) {
        let out = m.to_bytes();
        // The canonical form may be longer than the input (compact names are
        // written in full), so it is re-read without a size cap.
        let unbounded = Limits {
            max_message_bytes: usize::MAX,
            ..Limits::default()
        };
        let again = parse_datagram(&out, &unbounded).map_err(|e| {
            TestCaseError::fail(format!(
                "accepted {:?}\nbut not its serialisation {:?}: {e}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&out)
            ))
        })?;
        prop_assert_eq!(again, m);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_message_parsers(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), sipish_bytes(300)],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        accepted_input_round_trips(&bytes)?;
        let _ = parse_head(&bytes, &Limits::default());
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut f = StreamFramer::new(Limits { max_message_bytes: 512, max_headers: 16 });
        let mut last = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            f.push(&bytes[last..p]);
            last = p;
            for _ in 0..8 {
                if f.next_frame().is_none() {
                    break;
                }
            }
        }
    }

    #[test]
    fn start_lines_with_any_text_never_panic(
        prefix in prop::sample::select(vec![
            "", "S", "SIP", "SIP/", "SIP/2.0 ", "SIP/2.0 200", "SIP/2.0 200 ",
            "INVITE ", "INVITE sip:a@b ", "INVITE sip:a@b SIP", "INVITE sip:a@b SIP/",
        ]),
        rest in any::<String>(),
    ) {
        let text = format!("{prefix}{rest}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
        accepted_input_round_trips(text.as_bytes())?;
    }

    #[test]
    fn typed_accessors_never_panic_on_any_header_value(
        values in prop::collection::vec(prop_oneof![any::<String>(), sipish_text(60)], 1..4),
    ) {
        let mut h = Headers::new();
        for v in &values {
            for name in [
                HeaderName::Via, HeaderName::From, HeaderName::To, HeaderName::CallId,
                HeaderName::CSeq, HeaderName::Contact, HeaderName::Route, HeaderName::RecordRoute,
                HeaderName::Path, HeaderName::MaxForwards, HeaderName::Expires,
                HeaderName::MinExpires, HeaderName::ContentType, HeaderName::Event,
                HeaderName::SubscriptionState, HeaderName::Authorization,
                HeaderName::ProxyAuthorization, HeaderName::WwwAuthenticate,
                HeaderName::ProxyAuthenticate, HeaderName::Supported, HeaderName::Require,
            ] {
                h.push(name, v.clone());
            }
        }
        let _ = (h.vias(), h.top_via(), h.from(), h.to(), h.call_id(), h.cseq());
        let _ = (h.contacts(), h.routes(), h.record_routes(), h.path());
        let _ = (h.max_forwards(), h.expires(), h.min_expires(), h.content_type());
        let _ = (h.event(), h.subscription_state(), h.authorization(), h.proxy_authorization());
        let _ = (h.www_authenticate(), h.proxy_authenticate());
        let _ = (h.tokens(&HeaderName::Require), h.supports("100rel"));
        if let Ok(v) = h.top_via() {
            let _ = (v.received(), v.has_rfc3261_branch(), v.sent_by());
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_value_parsers(s in prop_oneof![any::<String>(), sipish_text(80)]) {
        // Every parser must cope with any input. The round trips are asserted
        // for what a header value can hold: unfolded text, never CR or LF.
        if s.contains(['\r', '\n']) {
            let _ = (Uri::parse(&s), NameAddr::parse(&s, "To"), Via::parse(&s));
            let _ = (AuthHeader::parse(&s, "Authorization"), CSeq::parse(&s));
            let _ = (MediaType::parse(&s, "Content-Type"), Params::parse_header_params(&s));
            return Ok(());
        }
        if let Ok(u) = Uri::parse(&s) {
            prop_assert_eq!(Uri::parse(&u.to_string()), Ok(u));
        }
        if let Ok(na) = NameAddr::parse(&s, "Contact") {
            prop_assert_eq!(NameAddr::parse(&na.to_string(), "Contact"), Ok(na));
        }
        if let Ok(v) = Via::parse(&s) {
            prop_assert_eq!(Via::parse(&v.to_string()), Ok(v));
        }
        if let Ok(a) = AuthHeader::parse(&s, "Authorization") {
            prop_assert_eq!(AuthHeader::parse(&a.to_string(), "Authorization"), Ok(a));
        }
        if let Ok(c) = CSeq::parse(&s) {
            prop_assert_eq!(CSeq::parse(&c.to_string()), Ok(c));
        }
        if let Ok(m) = MediaType::parse(&s, "Content-Type") {
            prop_assert_eq!(MediaType::parse(&m.to_string(), "Content-Type"), Ok(m));
        }
        if let Ok(p) = Params::parse_header_params(&s) {
            prop_assert_eq!(Params::parse_header_params(&p.to_string()), Ok(p));
        }
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn mutated_valid_messages_never_panic_and_round_trip_if_accepted(
        seed in any::<prop::sample::Index>(),
        ops in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seed_messages();
        let bytes = mutate(seed.get(&seeds).clone(), &ops);
        accepted_input_round_trips(&bytes)?;
        if let Ok(Message::Request(r)) = parse_datagram(&bytes, &Limits::default()) {
            let _ = check_request(&r);
            let _ = r.transaction_key();
        }
        let mut f = StreamFramer::new(Limits::default());
        f.push(&bytes);
        for _ in 0..4 {
            if f.next_frame().is_none() {
                break;
            }
        }
    }
}

/// Byte mutations of a string, kept only where they leave valid UTF-8 without
/// line breaks (what a header value can be).
fn mutate_text(s: &str, ops: &[Mutation]) -> Option<String> {
    let m = String::from_utf8(mutate(s.as_bytes().to_vec(), ops)).ok()?;
    (!m.contains(['\r', '\n'])).then_some(m)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn mutated_typed_values_round_trip_if_accepted(
        na in name_addr(any_uri()),
        v in via(),
        ops in prop::collection::vec(mutation(), 1..4),
    ) {
        if let Some(s) = mutate_text(&na.to_string(), &ops)
            && let Ok(p) = NameAddr::parse(&s, "To")
        {
            prop_assert_eq!(NameAddr::parse(&p.to_string(), "To"), Ok(p));
        }
        if let Some(s) = mutate_text(&na.uri.to_string(), &ops)
            && let Ok(u) = Uri::parse(&s)
        {
            prop_assert_eq!(Uri::parse(&u.to_string()), Ok(u));
        }
        if let Some(s) = mutate_text(&v.to_string(), &ops)
            && let Ok(p) = Via::parse(&s)
        {
            prop_assert_eq!(Via::parse(&p.to_string()), Ok(p));
        }
    }
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn mutated_generated_requests_round_trip_if_accepted(
        (req, _) in request(),
        ops in prop::collection::vec(mutation(), 1..4),
    ) {
        accepted_input_round_trips(&mutate(req.to_bytes(), &ops))?;
    }
}
