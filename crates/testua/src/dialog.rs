//! Dialogs (RFC 3261 §12): the state both ends keep after INVITE/2xx or
//! SUBSCRIBE/2xx, and the requests sent inside them.

use crate::error::UaError;
use crate::ua::{Exchange, Ua};
use crate::util::new_branch;
use std::fmt;
use switchboard_sip::{CSeq, HeaderName, Method, NameAddr, Request, Response, Uri};

/// One dialog, seen from this agent. The fields are public so that tests can
/// inspect them and break them on purpose (a wrong tag, a stale CSeq…).
#[derive(Clone)]
pub struct Dialog {
    ua: Ua,
    /// Call-ID.
    pub call_id: String,
    /// Our side: From of the requests we send, with our tag.
    pub local: NameAddr,
    /// The other side: To of the requests we send, with its tag.
    pub remote: NameAddr,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<NameAddr>,
    /// CSeq of the last request we sent in the dialog.
    pub local_cseq: u32,
    /// CSeq of the last request the peer sent, when we are the UAS.
    pub remote_cseq: Option<u32>,
    /// Event header value for SUBSCRIBE/NOTIFY in a subscription dialog.
    pub event: Option<String>,
}

impl fmt::Debug for Dialog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialog")
            .field("call_id", &self.call_id)
            .field("local", &self.local.to_string())
            .field("remote", &self.remote.to_string())
            .field("remote_target", &self.remote_target.to_string())
            .field(
                "route_set",
                &self
                    .route_set
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("local_cseq", &self.local_cseq)
            .field("remote_cseq", &self.remote_cseq)
            .field("event", &self.event)
            .finish()
    }
}

/// The first Contact of a message, if any.
fn first_contact(h: &switchboard_sip::Headers) -> Result<Option<NameAddr>, UaError> {
    match h.contacts()? {
        switchboard_sip::Contacts::List(list) => Ok(list.into_iter().next()),
        switchboard_sip::Contacts::Star => Err(UaError::Protocol("Contact: * in a dialog".into())),
    }
}

/// The Request-URI and Route headers of an in-dialog request (RFC 3261
/// §12.2.1.1): with an empty route set or a loose-routing first hop (`lr`) the
/// Request-URI is the remote target; with a strict router first it takes the
/// Request-URI (without parameters not allowed there) and the remote target is
/// appended to the routes.
pub(crate) fn route_target(remote_target: &Uri, route_set: &[NameAddr]) -> (Uri, Vec<NameAddr>) {
    let Some(first) = route_set.first() else {
        return (remote_target.clone(), Vec::new());
    };
    let loose = first.uri.as_sip().is_none_or(|u| u.params.contains("lr"));
    if loose {
        return (remote_target.clone(), route_set.to_vec());
    }
    let mut uri = first.uri.clone();
    if let Some(u) = uri.as_sip_mut() {
        u.headers.clear();
        u.params.remove("method");
    }
    let mut routes = route_set[1..].to_vec();
    routes.push(NameAddr::new(remote_target.clone()));
    (uri, routes)
}

impl Dialog {
    /// The dialog a UAC gets from the 2xx to its `req` (INVITE, SUBSCRIBE,
    /// REFER): route set = Record-Route reversed, remote target = Contact.
    pub(crate) fn from_uac(ua: Ua, req: &Request, resp: &Response) -> Result<Dialog, UaError> {
        let local = req.headers.from()?;
        let remote = resp.headers.to()?;
        if remote.tag().is_none() {
            return Err(UaError::Protocol(format!(
                "{} {} to {} has no To tag",
                resp.status, resp.reason, req.method
            )));
        }
        let remote_target = match first_contact(&resp.headers)? {
            Some(c) => c.uri,
            None if req.method == Method::Invite => {
                return Err(UaError::Protocol("2xx to INVITE without Contact".into()));
            }
            None => req.uri.clone(),
        };
        let mut route_set = resp.headers.record_routes()?;
        route_set.reverse();
        Ok(Dialog {
            ua,
            call_id: req.headers.call_id()?.to_owned(),
            local,
            remote,
            remote_target,
            route_set,
            local_cseq: req.headers.cseq()?.seq,
            remote_cseq: None,
            event: None,
        })
    }

    /// The dialog a UAS gets from a dialog-creating `req` answered with our
    /// tag `local_tag`: route set = Record-Route in order, remote target = Contact.
    pub(crate) fn from_uas(ua: Ua, req: &Request, local_tag: &str) -> Result<Dialog, UaError> {
        let mut local = req.headers.to()?;
        if local.tag().is_none() {
            local.params.set("tag", Some(local_tag));
        }
        let remote = req.headers.from()?;
        let remote_target = first_contact(&req.headers)?
            .ok_or_else(|| UaError::Protocol(format!("{} without Contact", req.method)))?
            .uri;
        Ok(Dialog {
            ua,
            call_id: req.headers.call_id()?.to_owned(),
            local,
            remote,
            remote_target,
            route_set: req.headers.record_routes()?,
            local_cseq: 0,
            remote_cseq: Some(req.headers.cseq()?.seq),
            event: req.headers.get(&HeaderName::Event).map(str::to_owned),
        })
    }

    /// The agent this dialog belongs to.
    pub fn ua(&self) -> &Ua {
        &self.ua
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        self.local.tag().unwrap_or("")
    }

    /// The peer's tag.
    pub fn remote_tag(&self) -> &str {
        self.remote.tag().unwrap_or("")
    }

    /// True if `req` (received) belongs to this dialog: same Call-ID, its From
    /// tag is the peer's and its To tag ours.
    pub fn matches(&self, req: &Request) -> bool {
        let (Ok(cid), Ok(from), Ok(to)) =
            (req.headers.call_id(), req.headers.from(), req.headers.to())
        else {
            return false;
        };
        cid == self.call_id
            && from.tag() == Some(self.remote_tag())
            && to.tag() == Some(self.local_tag())
    }

    /// A request in the dialog with the given CSeq number.
    pub(crate) fn build(&self, method: Method, seq: u32) -> Request {
        let (uri, routes) = route_target(&self.remote_target, &self.route_set);
        let mut req = Request::new(method.clone(), uri);
        req.headers
            .push(HeaderName::Via, self.ua.via(&new_branch()));
        req.headers.push(HeaderName::MaxForwards, "70");
        for r in routes {
            req.headers.push(HeaderName::Route, r.to_string());
        }
        req.headers.push(HeaderName::From, self.local.to_string());
        req.headers.push(HeaderName::To, self.remote.to_string());
        req.headers.push(HeaderName::CallId, self.call_id.clone());
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
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        ) {
            req.headers
                .push(HeaderName::Contact, self.ua.contact().to_string());
        }
        if matches!(method, Method::Subscribe | Method::Notify)
            && let Some(ev) = &self.event
        {
            req.headers.push(HeaderName::Event, ev.clone());
        }
        if let Some(agent) = &self.ua.config().user_agent {
            req.headers.push(HeaderName::UserAgent, agent.clone());
        }
        req
    }

    /// The ACK for a 2xx to `invite` (RFC 3261 §13.2.2.4): in the dialog, CSeq
    /// number of the INVITE, same credentials.
    pub(crate) fn ack_for(&self, invite: &Request) -> Request {
        let seq = invite
            .headers
            .cseq()
            .map(|c| c.seq)
            .unwrap_or(self.local_cseq);
        let mut ack = self.build(Method::Ack, seq);
        for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
            for v in invite.headers.get_all(&name) {
                ack.headers.push(name.clone(), v);
            }
        }
        ack
    }

    /// A new request in the dialog (next CSeq), for the test to adjust and
    /// send with [`Dialog::send`]: Request-URI and Route from the remote target
    /// and route set, tags, Contact for target-refresh methods, Event in
    /// subscription dialogs.
    pub fn new_request(&mut self, method: Method) -> Request {
        self.local_cseq += 1;
        self.build(method, self.local_cseq)
    }

    /// Sends an in-dialog request as a client transaction; a challenge is
    /// answered as for any request and the dialog's CSeq follows.
    pub async fn send(&mut self, req: Request) -> Result<Exchange, UaError> {
        let ex = self.ua.send_request(req).await?;
        if let Ok(c) = ex.request.headers.cseq() {
            self.local_cseq = self.local_cseq.max(c.seq);
        }
        Ok(ex)
    }

    /// Sends `method` in the dialog with a body (Content-Type omitted when
    /// `content_type` is empty); returns the final response.
    pub async fn request(
        &mut self,
        method: Method,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> Result<Response, UaError> {
        let mut req = self.new_request(method);
        if !content_type.is_empty() {
            req.headers
                .push(HeaderName::ContentType, content_type.to_owned());
        }
        req.body = body.as_ref().to_vec();
        Ok(self.send(req).await?.response)
    }

    /// Ends an INVITE dialog.
    pub async fn bye(&mut self) -> Result<Response, UaError> {
        self.request(Method::Bye, "", []).await
    }

    /// Refreshes (or with 0, ends) the subscription of this dialog.
    pub async fn refresh_subscription(&mut self, expires: u32) -> Result<Response, UaError> {
        let mut req = self.new_request(Method::Subscribe);
        req.headers.push(HeaderName::Expires, expires.to_string());
        Ok(self.send(req).await?.response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> NameAddr {
        NameAddr::parse(s, "Route").expect("valid")
    }

    #[test]
    fn loose_and_empty_route_sets_keep_the_remote_target() {
        let target = Uri::parse("sip:bob@192.0.2.4:5070;transport=tcp").expect("uri");
        let (uri, routes) = route_target(&target, &[]);
        assert_eq!(uri, target);
        assert!(routes.is_empty());
        let set = vec![
            na("<sip:127.0.0.1:5060;r2=on;lr>"),
            na("<sip:127.0.0.1:5060;transport=tcp;r2=on;lr>"),
        ];
        let (uri, routes) = route_target(&target, &set);
        assert_eq!(uri, target);
        assert_eq!(routes, set);
    }

    #[test]
    fn strict_first_hop_takes_the_request_uri() {
        let target = Uri::parse("sip:bob@192.0.2.4").expect("uri");
        let set = vec![
            na("<sip:p1.example.com;method=INVITE>"),
            na("<sip:p2.example.com;lr>"),
        ];
        let (uri, routes) = route_target(&target, &set);
        assert_eq!(uri.to_string(), "sip:p1.example.com");
        assert_eq!(
            routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            vec!["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]
        );
    }
}
