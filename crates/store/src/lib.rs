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
//!   notices edits made by the command-line tool without a restart. Bindings,
//!   offline messages and web sessions do not: servers do not cache them, and
//!   they change far too often to make every server reload its caches.

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
    /// contacts and contact groups it owns, entries naming it in other users'
    /// contact lists, offline messages addressed to it, user-scope policies, web
    /// sessions); `NotFound` if absent.
    async fn remove_user(&self, address: &str) -> StoreResult<()>;
    /// Replaces a user's credentials (password change). Also deletes the user's
    /// web sessions, in the same transaction: a password change is how a user
    /// locks out whoever learnt the old password, and a session opened with it
    /// must not outlive it.
    async fn set_credentials(&self, address: &str, creds: &Credentials) -> StoreResult<()>;
    /// Grants or withdraws the administrator role (web admin API); `NotFound` if no
    /// such user. Bumps change_seq like every directory change, so that a running
    /// server notices a role granted or withdrawn by the command-line tool if it
    /// caches users. Setting the value the user already has succeeds (and still
    /// bumps, as `set_policy` with the same document does).
    async fn set_admin(&self, address: &str, admin: bool) -> StoreResult<()>;
    /// Changes the display name (None clears it).
    async fn set_display_name(&self, address: &str, name: Option<&str>) -> StoreResult<()>;
    /// One user, `None` if absent.
    async fn get_user(&self, address: &str) -> StoreResult<Option<UserRecord>>;
    /// All users, sorted by address.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Credentials of every user, for the authentication cache of a running server.
    async fn all_credentials(&self) -> StoreResult<Vec<(String, Credentials)>>;
    /// The Argon2id password hash of one user (HTTP sign-in), None if there is
    /// no such user.
    async fn password_hash(&self, address: &str) -> StoreResult<Option<String>>;
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
///
/// Every group named by a contact exists as a group of the same owner (see
/// [`Contacts::list_groups`]); groups may also be empty.
///
/// Besides the list, an owner may block people who are not in it
/// ([`Contacts::block_contact`]). Such a block is kept as an entry with
/// `listed` false, level `blocked` and no group; it is not part of the list:
/// [`Contacts::list_contacts`] and [`Contacts::contacts_naming`] leave it out,
/// it does not count towards `max_contacts`, and unblocking removes it. Only
/// [`Contacts::all_contacts`], [`Contacts::get_contact`] and
/// [`Contacts::list_blocked`] return it, because a block applies whether the
/// person is listed or not.
#[async_trait]
pub trait Contacts: Send + Sync {
    /// Adds `contact` to `owner`'s list or updates its entry there; `Limit` if
    /// the list already holds `max_contacts` listed entries and `contact` is not
    /// one of them. The entry is listed afterwards whatever `entry.listed` says:
    /// adding someone blocked without being listed puts them in the list, with
    /// the group and level of `entry` and `entry.added_ms` as the time they were
    /// added. If `entry.group` names a group the owner does not have yet, the
    /// group is created (with `entry.added_ms` as its creation time), so a client
    /// that files a contact under a new name does not need a separate call.
    async fn upsert_contact(&self, entry: &ContactRecord, max_contacts: u32) -> StoreResult<()>;
    /// Removes a contact from the list (and with it any level it had, `blocked`
    /// included); `NotFound` if it is not in the list (absent, or only blocked).
    async fn remove_contact(&self, owner: &str, contact: &str) -> StoreResult<()>;
    /// The owner's contacts (listed entries only) sorted by group then address.
    async fn list_contacts(&self, owner: &str) -> StoreResult<Vec<ContactRecord>>;
    /// Every entry of every list, unlisted blocks included, sorted by owner then
    /// contact (the server caches all lists to answer privacy questions without
    /// waiting).
    async fn all_contacts(&self) -> StoreResult<Vec<ContactRecord>>;
    /// Every listed entry naming `contact` (who has this person in their list),
    /// sorted by owner.
    async fn contacts_naming(&self, contact: &str) -> StoreResult<Vec<ContactRecord>>;
    /// `owner`'s entry for `contact`, listed or an unlisted block; None if absent.
    async fn get_contact(&self, owner: &str, contact: &str) -> StoreResult<Option<ContactRecord>>;
    /// Blocks `contact` and returns the entry as stored. A contact in the list
    /// keeps its entry (group, `added_ms`) and gets the level `blocked`; someone
    /// else gets an unlisted entry (level `blocked`, no group, added at `now_ms`),
    /// `Limit` if the owner already has `max_blocked` unlisted entries. Blocking
    /// someone blocked already succeeds and changes nothing but the change
    /// sequence. `NotFound` if the owner is not a user. Bumps change_seq.
    async fn block_contact(
        &self,
        owner: &str,
        contact: &str,
        now_ms: i64,
        max_blocked: u32,
    ) -> StoreResult<ContactRecord>;
    /// Ends a block: a contact in the list stays there (group and `added_ms`
    /// kept) without an explicit level; an unlisted entry is deleted, so the
    /// person is exactly as before the block. Returns the listed entry that
    /// remains, or None. `NotFound` if `owner` has not blocked `contact`.
    /// Bumps change_seq.
    async fn unblock_contact(
        &self,
        owner: &str,
        contact: &str,
    ) -> StoreResult<Option<ContactRecord>>;
    /// The people `owner` blocked, listed or not, sorted by contact address.
    async fn list_blocked(&self, owner: &str) -> StoreResult<Vec<ContactRecord>>;

    /// The owner's groups sorted by name (byte-wise). Groups named by contacts exist
    /// too: upsert_contact with a group that does not exist yet creates it.
    /// An unknown owner has no groups (an empty list, not `NotFound`), as with
    /// [`Contacts::list_contacts`].
    async fn list_groups(&self, owner: &str) -> StoreResult<Vec<GroupRecord>>;
    /// Creates an empty group; `Conflict` if it exists, `NotFound` if the owner is
    /// not a user. Bumps change_seq. Lets a client create a group before putting
    /// anyone in it.
    async fn add_group(&self, owner: &str, name: &str, now_ms: i64) -> StoreResult<()>;
    /// Renames a group and moves its contacts with it; `NotFound` if absent,
    /// `Conflict` if `new` exists (renaming a group to its own name included).
    /// Bumps change_seq. One transaction, so no reader sees contacts in a group
    /// that does not exist; the group keeps its `created_ms`. Merging two groups
    /// is not a rename: the caller moves the contacts and removes the group.
    async fn rename_group(&self, owner: &str, old: &str, new: &str) -> StoreResult<()>;
    /// Deletes a group; its contacts stay in the list, ungrouped. Returns how many
    /// contacts were ungrouped; `NotFound` if absent. Bumps change_seq. Deleting a
    /// group is about the filing, not the people: removing contacts is a separate,
    /// deliberate act.
    async fn remove_group(&self, owner: &str, name: &str) -> StoreResult<u64>;
}

/// Signed-in web clients, looked up by a hash of their bearer token.
///
/// None of these calls moves the change sequence: sessions are not cached
/// directory data, and signing in or out must not make every server reload its
/// caches. Sessions of a user go with the user ([`Directory::remove_user`]) and
/// with a password change ([`Directory::set_credentials`]).
#[async_trait]
pub trait WebSessions: Send + Sync {
    /// `NotFound` if the user does not exist, `Conflict` if the hash exists.
    /// A session cannot be opened for a user who is not there (or was just
    /// removed), and an existing session is never overwritten.
    async fn create_web_session(&self, session: &WebSessionRecord) -> StoreResult<()>;
    /// The session with this token hash, expired or not (the caller checks expiry
    /// against its clock).
    async fn web_session(&self, token_hash: &str) -> StoreResult<Option<WebSessionRecord>>;
    /// A user's sessions, oldest first (by `created_ms`, then by token hash
    /// byte-wise so that the order is the same on every backend). An unknown user
    /// has none. Expired sessions are included until purged.
    async fn web_sessions_of(&self, user: &str) -> StoreResult<Vec<WebSessionRecord>>;
    /// Revokes one session; `NotFound` if absent (already revoked, purged, or never
    /// created), so that a caller can tell a stale sign-out.
    async fn revoke_web_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Revokes all of a user's sessions ("sign out everywhere", an administrator
    /// locking an account); returns how many. An unknown user has none: 0.
    async fn revoke_web_sessions_of(&self, user: &str) -> StoreResult<u64>;
    /// Deletes sessions whose expiry is at or before `now_ms`; returns how many.
    /// Expiry is enforced by the caller on lookup; this only keeps the table small.
    async fn purge_expired_web_sessions(&self, now_ms: i64) -> StoreResult<u64>;
}

/// The whole storage surface a server needs.
#[async_trait]
pub trait Store:
    Directory + Registrations + Policies + OfflineMessages + Contacts + WebSessions
{
    /// A number that grows whenever directory, policy or contact data changes,
    /// from this process or another (the CLI). Servers poll it to refresh caches.
    async fn change_seq(&self) -> StoreResult<i64>;
    /// Cheap round trip proving the store is reachable and writable.
    async fn health(&self) -> StoreResult<()>;
}
