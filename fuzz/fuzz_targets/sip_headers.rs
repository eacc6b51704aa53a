//! Typed header parsers (`switchboard_sip::typed`, `Params`).
//!
//! Input layout: the first byte picks the parser, the rest (UTF-8) is the
//! header value. Never panics; for values a header line can hold (no CR or
//! LF), an accepted value written back parses to the same value. The last
//! selector puts the value under every typed header and calls every typed
//! accessor of `Headers`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::typed::{EventHeader, SubscriptionState};
use switchboard_sip::{AuthHeader, CSeq, HeaderName, Headers, MediaType, NameAddr, Params, Via};

/// Asserts that `parse(display(v)) == v` for an accepted value.
macro_rules! round_trip {
    ($parsed:expr, $reparse:expr) => {
        if let Ok(v) = $parsed {
            let written = v.to_string();
            assert_eq!($reparse(&written), Ok(v), "written as {written:?}");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    if s.contains(['\r', '\n']) {
        // Not a header value (folding is undone before these parsers run);
        // they must still not panic.
        let _ = (NameAddr::parse(s, "To"), Via::parse(s), CSeq::parse(s));
        let _ = (
            MediaType::parse(s, "Content-Type"),
            AuthHeader::parse(s, "Authorization"),
        );
        let _ = (Params::parse_header_params(s), EventHeader::parse(s));
        let _ = SubscriptionState::parse(s);
        return;
    }
    match which % 9 {
        0 => round_trip!(NameAddr::parse(s, "Contact"), |w| NameAddr::parse(
            w, "Contact"
        )),
        1 => {
            if let Ok(v) = Via::parse(s) {
                let _ = (
                    v.branch(),
                    v.has_rfc3261_branch(),
                    v.received(),
                    v.sent_by(),
                );
            }
            round_trip!(Via::parse(s), Via::parse)
        }
        2 => round_trip!(CSeq::parse(s), CSeq::parse),
        3 => round_trip!(MediaType::parse(s, "Content-Type"), |w| MediaType::parse(
            w,
            "Content-Type"
        )),
        4 => round_trip!(
            AuthHeader::parse(s, "Authorization"),
            |w| AuthHeader::parse(w, "Authorization")
        ),
        5 => round_trip!(Params::parse_header_params(s), Params::parse_header_params),
        6 => round_trip!(EventHeader::parse(s), EventHeader::parse),
        7 => round_trip!(SubscriptionState::parse(s), SubscriptionState::parse),
        _ => {
            let mut h = Headers::new();
            for name in [
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
                HeaderName::Contact,
                HeaderName::Route,
                HeaderName::RecordRoute,
                HeaderName::Path,
                HeaderName::MaxForwards,
                HeaderName::Expires,
                HeaderName::MinExpires,
                HeaderName::ContentType,
                HeaderName::Event,
                HeaderName::SubscriptionState,
                HeaderName::Authorization,
                HeaderName::ProxyAuthorization,
                HeaderName::WwwAuthenticate,
                HeaderName::ProxyAuthenticate,
                HeaderName::Require,
            ] {
                h.push(name, s);
            }
            let _ = (
                h.vias(),
                h.from(),
                h.to(),
                h.call_id(),
                h.cseq(),
                h.contacts(),
            );
            let _ = (h.routes(), h.record_routes(), h.path(), h.max_forwards());
            let _ = (h.expires(), h.min_expires(), h.content_type(), h.event());
            let _ = (
                h.subscription_state(),
                h.authorization(),
                h.proxy_authorization(),
            );
            let _ = (
                h.www_authenticate(),
                h.proxy_authenticate(),
                h.tokens(&HeaderName::Require),
            );
        }
    }
});
