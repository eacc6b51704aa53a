//! The protocol-neutral domain core of Switchboard.
//!
//! Presence, IM routing, conferences, contact lists, privacy and policies
//! work here on domain types (user address, endpoint, presence state,
//! message, conversation), never on SIP, XMPP or HTTP messages. Each front door
//! translates its protocol to these types, so a message from a web client and
//! one from a SIP phone take the same path.

pub mod address;
pub mod archive;
pub mod conference;
pub mod conversation;
pub mod directory;
pub mod endpoints;
pub mod im;
pub mod policy;
pub mod presence;
pub mod privacy;

pub use address::{Address, AddressError};
pub use directory::{Directory, UserEntry};
pub use im::{InstantMessage, OfflineIm, OfflineLimits, OfflineOutcome};
pub use policy::{ImPolicy, Policies, PolicyKind};
pub use privacy::{ContactGate, NoBlocking};

/// Milliseconds since the Unix epoch, the time unit of every stored record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_support;
