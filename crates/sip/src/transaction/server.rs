//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1).

use super::{Event, Flow, Io, TxError};
use crate::message::{Request, Response, TransactionKey};
use crate::method::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-INVITE, nothing sent yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE: ACK received for a non-2xx final.
    Confirmed,
    /// INVITE: 2xx sent (RFC 6026).
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The transaction user has not answered in time.
    Patience,
    /// Timer H: no ACK for the non-2xx final.
    H,
    /// Timers I, J, L: linger to absorb retransmissions, then go.
    Linger,
}

/// How long an INVITE server transaction waits for its transaction user; a
/// proxy's timer C (more than 3 minutes) fires before it.
const INVITE_PATIENCE: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(crate) struct ServerTx<F> {
    invite: bool,
    state: State,
    flow: F,
    reliable: bool,
    last: Option<Arc<[u8]>>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    end_at: Option<Instant>,
    end: End,
}

impl<F: Flow> ServerTx<F> {
    pub fn new(io: &mut Io<'_, F>, request: &Request, flow: F) -> ServerTx<F> {
        let invite = request.method == Method::Invite;
        let reliable = flow.is_reliable();
        let patience = if invite {
            INVITE_PATIENCE
        } else {
            io.timers.t1x64()
        };
        let mut tx = ServerTx {
            invite,
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            flow,
            reliable,
            last: None,
            retransmit_at: None,
            interval: io.timers.t1,
            end_at: Some(io.now + patience),
            end: End::Patience,
        };
        if invite {
            // Answer at once so the client stops retransmitting (§17.2.1).
            let trying: Arc<[u8]> = Response::to_request(request, 100).to_bytes().into();
            io.send(&tx.flow, &trying);
            tx.last = Some(trying);
        }
        tx
    }

    pub fn awaiting_final(&self) -> bool {
        matches!(self.state, State::Trying | State::Proceeding)
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

    pub fn respond(&mut self, io: &mut Io<'_, F>, response: Response) -> Result<(), TxError> {
        let status = response.status;
        let bytes: Arc<[u8]> = response.to_bytes().into();
        match (self.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
            }
            (State::Trying | State::Proceeding, _) if !self.invite => {
                self.state = State::Completed;
                self.end = End::Linger;
                self.end_at = Some(if self.reliable {
                    io.now
                } else {
                    io.now + io.timers.t1x64()
                });
            }
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.end = End::Linger;
                self.end_at = Some(io.now + io.timers.t1x64());
            }
            (State::Proceeding, _) => {
                self.state = State::Completed;
                if !self.reliable {
                    self.interval = io.timers.t1;
                    self.retransmit_at = Some(io.now + self.interval);
                }
                self.end = End::H;
                self.end_at = Some(io.now + io.timers.t1x64());
            }
            (State::Accepted, 200..=299) => {
                // A further 2xx (another fork's answer, or a 2xx retransmission
                // passing through a proxy) is sent as is (RFC 6026 §7.1).
                io.send(&self.flow, &bytes);
                return Ok(());
            }
            _ => return Err(TxError::AlreadyFinal),
        }
        io.send(&self.flow, &bytes);
        self.last = Some(bytes);
        Ok(())
    }

    pub fn on_retransmission(&mut self, io: &mut Io<'_, F>) {
        if matches!(self.state, State::Proceeding | State::Completed)
            && let Some(last) = &self.last
        {
            let last = last.clone();
            io.send(&self.flow, &last);
        }
    }

    /// Returns true if the ACK was absorbed by this transaction.
    pub fn on_ack(&mut self, io: &mut Io<'_, F>, _ack: Request) -> bool {
        match self.state {
            State::Completed if self.invite => {
                self.state = State::Confirmed;
                self.retransmit_at = None;
                self.end = End::Linger;
                self.end_at = Some(if self.reliable {
                    io.now
                } else {
                    io.now + io.timers.t4
                });
                true
            }
            State::Accepted => false,
            _ => true,
        }
    }

    pub fn on_timer(&mut self, io: &mut Io<'_, F>, key: &TransactionKey) {
        if let Some(at) = self.retransmit_at
            && at <= io.now
        {
            if let Some(last) = &self.last {
                let last = last.clone();
                io.send(&self.flow, &last);
            }
            self.interval = (self.interval * 2).min(io.timers.t2);
            self.retransmit_at = Some(io.now + self.interval);
        }
        if let Some(at) = self.end_at
            && at <= io.now
        {
            match self.end {
                End::Patience | End::H => io
                    .events
                    .push_back(Event::ServerGaveUp { key: key.clone() }),
                End::Linger => {}
            }
            self.state = State::Terminated;
            self.retransmit_at = None;
            self.end_at = None;
        }
    }
}
