//! Presence for other applications: `GET /presence/{user}` (JSON) and
//! `GET /presence/{user}.svg` (a small coloured badge), the way intranet
//! pages and mail clients show a presence dot next to a name. Privacy holds:
//! a signed-in caller (bearer token) sees what their access level shows;
//! anonymous callers see what the External level shows, or nothing, by
//! configuration. A user who does not exist looks like one who is offline.

use super::problem::{ApiResult, Problem};
use super::{AnonymousPresence, Caller, Web, presence_json};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_core::Address;
use switchboard_core::policy::PrivacyPolicy;
use switchboard_core::presence::{AccessLevel, Availability, PresenceState, privacy};

/// `GET /api/v1/presence/{user}`: a person as the caller may see them.
pub async fn api_presence(
    State(web): State<Arc<Web>>,
    Caller(me): Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let person = web.parse_user("user", &user, Some(&me.user))?;
    let view = web.presence_for(&person, &me.user);
    let mut v = presence_json(&view.state);
    if let Some(o) = v.as_object_mut() {
        o.insert("user".into(), json!(person.to_string()));
        o.insert("display_name".into(), json!(web.display_of(&person)));
        o.insert(
            "access".into(),
            json!(if view.pending { "pending" } else { "allowed" }),
        );
    }
    Ok(Json(v))
}

/// What an anonymous caller sees of `person`.
fn anonymous_view(web: &Web, person: &Address) -> PresenceState {
    let exists = web.directory.user(person).is_some();
    let private = web.policies.effective::<PrivacyPolicy>(person).privacy_mode;
    if !exists || private {
        return PresenceState::offline();
    }
    privacy::filter(&web.engine.current(person), AccessLevel::External)
}

/// `GET /presence/{user}` and `/presence/{user}.svg`.
pub async fn presence(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    match presence_inner(&web, &headers, &raw).await {
        Ok(r) => r,
        Err(p) => with_cors(&web, p.into_response()),
    }
}

async fn presence_inner(web: &Web, headers: &HeaderMap, raw: &str) -> ApiResult<Response> {
    let (name, svg) = match raw.strip_suffix(".svg") {
        Some(n) => (n, true),
        None => (raw.strip_suffix(".json").unwrap_or(raw), false),
    };
    let person = web.parse_user("user", name, None)?;
    let (state, private) = match super::bearer(headers) {
        Some(token) => {
            let me = web.sessions.authenticate(token).await?;
            (web.presence_for(&person, &me.user).state, true)
        }
        None => {
            if web.settings.anonymous_presence == AnonymousPresence::None {
                return Err(Problem::unauthorized(
                    "Presence is shown to signed-in users only (send a bearer token)",
                ));
            }
            (anonymous_view(web, &person), false)
        }
    };
    let mut resp = if svg {
        (
            [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
            badge(&state),
        )
            .into_response()
    } else {
        let mut v = presence_json(&state);
        if let Some(o) = v.as_object_mut() {
            o.insert("user".into(), json!(person.to_string()));
        }
        Json(v).into_response()
    };
    let cache = format!(
        "{}, max-age={}",
        if private { "private" } else { "public" },
        web.settings.badge_cache_seconds
    );
    if let Ok(v) = HeaderValue::from_str(&cache) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Authorization"));
    Ok(with_cors(web, resp))
}

/// CORS preflight of the presence endpoints (a page sending a token).
pub async fn preflight(State(web): State<Arc<Web>>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    with_cors(&web, resp)
}

fn with_cors(web: &Web, mut resp: Response) -> Response {
    if !web.settings.badge_cors_origin.is_empty()
        && let Ok(v) = HeaderValue::from_str(&web.settings.badge_cors_origin)
    {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp
}

/// The colour of an availability (the colours enterprise users know).
pub fn colour(a: Availability) -> &'static str {
    match a {
        Availability::Available => "#6bb700",
        Availability::Busy | Availability::DoNotDisturb => "#c4314b",
        Availability::BeRightBack | Availability::Away => "#f8d22a",
        Availability::OffWork => "#8764b8",
        Availability::Offline => "#8a8886",
    }
}

/// A badge: a coloured dot and the availability's label.
pub fn badge(state: &PresenceState) -> String {
    let a = state.availability;
    let label = match (a, state.idle) {
        (Availability::Available | Availability::Busy, true) => format!("{} (idle)", a.label()),
        _ => a.label().to_owned(),
    };
    // Widths: 7 px per character of the label is enough for the font used.
    let text_width = 7 * label.chars().count() as u32;
    let width = 24 + text_width;
    let bar = if a == Availability::DoNotDisturb {
        "<rect x=\"6.5\" y=\"9\" width=\"7\" height=\"2\" fill=\"#fff\"/>"
    } else {
        ""
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" \
         viewBox=\"0 0 {width} 20\" role=\"img\" aria-label=\"{label}\">\
         <title>{label}</title>\
         <rect width=\"{width}\" height=\"20\" rx=\"3\" fill=\"#f3f2f1\"/>\
         <circle cx=\"10\" cy=\"10\" r=\"6\" fill=\"{colour}\"/>{bar}\
         <text x=\"20\" y=\"14\" font-family=\"Segoe UI,Helvetica,Arial,sans-serif\" \
         font-size=\"11\" fill=\"#323130\">{label}</text></svg>",
        colour = colour(a),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_are_well_formed_svg_with_the_label() {
        for a in Availability::ALL {
            let svg = badge(&PresenceState::with(a));
            let mut reader = quick_xml::Reader::from_str(&svg);
            let mut depth = 0i32;
            let mut root = None;
            loop {
                match reader.read_event().expect("well-formed XML") {
                    quick_xml::events::Event::Start(e) => {
                        if root.is_none() {
                            root = Some(e.name().into_inner().to_owned());
                        }
                        depth += 1;
                    }
                    quick_xml::events::Event::End(_) => depth -= 1,
                    quick_xml::events::Event::Eof => break,
                    _ => {}
                }
            }
            assert_eq!(depth, 0);
            assert_eq!(root.as_deref(), Some("svg"));
            assert!(svg.contains(a.label()), "{svg}");
            assert!(svg.contains(colour(a)));
        }
    }
}
