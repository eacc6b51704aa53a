//! Contact lists as the running server needs them: who is in a person's list,
//! in which group, at which access level. Every list is held in memory
//! (reloaded when the store's change sequence moves), so privacy questions
//! on the IM and NOTIFY paths never wait for the database.

use super::privacy::AccessLevel;
use crate::address::Address;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use switchboard_store::{ContactRecord, Store, StoreError};

/// One entry of a person's contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    pub contact: Address,
    pub group: Option<String>,
    pub level: Option<AccessLevel>,
}

/// A person's whole list, keyed by contact.
pub type ContactList = Arc<HashMap<Address, ContactEntry>>;

/// Every contact list.
#[derive(Debug, Default)]
pub struct ContactBook {
    lists: RwLock<Arc<HashMap<Address, ContactList>>>,
}

fn to_entry(r: &ContactRecord) -> Option<ContactEntry> {
    Some(ContactEntry {
        contact: Address::parse(&r.contact).ok()?,
        group: r.group.clone(),
        level: r.level.as_deref().and_then(AccessLevel::from_token),
    })
}

impl ContactBook {
    /// An empty book.
    pub fn new() -> ContactBook {
        ContactBook::default()
    }

    /// Reloads every list from the store.
    pub async fn load(&self, store: &dyn Store) -> Result<(), StoreError> {
        let rows = store.all_contacts().await?;
        let mut by_owner: HashMap<Address, HashMap<Address, ContactEntry>> = HashMap::new();
        for r in &rows {
            let (Ok(owner), Some(entry)) = (Address::parse(&r.owner), to_entry(r)) else {
                continue;
            };
            by_owner
                .entry(owner)
                .or_default()
                .insert(entry.contact.clone(), entry);
        }
        let map: HashMap<Address, ContactList> = by_owner
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        *self.lists.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
        Ok(())
    }

    /// `owner`'s list (empty if they have none).
    pub fn list(&self, owner: &Address) -> ContactList {
        self.lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner)
            .cloned()
            .unwrap_or_default()
    }

    /// `owner`'s entry for `contact`, if any.
    pub fn entry(&self, owner: &Address, contact: &Address) -> Option<ContactEntry> {
        self.lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner)
            .and_then(|l| l.get(contact).cloned())
    }
}

/// The IM hook of the privacy rules: a person who gave someone the Blocked
/// level does not receive their messages or invitations.
impl crate::privacy::ContactGate for ContactBook {
    fn is_blocked(&self, recipient: &Address, sender: &Address) -> bool {
        self.entry(recipient, sender)
            .is_some_and(|e| e.level == Some(AccessLevel::Blocked))
    }
}
