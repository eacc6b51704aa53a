//! Plain records exchanged with the store. They carry no behaviour: the domain
//! core owns the rules, the store only keeps the data.

use serde::{Deserialize, Serialize};

/// A served domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub name: String,
    pub created_ms: i64,
}

/// Password-derived secrets. The password itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Argon2id PHC string, for HTTP sign-in and future SASL.
    pub password_hash: String,
    /// Digest HA1 values, one per (realm, algorithm, username form).
    pub ha1: Vec<Ha1>,
}

/// One digest HA1 = H(username ":" realm ":" password), lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ha1 {
    pub realm: String,
    /// `MD5` or `SHA-256` (RFC 7616 names).
    pub algorithm: String,
    /// The digest `username` the value was computed for (`alice` or `alice@example.com`).
    pub username: String,
    pub hex: String,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// `user@domain`, lower-case.
    pub address: String,
    pub display_name: Option<String>,
    pub credentials: Credentials,
    pub created_ms: i64,
}

/// A stored user (without credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub address: String,
    pub display_name: Option<String>,
    pub created_ms: i64,
    /// Holds the administrator role of the web admin API. False for users created
    /// by [`crate::Directory::add_user`]: the role is only ever granted explicitly
    /// ([`crate::Directory::set_admin`]), never by default.
    pub admin: bool,
}

/// One registered contact of an address of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingRecord {
    /// Address of record, `user@domain`.
    pub aor: String,
    /// The Contact URI exactly as registered; with `aor` it identifies the binding.
    pub contact: String,
    /// `+sip.instance` (RFC 5626/5627), without the angle brackets' quotes.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626 outbound flows).
    pub reg_id: Option<u32>,
    /// q-value times 1000 (0..=1000), None when the Contact had no q.
    pub q_milli: Option<u16>,
    pub expires_ms: i64,
    pub call_id: String,
    pub cseq: u32,
    /// `udp`, `tcp`, `tls`, `ws` or `wss`: how the REGISTER arrived.
    pub transport: String,
    /// Where the REGISTER came from, `ip:port` (the NAT-facing address).
    pub source: String,
    /// Our address it arrived on, `ip:port`.
    pub local: String,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    pub user_agent: Option<String>,
    /// Feature tags and other Contact parameters the device declared
    /// (`methods`, `+sip.message`, `isfocus`…), as `name[=value]` strings.
    pub features: Vec<String>,
    pub registered_ms: i64,
}

/// A change to the stored bindings, applied in batches.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived batch items; boxing Upsert would only add an allocation and churn the API"
)]
pub enum BindingChange {
    /// Insert or replace the binding identified by (aor, contact).
    Upsert(BindingRecord),
    /// Remove one binding.
    Remove { aor: String, contact: String },
    /// Remove every binding of an address of record.
    RemoveAll { aor: String },
}

/// Where a policy document applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyScope {
    Global,
    /// `user@domain`, lower-case.
    User(String),
}

impl PolicyScope {
    /// The textual key stored in the database: `global` or `user:ADDRESS`.
    pub fn key(&self) -> String {
        match self {
            PolicyScope::Global => "global".to_owned(),
            PolicyScope::User(a) => format!("user:{a}"),
        }
    }

    /// Inverse of [`PolicyScope::key`].
    pub fn from_key(key: &str) -> Option<PolicyScope> {
        if key == "global" {
            Some(PolicyScope::Global)
        } else {
            key.strip_prefix("user:")
                .map(|a| PolicyScope::User(a.to_owned()))
        }
    }
}

/// An instant message to hold for a signed-out recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOfflineMessage {
    pub recipient: String,
    /// The sender's address of record.
    pub sender: String,
    pub sender_display: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// When the server accepted it (becomes the `Date` on delivery).
    pub received_ms: i64,
    pub expires_ms: i64,
}

/// A held instant message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineMessage {
    pub id: i64,
    pub recipient: String,
    pub sender: String,
    pub sender_display: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub received_ms: i64,
    pub expires_ms: i64,
    pub attempts: u32,
}

/// One entry of a user's contact list, or a block of someone who is not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub owner: String,
    pub contact: String,
    /// Group name; None for the default (ungrouped) entries.
    pub group: Option<String>,
    /// Privacy access level the owner grants this contact (`blocked`, `external`,
    /// `colleagues`, `workgroup`, `family`); None means the default for the relationship.
    pub level: Option<String>,
    pub added_ms: i64,
    /// The entry is in the owner's contact list. False for an entry that exists
    /// only because the owner blocked someone who is not in their list
    /// ([`crate::Contacts::block_contact`]): such an entry has the level
    /// [`ContactRecord::BLOCKED`] and no group, and is none of the list's
    /// business (not listed, not counted, not a contact for privacy mode).
    /// Records written before the field existed were all listed.
    #[serde(default = "listed_by_default")]
    pub listed: bool,
}

impl ContactRecord {
    /// The `level` of a blocked person.
    pub const BLOCKED: &'static str = "blocked";

    /// Whether the owner blocked this person.
    pub fn is_blocked(&self) -> bool {
        self.level.as_deref() == Some(ContactRecord::BLOCKED)
    }
}

fn listed_by_default() -> bool {
    true
}

/// A named group of a user's contact list (it may be empty).
///
/// Groups exist on their own, not only as a label on contacts, so that a client
/// can create a group before putting anyone in it and keep it when it empties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The user whose list it belongs to.
    pub owner: String,
    /// Unique within the owner's list; compared byte-wise (`Team` and `team`
    /// are two groups).
    pub name: String,
    pub created_ms: i64,
}

/// A signed-in web client. Only a hash of the bearer token is stored, so a copy
/// of the database does not hand out sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSessionRecord {
    /// Hash of the bearer token, computed by the web front door; the store only
    /// compares it and never sees the token.
    pub token_hash: String,
    /// The signed-in user's address.
    pub user: String,
    pub created_ms: i64,
    /// When the session stops being valid. The store returns expired sessions
    /// until they are purged; the caller checks expiry against its own clock.
    pub expires_ms: i64,
    /// What signed in (a user agent or a label the client chose), to help a user
    /// recognise their sessions; None if unknown.
    pub client: Option<String>,
}
