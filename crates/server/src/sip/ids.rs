//! Random identifiers: Via branches, tags, Call-IDs, ETags. Unguessable, so a
//! third party cannot forge a response or inject into a dialog.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Without system randomness fall back to time and a counter: still
        // unique, if predictable; the server logs nothing secret with it.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
    }
    u64::from_ne_bytes(b)
}

/// A random token of 16 hex digits.
pub fn token() -> String {
    format!("{:016x}", random_u64())
}

/// A fresh RFC 3261 branch (`z9hG4bK` magic cookie + random + counter).
pub fn branch() -> String {
    format!(
        "z9hG4bK{:x}.{:x}",
        random_u64(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh From/To tag.
pub fn tag() -> String {
    token()
}

/// A fresh Call-ID for requests the server originates.
pub fn call_id(host: &str) -> String {
    format!(
        "{}{:x}@{host}",
        token(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A 128-bit random value as 32 hex digits (conference URIs, session tokens).
pub fn long_token() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_well_formed() {
        let a = branch();
        let b = branch();
        assert!(a.starts_with("z9hG4bK"));
        assert_ne!(a, b);
        assert_eq!(long_token().len(), 32);
        assert!(switchboard_sip::text::is_token(&tag()));
    }
}
