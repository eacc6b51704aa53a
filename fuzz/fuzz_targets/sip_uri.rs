//! URI parser (`switchboard_sip::Uri::parse`: sip, sips, tel, any scheme).
//!
//! Never panics, and an accepted URI written back parses to the same URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(s) else {
        return;
    };
    let written = uri.to_string();
    assert_eq!(
        Uri::parse(&written).as_ref(),
        Ok(&uri),
        "{s:?} -> {written:?}"
    );
    if let Some(sip) = uri.as_sip() {
        let _ = (sip.aor(), sip.transport(), sip.host.ip());
    }
});
