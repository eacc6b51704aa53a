//! Watcher-info parser: never panics, and whatever it accepts regenerates
//! losslessly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::winfo::WatcherInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = WatcherInfo::parse(data) {
        let again =
            WatcherInfo::parse(doc.to_xml().as_bytes()).expect("generated watcherinfo must parse");
        assert_eq!(again, doc, "watcherinfo must survive regeneration");
    }
});
