//! CPIM parser: never panics, and what it accepts regenerates into a message
//! that parses again (values it cannot carry, such as a bare CR inside a
//! header, are normalised, so equality is not expected).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::cpim::Cpim;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Cpim::parse(data) {
        let again = Cpim::parse(&msg.to_bytes()).expect("generated CPIM must parse");
        assert_eq!(
            again.body, msg.body,
            "CPIM content must be carried verbatim"
        );
    }
});
