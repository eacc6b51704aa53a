//! Routing of requests the server does not answer itself: who may send
//! (authentication, no open relay), where to (the recipient's devices, or the
//! other end of a dialog), and the IM rules applied on the way (content types,
//! size limit, asserted identity, blocking, offline IM).

use super::proxy::{OnFailure, Target};
use super::{SipServer, ids};
use crate::sip::auth::AuthOutcome;
use crate::transport::Flow;
use std::sync::Arc;
use switchboard_core::{Address, InstantMessage, archive};
use switchboard_store::archive::NewArchiveRecord;

/// Called once with the final status of a forwarded request.
pub type FinalHook = Box<dyn FnOnce(u16) + Send + Sync>;
use switchboard_sip::{HeaderName, Method, NameAddr, Request, Response, SipUri, TransactionKey};

/// Body types accepted in MESSAGE (RFC 3428 pager mode, RFC 3994 typing).
pub const MESSAGE_TYPES: [&str; 4] = [
    "text/plain",
    "text/html",
    "message/cpim",
    "application/im-iscomposing+xml",
];

/// Option tags accepted in Proxy-Require.
const PROXY_SUPPORTED: [&str; 0] = [];

fn reply(req: &Request, status: u16, reason: &str) -> Response {
    Response::to_request(req, status)
        .with_to_tag(&ids::tag())
        .with_reason(reason)
}

impl SipServer {
    /// The address a SIP URI names, if it is a user of a domain. A host that
    /// is one of our own addresses is read as the served domain named in To
    /// (clients configured with an IP address as proxy send such URIs).
    pub fn user_address(&self, uri: &SipUri, req: &Request) -> Option<Address> {
        let user = uri.user.as_deref()?;
        let host_is_self = uri
            .host
            .ip()
            .is_some_and(|ip| self.transports.is_local(ip, uri.port.unwrap_or(5060)));
        if host_is_self {
            let to_domain = req.headers.to().ok().and_then(|t| {
                t.uri
                    .as_sip()
                    .map(|u| u.host.to_string().to_ascii_lowercase())
            });
            let domain = to_domain
                .filter(|d| self.directory.is_served(d))
                .or_else(|| self.directory.domains().into_iter().next())?;
            return Address::from_parts(user, &domain).ok();
        }
        Address::from_parts(user, &uri.host.to_string()).ok()
    }

    /// Routes a request the server is not the destination of.
    pub fn route_request(&self, key: TransactionKey, mut req: Request, flow: Flow) {
        self.pop_own_routes(&mut req);
        match req.headers.max_forwards() {
            Ok(Some(0)) => return self.respond(&key, reply(&req, 483, "Too Many Hops")),
            Ok(_) => {}
            Err(_) => return self.respond(&key, reply(&req, 400, "Bad Max-Forwards")),
        }
        if self.is_loop(&req) {
            return self.respond(&key, reply(&req, 482, "Loop Detected"));
        }
        let unsupported: Vec<String> = req
            .headers
            .tokens(&HeaderName::ProxyRequire)
            .into_iter()
            .filter(|t| !PROXY_SUPPORTED.contains(&t.as_str()))
            .collect();
        if !unsupported.is_empty() {
            return self.respond(
                &key,
                reply(&req, 420, "Bad Extension")
                    .with_header(HeaderName::Unsupported, unsupported.join(", ")),
            );
        }
        if req.headers.contains(&HeaderName::Route) {
            // The next hop is another host: until federation exists this server
            // relays only to its own users' devices.
            return self.respond(
                &key,
                reply(&req, 403, "Routing to other hosts is not allowed"),
            );
        }
        let in_dialog = req.headers.to().ok().is_some_and(|t| t.tag().is_some());
        if in_dialog {
            if self.in_dialog_escalation(&key, &req, &flow) {
                return;
            }
            match self.in_dialog_target(&req) {
                Some(t) => {
                    let mut req = req;
                    self.renumber_in_dialog(&mut req);
                    let archived = self.in_dialog_archive_plan(&req);
                    self.forward_archived(key, req, flow, vec![t], OnFailure::Relay, archived);
                }
                None => self.respond(&key, reply(&req, 481, "Call/Transaction Does Not Exist")),
            }
            return;
        }
        self.route_out_of_dialog(key, req, flow);
    }

    fn route_out_of_dialog(&self, key: TransactionKey, mut req: Request, flow: Flow) {
        // Who is sending: only authenticated users of served domains.
        let from = match req.headers.from() {
            Ok(f) => f,
            Err(e) => return self.respond(&key, reply(&req, 400, &e.to_string())),
        };
        let Some(from_aor) = from.uri.as_sip().and_then(|u| self.user_address(u, &req)) else {
            return self.respond(
                &key,
                reply(&req, 403, "Sender is not a user of this server"),
            );
        };
        if !self.directory.is_served(from_aor.domain()) {
            return self.respond(
                &key,
                reply(
                    &req,
                    403,
                    "Requests from other domains are not accepted (federation is not enabled)",
                ),
            );
        }
        let sender = match self
            .auth
            .authenticate(&req, from_aor.domain(), true, &self.directory)
        {
            AuthOutcome::Authenticated(a) => a,
            AuthOutcome::Challenge(c) => return self.respond(&key, *c),
        };
        if sender != from_aor {
            return self.respond(
                &key,
                reply(&req, 403, "From does not match the authenticated user"),
            );
        }
        // Where to.
        let Some(uri) = req.uri.as_sip().cloned() else {
            return self.respond(&key, reply(&req, 404, "Not Found"));
        };
        let Some(recipient) = self.user_address(&uri, &req) else {
            return self.respond(&key, reply(&req, 404, "No such user"));
        };
        if !self.directory.is_served(recipient.domain()) {
            return self.respond(
                &key,
                reply(
                    &req,
                    403,
                    "Domain not served here (federation is not enabled)",
                ),
            );
        }
        let Some(entry) = self.directory.user(&recipient) else {
            return self.respond(&key, reply(&req, 404, "No such user"));
        };
        if matches!(req.method, Method::Message | Method::Invite | Method::Refer)
            && self.contact_gate().is_blocked(&recipient, &sender)
        {
            return self.respond(
                &key,
                reply(&req, 403, "The recipient does not accept messages from you"),
            );
        }
        let mut on_failure = OnFailure::Relay;
        if req.method == Method::Message {
            let ct = match req.headers.content_type() {
                Ok(Some(ct)) => ct,
                Ok(None) => return self.respond(&key, reply(&req, 400, "Missing Content-Type")),
                Err(e) => return self.respond(&key, reply(&req, 400, &e.to_string())),
            };
            if !MESSAGE_TYPES.contains(&ct.essence().as_str()) {
                return self.respond(
                    &key,
                    reply(&req, 415, "Unsupported Media Type")
                        .with_header(HeaderName::Accept, MESSAGE_TYPES.join(", ")),
                );
            }
            if req.body.len() > self.settings.max_im_body {
                return self.respond(
                    &key,
                    reply(
                        &req,
                        413,
                        &format!(
                            "Message body too large (limit {} bytes)",
                            self.settings.max_im_body
                        ),
                    ),
                );
            }
            if ct.is("message", "cpim")
                && let Err(e) = switchboard_sip_bodies::cpim::Cpim::parse(&req.body)
            {
                return self.respond(
                    &key,
                    reply(&req, 400, &format!("Bad message/cpim body: {e}")),
                );
            }
            if self.bridge_escalated(&key, &req, &sender, &recipient) {
                return;
            }
            if ct.is("text", "plain")
                && let Some(target) = String::from_utf8_lossy(&req.body)
                    .trim()
                    .strip_prefix("/invite ")
            {
                // Escalation from a pager-mode client: the third person named
                // joins, the two of us move into a new conference.
                let domain = recipient.domain().to_owned();
                let invitee = if target.contains('@') {
                    Address::parse(target.trim())
                } else {
                    Address::from_parts(target.trim(), &domain)
                };
                let from_device = self
                    .location
                    .bindings(&sender, switchboard_core::now_ms())
                    .iter()
                    .any(|b| b.flow.remote == flow.remote && b.flow.transport == flow.transport);
                return match invitee {
                    Ok(_) if !from_device => self.respond(
                        &key,
                        reply(
                            &req,
                            403,
                            "Escalation is accepted only from a registered device",
                        ),
                    ),
                    Ok(invitee) if invitee != sender && invitee != recipient => {
                        self.respond(
                            &key,
                            Response::to_request(&req, 200).with_to_tag(&ids::tag()),
                        );
                        self.escalate(&sender, &recipient, &invitee, &domain, None);
                    }
                    _ => self.respond(&key, reply(&req, 400, "Bad /invite: name a third user")),
                };
            }
            let content_type = ct.to_string();
            if ct.is("application", "im-iscomposing+xml") {
                if self.deliver_to_endpoints(&sender, &recipient, &content_type, &req.body) > 0 {
                    on_failure = OnFailure::Taken;
                }
            } else {
                self.record_one_to_one(&sender, &recipient, &content_type, &req.body);
                let sender_display = self
                    .directory
                    .user(&sender)
                    .and_then(|u| u.display_name.clone())
                    .or_else(|| from.display.clone());
                on_failure = OnFailure::HoldOffline(InstantMessage {
                    from: sender.clone(),
                    from_display: sender_display,
                    to: recipient.clone(),
                    content_type,
                    body: req.body.clone(),
                    received_ms: switchboard_core::now_ms(),
                });
            }
        }
        // The server vouches for the sender (RFC 3325): whatever the client
        // claimed is replaced by what it proved.
        req.headers.remove(&HeaderName::PAssertedIdentity);
        let display = self
            .directory
            .user(&sender)
            .and_then(|u| u.display_name.clone());
        let pai = match display {
            Some(d) => format!("{} <sip:{sender}>", switchboard_sip::text::quote(&d)),
            None => format!("<sip:{sender}>"),
        };
        req.headers.push(HeaderName::PAssertedIdentity, pai);
        req.headers.remove(&HeaderName::ProxyAuthorization);

        let now = switchboard_core::now_ms();
        let gruu = uri.params.value("gr").map(str::to_owned);
        let targets: Vec<Target> = self
            .location
            .bindings(&entry.address, now)
            .iter()
            .filter(|b| {
                gruu.as_ref()
                    .is_none_or(|g| b.instance.as_deref() == Some(g.as_str()))
            })
            .filter_map(|b| self.flow_for(b).map(|f| Target::for_binding(b, f)))
            .collect();
        let archived = match (&req.method, &on_failure) {
            (Method::Message, OnFailure::HoldOffline(msg)) => {
                let conversation = self
                    .conversations
                    .id(&sender, &recipient, now, ids::long_token);
                self.archive_plan(&[&sender, &recipient], || {
                    self.message_record(
                        &conversation,
                        &msg.from,
                        &[&recipient],
                        &msg.content_type,
                        msg.body.clone(),
                        msg.received_ms,
                    )
                })
            }
            _ => None,
        };
        self.forward_archived(key, req, flow, targets, on_failure, archived);
    }

    /// Forwards a request whose archiving was decided: in critical mode the
    /// record is committed first and the request refused with 503 if the
    /// archive cannot be written; the delivery outcome is archived when known.
    pub fn forward_archived(
        &self,
        key: TransactionKey,
        req: Request,
        flow: Flow,
        targets: Vec<Target>,
        on_failure: OnFailure,
        archived: Option<(NewArchiveRecord, bool)>,
    ) {
        let Some((record, critical)) = archived else {
            return self.forward_to(key, req, flow, targets, on_failure, None);
        };
        if !critical {
            let hook = self.archive_hook(record, false);
            return self.forward_to(key, req, flow, targets, on_failure, Some(hook));
        }
        let Some(me) = self.arc() else { return };
        tokio::spawn(async move {
            match me.commit_before_delivery(record).await {
                Ok(hook) => me.forward_to(key, req, flow, targets, on_failure, Some(hook)),
                Err(why) => {
                    tracing::warn!(reason = %why, "critical mode: message refused because it cannot be archived");
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

    fn forward_to(
        &self,
        key: TransactionKey,
        req: Request,
        flow: Flow,
        targets: Vec<Target>,
        on_failure: OnFailure,
        hook: Option<FinalHook>,
    ) {
        // The recipient's web sessions take an instant message at once;
        // the SIP devices still get it, but their failure is no failure.
        let on_failure = match on_failure {
            OnFailure::HoldOffline(msg)
                if self.deliver_to_endpoints_at(
                    &msg.from,
                    &msg.to,
                    &msg.content_type,
                    &msg.body,
                    msg.received_ms,
                ) > 0 =>
            {
                OnFailure::Taken
            }
            other => other,
        };
        if targets.is_empty() {
            match on_failure {
                OnFailure::Taken => {
                    if let Some(h) = hook {
                        h(200);
                    }
                    self.respond(
                        &key,
                        Response::to_request(&req, 200).with_to_tag(&ids::tag()),
                    );
                }
                OnFailure::HoldOffline(msg) => {
                    if let Some(me) = self.arc() {
                        tokio::spawn(async move { me.hold_offline(key, req, msg, hook).await });
                    }
                }
                OnFailure::Relay => {
                    if let Some(h) = hook {
                        h(480);
                    }
                    self.respond(&key, reply(&req, 480, "Temporarily Unavailable"));
                }
            }
            return;
        }
        self.proxy_to(key, &req, &flow, targets, on_failure, hook);
    }

    /// Whether a communication among `parties` is archived and how: the
    /// record (built only when needed) and whether critical mode applies.
    pub fn archive_plan(
        &self,
        parties: &[&Address],
        record: impl FnOnce() -> NewArchiveRecord,
    ) -> Option<(NewArchiveRecord, bool)> {
        match archive::decide(&self.policies, &self.directory, parties) {
            archive::Decision::NotArchived => None,
            archive::Decision::Archive { critical } => Some((record(), critical)),
        }
    }

    /// The archive record of an instant message from `from` to `others`
    /// (external if any of them is outside the served domains).
    pub fn message_record(
        &self,
        conversation: &str,
        from: &Address,
        others: &[&Address],
        content_type: &str,
        body: Vec<u8>,
        at_ms: i64,
    ) -> NewArchiveRecord {
        let external = std::iter::once(from)
            .chain(others.iter().copied())
            .any(|a| !self.directory.is_served(a.domain()));
        NewArchiveRecord {
            conversation: conversation.to_owned(),
            kind: "message".into(),
            at_ms,
            sender: from.to_string(),
            participants: others.iter().map(|a| a.to_string()).collect(),
            content_type: content_type.to_owned(),
            text: archive::searchable_text(content_type, &body),
            body,
            outcome: String::new(),
            external,
        }
    }

    /// Critical mode: commits `record` (as `accepted`) before the message is
    /// delivered and returns the hook that archives its outcome; `Err` with
    /// the reason when the archive cannot be written (the message must then
    /// be refused).
    pub async fn commit_before_delivery(
        &self,
        record: NewArchiveRecord,
    ) -> Result<FinalHook, String> {
        // The outcome record carries no content: copy the rest only.
        let mut accepted = record;
        let (body, text) = (
            std::mem::take(&mut accepted.body),
            std::mem::take(&mut accepted.text),
        );
        let outcome_record = accepted.clone();
        accepted.body = body;
        accepted.text = text;
        accepted.outcome = "accepted".into();
        self.archiver.capture_critical(accepted).await?;
        Ok(self.archive_hook(outcome_record, true))
    }

    /// What archives the final outcome of a message: the whole record, or,
    /// when the content was committed before delivery (critical mode), a
    /// `delivery` record with the outcome only.
    pub fn archive_hook(
        &self,
        record: NewArchiveRecord,
        content_already_archived: bool,
    ) -> FinalHook {
        let archiver = self.archiver.clone();
        Box::new(move |status: u16| {
            let mut r = record;
            r.outcome = match status {
                202 => "stored for offline delivery".into(),
                200..=299 => "delivered".into(),
                s => format!("failed {s}"),
            };
            if content_already_archived {
                r.kind = "delivery".into();
                r.body.clear();
                r.text.clear();
            }
            archiver.capture(r);
        })
    }

    /// Archiving of a MESSAGE inside a one-to-one IM session.
    fn in_dialog_archive_plan(&self, req: &Request) -> Option<(NewArchiveRecord, bool)> {
        if req.method != Method::Message {
            return None;
        }
        let ct = req.headers.content_type().ok().flatten()?;
        if ct.is("application", "im-iscomposing+xml") {
            return None;
        }
        let from = req
            .headers
            .from()
            .ok()?
            .uri
            .as_sip()
            .and_then(|u| self.user_address(u, req))?;
        let to = req
            .headers
            .to()
            .ok()?
            .uri
            .as_sip()
            .and_then(|u| self.user_address(u, req))?;
        let now = switchboard_core::now_ms();
        let conversation = self.conversations.id(&from, &to, now, ids::long_token);
        self.archive_plan(&[&from, &to], || {
            self.message_record(
                &conversation,
                &from,
                &[&to],
                &ct.to_string(),
                req.body.clone(),
                now,
            )
        })
    }

    /// Tracks the CSeq of an in-dialog request and, when the server sent
    /// requests in that dialog on the sender's behalf, renumbers it above them
    /// so that the other side never sees CSeq go backwards.
    pub fn renumber_in_dialog(&self, req: &mut Request) {
        let (Ok(call_id), Ok(from), Ok(cseq)) = (
            req.headers.call_id(),
            req.headers.from(),
            req.headers.cseq(),
        ) else {
            return;
        };
        let Some(tag) = from.tag() else { return };
        let mut d = crate::transport::lock(&self.dialog_cseq);
        if d.len() > 200_000 {
            // Forget old dialogs wholesale: only those with injected requests matter.
            d.clear();
        }
        let e = d.entry((call_id.to_owned(), tag.to_owned())).or_insert(0);
        if cseq.seq > *e {
            *e = cseq.seq;
        } else if cseq.method != Method::Ack && cseq.method != Method::Cancel {
            *e += 1;
            let n = *e;
            req.headers
                .set(HeaderName::CSeq, format!("{n} {}", cseq.method));
        }
    }

    /// Keeps a one-to-one message in the conversation's recent history (what
    /// a conference started from this conversation replays).
    pub fn record_one_to_one(&self, from: &Address, to: &Address, content_type: &str, body: &[u8]) {
        let entry = switchboard_core::conversation::HistoryEntry {
            from: from.clone(),
            from_display: self
                .directory
                .user(from)
                .and_then(|u| u.display_name.clone()),
            content_type: content_type.to_owned(),
            body: body.to_vec(),
            at_ms: switchboard_core::now_ms(),
        };
        self.conversations.record(from, to, entry, ids::long_token);
    }

    /// In-dialog requests of a one-to-one session that concern escalation: a
    /// REFER naming a third user starts a conference with both parties, and
    /// once escalated, MESSAGEs go to the conference. Only honoured when the
    /// request comes from a registered device of its sender. True if handled.
    fn in_dialog_escalation(&self, key: &TransactionKey, req: &Request, flow: &Flow) -> bool {
        if !matches!(req.method, Method::Message | Method::Refer) {
            return false;
        }
        let (Ok(from), Ok(to)) = (req.headers.from(), req.headers.to()) else {
            return false;
        };
        let (Some(sender), Some(peer)) = (
            from.uri.as_sip().and_then(|u| self.user_address(u, req)),
            to.uri.as_sip().and_then(|u| self.user_address(u, req)),
        ) else {
            return false;
        };
        if !self.directory.is_served(sender.domain()) || !self.directory.is_served(peer.domain()) {
            return false;
        }
        let from_device = self
            .location
            .bindings(&sender, switchboard_core::now_ms())
            .iter()
            .any(|b| b.flow.remote == flow.remote && b.flow.transport == flow.transport);
        if !from_device {
            return false;
        }
        match req.method {
            Method::Refer => {
                let Some(invitee) = req
                    .headers
                    .get(&HeaderName::ReferTo)
                    .and_then(|v| NameAddr::parse(v, "Refer-To").ok())
                    .and_then(|n| n.uri.as_sip().and_then(|u| self.user_address(u, req)))
                else {
                    return false;
                };
                if invitee == sender
                    || invitee == peer
                    || !self.directory.is_served(invitee.domain())
                {
                    return false;
                }
                self.respond(key, Response::to_request(req, 202));
                // The REFER's implicit subscription (RFC 3515): NOTIFYs in
                // this dialog, sent on behalf of the peer, one at a time.
                let report = self.escalation_refer_subscription(req, flow);
                match self
                    .conversations
                    .escalated(&sender, &peer)
                    .filter(|c| self.conferences.get(c).is_some())
                {
                    Some(conf) => self.invite_to_escalated(&conf, &sender, &invitee, Some(report)),
                    None => {
                        self.escalate(&sender, &peer, &invitee, peer.domain(), Some(report));
                    }
                }
                true
            }
            _ => {
                let ct = req.headers.content_type().ok().flatten();
                if self.conversations.escalated(&sender, &peer).is_none() {
                    if let Some(ct) = ct.filter(|c| !c.is("application", "im-iscomposing+xml")) {
                        self.record_one_to_one(&sender, &peer, &ct.to_string(), &req.body);
                    }
                    return false;
                }
                self.bridge_escalated(key, req, &sender, &peer)
            }
        }
    }
    pub fn contact_gate(&self) -> Arc<dyn switchboard_core::ContactGate> {
        self.gate.clone()
    }
}
