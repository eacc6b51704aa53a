//! Contact lists as the running server needs them: who is in a person's list,
//! in which group, at which access level. Every list is held in memory
//! (reloaded when the store's change sequence moves), so privacy questions
//! on the IM and NOTIFY paths never wait for the database.

use super::privacy::AccessLevel;
use crate::address::Address;
use std::collections::{HashMap, HashSet};
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

/// Every contact list, and the blocks of people outside them.
///
/// An entry the store keeps only because its owner blocked someone who is not
/// in their list (`listed` false) is not part of the list: [`ContactBook::list`]
/// and [`ContactBook::entry`] leave it out, so it neither makes the person a
/// contact (privacy mode, batch subscriptions to the list) nor shows in the
/// list. Its Blocked level still applies ([`ContactBook::level`] and the IM gate).
#[derive(Debug, Default)]
pub struct ContactBook {
    lists: RwLock<Arc<Lists>>,
}

#[derive(Debug, Default)]
struct Lists {
    /// Owner → their contact list (listed entries only).
    listed: HashMap<Address, ContactList>,
    /// Owner → people they blocked who are not in their list.
    blocked_unlisted: HashMap<Address, HashSet<Address>>,
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
        *self.lists.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Lists::from_rows(&rows));
        Ok(())
    }

    fn snapshot(&self) -> Arc<Lists> {
        self.lists.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `owner`'s list (empty if they have none). People the owner blocked
    /// without adding them are not in it.
    pub fn list(&self, owner: &Address) -> ContactList {
        self.snapshot()
            .listed
            .get(owner)
            .cloned()
            .unwrap_or_default()
    }

    /// `owner`'s entry for `contact` if `contact` is in `owner`'s list.
    pub fn entry(&self, owner: &Address, contact: &Address) -> Option<ContactEntry> {
        self.snapshot()
            .listed
            .get(owner)
            .and_then(|l| l.get(contact).cloned())
    }

    /// The access level `owner` explicitly gave `contact`: the level of their
    /// entry in the list, or Blocked for someone blocked outside the list.
    pub fn level(&self, owner: &Address, contact: &Address) -> Option<AccessLevel> {
        let lists = self.snapshot();
        match lists.listed.get(owner).and_then(|l| l.get(contact)) {
            Some(e) => e.level,
            None => lists
                .blocked_unlisted
                .get(owner)
                .is_some_and(|b| b.contains(contact))
                .then_some(AccessLevel::Blocked),
        }
    }
}

impl Lists {
    fn from_rows(rows: &[ContactRecord]) -> Lists {
        let mut listed: HashMap<Address, HashMap<Address, ContactEntry>> = HashMap::new();
        let mut blocked_unlisted: HashMap<Address, HashSet<Address>> = HashMap::new();
        for r in rows {
            let (Ok(owner), Some(entry)) = (Address::parse(&r.owner), to_entry(r)) else {
                continue;
            };
            if r.listed {
                listed
                    .entry(owner)
                    .or_default()
                    .insert(entry.contact.clone(), entry);
            } else if entry.level == Some(AccessLevel::Blocked) {
                // An unlisted entry means nothing but its block.
                blocked_unlisted
                    .entry(owner)
                    .or_default()
                    .insert(entry.contact);
            }
        }
        Lists {
            listed: listed.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            blocked_unlisted,
        }
    }
}

/// The IM hook of the privacy rules: a person who gave someone the Blocked
/// level (in their list or not) does not receive their messages or invitations.
impl crate::privacy::ContactGate for ContactBook {
    fn is_blocked(&self, recipient: &Address, sender: &Address) -> bool {
        self.level(recipient, sender) == Some(AccessLevel::Blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use crate::policy::Policies;
    use crate::presence::access;
    use crate::presence::privacy::Decision;
    use crate::privacy::ContactGate as _;
    use switchboard_store::sqlite::SqliteStore;
    use switchboard_store::{Contacts as _, Policies as _, PolicyScope};

    fn a(s: &str) -> Address {
        Address::parse(s).expect("address")
    }

    /// A store with alice, bob and carol; alice has privacy mode on and bob in
    /// her list (group Team).
    async fn setup() -> SqliteStore {
        let store = crate::test_support::store_with_users(&[
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
        ])
        .await;
        store
            .set_policy(
                "privacy",
                &PolicyScope::User("alice@example.com".into()),
                &serde_json::json!({"privacy_mode": true}),
            )
            .await
            .expect("privacy mode");
        store
            .upsert_contact(
                &ContactRecord {
                    owner: "alice@example.com".into(),
                    contact: "bob@example.com".into(),
                    group: Some("Team".into()),
                    level: None,
                    added_ms: 1,
                    listed: true,
                },
                10,
            )
            .await
            .expect("bob");
        store
    }

    struct World {
        directory: Directory,
        policies: Policies,
        book: ContactBook,
    }

    impl World {
        async fn load(store: &SqliteStore) -> World {
            let w = World {
                directory: Directory::new(),
                policies: Policies::new(),
                book: ContactBook::new(),
            };
            w.directory.load(store).await.expect("directory");
            w.policies
                .load(store, &["privacy"])
                .await
                .expect("policies");
            w.book.load(store).await.expect("contacts");
            w
        }

        fn decision(&self, person: &str, watcher: &str) -> Decision {
            access::decision(
                &self.directory,
                &self.book,
                &self.policies,
                &a(person),
                &a(watcher),
            )
        }
    }

    #[tokio::test]
    async fn a_blocked_stranger_is_blocked_but_not_a_contact() {
        let store = setup().await;
        let (alice, carol) = (a("alice@example.com"), a("carol@example.com"));
        let w = World::load(&store).await;
        assert_eq!(
            w.decision("alice@example.com", "carol@example.com"),
            Decision::Pending
        );

        store
            .block_contact("alice@example.com", "carol@example.com", 5, 10)
            .await
            .expect("block");
        let w = World::load(&store).await;
        assert_eq!(
            w.decision("alice@example.com", "carol@example.com"),
            Decision::Allow(AccessLevel::Blocked),
            "the block applies although carol is not in the list"
        );
        assert!(w.book.is_blocked(&alice, &carol));
        assert_eq!(w.book.level(&alice, &carol), Some(AccessLevel::Blocked));
        assert_eq!(w.book.entry(&alice, &carol), None, "not a contact");
        let list = w.book.list(&alice);
        assert_eq!(
            list.keys().cloned().collect::<Vec<_>>(),
            vec![a("bob@example.com")],
            "the list (and so batch subscriptions to it) has bob only"
        );

        store
            .unblock_contact("alice@example.com", "carol@example.com")
            .await
            .expect("unblock");
        let w = World::load(&store).await;
        assert_eq!(
            w.decision("alice@example.com", "carol@example.com"),
            Decision::Pending,
            "after unblocking, carol waits again as before the block"
        );
        assert!(!w.book.is_blocked(&alice, &carol));
        assert_eq!(w.book.level(&alice, &carol), None);
        assert_eq!(w.book.list(&alice).len(), 1);
    }

    #[tokio::test]
    async fn a_blocked_contact_stays_a_contact_after_unblocking() {
        let store = setup().await;
        let (alice, bob) = (a("alice@example.com"), a("bob@example.com"));
        store
            .block_contact("alice@example.com", "bob@example.com", 5, 0)
            .await
            .expect("block");
        let w = World::load(&store).await;
        assert_eq!(
            w.decision("alice@example.com", "bob@example.com"),
            Decision::Allow(AccessLevel::Blocked)
        );
        assert!(w.book.is_blocked(&alice, &bob));
        assert_eq!(
            w.book.entry(&alice, &bob),
            Some(ContactEntry {
                contact: bob.clone(),
                group: Some("Team".into()),
                level: Some(AccessLevel::Blocked),
            })
        );

        store
            .unblock_contact("alice@example.com", "bob@example.com")
            .await
            .expect("unblock");
        let w = World::load(&store).await;
        assert_eq!(
            w.decision("alice@example.com", "bob@example.com"),
            Decision::Allow(AccessLevel::Colleagues),
            "still a contact: privacy mode lets him in at the default level"
        );
        assert_eq!(
            w.book.entry(&alice, &bob).and_then(|e| e.group),
            Some("Team".into())
        );
        assert!(!w.book.is_blocked(&alice, &bob));
    }

    #[test]
    fn unlisted_rows_count_only_as_blocks() {
        let row = |contact: &str, level: Option<&str>, listed: bool| ContactRecord {
            owner: "alice@example.com".into(),
            contact: contact.into(),
            group: None,
            level: level.map(str::to_owned),
            added_ms: 1,
            listed,
        };
        let lists = Lists::from_rows(&[
            row("bob@example.com", Some("family"), true),
            row("carol@example.com", Some("blocked"), false),
            // Not something the store makes; it means nothing.
            row("dave@example.com", Some("workgroup"), false),
        ]);
        let book = ContactBook {
            lists: RwLock::new(Arc::new(lists)),
        };
        let alice = a("alice@example.com");
        assert_eq!(book.list(&alice).len(), 1);
        assert_eq!(
            book.level(&alice, &a("bob@example.com")),
            Some(AccessLevel::Family)
        );
        assert_eq!(
            book.level(&alice, &a("carol@example.com")),
            Some(AccessLevel::Blocked)
        );
        assert_eq!(book.level(&alice, &a("dave@example.com")), None);
        assert_eq!(book.entry(&alice, &a("dave@example.com")), None);
        assert_eq!(book.level(&a("bob@example.com"), &alice), None);
    }
}
