//! Server side of HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616,
//! RFC 8760): challenges, stateless nonces and verification of credentials.
//!
//! Nonces are stateless: `base64url(issued_at || serial || HMAC-SHA-256(secret,
//! issued_at || serial || realm)[..16])`, so any process holding the secret can check them (a pool
//! shares the secret) and no per-challenge state is kept. Replay of a
//! credential is prevented by tracking nonce-counts ([`NonceCounts`]) for as
//! long as the nonce is valid; `qop=auth` is therefore required.
//!
//! Time is an input (`now` in Unix seconds): nothing here reads a clock.

use crate::typed::AuthHeader;
use crate::uri::Uri;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

/// A digest algorithm (RFC 7616 §3.3 / RFC 8760 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (absent means MD5). The `-sess` variants
    /// are not supported and give `None`.
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(a) if a.eq_ignore_ascii_case("SHA-512-256") => Some(Algorithm::Sha512_256),
            _ => None,
        }
    }

    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Lower-case hex of H(data).
    pub fn hash_hex(self, data: &[u8]) -> String {
        self.hash_hex_parts(&[data])
    }

    /// Lower-case hex of H(the parts one after the other), without joining them.
    fn hash_hex_parts(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            hex::encode(h.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HA1 = H(username ":" realm ":" password), the value stored instead of the
/// password so that the password never needs to be kept.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The per-request inputs of a `qop=auth` digest response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    pub nonce: &'a str,
    /// Nonce count, 8 hex digits.
    pub nc: &'a str,
    pub cnonce: &'a str,
    pub method: &'a str,
    /// The `uri` parameter (the Request-URI).
    pub uri: &'a str,
}

/// The expected `response` for `qop=auth`:
/// KD(HA1, nonce:nc:cnonce:qop:H(method:uri)).
pub fn expected_response(input: &ResponseInput<'_>, ha1_hex: &str) -> String {
    let alg = input.algorithm;
    let ha2 = alg.hash_hex_parts(&[input.method.as_bytes(), b":", input.uri.as_bytes()]);
    alg.hash_hex_parts(&[
        ha1_hex.as_bytes(),
        b":",
        input.nonce.as_bytes(),
        b":",
        input.nc.as_bytes(),
        b":",
        input.cnonce.as_bytes(),
        b":auth:",
        ha2.as_bytes(),
    ])
}

/// The `response` a client computes from its password (used by test clients).
pub fn client_response(
    input: &ResponseInput<'_>,
    username: &str,
    realm: &str,
    password: &str,
) -> String {
    expected_response(input, &ha1(input.algorithm, username, realm, password))
}

const TAG_LEN: usize = 16;

/// Issues and checks stateless nonces.
pub struct NonceIssuer {
    /// HMAC-SHA-256 keyed with the secret, cloned for each tag: keying hashes
    /// the padded key twice, which need not be repeated for every nonce.
    keyed: Hmac<Sha256>,
    /// How long a nonce is accepted, in seconds.
    lifetime: u64,
    /// Makes every nonce unique even within one second, so that two clients
    /// never share a nonce (and so never collide in [`NonceCounts`]).
    serial: AtomicU64,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("NonceIssuer")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// What a nonce check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by us for this realm and still valid; carries the issue time.
    Valid(u64),
    /// Issued by us but expired: challenge again with `stale=true`.
    Stale,
    /// Not one of ours (forged, other realm, garbage).
    Invalid,
}

impl NonceIssuer {
    /// An issuer with a secret (random, or shared by a pool), a lifetime, and
    /// the first serial number (random per process, so that processes sharing
    /// the secret do not issue the same nonces).
    pub fn new(secret: [u8; 32], lifetime_secs: u64, first_serial: u64) -> NonceIssuer {
        NonceIssuer {
            keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length")),
            lifetime: lifetime_secs,
            serial: AtomicU64::new(first_serial),
        }
    }

    fn tag(&self, issued: u64, serial: u64, realm: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(&issued.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        mac.update(realm.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh, unique nonce for `realm` at time `now`.
    pub fn issue(&self, realm: &str, now: u64) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut raw = [0u8; 16 + TAG_LEN];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        raw[8..16].copy_from_slice(&serial.to_be_bytes());
        raw[16..].copy_from_slice(&self.tag(now, serial, realm)[..TAG_LEN]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce presented for `realm` at time `now`.
    pub fn check(&self, nonce: &str, realm: &str, now: u64) -> NonceState {
        // Decoded on the stack: 64 characters decode to at most 48 bytes, and
        // anything longer cannot be the 32 bytes of one of our nonces.
        let mut buf = [0u8; 48];
        if nonce.len() > 64 {
            return NonceState::Invalid;
        }
        let Ok(len) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(nonce, &mut buf)
        else {
            return NonceState::Invalid;
        };
        if len != 16 + TAG_LEN {
            return NonceState::Invalid;
        }
        let raw = &buf[..len];
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[..8]);
        let issued = u64::from_be_bytes(word);
        word.copy_from_slice(&raw[8..16]);
        let serial = u64::from_be_bytes(word);
        let expected = self.tag(issued, serial, realm);
        if !bool::from(expected[..TAG_LEN].ct_eq(&raw[16..])) {
            return NonceState::Invalid;
        }
        if issued > now.saturating_add(5) {
            // From the future (clock jump or forgery with a stolen secret): refuse.
            return NonceState::Invalid;
        }
        if now - issued.min(now) > self.lifetime {
            NonceState::Stale
        } else {
            NonceState::Valid(issued)
        }
    }

    /// The nonce lifetime in seconds.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }
}

/// Builds a challenge header value (WWW-Authenticate / Proxy-Authenticate).
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut s = format!(
        "Digest realm={}, nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"",
        crate::lex::quote(realm)
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

/// Remembers the nonce-counts used with each nonce so that a captured
/// credential cannot be replayed. A 64-wide window per nonce tolerates
/// reordering over UDP (several requests in flight with one nonce).
#[derive(Debug, Default)]
pub struct NonceCounts {
    seen: HashMap<String, Window>,
    /// Nonces in the order they were first seen, for O(1) eviction of the
    /// oldest (entries already purged are skipped lazily).
    order: std::collections::VecDeque<String>,
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    max: u32,
    /// Bit i set: count `max - i` was used.
    bits: u64,
    issued: u64,
}

impl NonceCounts {
    /// A tracker holding at most `capacity` nonces. When full, the oldest is
    /// forgotten, and a forgotten nonce would be treated as new: size the
    /// capacity above the number of nonces issued within one nonce lifetime.
    pub fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            seen: HashMap::new(),
            order: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `nc` for `nonce`; false if it was used before (a replay) or is
    /// too old to tell.
    pub fn accept(&mut self, nonce: &str, issued: u64, nc: u32) -> bool {
        if nc == 0 {
            return false;
        }
        if !self.seen.contains_key(nonce) {
            // Eviction forgets another nonce: this one stays unknown.
            if self.seen.len() >= self.capacity {
                self.evict_oldest();
            }
            self.order.push_back(nonce.to_owned());
        }
        let w = self.seen.entry(nonce.to_owned()).or_insert(Window {
            max: 0,
            bits: 0,
            issued,
        });
        if nc > w.max {
            let shift = nc - w.max;
            w.bits = if shift >= 64 { 0 } else { w.bits << shift };
            w.bits |= 1;
            w.max = nc;
            true
        } else {
            let back = w.max - nc;
            if back >= 64 || w.bits & (1 << back) != 0 {
                return false;
            }
            w.bits |= 1 << back;
            true
        }
    }

    /// Forgets nonces issued before `oldest_valid` (they are stale anyway).
    pub fn purge(&mut self, oldest_valid: u64) {
        self.seen.retain(|_, w| w.issued >= oldest_valid);
        let seen = &self.seen;
        self.order.retain(|k| seen.contains_key(k));
    }

    /// How many nonces are tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True if nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn evict_oldest(&mut self) {
        while let Some(k) = self.order.pop_front() {
            if self.seen.remove(&k).is_some() {
                return;
            }
        }
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials prove knowledge of the password of `username`.
    Authenticated {
        username: String,
        algorithm: Algorithm,
    },
    /// Right password, expired nonce: challenge again with `stale=true`.
    Stale,
    /// Anything else; challenge again (or 403 when it keeps failing). The
    /// reason is for logs only: it never says whether the user exists.
    Rejected(&'static str),
}

/// Parameters of one verification.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The realm we challenge with (the served domain).
    pub realm: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The Request-URI of the request.
    pub request_uri: &'a Uri,
    /// Current Unix time in seconds.
    pub now: u64,
}

/// Verifies Digest credentials. `lookup_ha1(username, realm, algorithm)` returns
/// the stored HA1 hex for that user, if any. Unknown users and wrong passwords
/// give the same verdict.
pub fn verify(
    cred: &AuthHeader,
    check: &Check<'_>,
    issuer: &NonceIssuer,
    counts: &mut NonceCounts,
    lookup_ha1: impl FnOnce(&str, &str, Algorithm) -> Option<String>,
) -> Verdict {
    if !cred.is_digest() {
        return Verdict::Rejected("not a Digest credential");
    }
    let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
        cred.param("username"),
        cred.param("realm"),
        cred.param("nonce"),
        cred.param("uri"),
        cred.param("response"),
    ) else {
        return Verdict::Rejected("missing digest parameter");
    };
    if realm != check.realm {
        return Verdict::Rejected("wrong realm");
    }
    let Some(algorithm) = Algorithm::parse(cred.param("algorithm")) else {
        return Verdict::Rejected("unsupported algorithm");
    };
    if !cred
        .param("qop")
        .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
    {
        return Verdict::Rejected("qop=auth required");
    }
    let (Some(nc), Some(cnonce)) = (cred.param("nc"), cred.param("cnonce")) else {
        return Verdict::Rejected("missing nc or cnonce");
    };
    let Ok(nc_val) = u32::from_str_radix(nc, 16) else {
        return Verdict::Rejected("bad nonce count");
    };
    if nc.len() != 8 {
        return Verdict::Rejected("bad nonce count");
    }
    if !uri_matches(uri, check.request_uri) {
        return Verdict::Rejected("digest uri does not match Request-URI");
    }
    let state = issuer.check(nonce, realm, check.now);
    if state == NonceState::Invalid {
        return Verdict::Rejected("unknown nonce");
    }
    let Some(ha1_hex) = lookup_ha1(username, realm, algorithm) else {
        return Verdict::Rejected("bad credentials");
    };
    let input = ResponseInput {
        algorithm,
        nonce,
        nc,
        cnonce,
        method: check.method,
        uri,
    };
    let expected = expected_response(&input, &ha1_hex);
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(response.to_ascii_lowercase().as_bytes()),
    ) {
        return Verdict::Rejected("bad credentials");
    }
    match state {
        NonceState::Valid(issued) => {
            if !counts.accept(nonce, issued, nc_val) {
                return Verdict::Rejected("nonce count reused");
            }
            Verdict::Authenticated {
                username: username.to_owned(),
                algorithm,
            }
        }
        NonceState::Stale => Verdict::Stale,
        NonceState::Invalid => Verdict::Rejected("unknown nonce"),
    }
}

fn uri_matches(digest_uri: &str, request_uri: &Uri) -> bool {
    if digest_uri == request_uri.to_string() {
        return true;
    }
    match Uri::parse(digest_uri) {
        Ok(Uri::Sip(d)) => match request_uri {
            Uri::Sip(r) => {
                d.secure == r.secure
                    && d.user == r.user
                    && d.host.same_as(&r.host)
                    && d.port == r.port
            }
            _ => false,
        },
        Ok(other) => &other == request_uri,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn cred(alg: Algorithm, nonce: &str, nc: &str, password: &str, uri: &str) -> AuthHeader {
        let input = ResponseInput {
            algorithm: alg,
            nonce,
            nc,
            cnonce: "c0ffee",
            method: "REGISTER",
            uri,
        };
        let response = client_response(&input, "alice", "example.com", password);
        let raw = format!(
            r#"Digest username="alice", realm="example.com", nonce="{nonce}", uri="{uri}", response="{response}", algorithm={alg}, qop=auth, nc={nc}, cnonce="c0ffee""#
        );
        AuthHeader::parse(&raw, "Authorization").expect("valid header")
    }

    fn run(issuer: &NonceIssuer, counts: &mut NonceCounts, c: &AuthHeader, now: u64) -> Verdict {
        let ruri = Uri::parse("sip:example.com").expect("uri");
        let check = Check {
            realm: "example.com",
            method: "REGISTER",
            request_uri: &ruri,
            now,
        };
        verify(c, &check, issuer, counts, |user, realm, alg| {
            (user == "alice").then(|| ha1(alg, user, realm, "secret"))
        })
    }

    #[test]
    fn rfc_style_md5_ha1() {
        // HA1 for "Mufasa":"testrealm@host.com":"Circle Of Life" (RFC 2617 §3.5).
        assert_eq!(
            ha1(
                Algorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn rfc2617_md5_example() {
        // RFC 2617 §3.5: qop=auth response for Mufasa.
        let input = ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc: "00000001",
            cnonce: "0a4f113b",
            method: "GET",
            uri: "/dir/index.html",
        };
        let r = client_response(&input, "Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1: SHA-256 response for Mufasa with these values.
        let input = ResponseInput {
            algorithm: Algorithm::Sha256,
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            method: "GET",
            uri: "/dir/index.html",
        };
        let r = client_response(&input, "Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn accepts_both_algorithms_and_refuses_replay() {
        let issuer = NonceIssuer::new(SECRET, 300, 0);
        let mut counts = NonceCounts::new(100);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = issuer.issue("example.com", 1000);
            let c = cred(alg, &nonce, "00000001", "secret", "sip:example.com");
            assert_eq!(
                run(&issuer, &mut counts, &c, 1001),
                Verdict::Authenticated {
                    username: "alice".into(),
                    algorithm: alg
                }
            );
            assert_eq!(
                run(&issuer, &mut counts, &c, 1002),
                Verdict::Rejected("nonce count reused")
            );
            let c2 = cred(alg, &nonce, "00000002", "secret", "sip:example.com");
            assert!(matches!(
                run(&issuer, &mut counts, &c2, 1002),
                Verdict::Authenticated { .. }
            ));
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let issuer = NonceIssuer::new(SECRET, 300, 0);
        let mut counts = NonceCounts::new(100);
        let nonce = issuer.issue("example.com", 1000);
        let wrong = cred(
            Algorithm::Md5,
            &nonce,
            "00000001",
            "guess",
            "sip:example.com",
        );
        assert_eq!(
            run(&issuer, &mut counts, &wrong, 1000),
            Verdict::Rejected("bad credentials")
        );
        let mut other = wrong.clone();
        for p in other.params.iter_mut() {
            if p.0 == "username" {
                p.1 = "mallory".into();
            }
        }
        assert_eq!(
            run(&issuer, &mut counts, &other, 1000),
            Verdict::Rejected("bad credentials")
        );
    }

    #[test]
    fn expired_nonce_is_stale_and_forged_is_rejected() {
        let issuer = NonceIssuer::new(SECRET, 300, 0);
        let mut counts = NonceCounts::new(100);
        let nonce = issuer.issue("example.com", 1000);
        let c = cred(
            Algorithm::Sha256,
            &nonce,
            "00000001",
            "secret",
            "sip:example.com",
        );
        assert_eq!(run(&issuer, &mut counts, &c, 1301), Verdict::Stale);
        let other = NonceIssuer::new([9; 32], 300, 0).issue("example.com", 1000);
        let f = cred(
            Algorithm::Sha256,
            &other,
            "00000001",
            "secret",
            "sip:example.com",
        );
        assert_eq!(
            run(&issuer, &mut counts, &f, 1001),
            Verdict::Rejected("unknown nonce")
        );
        assert_eq!(
            issuer.check("garbage!", "example.com", 1000),
            NonceState::Invalid
        );
        assert_eq!(
            issuer.check(&nonce, "other.realm", 1000),
            NonceState::Invalid
        );
    }

    #[test]
    fn uri_must_match_and_qop_is_required() {
        let issuer = NonceIssuer::new(SECRET, 300, 0);
        let mut counts = NonceCounts::new(100);
        let nonce = issuer.issue("example.com", 1000);
        let c = cred(
            Algorithm::Md5,
            &nonce,
            "00000001",
            "secret",
            "sip:127.0.0.1:5060",
        );
        assert_eq!(
            run(&issuer, &mut counts, &c, 1000),
            Verdict::Rejected("digest uri does not match Request-URI")
        );
        let mut noqop = cred(
            Algorithm::Md5,
            &nonce,
            "00000001",
            "secret",
            "sip:example.com",
        );
        noqop.params.retain(|(n, _)| n != "qop");
        assert_eq!(
            run(&issuer, &mut counts, &noqop, 1000),
            Verdict::Rejected("qop=auth required")
        );
        let equivalent = cred(
            Algorithm::Md5,
            &nonce,
            "00000003",
            "secret",
            "sip:EXAMPLE.com",
        );
        assert!(matches!(
            run(&issuer, &mut counts, &equivalent, 1000),
            Verdict::Authenticated { .. }
        ));
    }

    #[test]
    fn nonce_is_the_documented_hmac() {
        // base64url(issued || serial || HMAC-SHA-256(secret, issued || serial || realm)[..16]),
        // computed here with a freshly keyed HMAC.
        let issuer = NonceIssuer::new(SECRET, 300, 41);
        let nonce = issuer.issue("example.com", 1_700_000_000);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&SECRET).expect("key");
        let mut raw = Vec::new();
        raw.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        raw.extend_from_slice(&41u64.to_be_bytes());
        mac.update(&raw);
        mac.update(b"example.com");
        raw.extend_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
        assert_eq!(
            nonce,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        assert_eq!(
            issuer.check(&nonce, "example.com", 1_700_000_001),
            NonceState::Valid(1_700_000_000)
        );
        assert_eq!(
            issuer.check(&nonce, "example.org", 1_700_000_001),
            NonceState::Invalid
        );
        for bad in [
            format!("{nonce}A"),
            format!("{nonce}="),
            nonce[..42].to_owned(),
            nonce.repeat(2),
            "A".repeat(65),
            String::new(),
        ] {
            assert_eq!(
                issuer.check(&bad, "example.com", 1_700_000_001),
                NonceState::Invalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn nonces_are_unique_within_one_second() {
        let issuer = NonceIssuer::new(SECRET, 300, 42);
        let a = issuer.issue("example.com", 1000);
        let b = issuer.issue("example.com", 1000);
        assert_ne!(a, b);
        assert_eq!(
            issuer.check(&a, "example.com", 1000),
            NonceState::Valid(1000)
        );
        assert_eq!(
            issuer.check(&b, "example.com", 1000),
            NonceState::Valid(1000)
        );
    }

    #[test]
    fn nonce_count_window_tolerates_reordering() {
        let mut counts = NonceCounts::new(10);
        assert!(counts.accept("n", 0, 3));
        assert!(counts.accept("n", 0, 1));
        assert!(counts.accept("n", 0, 2));
        assert!(!counts.accept("n", 0, 2));
        assert!(counts.accept("n", 0, 100));
        assert!(!counts.accept("n", 0, 3), "below the window");
        assert!(!counts.accept("n", 0, 0));
        counts.purge(1);
        assert!(counts.is_empty());
    }

    #[test]
    fn capacity_evicts_oldest() {
        let mut counts = NonceCounts::new(2);
        assert!(counts.accept("a", 1, 1));
        assert!(counts.accept("b", 2, 1));
        assert!(counts.accept("c", 3, 1));
        assert_eq!(counts.len(), 2);
        assert!(!counts.accept("c", 3, 1));
    }

    #[test]
    fn challenge_format() {
        let c = challenge("example.com", "abc", Algorithm::Sha256, true);
        let parsed = AuthHeader::parse(&c, "WWW-Authenticate").expect("parses");
        assert_eq!(parsed.param("algorithm"), Some("SHA-256"));
        assert_eq!(parsed.param("qop"), Some("auth"));
        assert_eq!(parsed.param("stale"), Some("true"));
        assert!(c.contains("qop=\"auth\""));
    }
}
