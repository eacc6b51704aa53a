//! Digest authentication of SIP requests against the cached directory:
//! `401` challenges for REGISTER, `407` for everything else from local users.

use super::ids;
use std::sync::Mutex;
use switchboard_core::{Address, Directory};
use switchboard_sip::digest::{self, Algorithm, Check, NonceCounts, NonceIssuer, Verdict};
use switchboard_sip::{HeaderName, Request, Response};

/// The result of authenticating one request.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The request proves it comes from this user.
    Authenticated(Address),
    /// Send this challenge (401 or 407) instead of processing the request.
    Challenge(Box<Response>),
}

/// Checks credentials and issues challenges.
pub struct Authenticator {
    issuer: NonceIssuer,
    counts: Mutex<NonceCounts>,
    algorithms: Vec<Algorithm>,
}

/// Nonces tracked for replay protection; above this the oldest are forgotten.
const NONCE_CAPACITY: usize = 200_000;

impl Authenticator {
    /// An authenticator with a fresh random secret.
    pub fn new(nonce_lifetime: u64, algorithms: Vec<Algorithm>) -> Authenticator {
        let mut secret = [0u8; 32];
        let mut serial = [0u8; 8];
        // A missing RNG must not leave a predictable secret: derive from
        // tokens (which fall back to time) and the process id as a last resort.
        if getrandom::fill(&mut secret).is_err() || getrandom::fill(&mut serial).is_err() {
            let seed = format!(
                "{}{}{}",
                ids::long_token(),
                ids::long_token(),
                std::process::id()
            );
            for (i, b) in seed.bytes().enumerate() {
                secret[i % 32] ^= b;
            }
        }
        Authenticator {
            issuer: NonceIssuer::new(secret, nonce_lifetime, u64::from_ne_bytes(serial)),
            counts: Mutex::new(NonceCounts::new(NONCE_CAPACITY)),
            algorithms,
        }
    }

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Authenticates `req` in `realm` (a served domain). `proxy` selects
    /// Proxy-Authorization/407 instead of Authorization/401.
    pub fn authenticate(
        &self,
        req: &Request,
        realm: &str,
        proxy: bool,
        directory: &Directory,
    ) -> AuthOutcome {
        let now = Self::now_secs();
        let creds = if proxy {
            req.headers.proxy_authorization()
        } else {
            req.headers.authorization()
        }
        .unwrap_or_default();
        let mut stale = false;
        for cred in creds
            .iter()
            .filter(|c| c.is_digest() && c.param("realm") == Some(realm))
        {
            let check = Check {
                realm,
                method: req.method.as_str(),
                request_uri: &req.uri,
                now,
            };
            let verdict = {
                let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
                digest::verify(
                    cred,
                    &check,
                    &self.issuer,
                    &mut counts,
                    |user, realm, alg| directory.ha1(user, realm, alg.as_str()),
                )
            };
            match verdict {
                Verdict::Authenticated { username, .. } => {
                    let address = if username.contains('@') {
                        Address::parse(&username)
                    } else {
                        Address::from_parts(&username, realm)
                    };
                    if let Ok(a) = address {
                        return AuthOutcome::Authenticated(a);
                    }
                }
                Verdict::Stale => stale = true,
                Verdict::Rejected(why) => {
                    // The reason is for operators; it never reaches the client.
                    tracing::debug!(realm, reason = why, "digest credentials rejected");
                }
            }
        }
        AuthOutcome::Challenge(Box::new(self.challenge(req, realm, proxy, stale, now)))
    }

    fn challenge(
        &self,
        req: &Request,
        realm: &str,
        proxy: bool,
        stale: bool,
        now: u64,
    ) -> Response {
        let (status, header) = if proxy {
            (407, HeaderName::ProxyAuthenticate)
        } else {
            (401, HeaderName::WwwAuthenticate)
        };
        let mut resp = Response::to_request(req, status).with_to_tag(&ids::tag());
        for alg in &self.algorithms {
            let nonce = self.issuer.issue(realm, now);
            resp.headers.push(
                header.clone(),
                digest::challenge(realm, &nonce, *alg, stale),
            );
        }
        resp
    }

    /// Forgets nonce counts of nonces that can no longer be used.
    pub fn purge(&self) {
        let oldest = Self::now_secs().saturating_sub(self.issuer.lifetime() + 5);
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purge(oldest);
    }
}
