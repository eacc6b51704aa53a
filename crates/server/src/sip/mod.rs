//! The SIP front door: receives messages from the transports, runs them
//! through the transaction layer, and hands requests to the registrar, the
//! proxy or the server's own services. It translates SIP to the domain core
//! and back; the rules about users, policies and presence live in the core.

pub mod auth;
pub mod conference;
pub mod events;
pub mod ids;
pub mod location;
mod offline;
mod pidf_map;
pub mod presence;
pub mod proxy;
pub mod registrar;
mod routing;
pub mod web_bridge;

use crate::transport::{Flow, Inbound, Transports, lock};
use auth::{AuthOutcome, Authenticator};
use location::Location;
use registrar::RegistrarSettings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use switchboard_core::conference::Conferences;
use switchboard_core::conversation::Conversations;
use switchboard_core::presence::{ContactBook, PresenceEngine};
use switchboard_core::{Address, ContactGate, Directory, OfflineIm, Policies};
use switchboard_sip::parse::{StartLine, parse_head};
use switchboard_sip::transaction::{Event, Timers, TransactionLayer, TxError};
use switchboard_sip::{
    HeaderName, Limits, Message, Method, ParseError, Request, Response, TransactionKey, Uri,
    framing, parse_datagram,
};
use switchboard_store::Store;
use tokio::sync::{Notify, oneshot};

/// Settings of the SIP front door, from the configuration.
#[derive(Debug, Clone)]
pub struct SipSettings {
    pub limits: Limits,
    pub registrar: RegistrarSettings,
    pub max_im_body: usize,
    /// The host name we are known by in URIs (first served domain), used in
    /// Server headers and logs; Via and Record-Route use the flow's address.
    pub server_name: String,
}

/// What a request the server sent itself came to.
#[derive(Debug)]
pub enum UacOutcome {
    /// The final response.
    Response(Response),
    /// No final response in time (timer B/F).
    Timeout,
    /// The request could not be sent.
    TransportError,
}

/// The SIP front door.
pub struct SipServer {
    me: Weak<SipServer>,
    pub transports: Arc<Transports>,
    layer: Mutex<TransactionLayer<Flow>>,
    timer_wake: Notify,
    timer_at: Mutex<Option<Instant>>,
    pub directory: Arc<Directory>,
    pub policies: Arc<Policies>,
    pub store: Arc<dyn Store>,
    pub location: Arc<Location>,
    auth: Authenticator,
    pub settings: SipSettings,
    uac: Mutex<HashMap<TransactionKey, oneshot::Sender<UacOutcome>>>,
    proxy: Mutex<proxy::ProxyState>,
    pub offline: OfflineIm,
    /// Users with an offline delivery run in progress (true: run again).
    delivering: Mutex<HashMap<Address, bool>>,
    gate: Arc<dyn ContactGate>,
    subscriptions: Mutex<events::Subscriptions>,
    publications: Mutex<HashMap<String, presence::Publication>>,
    pub engine: Arc<PresenceEngine>,
    pub contacts: Arc<ContactBook>,
    presence_settings: presence::PresenceSettings,
    pub conferences: Arc<Conferences>,
    pub conversations: Arc<Conversations>,
    legs: Mutex<HashMap<String, conference::Leg>>,
    focus: conference::FocusSettings,
    pub archiver: Arc<switchboard_core::archive::Archiver>,
    /// Points of presence that are not SIP registrations (web sessions).
    pub endpoints: Arc<dyn switchboard_core::endpoints::Endpoints>,
    /// Highest CSeq per (Call-ID, tag) of in-dialog requests relayed, for
    /// requests the server injects into a dialog (escalation NOTIFYs).
    dialog_cseq: Mutex<HashMap<(String, String), u32>>,
}

/// The services the SIP front door is built on.
pub struct Services {
    pub directory: Arc<Directory>,
    pub policies: Arc<Policies>,
    pub store: Arc<dyn Store>,
    pub location: Arc<Location>,
    pub offline: OfflineIm,
    pub engine: Arc<PresenceEngine>,
    pub contacts: Arc<ContactBook>,
    pub presence: presence::PresenceSettings,
    pub conferences: Arc<Conferences>,
    pub conversations: Arc<Conversations>,
    pub focus: conference::FocusSettings,
    pub archiver: Arc<switchboard_core::archive::Archiver>,
    pub endpoints: Arc<dyn switchboard_core::endpoints::Endpoints>,
}

/// How finely transaction timers are scheduled.
const TIMER_GRANULARITY: Duration = Duration::from_millis(10);

/// The option tags this server supports (Supported, and accepted in Require).
pub const SUPPORTED_TAGS: [&str; 3] = ["path", "outbound", "gruu"];

/// Methods the server handles (Allow).
pub const ALLOWED: &str = "REGISTER, OPTIONS, INVITE, ACK, CANCEL, BYE, MESSAGE, INFO, SUBSCRIBE, NOTIFY, PUBLISH, REFER, UPDATE, PRACK";

impl SipServer {
    /// Assembles the front door. `auth_algorithms` in preference order.
    pub fn new(
        transports: Arc<Transports>,
        services: Services,
        settings: SipSettings,
        nonce_lifetime: u64,
        auth_algorithms: Vec<switchboard_sip::digest::Algorithm>,
    ) -> Arc<SipServer> {
        let server = Arc::new_cyclic(|me| SipServer {
            me: me.clone(),
            transports,
            layer: Mutex::new(TransactionLayer::new(Timers::default())),
            timer_wake: Notify::new(),
            timer_at: Mutex::new(None),
            directory: services.directory,
            policies: services.policies,
            store: services.store,
            location: services.location,
            auth: Authenticator::new(nonce_lifetime, auth_algorithms),
            settings,
            uac: Mutex::new(HashMap::new()),
            proxy: Mutex::new(proxy::ProxyState::default()),
            offline: services.offline,
            delivering: Mutex::new(HashMap::new()),
            gate: services.contacts.clone(),
            subscriptions: Mutex::new(events::Subscriptions::default()),
            publications: Mutex::new(HashMap::new()),
            engine: services.engine,
            contacts: services.contacts,
            presence_settings: services.presence,
            conferences: services.conferences,
            conversations: services.conversations,
            legs: Mutex::new(HashMap::new()),
            focus: services.focus,
            archiver: services.archiver,
            endpoints: services.endpoints,
            dialog_cseq: Mutex::new(HashMap::new()),
        });
        server
            .transports
            .set_inbound(Arc::new(InboundAdapter(server.me.clone())));
        server
    }

    /// True for user names no person may take: the conference factory's
    /// and those of conference URIs.
    pub fn is_reserved_user(&self, user: &str) -> bool {
        user.eq_ignore_ascii_case(&self.focus.factory_user) || conference::is_conference_user(user)
    }

    fn arc(&self) -> Option<Arc<SipServer>> {
        self.me.upgrade()
    }

    /// Starts the background tasks: transaction timers, binding expiry, nonce
    /// clean-up.
    pub fn start(self: &Arc<Self>) {
        self.start_offline();
        self.start_events();
        self.start_presence();
        self.start_conferences();
        let me = self.clone();
        tokio::spawn(async move { me.timer_loop().await });
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                me.location.expire(switchboard_core::now_ms());
                n += 1;
                if n.is_multiple_of(60) {
                    me.auth.purge();
                }
            }
        });
    }

    async fn timer_loop(self: Arc<Self>) {
        loop {
            let next = lock(&self.layer).poll_timeout();
            // Timers fire in batches at most every TIMER_GRANULARITY: SIP
            // timers are 500 ms and more, and waking for each of thousands of
            // transactions per second would cost more than the work itself.
            let earliest = Instant::now() + TIMER_GRANULARITY;
            let sleep_until = next
                .map(|n| n.max(earliest))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            *lock(&self.timer_at) = Some(sleep_until);
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until.into()) => {
                    let now = Instant::now();
                    self.with_layer(|l| l.handle_timeout(now));
                }
                _ = self.timer_wake.notified() => {}
            }
        }
    }

    /// Runs `f` on the transaction layer, then sends what it queued and
    /// dispatches what it reported (outside the lock).
    fn with_layer<R>(&self, f: impl FnOnce(&mut TransactionLayer<Flow>) -> R) -> R {
        let (r, transmits, events, next) = {
            let mut l = lock(&self.layer);
            let r = f(&mut l);
            let transmits: Vec<_> = std::iter::from_fn(|| l.poll_transmit()).collect();
            let events: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
            (r, transmits, events, l.poll_timeout())
        };
        for t in transmits {
            if let Err(e) = self.transports.send(&t.flow, t.bytes) {
                tracing::debug!(flow = %t.flow, error = %e, "send failed");
            }
        }
        if let Some(next) = next {
            let current = *lock(&self.timer_at);
            if current.is_none_or(|c| next + TIMER_GRANULARITY < c) {
                *lock(&self.timer_at) = Some(next);
                self.timer_wake.notify_one();
            }
        }
        for e in events {
            self.dispatch(e);
        }
        r
    }

    /// Sends a response on a server transaction.
    pub fn respond(&self, key: &TransactionKey, resp: Response) {
        let now = Instant::now();
        if let Err(e) = self.with_layer(|l| l.respond(now, key, resp)) {
            tracing::debug!(branch = %key.branch, error = %e, "response not sent");
        }
    }

    /// Sends a response outside any transaction (to a request too broken to
    /// have one), back on the flow it came from.
    fn respond_stateless(&self, flow: &Flow, resp: Response) {
        if let Err(e) = self.transports.send(flow, resp.to_bytes().into()) {
            tracing::debug!(%flow, error = %e, "stateless response not sent");
        }
    }

    /// Sends a request as a client transaction and waits for its outcome.
    pub async fn send_request(&self, req: Request, flow: Flow) -> UacOutcome {
        let Some(branch) = req
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
        else {
            return UacOutcome::TransportError;
        };
        let key = TransactionKey::for_client(&branch, &req.method);
        // The waiter must exist before the request leaves: the answer can be
        // dispatched by another task as soon as it is sent.
        let (tx, rx) = oneshot::channel();
        lock(&self.uac).insert(key.clone(), tx);
        let now = Instant::now();
        if self.with_layer(|l| l.send_request(now, req, flow)).is_err() {
            lock(&self.uac).remove(&key);
            return UacOutcome::TransportError;
        }
        // The transaction always ends (timer F/B), but never wait forever on a bug.
        match tokio::time::timeout(Duration::from_secs(40), rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => UacOutcome::TransportError,
            Err(_) => {
                lock(&self.uac).remove(&key);
                UacOutcome::Timeout
            }
        }
    }

    fn handle_datagram(&self, flow: Flow, data: &[u8]) {
        if framing::is_datagram_keepalive(data) {
            return;
        }
        match parse_datagram(data, &self.settings.limits) {
            Ok(m) => self.handle_message(flow, m),
            Err(e) => self.reject_unparsable(&flow, data, &e),
        }
    }

    /// Answers a datagram that failed to parse, if enough of a request
    /// survived to answer it (its head); otherwise drops it.
    fn reject_unparsable(&self, flow: &Flow, data: &[u8], e: &ParseError) {
        tracing::debug!(%flow, error = %e, "unparsable message");
        let relaxed = Limits {
            max_message_bytes: data.len().max(self.settings.limits.max_message_bytes),
            ..self.settings.limits
        };
        // For a version we do not speak, read the rest of the head as if it
        // were 2.0 so that the 505 can be addressed.
        let patched;
        let data = match e {
            ParseError::Version => {
                let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
                let first = String::from_utf8_lossy(&data[..line_end]);
                let Some((start, _)) = first.trim_end().rsplit_once(' ') else {
                    return;
                };
                patched = [format!("{start} SIP/2.0\r").as_bytes(), &data[line_end..]].concat();
                &patched[..]
            }
            _ => data,
        };
        let Ok((head, _)) = parse_head(data, &relaxed) else {
            return;
        };
        let StartLine::Request { method, uri } = head.start else {
            return;
        };
        if method == Method::Ack {
            return;
        }
        let req = Request {
            method,
            uri,
            headers: head.headers,
            body: Vec::new(),
        };
        if req.headers.top_via().is_err() {
            return;
        }
        let d = switchboard_sip::defect_for(e);
        self.respond_stateless(
            flow,
            Response::to_request(&req, d.status).with_reason(d.reason),
        );
    }

    fn handle_message(&self, flow: Flow, msg: Message) {
        let now = Instant::now();
        match msg {
            Message::Request(mut req) => {
                let via = match switchboard_sip::check_request_top_via(&req) {
                    Ok(via) => via,
                    Err(d) => {
                        tracing::debug!(%flow, status = d.status, reason = %d.reason, "rejected request");
                        if req.method != Method::Ack && req.headers.top_via().is_ok() {
                            self.respond_stateless(
                                &flow,
                                Response::to_request(&req, d.status).with_reason(d.reason),
                            );
                        }
                        return;
                    }
                };
                // The key is what the transaction layer would derive from the
                // top Via (received/rport added below do not change it).
                let key = TransactionKey::for_server(&via, &req.method);
                mark_received(&mut req, &flow, via);
                match key {
                    Ok(key) => self.with_layer(|l| l.handle_request_keyed(now, key, req, flow)),
                    // A request without a branch: answer statelessly.
                    Err(_) => self.respond_stateless(
                        &flow,
                        Response::to_request(&req, 400)
                            .with_reason(format!("Bad Via: {}", TxError::NoBranch)),
                    ),
                }
            }
            Message::Response(resp) => {
                if switchboard_sip::check_response(&resp).is_err() {
                    tracing::debug!(%flow, "dropped malformed response");
                    return;
                }
                let _ = self.with_layer(|l| l.handle_response(now, resp, flow));
            }
        }
    }

    fn dispatch(&self, event: Event<Flow>) {
        if self.proxy_event(&event) {
            return;
        }
        match event {
            Event::Request { key, request, flow } => self.on_request(key, request, flow),
            Event::Ack { request, flow } => self.on_ack(request, flow),
            Event::Response { key, response } => {
                if response.status >= 200
                    && let Some(tx) = lock(&self.uac).remove(&key)
                {
                    let _ = tx.send(UacOutcome::Response(response));
                }
            }
            Event::Timeout { key } => {
                if let Some(tx) = lock(&self.uac).remove(&key) {
                    let _ = tx.send(UacOutcome::Timeout);
                }
            }
            Event::TransportError { key } => {
                if let Some(tx) = lock(&self.uac).remove(&key) {
                    let _ = tx.send(UacOutcome::TransportError);
                }
            }
            Event::StrayResponse { response, flow } => {
                tracing::debug!(%flow, status = response.status, "stray response");
                self.forward_stray_2xx(response);
            }
            Event::ServerGaveUp { key } => {
                tracing::debug!(branch = %key.branch, method = %key.method, "server transaction ended without completion");
            }
        }
    }

    fn on_ack(&self, request: Request, flow: Flow) {
        // ACKs for the focus's own 2xx end there.
        if request
            .uri
            .as_sip()
            .is_some_and(|u| self.conference_of_uri(u).is_some())
        {
            return;
        }
        self.forward_ack(request, &flow);
    }

    /// Unsupported option tags in Require (answered with 420).
    fn unsupported_required(req: &Request) -> Vec<String> {
        req.headers
            .tokens(&HeaderName::Require)
            .into_iter()
            .filter(|t| !SUPPORTED_TAGS.contains(&t.as_str()))
            .collect()
    }

    /// True if the Request-URI addresses this server itself (no user part; a
    /// served domain or one of our addresses).
    fn is_for_server(&self, uri: &Uri) -> bool {
        match uri.as_sip() {
            Some(u) if u.user.is_none() => match &u.host {
                switchboard_sip::Host::Name(n) => {
                    self.directory.is_served(&n.to_ascii_lowercase())
                        || n.eq_ignore_ascii_case("localhost")
                }
                _ => true,
            },
            _ => false,
        }
    }

    fn on_request(&self, key: TransactionKey, req: Request, flow: Flow) {
        if req.method != Method::Cancel && self.focus_request(&key, &req, &flow) {
            return;
        }
        match req.method {
            Method::Register => self.on_register(&key, &req, &flow),
            Method::Options if self.is_for_server(&req.uri) => self.on_options(&key, &req),
            Method::Cancel => self.on_cancel(&key, &req),
            Method::Subscribe => self.on_subscribe(&key, &req, &flow),
            Method::Publish => self.on_publish(&key, &req, &flow),
            _ => self.route_request(key, req, flow),
        }
    }

    fn on_options(&self, key: &TransactionKey, req: &Request) {
        let unsupported = Self::unsupported_required(req);
        if !unsupported.is_empty() {
            self.respond(
                key,
                Response::to_request(req, 420)
                    .with_to_tag(&ids::tag())
                    .with_header(HeaderName::Unsupported, unsupported.join(", ")),
            );
            return;
        }
        let resp = Response::to_request(req, 200)
            .with_to_tag(&ids::tag())
            .with_header(HeaderName::Allow, ALLOWED)
            .with_header(HeaderName::Supported, SUPPORTED_TAGS.join(", "))
            .with_header(
                HeaderName::Accept,
                "application/sdp, text/plain, message/cpim",
            )
            .with_header(
                HeaderName::Server,
                concat!("Switchboard/", env!("CARGO_PKG_VERSION")),
            );
        self.respond(key, resp);
    }

    fn on_register(&self, key: &TransactionKey, req: &Request, flow: &Flow) {
        let to = match req.headers.to() {
            Ok(t) => t,
            Err(e) => {
                return self.respond(
                    key,
                    Response::to_request(req, 400).with_reason(format!("{e}")),
                );
            }
        };
        let aor = match to
            .uri
            .as_sip()
            .and_then(|u| u.aor())
            .and_then(|a| Address::parse(&a).ok())
        {
            Some(a) => a,
            None => {
                return self.respond(
                    key,
                    Response::to_request(req, 400).with_reason("Bad To: not a user address"),
                );
            }
        };
        if !self.directory.is_served(aor.domain()) {
            return self.respond(
                key,
                Response::to_request(req, 403)
                    .with_to_tag(&ids::tag())
                    .with_reason("Domain not served here"),
            );
        }
        let unsupported = Self::unsupported_required(req);
        if !unsupported.is_empty() {
            return self.respond(
                key,
                Response::to_request(req, 420)
                    .with_to_tag(&ids::tag())
                    .with_header(HeaderName::Unsupported, unsupported.join(", ")),
            );
        }
        let user = match self
            .auth
            .authenticate(req, aor.domain(), false, &self.directory)
        {
            AuthOutcome::Authenticated(u) => u,
            AuthOutcome::Challenge(c) => return self.respond(key, *c),
        };
        if user != aor {
            return self.respond(
                key,
                Response::to_request(req, 403)
                    .with_to_tag(&ids::tag())
                    .with_reason("Not allowed to register this address"),
            );
        }
        let resp = registrar::register(
            req,
            flow,
            &aor,
            &self.location,
            &self.transports,
            &self.settings.registrar,
            switchboard_core::now_ms(),
        );
        self.respond(key, resp);
    }

    fn on_connection_closed(&self, flow: &Flow) {
        if let Some(conn) = flow.conn {
            self.location.flow_failed(conn);
        }
    }
}

/// Records where a request really came from in its top Via (RFC 3261
/// §18.2.1 `received`, RFC 3581 `rport`), so that responses and the client
/// learn the address seen from here (the NAT's). `via` is the request's top
/// Via, already parsed.
fn mark_received(req: &mut Request, flow: &Flow, mut via: switchboard_sip::Via) {
    let rport = via.params.get("rport").is_some();
    let ip = flow.remote.ip();
    let differs = via.host.ip() != Some(ip);
    if !rport && !differs {
        return;
    }
    via.params.set("received", Some(&ip.to_string()));
    if rport {
        via.params
            .set("rport", Some(&flow.remote.port().to_string()));
    }
    proxy::remove_first_value(&mut req.headers, &HeaderName::Via);
    req.headers.push_front(HeaderName::Via, via.to_string());
}

/// Connects the transports to the SIP front door without a reference cycle.
struct InboundAdapter(Weak<SipServer>);

impl Inbound for InboundAdapter {
    fn on_datagram(&self, flow: Flow, data: &[u8]) {
        if let Some(s) = self.0.upgrade() {
            s.handle_datagram(flow, data);
        }
    }

    fn on_message(&self, flow: Flow, message: Message) {
        if let Some(s) = self.0.upgrade() {
            s.handle_message(flow, message);
        }
    }

    fn on_framing_error(&self, flow: Flow, error: ParseError) {
        // Nothing can be answered on a stream whose framing is lost; the
        // transport closes it.
        tracing::debug!(%flow, %error, "framing error");
    }

    fn on_closed(&self, flow: Flow) {
        if let Some(s) = self.0.upgrade() {
            s.on_connection_closed(&flow);
        }
    }
}
