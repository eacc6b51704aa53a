//! A request received from the server, and how the test answers it.

use crate::dialog::Dialog;
use crate::error::UaError;
use crate::ua::Ua;
use crate::util::new_tag;
use std::fmt;
use std::net::SocketAddr;
use switchboard_sip::{HeaderName, Method, Request, Response};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A received request waiting for the test's answer. Every response sent
/// through it uses the same To tag, and is replayed by the agent if the
/// request is retransmitted.
pub struct Incoming {
    /// The request as received.
    pub request: Request,
    /// Where it came from (responses go back there over UDP).
    pub source: SocketAddr,
    ua: Ua,
    to_tag: String,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("method", &self.request.method)
            .field("uri", &self.request.uri.to_string())
            .field("source", &self.source)
            .field("to_tag", &self.to_tag)
            .finish()
    }
}

/// Methods whose 2xx (and 101–199) create a dialog: the response then
/// carries our Contact and the request's Record-Route (RFC 3261 §12.1.1).
fn creates_dialog(m: &Method) -> bool {
    matches!(m, Method::Invite | Method::Subscribe | Method::Refer)
}

impl Incoming {
    pub(crate) fn new(ua: Ua, request: Request, source: SocketAddr) -> Incoming {
        let to_tag = request
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_else(new_tag);
        Incoming {
            request,
            source,
            ua,
            to_tag,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.request.method
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.request.body).into_owned()
    }

    /// The To tag our responses carry (the request's own, in a dialog).
    pub fn to_tag(&self) -> &str {
        &self.to_tag
    }

    /// The agent that received the request.
    pub fn ua(&self) -> &Ua {
        &self.ua
    }

    /// A response built from the request (RFC 3261 §8.2.6): Via, From, To,
    /// Call-ID and CSeq copied, our To tag added unless the status is 100.
    /// For a dialog-creating request answered with 101–299 it also carries
    /// our Contact and the request's Record-Route. Adjust it and send it with
    /// [`Incoming::respond_with`].
    pub fn response(&self, status: u16) -> Response {
        let mut resp = Response::to_request(&self.request, status);
        if status != 100 {
            resp = resp.with_to_tag(&self.to_tag);
        }
        if creates_dialog(&self.request.method) && (101..300).contains(&status) {
            for rr in self.request.headers.get_all(&HeaderName::RecordRoute) {
                resp.headers.push(HeaderName::RecordRoute, rr);
            }
            resp.headers
                .push(HeaderName::Contact, self.ua.contact().to_string());
        }
        resp
    }

    /// Answers with [`Incoming::response`]`(status)`.
    pub async fn respond(&self, status: u16) -> Result<(), UaError> {
        self.respond_with(self.response(status)).await
    }

    /// Sends a response the test built (over UDP to the request's source).
    pub async fn respond_with(&self, resp: Response) -> Result<(), UaError> {
        if self.request.method == Method::Ack {
            return Err(UaError::Protocol("an ACK cannot be answered".into()));
        }
        let key = self.request.transaction_key().ok();
        self.ua
            .0
            .send_response(key.as_ref(), &resp, self.source)
            .await
    }

    /// The dialog this request creates on our side (UAS), with our To tag,
    /// without answering it.
    pub fn dialog(&self) -> Result<Dialog, UaError> {
        Dialog::from_uas(self.ua.clone(), &self.request, &self.to_tag)
    }

    /// Accepts an INVITE: sends 200 with `sdp_answer`, our Contact and the
    /// Record-Route, then waits for the ACK (over UDP retransmitting the 200
    /// with T1 doubling up to T2) and returns the dialog.
    pub async fn accept(self, sdp_answer: &str) -> Result<Dialog, UaError> {
        if self.request.method != Method::Invite {
            return Err(UaError::Protocol(format!(
                "accept() is for INVITE, not {}",
                self.request.method
            )));
        }
        let dialog = self.dialog()?;
        let mut resp = self.response(200);
        resp.headers
            .push(HeaderName::ContentType, "application/sdp");
        resp.body = sdp_answer.as_bytes().to_vec();
        let seq = self.request.headers.cseq()?.seq;
        let (tx, mut rx) = oneshot::channel();
        self.ua
            .0
            .lock()
            .ack_waiters
            .insert((dialog.call_id.clone(), seq), tx);
        self.respond_with(resp.clone()).await?;
        let timers = self.ua.config().timers;
        let reliable = self.ua.transport().is_reliable();
        let deadline = Instant::now() + timers.transaction_timeout;
        let mut interval = timers.t1;
        let mut next = Instant::now() + interval;
        loop {
            tokio::select! {
                ack = &mut rx => {
                    return match ack {
                        Ok(_) => Ok(dialog),
                        Err(_) => Err(UaError::Closed("closed while waiting for ACK".into())),
                    };
                }
                _ = tokio::time::sleep_until(next), if !reliable => {
                    self.respond_with(resp.clone()).await?;
                    interval = (interval * 2).min(timers.t2);
                    next = Instant::now() + interval;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.ua.0.lock().ack_waiters.remove(&(dialog.call_id.clone(), seq));
                    return Err(UaError::Timeout(format!(
                        "no ACK for 200 to INVITE (Call-ID {}) within {:?}",
                        dialog.call_id, timers.transaction_timeout
                    )));
                }
            }
        }
    }
}
