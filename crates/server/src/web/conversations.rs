//! Conversations from the web: one-to-one chats (the same conversation a SIP
//! client has with the person) and group conversations (conferences of the
//! focus, with SIP members in them). Sending goes through the same paths as
//! SIP: blocking, size limit, archiving (critical mode included) and offline
//! IM apply alike.

use super::problem::{ApiResult, Problem};
use super::{Body, Caller, OptionalBody, Web};
use crate::sip::web_bridge::{ImRefused, ImSent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_core::conference::{ConfError, Conference};
use switchboard_core::conversation::HistoryEntry;
use switchboard_core::{Address, InstantMessage};

/// Content types a web client may send.
const SENDABLE: [&str; 2] = ["text/plain", "text/html"];

/// Most participants named when a group conversation is started.
const MAX_START_PARTICIPANTS: usize = 50;

/// `POST /conversations` body: `with` for a one-to-one conversation,
/// `participants` for a group conversation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub with: Option<String>,
    pub participants: Option<Vec<String>>,
}

/// `POST /conversations/{id}/messages` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    pub text: String,
    /// `text/plain` (default) or `text/html`.
    pub content_type: Option<String>,
}

/// `POST /conversations/{id}/participants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    pub user: String,
}

/// `POST /conversations/{id}/typing` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typing {
    pub active: bool,
}

/// What an id names, from the caller's point of view.
enum Conv {
    /// A one-to-one conversation with `other`.
    OneToOne { id: String, other: Address },
    /// A group conversation the caller is in.
    Group(Box<Conference>),
}

/// Finds conversation `id` of `me`: 404 when it does not exist or the
/// caller is not in it (a conversation's existence is private).
fn find(web: &Web, me: &Address, id: &str) -> ApiResult<Conv> {
    if let Some(c) = web.conferences.get(id) {
        if c.is_member(me) {
            return Ok(Conv::Group(Box::new(c)));
        }
        return Err(Problem::not_found("No such conversation"));
    }
    match web.conversations.pair_of(id) {
        Some((a, b)) if &a == me => Ok(Conv::OneToOne {
            id: id.to_owned(),
            other: b,
        }),
        Some((a, b)) if &b == me => Ok(Conv::OneToOne {
            id: id.to_owned(),
            other: a,
        }),
        _ => Err(Problem::not_found("No such conversation")),
    }
}

fn participants_json(web: &Web, c: &Conference) -> Vec<Value> {
    let mut users: Vec<&Address> = c.members.iter().map(|m| &m.user).collect();
    users.sort();
    users.dedup();
    users
        .into_iter()
        .map(|u| json!({"user": u.to_string(), "display_name": web.display_of(u)}))
        .collect()
}

fn group_json(web: &Web, c: &Conference) -> Value {
    json!({
        "id": c.id,
        "kind": "group",
        "subject": c.subject,
        "participants": participants_json(web, c),
        "created_at": c.created_ms,
        "last_activity_at": c.last_activity_ms,
    })
}

fn one_to_one_json(web: &Web, id: &str, me: &Address, other: &Address) -> Value {
    json!({
        "id": id,
        "kind": "one_to_one",
        "with": other.to_string(),
        "with_display_name": web.display_of(other),
        "escalated_to": web.conversations.escalated(me, other),
    })
}

fn entry_json(web: &Web, e: &HistoryEntry) -> Value {
    let (ct, text) = super::events::body_text(&e.content_type, &e.body);
    json!({
        "from": e.from.to_string(),
        "from_display": e.from_display.clone().or_else(|| web.display_of(&e.from)),
        "content_type": ct,
        "text": text,
        "at": e.at_ms,
    })
}

/// The error a conference refusal becomes.
fn conf_problem(e: ConfError) -> Problem {
    match e {
        ConfError::NotFound => Problem::not_found("No such conversation"),
        ConfError::NotMember => Problem::forbidden("You are not in this conversation"),
        ConfError::NotInvited => Problem::forbidden("You were not invited to this conversation"),
        ConfError::Blocked => {
            Problem::forbidden("That person does not accept invitations from you")
        }
        ConfError::Full(n) => {
            Problem::conflict(format!("The conversation is full ({n} participants)"))
        }
    }
}

/// The caller's current conversations, most recent first.
pub async fn list(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let mut out: Vec<(i64, Value)> = web
        .conversations
        .of_user(&me.user)
        .into_iter()
        .map(|(id, other, last)| (last, one_to_one_json(&web, &id, &me.user, &other)))
        .collect();
    for c in web.sip.conferences_of(&me.user) {
        out.push((c.last_activity_ms, group_json(&web, &c)));
    }
    out.sort_by_key(|(last, _)| std::cmp::Reverse(*last));
    Ok(Json(
        json!({"conversations": out.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
    ))
}

/// Starts (or finds) a one-to-one conversation, or starts a group
/// conversation and invites its participants.
pub async fn start(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Body(req): Body<Start>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    match (req.with, req.participants) {
        (Some(with), None) => {
            let other = web.parse_user("with", &with, Some(&me.user))?;
            if other == me.user {
                return Err(Problem::invalid("with", "You cannot chat with yourself"));
            }
            if web.directory.user(&other).is_none() {
                return Err(Problem::invalid("with", "No such user"));
            }
            let id = web.conversations.id(
                &me.user,
                &other,
                switchboard_core::now_ms(),
                crate::sip::ids::long_token,
            );
            Ok((
                StatusCode::OK,
                Json(one_to_one_json(&web, &id, &me.user, &other)),
            ))
        }
        (None, Some(list)) => {
            if list.is_empty() || list.len() > MAX_START_PARTICIPANTS {
                return Err(Problem::invalid(
                    "participants",
                    format!("Name between 1 and {MAX_START_PARTICIPANTS} people"),
                ));
            }
            let mut invitees = Vec::new();
            for (i, raw) in list.iter().enumerate() {
                let a = web.parse_user(&format!("participants[{i}]"), raw, Some(&me.user))?;
                if web.directory.user(&a).is_none() {
                    return Err(Problem::invalid(
                        &format!("participants[{i}]"),
                        format!("No such user: {a}"),
                    ));
                }
                if a != me.user && !invitees.contains(&a) {
                    invitees.push(a);
                }
            }
            if !web.directory.is_served(me.user.domain()) {
                return Err(Problem::forbidden(
                    "Only users of a served domain may start group conversations",
                ));
            }
            let id = web.sip.create_group_as(&me.user);
            let mut results = Vec::new();
            for invitee in &invitees {
                let status = web.sip.invite_as(&id, &me.user, invitee).await;
                results.push(
                    json!({"user": invitee.to_string(), "status": status, "added": status < 300}),
                );
            }
            let c = web
                .conferences
                .get(&id)
                .ok_or_else(|| Problem::not_found("The conversation ended"))?;
            let mut body = group_json(&web, &c);
            if let Some(o) = body.as_object_mut() {
                o.insert("invitations".into(), json!(results));
            }
            Ok((StatusCode::CREATED, Json(body)))
        }
        _ => Err(Problem::invalid(
            "with",
            "Give either with (one person) or participants (a group)",
        )),
    }
}

/// One conversation.
pub async fn one(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(match find(&web, &me.user, &id)? {
        Conv::OneToOne { id, other } => one_to_one_json(&web, &id, &me.user, &other),
        Conv::Group(c) => group_json(&web, &c),
    }))
}

/// Sends a message in a conversation.
pub async fn send(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(req): Body<Send>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let content_type = req.content_type.unwrap_or_else(|| "text/plain".into());
    if !SENDABLE.contains(&content_type.as_str()) {
        return Err(Problem::invalid(
            "content_type",
            "Must be text/plain or text/html",
        ));
    }
    if req.text.trim().is_empty() {
        return Err(Problem::invalid("text", "The message is empty"));
    }
    if req.text.len() > web.settings.max_im_body {
        return Err(Problem::too_large(format!(
            "The message is larger than {} bytes",
            web.settings.max_im_body
        )));
    }
    let content_type = format!("{content_type};charset=utf-8");
    let endpoint = format!("web:{}", me.sid);
    match find(&web, &me.user, &id)? {
        Conv::Group(c) => {
            web.sip
                .post_as(&c.id, &me.user, &content_type, req.text.as_bytes())
                .await
                .map_err(refused)?;
            Ok((
                StatusCode::CREATED,
                Json(json!({"conversation": c.id, "status": "delivered"})),
            ))
        }
        Conv::OneToOne { other, .. } => {
            let msg = InstantMessage {
                from: me.user.clone(),
                from_display: web.display_of(&me.user),
                to: other,
                content_type,
                body: req.text.into_bytes(),
                received_ms: switchboard_core::now_ms(),
            };
            let sent = web
                .sip
                .send_im_from_endpoint(msg, &endpoint)
                .await
                .map_err(refused)?;
            let body = match sent {
                ImSent::Delivered { conversation } => {
                    json!({"conversation": conversation, "status": "delivered"})
                }
                ImSent::Stored { conversation } => {
                    json!({"conversation": conversation, "status": "stored"})
                }
                ImSent::ToConference { conference } => {
                    json!({"conversation": conference, "status": "delivered"})
                }
            };
            Ok((StatusCode::CREATED, Json(body)))
        }
    }
}

/// The problem a refused message becomes.
fn refused(r: ImRefused) -> Problem {
    match r {
        ImRefused::NoSuchUser => Problem::not_found("No such user"),
        ImRefused::Blocked => Problem::forbidden(r.to_string()),
        ImRefused::ArchiveUnavailable => Problem::unavailable(r.to_string(), 30),
        ImRefused::OfflineDisabled | ImRefused::OfflineFull => Problem::conflict(r.to_string()),
        ImRefused::StoreFailed => Problem::internal("offline store", r),
        ImRefused::NotInConversation => Problem::not_found("No such conversation"),
    }
}

/// The recent history of a conversation (what a late joiner is replayed).
pub async fn history(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let entries: Vec<HistoryEntry> = match find(&web, &me.user, &id)? {
        Conv::Group(c) => c.history.iter().cloned().collect(),
        Conv::OneToOne { other, .. } => {
            web.conversations
                .recent(&me.user, &other, switchboard_core::now_ms())
        }
    };
    Ok(Json(json!({
        "conversation": id,
        "messages": entries.iter().map(|e| entry_json(&web, e)).collect::<Vec<_>>(),
    })))
}

/// Adds a person: to a group conversation, an invitation; to a one-to-one
/// conversation, escalation into a group conversation with all three.
pub async fn add_participant(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(req): Body<AddParticipant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let invitee = web.parse_user("user", &req.user, Some(&me.user))?;
    if web.directory.user(&invitee).is_none() {
        return Err(Problem::invalid("user", "No such user"));
    }
    let conf = match find(&web, &me.user, &id)? {
        Conv::Group(c) => c.id,
        Conv::OneToOne { other, .. } => {
            if invitee == other || invitee == me.user {
                return Err(Problem::invalid(
                    "user",
                    "Name a third person to make this a group conversation",
                ));
            }
            match web.conversations.escalated(&me.user, &other) {
                Some(conf)
                    if web
                        .conferences
                        .get(&conf)
                        .is_some_and(|c| c.is_member(&me.user)) =>
                {
                    conf
                }
                _ => {
                    let status = web.sip.escalate_as(&me.user, &other, &invitee).await;
                    let (conf, status) = status;
                    return added(&web, &conf, &invitee, status);
                }
            }
        }
    };
    let status = web.sip.invite_as(&conf, &me.user, &invitee).await;
    added(&web, &conf, &invitee, status)
}

fn added(
    web: &Web,
    conf: &str,
    invitee: &Address,
    status: u16,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let problem = |p: Problem| Err(p.with_detail(format!("SIP status {status}")));
    match status {
        202 => Ok((
            StatusCode::ACCEPTED,
            Json(
                json!({"conversation": conf, "invited": invitee.to_string(), "status": "ringing"}),
            ),
        )),
        200..=299 => {
            let c = web
                .conferences
                .get(conf)
                .ok_or_else(|| Problem::not_found("The conversation ended"))?;
            let mut body = group_json(web, &c);
            if let Some(o) = body.as_object_mut() {
                o.insert("added".into(), json!(invitee.to_string()));
            }
            Ok((StatusCode::OK, Json(body)))
        }
        403 => problem(Problem::forbidden(
            "That person does not accept invitations from you",
        )),
        404 => problem(Problem::not_found("No such user")),
        486 => problem(Problem::conflict("The conversation is full")),
        480 | 408 => problem(Problem::conflict(format!(
            "{invitee} is not signed in and cannot be added now"
        ))),
        603 => problem(Problem::conflict(format!("{invitee} declined"))),
        _ => problem(Problem::conflict(format!("{invitee} could not be added"))),
    }
}

/// Joins a group conversation the caller was invited to.
pub async fn join(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    web.sip.join_as(&id, &me.user).map_err(conf_problem)?;
    let c = web
        .conferences
        .get(&id)
        .ok_or_else(|| Problem::not_found("No such conversation"))?;
    Ok(Json(group_json(&web, &c)))
}

/// Leaves a group conversation (the caller's web leg; a SIP client in an
/// IM session with the conference leaves with its own BYE).
pub async fn leave(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    match find(&web, &me.user, &id)? {
        Conv::Group(c) => {
            web.sip.leave_as(&c.id, &me.user);
            Ok(StatusCode::NO_CONTENT)
        }
        Conv::OneToOne { .. } => Err(Problem::conflict(
            "A one-to-one conversation cannot be left; just stop writing",
        )),
    }
}

/// Tells the other party the caller is typing (one-to-one conversations).
pub async fn typing(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(id): Path<String>,
    OptionalBody(req): OptionalBody<Typing>,
) -> ApiResult<StatusCode> {
    let active = req.map(|t| t.active).unwrap_or(true);
    match find(&web, &me.user, &id)? {
        Conv::OneToOne { other, .. } => {
            let endpoint = format!("web:{}", me.sid);
            web.sip
                .send_typing_from_endpoint(&me.user, &endpoint, &other, active)
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        Conv::Group(_) => Err(Problem::conflict(
            "Typing notifications are not relayed in group conversations",
        )),
    }
}
