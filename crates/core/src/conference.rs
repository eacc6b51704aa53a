//! Multiparty IM conferences, protocol-neutral: who is in, who was invited,
//! the recent history replayed to late joiners, and the rules (limits, who
//! may join, blocked relationships). Front doors (the SIP focus, later the web
//! API) carry messages to members; this module decides who gets what.

use crate::address::Address;
use crate::conversation::{HistoryEntry, HistoryLimits, trim};
use crate::privacy::ContactGate;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// How a member takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberMode {
    /// In an IM session (INVITE dialog) with the focus.
    Session,
    /// Pager mode: receives MESSAGEs, sends MESSAGEs to the conference.
    Pager,
}

/// One member's connection to the conference (a user may have several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: Address,
    pub display: Option<String>,
    pub mode: MemberMode,
    /// The front door's identifier of this leg (a dialog's Call-ID, a web session…).
    pub endpoint: String,
    /// The member's client understands message/cpim (sender shown natively);
    /// otherwise the sender is named in a text prefix.
    pub cpim: bool,
    pub joined_ms: i64,
}

/// A conference.
#[derive(Debug, Clone)]
pub struct Conference {
    pub id: String,
    pub domain: String,
    pub creator: Address,
    pub subject: Option<String>,
    pub members: Vec<Member>,
    pub invited: HashSet<Address>,
    pub history: VecDeque<HistoryEntry>,
    pub created_ms: i64,
    pub last_activity_ms: i64,
    /// The one-to-one conversation it grew out of, if any.
    pub escalated_from: Option<(Address, Address)>,
}

impl Conference {
    /// Distinct users currently in.
    pub fn participant_count(&self) -> usize {
        self.members
            .iter()
            .map(|m| &m.user)
            .collect::<HashSet<_>>()
            .len()
    }

    /// True if `user` has at least one leg in the conference.
    pub fn is_member(&self, user: &Address) -> bool {
        self.members.iter().any(|m| &m.user == user)
    }
}

/// Why a conference operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    #[error("no such conference")]
    NotFound,
    #[error("not invited to this conference")]
    NotInvited,
    #[error("conference is full ({0} participants)")]
    Full(usize),
    #[error("the invitee does not accept invitations from you")]
    Blocked,
    #[error("not a participant of this conference")]
    NotMember,
}

/// Conference rules (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ConferenceSettings {
    pub max_participants: usize,
    /// A conference with no message or join for this long ends.
    pub idle_timeout_ms: i64,
    pub history: HistoryLimits,
    /// Anyone in a served domain may join without an invitation.
    pub open_to_organisation: bool,
}

impl Default for ConferenceSettings {
    fn default() -> ConferenceSettings {
        ConferenceSettings {
            max_participants: 250,
            idle_timeout_ms: 2 * 3600 * 1000,
            history: HistoryLimits::default(),
            open_to_organisation: false,
        }
    }
}

/// What a join produced.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Recent history to replay to the new member, oldest first.
    pub history: Vec<HistoryEntry>,
    /// True if this user was not in before (the roster changed).
    pub new_participant: bool,
    /// True if this leg (endpoint) was not in before. False when the same
    /// leg joins again: it keeps its place, and nothing is to be replayed
    /// or started for it (`history` is then empty).
    pub new_leg: bool,
}

/// What an invitation comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invitation {
    /// The invitee may now join: bring them in.
    Invited,
    /// The invitee is already a member: there is nothing to do.
    AlreadyMember,
}

/// What [`Conferences::leave`] changed.
#[derive(Debug, Clone)]
pub struct Left {
    /// The conference just before the leave, the leaver included.
    pub before: Conference,
    /// The conference after it; `None` if the last member left and it ended.
    pub after: Option<Conference>,
}

/// Every conference of this server.
#[derive(Debug)]
pub struct Conferences {
    map: Mutex<HashMap<String, Conference>>,
    pub settings: ConferenceSettings,
}

impl Conferences {
    /// No conferences yet.
    pub fn new(settings: ConferenceSettings) -> Conferences {
        Conferences {
            map: Mutex::new(HashMap::new()),
            settings,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Conference>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a conference owned by `creator` under the unguessable `id`.
    pub fn create(&self, id: String, creator: &Address, domain: &str, now_ms: i64) -> Conference {
        let conf = Conference {
            id: id.clone(),
            domain: domain.to_owned(),
            creator: creator.clone(),
            subject: None,
            members: Vec::new(),
            invited: HashSet::from([creator.clone()]),
            history: VecDeque::new(),
            created_ms: now_ms,
            last_activity_ms: now_ms,
            escalated_from: None,
        };
        self.lock().insert(id, conf.clone());
        conf
    }

    /// A snapshot of a conference.
    pub fn get(&self, id: &str) -> Option<Conference> {
        self.lock().get(id).cloned()
    }

    /// The conferences `user` is a member of (snapshots).
    pub fn of_user(&self, user: &Address) -> Vec<Conference> {
        self.lock()
            .values()
            .filter(|c| c.is_member(user))
            .cloned()
            .collect()
    }

    /// Records where the conference came from and seeds its history.
    pub fn set_origin(&self, id: &str, pair: (Address, Address), history: Vec<HistoryEntry>) {
        if let Some(c) = self.lock().get_mut(id) {
            c.invited.insert(pair.0.clone());
            c.invited.insert(pair.1.clone());
            c.escalated_from = Some(pair);
            c.history.extend(history);
        }
    }

    /// `inviter` (a member) invites `invitee`. Inviting someone who is
    /// already a member changes nothing ([`Invitation::AlreadyMember`]).
    pub fn invite(
        &self,
        id: &str,
        inviter: &Address,
        invitee: &Address,
        gate: &dyn ContactGate,
    ) -> Result<Invitation, ConfError> {
        let mut map = self.lock();
        let c = map.get_mut(id).ok_or(ConfError::NotFound)?;
        if !c.is_member(inviter) {
            return Err(ConfError::NotMember);
        }
        if c.is_member(invitee) {
            return Ok(Invitation::AlreadyMember);
        }
        if gate.is_blocked(invitee, inviter) {
            return Err(ConfError::Blocked);
        }
        if c.participant_count() >= self.settings.max_participants {
            return Err(ConfError::Full(self.settings.max_participants));
        }
        c.invited.insert(invitee.clone());
        Ok(Invitation::Invited)
    }

    /// Adds a leg for `member.user`. Allowed for invited users, and for anyone
    /// of the organisation when the conference is open to it.
    pub fn join(
        &self,
        id: &str,
        member: Member,
        same_organisation: bool,
    ) -> Result<Joined, ConfError> {
        let mut map = self.lock();
        let c = map.get_mut(id).ok_or(ConfError::NotFound)?;
        let allowed = c.invited.contains(&member.user)
            || c.is_member(&member.user)
            || (self.settings.open_to_organisation && same_organisation);
        if !allowed {
            return Err(ConfError::NotInvited);
        }
        let new_participant = !c.is_member(&member.user);
        if new_participant && c.participant_count() >= self.settings.max_participants {
            return Err(ConfError::Full(self.settings.max_participants));
        }
        let now = member.joined_ms;
        c.last_activity_ms = now;
        if c.members.iter().any(|m| m.endpoint == member.endpoint) {
            // The same leg again (an invitation racing with another, a
            // retried join): it is in already, with its delivery running.
            return Ok(Joined {
                history: Vec::new(),
                new_participant: false,
                new_leg: false,
            });
        }
        trim(&mut c.history, &self.settings.history, now);
        let history = c.history.iter().cloned().collect();
        c.members.push(member);
        Ok(Joined {
            history,
            new_participant,
            new_leg: true,
        })
    }

    /// Removes a leg. `None` if the conference no longer exists (it already
    /// ended: whoever ended it accounted for its members); otherwise the
    /// conference as it was just before, the leaver included, and after
    /// (`None` if the last member left and it ended). One step under the
    /// lock, so that a leave and the end of the conference are never both
    /// seen for the same member.
    pub fn leave(&self, id: &str, endpoint: &str) -> Option<Left> {
        let mut map = self.lock();
        let c = map.get_mut(id)?;
        let before = c.clone();
        c.members.retain(|m| m.endpoint != endpoint);
        if c.members.is_empty() {
            map.remove(id);
            return Some(Left {
                before,
                after: None,
            });
        }
        Some(Left {
            before,
            after: Some(c.clone()),
        })
    }

    /// A message from `from_endpoint`'s member: appended to the history;
    /// returns every other leg (in join order) and the entry.
    pub fn post(
        &self,
        id: &str,
        from_endpoint: &str,
        content_type: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(Vec<Member>, HistoryEntry), ConfError> {
        let mut map = self.lock();
        let c = map.get_mut(id).ok_or(ConfError::NotFound)?;
        let sender = c
            .members
            .iter()
            .find(|m| m.endpoint == from_endpoint)
            .ok_or(ConfError::NotMember)?;
        let entry = HistoryEntry {
            from: sender.user.clone(),
            from_display: sender.display.clone(),
            content_type: content_type.to_owned(),
            body: body.to_vec(),
            at_ms: now_ms,
        };
        c.history.push_back(entry.clone());
        trim(&mut c.history, &self.settings.history, now_ms);
        c.last_activity_ms = now_ms;
        let recipients = c
            .members
            .iter()
            .filter(|m| m.endpoint != from_endpoint)
            .cloned()
            .collect();
        Ok((recipients, entry))
    }

    /// Ends and returns conferences idle for too long.
    pub fn sweep(&self, now_ms: i64) -> Vec<Conference> {
        let idle = self.settings.idle_timeout_ms;
        let mut map = self.lock();
        let ended: Vec<String> = map
            .values()
            .filter(|c| now_ms - c.last_activity_ms > idle)
            .map(|c| c.id.clone())
            .collect();
        ended.into_iter().filter_map(|id| map.remove(&id)).collect()
    }

    /// Number of live conferences.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if there is no conference.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::NoBlocking;

    fn a(s: &str) -> Address {
        Address::parse(s).expect("valid")
    }

    fn member(user: &str, ep: &str) -> Member {
        Member {
            user: a(user),
            display: None,
            mode: MemberMode::Pager,
            endpoint: ep.into(),
            cpim: false,
            joined_ms: 0,
        }
    }

    struct Blocks;
    impl ContactGate for Blocks {
        fn is_blocked(&self, recipient: &Address, _sender: &Address) -> bool {
            recipient.user() == "carol"
        }
    }

    #[test]
    fn invitation_join_post_leave() {
        let confs = Conferences::new(ConferenceSettings {
            max_participants: 2,
            ..Default::default()
        });
        confs.create("c1".into(), &a("alice@e.com"), "e.com", 0);
        assert_eq!(
            confs.join("c1", member("bob@e.com", "b"), true).err(),
            Some(ConfError::NotInvited)
        );
        confs
            .join("c1", member("alice@e.com", "a"), true)
            .expect("creator joins");
        assert_eq!(
            confs.invite("c1", &a("bob@e.com"), &a("dave@e.com"), &NoBlocking),
            Err(ConfError::NotMember)
        );
        assert_eq!(
            confs.invite("c1", &a("alice@e.com"), &a("bob@e.com"), &NoBlocking),
            Ok(Invitation::Invited)
        );
        assert_eq!(
            confs.invite("c1", &a("alice@e.com"), &a("carol@e.com"), &Blocks),
            Err(ConfError::Blocked)
        );
        confs
            .join("c1", member("bob@e.com", "b"), true)
            .expect("invited joins");
        assert_eq!(
            confs.invite("c1", &a("alice@e.com"), &a("dave@e.com"), &NoBlocking),
            Err(ConfError::Full(2))
        );
        assert_eq!(
            confs.invite("c1", &a("alice@e.com"), &a("bob@e.com"), &NoBlocking),
            Ok(Invitation::AlreadyMember),
            "a member is not invited again, even in a full conference"
        );
        let (to, entry) = confs.post("c1", "a", "text/plain", b"hi", 5).expect("post");
        assert_eq!(
            to.iter().map(|m| m.endpoint.as_str()).collect::<Vec<_>>(),
            vec!["b"]
        );
        assert_eq!(entry.from, a("alice@e.com"));
        assert_eq!(
            confs.post("c1", "zzz", "text/plain", b"x", 5).err(),
            Some(ConfError::NotMember)
        );
        let left = confs.leave("c1", "a").expect("a member leaves");
        assert_eq!(left.before.members.len(), 2);
        assert_eq!(left.after.map(|c| c.members.len()), Some(1));
        let left = confs.leave("c1", "b").expect("the last member leaves");
        assert!(left.after.is_none(), "last one out ends it");
        assert!(confs.get("c1").is_none());
        assert!(confs.leave("c1", "b").is_none(), "an ended conference");
    }

    #[test]
    fn late_joiners_get_history_and_open_conferences() {
        let confs = Conferences::new(ConferenceSettings {
            open_to_organisation: true,
            ..Default::default()
        });
        confs.create("c".into(), &a("alice@e.com"), "e.com", 0);
        confs
            .join("c", member("alice@e.com", "a"), true)
            .expect("join");
        confs.post("c", "a", "text/plain", b"one", 1).expect("post");
        confs.post("c", "a", "text/plain", b"two", 2).expect("post");
        let j = confs
            .join("c", member("zed@e.com", "z"), true)
            .expect("open to the organisation");
        assert_eq!(j.history.len(), 2);
        assert!(j.new_participant);
        assert_eq!(
            confs.join("c", member("eve@other.com", "e"), false).err(),
            Some(ConfError::NotInvited)
        );
        let again = confs
            .join("c", member("zed@e.com", "z"), true)
            .expect("the same leg again");
        assert!(
            !again.new_leg && !again.new_participant && again.history.is_empty(),
            "{again:?}"
        );
        assert_eq!(
            confs.get("c").map(|c| c.members.len()),
            Some(2),
            "no second copy of the leg"
        );
        assert!(confs.sweep(10).is_empty());
        assert_eq!(confs.sweep(10 * 3600 * 1000).len(), 1);
    }
}
