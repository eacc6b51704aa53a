//! Requests the transaction layer builds itself: the ACK for a non-2xx final
//! response (RFC 3261 §17.1.1.3) and CANCEL (§9.1).

use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::method::Method;
use crate::typed::CSeq;

fn copy_for_hop(invite: &Request, method: Method) -> Request {
    let mut req = Request::new(method.clone(), invite.uri.clone());
    if let Some(via) = invite.headers.values(&HeaderName::Via).next() {
        req.headers.push(HeaderName::Via, via);
    }
    for name in [HeaderName::Route] {
        for v in invite.headers.get_all(&name) {
            req.headers.push(name.clone(), v);
        }
    }
    req.headers.push(HeaderName::MaxForwards, "70");
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        if let Some(v) = invite.headers.get(&name) {
            req.headers.push(name, v);
        }
    }
    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
    req.headers
        .push(HeaderName::CSeq, CSeq { seq, method }.to_string());
    req
}

/// The ACK for a 300–699 response to `invite`: same Request-URI, top Via,
/// Route, From and Call-ID as the INVITE, the To of the response (with its tag)
/// and CSeq method ACK.
pub fn ack_for_non2xx(invite: &Request, response: &Response) -> Request {
    let mut ack = copy_for_hop(invite, Method::Ack);
    if let Some(to) = response.headers.get(&HeaderName::To) {
        ack.headers.set(HeaderName::To, to);
    }
    ack
}

/// The CANCEL for `invite`: same Request-URI, top Via (so it travels the same
/// hop and matches the INVITE's branch), Route, From, To, Call-ID, and CSeq
/// number with method CANCEL.
pub fn cancel_for(invite: &Request) -> Request {
    copy_for_hop(invite, Method::Cancel)
}
