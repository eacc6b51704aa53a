//! PIDF parser: never panics, and whatever it accepts regenerates losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::pidf::Presence;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = Presence::parse(data) {
        let again = Presence::parse(doc.to_xml().as_bytes()).expect("generated PIDF must parse");
        assert_eq!(again, doc, "PIDF must survive regeneration");
    }
});
