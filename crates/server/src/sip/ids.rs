//! Random identifiers: Via branches, tags, Call-IDs, ETags. Unguessable, so a
//! third party cannot forge a response or inject into a dialog.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random value from the thread-local CSPRNG (ChaCha, seeded and
/// periodically reseeded from the operating system): unguessable, without a
/// system call per identifier.
fn random_u64() -> u64 {
    rand::random()
}

/// A random token of 16 hex digits.
pub fn token() -> String {
    format!("{:016x}", random_u64())
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
        assert_ne!(token(), token());
        assert_eq!(long_token().len(), 32);
        assert!(switchboard_sip::text::is_token(&tag()));
    }
}
