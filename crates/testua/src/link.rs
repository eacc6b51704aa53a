//! The one socket or connection of an agent: opening it, writing to it, and
//! the read side handed to the receiver task.

use crate::config::{Transport, UaConfig};
use crate::error::UaError;
use crate::tls;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

/// The write side.
pub(crate) enum Link {
    /// UDP: every datagram goes to `server` unless a destination is given.
    Udp {
        socket: Arc<UdpSocket>,
        server: SocketAddr,
    },
    /// TCP or TLS: one connection; `None` once shut down.
    Stream {
        writer: tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Send + Unpin>>>,
    },
}

/// The read side, owned by the receiver task.
pub(crate) enum Reader {
    Udp(Arc<UdpSocket>),
    Stream(Box<dyn AsyncRead + Send + Unpin>),
}

/// Opens the socket or connection described by `cfg`; returns both sides and
/// the local address.
pub(crate) async fn open(cfg: &UaConfig) -> Result<(Link, Reader, SocketAddr), UaError> {
    match cfg.transport {
        Transport::Udp => {
            let socket = Arc::new(UdpSocket::bind(SocketAddr::new(cfg.local_ip, 0)).await?);
            let local = socket.local_addr()?;
            Ok((
                Link::Udp {
                    socket: socket.clone(),
                    server: cfg.server,
                },
                Reader::Udp(socket),
                local,
            ))
        }
        Transport::Tcp | Transport::Tls => {
            let sock = if cfg.local_ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.bind(SocketAddr::new(cfg.local_ip, 0))?;
            let stream = sock.connect(cfg.server).await?;
            stream.set_nodelay(true)?;
            let local = stream.local_addr()?;
            if cfg.transport == Transport::Tcp {
                let (r, w) = stream.into_split();
                return Ok((
                    Link::Stream {
                        writer: tokio::sync::Mutex::new(Some(Box::new(w))),
                    },
                    Reader::Stream(Box::new(r)),
                    local,
                ));
            }
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls::client_config()?));
            let name = tls::server_name(
                cfg.tls_server_name.as_deref().or(Some(cfg.domain.as_str())),
                cfg.server.ip(),
            );
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| UaError::Tls(e.to_string()))?;
            let (r, w) = tokio::io::split(tls);
            Ok((
                Link::Stream {
                    writer: tokio::sync::Mutex::new(Some(Box::new(w))),
                },
                Reader::Stream(Box::new(r)),
                local,
            ))
        }
    }
}

impl Link {
    /// Sends bytes: over UDP to `dest` (or the server), over a stream on the
    /// connection (whole message under one lock, so writers never interleave).
    pub(crate) async fn send(&self, bytes: &[u8], dest: Option<SocketAddr>) -> Result<(), UaError> {
        match self {
            Link::Udp { socket, server } => {
                socket.send_to(bytes, dest.unwrap_or(*server)).await?;
                Ok(())
            }
            Link::Stream { writer } => {
                let mut guard = writer.lock().await;
                let w = guard
                    .as_mut()
                    .ok_or_else(|| UaError::Closed("connection shut down by the agent".into()))?;
                w.write_all(bytes).await?;
                w.flush().await?;
                Ok(())
            }
        }
    }

    /// Closes the write side of a stream (TLS close_notify, then FIN).
    pub(crate) async fn shutdown(&self) {
        if let Link::Stream { writer } = self {
            let mut guard = writer.lock().await;
            if let Some(mut w) = guard.take() {
                let _ = w.shutdown().await;
            }
        }
    }
}
