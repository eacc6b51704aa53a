//! Signing in and out, and what concerns the caller: their sessions, their
//! own presence (availability, activity, note) and privacy mode.

use super::auth::{Session, sid_of};
use super::live::set_device_state;
use super::problem::{ApiResult, Problem};
use super::{Body, Caller, Web, presence_json};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_core::policy::PrivacyPolicy;
use switchboard_core::presence::{Activity, Availability, DeviceState, PresenceState, Source};
use switchboard_store::PolicyScope;

/// `POST /sessions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub user: String,
    pub password: String,
    /// Free text naming the client ("Firefox on Linux"), shown in session lists.
    pub client: Option<String>,
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.sid,
        "user": s.user.to_string(),
        "admin": s.admin,
        "created_at": s.created_ms,
        "expires_at": s.expires_ms,
        "client": s.client,
    })
}

/// Signs in with a user name and password; answers a bearer token.
pub async fn sign_in(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<SignIn>,
) -> ApiResult<impl IntoResponse> {
    if req.password.is_empty() {
        return Err(Problem::invalid("password", "The password is empty"));
    }
    if req.client.as_ref().is_some_and(|c| c.chars().count() > 200) {
        return Err(Problem::invalid("client", "At most 200 characters"));
    }
    let user = web.parse_user("user", &req.user, None)?;
    let (token, session) = web
        .sessions
        .sign_in(&user, &req.password, req.client, peer.ip())
        .await?;
    let mut body = session_json(&session);
    if let Some(o) = body.as_object_mut() {
        o.insert("token".into(), json!(token));
        o.insert("token_type".into(), json!("Bearer"));
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// The caller's sessions.
pub async fn list_sessions(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
) -> ApiResult<Json<Value>> {
    let list = web.sessions.list(&me.user).await?;
    let now = switchboard_core::now_ms();
    Ok(Json(json!({
        "sessions": list.iter().filter(|s| s.expires_ms > now).map(|s| json!({
            "id": sid_of(&s.token_hash),
            "created_at": s.created_ms,
            "expires_at": s.expires_ms,
            "client": s.client,
            "current": s.token_hash == me.token_hash,
            "online": web.live.get(&sid_of(&s.token_hash)).is_some(),
        })).collect::<Vec<_>>()
    })))
}

/// Signs out (revokes the caller's token).
pub async fn sign_out(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<StatusCode> {
    web.sessions.revoke(&me.token_hash).await?;
    web.live.end(&web, &me.sid);
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes another session of the caller.
pub async fn revoke_session(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    let list = web.sessions.list(&me.user).await?;
    let Some(target) = list.iter().find(|s| sid_of(&s.token_hash) == sid) else {
        return Err(Problem::not_found("You have no session with this id"));
    };
    web.sessions.revoke(&target.token_hash).await?;
    web.live.end(&web, &sid);
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is, with their presence.
pub async fn me(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let state = web.engine.current(&me.user);
    Ok(Json(json!({
        "user": me.user.to_string(),
        "display_name": web.display_of(&me.user),
        "admin": me.admin,
        "session": session_json(&me),
        "presence": presence_json(&state),
    })))
}

/// The caller's aggregated presence.
pub async fn my_presence(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
) -> ApiResult<Json<Value>> {
    Ok(Json(presence_json(&web.engine.current(&me.user))))
}

/// `PUT /me/presence` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPresence {
    pub availability: String,
    pub activity: Option<String>,
    pub note: Option<String>,
    /// The browser saw no input for a while (turns Available into Away after
    /// the configured time, like an idle SIP client).
    #[serde(default)]
    pub idle: bool,
}

const MAX_NOTE: usize = 500;

fn parse_state(req: &SetPresence) -> ApiResult<PresenceState> {
    let availability = Availability::from_token(&req.availability)
        .filter(|a| *a != Availability::Offline)
        .ok_or_else(|| {
            Problem::invalid(
                "availability",
                format!(
                    "Unknown availability {:?}; use one of available, busy, do-not-disturb, be-right-back, away, off-work",
                    req.availability
                ),
            )
        })?;
    let activity = match &req.activity {
        None => None,
        Some(a) => Some(Activity::from_token(a).ok_or_else(|| {
            Problem::invalid(
                "activity",
                format!("Unknown activity {a:?}; use in-a-meeting, in-a-call or out-of-office"),
            )
        })?),
    };
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE)
    {
        return Err(Problem::invalid(
            "note",
            format!("The note is longer than {MAX_NOTE} characters"),
        ));
    }
    Ok(PresenceState {
        availability,
        idle: false,
        activity,
        note: req.note.clone().filter(|n| !n.trim().is_empty()),
        meeting: None,
    })
}

/// Sets what this web session reports: the availability the user chose.
/// The session becomes a point of presence of the user if it was not one.
pub async fn set_presence(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Body(req): Body<SetPresence>,
) -> ApiResult<Json<Value>> {
    let mut state = parse_state(&req)?;
    if state.note.is_none() {
        // Keep the note the user set before unless they send a new one.
        state.note = web.engine.current(&me.user).note;
    }
    let live = web.live.polled(&web, &me.sid, &me.user);
    if req.idle && state.availability == Availability::Available {
        // What a browser reports by itself when nobody touched it for a
        // while: a machine state, like a SIP client's idle publication, so
        // that it turns Away after the configured time (a state the user
        // chose is shown as chosen, never idle, so it would stay Available).
        let now = switchboard_core::now_ms();
        web.engine.set_device(
            &me.user,
            &live.device(),
            DeviceState {
                state,
                user_set: false,
                idle_since_ms: Some(now),
                updated_ms: now,
                source: Source::Published,
            },
            now,
        );
    } else {
        set_device_state(&web, &live, state, None);
    }
    Ok(Json(presence_json(&web.engine.current(&me.user))))
}

/// Back to automatic presence for this session (Available while online).
pub async fn clear_presence(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
) -> ApiResult<Json<Value>> {
    if let Some(live) = web.live.get(&me.sid) {
        web.engine
            .publication_ended(&me.user, &live.device(), true, switchboard_core::now_ms());
    }
    Ok(Json(presence_json(&web.engine.current(&me.user))))
}

/// `PUT /me/note` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNote {
    pub note: String,
}

/// Sets the note, keeping the availability this session reports.
pub async fn set_note(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Body(req): Body<SetNote>,
) -> ApiResult<Json<Value>> {
    if req.note.chars().count() > MAX_NOTE {
        return Err(Problem::invalid(
            "note",
            format!("The note is longer than {MAX_NOTE} characters"),
        ));
    }
    let live = web.live.polled(&web, &me.sid, &me.user);
    set_own_note(
        &web,
        &me.user,
        &live.device(),
        Some(req.note).filter(|n| !n.trim().is_empty()),
    );
    Ok(Json(presence_json(&web.engine.current(&me.user))))
}

/// Changes the note this session reports and nothing else: its own state
/// (chosen or automatic) stays as it is, and other devices' states are not
/// copied into it (a phone's "in a call" must not become a choice of the
/// user's). The shown note is the most recent one of any device.
fn set_own_note(web: &Web, user: &switchboard_core::Address, device: &str, note: Option<String>) {
    let now = switchboard_core::now_ms();
    let mut own = web
        .engine
        .device(user, device)
        .unwrap_or_else(|| DeviceState::registered(now));
    own.state.note = note;
    own.updated_ms = now;
    own.source = Source::Published;
    web.engine.set_device(user, device, own, now);
}

/// Clears the note.
pub async fn clear_note(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let live = web.live.polled(&web, &me.sid, &me.user);
    set_own_note(&web, &me.user, &live.device(), None);
    Ok(Json(presence_json(&web.engine.current(&me.user))))
}

/// The caller's privacy mode.
pub async fn privacy(State(web): State<Arc<Web>>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let p: PrivacyPolicy = web.policies.effective(&me.user);
    Ok(Json(json!({"privacy_mode": p.privacy_mode})))
}

/// `PUT /me/privacy` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPrivacy {
    pub privacy_mode: bool,
}

/// Turns privacy mode on or off (on: only contacts see the caller's presence;
/// others wait for a decision, listed under pending watchers).
pub async fn set_privacy(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Body(req): Body<SetPrivacy>,
) -> ApiResult<Json<Value>> {
    let scope = PolicyScope::User(me.user.to_string());
    let mut doc = web
        .store
        .get_policy(
            <PrivacyPolicy as switchboard_core::PolicyKind>::KIND,
            &scope,
        )
        .await?
        .unwrap_or_else(|| json!({}));
    if let Some(o) = doc.as_object_mut() {
        o.insert("privacy_mode".into(), json!(req.privacy_mode));
    }
    web.store
        .set_policy(
            <PrivacyPolicy as switchboard_core::PolicyKind>::KIND,
            &scope,
            &doc,
        )
        .await?;
    web.reload_now().await;
    Ok(Json(json!({"privacy_mode": req.privacy_mode})))
}
