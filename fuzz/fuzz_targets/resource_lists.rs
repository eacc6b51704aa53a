//! Resource-lists parser: never panics, and whatever it accepts regenerates
//! losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::resource_lists::ResourceLists;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = ResourceLists::parse(data) {
        let again = ResourceLists::parse(doc.to_xml().as_bytes())
            .expect("generated resource-lists must parse");
        assert_eq!(again, doc, "resource-lists must survive regeneration");
    }
});
