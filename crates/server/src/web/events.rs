//! The event channel of the web API: a WebSocket (`GET /api/v1/events`) and
//! a long-poll fallback (`GET /api/v1/events/poll`) over the same numbered
//! mailbox, streaming presence changes of the user's contacts, incoming
//! messages, typing, invitations, roster changes and ends of group
//! conversations. Events are JSON objects with `seq` and `type`; a client
//! that reconnects passes the last `seq` it saw and gets what it missed.

use super::Web;
use super::auth::Session;
use super::live::LiveSession;
use super::problem::{ApiResult, Problem};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::Address;
use switchboard_core::endpoints::EndpointEvent;

/// An event before it gets its sequence number.
#[derive(Debug, Clone)]
pub struct EventJson(Value);

impl EventJson {
    fn new(kind: &str, mut fields: Value) -> EventJson {
        if let Some(o) = fields.as_object_mut() {
            o.insert("type".into(), Value::String(kind.into()));
        }
        EventJson(fields)
    }

    /// The serialised event with its sequence number.
    pub fn with_seq(mut self, seq: u64) -> String {
        if let Some(o) = self.0.as_object_mut() {
            o.insert("seq".into(), json!(seq));
        }
        self.0.to_string()
    }

    /// What identifies the content (to skip repeating an unchanged state).
    pub fn fingerprint(&self) -> String {
        self.0.to_string()
    }
}

/// First event of a session's mailbox.
pub fn hello(sid: &str, user: &Address) -> EventJson {
    EventJson::new("hello", json!({"session": sid, "user": user.to_string()}))
}

/// The session was ended by the server (sign-out, revocation).
pub fn closed(reason: &str) -> EventJson {
    EventJson::new("session.closed", json!({"reason": reason}))
}

/// The user's contact list changed (fetch it again).
pub fn contacts_changed() -> EventJson {
    EventJson::new("contacts.changed", json!({}))
}

/// A person's presence as this session's user may see it.
pub fn presence(person: &Address, view: &super::PresenceView) -> EventJson {
    let mut v = super::presence_json(&view.state);
    if let Some(o) = v.as_object_mut() {
        o.insert("user".into(), json!(person.to_string()));
        if view.pending {
            o.insert("access".into(), json!("pending"));
        }
    }
    EventJson::new("presence", v)
}

/// `type/subtype` of a Content-Type, lower-case (the raw text when it does
/// not parse, so that it never matches a known type by accident).
pub fn essence(content_type: &str) -> String {
    switchboard_sip::MediaType::parse(content_type, "Content-Type")
        .map(|m| m.essence())
        .unwrap_or_else(|_| content_type.trim().to_ascii_lowercase())
}

/// A body as text for web clients: CPIM is unwrapped to its content, other
/// bodies are read as UTF-8 (lossily: a client gets something readable).
pub fn body_text(content_type: &str, body: &[u8]) -> (String, String) {
    let essence = essence(content_type);
    if essence == "message/cpim"
        && let Ok(cpim) = switchboard_sip_bodies::cpim::Cpim::parse(body)
    {
        let inner = cpim.content_type().unwrap_or("text/plain").to_owned();
        return body_text(&inner, &cpim.body);
    }
    (essence, String::from_utf8_lossy(body).into_owned())
}

/// The JSON event for a delivery to a session's endpoint (None for what web
/// clients are not shown).
pub fn from_endpoint(web: &Web, ev: &EndpointEvent) -> Option<EventJson> {
    Some(match ev {
        EndpointEvent::Message {
            conversation,
            from,
            from_display,
            to,
            content_type,
            body,
            at_ms,
        } => {
            let (ct, text) = body_text(content_type, body);
            EventJson::new(
                "message",
                json!({
                    "conversation": conversation,
                    "from": from.to_string(),
                    "from_display": from_display.clone().or_else(|| web.display_of(from)),
                    "to": to.to_string(),
                    "content_type": ct,
                    "text": text,
                    "at": at_ms,
                }),
            )
        }
        EndpointEvent::Composing {
            conversation,
            from,
            active,
        } => EventJson::new(
            "typing",
            json!({"conversation": conversation, "from": from.to_string(), "active": active}),
        ),
        EndpointEvent::ConferenceMessage {
            conference,
            entry,
            replay,
        } => {
            let (ct, text) = body_text(&entry.content_type, &entry.body);
            EventJson::new(
                "conversation.message",
                json!({
                    "conversation": conference,
                    "from": entry.from.to_string(),
                    "from_display": entry.from_display.clone().or_else(|| web.display_of(&entry.from)),
                    "content_type": ct,
                    "text": text,
                    "at": entry.at_ms,
                    "replay": replay,
                }),
            )
        }
        EndpointEvent::Invitation {
            conference,
            inviter,
            inviter_display,
        } => EventJson::new(
            "invitation",
            json!({
                "conversation": conference,
                "from": inviter.to_string(),
                "from_display": inviter_display.clone().or_else(|| web.display_of(inviter)),
            }),
        ),
        EndpointEvent::Roster {
            conference,
            members,
        } => EventJson::new(
            "roster",
            json!({
                "conversation": conference,
                "participants": members.iter().map(|(a, d)| json!({
                    "user": a.to_string(),
                    "display_name": d,
                })).collect::<Vec<_>>(),
            }),
        ),
        EndpointEvent::ConferenceEnded { conference } => {
            EventJson::new("conversation.ended", json!({"conversation": conference}))
        }
    })
}

/// Query of the event endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The bearer token, for clients that cannot set headers (browsers'
    /// WebSocket API); RFC 6750 §2.3.
    pub access_token: Option<String>,
    /// Last sequence number the client saw.
    pub since: Option<u64>,
    /// Long poll: seconds to wait for an event (capped by configuration).
    pub timeout: Option<u64>,
}

async fn session_from(web: &Web, headers: &HeaderMap, q: &EventQuery) -> ApiResult<Session> {
    let token = super::bearer(headers)
        .or(q.access_token.as_deref())
        .ok_or_else(|| Problem::unauthorized("Missing bearer token"))?
        .to_owned();
    web.sessions.authenticate(&token).await
}

/// `GET /api/v1/events`: the WebSocket.
pub async fn websocket(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return Problem::from(e).into_response(),
    };
    let session = match session_from(&web, &headers, &q).await {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return Problem::bad_request(
                "This endpoint is a WebSocket; use /api/v1/events/poll for long polling",
            )
            .with_detail("Send Connection: Upgrade and Upgrade: websocket")
            .into_response();
        }
    };
    let token = super::bearer(&headers)
        .or(q.access_token.as_deref())
        .unwrap_or_default()
        .to_owned();
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| stream(web, session, token, q.since, socket))
}

/// Reads `live`'s mailbox after `since`: the events, the sequence number to
/// continue after, and whether events were lost. A cursor beyond the
/// mailbox's last event comes from an earlier mailbox of the session (the
/// server restarted, or the session went offline and came back, and its
/// numbering started again): then everything kept is returned, flagged as a
/// gap, instead of nothing (which would silently skip the new mailbox's first
/// events, held offline messages among them).
fn read(live: &LiveSession, since: Option<u64>) -> (Vec<Arc<str>>, u64, bool) {
    let (events, last, gap) = live.read_after(since);
    match since {
        Some(s) if s > last => {
            let (events, last, _) = live.read_after(None);
            (events, last, true)
        }
        _ => (events, last, gap),
    }
}

async fn stream(
    web: Arc<Web>,
    session: Session,
    token: String,
    since: Option<u64>,
    mut socket: WebSocket,
) {
    let (live, _guard) = web.live.socket_opened(&web, &session.sid, &session.user);
    let mut cursor = since;
    let mut ping = tokio::time::interval(Duration::from_secs(25));
    ping.tick().await;
    let mut recheck = tokio::time::interval(Duration::from_secs(30));
    recheck.tick().await;
    loop {
        let notified = live.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (events, last, gap) = read(&live, cursor);
        if gap {
            let note = json!({"type": "gap", "detail": "events were dropped; reload state"});
            if socket
                .send(Message::Text(note.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        for e in events {
            if socket
                .send(Message::Text(e.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        cursor = Some(last);
        // The session was ended (signed out, revoked, password changed, user
        // removed): its last events are sent, and the socket closes now
        // rather than at the next periodic token check.
        if !web
            .live
            .get(&session.sid)
            .is_some_and(|l| Arc::ptr_eq(&l, &live))
        {
            let _ = socket
                .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 4401,
                    reason: "session ended".into(),
                })))
                .await;
            return;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = recheck.tick() => {
                if web.sessions.validate(&token).await.is_err() {
                    let _ = socket.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 4401,
                        reason: "session ended".into(),
                    }))).await;
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `GET /api/v1/events/poll`: waits up to `timeout` seconds for events after
/// `since`.
pub async fn poll(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let session = session_from(&web, &headers, &q).await?;
    let live = web.live.polled(&web, &session.sid, &session.user);
    let wait = Duration::from_secs(
        q.timeout
            .unwrap_or(web.settings.long_poll_seconds)
            .min(web.settings.long_poll_seconds),
    );
    let deadline = tokio::time::Instant::now() + wait;
    let (events, last, gap) = loop {
        let notified = live.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (events, last, gap) = read(&live, q.since);
        if !events.is_empty() || gap {
            break (events, last, gap);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break (events, last, gap);
        }
    };
    // Still online while the client keeps polling.
    web.live.polled(&web, &session.sid, &session.user);
    let mut body = String::from("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push_str(&format!("],\"next\":{last},\"gap\":{gap}}}"));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
