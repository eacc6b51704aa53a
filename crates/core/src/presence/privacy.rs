//! Privacy: the access level each watcher has to a person's presence, what
//! each level sees, and when a watcher must wait for the person's decision.
//!
//! | level | sees |
//! |---|---|
//! | Blocked | always Offline; cannot send IM or invitations |
//! | External | availability only |
//! | Colleagues (default inside the organisation) | availability, activity, note |
//! | Friends and family | availability, activity, note |
//! | Workgroup | everything, including meeting details |

use super::model::PresenceState;
use crate::address::Address;
use serde::{Deserialize, Serialize};

/// The five access levels enterprise users know (Skype for Business
/// "privacy relationships").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    Blocked,
    External,
    Colleagues,
    Workgroup,
    Family,
}

impl AccessLevel {
    /// The token used in the CLI, the API and the store.
    pub fn token(self) -> &'static str {
        match self {
            AccessLevel::Blocked => "blocked",
            AccessLevel::External => "external",
            AccessLevel::Colleagues => "colleagues",
            AccessLevel::Workgroup => "workgroup",
            AccessLevel::Family => "family",
        }
    }

    /// Parses a token.
    pub fn from_token(s: &str) -> Option<AccessLevel> {
        [
            AccessLevel::Blocked,
            AccessLevel::External,
            AccessLevel::Colleagues,
            AccessLevel::Workgroup,
            AccessLevel::Family,
        ]
        .into_iter()
        .find(|l| l.token().eq_ignore_ascii_case(s))
    }
}

/// What `level` may see of `state`.
pub fn filter(state: &PresenceState, level: AccessLevel) -> PresenceState {
    match level {
        AccessLevel::Blocked => PresenceState::offline(),
        AccessLevel::External => PresenceState {
            availability: state.availability,
            idle: state.idle,
            ..PresenceState::offline()
        },
        AccessLevel::Colleagues | AccessLevel::Family => PresenceState {
            meeting: None,
            ..state.clone()
        },
        AccessLevel::Workgroup => state.clone(),
    }
}

/// How a watcher's request to see a person's presence is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Shown at this level.
    Allow(AccessLevel),
    /// Held until the person decides (privacy mode, watcher not a contact).
    Pending,
}

/// What is known about the relationship between a person and a watcher.
#[derive(Debug, Clone, Copy)]
pub struct Relationship {
    /// The level the person gave the watcher in their contact list, if any.
    pub explicit: Option<AccessLevel>,
    /// The watcher is in the person's contact list.
    pub is_contact: bool,
    /// The watcher belongs to a served domain (the same organisation).
    pub same_organisation: bool,
    /// The person has privacy mode on (only contacts see presence).
    pub privacy_mode: bool,
    /// The person exists. A non-existent person looks exactly like one who
    /// blocked the watcher, so that users cannot be enumerated.
    pub person_exists: bool,
}

/// Decides how `watcher` sees `person`.
pub fn decide(person: &Address, watcher: &Address, r: Relationship) -> Decision {
    if !r.person_exists {
        return Decision::Allow(AccessLevel::Blocked);
    }
    if person == watcher {
        return Decision::Allow(AccessLevel::Workgroup);
    }
    if let Some(level) = r.explicit {
        return Decision::Allow(level);
    }
    if r.privacy_mode && !r.is_contact {
        return Decision::Pending;
    }
    Decision::Allow(if r.same_organisation {
        AccessLevel::Colleagues
    } else {
        AccessLevel::External
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::model::{Activity, Availability, MeetingDetails};

    fn full() -> PresenceState {
        PresenceState {
            availability: Availability::Busy,
            idle: false,
            activity: Some(Activity::InAMeeting),
            note: Some("Budget review".into()),
            meeting: Some(MeetingDetails {
                subject: Some("Q3 budget".into()),
                location: Some("Room 4".into()),
                until: None,
            }),
        }
    }

    #[test]
    fn each_level_sees_its_subset() {
        let s = full();
        assert_eq!(filter(&s, AccessLevel::Blocked), PresenceState::offline());
        let ext = filter(&s, AccessLevel::External);
        assert_eq!(
            (
                ext.availability,
                ext.activity.is_none(),
                ext.note.is_none(),
                ext.meeting.is_none()
            ),
            (Availability::Busy, true, true, true)
        );
        for level in [AccessLevel::Colleagues, AccessLevel::Family] {
            let c = filter(&s, level);
            assert_eq!(
                (c.activity, c.note.as_deref(), c.meeting.is_none()),
                (Some(Activity::InAMeeting), Some("Budget review"), true),
                "{level:?}"
            );
        }
        assert_eq!(filter(&s, AccessLevel::Workgroup), s);
    }

    #[test]
    fn decisions() {
        let alice = Address::parse("alice@example.com").expect("a");
        let bob = Address::parse("bob@example.com").expect("b");
        let base = Relationship {
            explicit: None,
            is_contact: false,
            same_organisation: true,
            privacy_mode: false,
            person_exists: true,
        };
        assert_eq!(
            decide(&alice, &bob, base),
            Decision::Allow(AccessLevel::Colleagues)
        );
        assert_eq!(
            decide(
                &alice,
                &bob,
                Relationship {
                    same_organisation: false,
                    ..base
                }
            ),
            Decision::Allow(AccessLevel::External)
        );
        assert_eq!(
            decide(
                &alice,
                &bob,
                Relationship {
                    privacy_mode: true,
                    ..base
                }
            ),
            Decision::Pending
        );
        assert_eq!(
            decide(
                &alice,
                &bob,
                Relationship {
                    privacy_mode: true,
                    is_contact: true,
                    ..base
                }
            ),
            Decision::Allow(AccessLevel::Colleagues)
        );
        assert_eq!(
            decide(
                &alice,
                &bob,
                Relationship {
                    explicit: Some(AccessLevel::Blocked),
                    privacy_mode: true,
                    ..base
                }
            ),
            Decision::Allow(AccessLevel::Blocked)
        );
        assert_eq!(
            decide(
                &alice,
                &bob,
                Relationship {
                    person_exists: false,
                    ..base
                }
            ),
            Decision::Allow(AccessLevel::Blocked)
        );
        assert_eq!(
            decide(
                &alice,
                &alice,
                Relationship {
                    privacy_mode: true,
                    ..base
                }
            ),
            Decision::Allow(AccessLevel::Workgroup)
        );
    }
}
