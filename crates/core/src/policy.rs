//! Policies: one mechanism for every kind (IM, privacy, archiving…). Each kind
//! is a serde document stored at global scope and optionally per user; the
//! effective policy of a user is the global document with the user's fields
//! laid over it (a user document may set only some fields).

use crate::address::Address;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use switchboard_store::{PolicyScope, Store, StoreResult};

/// A kind of policy.
pub trait PolicyKind:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// The name under which documents of this kind are stored.
    const KIND: &'static str;
}

/// The IM policy (issue: offline IM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImPolicy {
    /// Keep messages for signed-out users and deliver them at next sign-in.
    /// On by default, as in Skype for Business Server since 2015.
    pub offline_im: bool,
}

impl Default for ImPolicy {
    fn default() -> ImPolicy {
        ImPolicy { offline_im: true }
    }
}

impl PolicyKind for ImPolicy {
    const KIND: &'static str = "im";
}

/// The privacy policy of a user (Skype for Business "privacy mode").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyPolicy {
    /// Only people in the user's contact list see their presence; others
    /// wait for the user's decision (watcher info).
    pub privacy_mode: bool,
}

impl PolicyKind for PrivacyPolicy {
    const KIND: &'static str = "privacy";
}

/// Lays `over` (a partial document) over `base`, field by field.
pub fn overlay(base: &serde_json::Value, over: &serde_json::Value) -> serde_json::Value {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match b.get(k) {
                    Some(bv) => overlay(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            serde_json::Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

/// Cached policy documents of every kind, refreshed with the directory.
#[derive(Debug, Default)]
pub struct Policies {
    snapshot: RwLock<Arc<Snapshot>>,
}

/// The documents as last loaded, with the effective policies derived from
/// them so far: a policy is asked for on every message (archiving, offline
/// IM), and deriving it means laying JSON documents over each other. A new
/// load replaces the whole snapshot, so nothing derived from older documents
/// outlives them.
#[derive(Debug, Default)]
struct Snapshot {
    kinds: HashMap<String, KindDocs>,
    resolved: Mutex<HashMap<Resolved, Arc<dyn Any + Send + Sync>>>,
}

/// What an effective policy was derived for: a kind, and the user when they
/// have a document of their own (everyone else shares the global policy, so
/// the cache holds at most one entry per stored document).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Resolved {
    kind: &'static str,
    user: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct KindDocs {
    global: Option<serde_json::Value>,
    users: HashMap<String, serde_json::Value>,
}

impl Policies {
    /// An empty cache: every user gets the built-in defaults.
    pub fn new() -> Policies {
        Policies::default()
    }

    /// Reloads the given kinds from the store.
    pub async fn load(&self, store: &dyn Store, kinds: &[&str]) -> StoreResult<()> {
        let mut map = HashMap::new();
        for kind in kinds {
            let mut docs = KindDocs::default();
            for (scope, doc) in store.list_policies(kind).await? {
                match scope {
                    PolicyScope::Global => docs.global = Some(doc),
                    PolicyScope::User(u) => {
                        docs.users.insert(u, doc);
                    }
                }
            }
            map.insert((*kind).to_owned(), docs);
        }
        let snapshot = Arc::new(Snapshot {
            kinds: map,
            resolved: Mutex::default(),
        });
        match self.snapshot.write() {
            Ok(mut g) => *g = snapshot,
            Err(p) => *p.into_inner() = snapshot,
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The effective policy of `K` for `user`: defaults, then global, then the
    /// user's own document. A stored document that no longer parses (written
    /// by a newer version) falls back to the defaults and is logged.
    pub fn effective<K: PolicyKind>(&self, user: &Address) -> K {
        let snapshot = self.snapshot();
        let Some(kd) = snapshot.kinds.get(K::KIND) else {
            return K::default();
        };
        let key = user.to_string();
        let own = kd.users.get(&key);
        snapshot.resolve(
            Resolved {
                kind: K::KIND,
                user: own.map(|_| key),
            },
            || {
                let mut v = derive::<K>(kd.global.as_ref());
                if let Some(u) = own {
                    v = overlay(&v, u);
                }
                serde_json::from_value(v).unwrap_or_else(|e| {
                    tracing::warn!(kind = K::KIND, user = %user, error = %e, "stored policy does not parse; using defaults");
                    K::default()
                })
            },
        )
    }

    /// The global policy of `K` (defaults overlaid with the global document).
    pub fn global<K: PolicyKind>(&self) -> K {
        let snapshot = self.snapshot();
        let Some(kd) = snapshot.kinds.get(K::KIND) else {
            return K::default();
        };
        snapshot.resolve(
            Resolved {
                kind: K::KIND,
                user: None,
            },
            || {
                serde_json::from_value(derive::<K>(kd.global.as_ref())).unwrap_or_else(|e| {
                    tracing::warn!(kind = K::KIND, error = %e, "stored global policy does not parse; using defaults");
                    K::default()
                })
            },
        )
    }
}

/// The defaults of `K` with the global document laid over them.
fn derive<K: PolicyKind>(global: Option<&serde_json::Value>) -> serde_json::Value {
    let v = serde_json::to_value(K::default()).unwrap_or(serde_json::Value::Null);
    match global {
        Some(g) => overlay(&v, g),
        None => v,
    }
}

impl Snapshot {
    /// The policy derived for `key`, derived now (by `derive`) the first time.
    fn resolve<K: PolicyKind>(&self, key: Resolved, derive: impl FnOnce() -> K) -> K {
        let mut resolved = match self.resolved.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(k) = resolved.get(&key).and_then(|v| v.downcast_ref::<K>()) {
            return k.clone();
        }
        let k = derive();
        resolved.insert(key, Arc::new(k.clone()));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_field_by_field() {
        let base = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        let over = serde_json::json!({"b": {"d": 4}, "e": 5});
        assert_eq!(
            overlay(&base, &over),
            serde_json::json!({"a": 1, "b": {"c": 2, "d": 4}, "e": 5})
        );
    }

    #[tokio::test]
    async fn a_reload_replaces_every_policy_derived_before_it() {
        use switchboard_store::Policies as _;
        let store = crate::test_support::store_with_users(&["alice@example.com"]).await;
        let p = Policies::new();
        let alice = Address::parse("alice@example.com").expect("valid");
        let bob = Address::parse("bob@example.com").expect("valid");
        let set = |scope: PolicyScope, on: bool| {
            let store = &store;
            async move {
                store
                    .set_policy("im", &scope, &serde_json::json!({ "offline_im": on }))
                    .await
                    .expect("set");
            }
        };
        set(PolicyScope::User("alice@example.com".into()), false).await;
        p.load(&store, &["im"]).await.expect("load");
        // Asked twice: what the first derived and kept answers the second
        // the same.
        for _ in 0..2 {
            assert!(!p.effective::<ImPolicy>(&alice).offline_im);
            assert!(p.effective::<ImPolicy>(&bob).offline_im);
            assert!(p.global::<ImPolicy>().offline_im);
        }
        set(PolicyScope::Global, false).await;
        set(PolicyScope::User("alice@example.com".into()), true).await;
        p.load(&store, &["im"]).await.expect("load");
        assert!(p.effective::<ImPolicy>(&alice).offline_im);
        assert!(!p.effective::<ImPolicy>(&bob).offline_im);
        assert!(!p.global::<ImPolicy>().offline_im);
        // A kind that was not loaded keeps its defaults.
        assert!(!p.effective::<PrivacyPolicy>(&alice).privacy_mode);
    }

    #[test]
    fn defaults_without_documents() {
        let p = Policies::new();
        let alice = Address::parse("alice@example.com").expect("valid");
        assert!(p.effective::<ImPolicy>(&alice).offline_im);
    }
}
