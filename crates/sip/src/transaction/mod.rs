//! SIP transactions (RFC 3261 §17, with the INVITE fixes of RFC 6026) as one
//! sans-I/O state machine that holds every transaction of an element.
//!
//! The driver feeds received messages ([`TransactionLayer::handle_request`],
//! [`TransactionLayer::handle_response`]) and the current time
//! ([`TransactionLayer::handle_timeout`]), and drains what to send
//! ([`TransactionLayer::poll_transmit`]), what the transaction user must act
//! on ([`TransactionLayer::poll_event`]) and when to wake up next
//! ([`TransactionLayer::poll_timeout`]). The transaction user (registrar,
//! proxy, presence server) answers requests with
//! [`TransactionLayer::respond`] and starts requests with
//! [`TransactionLayer::send_request`].
//!
//! Retransmissions over unreliable transports, absorption of retransmitted
//! requests and responses, the ACK for non-2xx final responses, and every
//! timer (A–K, L and M) are handled here; the transaction user never sees a
//! retransmission.

mod build;
mod client;
mod server;

pub use build::{ack_for_non2xx, cancel_for};

use crate::message::{Request, Response, TransactionKey};
use crate::method::Method;
use client::ClientTx;
use server::ServerTx;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a message goes or came from. The layer only needs to know whether
/// the transport is reliable (no retransmissions, zero wait timers); the
/// driver puts whatever it needs to send (socket, connection id, address) in
/// the value.
pub trait Flow: Clone + std::fmt::Debug {
    /// True for TCP, TLS, WebSocket; false for UDP.
    fn is_reliable(&self) -> bool;
}

/// The timer base values (RFC 3261 §17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Bytes to send to a flow. The bytes are shared with the transaction that
/// may retransmit them.
#[derive(Debug, Clone)]
pub struct Transmit<F> {
    pub flow: F,
    pub bytes: Arc<[u8]>,
}

/// What the transaction user must act on.
#[derive(Debug, Clone)]
pub enum Event<F> {
    /// A new request: a server transaction was created under `key`; answer it
    /// with [`TransactionLayer::respond`]. (For INVITE a 100 Trying was already sent.)
    Request {
        key: TransactionKey,
        request: Request,
        flow: F,
    },
    /// An ACK that belongs to no server transaction in a state that absorbs it:
    /// the ACK for a 2xx, which is end-to-end and routed by the transaction user.
    Ack { request: Request, flow: F },
    /// A response to a client transaction (provisional, final, and for INVITE
    /// every further 2xx while the transaction is Accepted).
    Response {
        key: TransactionKey,
        response: Response,
    },
    /// A response that matches no client transaction (RFC 3261 §16.7: a proxy
    /// forwards stray 2xx for INVITE statelessly).
    StrayResponse { response: Response, flow: F },
    /// A client transaction got no final response in time (timer B or F): act
    /// as if a 408 had arrived.
    Timeout { key: TransactionKey },
    /// The transport reported it could not deliver a client transaction's
    /// request: act as if a 503 had arrived (RFC 3261 §8.1.3.1).
    TransportError { key: TransactionKey },
    /// A server transaction's final non-2xx response was never acknowledged
    /// (timer H), or the transaction user never answered in time.
    ServerGaveUp { key: TransactionKey },
}

/// Why the layer refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The request has no top Via with a branch parameter.
    #[error("request has no Via branch")]
    NoBranch,
    /// A client transaction with that branch and method already exists.
    #[error("duplicate transaction")]
    Duplicate,
    /// No such transaction (already terminated, or never existed).
    #[error("no such transaction")]
    NotFound,
    /// The transaction cannot take this response now (e.g. a final response was
    /// already sent).
    #[error("transaction already answered")]
    AlreadyFinal,
    /// A response without a valid CSeq or Via.
    #[error("malformed response")]
    Malformed,
}

/// Statistics for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub server: usize,
    pub client: usize,
}

/// Every transaction of one element.
#[derive(Debug)]
pub struct TransactionLayer<F: Flow> {
    timers: Timers,
    server: HashMap<TransactionKey, ServerTx<F>>,
    client: HashMap<TransactionKey, ClientTx<F>>,
    /// Deadlines, lazily invalidated: an entry whose transaction has nothing
    /// due at that time is skipped.
    wakeups: BinaryHeap<Reverse<Wakeup>>,
    transmits: std::collections::VecDeque<Transmit<F>>,
    events: std::collections::VecDeque<Event<F>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// A heap entry, ordered by time only.
#[derive(Debug)]
struct Wakeup {
    at: Instant,
    side: Side,
    key: TransactionKey,
}

impl PartialEq for Wakeup {
    fn eq(&self, other: &Wakeup) -> bool {
        self.at == other.at
    }
}

impl Eq for Wakeup {}

impl PartialOrd for Wakeup {
    fn partial_cmp(&self, other: &Wakeup) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wakeup {
    fn cmp(&self, other: &Wakeup) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// Shared plumbing the individual machines use to act on the layer.
pub(crate) struct Io<'a, F> {
    pub now: Instant,
    pub timers: &'a Timers,
    pub transmits: &'a mut std::collections::VecDeque<Transmit<F>>,
    pub events: &'a mut std::collections::VecDeque<Event<F>>,
}

impl<F> Io<'_, F> {
    pub fn send(&mut self, flow: &F, bytes: &Arc<[u8]>)
    where
        F: Clone,
    {
        self.transmits.push_back(Transmit {
            flow: flow.clone(),
            bytes: bytes.clone(),
        });
    }
}

impl<F: Flow> TransactionLayer<F> {
    /// An empty layer with the given timer values.
    pub fn new(timers: Timers) -> TransactionLayer<F> {
        TransactionLayer {
            timers,
            server: HashMap::new(),
            client: HashMap::new(),
            wakeups: BinaryHeap::new(),
            transmits: Default::default(),
            events: Default::default(),
        }
    }

    /// The timer values in use.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// How many transactions are alive.
    pub fn counts(&self) -> Counts {
        Counts {
            server: self.server.len(),
            client: self.client.len(),
        }
    }

    fn io(&mut self, now: Instant) -> Io<'_, F> {
        Io {
            now,
            timers: &self.timers,
            transmits: &mut self.transmits,
            events: &mut self.events,
        }
    }

    fn schedule(&mut self, side: Side, key: &TransactionKey, at: Option<Instant>) {
        if let Some(at) = at {
            self.wakeups.push(Reverse(Wakeup {
                at,
                side,
                key: key.clone(),
            }));
        }
    }

    /// A request arrived from `flow`. Retransmissions are absorbed (and the last
    /// response re-sent); a new request creates a server transaction and an
    /// [`Event::Request`]; an ACK is matched or passed on as [`Event::Ack`].
    /// Requests without an RFC 3261 branch get a key derived from the branch
    /// they have (RFC 2543 matching is not supported: such clients are
    /// obsolete); `Err(NoBranch)` if there is no branch at all.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        flow: F,
    ) -> Result<(), TxError> {
        let key = request.transaction_key().map_err(|_| TxError::NoBranch)?;
        self.handle_request_keyed(now, key, request, flow);
        Ok(())
    }

    /// [`TransactionLayer::handle_request`] for a driver that has already
    /// computed the request's key (`request.transaction_key()`, which it
    /// must be) from the top Via it parsed.
    pub fn handle_request_keyed(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        flow: F,
    ) {
        if request.method == Method::Ack {
            let absorbed = match self.server.get_mut(&key) {
                Some(tx) => {
                    let mut io = Io {
                        now,
                        timers: &self.timers,
                        transmits: &mut self.transmits,
                        events: &mut self.events,
                    };
                    tx.on_ack(&mut io, request.clone())
                }
                None => false,
            };
            if !absorbed {
                self.events.push_back(Event::Ack { request, flow });
            }
            self.reschedule_server(&key);
            return;
        }
        // One lookup: a retransmission finds its transaction, a new request
        // takes the vacant slot.
        let mut io = Io {
            now,
            timers: &self.timers,
            transmits: &mut self.transmits,
            events: &mut self.events,
        };
        match self.server.entry(key) {
            Entry::Occupied(mut known) => known.get_mut().on_retransmission(&mut io),
            Entry::Vacant(slot) => {
                let tx = ServerTx::new(&mut io, &request, flow.clone());
                let next = tx.next_deadline();
                let key = slot.key().clone();
                slot.insert(tx);
                self.schedule(Side::Server, &key, next);
                self.events.push_back(Event::Request { key, request, flow });
            }
        }
    }

    /// The transaction user answers server transaction `key`.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Response,
    ) -> Result<(), TxError> {
        let timers = self.timers;
        let tx = self.server.get_mut(key).ok_or(TxError::NotFound)?;
        let mut io = Io {
            now,
            timers: &timers,
            transmits: &mut self.transmits,
            events: &mut self.events,
        };
        tx.respond(&mut io, response)?;
        // What reschedule_server does, with the transaction at hand.
        let (terminated, next) = (tx.is_terminated(), tx.next_deadline());
        if terminated {
            self.server.remove(key);
        } else {
            self.schedule(Side::Server, key, next);
        }
        Ok(())
    }

    /// True if a server transaction with this key is alive.
    pub fn has_server(&self, key: &TransactionKey) -> bool {
        self.server.contains_key(key)
    }

    /// The INVITE server transaction a CANCEL refers to (same branch and sent-by),
    /// if it is still alive and has not sent a final response.
    pub fn invite_for_cancel(&self, cancel_key: &TransactionKey) -> Option<TransactionKey> {
        let key = TransactionKey {
            method: Method::Invite,
            ..cancel_key.clone()
        };
        self.server
            .get(&key)
            .filter(|tx| tx.awaiting_final())
            .map(|_| key)
    }

    /// Starts a client transaction for `request` (whose top Via branch the
    /// transaction user chose, unique and starting with `z9hG4bK`) towards `flow`.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        flow: F,
    ) -> Result<TransactionKey, TxError> {
        let via = request.headers.top_via().map_err(|_| TxError::NoBranch)?;
        let branch = via.branch().ok_or(TxError::NoBranch)?;
        let key = TransactionKey::for_client(branch, &request.method);
        if request.method == Method::Ack {
            // ACK for 2xx is not a transaction: just send it.
            self.transmits.push_back(Transmit {
                flow,
                bytes: request.to_bytes().into(),
            });
            return Ok(key);
        }
        if self.client.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let mut io = self.io(now);
        let tx = ClientTx::new(&mut io, request, flow);
        let next = tx.next_deadline();
        self.client.insert(key.clone(), tx);
        self.schedule(Side::Client, &key, next);
        Ok(key)
    }

    /// Asks for an INVITE client transaction to be cancelled: the CANCEL is
    /// sent as soon as a provisional response has arrived (RFC 3261 §9.1), or
    /// never if a final response arrives first.
    pub fn cancel(&mut self, now: Instant, key: &TransactionKey) -> Result<(), TxError> {
        let timers = self.timers;
        let tx = self.client.get_mut(key).ok_or(TxError::NotFound)?;
        let mut io = Io {
            now,
            timers: &timers,
            transmits: &mut self.transmits,
            events: &mut self.events,
        };
        if let Some((cancel, flow)) = tx.request_cancel(&mut io) {
            self.start_internal_cancel(now, cancel, flow);
        }
        Ok(())
    }

    fn start_internal_cancel(&mut self, now: Instant, cancel: Request, flow: F) {
        if let Ok(via) = cancel.headers.top_via()
            && let Some(branch) = via.branch()
        {
            let key = TransactionKey::for_client(branch, &Method::Cancel);
            if self.client.contains_key(&key) {
                return;
            }
            let mut io = self.io(now);
            let mut tx = ClientTx::new(&mut io, cancel, flow);
            tx.internal = true;
            let next = tx.next_deadline();
            self.client.insert(key.clone(), tx);
            self.schedule(Side::Client, &key, next);
        }
    }

    /// A response arrived from `flow`.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        flow: F,
    ) -> Result<(), TxError> {
        let via = response.headers.top_via().map_err(|_| TxError::Malformed)?;
        let cseq = response.headers.cseq().map_err(|_| TxError::Malformed)?;
        let Some(branch) = via.branch() else {
            self.events
                .push_back(Event::StrayResponse { response, flow });
            return Ok(());
        };
        let key = TransactionKey::for_client(branch, &cseq.method);
        let timers = self.timers;
        let Some(tx) = self.client.get_mut(&key) else {
            self.events
                .push_back(Event::StrayResponse { response, flow });
            return Ok(());
        };
        let mut io = Io {
            now,
            timers: &timers,
            transmits: &mut self.transmits,
            events: &mut self.events,
        };
        let pending_cancel = tx.on_response(&mut io, &key, response);
        let next = tx.next_deadline();
        self.schedule(Side::Client, &key, next);
        if let Some((cancel, flow)) = pending_cancel {
            self.start_internal_cancel(now, cancel, flow);
        }
        self.sweep_client(&key);
        Ok(())
    }

    /// The driver could not send a client transaction's request (connection
    /// refused, no route): the transaction ends with [`Event::TransportError`].
    pub fn transport_failed(&mut self, key: &TransactionKey) {
        if let Some(tx) = self.client.remove(key)
            && !tx.internal
        {
            self.events
                .push_back(Event::TransportError { key: key.clone() });
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse(w)) = self.wakeups.peek() {
            if w.at > now {
                break;
            }
            let Some(Reverse(Wakeup { side, key, .. })) = self.wakeups.pop() else {
                break;
            };
            let timers = self.timers;
            match side {
                Side::Server => {
                    if let Some(tx) = self.server.get_mut(&key) {
                        let mut io = Io {
                            now,
                            timers: &timers,
                            transmits: &mut self.transmits,
                            events: &mut self.events,
                        };
                        tx.on_timer(&mut io, &key);
                        self.reschedule_server(&key);
                    }
                }
                Side::Client => {
                    if let Some(tx) = self.client.get_mut(&key) {
                        let mut io = Io {
                            now,
                            timers: &timers,
                            transmits: &mut self.transmits,
                            events: &mut self.events,
                        };
                        tx.on_timer(&mut io, &key);
                        let next = tx.next_deadline();
                        self.schedule(Side::Client, &key, next);
                        self.sweep_client(&key);
                    }
                }
            }
        }
    }

    fn reschedule_server(&mut self, key: &TransactionKey) {
        let Some(tx) = self.server.get(key) else {
            return;
        };
        if tx.is_terminated() {
            self.server.remove(key);
            return;
        }
        let next = tx.next_deadline();
        self.schedule(Side::Server, key, next);
    }

    fn sweep_client(&mut self, key: &TransactionKey) {
        if self.client.get(key).is_some_and(|tx| tx.is_terminated()) {
            self.client.remove(key);
        }
    }

    /// The earliest time [`TransactionLayer::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.peek().map(|Reverse(w)| w.at)
    }

    /// Next datagram or stream write to perform.
    pub fn poll_transmit(&mut self) -> Option<Transmit<F>> {
        self.transmits.pop_front()
    }

    /// Next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event<F>> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
