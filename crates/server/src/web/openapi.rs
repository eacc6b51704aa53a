//! The OpenAPI description of the HTTP API, served at
//! `/api/v1/openapi.json` so client developers and tools read the contract
//! from the server they talk to.

use axum::http::header;
use axum::response::IntoResponse;

/// The document (kept beside this file, checked by the test suite).
const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
