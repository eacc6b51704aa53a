//! The presence server over SIP: PUBLISH (RFC 3903), SUBSCRIBE/NOTIFY for
//! `presence` (RFC 3856) and `presence.winfo` (RFC 3857/3858), batch
//! subscriptions to a contact list (RFC 4662), and presence derived from
//! registration for clients that never publish. Aggregation and privacy are
//! the domain core's; this module translates.

use super::events::{EndReason, NewSubscription, Package, Resource, SubState, Subscription};
use super::{SipServer, ids, pidf_map};
use crate::sip::auth::AuthOutcome;
use crate::transport::{Flow, lock};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::Address;
use switchboard_core::presence::{AccessLevel, Decision, privacy};
use switchboard_sip::{HeaderName, Request, Response, TransactionKey};
use switchboard_sip_bodies::pidf::{self, Presence};
use switchboard_sip_bodies::rlmi::{self, BodyPart, Instance, InstanceState, Rlmi};
use switchboard_sip_bodies::winfo::{
    DocState, Watcher, WatcherEvent, WatcherInfo, WatcherList, WatcherStatus,
};

/// Presence limits and timers (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct PresenceSettings {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_subscriptions_per_device: usize,
}

/// One PUBLISH-ed state (RFC 3903), identified by its entity tag.
#[derive(Debug, Clone)]
pub struct Publication {
    pub person: Address,
    pub device: String,
    pub expires_ms: i64,
}

/// The URI parameter that turns a user's address into their contact list's
/// URI for batch subscriptions: `sip:alice@example.com;list=contacts`.
pub const LIST_PARAM: &str = "list";

/// Largest NOTIFY body sent in one datagram; bigger RLS state over UDP is
/// split across several NOTIFYs.
const UDP_BODY_BUDGET: usize = 48 * 1024;

fn reply(req: &Request, status: u16, reason: &str) -> Response {
    Response::to_request(req, status)
        .with_to_tag(&ids::tag())
        .with_reason(reason)
}

impl SipServer {
    /// How `watcher` may see `person` now.
    pub fn presence_decision(&self, person: &Address, watcher: &Address) -> Decision {
        switchboard_core::presence::access::decision(
            &self.directory,
            &self.contacts,
            &self.policies,
            person,
            watcher,
        )
    }

    fn presence_document(&self, person: &Address, level: AccessLevel) -> Vec<u8> {
        let view = privacy::filter(&self.engine.current(person), level);
        pidf_map::document(&format!("sip:{person}"), &view).into_bytes()
    }

    /// The body of the next NOTIFY of `s` (None: no body, e.g. pending).
    pub fn render(
        &self,
        s: &mut Subscription,
        watchers: Option<Vec<Watcher>>,
    ) -> super::events::NotifyBody {
        match (&s.package, &s.resource) {
            (Package::Presence, Resource::Person(p)) => match (s.state, s.level) {
                (SubState::Active, Some(level)) => Some((
                    pidf::CONTENT_TYPE.to_owned(),
                    self.presence_document(p, level),
                )),
                _ => None,
            },
            (Package::Winfo, Resource::Person(p)) => {
                let doc = WatcherInfo {
                    version: s.version,
                    state: DocState::Full,
                    lists: vec![WatcherList {
                        resource: format!("sip:{p}"),
                        package: "presence".into(),
                        watchers: watchers.unwrap_or_default(),
                    }],
                };
                s.version += 1;
                Some((
                    "application/watcherinfo+xml".to_owned(),
                    doc.to_xml().into_bytes(),
                ))
            }
            (Package::Presence, Resource::ContactList(owner)) => {
                self.render_list(s, &owner.clone())
            }
            (Package::Conference | Package::Refer, Resource::Conference(id)) => {
                let id = id.clone();
                self.render_conference(s, &id)
            }
            _ => None,
        }
    }

    /// Who subscribes to `person`'s presence over SIP (one entry per
    /// watcher, whatever the state of their subscriptions): the web API
    /// lists the pending ones among them.
    pub fn watchers_of_person(&self, person: &Address) -> Vec<Address> {
        let subs = crate::transport::lock(&self.subscriptions);
        let mut out: Vec<Address> = subs
            .presence_of
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|id| subs.subs.get(id))
            .map(|s| s.subscriber.clone())
            .filter(|w| w != person)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The watchers of `person`'s presence, for watcher info. Takes the
    /// already-locked subscription table.
    pub fn watchers_of(
        &self,
        subs: &super::events::Subscriptions,
        person: &Address,
    ) -> Vec<Watcher> {
        let mut watchers: Vec<Watcher> = subs
            .presence_of
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|id| subs.subs.get(id))
            .filter(|s| s.subscriber != *person)
            .map(|s| {
                let pending = s.state == SubState::Pending;
                Watcher {
                    id: format!("w{}", s.id),
                    status: if pending {
                        WatcherStatus::Pending
                    } else {
                        WatcherStatus::Active
                    },
                    event: if pending {
                        WatcherEvent::Subscribe
                    } else {
                        WatcherEvent::Approved
                    },
                    uri: format!("sip:{}", s.subscriber),
                    display_name: self
                        .directory
                        .user(&s.subscriber)
                        .and_then(|u| u.display_name.clone()),
                    expiration: None,
                    duration_subscribed: None,
                    lang: None,
                }
            })
            .collect();
        watchers.sort_by(|a, b| a.uri.cmp(&b.uri).then(a.id.cmp(&b.id)));
        watchers
    }

    fn render_list(&self, s: &mut Subscription, owner: &Address) -> super::events::NotifyBody {
        let full = std::mem::take(&mut s.need_full);
        let changed = std::mem::take(&mut s.changed);
        let members: Vec<(Address, Decision)> = s
            .members
            .iter()
            .filter(|(m, _)| full || changed.contains(m))
            .cloned()
            .collect();
        let mut resources = Vec::with_capacity(members.len());
        let mut parts = Vec::with_capacity(members.len());
        let mut budget = 0usize;
        let mut leftover = Vec::new();
        for (i, (m, decision)) in members.iter().enumerate() {
            if s.flow.transport == crate::transport::Transport::Udp && budget > UDP_BODY_BUDGET {
                leftover.extend(members[i..].iter().map(|(m, _)| m.clone()));
                break;
            }
            let cid = format!("{}.{}@{}", ids::token(), i, owner.domain());
            let display = self.directory.user(m).and_then(|u| u.display_name.clone());
            let names = display
                .map(|d| rlmi::Name {
                    text: d,
                    lang: None,
                })
                .into_iter()
                .collect();
            let instance_id = format!("i{}", i);
            match decision {
                Decision::Pending => resources.push(rlmi::Resource {
                    uri: format!("sip:{m}"),
                    names,
                    instances: vec![Instance {
                        id: instance_id,
                        state: InstanceState::Pending,
                        reason: None,
                        cid: None,
                    }],
                }),
                Decision::Allow(level) => {
                    let body = self.presence_document(m, *level);
                    budget += body.len() + 200;
                    parts.push(BodyPart {
                        content_id: cid.clone(),
                        content_type: pidf::CONTENT_TYPE.to_owned(),
                        body,
                    });
                    resources.push(rlmi::Resource {
                        uri: format!("sip:{m}"),
                        names,
                        instances: vec![Instance {
                            id: instance_id,
                            state: InstanceState::Active,
                            reason: None,
                            cid: Some(cid),
                        }],
                    });
                }
            }
        }
        if !leftover.is_empty() {
            // The rest goes in the following NOTIFY (partial state).
            s.changed.extend(leftover);
            s.mark_dirty();
        }
        let doc = Rlmi {
            uri: format!("sip:{owner};{LIST_PARAM}=contacts"),
            version: s.version,
            full_state: full,
            names: Vec::new(),
            resources,
        };
        s.version += 1;
        let root_cid = format!("rlmi.{}@{}", ids::token(), owner.domain());
        match rlmi::build_rlmi_notify(&doc, &root_cid, &parts) {
            Ok(body) => Some((body.content_type, body.body)),
            Err(e) => {
                tracing::error!(error = %e, "cannot build an RLMI body");
                None
            }
        }
    }

    /// Handles SUBSCRIBE (initial, refresh, unsubscribe) for every package.
    pub fn on_subscribe(&self, key: &TransactionKey, req: &Request, flow: &Flow) {
        let allow_events = "presence, presence.winfo, conference";
        let event = match req.headers.event() {
            Ok(Some(e)) => e,
            Ok(None) => return self.respond(key, reply(req, 400, "Missing Event header")),
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        let Some(package) = Package::subscribable(&event.package) else {
            return self.respond(
                key,
                reply(req, 489, "Bad Event").with_header(HeaderName::AllowEvents, allow_events),
            );
        };
        let expires = match req.headers.expires() {
            Ok(Some(e)) => e,
            Ok(None) => self.presence_settings.default_expires,
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        if expires != 0 && expires < self.presence_settings.min_expires {
            return self.respond(
                key,
                reply(req, 423, "Interval Too Brief").with_header(
                    HeaderName::MinExpires,
                    self.presence_settings.min_expires.to_string(),
                ),
            );
        }
        let expires = expires.min(self.presence_settings.max_expires);
        if let Ok(to) = req.headers.to()
            && let Some(local_tag) = to.tag()
        {
            return self.refresh_subscription(key, req, local_tag, expires);
        }
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        let Some(from_aor) = from.uri.as_sip().and_then(|u| self.user_address(u, req)) else {
            return self.respond(
                key,
                reply(req, 403, "Subscriber is not a user of this server"),
            );
        };
        if !self.directory.is_served(from_aor.domain()) {
            return self.respond(
                key,
                reply(
                    req,
                    403,
                    "Subscriptions from other domains are not accepted (federation is not enabled)",
                ),
            );
        }
        let watcher = match self
            .auth
            .authenticate(req, from_aor.domain(), true, &self.directory)
        {
            AuthOutcome::Authenticated(a) => a,
            AuthOutcome::Challenge(c) => return self.respond(key, *c),
        };
        if watcher != from_aor {
            return self.respond(
                key,
                reply(req, 403, "From does not match the authenticated user"),
            );
        }
        let Some(uri) = req.uri.as_sip() else {
            return self.respond(key, reply(req, 404, "Not Found"));
        };
        if package == Package::Conference {
            return self.subscribe_conference(
                key,
                req,
                flow,
                &watcher,
                expires,
                event.id().map(str::to_owned),
            );
        }
        let Some(person) = self.user_address(uri, req) else {
            return self.respond(key, reply(req, 404, "Not Found"));
        };
        if !self.directory.is_served(person.domain()) {
            return self.respond(
                key,
                reply(
                    req,
                    403,
                    "Domain not served here (federation is not enabled)",
                ),
            );
        }
        let is_list = uri.params.value(LIST_PARAM).is_some();
        let resource = if is_list {
            if package != Package::Presence {
                return self.respond(key, reply(req, 489, "Bad Event: lists carry presence"));
            }
            if !req.headers.supports("eventlist") {
                return self.respond(
                    key,
                    reply(req, 421, "Extension Required")
                        .with_header(HeaderName::Require, "eventlist"),
                );
            }
            if person != watcher {
                return self.respond(
                    key,
                    reply(req, 403, "Only the owner may subscribe to a contact list"),
                );
            }
            Resource::ContactList(person.clone())
        } else {
            if package == Package::Winfo && person != watcher {
                return self.respond(
                    key,
                    reply(req, 403, "Only the user may watch their own watchers"),
                );
            }
            Resource::Person(person.clone())
        };
        if lock(&self.subscriptions).count_from(flow)
            >= self.presence_settings.max_subscriptions_per_device
        {
            return self.respond(
                key,
                reply(req, 503, "Too many subscriptions from this device")
                    .with_header(HeaderName::RetryAfter, "60"),
            );
        }
        let dialog = match Self::new_sub_dialog(req) {
            Ok(d) => d,
            Err(why) => return self.respond(key, reply(req, 400, why)),
        };
        let (state, level) = match (&package, &resource) {
            (Package::Presence, Resource::Person(p)) => match self.presence_decision(p, &watcher) {
                Decision::Allow(l) => (SubState::Active, Some(l)),
                Decision::Pending => (SubState::Pending, None),
            },
            _ => (SubState::Active, None),
        };
        let members = match &resource {
            Resource::ContactList(owner) => self.list_members(owner),
            _ => Vec::new(),
        };
        let local_tag = dialog.local_tag.clone();
        let subscriber_contact = dialog.remote_target.to_string();
        let mut resp = Response::to_request(req, 200)
            .with_to_tag(&local_tag)
            .with_header(HeaderName::Expires, expires.to_string());
        resp.headers
            .push(HeaderName::Contact, self.own_contact(flow));
        if is_list {
            resp.headers.push(HeaderName::Require, "eventlist");
        }
        self.respond(key, resp);
        let id = lock(&self.subscriptions).insert(NewSubscription {
            package,
            event_id: event.id().map(str::to_owned),
            subscriber: watcher,
            subscriber_contact,
            resource: resource.clone(),
            dialog,
            flow: flow.clone(),
            expires_ms: switchboard_core::now_ms() + i64::from(expires) * 1000,
            state,
            level,
            members,
        });
        if expires == 0 {
            // A fetch: the current state once, then the subscription ends.
            self.end_subscription(id, EndReason::Timeout);
        } else {
            self.schedule_notify(id);
        }
        if let (Package::Presence, Resource::Person(p)) = (package, &resource) {
            self.notify_winfo(p);
        }
    }

    fn refresh_subscription(
        &self,
        key: &TransactionKey,
        req: &Request,
        local_tag: &str,
        expires: u32,
    ) {
        let call_id = req.headers.call_id().unwrap_or_default().to_owned();
        let remote_tag = req
            .headers
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default();
        let found = {
            let mut subs = lock(&self.subscriptions);
            let id = subs.find_dialog(&call_id, local_tag, &remote_tag);
            match id.and_then(|id| subs.subs.get_mut(&id)) {
                Some(s) => {
                    s.dialog.remote_cseq = req
                        .headers
                        .cseq()
                        .map(|c| c.seq)
                        .unwrap_or(s.dialog.remote_cseq);
                    s.expires_ms = switchboard_core::now_ms() + i64::from(expires) * 1000;
                    s.need_full = true;
                    Some(s.id)
                }
                None => None,
            }
        };
        let Some(id) = found else {
            return self.respond(
                key,
                Response::to_request(req, 481).with_reason("Subscription does not exist"),
            );
        };
        let mut resp =
            Response::to_request(req, 200).with_header(HeaderName::Expires, expires.to_string());
        if let Some(flow) = lock(&self.subscriptions)
            .subs
            .get(&id)
            .map(|s| s.flow.clone())
        {
            resp.headers
                .push(HeaderName::Contact, self.own_contact(&flow));
        }
        self.respond(key, resp);
        if expires == 0 {
            self.end_subscription(id, EndReason::Timeout);
        } else {
            self.schedule_notify(id);
        }
    }

    /// Our Contact for dialogs established over `flow`.
    pub fn own_contact(&self, flow: &Flow) -> String {
        let a = self.advertised(flow);
        let host = if a.is_ipv6() {
            format!("[{}]", a.ip())
        } else {
            a.ip().to_string()
        };
        format!(
            "<sip:{host}:{};transport={}>",
            a.port(),
            flow.transport.name()
        )
    }

    fn list_members(&self, owner: &Address) -> Vec<(Address, Decision)> {
        let mut members: Vec<Address> = self.contacts.list(owner).keys().cloned().collect();
        members.sort();
        members
            .into_iter()
            .map(|m| (m.clone(), self.presence_decision(&m, owner)))
            .collect()
    }

    /// After a subscription ended: the person's watcher list changed.
    pub fn subscription_ended(&self, s: &Subscription) {
        if let (Package::Presence, Resource::Person(p)) = (&s.package, &s.resource) {
            self.notify_winfo(p);
        }
    }

    fn notify_winfo(&self, person: &Address) {
        let ids: Vec<u64> = lock(&self.subscriptions)
            .winfo_of
            .get(person)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.schedule_notify(id);
        }
    }

    /// Handles PUBLISH for the presence package.
    pub fn on_publish(&self, key: &TransactionKey, req: &Request, flow: &Flow) {
        match req.headers.event() {
            Ok(Some(e)) if e.package == "presence" => {}
            Ok(Some(_)) => {
                return self.respond(
                    key,
                    reply(req, 489, "Bad Event").with_header(HeaderName::AllowEvents, "presence"),
                );
            }
            Ok(None) => return self.respond(key, reply(req, 400, "Missing Event header")),
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        }
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        let Some(from_aor) = from.uri.as_sip().and_then(|u| self.user_address(u, req)) else {
            return self.respond(
                key,
                reply(req, 403, "Publisher is not a user of this server"),
            );
        };
        if !self.directory.is_served(from_aor.domain()) {
            return self.respond(
                key,
                reply(req, 403, "Publications from other domains are not accepted"),
            );
        }
        let person = match self
            .auth
            .authenticate(req, from_aor.domain(), true, &self.directory)
        {
            AuthOutcome::Authenticated(a) => a,
            AuthOutcome::Challenge(c) => return self.respond(key, *c),
        };
        let target = req.uri.as_sip().and_then(|u| self.user_address(u, req));
        if person != from_aor || target.as_ref() != Some(&person) {
            return self.respond(
                key,
                reply(req, 403, "Only your own presence can be published"),
            );
        }
        let expires = match req.headers.expires() {
            Ok(Some(e)) => e,
            Ok(None) => self.presence_settings.default_expires,
            Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
        };
        if expires != 0 && expires < self.presence_settings.min_expires {
            return self.respond(
                key,
                reply(req, 423, "Interval Too Brief").with_header(
                    HeaderName::MinExpires,
                    self.presence_settings.min_expires.to_string(),
                ),
            );
        }
        let expires = expires.min(self.presence_settings.max_expires);
        let now = switchboard_core::now_ms();
        let if_match = req
            .headers
            .get(&HeaderName::SipIfMatch)
            .map(|v| v.trim().to_owned());
        let existing = if_match.as_ref().map(|etag| {
            lock(&self.publications)
                .get(etag)
                .filter(|p| p.person == person && p.expires_ms > now)
                .cloned()
        });
        if let Some(None) = existing {
            return self.respond(key, reply(req, 412, "Conditional Request Failed"));
        }
        let existing = existing.flatten();
        if expires == 0 {
            let (Some(etag), Some(p)) = (&if_match, existing) else {
                return self.respond(key, reply(req, 400, "Expires: 0 needs SIP-If-Match"));
            };
            lock(&self.publications).remove(etag);
            let still = self.device_registered(&person, &p.device);
            self.engine
                .publication_ended(&person, &p.device, still, now);
            return self.respond(
                key,
                Response::to_request(req, 200)
                    .with_to_tag(&ids::tag())
                    .with_header(HeaderName::SipETag, etag.clone())
                    .with_header(HeaderName::Expires, "0"),
            );
        }
        let state = if req.body.is_empty() {
            if existing.is_none() {
                return self.respond(
                    key,
                    reply(req, 400, "PUBLISH without a body needs SIP-If-Match"),
                );
            }
            None
        } else {
            match req.headers.content_type() {
                Ok(Some(ct)) if ct.is("application", "pidf+xml") => {}
                Ok(_) => {
                    return self.respond(
                        key,
                        reply(req, 415, "Unsupported Media Type")
                            .with_header(HeaderName::Accept, pidf::CONTENT_TYPE),
                    );
                }
                Err(e) => return self.respond(key, reply(req, 400, &e.to_string())),
            }
            match Presence::parse(&req.body) {
                Ok(doc) => Some(pidf_map::device_state(&doc, now)),
                Err(e) => return self.respond(key, reply(req, 400, &format!("Bad PIDF: {e}"))),
            }
        };
        let device = existing
            .as_ref()
            .map(|p| p.device.clone())
            .unwrap_or_else(|| self.device_for_flow(&person, flow));
        let etag = ids::token();
        {
            let mut pubs = lock(&self.publications);
            if let Some(old) = &if_match {
                pubs.remove(old);
            }
            // One publication per device: a new one replaces the device's old one.
            pubs.retain(|_, p| !(p.person == person && p.device == device));
            pubs.insert(
                etag.clone(),
                Publication {
                    person: person.clone(),
                    device: device.clone(),
                    expires_ms: now + i64::from(expires) * 1000,
                },
            );
        }
        if let Some(state) = state {
            self.engine.set_device(&person, &device, state, now);
        }
        self.respond(
            key,
            Response::to_request(req, 200)
                .with_to_tag(&ids::tag())
                .with_header(HeaderName::SipETag, etag)
                .with_header(HeaderName::Expires, expires.to_string()),
        );
    }

    /// The device a request came from: the registered binding using the same
    /// flow, else the flow itself.
    fn device_for_flow(&self, person: &Address, flow: &Flow) -> String {
        self.location
            .bindings(person, switchboard_core::now_ms())
            .iter()
            .find(|b| b.flow.remote == flow.remote && b.flow.transport == flow.transport)
            .map(|b| b.contact_key())
            .unwrap_or_else(|| format!("flow:{}:{}", flow.transport, flow.remote))
    }

    fn device_registered(&self, person: &Address, device: &str) -> bool {
        self.location
            .bindings(person, switchboard_core::now_ms())
            .iter()
            .any(|b| b.contact_key() == device)
    }

    /// A device registered: it counts as Available until it publishes.
    pub fn presence_device_registered(&self, aor: &Address, contact: &str) {
        self.engine
            .device_registered(aor, contact, switchboard_core::now_ms());
    }

    /// A device signed out: its registration and publication no longer count.
    pub fn presence_device_gone(&self, aor: &Address, contact: &str) {
        lock(&self.publications).retain(|_, p| !(p.person == *aor && p.device == contact));
        self.engine
            .device_gone(aor, contact, switchboard_core::now_ms());
    }

    /// Starts presence: seeds the engine from restored registrations, fans
    /// changes out to watchers, expires publications and ages idle devices.
    pub fn start_presence(self: &Arc<Self>) {
        let now = switchboard_core::now_ms();
        for b in self.location.all(now) {
            self.engine.device_registered(&b.aor, &b.contact_key(), now);
        }
        let me = self.clone();
        let mut changes = self.engine.changes();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => me.presence_changed(&change.person),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            missed = n,
                            "presence changes lagged; refreshing every watcher"
                        );
                        me.presence_reevaluate();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = switchboard_core::now_ms();
                let expired: Vec<(String, Publication)> = {
                    let mut pubs = lock(&me.publications);
                    let gone: Vec<String> = pubs
                        .iter()
                        .filter(|(_, p)| p.expires_ms <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    gone.into_iter()
                        .filter_map(|k| pubs.remove(&k).map(|p| (k, p)))
                        .collect()
                };
                for (_, p) in expired {
                    let still = me.device_registered(&p.person, &p.device);
                    me.engine
                        .publication_ended(&p.person, &p.device, still, now);
                }
                me.engine.tick(now);
            }
        });
    }

    fn presence_changed(&self, person: &Address) {
        let (direct, lists) = {
            let mut subs = lock(&self.subscriptions);
            let direct: Vec<u64> = subs
                .presence_of
                .get(person)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            let lists: Vec<u64> = subs
                .lists_with
                .get(person)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in &lists {
                if let Some(s) = subs.subs.get_mut(id) {
                    s.changed.insert(person.clone());
                }
            }
            (direct, lists)
        };
        for id in direct.into_iter().chain(lists) {
            self.schedule_notify(id);
        }
    }

    /// Re-decides every watcher after contact lists or privacy settings
    /// changed: pending watchers may now be allowed, levels may differ, lists
    /// may have gained or lost members.
    pub fn presence_reevaluate(&self) {
        let mut to_notify = Vec::new();
        let mut winfo_people = Vec::new();
        {
            let mut subs = lock(&self.subscriptions);
            let ids: Vec<u64> = subs.subs.keys().copied().collect();
            for id in ids {
                let (package, resource, subscriber) = match subs.subs.get(&id) {
                    Some(s) => (s.package, s.resource.clone(), s.subscriber.clone()),
                    None => continue,
                };
                match (package, resource) {
                    (Package::Presence, Resource::Person(p)) => {
                        let (state, level) = match self.presence_decision(&p, &subscriber) {
                            Decision::Allow(l) => (SubState::Active, Some(l)),
                            Decision::Pending => (SubState::Pending, None),
                        };
                        if let Some(s) = subs.subs.get_mut(&id)
                            && (s.state != state || s.level != level)
                        {
                            s.state = state;
                            s.level = level;
                            to_notify.push(id);
                            winfo_people.push(p.clone());
                        }
                    }
                    (Package::Presence, Resource::ContactList(owner)) => {
                        let members = self.list_members(&owner);
                        let changed = subs.subs.get(&id).is_some_and(|s| s.members != members);
                        if changed {
                            let names: Vec<Address> =
                                members.iter().map(|(m, _)| m.clone()).collect();
                            subs.set_members(id, &names);
                            if let Some(s) = subs.subs.get_mut(&id) {
                                s.members = members;
                                s.need_full = true;
                            }
                            to_notify.push(id);
                        }
                    }
                    _ => {}
                }
            }
        }
        for id in to_notify {
            self.schedule_notify(id);
        }
        winfo_people.sort();
        winfo_people.dedup();
        for p in winfo_people {
            self.notify_winfo(&p);
        }
    }

    /// Removes every subscription watching a person who no longer exists.
    pub fn end_subscriptions_to_missing_people(&self) {
        let gone: Vec<u64> = lock(&self.subscriptions)
            .subs
            .values()
            .filter(|s| matches!(&s.resource, Resource::Person(p) if s.package == Package::Winfo && self.directory.user(p).is_none()))
            .map(|s| s.id)
            .collect();
        for id in gone {
            self.end_subscription(id, EndReason::Noresource);
        }
    }
}
