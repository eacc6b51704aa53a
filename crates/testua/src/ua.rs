//! The user agent: its socket, the receiver task, client transactions with
//! retransmission and digest authentication, request builders and the
//! helpers tests call (REGISTER, MESSAGE, INVITE, SUBSCRIBE, PUBLISH).

use crate::auth::{self, Chosen, CredInput};
use crate::config::{AuthOptions, RegisterOptions, Transport, UaConfig};
use crate::dialog::Dialog;
use crate::error::UaError;
use crate::incoming::Incoming;
use crate::link::{self, Link, Reader};
use crate::util::{new_branch, new_instance_urn, new_tag, random_hex};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use switchboard_sip::framing::{self, Frame, StreamFramer};
use switchboard_sip::message::TransactionKey;
use switchboard_sip::transaction::ack_for_non2xx;
use switchboard_sip::{
    CSeq, HeaderName, Host, Limits, Message, Method, NameAddr, ParseError, Request, Response,
    SipUri, Uri, Via, check_response, parse_datagram,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Converts what tests write as a request target into a [`Uri`].
pub trait IntoUri {
    /// The URI, or a parse error.
    fn into_uri(self) -> Result<Uri, UaError>;
}

impl IntoUri for Uri {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(self)
    }
}

impl IntoUri for &Uri {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(self.clone())
    }
}

impl IntoUri for SipUri {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(Uri::Sip(self))
    }
}

impl IntoUri for &SipUri {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(Uri::Sip(self.clone()))
    }
}

impl IntoUri for &str {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(Uri::parse(self)?)
    }
}

impl IntoUri for String {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(Uri::parse(&self)?)
    }
}

impl IntoUri for &String {
    fn into_uri(self) -> Result<Uri, UaError> {
        Ok(Uri::parse(self)?)
    }
}

/// A completed client transaction.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request as last sent (with credentials, new branch and CSeq if a
    /// challenge was answered).
    pub request: Request,
    /// Provisional responses received for that last request, in order.
    pub provisional: Vec<Response>,
    /// The final response.
    pub response: Response,
    /// The 401/407 that was answered with credentials, if any.
    pub challenge: Option<Response>,
}

/// Input that no transaction or request queue took: responses matching no
/// pending client transaction (answers to [`Ua::send_raw`], late or extra
/// responses) and bytes that do not parse.
#[derive(Debug, Clone)]
pub struct Unsolicited {
    /// The bytes: the datagram over UDP; over a stream the re-serialised
    /// message, or the unframeable bytes.
    pub bytes: Vec<u8>,
    /// The parsed message, if it parsed.
    pub message: Option<Message>,
    /// Why it was not accepted (parse or framing error, failed response check).
    pub error: Option<ParseError>,
    /// Where it came from.
    pub source: SocketAddr,
}

impl Unsolicited {
    /// The response, if this is a parsed response.
    pub fn response(&self) -> Option<&Response> {
        match &self.message {
            Some(Message::Response(r)) => Some(r),
            _ => None,
        }
    }
}

/// The SDP offer of an IM session (RFC 4975 style, no MSRP: `m=message … sip null`).
pub fn im_sdp(ip: IpAddr) -> String {
    let (net, addr) = match ip {
        IpAddr::V4(a) => ("IP4", a.to_string()),
        IpAddr::V6(a) => ("IP6", a.to_string()),
    };
    let session = rand::random::<u32>();
    format!(
        "v=0\r\no=- {session} 1 IN {net} {addr}\r\ns=-\r\nc=IN {net} {addr}\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain\r\n"
    )
}

/// Most entries kept in the bounded caches and histories.
const CACHE_CAP: usize = 256;
const HISTORY_CAP: usize = 10_000;

/// What we answered to one received request, for retransmissions.
#[derive(Debug)]
pub(crate) struct ServerTx {
    last: Option<(Vec<u8>, SocketAddr)>,
    final_status: Option<u16>,
    created: Instant,
}

/// An INVITE that got a 2xx, for retransmitted or forked 2xx responses.
#[derive(Debug)]
pub(crate) struct InviteRecord {
    call_id: String,
    seq: u32,
    invite: Request,
    /// ACK bytes per remote tag.
    acks: Vec<(String, Vec<u8>)>,
}

/// Mutable state shared by the handles and the receiver task.
#[derive(Default)]
pub(crate) struct State {
    pending: HashMap<(String, Method), mpsc::UnboundedSender<Response>>,
    server_txs: HashMap<TransactionKey, ServerTx>,
    pub(crate) ack_waiters: HashMap<(String, u32), oneshot::Sender<Request>>,
    non2xx_acks: VecDeque<(String, Vec<u8>)>,
    invites: VecDeque<InviteRecord>,
    incoming: VecDeque<(Request, SocketAddr)>,
    unsolicited: VecDeque<Unsolicited>,
    history: Vec<Request>,
    dropped: Vec<Unsolicited>,
    auto_answer: HashMap<Method, u16>,
    auth: AuthOptions,
    nonce_counts: HashMap<String, u32>,
    last_challenge: Option<Chosen>,
    last_credentials: Option<(HeaderName, String)>,
    reg_call_id: String,
    reg_cseq: u32,
    closed: Option<String>,
    pongs: u64,
}

/// Everything behind a [`Ua`] handle.
pub(crate) struct Shared {
    pub(crate) cfg: UaConfig,
    pub(crate) local: SocketAddr,
    pub(crate) link: Link,
    aor: SipUri,
    instance: String,
    state: Mutex<State>,
    incoming_notify: Notify,
    unsolicited_notify: Notify,
    pong_notify: Notify,
    closed_notify: Notify,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = task.take() {
            t.abort();
        }
    }
}

/// A SIP user agent for tests. Cheap to clone: clones share the socket and
/// state. The socket or connection closes when the last clone (including
/// those held by [`Dialog`]s and [`Incoming`]s) is dropped, or on [`Ua::close`].
#[derive(Clone)]
pub struct Ua(pub(crate) Arc<Shared>);

impl fmt::Debug for Ua {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ua")
            .field("aor", &self.0.aor.to_string())
            .field("transport", &self.0.cfg.transport)
            .field("local", &self.0.local)
            .field("server", &self.0.cfg.server)
            .finish()
    }
}

/// Removes a pending client transaction when its waiter goes away.
struct PendingGuard<'a> {
    shared: &'a Shared,
    key: (String, Method),
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.key);
    }
}

/// Waits until `check` yields something, re-checking whenever `notify` fires,
/// until `deadline`. Returns the last check's result on timeout.
async fn wait_for<T>(
    notify: &Notify,
    deadline: Instant,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(v) = check() {
            return Some(v);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return check();
        }
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() >= CACHE_CAP {
        q.pop_front();
    }
    q.push_back(item);
}

/// Replaces the branch of the topmost Via. Every Via line is rewritten one
/// value per line (order kept), so comma-joined values are handled too.
fn set_top_via_branch(req: &mut Request, branch: &str) -> Result<(), UaError> {
    let mut values: Vec<String> = req
        .headers
        .values(&HeaderName::Via)
        .map(str::to_owned)
        .collect();
    let first = values
        .first_mut()
        .ok_or_else(|| UaError::Protocol("request has no Via".into()))?;
    let mut via = Via::parse(first)?;
    via.params.set("branch", Some(branch));
    *first = via.to_string();
    let idx = req
        .headers
        .0
        .iter()
        .position(|h| h.name == HeaderName::Via)
        .unwrap_or(0);
    req.headers.remove(&HeaderName::Via);
    for (i, v) in values.into_iter().enumerate() {
        req.headers.0.insert(
            idx + i,
            switchboard_sip::Header {
                name: HeaderName::Via,
                value: v,
            },
        );
    }
    Ok(())
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed_error(&self) -> UaError {
        UaError::Closed(
            self.lock()
                .closed
                .clone()
                .unwrap_or_else(|| "receiver stopped".into()),
        )
    }

    fn mark_closed(&self, reason: String) {
        {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some(reason);
            }
            st.pending.clear();
            st.ack_waiters.clear();
        }
        for n in [
            &self.incoming_notify,
            &self.unsolicited_notify,
            &self.pong_notify,
            &self.closed_notify,
        ] {
            n.notify_waiters();
        }
    }

    /// Sends a response to a received request and remembers it for
    /// retransmissions of that request.
    pub(crate) async fn send_response(
        &self,
        key: Option<&TransactionKey>,
        resp: &Response,
        dest: SocketAddr,
    ) -> Result<(), UaError> {
        let bytes = resp.to_bytes();
        if let Some(k) = key {
            let mut st = self.lock();
            let tx = st.server_txs.entry(k.clone()).or_insert(ServerTx {
                last: None,
                final_status: None,
                created: Instant::now(),
            });
            tx.last = Some((bytes.clone(), dest));
            if resp.status >= 200 {
                tx.final_status = Some(resp.status);
            }
        }
        self.link.send(&bytes, Some(dest)).await
    }

    /// Runs one client transaction: sends, retransmits over UDP, collects
    /// provisional responses, returns the final one. Sends the ACK for a
    /// non-2xx final response to INVITE.
    async fn run_transaction(&self, req: &Request) -> Result<(Vec<Response>, Response), UaError> {
        if req.method == Method::Ack {
            return Err(UaError::Protocol(
                "ACK is not a transaction: use Ua::send_only".into(),
            ));
        }
        let via = req.headers.top_via()?;
        let branch = via
            .branch()
            .ok_or_else(|| UaError::Protocol("request has no Via branch".into()))?
            .to_owned();
        let cseq = req.headers.cseq()?;
        let key = (branch.clone(), cseq.method.clone());
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut st = self.lock();
            if let Some(reason) = &st.closed {
                return Err(UaError::Closed(reason.clone()));
            }
            st.pending.insert(key.clone(), tx);
        }
        let _guard = PendingGuard { shared: self, key };
        let bytes = req.to_bytes();
        self.link.send(&bytes, None).await?;
        let timers = self.cfg.timers;
        let start = Instant::now();
        let deadline = start + timers.transaction_timeout;
        let invite = req.method == Method::Invite;
        let mut retransmit = !self.cfg.transport.is_reliable();
        let mut interval = timers.t1;
        let mut next = start + interval;
        let mut provisional = Vec::new();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(resp) = msg else {
                        return Err(self.closed_error());
                    };
                    if resp.status < 200 {
                        if invite {
                            retransmit = false;
                        } else {
                            interval = timers.t2;
                        }
                        provisional.push(resp);
                        continue;
                    }
                    if invite && resp.status >= 300 {
                        let ack = ack_for_non2xx(req, &resp).to_bytes();
                        push_capped(&mut self.lock().non2xx_acks, (branch.clone(), ack.clone()));
                        self.link.send(&ack, None).await?;
                    }
                    return Ok((provisional, resp));
                }
                _ = tokio::time::sleep_until(next), if retransmit => {
                    self.link.send(&bytes, None).await?;
                    interval = if invite { interval * 2 } else { (interval * 2).min(timers.t2) };
                    next = Instant::now() + interval;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(UaError::Timeout(format!(
                        "no final response to {} (CSeq {}, branch {branch}) within {:?}",
                        req.method, cseq.seq, timers.transaction_timeout
                    )));
                }
            }
        }
    }

    /// Credentials for `req` answering `chosen`, per `opts`; remembered as
    /// the last challenge and credentials.
    fn compute_credentials(
        &self,
        st: &mut State,
        chosen: &Chosen,
        req: &Request,
        opts: &AuthOptions,
    ) -> String {
        let nonce = opts
            .nonce
            .clone()
            .or_else(|| chosen.challenge.param("nonce").map(str::to_owned))
            .unwrap_or_default();
        let nc = opts.nc.unwrap_or_else(|| {
            let c = st.nonce_counts.entry(nonce.clone()).or_insert(0);
            *c += 1;
            *c
        });
        let cnonce = opts.cnonce.clone().unwrap_or_else(|| random_hex(8));
        let uri = req.uri.to_string();
        let cred = auth::credentials(
            chosen,
            &CredInput {
                method: req.method.as_str(),
                uri: &uri,
                username: self.cfg.auth_username(),
                password: opts.password.as_deref().unwrap_or(&self.cfg.password),
                nonce: &nonce,
                nc,
                cnonce: &cnonce,
            },
        )
        .to_string();
        st.last_challenge = Some(chosen.clone());
        st.last_credentials = Some((chosen.cred_header.clone(), cred.clone()));
        cred
    }

    /// The request to send again in answer to a 401/407, or `None` if the
    /// challenge cannot be answered.
    fn answer_challenge(
        &self,
        req: &Request,
        resp: &Response,
        opts: &AuthOptions,
    ) -> Result<Option<Request>, UaError> {
        let Some(chosen) = auth::choose(resp, opts) else {
            return Ok(None);
        };
        let mut retry = req.clone();
        set_top_via_branch(&mut retry, &new_branch())?;
        let cseq = retry.headers.cseq()?;
        retry.headers.set(
            HeaderName::CSeq,
            CSeq {
                seq: cseq.seq + 1,
                method: cseq.method,
            }
            .to_string(),
        );
        let realm = chosen.challenge.param("realm").unwrap_or("").to_owned();
        retry.headers.0.retain(|h| {
            h.name != chosen.cred_header
                || auth::realm_of(&h.value, &h.name).as_deref() != Some(realm.as_str())
        });
        let mut st = self.lock();
        let replay = if opts.replay_previous {
            st.last_credentials
                .as_ref()
                .filter(|(name, _)| *name == chosen.cred_header)
                .map(|(_, v)| v.clone())
        } else {
            None
        };
        let value = match replay {
            Some(v) => v,
            None => self.compute_credentials(&mut st, &chosen, &retry, opts),
        };
        retry.headers.push(chosen.cred_header.clone(), value);
        Ok(Some(retry))
    }

    /// Adds credentials from the last answered challenge (preemptive mode).
    fn add_preemptive(&self, req: &mut Request, opts: &AuthOptions) {
        let mut st = self.lock();
        let Some(chosen) = st.last_challenge.clone() else {
            return;
        };
        if req.headers.contains(&chosen.cred_header) {
            return;
        }
        let value = self.compute_credentials(&mut st, &chosen, req, opts);
        req.headers.push(chosen.cred_header.clone(), value);
    }

    /// A client transaction with digest authentication.
    async fn transact(&self, mut req: Request, opts: &AuthOptions) -> Result<Exchange, UaError> {
        if opts.preemptive {
            self.add_preemptive(&mut req, opts);
        }
        let (mut provisional, mut response) = self.run_transaction(&req).await?;
        let mut challenge = None;
        if matches!(response.status, 401 | 407)
            && opts.auto
            && let Some(retry) = self.answer_challenge(&req, &response, opts)?
        {
            challenge = Some(response);
            req = retry;
            (provisional, response) = self.run_transaction(&req).await?;
        }
        if req.method == Method::Register
            && let (Ok(cid), Ok(cseq)) = (req.headers.call_id(), req.headers.cseq())
        {
            let mut st = self.lock();
            if st.reg_call_id == cid {
                st.reg_cseq = st.reg_cseq.max(cseq.seq);
            }
        }
        Ok(Exchange {
            request: req,
            provisional,
            response,
            challenge,
        })
    }

    fn note_pong(&self) {
        self.lock().pongs += 1;
        self.pong_notify.notify_waiters();
    }

    fn record_unsolicited(&self, item: Unsolicited) {
        {
            let mut st = self.lock();
            if item.error.is_some() && st.dropped.len() < HISTORY_CAP {
                st.dropped.push(item.clone());
            }
            push_capped(&mut st.unsolicited, item);
        }
        self.unsolicited_notify.notify_waiters();
    }

    async fn on_datagram(self: &Arc<Self>, bytes: &[u8], from: SocketAddr) {
        if framing::is_datagram_keepalive(bytes) {
            return;
        }
        match parse_datagram(bytes, &Limits::default()) {
            Ok(msg) => self.on_message(msg, bytes.to_vec(), from).await,
            Err(e) => self.record_unsolicited(Unsolicited {
                bytes: bytes.to_vec(),
                message: None,
                error: Some(e),
                source: from,
            }),
        }
    }

    async fn on_message(self: &Arc<Self>, msg: Message, raw: Vec<u8>, from: SocketAddr) {
        match msg {
            Message::Response(resp) => self.on_response(resp, raw, from).await,
            Message::Request(req) => self.on_request(req, from).await,
        }
    }

    async fn on_response(self: &Arc<Self>, resp: Response, raw: Vec<u8>, from: SocketAddr) {
        if let Err(e) = check_response(&resp) {
            self.record_unsolicited(Unsolicited {
                bytes: raw,
                message: Some(Message::Response(resp)),
                error: Some(e),
                source: from,
            });
            return;
        }
        let (Ok(via), Ok(cseq)) = (resp.headers.top_via(), resp.headers.cseq()) else {
            return;
        };
        let branch = via.branch().unwrap_or("").to_owned();
        let mut resp = resp;
        let sender = self
            .lock()
            .pending
            .get(&(branch.clone(), cseq.method.clone()))
            .cloned();
        if let Some(tx) = sender {
            match tx.send(resp) {
                Ok(()) => return,
                Err(back) => resp = back.0,
            }
        }
        if cseq.method == Method::Invite && resp.status >= 300 {
            let ack = self
                .lock()
                .non2xx_acks
                .iter()
                .find(|(b, _)| *b == branch)
                .map(|(_, a)| a.clone());
            if let Some(ack) = ack {
                let _ = self.link.send(&ack, None).await;
                return;
            }
        }
        if cseq.method == Method::Invite
            && (200..300).contains(&resp.status)
            && self.on_stray_2xx(&resp, &cseq).await
        {
            return;
        }
        self.record_unsolicited(Unsolicited {
            bytes: raw,
            message: Some(Message::Response(resp)),
            error: None,
            source: from,
        });
    }

    /// A 2xx to an INVITE whose transaction is over: a retransmission (ACK
    /// again, returns true) or a 2xx from another fork (ACK it, then BYE it;
    /// returns false so that it is also recorded as unsolicited).
    async fn on_stray_2xx(self: &Arc<Self>, resp: &Response, cseq: &CSeq) -> bool {
        let Ok(call_id) = resp.headers.call_id() else {
            return false;
        };
        let to_tag = resp
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_default();
        let (known_ack, invite) = {
            let st = self.lock();
            let Some(rec) = st
                .invites
                .iter()
                .find(|r| r.call_id == call_id && r.seq == cseq.seq)
            else {
                return false;
            };
            (
                rec.acks
                    .iter()
                    .find(|(t, _)| *t == to_tag)
                    .map(|(_, a)| a.clone()),
                rec.invite.clone(),
            )
        };
        if let Some(ack) = known_ack {
            let _ = self.link.send(&ack, None).await;
            return true;
        }
        let ua = Ua(self.clone());
        let Ok(mut dialog) = Dialog::from_uac(ua, &invite, resp) else {
            return false;
        };
        let ack = dialog.ack_for(&invite).to_bytes();
        {
            let mut st = self.lock();
            if let Some(rec) = st
                .invites
                .iter_mut()
                .find(|r| r.call_id == call_id && r.seq == cseq.seq)
            {
                rec.acks.push((to_tag, ack.clone()));
            }
        }
        let _ = self.link.send(&ack, None).await;
        tokio::spawn(async move {
            let _ = dialog.bye().await;
        });
        false
    }

    async fn on_request(self: &Arc<Self>, req: Request, from: SocketAddr) {
        match self.classify_request(&req) {
            RequestAction::Drop => {}
            RequestAction::Resend(bytes, dest) => {
                let _ = self.link.send(&bytes, Some(dest)).await;
            }
            RequestAction::AutoAnswer(status) => {
                let incoming = Incoming::new(Ua(self.clone()), req, from);
                let _ = incoming.respond(status).await;
            }
            RequestAction::Queue => {
                self.lock().incoming.push_back((req, from));
                self.incoming_notify.notify_waiters();
            }
        }
    }

    /// Decides, under the lock, what to do with a received request (records
    /// it in the history, absorbs retransmissions, hands ACKs to waiters).
    fn classify_request(&self, req: &Request) -> RequestAction {
        let key = req.transaction_key().ok();
        let mut st = self.lock();
        if st.history.len() < HISTORY_CAP {
            st.history.push(req.clone());
        }
        if req.method == Method::Ack {
            if let Some(k) = &key
                && st
                    .server_txs
                    .get(k)
                    .is_some_and(|t| t.final_status.is_some_and(|s| s >= 300))
            {
                return RequestAction::Drop; // the ACK of a non-2xx final response: hop-by-hop.
            }
            if let (Ok(cid), Ok(cseq)) = (req.headers.call_id(), req.headers.cseq())
                && let Some(waiter) = st.ack_waiters.remove(&(cid.to_owned(), cseq.seq))
            {
                let _ = waiter.send(req.clone());
                return RequestAction::Drop;
            }
            return RequestAction::Queue;
        }
        if let Some(k) = &key {
            if let Some(tx) = st.server_txs.get(k) {
                return match tx.last.clone() {
                    Some((bytes, dest)) => RequestAction::Resend(bytes, dest),
                    None => RequestAction::Drop,
                };
            }
            if st.server_txs.len() >= CACHE_CAP * 4 {
                let horizon = self.cfg.timers.transaction_timeout * 2;
                st.server_txs.retain(|_, t| t.created.elapsed() < horizon);
            }
            st.server_txs.insert(
                k.clone(),
                ServerTx {
                    last: None,
                    final_status: None,
                    created: Instant::now(),
                },
            );
        }
        match st.auto_answer.get(&req.method) {
            Some(&status) => RequestAction::AutoAnswer(status),
            None => RequestAction::Queue,
        }
    }
}

/// What the receiver does with a request.
enum RequestAction {
    /// Nothing more (absorbed retransmission, ACK handed to its waiter).
    Drop,
    /// A retransmission we already answered: send the answer again.
    Resend(Vec<u8>, SocketAddr),
    /// Answer with this status at once.
    AutoAnswer(u16),
    /// Queue for the test.
    Queue,
}

async fn receive_loop(weak: Weak<Shared>, reader: Reader, server: SocketAddr) {
    match reader {
        Reader::Udp(socket) => {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = match socket.recv_from(&mut buf).await {
                    Ok(x) => x,
                    Err(_) => {
                        // ICMP errors surface here on some systems; keep going.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let Some(shared) = weak.upgrade() else { return };
                shared.on_datagram(&buf[..n], from).await;
            }
        }
        Reader::Stream(mut r) => {
            let mut framer = StreamFramer::new(Limits::default());
            let mut buf = vec![0u8; 65_536];
            // StreamFramer holds back a trailing lone CRLF (it cannot tell a
            // pong from the first half of a ping yet); count it as a pong here.
            let mut last_two = [0u8; 2];
            let mut early_pong = false;
            loop {
                let read = r.read(&mut buf).await;
                let Some(shared) = weak.upgrade() else { return };
                let n = match read {
                    Ok(0) => {
                        shared.mark_closed("closed by the server".into());
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        shared.mark_closed(format!("read error: {e}"));
                        return;
                    }
                };
                let data = &buf[..n];
                if n >= 2 {
                    last_two = [data[n - 2], data[n - 1]];
                } else {
                    last_two = [last_two[1], data[0]];
                }
                framer.push(data);
                let mut pending_bytes = data.to_vec();
                while let Some(frame) = framer.next_frame() {
                    match frame {
                        Ok(Frame::Ping) => {
                            early_pong = false;
                            let _ = shared.link.send(framing::PONG, None).await;
                        }
                        Ok(Frame::Pong) => {
                            if !std::mem::take(&mut early_pong) {
                                shared.note_pong();
                            }
                        }
                        Ok(Frame::Message(m)) => {
                            early_pong = false;
                            let raw = m.to_bytes();
                            shared.on_message(m, raw, server).await;
                        }
                        Err(e) => {
                            // Framing is lost: record what we had and start afresh.
                            shared.record_unsolicited(Unsolicited {
                                bytes: std::mem::take(&mut pending_bytes),
                                message: None,
                                error: Some(e),
                                source: server,
                            });
                            framer = StreamFramer::new(Limits::default());
                            break;
                        }
                    }
                }
                if framer.buffered() == 2 && last_two == *b"\r\n" && !early_pong {
                    early_pong = true;
                    shared.note_pong();
                }
            }
        }
    }
}

impl Ua {
    /// Opens the socket (UDP) or the connection (TCP, TLS) to the server and
    /// starts the receiver task.
    pub async fn connect(cfg: UaConfig) -> Result<Ua, UaError> {
        if cfg.user.is_empty() {
            return Err(UaError::Protocol("empty user name".into()));
        }
        let mut aor = SipUri::parse(&format!("sip:{}", cfg.domain))?;
        aor.user = Some(cfg.user.clone());
        let (link, reader, local) = link::open(&cfg).await?;
        let instance = cfg.instance.clone().unwrap_or_else(new_instance_urn);
        let state = State {
            auth: cfg.auth.clone(),
            reg_call_id: random_hex(16),
            ..State::default()
        };
        let server = cfg.server;
        let shared = Arc::new(Shared {
            cfg,
            local,
            link,
            aor,
            instance,
            state: Mutex::new(state),
            incoming_notify: Notify::new(),
            unsolicited_notify: Notify::new(),
            pong_notify: Notify::new(),
            closed_notify: Notify::new(),
            task: Mutex::new(None),
        });
        let handle = tokio::spawn(receive_loop(Arc::downgrade(&shared), reader, server));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.abort_handle());
        Ok(Ua(shared))
    }

    /// The configuration the agent was started with.
    pub fn config(&self) -> &UaConfig {
        &self.0.cfg
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.0.cfg.transport
    }

    /// The local address of the socket or connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The address-of-record, `sip:user@domain`.
    pub fn aor(&self) -> SipUri {
        self.0.aor.clone()
    }

    /// The `+sip.instance` URN of this agent.
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    /// The contact URI: `sip:user@local_ip:port;transport=…`.
    pub fn contact_uri(&self) -> SipUri {
        let mut u = SipUri::new(Some(&self.0.cfg.user), Host::from(self.0.local.ip()));
        u.port = Some(self.0.local.port());
        u.params
            .set("transport", Some(self.0.cfg.transport.uri_param()));
        u
    }

    /// The Contact header value: [`Ua::contact_uri`] with `+sip.instance`.
    pub fn contact(&self) -> NameAddr {
        let mut c = NameAddr::new(Uri::Sip(self.contact_uri()));
        c.params
            .set("+sip.instance", Some(&format!("\"<{}>\"", self.0.instance)));
        c
    }

    /// The standard IM-session SDP offer for this agent's address.
    pub fn im_sdp(&self) -> String {
        im_sdp(self.0.local.ip())
    }

    /// A Via value for this agent with the given branch (`rport` included).
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {}:{};rport;branch={branch}",
            self.0.cfg.transport.via_token(),
            Host::from(self.0.local.ip()),
            self.0.local.port()
        )
    }

    /// A fresh request from this agent: Via (new branch), Max-Forwards 70,
    /// From (AOR, display name, new tag), To (the target), a new Call-ID and
    /// CSeq 1 — or, for REGISTER, the agent's registration Call-ID and next
    /// CSeq with To = From = AOR — Contact for INVITE, SUBSCRIBE, REFER,
    /// NOTIFY, UPDATE and REGISTER, and User-Agent. Mutate it freely before
    /// sending it with [`Ua::send_request`].
    pub fn new_request(&self, method: Method, target: impl IntoUri) -> Result<Request, UaError> {
        let uri = target.into_uri()?;
        let mut req = Request::new(method.clone(), uri.clone());
        req.headers.push(HeaderName::Via, self.via(&new_branch()));
        req.headers.push(HeaderName::MaxForwards, "70");
        let (call_id, seq) = if method == Method::Register {
            let mut st = self.0.lock();
            st.reg_cseq += 1;
            (st.reg_call_id.clone(), st.reg_cseq)
        } else {
            (random_hex(16), 1)
        };
        let mut from = NameAddr::new(Uri::Sip(self.aor()));
        from.display = self.0.cfg.display_name.clone();
        from.params.set("tag", Some(&new_tag()));
        let to = if method == Method::Register {
            NameAddr::new(Uri::Sip(self.aor()))
        } else {
            NameAddr::new(uri)
        };
        req.headers.push(HeaderName::From, from.to_string());
        req.headers.push(HeaderName::To, to.to_string());
        req.headers.push(HeaderName::CallId, call_id);
        req.headers.push(
            HeaderName::CSeq,
            CSeq {
                seq,
                method: method.clone(),
            }
            .to_string(),
        );
        if matches!(
            method,
            Method::Invite
                | Method::Subscribe
                | Method::Refer
                | Method::Notify
                | Method::Update
                | Method::Register
        ) {
            req.headers
                .push(HeaderName::Contact, self.contact().to_string());
        }
        if let Some(agent) = &self.0.cfg.user_agent {
            req.headers.push(HeaderName::UserAgent, agent.clone());
        }
        Ok(req)
    }

    /// Sends a request as a client transaction (retransmitting over UDP) and
    /// answers one digest challenge per the agent's [`AuthOptions`].
    pub async fn send_request(&self, req: Request) -> Result<Exchange, UaError> {
        let opts = self.auth_options();
        self.0.transact(req, &opts).await
    }

    /// As [`Ua::send_request`] with the given authentication options.
    pub async fn send_request_with(
        &self,
        req: Request,
        opts: &AuthOptions,
    ) -> Result<Exchange, UaError> {
        self.0.transact(req, opts).await
    }

    /// Sends a request and returns its final response (any status).
    pub async fn request(&self, req: Request) -> Result<Response, UaError> {
        Ok(self.send_request(req).await?.response)
    }

    /// Sends a request without a transaction: no retransmission, no wait
    /// (for ACK, or a request whose answer the test reads with [`Ua::recv_raw`]).
    pub async fn send_only(&self, req: &Request) -> Result<(), UaError> {
        self.0.link.send(&req.to_bytes(), None).await
    }

    /// The authentication options in force.
    pub fn auth_options(&self) -> AuthOptions {
        self.0.lock().auth.clone()
    }

    /// Replaces the authentication options.
    pub fn set_auth_options(&self, opts: AuthOptions) {
        self.0.lock().auth = opts;
    }

    /// The last credentials header the agent sent: its name
    /// (`Authorization`/`Proxy-Authorization`) and value.
    pub fn last_credentials(&self) -> Option<(HeaderName, String)> {
        self.0.lock().last_credentials.clone()
    }

    /// The REGISTER [`Ua::register_with`] would send (consumes a CSeq).
    pub fn register_request(&self, opts: &RegisterOptions) -> Result<Request, UaError> {
        let mut req = self.new_request(Method::Register, self.registrar_uri()?)?;
        if let Some(cid) = &opts.call_id {
            req.headers.set(HeaderName::CallId, cid.clone());
        }
        let contact = match &opts.contact {
            Some(raw) => raw.clone(),
            None => {
                let mut c = self.contact();
                if !opts.instance {
                    c.params.remove("+sip.instance");
                }
                if opts.outbound() {
                    c.params.set("reg-id", Some("1"));
                }
                for (n, v) in &opts.contact_params {
                    c.params.set(n, v.as_deref());
                }
                c.to_string()
            }
        };
        req.headers.set(HeaderName::Contact, contact);
        req.headers
            .push(HeaderName::Expires, opts.expires.to_string());
        if !opts.supported.is_empty() {
            req.headers
                .push(HeaderName::Supported, opts.supported.join(", "));
        }
        for (n, v) in &opts.headers {
            req.headers.push(n.clone(), v.clone());
        }
        Ok(req)
    }

    /// `sip:domain`, the REGISTER Request-URI.
    pub fn registrar_uri(&self) -> Result<Uri, UaError> {
        Ok(Uri::parse(&format!("sip:{}", self.0.cfg.domain))?)
    }

    /// Registers this agent's contact for `expires` seconds; returns the
    /// final response (any status).
    pub async fn register(&self, expires: u32) -> Result<Response, UaError> {
        self.register_with(&RegisterOptions::new(expires)).await
    }

    /// Registers with options; the Call-ID stays the same and CSeq grows
    /// across registrations of this agent, as real clients do.
    pub async fn register_with(&self, opts: &RegisterOptions) -> Result<Response, UaError> {
        let req = self.register_request(opts)?;
        self.request(req).await
    }

    /// Removes this agent's binding (its Contact with Expires: 0).
    pub async fn unregister(&self) -> Result<Response, UaError> {
        self.register(0).await
    }

    /// Removes every binding of the AOR (`Contact: *`, Expires: 0).
    pub async fn unregister_all(&self) -> Result<Response, UaError> {
        let opts = RegisterOptions {
            contact: Some("*".into()),
            ..RegisterOptions::new(0)
        };
        self.register_with(&opts).await
    }

    /// Sends a pager-mode MESSAGE (RFC 3428); returns the final response.
    pub async fn send_message(
        &self,
        to: impl IntoUri,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> Result<Response, UaError> {
        let mut req = self.new_request(Method::Message, to)?;
        req.headers
            .push(HeaderName::ContentType, content_type.to_owned());
        req.body = body.as_ref().to_vec();
        self.request(req).await
    }

    /// Starts a session: INVITE with `sdp_offer`; on 2xx sends the ACK and
    /// returns the dialog; on a non-2xx final response returns
    /// [`UaError::Status`].
    pub async fn invite(&self, to: impl IntoUri, sdp_offer: &str) -> Result<Dialog, UaError> {
        let mut req = self.new_request(Method::Invite, to)?;
        req.headers.push(HeaderName::ContentType, "application/sdp");
        req.body = sdp_offer.as_bytes().to_vec();
        Ok(self.send_invite(req).await?.1)
    }

    /// Sends a prepared INVITE; on 2xx sends the ACK (to the remote target,
    /// through the route set) and returns the exchange and the dialog.
    pub async fn send_invite(&self, req: Request) -> Result<(Exchange, Dialog), UaError> {
        let ex = self.send_request(req).await?;
        if !(200..300).contains(&ex.response.status) {
            return Err(UaError::Status(Box::new(ex.response)));
        }
        let dialog = Dialog::from_uac(self.clone(), &ex.request, &ex.response)?;
        let ack = dialog.ack_for(&ex.request).to_bytes();
        {
            let mut st = self.0.lock();
            push_capped(
                &mut st.invites,
                InviteRecord {
                    call_id: dialog.call_id.clone(),
                    seq: ex.request.headers.cseq()?.seq,
                    invite: ex.request.clone(),
                    acks: vec![(dialog.remote_tag().to_owned(), ack.clone())],
                },
            );
        }
        self.0.link.send(&ack, None).await?;
        Ok((ex, dialog))
    }

    /// Subscribes to `event` at `to` (Accept and Expires as given); on 2xx
    /// returns the response and the subscription dialog. NOTIFYs (even one
    /// that overtakes the 2xx) go to the incoming queue.
    pub async fn subscribe(
        &self,
        to: impl IntoUri,
        event: &str,
        accept: &str,
        expires: u32,
    ) -> Result<(Response, Dialog), UaError> {
        let mut req = self.new_request(Method::Subscribe, to)?;
        req.headers.push(HeaderName::Event, event.to_owned());
        if !accept.is_empty() {
            req.headers.push(HeaderName::Accept, accept.to_owned());
        }
        req.headers.push(HeaderName::Expires, expires.to_string());
        self.create_dialog(req).await
    }

    /// Sends a prepared dialog-creating non-INVITE request (SUBSCRIBE,
    /// REFER); on 2xx returns the response and the dialog, whose `event` is
    /// the request's Event (or `refer`).
    pub async fn create_dialog(&self, req: Request) -> Result<(Response, Dialog), UaError> {
        let ex = self.send_request(req).await?;
        if !(200..300).contains(&ex.response.status) {
            return Err(UaError::Status(Box::new(ex.response)));
        }
        let mut dialog = Dialog::from_uac(self.clone(), &ex.request, &ex.response)?;
        dialog.event = ex
            .request
            .headers
            .get(&HeaderName::Event)
            .map(str::to_owned)
            .or_else(|| (ex.request.method == Method::Refer).then(|| "refer".to_owned()));
        Ok((ex.response, dialog))
    }

    /// Publishes event state (RFC 3903): initial (no `etag`, with body),
    /// refresh (`etag`, no body), modify (both) or remove (`expires` 0).
    pub async fn publish(
        &self,
        to: impl IntoUri,
        event: &str,
        etag: Option<&str>,
        body: Option<(&str, &[u8])>,
        expires: u32,
    ) -> Result<Response, UaError> {
        let mut req = self.new_request(Method::Publish, to)?;
        req.headers.push(HeaderName::Event, event.to_owned());
        req.headers.push(HeaderName::Expires, expires.to_string());
        if let Some(tag) = etag {
            req.headers.push(HeaderName::SipIfMatch, tag.to_owned());
        }
        if let Some((ct, bytes)) = body {
            req.headers.push(HeaderName::ContentType, ct.to_owned());
            req.body = bytes.to_vec();
        }
        self.request(req).await
    }

    /// The next request received (other than auto-answered ones and ACKs
    /// awaited by [`Incoming::accept`]), waiting up to `timeout`.
    pub async fn next_request(&self, timeout: Duration) -> Result<Incoming, UaError> {
        let deadline = Instant::now() + timeout;
        let got = wait_for(&self.0.incoming_notify, deadline, || {
            let mut st = self.0.lock();
            if let Some(item) = st.incoming.pop_front() {
                return Some(Ok(item));
            }
            st.closed.clone().map(|r| Err(UaError::Closed(r)))
        })
        .await;
        match got {
            Some(Ok((req, src))) => Ok(Incoming::new(self.clone(), req, src)),
            Some(Err(e)) => Err(e),
            None => Err(UaError::Timeout(format!(
                "no request received by {} within {timeout:?}",
                self.0.aor
            ))),
        }
    }

    /// Waits for a request with this method. Requests of other methods that
    /// arrive first are answered (ACK: nothing; INVITE: 486; others: 200) and
    /// skipped; the timeout error lists them.
    pub async fn expect_request(
        &self,
        method: Method,
        timeout: Duration,
    ) -> Result<Incoming, UaError> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_request(left).await {
                Ok(inc) if inc.request.method == method => return Ok(inc),
                Ok(inc) => {
                    skipped.push(inc.request.method.to_string());
                    match inc.request.method {
                        Method::Ack => {}
                        Method::Invite => inc.respond(486).await?,
                        _ => inc.respond(200).await?,
                    }
                }
                Err(UaError::Timeout(_)) => {
                    return Err(UaError::Timeout(format!(
                        "no {method} received by {} within {timeout:?} (skipped: {})",
                        self.0.aor,
                        if skipped.is_empty() {
                            "none".to_owned()
                        } else {
                            skipped.join(", ")
                        }
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers every later request of this method at once with `status`
    /// instead of queueing it (it is still recorded, see [`Ua::received`]).
    pub fn auto_answer(&self, method: Method, status: u16) {
        self.0.lock().auto_answer.insert(method, status);
    }

    /// Stops auto-answering this method.
    pub fn stop_auto_answer(&self, method: &Method) {
        self.0.lock().auto_answer.remove(method);
    }

    /// Every request of this method received so far (retransmissions
    /// included), in arrival order.
    pub fn received(&self, method: &Method) -> Vec<Request> {
        self.0
            .lock()
            .history
            .iter()
            .filter(|r| r.method == *method)
            .cloned()
            .collect()
    }

    /// Every request received so far, in arrival order.
    pub fn received_all(&self) -> Vec<Request> {
        self.0.lock().history.clone()
    }

    /// Sends bytes as they are to the server (malformed-input tests).
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), UaError> {
        self.0.link.send(bytes, None).await
    }

    /// The next [`Unsolicited`] input (a response matching no transaction,
    /// or bytes that do not parse), waiting up to `timeout`.
    pub async fn recv_raw(&self, timeout: Duration) -> Result<Unsolicited, UaError> {
        let deadline = Instant::now() + timeout;
        let got = wait_for(&self.0.unsolicited_notify, deadline, || {
            let mut st = self.0.lock();
            if let Some(item) = st.unsolicited.pop_front() {
                return Some(Ok(item));
            }
            st.closed.clone().map(|r| Err(UaError::Closed(r)))
        })
        .await;
        match got {
            Some(r) => r,
            None => Err(UaError::Timeout(format!(
                "no unsolicited input within {timeout:?}"
            ))),
        }
    }

    /// Everything received that could not be parsed or framed, or failed the
    /// response checks, in order (also delivered by [`Ua::recv_raw`]).
    pub fn dropped_input(&self) -> Vec<Unsolicited> {
        self.0.lock().dropped.clone()
    }

    /// Sends a CRLFCRLF keep-alive (RFC 5626 §4.4.1); on streams waits up to
    /// `timeout` for the CRLF answer.
    pub async fn keepalive(&self, timeout: Duration) -> Result<(), UaError> {
        let before = self.0.lock().pongs;
        self.0.link.send(framing::PING, None).await?;
        if !self.0.cfg.transport.is_reliable() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let got = wait_for(&self.0.pong_notify, deadline, || {
            let st = self.0.lock();
            if st.pongs > before {
                return Some(Ok(()));
            }
            st.closed.clone().map(|r| Err(UaError::Closed(r)))
        })
        .await;
        got.unwrap_or_else(|| {
            Err(UaError::Timeout(format!(
                "no keep-alive answer within {timeout:?}"
            )))
        })
    }

    /// True once the connection is closed (by the server, a read error or
    /// [`Ua::close`]). Always false for UDP unless closed by the agent.
    pub fn is_closed(&self) -> bool {
        self.0.lock().closed.is_some()
    }

    /// Waits until the connection is closed.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<(), UaError> {
        let deadline = Instant::now() + timeout;
        wait_for(&self.0.closed_notify, deadline, || {
            self.0.lock().closed.as_ref().map(|_| ())
        })
        .await
        .ok_or_else(|| UaError::Timeout(format!("connection still open after {timeout:?}")))
    }

    /// Closes the connection (stream transports: shutdown, as a client going
    /// away) and stops receiving; pending operations fail with [`UaError::Closed`].
    pub async fn close(&self) {
        self.0.link.shutdown().await;
        if let Some(t) = self.0.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
        self.0.mark_closed("closed by the agent".into());
    }
}
