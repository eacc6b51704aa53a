//! The privacy decisions other features consult. The presence engine owns the
//! data (contact lists, access levels); IM routing and conference invitations
//! only ask the question below, so the rule lives in one place.

use crate::address::Address;

/// "May `sender` reach `recipient`?" — false when the recipient has blocked
/// the sender. IM from a blocked sender is refused with 403.
pub trait ContactGate: Send + Sync {
    /// True if `recipient` has blocked `sender`.
    fn is_blocked(&self, recipient: &Address, sender: &Address) -> bool;
}

/// A gate that blocks no one (used until the presence engine is wired in,
/// and in tests of unrelated features).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBlocking;

impl ContactGate for NoBlocking {
    fn is_blocked(&self, _recipient: &Address, _sender: &Address) -> bool {
        false
    }
}
