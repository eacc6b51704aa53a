//! Property tests of the RFC 3994 composition indications: the parser
//! survives arbitrary and mutated input without panicking and with a
//! reason-phrase-safe error; the generator's output parses back to the
//! struct it came from; whatever the parser accepts regenerates losslessly
//! (the oracle of `fuzz/fuzz_targets/iscomposing.rs`).
//!
//! Strategies follow `properties.rs`: text fields get any character XML
//! allows (including `<`, `&`, quotes, CR, tabs, astral characters),
//! trimmed, since the parser trims `lastactive` and `contenttype`.

use proptest::prelude::*;

use switchboard_sip_bodies::iscomposing::{IsComposing, NS_ISCOMPOSING, State};
use switchboard_sip_bodies::{Error, xml_safe};

fn is_xml_trim(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Text XML can carry, without leading/trailing XML whitespace.
fn token_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            2 => prop::sample::select(vec!['<', '>', '&', '"', '\'', '\r', '\n', '\t', ' ', ']', ';', '#', ':', '/']),
        ],
        0..16,
    )
    .prop_map(|cs| {
        xml_safe(&cs.into_iter().collect::<String>())
            .trim_matches(is_xml_trim)
            .to_owned()
    })
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?(Z|[+-][0-9]{2}:[0-9]{2})",
        token_text(),
    ]
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["text", "audio", "video", "text/plain", "text/html"])
            .prop_map(str::to_owned),
        token_text(),
    ]
}

fn is_composing() -> impl Strategy<Value = IsComposing> {
    (
        prop::sample::select(State::ALL.to_vec()),
        prop::option::of(timestamp()),
        prop::option::of(content_type()),
        prop::option::of(1..=u32::MAX),
    )
        .prop_map(|(state, last_active, content_type, refresh)| IsComposing {
            state,
            last_active,
            content_type,
            refresh,
        })
}

fn check_error(e: &Error) {
    let s = e.to_string();
    assert!(
        s.chars().all(|c| (' '..='~').contains(&c)),
        "error message must be printable ASCII: {s:?}"
    );
    assert!(s.len() < 300, "error message too long: {s:?}");
}

/// Valid documents to mutate: random bytes alone rarely get past the first
/// tag.
fn seeds() -> Vec<Vec<u8>> {
    let full = IsComposing {
        state: State::Active,
        last_active: Some("2003-01-27T10:43:00Z".into()),
        content_type: Some("text/plain".into()),
        refresh: Some(60),
    };
    vec![
        full.to_xml().into_bytes(),
        IsComposing::new(State::Idle).to_xml().into_bytes(),
        format!(
            "<c:isComposing xmlns:c=\"{NS_ISCOMPOSING}\" xmlns:x=\"urn:x\"><c:state>active</c:state><x:e a=\"1\">t</x:e><c:refresh>+007</c:refresh></c:isComposing>"
        )
        .into_bytes(),
    ]
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(seeds()),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop_oneof![any::<u8>(), prop::sample::select(b"<>/&;\"= 0+-x".to_vec())],
            ),
            0..6,
        ),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut doc, edits, cut, truncate)| {
            for (at, byte) in edits {
                let i = at.index(doc.len());
                doc[i] = byte;
            }
            if truncate {
                doc.truncate(cut.index(doc.len() + 1));
            }
            doc
        })
}

/// Parses; an accepted document must regenerate to itself, a refused one
/// must have a reason-phrase-safe error.
fn check(input: &[u8]) -> Result<(), TestCaseError> {
    match IsComposing::parse(input) {
        Ok(d) => {
            if let Some(r) = d.refresh {
                prop_assert!(r > 0);
            }
            prop_assert_eq!(IsComposing::parse(d.to_xml().as_bytes()).unwrap(), d);
        }
        Err(e) => check_error(&e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trips(d in is_composing()) {
        prop_assert_eq!(IsComposing::parse(d.to_xml().as_bytes()).unwrap(), d);
    }

    /// Generation never produces an ill-formed document, whatever the text:
    /// characters XML cannot carry are dropped, a zero refresh left out.
    #[test]
    fn generation_is_well_formed_for_any_text(
        active in any::<bool>(),
        last_active in prop::option::of(any::<String>()),
        content_type in prop::option::of(any::<String>()),
        refresh in prop::option::of(any::<u32>()),
    ) {
        let d = IsComposing {
            state: if active { State::Active } else { State::Idle },
            last_active: last_active.clone(),
            content_type: content_type.clone(),
            refresh,
        };
        let parsed = IsComposing::parse(d.to_xml().as_bytes()).unwrap();
        let expect = |s: &Option<String>| {
            s.as_deref().map(|s| xml_safe(s).trim_matches(is_xml_trim).to_owned())
        };
        prop_assert_eq!(parsed.state, d.state);
        prop_assert_eq!(parsed.last_active, expect(&last_active));
        prop_assert_eq!(parsed.content_type, expect(&content_type));
        prop_assert_eq!(parsed.refresh, refresh.filter(|&r| r > 0));
    }

    #[test]
    fn never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&input)?;
    }

    #[test]
    fn never_panics_on_text(input in "(<[a-zA-Z:]{0,12}( [a-z:]{1,5}=\"[^\"]{0,6}\")?/?>|</[a-zA-Z:]{0,12}>|&[a-z#0-9x]{0,4};?|[^<&]{0,6}|active|idle|\r?\n){0,40}") {
        check(input.as_bytes())?;
    }

    #[test]
    fn never_panics_on_mutated_documents(input in mutated()) {
        check(&input)?;
    }

    /// Any refresh text: accepted exactly when it is an optional `+` and
    /// digits not all zero, and then it is the number (saturated).
    #[test]
    fn refresh_text(v in "[+-]?[0-9 a.]{0,25}") {
        let body = format!("<isComposing xmlns=\"{NS_ISCOMPOSING}\"><state>idle</state><refresh>{v}</refresh></isComposing>");
        let t = v.trim_matches(is_xml_trim);
        let digits = t.strip_prefix('+').unwrap_or(t);
        let valid = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.bytes().any(|b| b != b'0');
        match IsComposing::parse(body.as_bytes()) {
            Ok(d) => {
                prop_assert!(valid, "{:?} accepted", v);
                let n: u128 = digits.trim_start_matches('0').parse().unwrap_or(u128::MAX);
                prop_assert_eq!(u128::from(d.refresh.unwrap()), n.min(u128::from(u32::MAX)));
            }
            Err(e) => {
                prop_assert!(!valid, "{:?} refused: {}", v, e);
                check_error(&e);
            }
        }
    }
}
