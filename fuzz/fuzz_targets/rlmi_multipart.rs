//! multipart/related + RLMI parser. Input: if it starts with `multipart/`,
//! its first line is the Content-Type header value and the rest the body;
//! otherwise all of it is the body of a fixed RLMI Content-Type.
//! Never panics; a parsed NOTIFY rebuilt by the builder parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip_bodies::rlmi::{self, Rlmi};

const FIXED: &str =
    "multipart/related;type=\"application/rlmi+xml\";start=\"<rlmi@example.com>\";boundary=\"b\"";

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.strip_prefix(b"multipart/") {
        Some(_) => match data.iter().position(|&b| b == b'\n') {
            Some(nl) => (
                String::from_utf8_lossy(&data[..nl]).into_owned(),
                &data[nl + 1..],
            ),
            None => (String::from_utf8_lossy(data).into_owned(), &[][..]),
        },
        None => (FIXED.to_owned(), data),
    };
    if let Ok(mp) = rlmi::parse_multipart_related(&content_type, body) {
        let _ = Rlmi::parse(&mp.root.body);
        if let Ok(rebuilt) = rlmi::build_multipart_related(&mp.root, &mp.parts) {
            let again = rlmi::parse_multipart_related(&rebuilt.content_type, &rebuilt.body)
                .expect("built multipart must parse");
            assert_eq!(again, mp, "multipart must survive rebuilding");
        }
    }
    if let Ok(notify) = rlmi::parse_rlmi_notify(&content_type, body)
        && let Ok(rebuilt) = rlmi::build_rlmi_notify(&notify.rlmi, &notify.rlmi_cid, &notify.parts)
    {
        let again = rlmi::parse_rlmi_notify(&rebuilt.content_type, &rebuilt.body)
            .expect("built RLMI NOTIFY must parse");
        assert_eq!(again, notify, "RLMI NOTIFY must survive rebuilding");
    }
});
