//! TCP and TLS: accept loops, one reader and one writer task per connection,
//! idle and half-open clean-up, and outgoing TCP connections.

use super::{Transport, Transports, lock};
use socket2::{SockRef, TcpKeepalive};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_sip::framing::{Frame, PONG, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// Messages queued for one connection before sends fail as congested.
const SEND_QUEUE: usize = 1024;

fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    // Half-open connections (peer vanished without FIN) are found by the
    // kernel's keep-alive probes: about 90 s of silence closes them.
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = SockRef::from(stream).set_tcp_keepalive(&ka);
}

/// Listens for SIP over TCP on `addr`; returns the bound address.
pub async fn spawn_tcp_listener(
    transports: Arc<Transports>,
    addr: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    transports.add_listener(Transport::Tcp, local);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    if !transports.admit(remote) {
                        tracing::warn!(%remote, "tcp connection refused: connection limit reached");
                        continue;
                    }
                    configure(&stream);
                    let local = stream.local_addr().unwrap_or(local);
                    tokio::spawn(run_connection(
                        transports.clone(),
                        stream,
                        Transport::Tcp,
                        local,
                        remote,
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(local)
}

/// Listens for SIP over TLS on `addr`; returns the bound address.
pub async fn spawn_tls_listener(
    transports: Arc<Transports>,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    transports.add_listener(Transport::Tls, local);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    if !transports.admit(remote) {
                        tracing::warn!(%remote, "tls connection refused: connection limit reached");
                        continue;
                    }
                    configure(&stream);
                    let local = stream.local_addr().unwrap_or(local);
                    let acceptor = acceptor.clone();
                    let transports = transports.clone();
                    tokio::spawn(async move {
                        let timeout = transports.limits.tls_handshake_timeout;
                        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                run_connection(transports, tls, Transport::Tls, local, remote).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "tls handshake failed")
                            }
                            Err(_) => tracing::debug!(%remote, "tls handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tls accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(local)
}

async fn run_connection<S>(
    transports: Arc<Transports>,
    stream: S,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(SEND_QUEUE);
    let (flow, keep_until) = transports.register_conn(transport, local, remote, tx.clone());
    tracing::debug!(%flow, "connection open");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let inbound = transports.inbound();
    let mut framer = StreamFramer::new(transports.limits.parse);
    let mut buf = vec![0u8; 16 * 1024];
    let idle = transports.limits.idle_timeout;
    let mut last_activity = Instant::now();
    let mut check = tokio::time::interval(Duration::from_secs(5).min(idle));
    'conn: loop {
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => n,
                };
                last_activity = Instant::now();
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    match frame {
                        Ok(Frame::Message(m)) => {
                            if let Some(i) = &inbound {
                                i.on_message(flow.clone(), m);
                            }
                        }
                        Ok(Frame::Ping) => {
                            let _ = tx.try_send(Arc::from(PONG));
                        }
                        Ok(Frame::Pong) => {}
                        Err(e) => {
                            tracing::info!(%flow, error = %e, "closing connection: framing lost");
                            if let Some(i) = &inbound {
                                i.on_framing_error(flow.clone(), e);
                            }
                            break 'conn;
                        }
                    }
                }
            }
            _ = check.tick() => {
                let keep = *lock(&keep_until);
                let now = Instant::now();
                if now.duration_since(last_activity) >= idle && now >= keep {
                    tracing::debug!(%flow, "closing idle connection");
                    break 'conn;
                }
            }
        }
    }
    transports.unregister_conn(&flow);
    drop(tx);
    // Let queued responses (e.g. the 400 before a close) go out, briefly.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    if let Some(i) = &inbound {
        i.on_closed(flow.clone());
    }
    tracing::debug!(%flow, "connection closed");
}
