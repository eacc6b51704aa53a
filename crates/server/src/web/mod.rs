//! The web front door: an HTTP/JSON API under `/api/v1` with an event
//! channel, the single-page web client at `/`, presence badges for other
//! applications (`/presence/{user}`), and SIP over WebSocket (RFC 7118) on
//! the same listener.
//!
//! Everything a web user does goes through the protocol-neutral core (the
//! presence engine, contact lists, privacy, conferences, the archive) or the
//! same delivery paths SIP uses, so a web user and a SIP user are peers: a
//! web session is one more device of its user.

pub mod admin;
pub mod auth;
pub mod contacts;
pub mod conversations;
pub mod events;
pub mod live;
pub mod me;
pub mod openapi;
pub mod problem;
pub mod public;
pub mod serve;
pub mod sipws;
pub mod static_files;

use crate::sip::SipServer;
use auth::{RateLimit, Session, Sessions};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use live::Live;
use problem::Problem;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::conference::Conferences;
use switchboard_core::conversation::Conversations;
use switchboard_core::endpoints::Endpoints;
use switchboard_core::presence::{ContactBook, Decision, PresenceEngine, PresenceState, privacy};
use switchboard_core::{Address, Directory, Policies};
use switchboard_store::Store;

/// What anonymous callers of the presence endpoints see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousPresence {
    /// What the External access level shows (availability only).
    External,
    /// Nothing: sign-in is required.
    None,
}

/// Settings of the web front door (from `[web]`).
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub session_ttl: Duration,
    pub max_body_bytes: usize,
    pub rate: RateLimit,
    pub max_connections: usize,
    pub long_poll_seconds: u64,
    pub anonymous_presence: AnonymousPresence,
    /// `Access-Control-Allow-Origin` of the presence endpoints ("" for none).
    pub badge_cors_origin: String,
    pub badge_cache_seconds: u64,
    pub max_contacts: u32,
    pub max_im_body: usize,
}

/// Shared state of the web front door.
pub struct Web {
    pub settings: WebSettings,
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub policies: Arc<Policies>,
    pub contacts: Arc<ContactBook>,
    pub engine: Arc<PresenceEngine>,
    pub conferences: Arc<Conferences>,
    pub conversations: Arc<Conversations>,
    pub endpoints: Arc<dyn Endpoints>,
    pub sip: Arc<SipServer>,
    pub sessions: Sessions,
    pub live: Live,
}

/// How one person is shown to one watcher.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceView {
    pub state: PresenceState,
    /// The person has privacy mode on and has not decided about the watcher.
    pub pending: bool,
}

/// The JSON form of a presence state.
pub fn presence_json(state: &PresenceState) -> Value {
    json!({
        "availability": state.availability.token(),
        "label": state.availability.label(),
        "idle": state.idle,
        "activity": state.activity.map(|a| a.token()),
        "note": state.note,
        "meeting": state.meeting,
    })
}

/// The bearer token of a request's Authorization header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Web {
    /// How `person` is shown to `watcher`.
    pub fn presence_for(&self, person: &Address, watcher: &Address) -> PresenceView {
        match switchboard_core::presence::access::decision(
            &self.directory,
            &self.contacts,
            &self.policies,
            person,
            watcher,
        ) {
            Decision::Allow(level) => PresenceView {
                state: privacy::filter(&self.engine.current(person), level),
                pending: false,
            },
            Decision::Pending => PresenceView {
                state: PresenceState::offline(),
                pending: true,
            },
        }
    }

    /// A user's display name, if they have one.
    pub fn display_of(&self, user: &Address) -> Option<String> {
        self.directory
            .user(user)
            .and_then(|u| u.display_name.clone())
    }

    /// Reads a user address from the API: `alice@example.com`, or `alice`
    /// for the caller's own domain.
    pub fn parse_user(
        &self,
        field: &str,
        raw: &str,
        caller: Option<&Address>,
    ) -> Result<Address, Problem> {
        let raw = raw.trim();
        let raw = raw.strip_prefix("sip:").unwrap_or(raw);
        let parsed = if raw.contains('@') {
            Address::parse(raw)
        } else {
            let domain = caller
                .map(|c| c.domain().to_owned())
                .or_else(|| self.directory.domains().into_iter().next())
                .unwrap_or_default();
            Address::from_parts(raw, &domain)
        };
        parsed.map_err(|e| Problem::invalid(field, format!("Not a user address: {e}")))
    }

    /// Every online web session re-reads its user's contact list and
    /// re-evaluates what it shows (after contact or privacy changes).
    pub fn reevaluate(&self) {
        for s in self.live.all() {
            s.control(live::Control::ContactsChanged);
        }
    }

    /// Applies a change made through the API at once (directory, policies,
    /// contact lists), instead of at the next poll for changes, so the
    /// caller's next request sees it; then every online session
    /// re-evaluates what it shows.
    pub async fn reload_now(&self) {
        crate::app::reload(
            self.store.as_ref(),
            &self.directory,
            &self.policies,
            &self.contacts,
            &self.sip,
        )
        .await;
        self.reevaluate();
    }

    /// Starts the periodic jobs: sessions going offline, expired sessions
    /// removed.
    pub fn start(self: &Arc<Self>) {
        let web = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                web.live.sweep(&web);
                if n.is_multiple_of(600) {
                    web.sessions.purge().await;
                }
                n += 1;
            }
        });
    }
}

/// The caller of an API endpoint (any signed-in user).
pub struct Caller(pub Session);

impl FromRequestParts<Arc<Web>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Caller, Problem> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            Problem::unauthorized("Missing bearer token (Authorization: Bearer …)")
        })?;
        Ok(Caller(web.sessions.authenticate(token).await?))
    }
}

/// The caller of an admin endpoint (a signed-in administrator).
pub struct AdminCaller(pub Session);

impl FromRequestParts<Arc<Web>> for AdminCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<AdminCaller, Problem> {
        let Caller(s) = Caller::from_request_parts(parts, web).await?;
        if !s.admin {
            return Err(Problem::forbidden(
                "This endpoint requires the administrator role",
            ));
        }
        Ok(AdminCaller(s))
    }
}

/// An optional JSON body: absent (empty) is `None`; present must be valid.
pub struct OptionalBody<T>(pub Option<T>);

impl<T, S> axum::extract::FromRequest<S> for OptionalBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
            || req
                .headers()
                .contains_key(axum::http::header::TRANSFER_ENCODING);
        if !has_body {
            return Ok(OptionalBody(None));
        }
        let Body(v) = Body::<T>::from_request(req, state).await?;
        Ok(OptionalBody(Some(v)))
    }
}

/// JSON body extractor whose rejections are problem details.
pub struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(e.into()),
        }
    }
}

/// The whole HTTP application.
pub fn router(web: Arc<Web>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/sessions", post(me::sign_in).get(me::list_sessions))
        .route("/sessions/current", axum::routing::delete(me::sign_out))
        .route("/sessions/{sid}", axum::routing::delete(me::revoke_session))
        .route("/me", get(me::me))
        .route(
            "/me/presence",
            get(me::my_presence)
                .put(me::set_presence)
                .delete(me::clear_presence),
        )
        .route("/me/note", put(me::set_note).delete(me::clear_note))
        .route("/me/privacy", get(me::privacy).put(me::set_privacy))
        .route("/contacts", get(contacts::list))
        .route(
            "/contacts/{contact}",
            put(contacts::upsert)
                .get(contacts::one)
                .delete(contacts::remove),
        )
        .route("/groups", get(contacts::groups).post(contacts::add_group))
        .route(
            "/groups/{group}",
            put(contacts::rename_group).delete(contacts::remove_group),
        )
        .route("/blocked", get(contacts::blocked))
        .route(
            "/blocked/{contact}",
            put(contacts::block).delete(contacts::unblock),
        )
        .route("/watchers/pending", get(contacts::pending))
        .route(
            "/watchers/pending/{watcher}",
            post(contacts::decide_pending),
        )
        .route("/presence/{user}", get(public::api_presence))
        .route(
            "/conversations",
            get(conversations::list).post(conversations::start),
        )
        .route("/conversations/{id}", get(conversations::one))
        .route(
            "/conversations/{id}/messages",
            post(conversations::send).get(conversations::history),
        )
        .route(
            "/conversations/{id}/participants",
            post(conversations::add_participant),
        )
        .route("/conversations/{id}/join", post(conversations::join))
        .route("/conversations/{id}/leave", post(conversations::leave))
        .route("/conversations/{id}/typing", post(conversations::typing))
        .route("/events", get(events::websocket))
        .route("/events/poll", get(events::poll))
        .route("/admin/users", get(admin::users).post(admin::add_user))
        .route(
            "/admin/users/{user}",
            get(admin::user)
                .patch(admin::update_user)
                .delete(admin::remove_user),
        )
        .route(
            "/admin/domains",
            get(admin::domains).post(admin::add_domain),
        )
        .route(
            "/admin/domains/{domain}",
            axum::routing::delete(admin::remove_domain),
        )
        .route("/admin/policies/{kind}", get(admin::policies))
        .route(
            "/admin/policies/{kind}/{scope}",
            put(admin::set_policy).delete(admin::clear_policy),
        )
        .fallback(|| async { Problem::not_found("No such API endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "This endpoint does not take this method",
            )
        });
    Router::new()
        .nest("/api/v1", api)
        .route(
            "/presence/{user}",
            get(public::presence).options(public::preflight),
        )
        .route("/", get(sipws::root))
        .route("/sip", get(sipws::root))
        .route("/ws", get(sipws::root))
        .fallback(static_files::serve)
        .layer(DefaultBodyLimit::max(web.settings.max_body_bytes))
        .with_state(web)
}
