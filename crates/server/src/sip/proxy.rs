//! The stateful proxy (RFC 3261 §16): target sets from the location service,
//! parallel forking to every device of the recipient, best-response selection,
//! CANCEL of the other branches once an INVITE is answered, Record-Route so
//! that in-dialog requests traverse the server, loose routing, loop detection
//! and Max-Forwards. Other features (IM, presence, conferences) route through
//! it; policy decisions come from the domain core.

use super::location::Binding;
use super::{SipServer, UacOutcome, ids};
use crate::transport::{Flow, Transport, lock};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};
use switchboard_sip::transaction::Event;
use switchboard_sip::{
    HeaderName, Method, NameAddr, Request, Response, SipUri, TransactionKey, Uri,
};

/// Timer C (RFC 3261 §16.6 step 11): how long an INVITE branch may ring.
const TIMER_C: Duration = Duration::from_secs(180);

/// Where a forwarded request goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The Request-URI of the forwarded request.
    pub uri: Uri,
    /// The flow to send it on.
    pub flow: Flow,
    /// Route headers to put first (the device's Path).
    pub routes: Vec<String>,
}

impl Target {
    /// A target for a registered device.
    pub fn for_binding(b: &Binding, flow: Flow) -> Target {
        Target {
            uri: b.uri.clone(),
            flow,
            routes: b.path.clone(),
        }
    }
}

/// What the proxy does once every branch of a request failed.
#[derive(Debug, Clone)]
pub enum OnFailure {
    /// Forward the best failure response.
    Relay,
    /// A MESSAGE that may wait for its recipient: store it if every device
    /// failed with 408/480, and answer 202 (or 480 if the policy says no).
    HoldOffline(switchboard_core::InstantMessage),
    /// Another point of presence of the recipient (a web session) took the
    /// request already: whatever the devices answer, the caller gets 200.
    Taken,
}

#[derive(Debug)]
struct Branch {
    key: TransactionKey,
    final_status: Option<u16>,
    response: Option<Response>,
}

struct Context {
    server_key: TransactionKey,
    /// The received request without its body: what responses the proxy makes
    /// up itself are built from.
    request: Request,
    is_invite: bool,
    branches: Vec<Branch>,
    final_sent: bool,
    on_failure: OnFailure,
    cancelled: bool,
    /// Told the final status sent to the caller (archiving of the outcome).
    on_final: Option<super::routing::FinalHook>,
}

/// Response contexts of the requests being proxied.
#[derive(Default)]
pub struct ProxyState {
    next: u64,
    contexts: HashMap<u64, Context>,
    by_branch: HashMap<TransactionKey, (u64, usize)>,
    by_server: HashMap<TransactionKey, u64>,
}

/// Rank of a final response for best-response selection (lower is better).
fn rank(status: u16) -> (u8, u16) {
    let class = match status / 100 {
        2 => 0,
        6 => 1,
        3 => 2,
        4 => 3,
        _ => 4,
    };
    // Among 4xx, answers the caller can act on first (RFC 3261 §16.7 step 6).
    let pref = match status {
        401 | 407 | 415 | 420 | 484 => 0,
        s => s,
    };
    (class, pref)
}

/// The loop-detection hash of a request (RFC 3261 §16.6 step 8): what makes a
/// looped request equal to its earlier self but a spiral different.
fn loop_hash(req: &Request) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.uri.to_string().hash(&mut h);
    req.headers.get(&HeaderName::CallId).hash(&mut h);
    req.headers
        .from()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .hash(&mut h);
    req.headers
        .to()
        .ok()
        .and_then(|t| t.tag().map(str::to_owned))
        .hash(&mut h);
    req.headers.cseq().ok().map(|c| c.seq).hash(&mut h);
    for r in req.headers.get_all(&HeaderName::ProxyRequire) {
        r.hash(&mut h);
    }
    format!("{:08x}", h.finish() as u32)
}

impl SipServer {
    /// True if `uri` names this server (one of its addresses, or a served
    /// domain without a user part).
    pub fn is_self(&self, uri: &SipUri) -> bool {
        match &uri.host {
            switchboard_sip::Host::Name(n) => {
                uri.user.is_none()
                    && (self.directory.is_served(&n.to_ascii_lowercase())
                        || n.eq_ignore_ascii_case("localhost"))
            }
            h => {
                let ip = h.ip();
                let default = if uri.secure || uri.transport().as_deref() == Some("tls") {
                    5061
                } else {
                    5060
                };
                ip.is_some_and(|ip| self.transports.is_local(ip, uri.port.unwrap_or(default)))
            }
        }
    }

    /// Removes the Route values that name this server from the top of the
    /// route set (RFC 3261 §16.4). Returns how many were removed.
    pub fn pop_own_routes(&self, req: &mut Request) -> usize {
        let mut removed = 0;
        loop {
            let Some(first) = req
                .headers
                .values(&HeaderName::Route)
                .next()
                .map(str::to_owned)
            else {
                break;
            };
            let ours = NameAddr::parse(&first, "Route")
                .ok()
                .and_then(|na| na.uri.as_sip().map(|u| self.is_self(u)))
                .unwrap_or(false);
            if !ours {
                break;
            }
            remove_first_value(&mut req.headers, &HeaderName::Route);
            removed += 1;
        }
        removed
    }

    /// The address to advertise for `flow` in Via and Record-Route.
    pub fn advertised(&self, flow: &Flow) -> std::net::SocketAddr {
        if flow.transport == Transport::Udp {
            return flow.local;
        }
        self.transports
            .listener_for(flow.transport, flow.local.ip())
            .unwrap_or(flow.local)
    }

    fn record_route_uri(&self, flow: &Flow) -> String {
        let a = self.advertised(flow);
        let host = if a.is_ipv6() {
            format!("[{}]", a.ip())
        } else {
            a.ip().to_string()
        };
        format!(
            "<sip:{host}:{};transport={};lr>",
            a.port(),
            flow.transport.name()
        )
    }

    /// Prepares a copy of `req` for one target: Request-URI, Path routes,
    /// Max-Forwards, Via with a loop-detecting branch, and (for dialog-creating
    /// requests) Record-Route — two of them when the request changes transport
    /// or interface (RFC 5658).
    pub fn prepare_forward(
        &self,
        req: &Request,
        target: &Target,
        inbound: Option<&Flow>,
        record_route: bool,
    ) -> (Request, String) {
        let mut out = req.clone();
        let hash = loop_hash(req);
        out.uri = target.uri.clone();
        for r in target.routes.iter().rev() {
            out.headers.push_front(HeaderName::Route, r.clone());
        }
        let mf = req.headers.max_forwards().ok().flatten().unwrap_or(70);
        out.headers
            .set(HeaderName::MaxForwards, mf.saturating_sub(1).to_string());
        if record_route {
            let outbound_rr = self.record_route_uri(&target.flow);
            if let Some(inb) = inbound {
                let inbound_rr = self.record_route_uri(inb);
                if inbound_rr != outbound_rr {
                    out.headers.push_front(HeaderName::RecordRoute, inbound_rr);
                }
            }
            out.headers.push_front(HeaderName::RecordRoute, outbound_rr);
        }
        let branch = format!("z9hG4bKsb{hash}.{}", ids::token());
        let a = self.advertised(&target.flow);
        let host = if a.is_ipv6() {
            format!("[{}]", a.ip())
        } else {
            a.ip().to_string()
        };
        out.headers.push_front(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {host}:{};branch={branch};rport",
                target.flow.transport.via_name(),
                a.port()
            ),
        );
        (out, branch)
    }

    /// True if this request already passed through us unchanged (a loop, not
    /// a spiral): one of the Vias is ours with the same loop hash.
    pub fn is_loop(&self, req: &Request) -> bool {
        let hash = loop_hash(req);
        let marker = format!("z9hG4bKsb{hash}.");
        req.headers
            .vias()
            .map(|vias| {
                vias.iter().any(|v| {
                    v.branch().is_some_and(|b| b.starts_with(&marker))
                        && v.host
                            .ip()
                            .is_some_and(|ip| self.transports.is_local(ip, v.port.unwrap_or(5060)))
                })
            })
            .unwrap_or(false)
    }

    /// The flow to reach a registered device now: its own connection if open,
    /// another connection from the same peer, or its UDP address.
    pub fn flow_for(&self, b: &Binding) -> Option<Flow> {
        self.transports.live_flow(&b.flow)
    }

    /// Every registered device of `user` reachable now, as request targets.
    pub fn device_targets(&self, user: &switchboard_core::Address, now_ms: i64) -> Vec<Target> {
        self.location
            .bindings(user, now_ms)
            .iter()
            .filter_map(|b| self.flow_for(b).map(|f| Target::for_binding(b, f)))
            .collect()
    }

    /// Forwards `req` (received on server transaction `server_key`) to every
    /// target in parallel and relays the outcome.
    pub fn proxy_to(
        &self,
        server_key: TransactionKey,
        req: &Request,
        inbound: &Flow,
        targets: Vec<Target>,
        on_failure: OnFailure,
        on_final: Option<super::routing::FinalHook>,
    ) {
        let is_invite = req.method == Method::Invite;
        let record_route = matches!(
            req.method,
            Method::Invite | Method::Subscribe | Method::Refer
        ) && req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .is_none();
        let prepared: Vec<(Request, String, Flow)> = targets
            .iter()
            .map(|t| {
                let (r, b) = self.prepare_forward(req, t, Some(inbound), record_route);
                (r, b, t.flow.clone())
            })
            .collect();
        let id = {
            let mut st = lock(&self.proxy);
            st.next += 1;
            let id = st.next;
            let branches = prepared
                .iter()
                .map(|(r, b, _)| Branch {
                    key: TransactionKey::for_client(b, &r.method),
                    final_status: None,
                    response: None,
                })
                .collect::<Vec<_>>();
            for (i, br) in branches.iter().enumerate() {
                st.by_branch.insert(br.key.clone(), (id, i));
            }
            st.by_server.insert(server_key.clone(), id);
            let request = Request {
                body: Vec::new(),
                ..req.clone()
            };
            st.contexts.insert(
                id,
                Context {
                    server_key,
                    request,
                    is_invite,
                    branches,
                    final_sent: false,
                    on_failure,
                    cancelled: false,
                    on_final,
                },
            );
            id
        };
        let now = Instant::now();
        for (r, _, flow) in prepared {
            let key = TransactionKey::for_client(
                &r.headers
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch().map(str::to_owned))
                    .unwrap_or_default(),
                &r.method,
            );
            if self.with_layer(|l| l.send_request(now, r, flow)).is_err() {
                self.branch_failed(&key, 503);
            }
        }
        if is_invite && let Some(me) = self.arc() {
            tokio::spawn(async move {
                tokio::time::sleep(TIMER_C).await;
                me.timer_c(id);
            });
        }
    }

    fn timer_c(&self, id: u64) {
        let keys: Vec<TransactionKey> = {
            let st = lock(&self.proxy);
            match st.contexts.get(&id) {
                Some(ctx) if !ctx.final_sent => ctx
                    .branches
                    .iter()
                    .filter(|b| b.final_status.is_none())
                    .map(|b| b.key.clone())
                    .collect(),
                _ => Vec::new(),
            }
        };
        let now = Instant::now();
        for k in keys {
            let _ = self.with_layer(|l| l.cancel(now, &k));
        }
    }

    /// Handles a proxy client transaction event; false if the event is not
    /// for the proxy.
    pub fn proxy_event(&self, event: &Event<Flow>) -> bool {
        match event {
            Event::Response { key, response } => {
                if !lock(&self.proxy).by_branch.contains_key(key) {
                    return false;
                }
                self.branch_response(key, response.clone());
                true
            }
            Event::Timeout { key } => {
                if !lock(&self.proxy).by_branch.contains_key(key) {
                    return false;
                }
                self.branch_failed(key, 408);
                true
            }
            Event::TransportError { key } => {
                if !lock(&self.proxy).by_branch.contains_key(key) {
                    return false;
                }
                self.branch_failed(key, 503);
                true
            }
            _ => false,
        }
    }

    fn branch_failed(&self, key: &TransactionKey, status: u16) {
        // A synthetic final response: it ranks like a real one but is never
        // forwarded by itself (408 for a timeout, 503 for a transport error).
        self.record_final(key, status, None);
    }

    fn branch_response(&self, key: &TransactionKey, mut resp: Response) {
        remove_first_value(&mut resp.headers, &HeaderName::Via);
        let status = resp.status;
        if status < 200 {
            if status == 100 {
                return;
            }
            let server = {
                let st = lock(&self.proxy);
                st.by_branch
                    .get(key)
                    .and_then(|(id, _)| st.contexts.get(id))
                    .filter(|c| !c.final_sent)
                    .map(|c| c.server_key.clone())
            };
            if let Some(sk) = server {
                self.respond(&sk, resp);
            }
            return;
        }
        if (200..300).contains(&status) {
            let (server, is_invite, others, hook) = {
                let mut st = lock(&self.proxy);
                let Some(&(id, idx)) = st.by_branch.get(key) else {
                    return;
                };
                let Some(ctx) = st.contexts.get_mut(&id) else {
                    return;
                };
                let first = !ctx.final_sent;
                ctx.final_sent = true;
                let hook = if first { ctx.on_final.take() } else { None };
                if let Some(b) = ctx.branches.get_mut(idx)
                    && b.final_status.is_none()
                {
                    b.final_status = Some(status);
                }
                let others: Vec<TransactionKey> = if ctx.is_invite && first {
                    ctx.branches
                        .iter()
                        .filter(|b| b.final_status.is_none())
                        .map(|b| b.key.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                // Every 2xx to an INVITE is forwarded (each may be a separate
                // dialog); for other methods only the first.
                let send = ctx.is_invite || first;
                (
                    send.then(|| ctx.server_key.clone()),
                    ctx.is_invite,
                    others,
                    hook,
                )
            };
            if let Some(h) = hook {
                h(status);
            }
            if let Some(sk) = server {
                self.respond(&sk, resp);
            }
            let now = Instant::now();
            for k in others {
                let _ = self.with_layer(|l| l.cancel(now, &k));
            }
            let _ = is_invite;
            self.maybe_finish(key);
            return;
        }
        if status >= 600 {
            let others: Vec<TransactionKey> = {
                let st = lock(&self.proxy);
                st.by_branch
                    .get(key)
                    .and_then(|(id, _)| st.contexts.get(id))
                    .filter(|c| c.is_invite)
                    .map(|c| {
                        c.branches
                            .iter()
                            .filter(|b| b.final_status.is_none() && &b.key != key)
                            .map(|b| b.key.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let now = Instant::now();
            for k in others {
                let _ = self.with_layer(|l| l.cancel(now, &k));
            }
        }
        self.record_final(key, status, Some(resp));
    }

    fn record_final(&self, key: &TransactionKey, status: u16, resp: Option<Response>) {
        {
            let mut st = lock(&self.proxy);
            let Some(&(id, idx)) = st.by_branch.get(key) else {
                return;
            };
            let Some(ctx) = st.contexts.get_mut(&id) else {
                return;
            };
            if let Some(b) = ctx.branches.get_mut(idx)
                && b.final_status.is_none()
            {
                b.final_status = Some(status);
                b.response = resp;
            }
        }
        self.maybe_finish(key);
    }

    /// When every branch has a final response: send the best one (unless a
    /// 2xx already went), or hold a MESSAGE offline; then forget the context.
    fn maybe_finish(&self, key: &TransactionKey) {
        let ctx = {
            let mut st = lock(&self.proxy);
            let Some(&(id, _)) = st.by_branch.get(key) else {
                return;
            };
            let done = st
                .contexts
                .get(&id)
                .is_some_and(|c| c.branches.iter().all(|b| b.final_status.is_some()));
            if !done {
                return;
            }
            let Some(ctx) = st.contexts.remove(&id) else {
                return;
            };
            for b in &ctx.branches {
                st.by_branch.remove(&b.key);
            }
            st.by_server.remove(&ctx.server_key);
            ctx
        };
        if ctx.final_sent {
            return;
        }
        let mut ctx = ctx;
        let hook = ctx.on_final.take();
        let all_unavailable = ctx
            .branches
            .iter()
            .all(|b| matches!(b.final_status, Some(408 | 480 | 503)));
        match (&ctx.on_failure, all_unavailable && !ctx.cancelled) {
            (OnFailure::Taken, _) => {
                if let Some(h) = hook {
                    h(200);
                }
                let ok = Response::to_request(&ctx.request, 200).with_to_tag(&super::ids::tag());
                self.respond(&ctx.server_key, ok);
            }
            (OnFailure::HoldOffline(msg), true) => {
                if let Some(me) = self.arc() {
                    let msg = msg.clone();
                    let server_key = ctx.server_key.clone();
                    let request = ctx.request.clone();
                    tokio::spawn(
                        async move { me.hold_offline(server_key, request, msg, hook).await },
                    );
                }
            }
            _ => {
                let best = ctx
                    .branches
                    .into_iter()
                    .min_by_key(|b| rank(b.final_status.unwrap_or(500)));
                let resp = match best {
                    Some(Branch {
                        response: Some(r), ..
                    }) if r.status != 503 => r,
                    Some(Branch {
                        response: Some(mut r),
                        ..
                    }) => {
                        // A 503 from downstream must not make the caller think
                        // this server is overloaded (RFC 3261 §16.7 step 6).
                        r.status = 500;
                        r.reason = "Server Internal Error".into();
                        r
                    }
                    Some(Branch {
                        final_status: Some(s),
                        ..
                    }) => synthetic(&ctx.request, s),
                    _ => synthetic(&ctx.request, 500),
                };
                if let Some(h) = hook {
                    h(resp.status);
                }
                self.respond(&ctx.server_key, resp);
            }
        }
    }

    /// Handles a CANCEL (RFC 3261 §16.10): 200 to it, and CANCEL for every
    /// branch of the INVITE it names that has no final response.
    pub fn on_cancel(&self, key: &TransactionKey, req: &Request) {
        let invite = lock(&self.layer).invite_for_cancel(key);
        let Some(invite_key) = invite else {
            self.respond(key, Response::to_request(req, 481).with_to_tag(&ids::tag()));
            return;
        };
        self.respond(key, Response::to_request(req, 200));
        let branches: Option<Vec<TransactionKey>> = {
            let mut st = lock(&self.proxy);
            st.by_server
                .get(&invite_key)
                .copied()
                .and_then(|id| st.contexts.get_mut(&id))
                .map(|c| {
                    c.cancelled = true;
                    c.branches
                        .iter()
                        .filter(|b| b.final_status.is_none())
                        .map(|b| b.key.clone())
                        .collect()
                })
        };
        // No context: the INVITE is not proxied yet (still being routed) and
        // will be answered as usual.
        if let Some(keys) = branches {
            let now = Instant::now();
            for k in keys {
                let _ = self.with_layer(|l| l.cancel(now, &k));
            }
        }
    }

    /// Forwards an ACK for a 2xx (end to end, no transaction) along its route.
    pub fn forward_ack(&self, mut ack: Request, flow: &Flow) {
        self.pop_own_routes(&mut ack);
        let Some(target) = self.in_dialog_target(&ack) else {
            tracing::debug!(%flow, uri = %ack.uri, "ACK for unknown target dropped");
            return;
        };
        let (out, _) = self.prepare_forward(&ack, &target, None, false);
        let _ = self.with_layer(|l| l.send_request(Instant::now(), out, target.flow.clone()));
    }

    /// The target of an in-dialog request whose own routes were popped: the
    /// registered device whose Contact is the Request-URI.
    pub fn in_dialog_target(&self, req: &Request) -> Option<Target> {
        let uri = req.uri.as_sip()?;
        let b = self
            .location
            .find_by_contact(uri, switchboard_core::now_ms())?;
        let flow = self.flow_for(&b)?;
        Some(Target {
            uri: req.uri.clone(),
            flow,
            routes: Vec::new(),
        })
    }

    /// Sends a request the server originates to every device of `to` in
    /// parallel and returns the best outcome. It returns as soon as one
    /// device answers 2xx: callers deliver queued messages one after the
    /// other, and a stale registration must not hold the next message back
    /// until its transaction times out (the other branches go on in the
    /// background).
    pub async fn send_to_devices(&self, req: Request, devices: Vec<Target>) -> UacOutcome {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let branches = devices.len();
        for t in devices {
            let (out, _) = self.prepare_forward(&req, &t, None, false);
            let me = self.arc();
            let tx = tx.clone();
            tokio::spawn(async move {
                let outcome = match me {
                    Some(me) => me.send_request(out, t.flow).await,
                    None => UacOutcome::TransportError,
                };
                let _ = tx.send(outcome);
            });
        }
        drop(tx);
        let mut best: Option<UacOutcome> = None;
        for _ in 0..branches {
            let Some(outcome) = rx.recv().await else {
                break;
            };
            if matches!(&outcome, UacOutcome::Response(r) if (200..300).contains(&r.status)) {
                return outcome;
            }
            let better = match (&best, &outcome) {
                (None, _) => true,
                (Some(UacOutcome::Response(b)), UacOutcome::Response(n)) => {
                    rank(n.status) < rank(b.status)
                }
                (Some(UacOutcome::Response(_)), _) => false,
                (Some(_), UacOutcome::Response(_)) => true,
                _ => false,
            };
            if better {
                best = Some(outcome);
            }
        }
        best.unwrap_or(UacOutcome::TransportError)
    }
}

impl SipServer {
    /// Forwards a 2xx to an INVITE that arrived after its client transaction
    /// ended (RFC 3261 §16.7 step 3): statelessly, to the next Via.
    pub fn forward_stray_2xx(&self, mut resp: Response) {
        let Ok(cseq) = resp.headers.cseq() else {
            return;
        };
        if cseq.method != Method::Invite || !(200..300).contains(&resp.status) {
            return;
        }
        let Ok(top) = resp.headers.top_via() else {
            return;
        };
        let ours = top.branch().is_some_and(|b| b.starts_with("z9hG4bKsb"))
            && top
                .host
                .ip()
                .is_some_and(|ip| self.transports.is_local(ip, top.port.unwrap_or(5060)));
        if !ours {
            return;
        }
        remove_first_value(&mut resp.headers, &HeaderName::Via);
        let Ok(next) = resp.headers.top_via() else {
            return;
        };
        let Some(flow) = self.via_destination(&next) else {
            return;
        };
        if let Err(e) = self.transports.send(&flow, resp.to_bytes().into()) {
            tracing::debug!(%flow, error = %e, "stray 2xx not forwarded");
        }
    }

    /// Where a response goes according to a Via (RFC 3261 §18.2.2 with
    /// RFC 3581 rport): `received`/`rport` when present, else the sent-by.
    fn via_destination(&self, via: &switchboard_sip::Via) -> Option<Flow> {
        let ip = via
            .params
            .value("received")
            .and_then(|r| r.trim_matches(['[', ']']).parse().ok())
            .or_else(|| via.host.ip())?;
        let port = via
            .params
            .value("rport")
            .and_then(|p| p.parse().ok())
            .or(via.port)
            .unwrap_or(5060);
        let remote = std::net::SocketAddr::new(ip, port);
        match Transport::parse(&via.transport)? {
            Transport::Udp => self.transports.udp_flow(None, remote),
            t => self.transports.live_flow(&Flow {
                transport: t,
                local: remote,
                remote,
                conn: None,
            }),
        }
    }
}

/// A response the proxy makes up for branches that failed without one
/// (timeout → 408, unreachable → 480).
fn synthetic(req: &Request, status: u16) -> Response {
    let status = if status == 503 { 480 } else { status };
    Response::to_request(req, status).with_to_tag(&ids::tag())
}

/// Removes the first comma-separated value of a header (Route, Via), keeping
/// the rest of that line.
pub fn remove_first_value(headers: &mut switchboard_sip::Headers, name: &HeaderName) {
    let Some(pos) = headers.0.iter().position(|h| &h.name == name) else {
        return;
    };
    let parts = switchboard_sip::text::split_top_level(&headers.0[pos].value, b',');
    if parts.len() <= 1 {
        headers.0.remove(pos);
    } else {
        headers.0[pos].value = parts[1..]
            .iter()
            .map(|p| p.trim())
            .collect::<Vec<_>>()
            .join(", ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_response_order() {
        let mut v = vec![503, 486, 404, 407, 302, 603];
        v.sort_by_key(|s| rank(*s));
        assert_eq!(v, vec![603, 302, 407, 404, 486, 503]);
        assert!(rank(200) < rank(603));
    }

    #[test]
    fn removes_only_the_first_value() {
        let mut h = switchboard_sip::Headers::new();
        h.push(HeaderName::Route, "<sip:a;lr>, <sip:b;lr>");
        h.push(HeaderName::Route, "<sip:c;lr>");
        remove_first_value(&mut h, &HeaderName::Route);
        assert_eq!(
            h.values(&HeaderName::Route).collect::<Vec<_>>(),
            vec!["<sip:b;lr>", "<sip:c;lr>"]
        );
        remove_first_value(&mut h, &HeaderName::Route);
        remove_first_value(&mut h, &HeaderName::Route);
        assert_eq!(h.count(&HeaderName::Route), 0);
    }

    #[test]
    fn loop_hash_changes_with_request_uri() {
        let raw = "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        let Ok(switchboard_sip::Message::Request(mut r)) =
            switchboard_sip::parse_datagram(raw.as_bytes(), &Default::default())
        else {
            panic!("parse")
        };
        let a = loop_hash(&r);
        assert_eq!(a, loop_hash(&r));
        r.uri = Uri::parse("sip:b@y").expect("uri");
        assert_ne!(a, loop_hash(&r));
    }
}
