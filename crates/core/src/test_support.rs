//! Shared fixtures of the unit tests.

use switchboard_store::sqlite::SqliteStore;
use switchboard_store::{Credentials, Directory as _, NewUser};

/// An in-memory store serving `example.com` with `users` (full addresses),
/// so that policies and contacts can refer to them.
pub(crate) async fn store_with_users(users: &[&str]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().await.expect("open");
    store.add_domain("example.com", 0).await.expect("domain");
    for u in users {
        store
            .add_user(&NewUser {
                address: (*u).into(),
                display_name: None,
                credentials: Credentials {
                    password_hash: "x".into(),
                    ha1: vec![],
                },
                created_ms: 0,
            })
            .await
            .expect("user");
    }
    store
}
