//! SIP over WebSocket (RFC 7118) on the HTTP listener. A request for `/`,
//! `/sip` or `/ws` that asks for a WebSocket with the `sip` subprotocol
//! becomes a SIP connection (WS, or WSS on an HTTPS listener), run by the
//! transport layer like a TCP or TLS connection; a WebSocket upgrade that
//! does not offer `sip` is refused with 400; any other request for `/` gets
//! the web client.

use super::Web;
use super::problem::Problem;
use crate::transport::{Transport, run_websocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The WebSocket subprotocol of SIP (RFC 7118 §4.1).
pub const SUBPROTOCOL: &str = "sip";

/// What the HTTP listener knows about the connection a request came on (a
/// request extension set by `serve`): our address, and whether it is TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConnection {
    pub local: SocketAddr,
    pub tls: bool,
}

/// True if the request asks to become a WebSocket (`Upgrade: websocket`).
fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// `GET /`, `/sip`, `/ws`.
pub async fn root(State(web): State<Arc<Web>>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    if !wants_websocket(&parts.headers) {
        return super::static_files::serve(parts.uri, parts.headers).await;
    }
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
        return Problem::internal("SIP over WebSocket", "no peer address on the request")
            .into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => {
            return Problem::bad_request(format!(
                "Invalid WebSocket upgrade: {}",
                rejection.body_text()
            ))
            .into_response();
        }
    };
    let upgrade = upgrade.protocols([SUBPROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return Problem::bad_request("This WebSocket carries SIP only: offer the sip subprotocol")
            .with_detail("Send Sec-WebSocket-Protocol: sip (RFC 7118).")
            .into_response();
    }
    let transports = web.sip.transports.clone();
    if !transports.admits_connection(peer) {
        tracing::warn!(%peer, "websocket refused: connection limit reached");
        return Problem::unavailable("Too many SIP connections", 30).into_response();
    }
    let (transport, local) = match parts.extensions.get::<HttpConnection>() {
        Some(c) => (if c.tls { Transport::Wss } else { Transport::Ws }, c.local),
        // Not through `serve` (tests of the router): the listener as known
        // to the transports.
        None => {
            let t = if transports.listener_for(Transport::Wss, peer.ip()).is_some() {
                Transport::Wss
            } else {
                Transport::Ws
            };
            let local = transports
                .listener_for(t, peer.ip())
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
            (t, local)
        }
    };
    let cap = transports.websocket_message_cap();
    upgrade
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_failed_upgrade(move |e| tracing::debug!(%peer, error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| run_websocket(transports, socket, transport, local, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn recognises_websocket_upgrades() {
        let mut h = HeaderMap::new();
        assert!(!wants_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!wants_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("foo, WebSocket"));
        assert!(wants_websocket(&h));
    }
}
