//! Errors of the HTTP API as RFC 9457 problem details
//! (`application/problem+json`): a status, a precise title, and for bad input
//! the field at fault, so that a client (or the person writing one) knows
//! exactly what to fix.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem answer.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: StatusCode,
    /// A URI naming the kind of problem (relative to the API).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[serde(rename = "status")]
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Sends the bearer challenge (`WWW-Authenticate`) with a 401. A flag,
    /// not the header's text, so that results carrying a problem stay small.
    #[serde(skip)]
    pub bearer_challenge: bool,
}

/// Result type of API handlers.
pub type ApiResult<T> = Result<T, Problem>;

impl Problem {
    /// A problem with `status`, a short kind slug and a title.
    pub fn new(status: StatusCode, kind: &str, title: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: format!("/problems/{kind}"),
            title: title.into(),
            status_code: status.as_u16(),
            detail: None,
            field: None,
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// 400 about one field of the request.
    pub fn invalid(field: &str, title: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "invalid-field", title);
        p.field = Some(field.to_owned());
        p
    }

    /// 400 about the request as a whole.
    pub fn bad_request(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", title)
    }

    /// 401: no usable credentials.
    pub fn unauthorized(title: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", title);
        p.bearer_challenge = true;
        p
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", title)
    }

    /// 404.
    pub fn not_found(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", title)
    }

    /// 409.
    pub fn conflict(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", title)
    }

    /// 413.
    pub fn too_large(title: impl Into<String>) -> Problem {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", title)
    }

    /// 429 with Retry-After.
    pub fn rate_limited(retry_after: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        );
        p.retry_after = Some(retry_after.max(1));
        p
    }

    /// 503 with Retry-After.
    pub fn unavailable(title: impl Into<String>, retry_after: u64) -> Problem {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", title);
        p.retry_after = Some(retry_after.max(1));
        p
    }

    /// 500, logged; the client gets no internals.
    pub fn internal(what: &str, error: impl std::fmt::Display) -> Problem {
        tracing::error!(%error, "web API: {what}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("Internal error: {what}"),
        )
    }

    /// Adds a detail sentence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.detail = Some(detail.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry = self.retry_after;
        let challenge = self.bearer_challenge;
        let mut resp = (status, Json(self)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(r) = retry
            && let Ok(v) = HeaderValue::from_str(&r.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchboard\""),
            );
        }
        resp
    }
}

impl From<switchboard_store::StoreError> for Problem {
    fn from(e: switchboard_store::StoreError) -> Problem {
        use switchboard_store::StoreError as E;
        match e {
            E::NotFound(what) => Problem::not_found(format!("Not found: {what}")),
            E::Conflict(what) => Problem::conflict(format!("Already exists: {what}")),
            E::Limit(what) => Problem::conflict(format!("Limit reached: {what}")),
            E::Unavailable(what) => {
                tracing::warn!(error = %what, "web API: store unavailable");
                Problem::unavailable("The database is unavailable", 5)
            }
            E::Backend(what) => Problem::internal("database", what),
        }
    }
}

/// The field a serde error names, from its path (`a.b[0].c`), if any.
fn field_of(path: &str) -> Option<String> {
    (!path.is_empty() && path != ".").then(|| path.to_owned())
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        match r {
            JsonRejection::JsonDataError(e) => {
                // "Failed to deserialize the JSON body into the target type: FIELD: MESSAGE"
                let text = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text());
                let (path, message) = match text.split_once(": ") {
                    Some((p, m)) if !p.contains(' ') => (p.to_owned(), m.to_owned()),
                    _ => (String::new(), text.clone()),
                };
                let mut p = Problem::bad_request(format!("Invalid request body: {message}"));
                if let Some(f) = field_of(&path) {
                    p.field = Some(f);
                } else if let Some(f) = missing_field(&message) {
                    p.field = Some(f);
                }
                p.kind = "/problems/invalid-field".into();
                p
            }
            JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
                "The request body is not valid JSON: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text())
            )),
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be JSON (Content-Type: application/json)",
            ),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::too_large("The request body is too large")
                } else {
                    Problem::bad_request(format!("Cannot read the request body: {}", e.body_text()))
                }
            }
            other => Problem::bad_request(other.body_text()),
        }
    }
}

/// `missing field `x`` → `x`; `unknown field `x`, expected …` → `x`.
fn missing_field(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.find(prefix).map(|i| &message[i + prefix.len()..]) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        Problem::bad_request(format!("Invalid path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        // "Failed to deserialize query string: FIELD: MESSAGE"
        let text = r.body_text();
        let text = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        let mut p = Problem::bad_request(format!("Invalid query string: {text}"));
        p.field = missing_field(text).or_else(|| {
            text.split_once(": ")
                .filter(|(f, _)| !f.is_empty() && !f.contains(' '))
                .map(|(f, _)| f.to_owned())
        });
        if p.field.is_some() {
            p.kind = "/problems/invalid-field".into();
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            missing_field("missing field `password` at line 1 column 20"),
            Some("password".into())
        );
        assert_eq!(
            missing_field("unknown field `pasword`, expected one of `user`, `password`"),
            Some("pasword".into())
        );
        assert_eq!(missing_field("invalid type: integer"), None);
    }

    #[test]
    fn problems_serialise_as_rfc_9457() {
        let p = Problem::invalid("availability", "Unknown availability \"sleepy\"");
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["status"], 400);
        assert_eq!(v["field"], "availability");
        assert_eq!(v["type"], "/problems/invalid-field");
        assert!(v.get("retry_after").is_none());
    }
}
