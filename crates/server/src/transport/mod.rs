//! SIP transports on tokio: UDP, TCP and TLS listeners, SIP over WebSocket
//! connections accepted by the HTTP listener, the table of open stream
//! connections, and sending to a [`Flow`].
//!
//! A flow is the path a message came in on (transport, our address, the
//! peer's address, and for streams the connection). Answers and requests to a
//! registered device go back over the same flow, which is what lets clients
//! behind NAT and TCP-only clients be reached (connection reuse).

mod stream;
pub mod tls;
mod udp;
mod ws;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_sip::{Limits, Message, ParseError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use stream::{spawn_tcp_listener, spawn_tls_listener};
pub use udp::bind_udp;
pub use ws::run_websocket;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// The Via transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The lower-case name used in URIs (`transport=tcp`) and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a name as written in Via, URIs or the store (any case).
    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return None,
        })
    }

    /// True for everything but UDP.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies one stream connection for its lifetime.
pub type ConnId = u64;

/// The path a message travels: transport, our address, the peer's address,
/// and for streams the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub conn: Option<ConnId>,
}

impl switchboard_sip::transaction::Flow for Flow {
    fn is_reliable(&self) -> bool {
        self.transport.is_stream()
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}->{}", self.transport, self.local, self.remote)?;
        if let Some(c) = self.conn {
            write!(f, "#{c}")?;
        }
        Ok(())
    }
}

/// What the transports hand to the SIP layer.
pub trait Inbound: Send + Sync + 'static {
    /// A datagram arrived (not yet parsed: the SIP layer decides what a
    /// malformed one deserves).
    fn on_datagram(&self, flow: Flow, data: &[u8]);
    /// A complete message was framed on a stream.
    fn on_message(&self, flow: Flow, message: Message);
    /// Framing was lost on a stream; the connection is being closed.
    fn on_framing_error(&self, flow: Flow, error: ParseError);
    /// A stream connection closed (by either side, or for idleness).
    fn on_closed(&self, flow: Flow);
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("connection is closed")]
    Closed,
    #[error("connection send queue is full")]
    Congested,
    #[error("no socket for local address {0}")]
    NoSocket(SocketAddr),
    #[error("i/o error: {0}")]
    Io(String),
}

/// Limits applied by the transports.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    pub parse: Limits,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

struct ConnEntry {
    tx: mpsc::Sender<Arc<[u8]>>,
    flow: Flow,
    /// The connection is kept open at least until then (a registration uses it).
    keep_until: Arc<Mutex<Instant>>,
}

#[derive(Default)]
struct ConnTable {
    by_id: HashMap<ConnId, ConnEntry>,
    by_remote: HashMap<(Transport, SocketAddr), ConnId>,
    per_ip: HashMap<IpAddr, usize>,
}

/// Every socket and connection of the server.
pub struct Transports {
    /// UDP sockets with the address each is bound to (read once: asking the
    /// socket costs a system call, and every send picks its socket by address).
    udp: Mutex<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    /// Every (transport, address) we listen on, unspecified addresses expanded
    /// to interface addresses: how the server recognises its own URIs.
    listeners: Mutex<Vec<(Transport, SocketAddr)>>,
    conns: Mutex<ConnTable>,
    next_conn: AtomicU64,
    limits: TransportLimits,
    inbound: Mutex<Option<Arc<dyn Inbound>>>,
}

impl Transports {
    /// Transports with no sockets yet.
    pub fn new(limits: TransportLimits) -> Arc<Transports> {
        Arc::new(Transports {
            udp: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            conns: Mutex::new(ConnTable::default()),
            next_conn: AtomicU64::new(1),
            limits,
            inbound: Mutex::new(None),
        })
    }

    /// Sets where received messages go (the SIP layer); must be called before
    /// any listener starts.
    pub fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        *lock(&self.inbound) = Some(inbound);
    }

    fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        lock(&self.inbound).clone()
    }

    fn add_udp(&self, socket: Arc<UdpSocket>) {
        // A socket whose address cannot be read could never be chosen to send.
        if let Ok(a) = socket.local_addr() {
            lock(&self.listeners).push((Transport::Udp, a));
            lock(&self.udp).push((a, socket));
        }
    }

    fn add_listener(&self, transport: Transport, addr: SocketAddr) {
        let mut l = lock(&self.listeners);
        for a in expand_unspecified(addr) {
            l.push((transport, a));
        }
    }

    /// True if `ip:port` is one of our listening addresses (any transport).
    pub fn is_local(&self, ip: IpAddr, port: u16) -> bool {
        lock(&self.listeners)
            .iter()
            .any(|(_, a)| a.ip() == ip && a.port() == port)
    }

    /// Our listening address for `transport` and the IP family of `near`,
    /// preferring the same IP (what goes into Record-Route for that side).
    pub fn listener_for(&self, transport: Transport, near: IpAddr) -> Option<SocketAddr> {
        let l = lock(&self.listeners);
        l.iter()
            .find(|(t, a)| *t == transport && a.ip() == near)
            .or_else(|| {
                l.iter()
                    .find(|(t, a)| *t == transport && a.is_ipv4() == near.is_ipv4())
            })
            .map(|(_, a)| *a)
    }

    fn udp_for(&self, local: SocketAddr) -> Option<Arc<UdpSocket>> {
        let socks = lock(&self.udp);
        socks
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| socks.iter().find(|(a, _)| a.is_ipv4() == local.is_ipv4()))
            .map(|(_, s)| s.clone())
    }

    /// A UDP flow from one of our sockets (the one bound to `local` if there is
    /// one, else any of the same family) to `remote`.
    pub fn udp_flow(&self, local: Option<SocketAddr>, remote: SocketAddr) -> Option<Flow> {
        let socks = lock(&self.udp);
        let (local, _) = local
            .and_then(|l| socks.iter().find(|(a, _)| *a == l))
            .or_else(|| {
                socks.iter().find(|(a, _)| {
                    a.is_ipv4() == remote.is_ipv4()
                        && a.ip().is_loopback() == remote.ip().is_loopback()
                })
            })
            .or_else(|| socks.iter().find(|(a, _)| a.is_ipv4() == remote.is_ipv4()))?;
        Some(Flow {
            transport: Transport::Udp,
            local: *local,
            remote,
            conn: None,
        })
    }

    /// Sends bytes along a flow without waiting. For streams the connection of
    /// the flow is used, or else another open connection to the same peer.
    pub fn send(&self, flow: &Flow, bytes: Arc<[u8]>) -> Result<(), SendError> {
        match flow.transport {
            Transport::Udp => {
                let sock = self
                    .udp_for(flow.local)
                    .ok_or(SendError::NoSocket(flow.local))?;
                match sock.try_send_to(&bytes, flow.remote) {
                    Ok(_) => Ok(()),
                    // A full socket buffer loses the datagram like the network
                    // would; the transaction layer retransmits.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(SendError::Io(e.to_string())),
                }
            }
            _ => {
                let table = lock(&self.conns);
                let entry = flow
                    .conn
                    .and_then(|id| table.by_id.get(&id))
                    .or_else(|| {
                        table
                            .by_remote
                            .get(&(flow.transport, flow.remote))
                            .and_then(|id| table.by_id.get(id))
                    })
                    .ok_or(SendError::Closed)?;
                entry.tx.try_send(bytes).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => SendError::Congested,
                    mpsc::error::TrySendError::Closed(_) => SendError::Closed,
                })
            }
        }
    }

    /// The live flow to reach `flow`'s peer: the same connection if it is still
    /// open, else another open connection to that peer; `None` for a stream
    /// with no open connection.
    pub fn live_flow(&self, flow: &Flow) -> Option<Flow> {
        if flow.transport == Transport::Udp {
            return self.udp_flow(Some(flow.local), flow.remote);
        }
        let table = lock(&self.conns);
        if let Some(e) = flow.conn.and_then(|id| table.by_id.get(&id)) {
            return Some(e.flow.clone());
        }
        table
            .by_remote
            .get(&(flow.transport, flow.remote))
            .and_then(|id| table.by_id.get(id))
            .map(|e| e.flow.clone())
    }

    /// Keeps a stream connection open at least until `until` (a registration
    /// made over it lasts that long).
    pub fn keep_until(&self, conn: ConnId, until: Instant) {
        if let Some(e) = lock(&self.conns).by_id.get(&conn) {
            let mut k = lock(&e.keep_until);
            if *k < until {
                *k = until;
            }
        }
    }

    fn admit(&self, remote: SocketAddr) -> bool {
        let t = lock(&self.conns);
        t.by_id.len() < self.limits.max_connections
            && t.per_ip.get(&remote.ip()).copied().unwrap_or(0) < self.limits.max_connections_per_ip
    }

    fn register_conn(
        &self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        tx: mpsc::Sender<Arc<[u8]>>,
    ) -> (Flow, Arc<Mutex<Instant>>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let flow = Flow {
            transport,
            local,
            remote,
            conn: Some(id),
        };
        let keep = Arc::new(Mutex::new(Instant::now()));
        let mut t = lock(&self.conns);
        t.by_id.insert(
            id,
            ConnEntry {
                tx,
                flow: flow.clone(),
                keep_until: keep.clone(),
            },
        );
        t.by_remote.insert((transport, remote), id);
        *t.per_ip.entry(remote.ip()).or_insert(0) += 1;
        (flow, keep)
    }

    fn unregister_conn(&self, flow: &Flow) {
        let Some(id) = flow.conn else { return };
        let mut t = lock(&self.conns);
        if t.by_id.remove(&id).is_some() {
            if t.by_remote.get(&(flow.transport, flow.remote)) == Some(&id) {
                t.by_remote.remove(&(flow.transport, flow.remote));
            }
            if let Some(n) = t.per_ip.get_mut(&flow.remote.ip()) {
                *n -= 1;
                if *n == 0 {
                    t.per_ip.remove(&flow.remote.ip());
                }
            }
        }
    }
}

/// Expands 0.0.0.0 / :: to the interface addresses of that family.
pub(crate) fn expand_unspecified(addr: SocketAddr) -> Vec<SocketAddr> {
    if !addr.ip().is_unspecified() {
        return vec![addr];
    }
    let mut v: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
                .map(|ip| SocketAddr::new(ip, addr.port()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    if v.is_empty() {
        v.push(addr);
    }
    v
}

/// Locks a mutex, recovering from poisoning (a panicked holder must not take
/// the whole transport down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
