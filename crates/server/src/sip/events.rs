//! The SIP events framework (RFC 6665) every event package uses:
//! subscriptions as dialogs, Expires negotiation, refresh and termination,
//! NOTIFY sending (one at a time per subscription, coalescing what changed
//! meanwhile), NOTIFY failures ending the subscription, expiry, and removal
//! when the subscriber's device goes away.

use super::location::LocationEvent;
use super::proxy::Target;
use super::{SipServer, UacOutcome, ids};
use crate::transport::{Flow, lock};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::Address;
use switchboard_core::presence::AccessLevel;
use switchboard_sip::{HeaderName, Method, Request, Uri};

/// Event packages served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    /// RFC 3856.
    Presence,
    /// RFC 3857.
    Winfo,
    /// RFC 4575.
    Conference,
    /// RFC 3515 (implicit subscription of REFER).
    Refer,
}

impl Package {
    /// The Event header token.
    pub fn name(self) -> &'static str {
        match self {
            Package::Presence => "presence",
            Package::Winfo => "presence.winfo",
            Package::Conference => "conference",
            Package::Refer => "refer",
        }
    }

    /// Packages a client may SUBSCRIBE to.
    pub fn subscribable(s: &str) -> Option<Package> {
        match s {
            "presence" => Some(Package::Presence),
            "presence.winfo" => Some(Package::Winfo),
            "conference" => Some(Package::Conference),
            _ => None,
        }
    }
}

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// One person's presence, or their watcher list (winfo).
    Person(Address),
    /// A person's whole contact list (RFC 4662 batch subscription).
    ContactList(Address),
    /// A conference's roster.
    Conference(String),
}

/// The dialog of a subscription, seen from the server (the notifier).
#[derive(Debug, Clone)]
pub struct SubDialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The To of the SUBSCRIBE without tag: our side (the resource).
    pub local_uri: String,
    /// The From of the SUBSCRIBE without tag: the subscriber.
    pub remote_uri: String,
    /// The subscriber's Contact: NOTIFY's Request-URI.
    pub remote_target: Uri,
    /// Record-Route of the SUBSCRIBE, in order.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
}

/// Subscription state (RFC 6665 §4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    Active,
    Pending,
}

/// One subscription.
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub package: Package,
    pub event_id: Option<String>,
    pub subscriber: Address,
    /// The subscriber device's Contact, to end the subscription with it.
    pub subscriber_contact: String,
    pub resource: Resource,
    pub dialog: SubDialog,
    pub flow: Flow,
    pub expires_ms: i64,
    pub state: SubState,
    /// For presence: the access level granted (None while pending).
    pub level: Option<AccessLevel>,
    /// Version counter of versioned documents (winfo, RLMI, conference-info).
    pub version: u32,
    /// A NOTIFY is on its way; further changes wait for its answer.
    in_flight: bool,
    /// Something changed while a NOTIFY was in flight.
    dirty: bool,
    /// The next NOTIFY must carry full state (RLS, conference).
    pub need_full: bool,
    /// RLS: members whose state changed since the last NOTIFY.
    pub changed: HashSet<Address>,
    /// RLS: the list members and how the owner may see each.
    pub members: Vec<(Address, switchboard_core::presence::Decision)>,
    /// REFER: the status line to report (100 while the invitation runs).
    pub refer_status: Option<u16>,
    /// What the last NOTIFY said (state and body), to skip identical ones.
    last_sent: Option<u64>,
    /// The subscription ends once the NOTIFY in flight is answered.
    pending_end: Option<EndReason>,
}

/// Every subscription with the indexes fan-out needs.
#[derive(Debug, Default)]
pub struct Subscriptions {
    next: u64,
    pub subs: HashMap<u64, Subscription>,
    by_dialog: HashMap<(String, String, String), u64>,
    /// Presence subscriptions per watched person.
    pub presence_of: HashMap<Address, HashSet<u64>>,
    /// Winfo subscriptions per person.
    pub winfo_of: HashMap<Address, HashSet<u64>>,
    /// RLS subscriptions per list member.
    pub lists_with: HashMap<Address, HashSet<u64>>,
    /// Conference subscriptions per conference id.
    pub conference_of: HashMap<String, HashSet<u64>>,
}

/// Parameters of a new subscription.
pub struct NewSubscription {
    pub package: Package,
    pub event_id: Option<String>,
    pub subscriber: Address,
    pub subscriber_contact: String,
    pub resource: Resource,
    pub dialog: SubDialog,
    pub flow: Flow,
    pub expires_ms: i64,
    pub state: SubState,
    pub level: Option<AccessLevel>,
    /// RLS: the list members at subscription time and how each is seen.
    pub members: Vec<(Address, switchboard_core::presence::Decision)>,
}

impl Subscription {
    /// Makes the subscription send again once the NOTIFY in flight is answered.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

impl Subscriptions {
    /// Adds a subscription and returns its id.
    pub fn insert(&mut self, n: NewSubscription) -> u64 {
        self.next += 1;
        let id = self.next;
        self.by_dialog.insert(
            (
                n.dialog.call_id.clone(),
                n.dialog.local_tag.clone(),
                n.dialog.remote_tag.clone(),
            ),
            id,
        );
        match (&n.package, &n.resource) {
            (Package::Presence, Resource::Person(p)) => {
                self.presence_of.entry(p.clone()).or_default().insert(id);
            }
            (Package::Winfo, Resource::Person(p)) => {
                self.winfo_of.entry(p.clone()).or_default().insert(id);
            }
            (Package::Conference, Resource::Conference(c)) => {
                self.conference_of.entry(c.clone()).or_default().insert(id);
            }
            _ => {}
        }
        for (m, _) in &n.members {
            self.lists_with.entry(m.clone()).or_default().insert(id);
        }
        self.subs.insert(
            id,
            Subscription {
                id,
                package: n.package,
                event_id: n.event_id,
                subscriber: n.subscriber,
                subscriber_contact: n.subscriber_contact,
                resource: n.resource,
                dialog: n.dialog,
                flow: n.flow,
                expires_ms: n.expires_ms,
                state: n.state,
                level: n.level,
                version: 0,
                in_flight: false,
                dirty: false,
                need_full: true,
                changed: HashSet::new(),
                members: n.members,
                refer_status: None,
                last_sent: None,
                pending_end: None,
            },
        );
        id
    }

    /// The subscription of an in-dialog request.
    pub fn find_dialog(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> Option<u64> {
        self.by_dialog
            .get(&(
                call_id.to_owned(),
                local_tag.to_owned(),
                remote_tag.to_owned(),
            ))
            .copied()
    }

    /// Removes a subscription from every index.
    pub fn remove(&mut self, id: u64) -> Option<Subscription> {
        let s = self.subs.remove(&id)?;
        self.by_dialog.remove(&(
            s.dialog.call_id.clone(),
            s.dialog.local_tag.clone(),
            s.dialog.remote_tag.clone(),
        ));
        let drop_from = |m: &mut HashMap<Address, HashSet<u64>>, k: &Address| {
            if let Some(set) = m.get_mut(k) {
                set.remove(&id);
                if set.is_empty() {
                    m.remove(k);
                }
            }
        };
        match &s.resource {
            Resource::Person(p) if s.package == Package::Presence => {
                drop_from(&mut self.presence_of, p)
            }
            Resource::Person(p) if s.package == Package::Winfo => drop_from(&mut self.winfo_of, p),
            Resource::Conference(c) => {
                if let Some(set) = self.conference_of.get_mut(c) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.conference_of.remove(c);
                    }
                }
            }
            _ => {}
        }
        self.lists_with.retain(|_, set| {
            set.remove(&id);
            !set.is_empty()
        });
        Some(s)
    }

    /// Replaces the member index of an RLS subscription (its list changed).
    pub fn set_members(&mut self, id: u64, members: &[Address]) {
        self.lists_with.retain(|_, set| {
            set.remove(&id);
            !set.is_empty()
        });
        for m in members {
            self.lists_with.entry(m.clone()).or_default().insert(id);
        }
    }

    /// How many subscriptions came from this device (flow peer).
    pub fn count_from(&self, flow: &Flow) -> usize {
        self.subs
            .values()
            .filter(|s| s.flow.remote == flow.remote && s.flow.transport == flow.transport)
            .count()
    }
}

/// Why a subscription ends (the `reason` of Subscription-State: terminated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Timeout,
    Noresource,
}

impl EndReason {
    fn token(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Noresource => "noresource",
        }
    }
}

/// The body of a NOTIFY: content type and bytes (None: no body).
pub type NotifyBody = Option<(String, Vec<u8>)>;

/// A hash of a NOTIFY's state and body.
fn fingerprint(state: &str, body: &NotifyBody) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

/// NOTIFY answers that end the subscription (RFC 6665 §4.2.2).
fn ends_subscription(status: u16) -> bool {
    matches!(
        status,
        404 | 405 | 408 | 410 | 416 | 480..=485 | 489 | 501 | 604
    )
}

impl SipServer {
    /// Builds the NOTIFY for subscription `s` with the given state and body.
    fn notify_request(
        &self,
        s: &mut Subscription,
        sub_state: String,
        body: NotifyBody,
    ) -> Option<(Request, Target)> {
        let flow = self.transports.live_flow(&s.flow)?;
        s.dialog.local_cseq += 1;
        let mut req = Request::new(Method::Notify, s.dialog.remote_target.clone());
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            format!("{};tag={}", s.dialog.local_uri, s.dialog.local_tag),
        );
        req.headers.push(
            HeaderName::To,
            format!("{};tag={}", s.dialog.remote_uri, s.dialog.remote_tag),
        );
        req.headers
            .push(HeaderName::CallId, s.dialog.call_id.clone());
        req.headers
            .push(HeaderName::CSeq, format!("{} NOTIFY", s.dialog.local_cseq));
        let a = self.advertised(&flow);
        let host = if a.is_ipv6() {
            format!("[{}]", a.ip())
        } else {
            a.ip().to_string()
        };
        req.headers.push(
            HeaderName::Contact,
            format!(
                "<sip:{host}:{};transport={}>",
                a.port(),
                flow.transport.name()
            ),
        );
        let event = match &s.event_id {
            Some(id) => format!("{};id={id}", s.package.name()),
            None => s.package.name().to_owned(),
        };
        req.headers.push(HeaderName::Event, event);
        req.headers.push(HeaderName::SubscriptionState, sub_state);
        if matches!(s.resource, Resource::ContactList(_)) {
            req.headers.push(HeaderName::Require, "eventlist");
        }
        if let Some((ct, bytes)) = body {
            req.headers.push(HeaderName::ContentType, ct);
            req.body = bytes;
        }
        let target = Target {
            uri: s.dialog.remote_target.clone(),
            flow,
            routes: s.dialog.route_set.clone(),
        };
        Some((req, target))
    }

    /// Sends the current state to subscription `id` now, or after the NOTIFY
    /// in flight is answered (changes in between are coalesced).
    pub fn schedule_notify(&self, id: u64) {
        let built = {
            let mut subs = lock(&self.subscriptions);
            // Watcher lists are read before the subscription is borrowed:
            // rendering must never take the subscriptions lock again.
            let watchers = subs
                .subs
                .get(&id)
                .and_then(|s| match (&s.package, &s.resource) {
                    (Package::Winfo, Resource::Person(p)) => Some(self.watchers_of(&subs, p)),
                    _ => None,
                });
            let Some(s) = subs.subs.get_mut(&id) else {
                return;
            };
            if s.in_flight {
                s.dirty = true;
                return;
            }
            let now = switchboard_core::now_ms();
            let remaining = ((s.expires_ms - now).max(0) / 1000) as u32;
            let state = match s.state {
                SubState::Active => "active",
                SubState::Pending => "pending",
            };
            let forced = s.need_full;
            let body = self.render(s, watchers);
            // A change that does not change what this watcher may see is not
            // announced: otherwise a blocked or pending watcher would learn
            // from the timing of NOTIFYs when the person is active.
            let fingerprint = fingerprint(state, &body);
            if s.package == Package::Presence
                && matches!(s.resource, Resource::Person(_))
                && !forced
                && s.last_sent == Some(fingerprint)
            {
                return;
            }
            s.last_sent = Some(fingerprint);
            if matches!(s.resource, Resource::Person(_)) {
                s.need_full = false;
            }
            let built = self.notify_request(s, format!("{state};expires={remaining}"), body);
            if built.is_some() {
                s.in_flight = true;
            }
            built
        };
        match built {
            Some((req, target)) => self.spawn_notify(id, req, target),
            None => self.end_subscription_silently(id, "subscriber unreachable"),
        }
    }

    fn spawn_notify(&self, id: u64, req: Request, target: Target) {
        let Some(me) = self.arc() else { return };
        let (out, _) = self.prepare_forward(&req, &target, None, false);
        tokio::spawn(async move {
            let outcome = me.send_request(out, target.flow).await;
            let failed = match &outcome {
                UacOutcome::Response(r) => ends_subscription(r.status),
                UacOutcome::Timeout | UacOutcome::TransportError => true,
            };
            if failed {
                me.end_subscription_silently(id, "NOTIFY failed");
                return;
            }
            let (again, end) = {
                let mut subs = lock(&me.subscriptions);
                match subs.subs.get_mut(&id) {
                    Some(s) => {
                        s.in_flight = false;
                        (std::mem::take(&mut s.dirty), s.pending_end.take())
                    }
                    None => (false, None),
                }
            };
            if let Some(reason) = end {
                me.end_subscription(id, reason);
            } else if again {
                me.schedule_notify(id);
            }
        });
    }

    /// Ends a subscription with a final NOTIFY (`terminated;reason=…`).
    pub fn end_subscription(&self, id: u64, reason: EndReason) {
        let built = {
            let mut subs = lock(&self.subscriptions);
            let watchers = subs
                .subs
                .get(&id)
                .and_then(|s| match (&s.package, &s.resource) {
                    (Package::Winfo, Resource::Person(p)) => Some(self.watchers_of(&subs, p)),
                    _ => None,
                });
            // NOTIFYs go one at a time: the final one waits for the answer
            // to the one in flight, so the subscriber sees them in order.
            if let Some(s) = subs.subs.get_mut(&id)
                && s.in_flight
            {
                s.pending_end = Some(reason);
                return;
            }
            let Some(mut s) = subs.remove(id) else { return };
            // The final NOTIFY carries the state when the subscription simply
            // ran out, and the outcome for REFER.
            let body = if reason == EndReason::Timeout || s.package == Package::Refer {
                self.render(&mut s, watchers)
            } else {
                None
            };
            self.notify_request(
                &mut s,
                format!("terminated;reason={}", reason.token()),
                body,
            )
            .map(|b| (b, s))
        };
        if let Some(((req, target), s)) = built {
            let (out, _) = self.prepare_forward(&req, &target, None, false);
            if let Some(me) = self.arc() {
                tokio::spawn(async move {
                    let _ = me.send_request(out, target.flow).await;
                });
            }
            self.subscription_ended(&s);
        }
    }

    /// Forgets a subscription whose subscriber can no longer be reached.
    pub fn end_subscription_silently(&self, id: u64, why: &str) {
        let removed = lock(&self.subscriptions).remove(id);
        if let Some(s) = removed {
            tracing::debug!(id, subscriber = %s.subscriber, package = s.package.name(), why, "subscription removed");
            self.subscription_ended(&s);
        }
    }

    /// Starts the events framework's background work: expiry, and removal of
    /// subscriptions whose device signed out.
    pub fn start_events(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = switchboard_core::now_ms();
                let expired: Vec<u64> = lock(&me.subscriptions)
                    .subs
                    .values()
                    .filter(|s| s.expires_ms <= now)
                    .map(|s| s.id)
                    .collect();
                for id in expired {
                    me.end_subscription(id, EndReason::Timeout);
                }
            }
        });
        let me = self.clone();
        let mut events = self.location.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(LocationEvent::Removed {
                        aor,
                        contact,
                        reason,
                    }) => {
                        tracing::debug!(user = %aor, %contact, ?reason, "device signed out");
                        let key = Uri::parse(&contact)
                            .ok()
                            .and_then(|u| u.as_sip().map(super::location::contact_index_key));
                        let gone: Vec<u64> = lock(&me.subscriptions)
                            .subs
                            .values()
                            .filter(|s| {
                                s.subscriber == aor
                                    && Uri::parse(&s.subscriber_contact).ok().and_then(|u| {
                                        u.as_sip().map(super::location::contact_index_key)
                                    }) == key
                            })
                            .map(|s| s.id)
                            .collect();
                        for id in gone {
                            me.end_subscription_silently(id, "subscriber device signed out");
                        }
                        me.presence_device_gone(&aor, &contact);
                    }
                    Ok(LocationEvent::Registered { aor, contact, .. }) => {
                        me.presence_device_registered(&aor, &contact)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "location events lagged")
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// A new dialog for a subscription answered by us.
    pub fn new_sub_dialog(req: &Request) -> Result<SubDialog, &'static str> {
        let from = req.headers.from().map_err(|_| "Bad From")?;
        let to = req.headers.to().map_err(|_| "Bad To")?;
        let remote_tag = from.tag().ok_or("From tag required")?.to_owned();
        let contact = match req.headers.contacts() {
            Ok(switchboard_sip::Contacts::List(l)) if !l.is_empty() => l[0].uri.clone(),
            _ => return Err("Missing Contact"),
        };
        let strip = |mut n: switchboard_sip::NameAddr| {
            n.params.remove("tag");
            n.to_string()
        };
        Ok(SubDialog {
            call_id: req.headers.call_id().map_err(|_| "Bad Call-ID")?.to_owned(),
            local_tag: ids::tag(),
            remote_tag,
            local_uri: strip(to),
            remote_uri: strip(from),
            remote_target: contact,
            route_set: req
                .headers
                .values(&HeaderName::RecordRoute)
                .map(str::to_owned)
                .collect(),
            local_cseq: 0,
            remote_cseq: req.headers.cseq().map(|c| c.seq).unwrap_or(0),
        })
    }
}
