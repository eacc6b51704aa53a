//! RFC 5118 "SIP Torture Test Messages for Internet Protocol Version 6",
//! every message of §4, against the codec.
//!
//! The messages are in `tests/data/rfc5118/*.dat`, named as the RFC names
//! them, with CRLF line ends (see `tests/data/torture_source.py`). Only §4.2
//! (`ipv6-bad`) is invalid; every other message must be accepted, including
//! the two the RFC asks receivers to be liberal about (§4.5 `received` with
//! brackets, §4.10 the three-colon reference from RFC 3261's ABNF bug).
//!
//! Three messages declare a Content-Length that does not match their body
//! (the RFC's own arithmetic; the Appendix A archive has the same values):
//! `ipv6-in-sdp` declares 268 for 251 octets, `mult-ip-in-sdp` 181 for 189,
//! `ipv4-mapped-ipv6` 236 for 245. Over UDP the first is a Content-Length
//! larger than the datagram, which RFC 3261 §18.3 answers with 400, and the
//! other two lose the octets beyond the declared length. The tests assert
//! exactly that, and then check the IPv6 content with the length corrected.

mod common;

use common::*;
use std::net::{IpAddr, Ipv6Addr};
use switchboard_sip::typed::Contacts;
use switchboard_sip::{Host, Message, ParseError, Request, Uri, check_request, defect_for};

const RFC: &str = "rfc5118";

fn v6(s: &str) -> Host {
    Host::V6(s.parse::<Ipv6Addr>().expect("ipv6 literal"))
}

fn sip_host(uri: &Uri) -> &Host {
    &uri.as_sip().expect("sip URI").host
}

fn contact_host(r: &Request) -> Host {
    match r.headers.contacts().expect("Contact") {
        Contacts::List(c) => sip_host(&c[0].uri).clone(),
        Contacts::Star => panic!("not *"),
    }
}

/// The message with its Content-Length replaced by the true body length.
fn with_true_length(bytes: &[u8]) -> Vec<u8> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    let (head, body) = bytes.split_at(split);
    let head = String::from_utf8(head.to_vec()).expect("ascii head");
    let start = head.find("Content-Length: ").expect("Content-Length") + 16;
    let end = start + head[start..].find('\r').expect("line end");
    let mut out = format!("{}{}{}", &head[..start], body.len(), &head[end..]).into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn every_message_of_the_rfc_is_here() {
    assert_eq!(
        names(RFC),
        [
            "ipv4-mapped-ipv6",
            "ipv6-bad",
            "ipv6-bug-abnf-3-colons",
            "ipv6-correct-abnf-2-colons",
            "ipv6-good",
            "ipv6-in-sdp",
            "mult-ip-in-header",
            "mult-ip-in-sdp",
            "port-ambiguous",
            "port-unambiguous",
            "via-received-param-no-delim",
            "via-received-param-with-delim",
        ]
    );
}

#[test]
fn all_but_ipv6_bad_and_the_mislabelled_length_are_accepted_and_round_trip() {
    for name in names(RFC) {
        if name == "ipv6-bad" || name == "ipv6-in-sdp" {
            continue;
        }
        valid_request(RFC, &name);
        let bytes = load(RFC, &name);
        if name != "mult-ip-in-sdp" && name != "ipv4-mapped-ipv6" {
            let m = datagram(&bytes).expect("parses");
            assert_frames_at_every_split(&name, &bytes, &m);
        }
    }
}

#[test]
fn s4_1_ipv6_good_references_in_request_uri_via_and_contact() {
    let r = valid_request(RFC, "ipv6-good");
    assert_eq!(sip_host(&r.uri), &v6("2001:db8::10"));
    assert_eq!(r.headers.top_via().expect("Via").host, v6("2001:db8::9:1"));
    assert_eq!(contact_host(&r), v6("2001:db8::1"));
}

#[test]
fn s4_2_ipv6_bad_reference_without_brackets_gets_400() {
    let bytes = load(RFC, "ipv6-bad");
    let e = datagram(&bytes).expect_err("sip:2001:db8::10 is not a host");
    assert!(matches!(e, ParseError::Uri(_)), "{e:?}");
    assert_eq!(defect_for(&e).status, 400);
}

#[test]
fn s4_3_port_ambiguous_is_read_as_all_address() {
    // Well formed; the sender meant port 5070 but wrote it inside the "]".
    let r = valid_request(RFC, "port-ambiguous");
    let u = r.uri.as_sip().expect("sip");
    assert_eq!(u.host, v6("2001:db8::10:5070"));
    assert_eq!(u.port, None);
}

#[test]
fn s4_4_port_unambiguous() {
    let r = valid_request(RFC, "port-unambiguous");
    let u = r.uri.as_sip().expect("sip");
    assert_eq!(u.host, v6("2001:db8::10"));
    assert_eq!(u.port, Some(5070));
}

#[test]
fn s4_5_received_parameter_with_and_without_brackets() {
    let want: IpAddr = "2001:db8::9:255".parse().expect("ip");
    for name in [
        "via-received-param-with-delim",
        "via-received-param-no-delim",
    ] {
        let r = valid_request(RFC, name);
        let via = r.headers.top_via().expect("Via");
        assert_eq!(via.host, v6("2001:db8::9:1"), "{name}");
        assert_eq!(via.received(), Some(want), "{name}");
    }
}

#[test]
fn s4_6_ipv6_in_sdp_declares_more_octets_than_it_carries() {
    let bytes = load(RFC, "ipv6-in-sdp");
    let e = datagram(&bytes).expect_err("268 declared, 251 present");
    assert_eq!(e, ParseError::ContentLength("larger than the message"));
    assert_eq!(defect_for(&e).status, 400);
    // The IPv6 content itself is accepted.
    let fixed = with_true_length(&bytes);
    let r = match datagram(&fixed).expect("parses with the true length") {
        Message::Request(r) => r,
        Message::Response(_) => panic!("request"),
    };
    check_request(&r).expect("well formed");
    assert_eq!(sip_host(&r.uri), &v6("2001:db8::10"));
    assert_eq!(contact_host(&r), v6("2001:db8::20"));
    assert_eq!(r.body.len(), 251);
    assert!(String::from_utf8_lossy(&r.body).contains("c=IN IP6 2001:db8::20\r\n"));
}

#[test]
fn s4_7_mixed_ipv4_and_ipv6_vias() {
    let r = valid_request(RFC, "mult-ip-in-header");
    let vias = r.headers.vias().expect("Via");
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (&vias[0].host, vias[0].port),
        (&v6("2001:db8::9:1"), Some(6050))
    );
    assert_eq!(vias[1].host, Host::V4("192.0.2.1".parse().expect("ip")));
    assert_eq!(
        (vias[2].transport.as_str(), &vias[2].host),
        ("TCP", &v6("2001:db8::9:255"))
    );
    assert_eq!(vias[2].received(), Some("192.0.2.200".parse().expect("ip")));
}

#[test]
fn s4_8_and_4_9_short_declared_lengths_cut_the_sdp() {
    for (name, declared, actual) in [("mult-ip-in-sdp", 181, 189), ("ipv4-mapped-ipv6", 236, 245)] {
        let bytes = load(RFC, name);
        let r = valid_request(RFC, name);
        assert_eq!(
            r.body.len(),
            declared,
            "{name}: bytes past Content-Length are ignored"
        );
        let fixed = match datagram(&with_true_length(&bytes)).expect("parses") {
            Message::Request(r) => r,
            Message::Response(_) => panic!("request"),
        };
        assert_eq!(fixed.body.len(), actual, "{name}");
        assert!(fixed.body.starts_with(&r.body));
    }
}

#[test]
fn s4_8_mult_ip_in_sdp_headers() {
    let r = valid_request(RFC, "mult-ip-in-sdp");
    assert_eq!(
        sip_host(&r.headers.to().expect("To").uri),
        &v6("2001:db8::10")
    );
    assert_eq!(contact_host(&r), v6("2001:db8::9:1"));
}

#[test]
fn s4_9_ipv4_mapped_ipv6_addresses() {
    let r = valid_request(RFC, "ipv4-mapped-ipv6");
    let vias = r.headers.vias().expect("Via");
    assert_eq!(
        (&vias[0].host, vias[0].port),
        (&v6("::ffff:192.0.2.10"), Some(19823))
    );
    assert_eq!(vias[1].host, v6("::ffff:192.0.2.2"));
    assert_eq!(contact_host(&r), v6("::ffff:192.0.2.2"));
    match r.headers.contacts().expect("Contact") {
        Contacts::List(c) => assert_eq!(c[0].display.as_deref(), Some("T. desk phone")),
        Contacts::Star => panic!("not *"),
    }
}

#[test]
fn s4_10_three_colon_reference_from_the_abnf_bug_is_tolerated() {
    let bug = valid_request(RFC, "ipv6-bug-abnf-3-colons");
    let good = valid_request(RFC, "ipv6-correct-abnf-2-colons");
    assert_eq!(sip_host(&bug.uri), &v6("2001:db8::192.0.2.1"));
    assert_eq!(bug.uri, good.uri);
    assert_eq!(
        bug.headers.to().expect("To").uri,
        good.headers.to().expect("To").uri
    );
    // Written back in the corrected form (RFC 5118 permits a proxy to do so).
    let text = String::from_utf8(bug.to_bytes()).expect("utf-8");
    assert!(!text.starts_with("OPTIONS sip:user@[2001:db8:::"), "{text}");
}
