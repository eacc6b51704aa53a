//! Conference-info parser: never panics, and whatever it accepts regenerates
//! losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::conference_info::ConferenceInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = ConferenceInfo::parse(data) {
        let again = ConferenceInfo::parse(doc.to_xml().as_bytes())
            .expect("generated conference-info must parse");
        assert_eq!(again, doc, "conference-info must survive regeneration");
    }
});
