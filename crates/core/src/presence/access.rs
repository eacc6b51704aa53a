//! The question every front door asks before showing presence: how may this
//! watcher see this person right now? It gathers the relationship from the
//! directory, the person's contact list and their privacy policy, and lets
//! [`super::privacy::decide`] answer, so SIP NOTIFYs, the web API and the
//! public badges all apply the same rule.

use super::contacts::ContactBook;
use super::privacy::{self, Decision, Relationship};
use crate::address::Address;
use crate::directory::Directory;
use crate::policy::{Policies, PrivacyPolicy};

/// How `watcher` may see `person` now.
pub fn decision(
    directory: &Directory,
    contacts: &ContactBook,
    policies: &Policies,
    person: &Address,
    watcher: &Address,
) -> Decision {
    privacy::decide(
        person,
        watcher,
        Relationship {
            // A block applies whether or not the watcher is in the list, but
            // only a listed entry makes them a contact (privacy mode).
            explicit: contacts.level(person, watcher),
            is_contact: contacts.entry(person, watcher).is_some(),
            same_organisation: directory.is_served(watcher.domain()),
            privacy_mode: policies.effective::<PrivacyPolicy>(person).privacy_mode,
            person_exists: directory.user(person).is_some(),
        },
    )
}
