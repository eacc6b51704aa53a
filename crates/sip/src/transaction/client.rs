//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2).

use super::{Event, Flow, Io, build};
use crate::message::{Request, Response, TransactionKey};
use crate::method::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calling (INVITE) or Trying (non-INVITE).
    Calling,
    Proceeding,
    Completed,
    /// INVITE: 2xx received (RFC 6026).
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Timers B and F, and the safety limit in INVITE Proceeding: report a timeout.
    Timeout,
    /// Timers D, K and M: linger to absorb retransmissions, then go.
    Linger,
}

/// How long an INVITE may stay in Proceeding before the layer reports a
/// timeout; the proxy's timer C normally cancels it earlier.
const PROCEEDING_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(crate) struct ClientTx<F> {
    invite: bool,
    state: State,
    flow: F,
    reliable: bool,
    bytes: Arc<[u8]>,
    /// The INVITE itself, to build ACK and CANCEL from.
    request: Option<Request>,
    ack: Option<Arc<[u8]>>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    end_at: Option<Instant>,
    end: End,
    cancel_requested: bool,
    cancel_sent: bool,
    /// A CANCEL the layer started itself: its responses are not reported.
    pub internal: bool,
}

impl<F: Flow> ClientTx<F> {
    pub fn new(io: &mut Io<'_, F>, request: Request, flow: F) -> ClientTx<F> {
        let invite = request.method == Method::Invite;
        let reliable = flow.is_reliable();
        let bytes: Arc<[u8]> = request.to_bytes().into();
        io.send(&flow, &bytes);
        ClientTx {
            invite,
            state: State::Calling,
            flow,
            reliable,
            bytes,
            request: invite.then_some(request),
            ack: None,
            retransmit_at: (!reliable).then(|| io.now + io.timers.t1),
            interval: io.timers.t1,
            end_at: Some(io.now + io.timers.t1x64()),
            end: End::Timeout,
            cancel_requested: false,
            cancel_sent: false,
            internal: false,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn cancel_now(&mut self) -> Option<(Request, F)> {
        self.cancel_sent = true;
        self.request
            .as_ref()
            .map(|r| (build::cancel_for(r), self.flow.clone()))
    }

    pub fn request_cancel(&mut self, _io: &mut Io<'_, F>) -> Option<(Request, F)> {
        if !self.invite || self.cancel_sent {
            return None;
        }
        match self.state {
            State::Proceeding => self.cancel_now(),
            State::Calling => {
                self.cancel_requested = true;
                None
            }
            _ => None,
        }
    }

    fn report(&self, io: &mut Io<'_, F>, key: &TransactionKey, response: Response) {
        if !self.internal {
            io.events.push_back(Event::Response {
                key: key.clone(),
                response,
            });
        }
    }

    /// Handles a matching response; returns a CANCEL to start if one was
    /// waiting for this provisional response.
    pub fn on_response(
        &mut self,
        io: &mut Io<'_, F>,
        key: &TransactionKey,
        response: Response,
    ) -> Option<(Request, F)> {
        let status = response.status;
        if !self.invite {
            match (self.state, status) {
                (State::Calling | State::Proceeding, 100..=199) => {
                    self.state = State::Proceeding;
                    if !self.reliable {
                        self.interval = io.timers.t2;
                    }
                    self.report(io, key, response);
                }
                (State::Calling | State::Proceeding, _) => {
                    self.state = State::Completed;
                    self.retransmit_at = None;
                    self.end = End::Linger;
                    self.end_at = Some(if self.reliable {
                        io.now
                    } else {
                        io.now + io.timers.t4
                    });
                    self.report(io, key, response);
                }
                _ => {}
            }
            return None;
        }
        match (self.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.retransmit_at = None;
                self.end = End::Timeout;
                self.end_at = Some(io.now + PROCEEDING_LIMIT);
                self.report(io, key, response);
                if self.cancel_requested && !self.cancel_sent {
                    return self.cancel_now();
                }
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.retransmit_at = None;
                self.end = End::Linger;
                self.end_at = Some(io.now + io.timers.t1x64());
                self.report(io, key, response);
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.retransmit_at = None;
                if let Some(req) = &self.request {
                    let ack: Arc<[u8]> = build::ack_for_non2xx(req, &response).to_bytes().into();
                    io.send(&self.flow, &ack);
                    self.ack = Some(ack);
                }
                self.end = End::Linger;
                self.end_at = Some(if self.reliable {
                    io.now
                } else {
                    io.now + Duration::from_secs(32)
                });
                self.report(io, key, response);
            }
            (State::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    let ack = ack.clone();
                    io.send(&self.flow, &ack);
                }
            }
            (State::Accepted, 200..=299) => self.report(io, key, response),
            _ => {}
        }
        None
    }

    pub fn on_timer(&mut self, io: &mut Io<'_, F>, key: &TransactionKey) {
        if let Some(at) = self.retransmit_at
            && at <= io.now
        {
            let bytes = self.bytes.clone();
            io.send(&self.flow, &bytes);
            self.interval = if self.invite {
                self.interval * 2
            } else {
                (self.interval * 2).min(io.timers.t2)
            };
            self.retransmit_at = Some(io.now + self.interval);
        }
        if let Some(at) = self.end_at
            && at <= io.now
        {
            if self.end == End::Timeout && !self.internal {
                io.events.push_back(Event::Timeout { key: key.clone() });
            }
            self.state = State::Terminated;
            self.retransmit_at = None;
            self.end_at = None;
        }
    }
}
