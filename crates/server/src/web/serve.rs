//! The HTTP listener: HTTP/1.1 (WebSockets need its upgrade), optionally
//! TLS with the same certificate as SIP over TLS (TLS 1.2 and later), and the
//! limits every listener has: a cap on connections, a handshake and header
//! read timeout, and a body size limit (in the router).

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take for the TLS handshake and for each request's
/// headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// Binds `addr` and serves `app` on it; returns the bound address.
pub async fn listen(
    app: Router,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "HTTP connection refused: connection limit reached");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                connection(app, stream, peer, tls).await;
                drop(permit);
            });
        }
    });
    Ok(local)
}

async fn connection(app: Router, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
    // SIP over WebSocket needs our end of the connection and whether it is TLS.
    let conn = stream
        .local_addr()
        .ok()
        .map(|local| super::sipws::HttpConnection {
            local,
            tls: tls.is_some(),
        });
    let service = app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(c) = conn {
            req.extensions_mut().insert(c);
        }
        req
    });
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let result = match tls {
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTPS handshake timed out");
                    return;
                }
            };
            builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The rustls configuration of the HTTPS listener: the SIP TLS certificate,
/// offering HTTP/1.1 only.
pub fn tls_acceptor(sip_tls: &Arc<rustls::ServerConfig>) -> TlsAcceptor {
    let mut config = (**sip_tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}
