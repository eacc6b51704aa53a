//! User addresses (`user@domain`), the identity every front door maps to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's address. Both parts are lower-case: sign-in addresses in an
/// enterprise directory are case-insensitive, so `Alice@Example.com` and
/// `alice@example.com` are the same person on every protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    user: String,
    domain: String,
}

/// Why a text is not a valid address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address must look like user@domain")]
    Shape,
    #[error("invalid character in user name (allowed: letters, digits and . _ - + ' ~ !)")]
    User,
    #[error("invalid domain name")]
    Domain,
}

impl Address {
    /// Parses and normalises `user@domain`.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let s = s.trim();
        let s = s
            .strip_prefix("sip:")
            .or_else(|| s.strip_prefix("sips:"))
            .unwrap_or(s);
        let (user, domain) = s.rsplit_once('@').ok_or(AddressError::Shape)?;
        let user = user.to_ascii_lowercase();
        let domain = normalise_domain(domain)?;
        if user.is_empty() || user.len() > 128 {
            return Err(AddressError::Shape);
        }
        if !user.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'_' | b'-' | b'+' | b'\'' | b'~' | b'!')
        }) {
            return Err(AddressError::User);
        }
        Ok(Address { user, domain })
    }

    /// Builds from parts already known to be valid (e.g. from a parsed URI);
    /// still validated.
    pub fn from_parts(user: &str, domain: &str) -> Result<Address, AddressError> {
        Address::parse(&format!("{user}@{domain}"))
    }

    /// The user part.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

/// Validates and lower-cases a DNS domain name.
pub fn normalise_domain(d: &str) -> Result<String, AddressError> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 {
        return Err(AddressError::Domain);
    }
    for label in d.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AddressError::Domain);
        }
    }
    Ok(d)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Address, AddressError> {
        Address::parse(&s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_scheme() {
        let a = Address::parse(" sip:Alice.Smith@Example.COM. ").expect("valid");
        assert_eq!(a.to_string(), "alice.smith@example.com");
        assert_eq!(a.user(), "alice.smith");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@-bad.com",
            "a<b@example.com",
            "alice@example..com",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn serde_round_trip() {
        let a = Address::parse("bob@example.com").expect("valid");
        let json = serde_json::to_string(&a).expect("serialise");
        assert_eq!(json, "\"bob@example.com\"");
        assert_eq!(serde_json::from_str::<Address>(&json).expect("parse"), a);
        assert!(serde_json::from_str::<Address>("\"nope\"").is_err());
    }
}
