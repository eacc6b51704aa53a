//! Group conversations for points of presence that are not SIP devices (web
//! sessions): the same conferences, members and rules as SIP. A web user
//! takes part as a pager-mode member: what the focus delivers to the member
//! reaches their SIP devices as MESSAGEs and their web sessions as events,
//! and a member who has either is reachable.

use super::*;
use crate::sip::web_bridge::ImRefused;
use switchboard_core::endpoints::EndpointEvent;

/// Longest wait for the outcome of an invitation made through the API (an
/// INVITE rings the invitee's IM clients until someone answers). After it
/// the invitation goes on and the caller is told it is pending (202).
const INVITE_WAIT: Duration = Duration::from_secs(30);

impl SipServer {
    /// The conferences `user` is a member of.
    pub fn conferences_of(&self, user: &Address) -> Vec<Conference> {
        self.conferences.of_user(user)
    }

    /// Creates a group conversation with `creator` in it.
    pub fn create_group_as(&self, creator: &Address) -> String {
        let conf = self.conferences.create(
            ids::long_token(),
            creator,
            creator.domain(),
            switchboard_core::now_ms(),
        );
        tracing::info!(conference = %conf.id, creator = %creator, "conference created");
        if let Err(e) = self.join_as(&conf.id, creator) {
            // Only a conference that is already full or gone refuses its creator.
            tracing::warn!(conference = %conf.id, error = %e, "creator could not join");
        }
        conf.id
    }

    /// `user` joins conference `conf` as a pager-mode member (invited, or
    /// anyone of the organisation when the conference is open to it).
    pub fn join_as(&self, conf: &str, user: &Address) -> Result<(), ConfError> {
        let c = self.conferences.get(conf).ok_or(ConfError::NotFound)?;
        let endpoint = pager_endpoint(conf, user);
        let member = Member {
            user: user.clone(),
            display: self.display_of(user),
            mode: MemberMode::Pager,
            endpoint: endpoint.clone(),
            cpim: false,
            joined_ms: switchboard_core::now_ms(),
        };
        let same_org = user.domain() == c.domain && self.directory.is_served(user.domain());
        let joined = self.conferences.join(conf, member, same_org)?;
        if joined.new_leg {
            self.add_leg(conf, user, None, &endpoint, false);
            if joined.new_participant {
                let name = self.display_of(user).unwrap_or_else(|| user.to_string());
                self.notice(conf, &format!("{name} joined the conversation"));
            }
            self.after_join(
                conf,
                user,
                &endpoint,
                joined.history,
                joined.new_participant,
            );
        }
        Ok(())
    }

    /// `user` leaves conference `conf`: their pager-mode leg (the one web
    /// sessions use). Session legs of SIP clients end with their BYE.
    pub fn leave_as(&self, conf: &str, user: &Address) {
        self.leave(conf, &pager_endpoint(conf, user), true);
    }

    /// `inviter` invites `invitee` into `conf`; the outcome as a SIP status
    /// (202 if it is still ringing after [`INVITE_WAIT`]).
    pub async fn invite_as(&self, conf: &str, inviter: &Address, invitee: &Address) -> u16 {
        let (report, rx) = reporter();
        self.invite_reporting(conf, inviter, invitee, Some(report));
        wait_status(rx).await
    }

    /// Escalates the one-to-one conversation of `a` and `b` when `a` adds
    /// `c`: the new conference's id and the invitation's outcome.
    pub async fn escalate_as(&self, a: &Address, b: &Address, c: &Address) -> (String, u16) {
        let (report, rx) = reporter();
        let conf = self.escalate(a, b, c, a.domain(), Some(report));
        (conf, wait_status(rx).await)
    }

    /// A message written by `user` (a member) to conference `conf`, from a
    /// web session: archived like one from a SIP member (refused when
    /// critical mode cannot archive it), then fanned out.
    pub async fn post_as(
        &self,
        conf: &str,
        user: &Address,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), ImRefused> {
        let c = self
            .conferences
            .get(conf)
            .ok_or(ImRefused::NotInConversation)?;
        let pager = pager_endpoint(conf, user);
        let endpoint = if c.members.iter().any(|m| m.endpoint == pager) {
            pager
        } else {
            c.members
                .iter()
                .find(|m| &m.user == user)
                .map(|m| m.endpoint.clone())
                .ok_or(ImRefused::NotInConversation)?
        };
        match self.conference_archive_plan(&c, user, content_type, body) {
            None => {}
            Some((record, false)) => self.archiver.capture(record),
            Some((record, true)) => {
                if let Err(why) = self.archiver.capture_critical(record).await {
                    tracing::warn!(conference = %conf, reason = %why, "critical mode: conference message refused because it cannot be archived");
                    return Err(ImRefused::ArchiveUnavailable);
                }
            }
        }
        self.post(conf, &endpoint, content_type, body);
        Ok(())
    }

    /// Hands a conference message to `user`'s web sessions. Returns how
    /// many took it.
    pub(super) fn deliver_to_web(
        &self,
        conf: &str,
        user: &Address,
        entry: &HistoryEntry,
        replay: bool,
    ) -> usize {
        // Most members have no web session: copy nothing for them.
        if !self.endpoints.is_attached(user) {
            return 0;
        }
        self.endpoints.deliver(
            user,
            EndpointEvent::ConferenceMessage {
                conference: conf.to_owned(),
                entry: entry.clone(),
                replay,
            },
        )
    }

    /// A notice from the focus, as web sessions show it: a message whose
    /// sender is the conference itself.
    pub(super) fn notice_entry(&self, c: &Conference, text: &str) -> HistoryEntry {
        let from = Address::from_parts(&format!("{CONF_PREFIX}{}", c.id), &c.domain)
            .unwrap_or_else(|_| c.creator.clone());
        HistoryEntry {
            from,
            from_display: Some("Group chat".into()),
            content_type: "text/plain".into(),
            body: text.as_bytes().to_vec(),
            at_ms: switchboard_core::now_ms(),
        }
    }

    /// Tells the web sessions of every member who is in the conference now.
    pub(super) fn roster_to_web(&self, conf: &str) {
        let Some(c) = self.conferences.get(conf) else {
            return;
        };
        let mut members: Vec<(Address, Option<String>)> = c
            .members
            .iter()
            .map(|m| (m.user.clone(), self.display_of(&m.user)))
            .collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|a, b| a.0 == b.0);
        for (user, _) in &members {
            self.endpoints.deliver(
                user,
                EndpointEvent::Roster {
                    conference: conf.to_owned(),
                    members: members.clone(),
                },
            );
        }
    }

    /// Tells `user`'s web sessions that they are no longer in `conf`.
    pub(super) fn ended_to_web(&self, conf: &str, user: &Address) {
        self.endpoints.deliver(
            user,
            EndpointEvent::ConferenceEnded {
                conference: conf.to_owned(),
            },
        );
    }

    /// Tells `invitee`'s web sessions they are invited; true if any took it.
    pub(super) fn invitation_to_web(
        &self,
        conf: &str,
        inviter: &Address,
        invitee: &Address,
    ) -> bool {
        self.endpoints.deliver(
            invitee,
            EndpointEvent::Invitation {
                conference: conf.to_owned(),
                inviter: inviter.clone(),
                inviter_display: self.display_of(inviter),
            },
        ) > 0
    }
}

/// A [`Report`] that hands the first status to a receiver.
fn reporter() -> (Report, tokio::sync::oneshot::Receiver<u16>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let report: Report = Box::new(move |status| {
        if let Some(tx) = lock(&tx).take() {
            let _ = tx.send(status);
        }
    });
    (report, rx)
}

async fn wait_status(rx: tokio::sync::oneshot::Receiver<u16>) -> u16 {
    match tokio::time::timeout(INVITE_WAIT, rx).await {
        Ok(Ok(status)) => status,
        Ok(Err(_)) => 500,
        Err(_) => 202,
    }
}
