//! Random identifiers: tags, branches, Call-IDs, cnonces, instance URNs.

/// `n` random bytes as lower-case hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    let mut out = String::with_capacity(n * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A fresh RFC 3261 branch (with the magic cookie).
pub(crate) fn new_branch() -> String {
    format!("z9hG4bK{}", random_hex(10))
}

/// A fresh From/To tag.
pub(crate) fn new_tag() -> String {
    random_hex(6)
}

/// A random (version 4) `urn:uuid:` URN.
pub(crate) fn new_instance_urn() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_the_expected_shape() {
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 27, "{b}");
        assert_ne!(new_tag(), new_tag());
        let u = new_instance_urn();
        assert_eq!(u.len(), "urn:uuid:".len() + 36, "{u}");
        let uuid = &u["urn:uuid:".len()..];
        assert_eq!(uuid.as_bytes()[14], b'4', "version nibble: {u}");
        assert!(
            matches!(uuid.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{u}"
        );
    }
}
