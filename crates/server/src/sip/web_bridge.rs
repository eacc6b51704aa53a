//! Instant messages between SIP devices and the other points of presence of
//! a user (web sessions). A web session is one more device: a MESSAGE to a
//! user reaches their web sessions as well as their SIP devices, and a
//! message typed in a browser reaches the recipient's SIP devices as a
//! MESSAGE the server sends on the sender's behalf, with the same rules as a
//! MESSAGE from a SIP client (blocking, size, archiving, offline IM).

use super::{SipServer, UacOutcome, ids};
use switchboard_core::endpoints::EndpointEvent;
use switchboard_core::{Address, InstantMessage, OfflineOutcome};
use switchboard_sip::{HeaderName, Method, Request, Uri};
use switchboard_sip_bodies::iscomposing::{IsComposing, State};

/// What became of a message sent from a web session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImSent {
    /// At least one device or web session of the recipient took it.
    Delivered { conversation: String },
    /// Nobody was reachable; it waits for the recipient's next sign-in.
    Stored { conversation: String },
    /// The conversation was escalated: it went to the group conversation.
    ToConference { conference: String },
}

/// Why a message from a web session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImRefused {
    #[error("no such user")]
    NoSuchUser,
    #[error("the recipient does not accept messages from you")]
    Blocked,
    #[error("archiving is unavailable and required (critical mode): message not delivered")]
    ArchiveUnavailable,
    #[error("the recipient is offline and does not keep messages for later")]
    OfflineDisabled,
    #[error("the recipient is offline and has too many messages waiting")]
    OfflineFull,
    #[error("the message could not be stored for later delivery")]
    StoreFailed,
    #[error("you are not in this conversation")]
    NotInConversation,
}

impl SipServer {
    /// Hands a MESSAGE from a SIP client to the recipient's web sessions.
    /// Returns how many took it (typing notifications count too).
    pub fn deliver_to_endpoints(
        &self,
        from: &Address,
        to: &Address,
        content_type: &str,
        body: &[u8],
    ) -> usize {
        self.deliver_to_endpoints_at(from, to, content_type, body, switchboard_core::now_ms())
    }

    /// [`Self::deliver_to_endpoints`] for a message written at `at_ms`
    /// (held offline messages keep their time).
    pub fn deliver_to_endpoints_at(
        &self,
        from: &Address,
        to: &Address,
        content_type: &str,
        body: &[u8],
        at_ms: i64,
    ) -> usize {
        if !self.endpoints.is_attached(to) {
            return 0;
        }
        let now = switchboard_core::now_ms();
        let conversation = self.conversations.id(from, to, now, ids::long_token);
        if crate::web::events::essence(content_type)
            == switchboard_sip_bodies::iscomposing::CONTENT_TYPE
        {
            let Ok(doc) = IsComposing::parse(body) else {
                return 0;
            };
            return self.endpoints.deliver(
                to,
                EndpointEvent::Composing {
                    conversation,
                    from: from.clone(),
                    active: doc.state == State::Active,
                },
            );
        }
        self.endpoints.deliver(
            to,
            EndpointEvent::Message {
                conversation,
                from: from.clone(),
                from_display: self
                    .directory
                    .user(from)
                    .and_then(|u| u.display_name.clone()),
                to: to.clone(),
                content_type: content_type.to_owned(),
                body: body.to_vec(),
                at_ms,
            },
        )
    }

    /// Sends an instant message typed in web session `endpoint` of
    /// `msg.from` to every device and web session of `msg.to` (except the
    /// sending one), holding it for later if nobody takes it.
    pub async fn send_im_from_endpoint(
        &self,
        msg: InstantMessage,
        endpoint: &str,
    ) -> Result<ImSent, ImRefused> {
        let (from, to) = (msg.from.clone(), msg.to.clone());
        if self.directory.user(&to).is_none() {
            return Err(ImRefused::NoSuchUser);
        }
        if self.gate.is_blocked(&to, &from) {
            return Err(ImRefused::Blocked);
        }
        if let Some(conf) = self.conversations.escalated(&from, &to)
            && self
                .conferences
                .get(&conf)
                .is_some_and(|c| c.is_member(&from))
        {
            self.post_as(&conf, &from, &msg.content_type, &msg.body)
                .await?;
            return Ok(ImSent::ToConference { conference: conf });
        }
        let now = msg.received_ms;
        self.record_one_to_one(&from, &to, &msg.content_type, &msg.body);
        let conversation = self.conversations.id(&from, &to, now, ids::long_token);
        let plan = self.archive_plan(&[&from, &to], || {
            self.message_record(
                &conversation,
                &from,
                &[&to],
                &msg.content_type,
                msg.body.clone(),
                now,
            )
        });
        let hook = match plan {
            None => None,
            Some((record, false)) => Some(self.archive_hook(record, false)),
            Some((record, true)) => match self.commit_before_delivery(record).await {
                Ok(hook) => Some(hook),
                Err(why) => {
                    tracing::warn!(reason = %why, "critical mode: web message refused because it cannot be archived");
                    return Err(ImRefused::ArchiveUnavailable);
                }
            },
        };
        let finish = |status: u16| {
            if let Some(h) = hook {
                h(status);
            }
        };
        let taken_by_web = self.endpoints.deliver_except(
            &to,
            endpoint,
            EndpointEvent::Message {
                conversation: conversation.clone(),
                from: from.clone(),
                from_display: msg.from_display.clone(),
                to: to.clone(),
                content_type: msg.content_type.clone(),
                body: msg.body.clone(),
                at_ms: now,
            },
        );
        let targets = self.device_targets(&to, now);
        let taken_by_sip = !targets.is_empty()
            && matches!(
                self.send_to_devices(self.im_request(&msg), targets).await,
                UacOutcome::Response(r) if (200..300).contains(&r.status)
            );
        if taken_by_web > 0 || taken_by_sip {
            finish(200);
            return Ok(ImSent::Delivered { conversation });
        }
        match self
            .offline
            .hold(self.store.as_ref(), &self.policies, &msg)
            .await
        {
            OfflineOutcome::Stored(_) => {
                finish(202);
                Ok(ImSent::Stored { conversation })
            }
            OfflineOutcome::Disabled => {
                finish(480);
                Err(ImRefused::OfflineDisabled)
            }
            OfflineOutcome::Full => {
                finish(480);
                Err(ImRefused::OfflineFull)
            }
            OfflineOutcome::Unavailable(e) => {
                tracing::error!(error = %e, "cannot store an offline message");
                finish(500);
                Err(ImRefused::StoreFailed)
            }
        }
    }

    /// Tells `to`'s devices and other web sessions that `from` is typing (or
    /// stopped). Best effort: nothing is stored or archived.
    pub async fn send_typing_from_endpoint(
        &self,
        from: &Address,
        endpoint: &str,
        to: &Address,
        active: bool,
    ) {
        if self.directory.user(to).is_none() || self.gate.is_blocked(to, from) {
            return;
        }
        let now = switchboard_core::now_ms();
        let conversation = self.conversations.id(from, to, now, ids::long_token);
        self.endpoints.deliver_except(
            to,
            endpoint,
            EndpointEvent::Composing {
                conversation,
                from: from.clone(),
                active,
            },
        );
        let targets = self.device_targets(to, now);
        if targets.is_empty() {
            return;
        }
        let mut doc = IsComposing::new(if active { State::Active } else { State::Idle });
        if active {
            doc.content_type = Some("text/plain".into());
            doc.refresh = Some(60);
        }
        let msg = InstantMessage {
            from: from.clone(),
            from_display: None,
            to: to.clone(),
            content_type: switchboard_sip_bodies::iscomposing::CONTENT_TYPE.into(),
            body: doc.to_xml().into_bytes(),
            received_ms: now,
        };
        let _ = self.send_to_devices(self.im_request(&msg), targets).await;
    }

    /// The MESSAGE the server sends on behalf of `msg.from` (offline
    /// delivery, messages from web sessions): From the sender, asserted
    /// identity, the original Date.
    pub(crate) fn im_request(&self, msg: &InstantMessage) -> Request {
        let to_uri = format!("sip:{}", msg.to);
        let mut req = Request::new(
            Method::Message,
            Uri::parse(&to_uri).unwrap_or_else(|_| {
                Uri::Absolute(switchboard_sip::uri::AbsoluteUri {
                    scheme: "sip".into(),
                    opaque: msg.to.to_string(),
                })
            }),
        );
        let from = match &msg.from_display {
            Some(d) => format!("{} <sip:{}>", switchboard_sip::text::quote(d), msg.from),
            None => format!("<sip:{}>", msg.from),
        };
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers
            .push(HeaderName::From, format!("{from};tag={}", ids::tag()));
        req.headers.push(HeaderName::To, format!("<{to_uri}>"));
        req.headers
            .push(HeaderName::CallId, ids::call_id(&self.settings.server_name));
        req.headers.push(HeaderName::CSeq, "1 MESSAGE");
        req.headers.push(
            HeaderName::Date,
            super::registrar::httpdate(msg.received_ms),
        );
        req.headers.push(HeaderName::PAssertedIdentity, from);
        req.headers
            .push(HeaderName::ContentType, msg.content_type.clone());
        req.body = msg.body.clone();
        req
    }
}
