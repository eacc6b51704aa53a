//! isComposing parser: never panics, and whatever it accepts regenerates
//! losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::iscomposing::IsComposing;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = IsComposing::parse(data) {
        assert!(doc.refresh != Some(0), "an accepted refresh is positive");
        let again =
            IsComposing::parse(doc.to_xml().as_bytes()).expect("generated isComposing must parse");
        assert_eq!(again, doc, "isComposing must survive regeneration");
    }
});
