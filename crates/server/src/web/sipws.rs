//! SIP over WebSocket (RFC 7118) on the HTTP listener. A request for `/`,
//! `/sip` or `/ws` that asks for a WebSocket with the `sip` subprotocol
//! becomes a SIP connection; any other request for `/` gets the web client.

use axum::http::{HeaderMap, Uri};
use axum::response::Response;

/// `GET /`, `/sip`, `/ws`.
pub async fn root(uri: Uri, headers: HeaderMap) -> Response {
    super::static_files::serve(uri, headers).await
}
