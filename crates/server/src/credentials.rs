//! Turning a password into what is stored: an Argon2id hash (for sign-in over
//! HTTP and, later, SASL) and digest HA1 values for SIP, per realm, algorithm
//! and username form. The password itself is never stored or logged.

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use switchboard_core::Address;
use switchboard_sip::digest::{Algorithm, ha1};
use switchboard_store::{Credentials, Ha1};

/// Digest algorithms for which HA1 values are kept.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256];

/// Derives the stored credentials of `address` from `password`. The realm is
/// the user's domain; HA1s are kept for the digest username `user` and for
/// `user@domain`, since clients use either.
pub fn derive(address: &Address, password: &str) -> anyhow::Result<Credentials> {
    let mut salt = [0u8; 16];
    getrandom_fill(&mut salt)?;
    let hash = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let realm = address.domain();
    let mut values = Vec::new();
    for username in [address.user().to_owned(), address.to_string()] {
        for alg in ALGORITHMS {
            values.push(Ha1 {
                realm: realm.to_owned(),
                algorithm: alg.as_str().to_owned(),
                username: username.clone(),
                hex: ha1(alg, &username, realm, password),
            });
        }
    }
    Ok(Credentials {
        password_hash: hash,
        ha1: values,
    })
}

fn getrandom_fill(buf: &mut [u8]) -> anyhow::Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))
}

/// A random password for `user add` without `--password-stdin`.
pub fn random_password() -> anyhow::Result<String> {
    let mut raw = [0u8; 12];
    getrandom_fill(&mut raw)?;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_verifiable_hash_and_ha1s() {
        let a = Address::parse("alice@example.com").expect("valid");
        let c = derive(&a, "s3cret").expect("derive");
        let parsed = argon2::PasswordHash::new(&c.password_hash).expect("PHC string");
        use argon2::password_hash::PasswordVerifier;
        assert!(
            argon2::Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        assert!(
            argon2::Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(!c.password_hash.contains("s3cret"));
        assert_eq!(c.ha1.len(), 6);
        let md5 = c
            .ha1
            .iter()
            .find(|h| h.algorithm == "MD5" && h.username == "alice")
            .expect("md5 ha1");
        assert_eq!(
            md5.hex,
            ha1(Algorithm::Md5, "alice", "example.com", "s3cret")
        );
        assert!(
            c.ha1
                .iter()
                .any(|h| h.username == "alice@example.com" && h.algorithm == "SHA-256")
        );
    }

    #[test]
    fn random_passwords_differ() {
        let a = random_password().expect("pw");
        assert_eq!(a.len(), 12);
        assert_ne!(a, random_password().expect("pw"));
    }
}
