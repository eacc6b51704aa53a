//! Signing in over HTTP: password check (Argon2id, bounded so sign-in
//! attempts cannot exhaust the CPU), bearer tokens that expire and can be
//! revoked, and the per-token request budget.
//!
//! A token is 32 random bytes (base64url). Only its SHA-256 is stored, so a
//! copy of the database hands out no sessions; tokens never appear in logs.
//! Validated sessions are cached for a few seconds, so a revocation made
//! elsewhere (the CLI, another front end of a pool) takes effect within
//! [`RECHECK`].

use super::problem::{ApiResult, Problem};
use argon2::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::Address;
use switchboard_store::{Store, WebSessionRecord};
use tokio::sync::Semaphore;

/// How long a validated session is trusted before the store is asked again.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Failed sign-ins allowed per client address per [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A signed-in web client.
#[derive(Debug, Clone)]
pub struct Session {
    /// Public identifier of the session (a prefix of the token's hash): used
    /// as the device name in presence and to list or revoke sessions.
    pub sid: String,
    pub token_hash: String,
    pub user: Address,
    pub admin: bool,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub client: Option<String>,
}

/// Per-token request budget (token bucket).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Sessions of the web front door.
pub struct Sessions {
    store: Arc<dyn Store>,
    ttl_ms: i64,
    rate: RateLimit,
    cache: Mutex<HashMap<String, (Session, Instant)>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Argon2 verifications running at once (each takes ~20 MiB and tens of ms).
    hashing: Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The public id of a session, from its token hash.
pub fn sid_of(token_hash: &str) -> String {
    token_hash.chars().take(16).collect()
}

impl Sessions {
    /// Sessions valid for `ttl_ms`, with this per-token budget.
    pub fn new(store: Arc<dyn Store>, ttl_ms: i64, rate: RateLimit) -> Sessions {
        Sessions {
            store,
            ttl_ms,
            rate,
            cache: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(2),
        }
    }

    /// Checks `password` for `user` and opens a session. Wrong user and wrong
    /// password give the same answer (no account enumeration); repeated
    /// failures from one address are slowed down with 429.
    pub async fn sign_in(
        &self,
        user: &Address,
        password: &str,
        client: Option<String>,
        from: IpAddr,
    ) -> ApiResult<(String, Session)> {
        if let Some(wait) = self.failure_wait(from) {
            return Err(Problem::rate_limited(wait));
        }
        let hash = self.store.password_hash(&user.to_string()).await?;
        let ok = match hash {
            Some(hash) => self.verify(password, hash).await?,
            None => {
                // Same work for an unknown user, so timing tells nothing.
                let _ = self.verify(password, DUMMY_HASH.to_owned()).await;
                false
            }
        };
        if !ok {
            self.note_failure(from);
            return Err(Problem::unauthorized("Wrong user name or password"));
        }
        let record = self.store.get_user(&user.to_string()).await?;
        let Some(record) = record else {
            return Err(Problem::unauthorized("Wrong user name or password"));
        };
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| Problem::internal("randomness", e))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = switchboard_core::now_ms();
        let token_hash = hash_token(&token);
        let stored = WebSessionRecord {
            token_hash: token_hash.clone(),
            user: user.to_string(),
            created_ms: now,
            expires_ms: now + self.ttl_ms,
            client: client.clone(),
        };
        self.store.create_web_session(&stored).await?;
        let session = Session {
            sid: sid_of(&token_hash),
            token_hash,
            user: user.clone(),
            admin: record.admin,
            created_ms: now,
            expires_ms: stored.expires_ms,
            client,
        };
        tracing::info!(user = %user, session = %session.sid, "web sign-in");
        Ok((token, session))
    }

    async fn verify(&self, password: &str, hash: String) -> ApiResult<bool> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| Problem::internal("sign-in", e))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| Problem::internal("sign-in", e))
    }

    fn failure_wait(&self, from: IpAddr) -> Option<u64> {
        let failures = lock(&self.failures);
        let (n, since) = failures.get(&from)?;
        let elapsed = since.elapsed();
        (*n >= MAX_FAILURES && elapsed < FAILURE_WINDOW)
            .then(|| (FAILURE_WINDOW - elapsed).as_secs() + 1)
    }

    fn note_failure(&self, from: IpAddr) {
        let mut failures = lock(&self.failures);
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = failures.entry(from).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// The session a bearer token stands for: 401 if unknown, revoked or
    /// expired, 429 if its request budget is spent.
    pub async fn authenticate(&self, token: &str) -> ApiResult<Session> {
        let session = self.validate(token).await?;
        self.spend(&session.sid)?;
        Ok(session)
    }

    /// Like [`Sessions::authenticate`] without spending the request budget
    /// (long-lived event channels check their token again periodically).
    pub async fn validate(&self, token: &str) -> ApiResult<Session> {
        let token_hash = hash_token(token);
        let now = switchboard_core::now_ms();
        let cached = lock(&self.cache)
            .get(&token_hash)
            .filter(|(_, at)| at.elapsed() < RECHECK)
            .map(|(s, _)| s.clone());
        let session = match cached {
            Some(s) => s,
            None => {
                let Some(rec) = self.store.web_session(&token_hash).await? else {
                    lock(&self.cache).remove(&token_hash);
                    return Err(Problem::unauthorized(
                        "The token is not valid (signed out, revoked or unknown)",
                    ));
                };
                let user = Address::parse(&rec.user)
                    .map_err(|e| Problem::internal("stored session", e))?;
                let admin = self
                    .store
                    .get_user(&rec.user)
                    .await?
                    .is_some_and(|u| u.admin);
                let s = Session {
                    sid: sid_of(&token_hash),
                    token_hash: token_hash.clone(),
                    user,
                    admin,
                    created_ms: rec.created_ms,
                    expires_ms: rec.expires_ms,
                    client: rec.client,
                };
                let mut cache = lock(&self.cache);
                if cache.len() > 100_000 {
                    cache.retain(|_, (_, at)| at.elapsed() < RECHECK);
                }
                cache.insert(token_hash, (s.clone(), Instant::now()));
                s
            }
        };
        if session.expires_ms <= now {
            return Err(Problem::unauthorized(
                "The token has expired; sign in again",
            ));
        }
        Ok(session)
    }

    fn spend(&self, sid: &str) -> ApiResult<()> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| b.at.elapsed() < Duration::from_secs(600));
        }
        let now = Instant::now();
        let b = buckets.entry(sid.to_owned()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.rate.per_second;
        b.tokens = (b.tokens + refill).min(self.rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / self.rate.per_second).ceil() as u64;
            Err(Problem::rate_limited(wait))
        }
    }

    /// Revokes one session (sign-out, or a user ending another of theirs).
    pub async fn revoke(&self, token_hash: &str) -> ApiResult<()> {
        lock(&self.cache).remove(token_hash);
        self.store.revoke_web_session(token_hash).await?;
        Ok(())
    }

    /// Revokes every session of `user` (password change, user removed).
    pub async fn revoke_all(&self, user: &Address) -> ApiResult<u64> {
        lock(&self.cache).retain(|_, (s, _)| &s.user != user);
        Ok(self.store.revoke_web_sessions_of(&user.to_string()).await?)
    }

    /// The sessions of `user`.
    pub async fn list(&self, user: &Address) -> ApiResult<Vec<WebSessionRecord>> {
        Ok(self.store.web_sessions_of(&user.to_string()).await?)
    }

    /// Forgets expired sessions (in the store and the cache).
    pub async fn purge(&self) {
        let now = switchboard_core::now_ms();
        lock(&self.cache).retain(|_, (s, _)| s.expires_ms > now);
        lock(&self.buckets).retain(|_, b| b.at.elapsed() < Duration::from_secs(600));
        lock(&self.failures).retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        match self.store.purge_expired_web_sessions(now).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired web sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove expired web sessions"),
        }
    }
}

/// An Argon2id hash of a random password, verified against when the user
/// does not exist so that both cases cost the same.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3dpdGNoYm9hcmRkdW1teQ$JcWOUvcqOeJMOJ2U/6NN0ZHHHRD2jPebDKkqjyW4nqI";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn token_hashes_are_stable_hex_and_sids_are_prefixes() {
        let h = hash_token("abc");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_token("abc"));
        assert_eq!(sid_of(&h), &h[..16]);
    }
}
