//! The directory as a running server sees it: served domains, users and their
//! digest secrets, cached in memory and refreshed when the store's change
//! sequence moves (so `switchboard user add` takes effect without a restart).
//!
//! Authentication happens on every REGISTER and on every request from a
//! local user, so it must not wait for the database: lookups here are a read
//! lock and a hash probe.

use crate::address::Address;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use switchboard_store::{Ha1, Store, StoreResult};

/// A user as the server needs it at request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub address: Address,
    pub display_name: Option<String>,
    ha1: Vec<Ha1>,
}

impl UserEntry {
    /// A user with its digest secrets (used when loading and in tests).
    pub fn new(address: Address, display_name: Option<String>, ha1: Vec<Ha1>) -> UserEntry {
        UserEntry {
            address,
            display_name,
            ha1,
        }
    }
}

/// One consistent view of the directory.
#[derive(Debug, Default)]
pub struct Snapshot {
    domains: HashSet<String>,
    users: HashMap<Address, Arc<UserEntry>>,
    /// The store change sequence this view was built from.
    pub seq: i64,
}

impl Snapshot {
    /// Builds a snapshot from parts.
    pub fn new(
        domains: impl IntoIterator<Item = String>,
        users: impl IntoIterator<Item = UserEntry>,
        seq: i64,
    ) -> Snapshot {
        Snapshot {
            domains: domains.into_iter().collect(),
            users: users
                .into_iter()
                .map(|u| (u.address.clone(), Arc::new(u)))
                .collect(),
            seq,
        }
    }
}

/// The cached directory.
#[derive(Debug, Default)]
pub struct Directory {
    current: RwLock<Arc<Snapshot>>,
}

impl Directory {
    /// An empty directory (nothing served until the first refresh).
    pub fn new() -> Directory {
        Directory::default()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs a new snapshot.
    pub fn install(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.current.write() {
            Ok(mut g) => *g = snap,
            Err(poisoned) => *poisoned.into_inner() = snap,
        }
    }

    /// Reloads everything from the store.
    pub async fn load(&self, store: &dyn Store) -> StoreResult<()> {
        let seq = store.change_seq().await?;
        let domains = store.list_domains().await?.into_iter().map(|d| d.name);
        let users = store.list_users().await?;
        let mut creds: HashMap<String, Vec<Ha1>> = store
            .all_credentials()
            .await?
            .into_iter()
            .map(|(a, c)| (a, c.ha1))
            .collect();
        let entries: Vec<UserEntry> = users
            .into_iter()
            .filter_map(|u| {
                let address = Address::parse(&u.address).ok()?;
                let ha1 = creds.remove(&u.address).unwrap_or_default();
                Some(UserEntry {
                    address,
                    display_name: u.display_name,
                    ha1,
                })
            })
            .collect();
        self.install(Snapshot::new(domains, entries, seq));
        Ok(())
    }

    /// Reloads if the store changed since the current snapshot; true if it did.
    pub async fn refresh_if_changed(&self, store: &dyn Store) -> StoreResult<bool> {
        let seq = store.change_seq().await?;
        if seq == self.snapshot().seq {
            return Ok(false);
        }
        self.load(store).await?;
        Ok(true)
    }

    /// True if `domain` (lower-case) is served here.
    pub fn is_served(&self, domain: &str) -> bool {
        let snap = self.snapshot();
        snap.domains.contains(domain) || snap.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Every served domain, sorted.
    pub fn domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self.snapshot().domains.iter().cloned().collect();
        v.sort();
        v
    }

    /// The user with this address, if it exists.
    pub fn user(&self, address: &Address) -> Option<Arc<UserEntry>> {
        self.snapshot().users.get(address).cloned()
    }

    /// The stored HA1 for a digest `username` in `realm` with `algorithm`
    /// (`MD5`, `SHA-256`…). The username may be the user part (resolved in the
    /// realm's domain) or a full address.
    pub fn ha1(&self, username: &str, realm: &str, algorithm: &str) -> Option<String> {
        let address = if username.contains('@') {
            Address::parse(username).ok()?
        } else {
            Address::from_parts(username, realm).ok()?
        };
        let user = self.user(&address)?;
        user.ha1
            .iter()
            .find(|h| {
                h.realm.eq_ignore_ascii_case(realm)
                    && h.algorithm.eq_ignore_ascii_case(algorithm)
                    && h.username == username
            })
            .or_else(|| {
                // Clients differ in case; the HA1 was computed for the stored spelling.
                user.ha1.iter().find(|h| {
                    h.realm.eq_ignore_ascii_case(realm)
                        && h.algorithm.eq_ignore_ascii_case(algorithm)
                        && h.username.eq_ignore_ascii_case(username)
                })
            })
            .map(|h| h.hex.clone())
    }

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.snapshot().users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(realm: &str, alg: &str, username: &str, hex: &str) -> Ha1 {
        Ha1 {
            realm: realm.into(),
            algorithm: alg.into(),
            username: username.into(),
            hex: hex.into(),
        }
    }

    #[test]
    fn lookups_by_short_and_full_username() {
        let dir = Directory::new();
        let alice = Address::parse("alice@example.com").expect("valid");
        dir.install(Snapshot::new(
            ["example.com".to_owned()],
            [UserEntry::new(
                alice.clone(),
                Some("Alice".into()),
                vec![
                    h("example.com", "MD5", "alice", "aa"),
                    h("example.com", "MD5", "alice@example.com", "bb"),
                    h("example.com", "SHA-256", "alice", "cc"),
                ],
            )],
            1,
        ));
        assert!(dir.is_served("example.com"));
        assert!(!dir.is_served("other.com"));
        assert_eq!(
            dir.ha1("alice", "example.com", "MD5").as_deref(),
            Some("aa")
        );
        assert_eq!(
            dir.ha1("alice@example.com", "example.com", "MD5")
                .as_deref(),
            Some("bb")
        );
        assert_eq!(
            dir.ha1("Alice", "example.com", "sha-256").as_deref(),
            Some("cc")
        );
        assert_eq!(dir.ha1("alice", "other.com", "MD5"), None);
        assert_eq!(dir.ha1("bob", "example.com", "MD5"), None);
        assert_eq!(
            dir.user(&alice)
                .and_then(|u| u.display_name.clone())
                .as_deref(),
            Some("Alice")
        );
    }
}
