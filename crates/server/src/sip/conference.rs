//! The conference focus over SIP (RFC 4579): the factory URI creates
//! conferences, members join with an IM session (INVITE) or in pager mode
//! (MESSAGE), REFER invites, every message fans out to the other members in
//! the order received (one delivery queue per member), the roster is the
//! `conference` event package (RFC 4575), and a one-to-one conversation
//! escalates into a conference when a third person is invited.
//!
//! Membership rules, history and limits are the domain core's
//! ([`switchboard_core::conference`]); this module speaks SIP.

pub mod web;

use super::events::{NewSubscription, Package, Resource, SubState, Subscription};
use super::proxy::Target;
use super::{SipServer, UacOutcome, ids};
use crate::transport::{Flow, lock};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::Address;
use switchboard_core::conference::{ConfError, Conference, Invitation, Member, MemberMode};
use switchboard_core::conversation::HistoryEntry;
use switchboard_sip::{
    HeaderName, Method, NameAddr, Request, Response, SipUri, TransactionKey, Uri,
};
use switchboard_sip_bodies::conference_info::{self as ci, ConferenceInfo};
use switchboard_sip_bodies::cpim::{self, Cpim};
use switchboard_sip_bodies::sdp_im::ImSdp;
use tokio::sync::mpsc;

/// Receives the final status of an invitation.
pub type Report = Box<dyn Fn(u16) + Send + Sync>;

/// The user part prefix of conference URIs: `sip:conf-<32 hex>@domain`.
pub const CONF_PREFIX: &str = "conf-";

/// True if `user` is a conference URI's user part (reserved: no user may
/// have such a name).
pub fn is_conference_user(user: &str) -> bool {
    user.len() == CONF_PREFIX.len() + 32
        && user.starts_with(CONF_PREFIX)
        && user[CONF_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// What a member's delivery queue carries.
#[derive(Debug)]
enum Outgoing {
    /// A conference message (or a replayed one, or a notice from the focus).
    Message { content_type: String, body: Vec<u8> },
    /// A NOTIFY of the REFER subscription inside a session member's dialog.
    ReferNotify {
        state: String,
        sipfrag: String,
        refer_cseq: u32,
    },
    /// The end of a session member's dialog with the focus (the conference
    /// ended): the last request of the queue.
    Bye,
}

/// The dialog of a session member, from the focus's side.
#[derive(Debug, Clone)]
pub struct LegDialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    pub local_uri: String,
    pub remote_uri: String,
    pub remote_target: Uri,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub flow: Flow,
}

/// A member leg known to the focus.
#[derive(Debug)]
pub struct Leg {
    pub conf: String,
    pub user: Address,
    tx: mpsc::UnboundedSender<Outgoing>,
}

fn reply(req: &Request, status: u16, reason: &str) -> Response {
    Response::to_request(req, status)
        .with_to_tag(&ids::tag())
        .with_reason(reason)
}

/// The endpoint of `user`'s pager-mode leg in conference `conf`. It names
/// the conference too: legs are found by endpoint alone (session legs by
/// their Call-ID), and one person may be a pager member of several
/// conferences, each with its own delivery queue.
fn pager_endpoint(conf: &str, user: &Address) -> String {
    format!("pager:{user}/{conf}")
}

/// True for the endpoint of a pager-mode leg (whose member's web sessions
/// receive what the leg receives).
fn is_pager_leg(endpoint: &str) -> bool {
    endpoint.starts_with("pager:")
}

/// Settings of the focus.
#[derive(Debug, Clone)]
pub struct FocusSettings {
    /// User part of the factory URI in every served domain.
    pub factory_user: String,
}

impl SipServer {
    /// The conference id a URI names, if it is a conference URI of a served domain.
    pub fn conference_of_uri(&self, uri: &SipUri) -> Option<String> {
        let user = uri.user.as_deref()?;
        if !is_conference_user(user) {
            return None;
        }
        let host = uri.host.to_string().to_ascii_lowercase();
        let ours = self.directory.is_served(&host)
            || uri
                .host
                .ip()
                .is_some_and(|ip| self.transports.is_local(ip, uri.port.unwrap_or(5060)));
        ours.then(|| user[CONF_PREFIX.len()..].to_owned())
    }

    fn is_factory(&self, uri: &SipUri) -> bool {
        uri.user
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(&self.focus.factory_user))
            && self
                .directory
                .is_served(&uri.host.to_string().to_ascii_lowercase())
    }

    fn conference_uri(conf: &Conference) -> String {
        format!("sip:{CONF_PREFIX}{}@{}", conf.id, conf.domain)
    }

    /// Routes requests for the focus; false if the request is not for it.
    pub fn focus_request(&self, key: &TransactionKey, req: &Request, flow: &Flow) -> bool {
        let Some(uri) = req.uri.as_sip() else {
            return false;
        };
        let factory = self.is_factory(uri);
        let conf = self.conference_of_uri(uri);
        if !factory && conf.is_none() {
            return false;
        }
        if req.method == Method::Subscribe {
            // The events framework authenticates and routes it (conference package).
            return false;
        }
        let in_dialog = req.headers.to().ok().is_some_and(|t| t.tag().is_some());
        if in_dialog {
            self.focus_in_dialog(key, req, conf.as_deref());
            return true;
        }
        // Out of dialog: only authenticated users of served domains.
        let Some(user) = self.authenticated_sender(key, req) else {
            return true;
        };
        match (req.method.clone(), factory, conf) {
            (Method::Invite, true, _) => self.create_by_factory(key, req, flow, &user),
            (Method::Invite, false, Some(id)) => self.join_session(key, req, flow, &user, &id),
            (Method::Message, false, Some(id)) => self.pager_post(key, req, &user, &id),
            (Method::Refer, false, Some(id)) => {
                self.refer_out_of_dialog(key, req, flow, &user, &id)
            }
            (Method::Subscribe, false, Some(_)) => return false,
            (Method::Options, _, _) => self.respond(
                key,
                Response::to_request(req, 200)
                    .with_to_tag(&ids::tag())
                    .with_header(
                        HeaderName::Allow,
                        "INVITE, ACK, BYE, MESSAGE, INFO, REFER, SUBSCRIBE, OPTIONS",
                    ),
            ),
            _ => self.respond(
                key,
                reply(req, 405, "Method Not Allowed").with_header(
                    HeaderName::Allow,
                    "INVITE, ACK, BYE, MESSAGE, INFO, REFER, SUBSCRIBE, OPTIONS",
                ),
            ),
        }
        true
    }

    /// Authenticates an out-of-dialog request from a local user (407) and
    /// checks that From is that user; answers and returns None otherwise.
    pub fn authenticated_sender(&self, key: &TransactionKey, req: &Request) -> Option<Address> {
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => {
                self.respond(key, reply(req, 400, &e.to_string()));
                return None;
            }
        };
        let Some(from_aor) = from
            .uri
            .as_sip()
            .and_then(|u| self.user_address(u, req))
            .filter(|a| self.directory.is_served(a.domain()))
        else {
            self.respond(
                key,
                reply(
                    req,
                    403,
                    "Only users of this server may take part in its conferences",
                ),
            );
            return None;
        };
        match self
            .auth
            .authenticate(req, from_aor.domain(), true, &self.directory)
        {
            crate::sip::auth::AuthOutcome::Authenticated(a) if a == from_aor => Some(a),
            crate::sip::auth::AuthOutcome::Authenticated(_) => {
                self.respond(
                    key,
                    reply(req, 403, "From does not match the authenticated user"),
                );
                None
            }
            crate::sip::auth::AuthOutcome::Challenge(c) => {
                self.respond(key, *c);
                None
            }
        }
    }

    fn display_of(&self, user: &Address) -> Option<String> {
        self.directory
            .user(user)
            .and_then(|u| u.display_name.clone())
    }

    fn create_by_factory(&self, key: &TransactionKey, req: &Request, flow: &Flow, user: &Address) {
        let domain = req
            .uri
            .as_sip()
            .map(|u| u.host.to_string().to_ascii_lowercase())
            .unwrap_or_else(|| user.domain().to_owned());
        let conf =
            self.conferences
                .create(ids::long_token(), user, &domain, switchboard_core::now_ms());
        tracing::info!(conference = %conf.id, creator = %user, "conference created");
        self.join_session(key, req, flow, user, &conf.id);
    }

    /// Accepts an INVITE IM session into conference `id`.
    fn join_session(
        &self,
        key: &TransactionKey,
        req: &Request,
        flow: &Flow,
        user: &Address,
        id: &str,
    ) {
        let Some(conf) = self.conferences.get(id) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        let offer = ImSdp::parse(&req.body).ok();
        if !req.body.is_empty() && offer.as_ref().is_none_or(|o| o.port == 0) {
            return self.respond(
                key,
                reply(
                    req,
                    488,
                    "Not Acceptable Here: an IM session (m=message) is expected",
                ),
            );
        }
        let cpim = offer.as_ref().is_some_and(|o| {
            o.accept_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case("message/cpim"))
        });
        let dialog = match Self::new_sub_dialog(req) {
            Ok(d) => d,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        let conf_uri = Self::conference_uri(&conf);
        let leg = LegDialog {
            call_id: dialog.call_id.clone(),
            local_tag: dialog.local_tag.clone(),
            remote_tag: dialog.remote_tag.clone(),
            local_uri: dialog.local_uri.clone(),
            remote_uri: dialog.remote_uri.clone(),
            remote_target: dialog.remote_target.clone(),
            route_set: dialog.route_set.clone(),
            local_cseq: 0,
            flow: flow.clone(),
        };
        let member = Member {
            user: user.clone(),
            display: self.display_of(user),
            mode: MemberMode::Session,
            endpoint: leg.call_id.clone(),
            cpim,
            joined_ms: switchboard_core::now_ms(),
        };
        let joined =
            match self
                .conferences
                .join(id, member, self.directory.is_served(user.domain()))
            {
                Ok(j) => j,
                Err(ConfError::Full(n)) => {
                    return self.respond(
                        key,
                        reply(req, 486, &format!("Conference full ({n} participants)")),
                    );
                }
                Err(ConfError::NotInvited) => {
                    return self.respond(key, reply(req, 403, "Not invited to this conference"));
                }
                Err(e) => return self.respond(key, reply(req, 404, &e.to_string())),
            };
        let mut resp = Response::to_request(req, 200).with_to_tag(&leg.local_tag);
        resp.headers
            .push(HeaderName::Contact, format!("<{conf_uri}>;isfocus"));
        resp.headers.push(
            HeaderName::Allow,
            "INVITE, ACK, BYE, MESSAGE, INFO, REFER, SUBSCRIBE, OPTIONS",
        );
        if let Some(mut sdp) = offer {
            let local = self.advertised(flow);
            sdp.username = "switchboard".into();
            sdp.address = local.ip().to_string();
            sdp.addr_type = if local.is_ipv6() {
                switchboard_sip_bodies::sdp_im::AddrType::Ip6
            } else {
                switchboard_sip_bodies::sdp_im::AddrType::Ip4
            };
            sdp.port = local.port();
            sdp.accept_types = vec![
                "message/cpim".into(),
                "text/plain".into(),
                "text/html".into(),
            ];
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = sdp.to_sdp().into_bytes();
        }
        self.respond(key, resp);
        let endpoint = leg.call_id.clone();
        self.add_leg(id, user, Some(leg), &endpoint, cpim);
        self.after_join(id, user, &endpoint, joined.history, joined.new_participant);
    }

    /// Starts the delivery queue of a member leg. A leg has one queue: when
    /// the endpoint has one already, it is kept and nothing is started.
    fn add_leg(
        &self,
        conf: &str,
        user: &Address,
        dialog: Option<LegDialog>,
        endpoint: &str,
        cpim: bool,
    ) {
        let Some(c) = self.conferences.get(conf) else {
            return;
        };
        let conf_uri = Self::conference_uri(&c);
        let (tx, rx) = mpsc::unbounded_channel();
        match lock(&self.legs).entry(endpoint.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => return,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Leg {
                    conf: conf.to_owned(),
                    user: user.clone(),
                    tx,
                });
            }
        }
        if let Some(me) = self.arc() {
            let conf = conf.to_owned();
            let user = user.clone();
            let endpoint = endpoint.to_owned();
            tokio::spawn(async move {
                me.deliver_leg(conf, conf_uri, user, endpoint, dialog, cpim, rx)
                    .await
            });
        }
    }

    /// Replays history to a new member and tells the roster watchers.
    fn after_join(
        &self,
        conf: &str,
        user: &Address,
        endpoint: &str,
        history: Vec<HistoryEntry>,
        new_participant: bool,
    ) {
        for h in history {
            self.enqueue(endpoint, &h, conf, true);
        }
        if new_participant {
            tracing::info!(conference = %conf, user = %user, "joined");
            self.archive_presence_event(conf, user, "join");
        }
        self.roster_changed(conf, user);
    }

    /// Puts a conference message in a leg's queue, formatted for it (and
    /// hands it to the web sessions of a pager-mode member; `replay` for
    /// history replayed at join).
    fn enqueue(&self, endpoint: &str, entry: &HistoryEntry, conf: &str, replay: bool) {
        let legs = lock(&self.legs);
        let Some(leg) = legs.get(endpoint) else {
            return;
        };
        if is_pager_leg(endpoint) {
            self.deliver_to_web(conf, &leg.user, entry, replay);
        }
        let cpim = self
            .conferences
            .get(conf)
            .and_then(|c| {
                c.members
                    .iter()
                    .find(|m| m.endpoint == endpoint)
                    .map(|m| m.cpim)
            })
            .unwrap_or(false);
        let (content_type, body) = format_for_member(
            entry,
            cpim,
            conf,
            &self
                .conferences
                .get(conf)
                .map(|c| Self::conference_uri(&c))
                .unwrap_or_default(),
        );
        let _ = leg.tx.send(Outgoing::Message { content_type, body });
    }

    /// A notice from the focus itself (someone joined, left, was invited).
    fn notice(&self, conf: &str, text: &str) {
        self.notice_where(conf, text, |_| true);
    }

    /// A notice from the focus to one member (all their legs).
    fn notice_to(&self, conf: &str, user: &Address, text: &str) {
        self.notice_where(conf, text, |m| &m.user == user);
    }

    /// A notice from the focus to the members `to` selects, on every leg
    /// they have (web sessions of pager legs included).
    fn notice_where(&self, conf: &str, text: &str, to: impl Fn(&Member) -> bool) {
        let Some(c) = self.conferences.get(conf) else {
            return;
        };
        let entry = self.notice_entry(&c, text);
        let legs = lock(&self.legs);
        for m in c.members.iter().filter(|m| to(m)) {
            if let Some(leg) = legs.get(&m.endpoint) {
                if is_pager_leg(&m.endpoint) {
                    self.deliver_to_web(conf, &m.user, &entry, false);
                }
                let _ = leg.tx.send(Outgoing::Message {
                    content_type: "text/plain".into(),
                    body: text.as_bytes().to_vec(),
                });
            }
        }
    }

    /// The delivery loop of one leg: one request at a time, in order. It
    /// runs until the leg is dropped (left, or the conference ended) and its
    /// queue is drained, so what was queued before the end (the notice that
    /// the conference ended, the BYE) still goes out.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_leg(
        self: Arc<Self>,
        conf: String,
        conf_uri: String,
        user: Address,
        endpoint: String,
        mut dialog: Option<LegDialog>,
        _cpim: bool,
        mut rx: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        while let Some(item) = rx.recv().await {
            let bye = matches!(item, Outgoing::Bye);
            let ok = match &mut dialog {
                Some(d) => self.send_in_leg(d, item).await,
                None => self.send_pager(&conf_uri, &user, item).await,
            };
            if bye {
                return;
            }
            if !ok {
                tracing::info!(conference = %conf, user = %user, "member unreachable; removing them from the conference");
                self.leave(&conf, &endpoint, false);
                return;
            }
        }
    }

    async fn send_in_leg(&self, d: &mut LegDialog, item: Outgoing) -> bool {
        let Some(flow) = self.transports.live_flow(&d.flow) else {
            return false;
        };
        d.local_cseq += 1;
        let method = match &item {
            Outgoing::Message { .. } => Method::Message,
            Outgoing::ReferNotify { .. } => Method::Notify,
            Outgoing::Bye => Method::Bye,
        };
        let mut req = Request::new(method.clone(), d.remote_target.clone());
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            format!("{};tag={}", d.local_uri, d.local_tag),
        );
        req.headers.push(
            HeaderName::To,
            format!("{};tag={}", d.remote_uri, d.remote_tag),
        );
        req.headers.push(HeaderName::CallId, d.call_id.clone());
        req.headers
            .push(HeaderName::CSeq, format!("{} {method}", d.local_cseq));
        match item {
            Outgoing::Message { content_type, body } => {
                req.headers.push(HeaderName::ContentType, content_type);
                req.body = body;
            }
            Outgoing::ReferNotify {
                state,
                sipfrag,
                refer_cseq,
            } => {
                // The id names the REFER this subscription belongs to
                // (RFC 3515 §2.4.6: several REFERs may share a dialog).
                req.headers
                    .push(HeaderName::Event, format!("refer;id={refer_cseq}"));
                req.headers.push(HeaderName::SubscriptionState, state);
                req.headers
                    .push(HeaderName::Contact, self.own_contact(&flow));
                req.headers
                    .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
                req.body = sipfrag.into_bytes();
            }
            Outgoing::Bye => {}
        }
        let target = Target {
            uri: d.remote_target.clone(),
            flow,
            routes: d.route_set.clone(),
        };
        let (out, _) = self.prepare_forward(&req, &target, None, false);
        match self.send_request(out, target.flow).await {
            UacOutcome::Response(r) => !matches!(r.status, 408 | 480 | 481),
            _ => false,
        }
    }

    /// A message to a pager member's devices, from the conference URI. It
    /// does not need the conference any more: the notice that it ended goes
    /// out after it is gone.
    async fn send_pager(&self, conf_uri: &str, user: &Address, item: Outgoing) -> bool {
        let Outgoing::Message { content_type, body } = item else {
            return true;
        };
        let now = switchboard_core::now_ms();
        let targets = self.device_targets(user, now);
        if targets.is_empty() {
            // A member signed in on the web only: their sessions had it
            // (see enqueue); reachable while a session is online.
            return self.endpoints.is_attached(user);
        }
        let mut req = Request::new(
            Method::Message,
            Uri::parse(&format!("sip:{user}")).unwrap_or(Uri::Sip(SipUri::new(
                Some(user.user()),
                switchboard_sip::Host::Name(user.domain().to_owned()),
            ))),
        );
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            format!("\"Group chat\" <{conf_uri}>;tag={}", ids::tag()),
        );
        req.headers.push(HeaderName::To, format!("<sip:{user}>"));
        let domain = conf_uri.rsplit_once('@').map_or(user.domain(), |(_, d)| d);
        req.headers.push(HeaderName::CallId, ids::call_id(domain));
        req.headers.push(HeaderName::CSeq, "1 MESSAGE");
        req.headers.push(HeaderName::ContentType, content_type);
        req.body = body;
        matches!(self.send_to_devices(req, targets).await, UacOutcome::Response(r) if r.status < 300)
    }

    /// Removes a leg; ends the conference when nobody is left.
    pub fn leave(&self, conf: &str, endpoint: &str, announce: bool) {
        let leg = lock(&self.legs).remove(endpoint);
        let Some(leg) = leg else { return };
        let Some(left) = self.conferences.leave(conf, endpoint) else {
            // Already ended (idle): its end archived every member's leave.
            self.conference_ended(conf);
            return;
        };
        let last_leg = left
            .before
            .members
            .iter()
            .filter(|m| m.user == leg.user)
            .count()
            == 1;
        if last_leg {
            self.archive_member_event(&left.before, &leg.user, "leave", "");
        }
        match left.after {
            Some(c) => {
                if !c.is_member(&leg.user) {
                    self.ended_to_web(conf, &leg.user);
                }
                if announce && !c.is_member(&leg.user) {
                    let name = self
                        .display_of(&leg.user)
                        .unwrap_or_else(|| leg.user.to_string());
                    self.notice(conf, &format!("{name} left the conversation"));
                }
                self.roster_changed(conf, &leg.user);
            }
            None => self.conference_ended(conf),
        }
    }

    /// A conference that ended for lack of activity (already gone from the
    /// list of conferences): every member is told why, then session members
    /// get a BYE in their dialog with the focus, the last request of that
    /// dialog, so their client shows the chat as over.
    fn conference_expired(&self, c: &Conference) {
        let text = format!(
            "This group chat ended after {} without activity.",
            idle_span(self.conferences.settings.idle_timeout_ms)
        );
        {
            let legs = lock(&self.legs);
            for m in &c.members {
                let Some(leg) = legs.get(&m.endpoint) else {
                    continue;
                };
                let _ = leg.tx.send(Outgoing::Message {
                    content_type: "text/plain".into(),
                    body: text.clone().into_bytes(),
                });
                if m.mode == MemberMode::Session {
                    let _ = leg.tx.send(Outgoing::Bye);
                }
            }
        }
        tracing::info!(conference = %c.id, "conference idle for too long");
        // Everyone still in it leaves, as far as the archive is concerned.
        let mut members: Vec<&Address> = c.members.iter().map(|m| &m.user).collect();
        members.sort();
        members.dedup();
        for user in members {
            self.archive_member_event(c, user, "leave", "conference ended: idle");
        }
        // Dropping the legs closes their queues: what is queued still goes out.
        self.conference_ended(&c.id);
    }

    fn conference_ended(&self, conf: &str) {
        tracing::info!(conference = %conf, "conference ended");
        self.conversations.conference_ended(conf);
        let mut gone: Vec<Address> = Vec::new();
        lock(&self.legs).retain(|_, l| {
            if l.conf == conf {
                gone.push(l.user.clone());
            }
            l.conf != conf
        });
        gone.sort();
        gone.dedup();
        for user in &gone {
            self.ended_to_web(conf, user);
        }
        let subs: Vec<u64> = lock(&self.subscriptions)
            .conference_of
            .get(conf)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in subs {
            self.end_subscription(id, super::events::EndReason::Noresource);
        }
    }

    /// A message sent to the conference in pager mode (joins the sender as a
    /// pager member if they may join; `/leave` leaves).
    fn pager_post(&self, key: &TransactionKey, req: &Request, user: &Address, id: &str) {
        let Some(conf) = self.conferences.get(id) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        let ct = match req.headers.content_type() {
            Ok(Some(ct)) => ct,
            Ok(None) => return self.respond(key, reply(req, 400, "Missing Content-Type")),
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        if !super::routing::MESSAGE_TYPES.contains(&ct.essence().as_str()) {
            return self.respond(
                key,
                reply(req, 415, "Unsupported Media Type")
                    .with_header(HeaderName::Accept, super::routing::MESSAGE_TYPES.join(", ")),
            );
        }
        if req.body.len() > self.settings.max_im_body {
            return self.respond(key, reply(req, 413, "Message body too large"));
        }
        let endpoint = pager_endpoint(id, user);
        let text = String::from_utf8_lossy(&req.body).trim().to_owned();
        if ct.is("text", "plain") && text.eq_ignore_ascii_case("/leave") {
            self.respond(key, Response::to_request(req, 200).with_to_tag(&ids::tag()));
            self.leave(id, &endpoint, true);
            return;
        }
        if !conf.members.iter().any(|m| m.endpoint == endpoint) {
            let member = Member {
                user: user.clone(),
                display: self.display_of(user),
                mode: MemberMode::Pager,
                endpoint: endpoint.clone(),
                cpim: false,
                joined_ms: switchboard_core::now_ms(),
            };
            match self
                .conferences
                .join(id, member, self.directory.is_served(user.domain()))
            {
                Ok(j) => {
                    self.add_leg(id, user, None, &endpoint, false);
                    self.after_join(id, user, &endpoint, j.history, j.new_participant);
                }
                Err(ConfError::Full(n)) => {
                    return self.respond(
                        key,
                        reply(req, 486, &format!("Conference full ({n} participants)")),
                    );
                }
                Err(ConfError::NotInvited) => {
                    return self.respond(key, reply(req, 403, "Not invited to this conference"));
                }
                Err(e) => return self.respond(key, reply(req, 404, &e.to_string())),
            }
        }
        if ct.is("text", "plain")
            && let Some(target) = text.strip_prefix("/invite ")
        {
            self.respond(key, Response::to_request(req, 200).with_to_tag(&ids::tag()));
            self.invite_by_text(id, user, target.trim());
            return;
        }
        let ok = Response::to_request(req, 200).with_to_tag(&ids::tag());
        if ct.is("application", "im-iscomposing+xml") {
            return self.respond(key, ok);
        }
        self.accept_post(key, req, ok, id, &endpoint, &ct.to_string());
    }

    /// Answers a message sent to a conference and fans it out, archiving it
    /// first when a member's policy says so. In critical mode the record is
    /// committed before anything is delivered, and the message is refused
    /// with 503 if the archive cannot be written.
    fn accept_post(
        &self,
        key: &TransactionKey,
        req: &Request,
        ok: Response,
        conf: &str,
        endpoint: &str,
        content_type: &str,
    ) {
        let Some(c) = self.conferences.get(conf) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        let (ct, body) = unwrap_cpim(content_type, &req.body);
        let sender = c
            .members
            .iter()
            .find(|m| m.endpoint == endpoint)
            .map(|m| m.user.clone());
        let plan = match &sender {
            Some(sender) => self.conference_archive_plan(&c, sender, &ct, &body),
            None => None,
        };
        match plan {
            None => {
                self.respond(key, ok);
                self.post(conf, endpoint, &ct, &body);
            }
            Some((record, false)) => {
                self.respond(key, ok);
                self.post(conf, endpoint, &ct, &body);
                self.archiver.capture(record);
            }
            Some((record, true)) => {
                let Some(me) = self.arc() else { return };
                let (key, req, conf, endpoint) = (
                    key.clone(),
                    req.clone(),
                    conf.to_owned(),
                    endpoint.to_owned(),
                );
                tokio::spawn(async move {
                    match me.archiver.capture_critical(record).await {
                        Ok(()) => {
                            me.respond(&key, ok);
                            me.post(&conf, &endpoint, &ct, &body);
                        }
                        Err(why) => {
                            tracing::warn!(conference = %conf, reason = %why, "critical mode: conference message refused because it cannot be archived");
                            me.respond(
                                &key,
                                reply(
                                    &req,
                                    503,
                                    "Archiving unavailable: message not delivered (critical mode)",
                                )
                                .with_header(HeaderName::RetryAfter, "30"),
                            );
                        }
                    }
                });
            }
        }
    }

    /// Whether a message of `sender` to conference `c` is archived and how
    /// (the record, and whether critical mode applies).
    fn conference_archive_plan(
        &self,
        c: &Conference,
        sender: &Address,
        content_type: &str,
        body: &[u8],
    ) -> Option<(switchboard_store::archive::NewArchiveRecord, bool)> {
        let users: Vec<Address> = {
            let mut u: Vec<Address> = c.members.iter().map(|m| m.user.clone()).collect();
            u.sort();
            u.dedup();
            u
        };
        let parties: Vec<&Address> = users.iter().collect();
        self.archive_plan(&parties, || {
            let others: Vec<&Address> = users.iter().filter(|u| *u != sender).collect();
            let mut r = self.message_record(
                &format!("{CONF_PREFIX}{}", c.id),
                sender,
                &others,
                content_type,
                body.to_vec(),
                switchboard_core::now_ms(),
            );
            r.outcome = format!("delivered to {} members", c.members.len().saturating_sub(1));
            r
        })
    }

    /// Archives a join or leave when the conference is archived.
    fn archive_presence_event(&self, conf: &str, user: &Address, kind: &str) {
        let Some(c) = self.conferences.get(conf) else {
            return;
        };
        self.archive_member_event(&c, user, kind, "");
    }

    /// Archives `user`'s `join` or `leave` of `c`, among its members (and
    /// `user`), with `outcome` (why, when the focus ended it).
    fn archive_member_event(&self, c: &Conference, user: &Address, kind: &str, outcome: &str) {
        let conf = &c.id;
        let mut users: Vec<Address> = c.members.iter().map(|m| m.user.clone()).collect();
        users.push(user.clone());
        users.sort();
        users.dedup();
        let parties: Vec<&Address> = users.iter().collect();
        let plan = self.archive_plan(&parties, || switchboard_store::archive::NewArchiveRecord {
            conversation: format!("{CONF_PREFIX}{conf}"),
            kind: kind.to_owned(),
            at_ms: switchboard_core::now_ms(),
            sender: user.to_string(),
            participants: users
                .iter()
                .filter(|u| *u != user)
                .map(Address::to_string)
                .collect(),
            content_type: String::new(),
            body: Vec::new(),
            text: String::new(),
            outcome: outcome.to_owned(),
            external: users.iter().any(|u| !self.directory.is_served(u.domain())),
        });
        if let Some((record, _)) = plan {
            self.archiver.capture(record);
        }
    }

    /// Fans a message out to every other member (the archive hook sees it first).
    pub fn post(&self, conf: &str, endpoint: &str, content_type: &str, body: &[u8]) {
        let (content_type, body) = unwrap_cpim(content_type, body);
        match self.conferences.post(
            conf,
            endpoint,
            &content_type,
            &body,
            switchboard_core::now_ms(),
        ) {
            Ok((recipients, entry)) => {
                for m in recipients {
                    self.enqueue(&m.endpoint, &entry, conf, false);
                }
            }
            Err(e) => tracing::debug!(conference = %conf, error = %e, "message not posted"),
        }
    }

    /// Requests inside a member's dialog with the focus (or inside a one-to-one
    /// session that was escalated).
    fn focus_in_dialog(&self, key: &TransactionKey, req: &Request, conf_hint: Option<&str>) {
        let call_id = req.headers.call_id().unwrap_or_default().to_owned();
        let leg = {
            let legs = lock(&self.legs);
            legs.get(&call_id).map(|l| (l.conf.clone(), l.user.clone()))
        };
        let Some((conf, user)) = leg else {
            return self.respond(key, reply(req, 481, "Call/Transaction Does Not Exist"));
        };
        let _ = conf_hint;
        match req.method {
            Method::Message => {
                let ct = req
                    .headers
                    .content_type()
                    .ok()
                    .flatten()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "text/plain".into());
                if req.body.len() > self.settings.max_im_body {
                    return self.respond(key, reply(req, 413, "Message body too large"));
                }
                if ct.starts_with("application/im-iscomposing") {
                    return self.respond(key, Response::to_request(req, 200));
                }
                self.accept_post(
                    key,
                    req,
                    Response::to_request(req, 200),
                    &conf,
                    &call_id,
                    &ct,
                );
            }
            Method::Info | Method::Options | Method::Update => {
                self.respond(key, Response::to_request(req, 200))
            }
            Method::Invite => {
                // A re-INVITE (session refresh): accept, keeping the session as is.
                let mut resp = Response::to_request(req, 200);
                resp.headers.push(
                    HeaderName::Contact,
                    format!("<sip:{CONF_PREFIX}{conf}@{}>;isfocus", user.domain()),
                );
                if !req.body.is_empty() {
                    resp.headers
                        .push(HeaderName::ContentType, "application/sdp");
                    resp.body = req.body.clone();
                }
                self.respond(key, resp);
            }
            Method::Bye => {
                self.respond(key, Response::to_request(req, 200));
                self.leave(&conf, &call_id, true);
            }
            Method::Refer => self.refer_in_dialog(key, req, &conf, &user, &call_id),
            _ => self.respond(key, reply(req, 405, "Method Not Allowed")),
        }
    }

    fn parse_refer_to(&self, req: &Request) -> Result<Address, &'static str> {
        let v = req
            .headers
            .get(&HeaderName::ReferTo)
            .ok_or("Missing Refer-To")?;
        let na = NameAddr::parse(v, "Refer-To").map_err(|_| "Bad Refer-To")?;
        if na.uri.as_sip().is_some_and(|u| {
            u.params
                .value("method")
                .is_some_and(|m| !m.eq_ignore_ascii_case("INVITE"))
        }) {
            return Err("Bad Refer-To: only invitations are supported");
        }
        na.uri
            .as_sip()
            .and_then(|u| self.user_address(u, req))
            .ok_or("Bad Refer-To: not a user address")
    }

    fn refer_in_dialog(
        &self,
        key: &TransactionKey,
        req: &Request,
        conf: &str,
        referrer: &Address,
        endpoint: &str,
    ) {
        let invitee = match self.parse_refer_to(req) {
            Ok(a) => a,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        self.respond(key, Response::to_request(req, 202));
        let refer_cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let notify = {
            let legs = lock(&self.legs);
            legs.get(endpoint).map(|l| l.tx.clone())
        };
        if let Some(tx) = &notify {
            let _ = tx.send(Outgoing::ReferNotify {
                state: "active;expires=60".into(),
                sipfrag: "SIP/2.0 100 Trying\r\n".into(),
                refer_cseq,
            });
        }
        let report = move |status: u16| {
            if let Some(tx) = &notify {
                let _ = tx.send(Outgoing::ReferNotify {
                    state: "terminated;reason=noresource".into(),
                    sipfrag: format!(
                        "SIP/2.0 {status} {}\r\n",
                        switchboard_sip::default_reason(status)
                    ),
                    refer_cseq,
                });
            }
        };
        self.invite_member(conf, referrer, &invitee, Box::new(report));
    }

    fn refer_out_of_dialog(
        &self,
        key: &TransactionKey,
        req: &Request,
        flow: &Flow,
        referrer: &Address,
        conf: &str,
    ) {
        let invitee = match self.parse_refer_to(req) {
            Ok(a) => a,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        let Some(c) = self.conferences.get(conf) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        if !c.is_member(referrer) {
            return self.respond(key, reply(req, 403, "Only participants may invite"));
        }
        let dialog = match Self::new_sub_dialog(req) {
            Ok(d) => d,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        let mut resp = Response::to_request(req, 202).with_to_tag(&dialog.local_tag);
        resp.headers.push(
            HeaderName::Contact,
            format!("<{}>;isfocus", Self::conference_uri(&c)),
        );
        self.respond(key, resp);
        let no_sub = req
            .headers
            .get(&HeaderName::parse("Refer-Sub"))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        let sub = (!no_sub).then(|| {
            lock(&self.subscriptions).insert(NewSubscription {
                package: Package::Refer,
                event_id: None,
                subscriber: referrer.clone(),
                subscriber_contact: dialog.remote_target.to_string(),
                resource: Resource::Conference(conf.to_owned()),
                dialog,
                flow: flow.clone(),
                expires_ms: switchboard_core::now_ms() + 60_000,
                state: SubState::Active,
                level: None,
                members: Vec::new(),
            })
        });
        if let Some(id) = sub {
            self.set_refer_status(id, 100);
        }
        let me = self.arc();
        let report = move |status: u16| {
            if let (Some(me), Some(id)) = (&me, sub) {
                me.set_refer_status(id, status);
            }
        };
        self.invite_member(conf, referrer, &invitee, Box::new(report));
    }

    fn set_refer_status(&self, id: u64, status: u16) {
        if let Some(s) = lock(&self.subscriptions).subs.get_mut(&id) {
            s.refer_status = Some(status);
        }
        if status >= 200 {
            self.end_subscription(id, super::events::EndReason::Noresource);
        } else {
            self.schedule_notify(id);
        }
    }

    /// A `/invite USER` typed in a conference or a one-to-one conversation.
    fn invite_by_text(&self, conf: &str, inviter: &Address, target: &str) {
        let domain = inviter.domain().to_owned();
        let parsed = if target.contains('@') {
            Address::parse(target)
        } else {
            Address::from_parts(target, &domain)
        };
        match parsed {
            Ok(invitee) => self.invite_reporting(conf, inviter, &invitee, None),
            Err(_) => self.notice(
                conf,
                &format!("Cannot invite {target:?}: not a user address"),
            ),
        }
    }

    /// Invites `invitee`, telling the conference when it fails and `extra`
    /// (the REFER's subscriber) the outcome in any case.
    fn invite_reporting(
        &self,
        conf: &str,
        inviter: &Address,
        invitee: &Address,
        extra: Option<Report>,
    ) {
        let me = self.arc();
        let conf_id = conf.to_owned();
        let name = invitee.to_string();
        let report = move |status: u16| {
            if let Some(extra) = &extra {
                extra(status);
            }
            if status >= 300
                && let Some(me) = &me
            {
                me.notice(
                    &conf_id,
                    &format!(
                        "Could not add {name}: {status} {}",
                        switchboard_sip::default_reason(status)
                    ),
                );
            }
        };
        self.invite_member(conf, inviter, invitee, Box::new(report));
    }

    /// Invites `invitee` on behalf of `inviter`: an INVITE to their devices
    /// that take IM sessions, else an invitation MESSAGE and pager
    /// membership. `report` gets the outcome status.
    fn invite_member(
        &self,
        conf: &str,
        inviter: &Address,
        invitee: &Address,
        report: Box<dyn Fn(u16) + Send + Sync>,
    ) {
        if self.directory.user(invitee).is_none() {
            return report(404);
        }
        match self
            .conferences
            .invite(conf, inviter, invitee, self.gate.as_ref())
        {
            Ok(Invitation::Invited) => {}
            Ok(Invitation::AlreadyMember) => {
                // Nothing to do: no second invitation, leg or replay. The
                // invitation succeeded; whoever asked is told why nothing happened.
                let name = self
                    .display_of(invitee)
                    .unwrap_or_else(|| invitee.to_string());
                self.notice_to(
                    conf,
                    inviter,
                    &format!("{name} is already in the conversation"),
                );
                return report(200);
            }
            Err(ConfError::Blocked) => return report(403),
            Err(ConfError::Full(_)) => return report(486),
            Err(ConfError::NotMember) => return report(403),
            Err(_) => return report(404),
        }
        let Some(me) = self.arc() else { return };
        let conf = conf.to_owned();
        let inviter = inviter.clone();
        let invitee = invitee.clone();
        tokio::spawn(async move {
            let status = me.invite_devices(&conf, &inviter, &invitee).await;
            report(status);
            if status < 300 {
                let name = me
                    .display_of(&invitee)
                    .unwrap_or_else(|| invitee.to_string());
                let by = me
                    .display_of(&inviter)
                    .unwrap_or_else(|| inviter.to_string());
                me.notice(&conf, &format!("{by} added {name} to the conversation"));
            }
        });
    }

    async fn invite_devices(&self, conf: &str, inviter: &Address, invitee: &Address) -> u16 {
        let Some(c) = self.conferences.get(conf) else {
            return 404;
        };
        let now = switchboard_core::now_ms();
        let bindings = self.location.bindings(invitee, now);
        let on_web = self.invitation_to_web(conf, inviter, invitee);
        if bindings.is_empty() && !on_web {
            return 480;
        }
        let sessions: Vec<Target> = bindings
            .iter()
            .filter(|b| {
                b.features
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case("+sip.message"))
            })
            .filter_map(|b| self.flow_for(b).map(|f| Target::for_binding(b, f)))
            .collect();
        let conf_uri = Self::conference_uri(&c);
        if !sessions.is_empty() {
            return self
                .invite_session(&c, &conf_uri, inviter, invitee, sessions)
                .await;
        }
        // Pager-only devices: membership now, and an invitation they can answer.
        let endpoint = pager_endpoint(conf, invitee);
        let member = Member {
            user: invitee.clone(),
            display: self.display_of(invitee),
            mode: MemberMode::Pager,
            endpoint: endpoint.clone(),
            cpim: false,
            joined_ms: now,
        };
        let joined = match self.conferences.join(conf, member, true) {
            Ok(j) if !j.new_leg => {
                // Already a pager member (another invitation got there
                // first): they have had the invitation and the history.
                return 200;
            }
            Ok(j) => j,
            Err(ConfError::Full(_)) => return 486,
            Err(_) => return 403,
        };
        let by = self
            .display_of(inviter)
            .unwrap_or_else(|| inviter.to_string());
        let text = format!(
            "{by} invited you to a group chat. Reply to this message to write to the group; send /leave to leave."
        );
        self.add_leg(conf, invitee, None, &endpoint, false);
        let invitation = {
            let legs = lock(&self.legs);
            legs.get(&endpoint).map(|l| {
                l.tx.send(Outgoing::Message {
                    content_type: "text/plain".into(),
                    body: text.into_bytes(),
                })
                .is_ok()
            })
        };
        if invitation != Some(true) {
            return 480;
        }
        self.after_join(
            conf,
            invitee,
            &endpoint,
            joined.history,
            joined.new_participant,
        );
        200
    }

    async fn invite_session(
        &self,
        c: &Conference,
        conf_uri: &str,
        inviter: &Address,
        invitee: &Address,
        targets: Vec<Target>,
    ) -> u16 {
        let call_id = ids::call_id(&c.domain);
        let local_tag = ids::tag();
        let mut base = Request::new(
            Method::Invite,
            Uri::parse(&format!("sip:{invitee}")).unwrap_or_else(|_| targets[0].uri.clone()),
        );
        base.headers.push(HeaderName::MaxForwards, "70");
        base.headers.push(
            HeaderName::From,
            format!("\"Group chat\" <{conf_uri}>;tag={local_tag}"),
        );
        base.headers
            .push(HeaderName::To, format!("<sip:{invitee}>"));
        base.headers.push(HeaderName::CallId, call_id.clone());
        base.headers.push(HeaderName::CSeq, "1 INVITE");
        base.headers
            .push(HeaderName::ReferredBy, format!("<sip:{inviter}>"));
        base.headers
            .push(HeaderName::ContentType, "application/sdp");
        let mut keys = Vec::new();
        let mut waits = tokio::task::JoinSet::new();
        for t in targets {
            let mut req = base.clone();
            req.headers
                .push(HeaderName::Contact, format!("<{conf_uri}>;isfocus"));
            let local = self.advertised(&t.flow);
            let sdp = ImSdp {
                username: "switchboard".into(),
                session_id: 1,
                session_version: 1,
                addr_type: if local.is_ipv6() {
                    switchboard_sip_bodies::sdp_im::AddrType::Ip6
                } else {
                    switchboard_sip_bodies::sdp_im::AddrType::Ip4
                },
                address: local.ip().to_string(),
                port: local.port(),
                accept_types: vec![
                    "message/cpim".into(),
                    "text/plain".into(),
                    "text/html".into(),
                ],
            };
            req.body = sdp.to_sdp().into_bytes();
            let (out, branch) = self.prepare_forward(&req, &t, None, false);
            keys.push(TransactionKey::for_client(&branch, &Method::Invite));
            let me = self.arc();
            let flow = t.flow.clone();
            let sent = out.clone();
            waits.spawn(async move {
                match me {
                    Some(me) => (me.send_request(out, flow.clone()).await, sent, flow),
                    None => (UacOutcome::TransportError, sent, flow),
                }
            });
        }
        let mut failure: Option<u16> = None;
        let mut answered = false;
        // Outcomes in the order they arrive: the first device to answer wins,
        // whatever order the devices registered in.
        while let Some(done) = waits.join_next().await {
            let Ok((outcome, sent, flow)) = done else {
                continue;
            };
            match outcome {
                UacOutcome::Response(r) if r.status < 300 => {
                    let to_tag = r
                        .headers
                        .to()
                        .ok()
                        .and_then(|t| t.tag().map(str::to_owned))
                        .unwrap_or_default();
                    let target = r.headers.contacts().ok().and_then(|c| match c {
                        switchboard_sip::Contacts::List(l) => l.into_iter().next().map(|n| n.uri),
                        _ => None,
                    });
                    let routes: Vec<String> = r
                        .headers
                        .values(&HeaderName::RecordRoute)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    let remote_target = target.unwrap_or_else(|| sent.uri.clone());
                    self.send_ack(&sent, &r, &remote_target, &routes, &flow);
                    if answered {
                        // Another device answered too: end that extra session.
                        self.send_bye(
                            &call_id,
                            &local_tag,
                            &to_tag,
                            conf_uri,
                            invitee,
                            &remote_target,
                            &routes,
                            &flow,
                        );
                        continue;
                    }
                    answered = true;
                    let now = Instant::now();
                    for k in &keys {
                        let _ = self.with_layer(|l| l.cancel(now, k));
                    }
                    let cpim = ImSdp::parse(&r.body).ok().is_some_and(|s| {
                        s.accept_types
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case("message/cpim"))
                    });
                    let leg = LegDialog {
                        call_id: call_id.clone(),
                        local_tag: local_tag.clone(),
                        remote_tag: to_tag,
                        local_uri: format!("\"Group chat\" <{conf_uri}>"),
                        remote_uri: format!("<sip:{invitee}>"),
                        remote_target,
                        route_set: routes,
                        local_cseq: 1,
                        flow,
                    };
                    let member = Member {
                        user: invitee.clone(),
                        display: self.display_of(invitee),
                        mode: MemberMode::Session,
                        endpoint: call_id.clone(),
                        cpim,
                        joined_ms: switchboard_core::now_ms(),
                    };
                    match self.conferences.join(&c.id, member, true) {
                        Ok(j) => {
                            self.add_leg(&c.id, invitee, Some(leg), &call_id, cpim);
                            self.after_join(&c.id, invitee, &call_id, j.history, j.new_participant);
                        }
                        Err(_) => failure = Some(486),
                    }
                }
                // A 487 only says another device answered first.
                UacOutcome::Response(r) if r.status != 487 => {
                    failure = Some(failure.map_or(r.status, |f| f.min(r.status)))
                }
                UacOutcome::Timeout => failure = Some(failure.map_or(408, |f| f.min(408))),
                _ => {}
            }
        }
        match (answered, failure) {
            (true, None) => 200,
            (true, Some(486)) => 486,
            (true, _) => 200,
            (false, f) => f.unwrap_or(480),
        }
    }

    fn send_ack(
        &self,
        invite: &Request,
        resp: &Response,
        target: &Uri,
        routes: &[String],
        flow: &Flow,
    ) {
        let mut ack = Request::new(Method::Ack, target.clone());
        ack.headers.push(HeaderName::MaxForwards, "70");
        for h in [HeaderName::From, HeaderName::CallId] {
            if let Some(v) = invite.headers.get(&h) {
                ack.headers.push(h, v);
            }
        }
        if let Some(to) = resp.headers.get(&HeaderName::To) {
            ack.headers.push(HeaderName::To, to);
        }
        ack.headers.push(
            HeaderName::CSeq,
            format!("{} ACK", invite.headers.cseq().map(|c| c.seq).unwrap_or(1)),
        );
        let t = Target {
            uri: target.clone(),
            flow: flow.clone(),
            routes: routes.to_vec(),
        };
        let (out, _) = self.prepare_forward(&ack, &t, None, false);
        let _ = self.with_layer(|l| l.send_request(Instant::now(), out, flow.clone()));
    }

    #[allow(clippy::too_many_arguments)]
    fn send_bye(
        &self,
        call_id: &str,
        local_tag: &str,
        remote_tag: &str,
        conf_uri: &str,
        invitee: &Address,
        target: &Uri,
        routes: &[String],
        flow: &Flow,
    ) {
        let mut bye = Request::new(Method::Bye, target.clone());
        bye.headers.push(HeaderName::MaxForwards, "70");
        bye.headers
            .push(HeaderName::From, format!("<{conf_uri}>;tag={local_tag}"));
        bye.headers
            .push(HeaderName::To, format!("<sip:{invitee}>;tag={remote_tag}"));
        bye.headers.push(HeaderName::CallId, call_id);
        bye.headers.push(HeaderName::CSeq, "2 BYE");
        let t = Target {
            uri: target.clone(),
            flow: flow.clone(),
            routes: routes.to_vec(),
        };
        let (out, _) = self.prepare_forward(&bye, &t, None, false);
        if let Some(me) = self.arc() {
            let flow = flow.clone();
            tokio::spawn(async move {
                let _ = me.send_request(out, flow).await;
            });
        }
    }

    /// Escalates the one-to-one conversation of `a` and `b` into a new
    /// conference with both in it (as pager members) and invites `c`.
    pub fn escalate(
        &self,
        a: &Address,
        b: &Address,
        c: &Address,
        domain: &str,
        extra: Option<Report>,
    ) -> String {
        let now = switchboard_core::now_ms();
        let conf = self.conferences.create(ids::long_token(), a, domain, now);
        let history = self.conversations.recent(a, b, now);
        self.conferences
            .set_origin(&conf.id, (a.clone(), b.clone()), history);
        self.conversations
            .set_escalated(a, b, Some(conf.id.clone()), now, ids::long_token);
        // Both are in before either join is archived, so that each join
        // record names the other as a participant (and is archived when
        // either one's policy says so).
        let mut joined = Vec::new();
        for user in [a, b] {
            let endpoint = pager_endpoint(&conf.id, user);
            let member = Member {
                user: user.clone(),
                display: self.display_of(user),
                mode: MemberMode::Pager,
                endpoint: endpoint.clone(),
                cpim: false,
                joined_ms: now,
            };
            if let Ok(j) = self.conferences.join(&conf.id, member, true) {
                self.add_leg(&conf.id, user, None, &endpoint, false);
                joined.push((user, endpoint, j.new_participant));
            }
        }
        for (user, endpoint, new_participant) in joined {
            // No replay: the history is their own conversation.
            self.after_join(&conf.id, user, &endpoint, Vec::new(), new_participant);
        }
        tracing::info!(conference = %conf.id, a = %a, b = %b, invitee = %c, "conversation escalated to a conference");
        self.invite_reporting(&conf.id, a, c, extra);
        conf.id
    }

    /// The implicit subscription (RFC 3515) of an escalation `REFER`
    /// received inside a one-to-one IM session: `100 Trying` at once, and a
    /// report that sends the invitation's final status. The NOTIFYs go to
    /// the REFER's sender inside that dialog, on behalf of the peer, one at a
    /// time (RFC 6665: one NOTIFY in flight per subscription): the final one
    /// is built and sent only once the previous one was answered, with a CSeq
    /// above it. An answer that ends the subscription (no answer, 481…) ends
    /// it: nothing more is sent.
    pub fn escalation_refer_subscription(&self, refer: &Request, flow: &Flow) -> Report {
        let (tx, mut rx) = mpsc::unbounded_channel::<u16>();
        let _ = tx.send(100);
        if let Some(me) = self.arc() {
            let (refer, flow) = (refer.clone(), flow.clone());
            tokio::spawn(async move {
                while let Some(status) = rx.recv().await {
                    let last = status >= 200;
                    let state = if last {
                        "terminated;reason=noresource"
                    } else {
                        "active;expires=60"
                    };
                    let Some((notify, target)) =
                        me.peer_dialog_refer_notify(&refer, &flow, state, status)
                    else {
                        return;
                    };
                    let (out, _) = me.prepare_forward(&notify, &target, None, false);
                    let answered = match me.send_request(out, target.flow).await {
                        UacOutcome::Response(r) => !notify_ends_subscription(r.status),
                        UacOutcome::Timeout | UacOutcome::TransportError => false,
                    };
                    if last || !answered {
                        return;
                    }
                }
            });
        }
        Box::new(move |status: u16| {
            let _ = tx.send(status);
        })
    }

    /// A NOTIFY of the implicit subscription of `refer` (received inside a
    /// one-to-one session) to its sender, inside that dialog and on behalf
    /// of the peer: the peer's tag, a CSeq above every request the peer sent
    /// in the dialog (requests the peer sends afterwards are renumbered above
    /// it, see [`SipServer::renumber_in_dialog`]).
    fn peer_dialog_refer_notify(
        &self,
        refer: &Request,
        flow: &Flow,
        state: &str,
        status: u16,
    ) -> Option<(Request, Target)> {
        let (Ok(from), Ok(to), Ok(call_id)) = (
            refer.headers.from(),
            refer.headers.to(),
            refer.headers.call_id(),
        ) else {
            return None;
        };
        let peer_tag = to.tag()?.to_owned();
        let target = refer.headers.contacts().ok().and_then(|c| match c {
            switchboard_sip::Contacts::List(l) => l.into_iter().next().map(|n| n.uri),
            switchboard_sip::Contacts::Star => None,
        })?;
        let cseq = self.reserve_peer_cseq(call_id, &peer_tag);
        let refer_cseq = refer.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let mut notify = Request::new(Method::Notify, target.clone());
        notify.headers.push(HeaderName::MaxForwards, "70");
        notify.headers.push(HeaderName::From, to.to_string());
        notify.headers.push(HeaderName::To, from.to_string());
        notify.headers.push(HeaderName::CallId, call_id);
        notify
            .headers
            .push(HeaderName::CSeq, format!("{cseq} NOTIFY"));
        notify
            .headers
            .push(HeaderName::Event, format!("refer;id={refer_cseq}"));
        notify.headers.push(HeaderName::SubscriptionState, state);
        notify
            .headers
            .push(HeaderName::Contact, self.own_contact(flow));
        notify
            .headers
            .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
        notify.body = format!(
            "SIP/2.0 {status} {}\r\n",
            switchboard_sip::default_reason(status)
        )
        .into_bytes();
        let target = Target {
            uri: target,
            flow: flow.clone(),
            routes: Vec::new(),
        };
        Some((notify, target))
    }

    /// Reserves the next CSeq for a request the server sends inside a dialog
    /// on behalf of the side with `tag`.
    fn reserve_peer_cseq(&self, call_id: &str, tag: &str) -> u32 {
        let mut d = lock(&self.dialog_cseq);
        let e = d.entry((call_id.to_owned(), tag.to_owned())).or_insert(0);
        *e = e.saturating_add(1).max(1);
        *e
    }

    /// Invites one more person into a conference that grew out of a conversation.
    pub fn invite_to_escalated(
        &self,
        conf: &str,
        inviter: &Address,
        invitee: &Address,
        extra: Option<Report>,
    ) {
        self.invite_reporting(conf, inviter, invitee, extra);
    }

    /// A pager MESSAGE between two people whose conversation became a
    /// conference: it goes to the conference instead. True if handled.
    pub fn bridge_escalated(
        &self,
        key: &TransactionKey,
        req: &Request,
        sender: &Address,
        recipient: &Address,
    ) -> bool {
        let Some(conf) = self.conversations.escalated(sender, recipient) else {
            return false;
        };
        let Some(c) = self.conferences.get(&conf) else {
            return false;
        };
        if !c.is_member(sender) {
            return false;
        }
        let ct = req
            .headers
            .content_type()
            .ok()
            .flatten()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "text/plain".into());
        let ok = Response::to_request(req, 200).with_to_tag(&ids::tag());
        let endpoint = pager_endpoint(&conf, sender);
        if !c.members.iter().any(|m| m.endpoint == endpoint) {
            let member = Member {
                user: sender.clone(),
                display: self.display_of(sender),
                mode: MemberMode::Pager,
                endpoint: endpoint.clone(),
                cpim: false,
                joined_ms: switchboard_core::now_ms(),
            };
            if self.conferences.join(&conf, member, true).is_ok() {
                self.add_leg(&conf, sender, None, &endpoint, false);
            }
        }
        let text = String::from_utf8_lossy(&req.body).trim().to_owned();
        if let Some(target) = text.strip_prefix("/invite ") {
            self.respond(key, ok);
            self.invite_by_text(&conf, sender, target.trim());
        } else if text.eq_ignore_ascii_case("/leave") {
            self.respond(key, ok);
            self.leave(&conf, &endpoint, true);
        } else if ct.starts_with("application/im-iscomposing") {
            self.respond(key, ok);
        } else {
            self.accept_post(key, req, ok, &conf, &endpoint, &ct);
        }
        true
    }

    /// Tells roster watchers that `user`'s participation changed.
    fn roster_changed(&self, conf: &str, user: &Address) {
        self.roster_to_web(conf);
        let ids: Vec<u64> = {
            let mut subs = lock(&self.subscriptions);
            let ids: Vec<u64> = subs
                .conference_of
                .get(conf)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in &ids {
                if let Some(s) = subs.subs.get_mut(id)
                    && s.package == Package::Conference
                {
                    s.changed.insert(user.clone());
                }
            }
            ids
        };
        for id in ids {
            if lock(&self.subscriptions)
                .subs
                .get(&id)
                .is_some_and(|s| s.package == Package::Conference)
            {
                self.schedule_notify(id);
            }
        }
    }

    /// SUBSCRIBE to a conference's roster (RFC 4575).
    pub fn subscribe_conference(
        &self,
        key: &TransactionKey,
        req: &Request,
        flow: &Flow,
        watcher: &Address,
        expires: u32,
        event_id: Option<String>,
    ) {
        let Some(conf) = req.uri.as_sip().and_then(|u| self.conference_of_uri(u)) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        let Some(c) = self.conferences.get(&conf) else {
            return self.respond(key, reply(req, 404, "No such conference"));
        };
        if !c.is_member(watcher) && !c.invited.contains(watcher) {
            return self.respond(
                key,
                reply(req, 403, "Only participants may watch the roster"),
            );
        }
        let dialog = match Self::new_sub_dialog(req) {
            Ok(d) => d,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        let mut resp = Response::to_request(req, 200)
            .with_to_tag(&dialog.local_tag)
            .with_header(HeaderName::Expires, expires.to_string());
        resp.headers.push(
            HeaderName::Contact,
            format!("<{}>;isfocus", Self::conference_uri(&c)),
        );
        self.respond(key, resp);
        let id = lock(&self.subscriptions).insert(NewSubscription {
            package: Package::Conference,
            event_id,
            subscriber: watcher.clone(),
            subscriber_contact: dialog.remote_target.to_string(),
            resource: Resource::Conference(conf),
            dialog,
            flow: flow.clone(),
            expires_ms: switchboard_core::now_ms() + i64::from(expires) * 1000,
            state: SubState::Active,
            level: None,
            members: Vec::new(),
        });
        if expires == 0 {
            self.end_subscription(id, super::events::EndReason::Timeout);
        } else {
            self.schedule_notify(id);
        }
    }

    /// The body of a conference-package or REFER NOTIFY.
    pub fn render_conference(&self, s: &mut Subscription, conf: &str) -> super::events::NotifyBody {
        if s.package == Package::Refer {
            let status = s.refer_status.unwrap_or(100);
            return Some((
                "message/sipfrag;version=2.0".into(),
                format!(
                    "SIP/2.0 {status} {}\r\n",
                    switchboard_sip::default_reason(status)
                )
                .into_bytes(),
            ));
        }
        let c = self.conferences.get(conf);
        let entity = c
            .as_ref()
            .map(Self::conference_uri)
            .unwrap_or_else(|| format!("sip:{CONF_PREFIX}{conf}@{}", s.subscriber.domain()));
        let full = std::mem::take(&mut s.need_full);
        let changed: HashSet<Address> = std::mem::take(&mut s.changed);
        let mut info = ConferenceInfo::new(entity.clone());
        info.state = if full {
            ci::ElementState::Full
        } else {
            ci::ElementState::Partial
        };
        info.version = Some(s.version + 1);
        s.version += 1;
        let members = c.as_ref().map(|c| c.members.clone()).unwrap_or_default();
        if full {
            info.description = Some(ci::ConferenceDescription {
                subject: c.as_ref().and_then(|c| c.subject.clone()),
                conf_uris: vec![ci::UriEntry {
                    uri: entity.clone(),
                    display_text: None,
                    purpose: Some("chat".into()),
                }],
                maximum_user_count: Some(self.conferences.settings.max_participants as u32),
                ..Default::default()
            });
        }
        let mut users: Vec<Address> = if full {
            members.iter().map(|m| m.user.clone()).collect()
        } else {
            changed.into_iter().collect()
        };
        users.sort();
        users.dedup();
        let list = users
            .iter()
            .map(|u| {
                let legs: Vec<&Member> = members.iter().filter(|m| &m.user == u).collect();
                if legs.is_empty() {
                    return ci::User {
                        entity: format!("sip:{u}"),
                        state: Some(ci::ElementState::Deleted),
                        ..Default::default()
                    };
                }
                ci::User {
                    entity: format!("sip:{u}"),
                    state: Some(ci::ElementState::Full),
                    display_text: legs[0].display.clone(),
                    endpoints: legs
                        .iter()
                        .map(|m| ci::Endpoint {
                            entity: format!("sip:{u};ep={}", short_endpoint(&m.endpoint)),
                            status: Some(ci::EndpointStatus::Connected),
                            joining_method: Some(if m.mode == MemberMode::Session {
                                ci::JoiningMethod::DialedIn
                            } else {
                                ci::JoiningMethod::DialedOut
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            })
            .collect();
        info.users = Some(ci::Users { state: None, list });
        info.conference_state = Some(ci::ConferenceState {
            user_count: Some(
                members
                    .iter()
                    .map(|m| &m.user)
                    .collect::<HashSet<_>>()
                    .len() as u32,
            ),
            active: Some(c.is_some()),
            locked: None,
        });
        Some((
            "application/conference-info+xml".into(),
            info.to_xml().into_bytes(),
        ))
    }

    /// Ends idle conferences (looked for every [`SWEEP_EVERY`]).
    pub fn start_conferences(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let now = switchboard_core::now_ms();
                for c in me.conferences.sweep(now) {
                    me.conference_expired(&c);
                }
                me.conversations.sweep(now);
            }
        });
    }
}

/// NOTIFY answers that end the subscription (RFC 6665 §4.2.2; the same set
/// as the events framework's).
fn notify_ends_subscription(status: u16) -> bool {
    matches!(
        status,
        404 | 405 | 408 | 410 | 416 | 480..=485 | 489 | 501 | 604
    )
}

/// How often the focus looks for idle conferences (and conversations).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// An idle timeout in words: "1 minute", "120 minutes" (seconds when it is
/// not a whole number of minutes).
fn idle_span(ms: i64) -> String {
    let (n, unit) = if ms >= 60_000 && ms % 60_000 == 0 {
        (ms / 60_000, "minute")
    } else {
        ((ms / 1000).max(1), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn short_endpoint(endpoint: &str) -> String {
    endpoint
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .take(16)
        .map(char::from)
        .collect()
}

/// Unwraps a message/cpim body a client sent to the conference: the focus
/// states the sender itself, so only the content is kept.
fn unwrap_cpim(content_type: &str, body: &[u8]) -> (String, Vec<u8>) {
    if content_type
        .to_ascii_lowercase()
        .starts_with("message/cpim")
        && let Ok(c) = Cpim::parse(body)
    {
        let ct = c.content_type().unwrap_or("text/plain").to_owned();
        return (ct, c.body);
    }
    (content_type.to_owned(), body.to_vec())
}

/// How a member sees a message: wrapped in message/cpim naming the sender,
/// or as text prefixed with the sender's name.
fn format_for_member(
    entry: &HistoryEntry,
    cpim: bool,
    _conf: &str,
    conf_uri: &str,
) -> (String, Vec<u8>) {
    let name = entry
        .from_display
        .clone()
        .unwrap_or_else(|| entry.from.to_string());
    if cpim {
        let date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(entry.at_ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
        let msg = Cpim {
            from: Some(cpim::Address::new(
                entry.from_display.as_deref(),
                format!("sip:{}", entry.from),
            )),
            to: vec![cpim::Address::new(None, conf_uri)],
            date_time: date,
            content_headers: vec![("Content-Type".into(), entry.content_type.clone())],
            body: entry.body.clone(),
            ..Cpim::default()
        };
        return ("message/cpim".into(), msg.to_bytes());
    }
    let text = String::from_utf8_lossy(&entry.body);
    if entry
        .content_type
        .to_ascii_lowercase()
        .starts_with("text/html")
    {
        return (
            entry.content_type.clone(),
            format!("<b>{}:</b> {text}", html_escape(&name)).into_bytes(),
        );
    }
    ("text/plain".into(), format!("{name}: {text}").into_bytes())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conference_users_are_recognised() {
        assert!(is_conference_user("conf-0123456789abcdef0123456789abcdef"));
        assert!(!is_conference_user("conf-room"));
        assert!(!is_conference_user("conf-0123456789ABCDEF0123456789abcdef"));
        assert!(!is_conference_user("alice"));
    }

    #[test]
    fn the_idle_timeout_is_said_in_words() {
        assert_eq!(idle_span(60_000), "1 minute");
        assert_eq!(idle_span(120 * 60_000), "120 minutes");
        assert_eq!(idle_span(90_000), "90 seconds");
        assert_eq!(idle_span(1_000), "1 second");
    }

    #[test]
    fn members_see_who_wrote() {
        let e = HistoryEntry {
            from: Address::parse("alice@e.com").expect("a"),
            from_display: Some("Alice".into()),
            content_type: "text/plain".into(),
            body: b"hi".to_vec(),
            at_ms: 0,
        };
        assert_eq!(
            format_for_member(&e, false, "c", "sip:conf-x@e.com"),
            ("text/plain".to_owned(), b"Alice: hi".to_vec())
        );
        let (ct, body) = format_for_member(&e, true, "c", "sip:conf-x@e.com");
        assert_eq!(ct, "message/cpim");
        let parsed = Cpim::parse(&body).expect("cpim");
        assert_eq!(
            parsed.from.map(|f| f.uri).as_deref(),
            Some("sip:alice@e.com")
        );
        assert_eq!(parsed.body, b"hi");
        assert_eq!(
            unwrap_cpim("message/cpim", &body),
            ("text/plain".to_owned(), b"hi".to_vec())
        );
    }
}
