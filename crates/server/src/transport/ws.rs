//! SIP over WebSocket (RFC 7118). The HTTP listener accepts the WebSocket
//! (see `web::sipws`) and hands it here, where it becomes a stream
//! connection like a TCP or TLS one: it is entered in the connection table
//! (connection limits, connection reuse for requests to a device registered
//! over it, kept open for as long as a registration uses it) and closed when
//! idle. Each WebSocket message carries exactly one SIP message (RFC 7118
//! §5), so there is no stream framing: a message is parsed on its own, like a
//! datagram, and one that does not parse is answered or dropped without
//! touching the connection.
//!
//! RFC 7118 needs no CRLF keep-alive: the server pings a silent WebSocket
//! and closes it if the peer does not answer (a browser that vanished
//! without closing).

use super::{Transport, Transports, lock};
use axum::extract::ws::{Message, WebSocket};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Messages queued for one connection before sends fail as congested.
const SEND_QUEUE: usize = 1024;

/// How long a WebSocket may stay silent before the server pings it.
const PING_AFTER: Duration = Duration::from_secs(60);

/// How long the peer has to show a sign of life after a ping.
const PONG_WAIT: Duration = Duration::from_secs(30);

/// How long writing one message may take before the peer is taken as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Transports {
    /// Records that SIP over WebSocket (`transport` [`Transport::Ws`] or
    /// [`Transport::Wss`]) is served on the HTTP listener `addr`, so that the
    /// server recognises its own `transport=ws` URIs (Route, Record-Route)
    /// and advertises that address in Via and Record-Route towards
    /// WebSocket clients.
    pub fn add_websocket_listener(&self, transport: Transport, addr: SocketAddr) {
        self.add_listener(transport, addr);
    }

    /// True if one more SIP connection from `remote` is within the
    /// connection limits (`max_connections`, `max_connections_per_ip`),
    /// which WebSockets share with TCP and TLS.
    pub fn admits_connection(&self, remote: SocketAddr) -> bool {
        self.admit(remote)
    }

    /// The largest WebSocket message accepted at all. Messages above the
    /// SIP limit (`max_message_bytes`) but within this are still read, so
    /// that the SIP layer can answer them 513 like a datagram; larger ones
    /// close the connection.
    pub fn websocket_message_cap(&self) -> usize {
        self.limits
            .parse
            .max_message_bytes
            .saturating_mul(2)
            .max(4096)
    }
}

/// Runs one SIP-over-WebSocket connection until it closes. `local` is our
/// address of the underlying TCP connection, `remote` the peer's.
pub async fn run_websocket(
    transports: Arc<Transports>,
    mut socket: WebSocket,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
) {
    let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(SEND_QUEUE);
    let (flow, keep_until) = transports.register_conn(transport, local, remote, tx.clone());
    tracing::debug!(%flow, "websocket connection open");
    let inbound = transports.inbound();
    let idle = transports.limits.idle_timeout;
    // SIP traffic (what idleness is measured on) and any frame at all (what
    // shows the peer is alive: pongs too).
    let mut last_sip = Instant::now();
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut check = tokio::time::interval(
        Duration::from_secs(5)
            .min(idle)
            .max(Duration::from_millis(100)),
    );
    'conn: loop {
        tokio::select! {
            received = socket.recv() => {
                let message = match received {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::debug!(%flow, error = %e, "websocket error");
                        break 'conn;
                    }
                    None => break 'conn,
                };
                last_heard = Instant::now();
                ping_sent = None;
                let data: &[u8] = match &message {
                    Message::Text(t) => t.as_str().as_bytes(),
                    Message::Binary(b) => b,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => break 'conn,
                };
                last_sip = last_heard;
                if let Some(i) = &inbound {
                    // One WebSocket message is one SIP message (RFC 7118 §5):
                    // parsed whole, answered 400/513 or dropped if broken.
                    i.on_datagram(flow.clone(), data);
                }
            }
            Some(bytes) = rx.recv() => {
                let message = match std::str::from_utf8(&bytes) {
                    // RFC 7118 §5.2: text frames for UTF-8 messages, binary otherwise.
                    Ok(text) => Message::text(text),
                    Err(_) => Message::binary(bytes.to_vec()),
                };
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%flow, error = %e, "websocket send failed");
                        break 'conn;
                    }
                    Err(_) => {
                        tracing::info!(%flow, "closing websocket: peer does not read");
                        break 'conn;
                    }
                }
            }
            _ = check.tick() => {
                let now = Instant::now();
                let keep = *lock(&keep_until);
                if now.duration_since(last_sip) >= idle && now >= keep {
                    tracing::debug!(%flow, "closing idle websocket");
                    break 'conn;
                }
                match ping_sent {
                    Some(at) if now.duration_since(at) >= PONG_WAIT => {
                        tracing::debug!(%flow, "closing websocket: no answer to ping");
                        break 'conn;
                    }
                    Some(_) => {}
                    None if now.duration_since(last_heard) >= PING_AFTER => {
                        let ping = socket.send(Message::Ping(bytes::Bytes::new()));
                        if !matches!(tokio::time::timeout(SEND_TIMEOUT, ping).await, Ok(Ok(()))) {
                            break 'conn;
                        }
                        ping_sent = Some(now);
                    }
                    None => {}
                }
            }
        }
    }
    transports.unregister_conn(&flow);
    drop(tx);
    // A polite close; the peer may be gone already.
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(None))).await;
    if let Some(i) = &inbound {
        i.on_closed(flow.clone());
    }
    tracing::debug!(%flow, "websocket connection closed");
}
