//! Storage for Switchboard.
//!
//! Everything the server must keep across restarts lives behind the traits in this
//! crate, so that the Standard Edition (SQLite, embedded) and an Enterprise pool
//! (PostgreSQL, a later backend) are interchangeable and are held to the same
//! behaviour by one conformance suite ([`conformance`]).
//!
//! Conventions shared by every trait:
//! - user and domain names are stored lower-case; callers normalise before calling;
//! - times are Unix milliseconds (`i64`);
//! - every method that changes directory, policy or contact data bumps the
//!   store-wide change sequence ([`Store::change_seq`]) so that a running server
//!   notices edits made by the command-line tool without a restart.

pub mod archive;
pub mod conformance;
mod error;
mod records;
pub mod sqlite;

pub use error::StoreError;
pub use records::*;

use async_trait::async_trait;

/// Result type of every storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Served domains and the users in them, with their credentials.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Adds a served domain; `Conflict` if it exists.
    async fn add_domain(&self, name: &str, now_ms: i64) -> StoreResult<()>;
    /// Removes a served domain; `Conflict` while it still has users, `NotFound` if absent.
    async fn remove_domain(&self, name: &str) -> StoreResult<()>;
    /// All served domains, sorted by name.
    async fn list_domains(&self) -> StoreResult<Vec<DomainRecord>>;

    /// Creates a user with its credentials; `NotFound` if the domain is not served,
    /// `Conflict` if the address exists.
    async fn add_user(&self, user: &NewUser) -> StoreResult<()>;
    /// Removes a user and everything that belongs to it (credentials, bindings,
    /// contacts it owns, entries naming it in other users' contact lists, offline
    /// messages addressed to it, user-scope policies); `NotFound` if absent.
    async fn remove_user(&self, address: &str) -> StoreResult<()>;
    /// Replaces a user's credentials (password change).
    async fn set_credentials(&self, address: &str, creds: &Credentials) -> StoreResult<()>;
    /// Changes the display name (None clears it).
    async fn set_display_name(&self, address: &str, name: Option<&str>) -> StoreResult<()>;
    /// One user, `None` if absent.
    async fn get_user(&self, address: &str) -> StoreResult<Option<UserRecord>>;
    /// All users, sorted by address.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Credentials of every user, for the authentication cache of a running server.
    async fn all_credentials(&self) -> StoreResult<Vec<(String, Credentials)>>;
}

/// Registrar bindings (RFC 3261 §10), kept so that a restart does not strand
/// clients that registered over UDP.
#[async_trait]
pub trait Registrations: Send + Sync {
    /// Applies a batch of changes in one transaction (the registrar group-commits).
    async fn apply_bindings(&self, changes: &[BindingChange]) -> StoreResult<()>;
    /// Every binding not expired at `now_ms`.
    async fn load_bindings(&self, now_ms: i64) -> StoreResult<Vec<BindingRecord>>;
    /// Deletes bindings expired at `now_ms`; returns how many.
    async fn purge_expired_bindings(&self, now_ms: i64) -> StoreResult<u64>;
}

/// Scoped policy documents: one mechanism for every policy kind (IM, privacy,
/// archiving, external access…), each a JSON document at global or user scope.
#[async_trait]
pub trait Policies: Send + Sync {
    /// The document of `kind` at `scope`, if set.
    async fn get_policy(
        &self,
        kind: &str,
        scope: &PolicyScope,
    ) -> StoreResult<Option<serde_json::Value>>;
    /// Sets (replaces) the document of `kind` at `scope`.
    async fn set_policy(
        &self,
        kind: &str,
        scope: &PolicyScope,
        doc: &serde_json::Value,
    ) -> StoreResult<()>;
    /// Removes the document of `kind` at `scope`; `NotFound` if there was none.
    async fn clear_policy(&self, kind: &str, scope: &PolicyScope) -> StoreResult<()>;
    /// Every document of `kind`, global first, then users sorted by address.
    async fn list_policies(&self, kind: &str)
    -> StoreResult<Vec<(PolicyScope, serde_json::Value)>>;
}

/// Instant messages held for users who were signed out (offline IM).
#[async_trait]
pub trait OfflineMessages: Send + Sync {
    /// Stores a message durably (committed before returning) and returns its id;
    /// `Limit` if the recipient already has `max_per_user` messages waiting.
    async fn enqueue_offline(&self, msg: &NewOfflineMessage, max_per_user: u32)
    -> StoreResult<i64>;
    /// Messages waiting for `recipient`, oldest first.
    async fn pending_offline(&self, recipient: &str) -> StoreResult<Vec<OfflineMessage>>;
    /// Recipients that have at least one message waiting.
    async fn offline_recipients(&self) -> StoreResult<Vec<String>>;
    /// Records a failed delivery attempt.
    async fn record_offline_attempt(&self, id: i64) -> StoreResult<()>;
    /// Deletes a delivered message; `NotFound` if it is already gone.
    async fn delete_offline(&self, id: i64) -> StoreResult<()>;
    /// Deletes and returns every message that expired at `now_ms`.
    async fn expire_offline(&self, now_ms: i64) -> StoreResult<Vec<OfflineMessage>>;
}

/// Server-stored contact lists with groups and per-contact privacy levels.
#[async_trait]
pub trait Contacts: Send + Sync {
    /// Adds or updates `contact` in `owner`'s list; `Limit` if the list already
    /// holds `max_contacts` entries and `contact` is new.
    async fn upsert_contact(&self, entry: &ContactRecord, max_contacts: u32) -> StoreResult<()>;
    /// Removes a contact; `NotFound` if absent.
    async fn remove_contact(&self, owner: &str, contact: &str) -> StoreResult<()>;
    /// The owner's contacts sorted by group then address.
    async fn list_contacts(&self, owner: &str) -> StoreResult<Vec<ContactRecord>>;
    /// Every entry of every list, sorted by owner then contact (the server
    /// caches all lists to answer privacy questions without waiting).
    async fn all_contacts(&self) -> StoreResult<Vec<ContactRecord>>;
    /// Every contact entry naming `contact` (who has this person in their list).
    async fn contacts_naming(&self, contact: &str) -> StoreResult<Vec<ContactRecord>>;
}

/// The whole storage surface a server needs.
#[async_trait]
pub trait Store: Directory + Registrations + Policies + OfflineMessages + Contacts {
    /// A number that grows whenever directory, policy or contact data changes,
    /// from this process or another (the CLI). Servers poll it to refresh caches.
    async fn change_seq(&self) -> StoreResult<i64>;
    /// Cheap round trip proving the store is reachable and writable.
    async fn health(&self) -> StoreResult<()>;
}
