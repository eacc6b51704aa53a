//! Policies: one mechanism for every kind (IM, privacy, archiving…). Each kind
//! is a serde document stored at global scope and optionally per user; the
//! effective policy of a user is the global document with the user's fields
//! laid over it (a user document may set only some fields).

use crate::address::Address;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
    docs: RwLock<Arc<HashMap<String, KindDocs>>>,
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
        let map = Arc::new(map);
        match self.docs.write() {
            Ok(mut g) => *g = map,
            Err(p) => *p.into_inner() = map,
        }
        Ok(())
    }

    fn docs(&self) -> Arc<HashMap<String, KindDocs>> {
        match self.docs.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The effective policy of `K` for `user`: defaults, then global, then the
    /// user's own document. A stored document that no longer parses (written
    /// by a newer version) falls back to the defaults and is logged.
    pub fn effective<K: PolicyKind>(&self, user: &Address) -> K {
        let docs = self.docs();
        let Some(kd) = docs.get(K::KIND) else {
            return K::default();
        };
        let mut v = serde_json::to_value(K::default()).unwrap_or(serde_json::Value::Null);
        if let Some(g) = &kd.global {
            v = overlay(&v, g);
        }
        if let Some(u) = kd.users.get(&user.to_string()) {
            v = overlay(&v, u);
        }
        serde_json::from_value(v).unwrap_or_else(|e| {
            tracing::warn!(kind = K::KIND, user = %user, error = %e, "stored policy does not parse; using defaults");
            K::default()
        })
    }

    /// The global policy of `K` (defaults overlaid with the global document).
    pub fn global<K: PolicyKind>(&self) -> K {
        let docs = self.docs();
        let mut v = serde_json::to_value(K::default()).unwrap_or(serde_json::Value::Null);
        if let Some(g) = docs.get(K::KIND).and_then(|kd| kd.global.as_ref()) {
            v = overlay(&v, g);
        }
        serde_json::from_value(v).unwrap_or_default()
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

    #[test]
    fn defaults_without_documents() {
        let p = Policies::new();
        let alice = Address::parse("alice@example.com").expect("valid");
        assert!(p.effective::<ImPolicy>(&alice).offline_im);
    }
}
