//! UDP: one socket per local address, received datagrams handed to the SIP
//! layer on the receiving task (no per-datagram spawn).

use super::{Flow, Transport, Transports};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Receive buffer requested from the kernel: bursts of NOTIFYs and load
/// tests arrive faster than one task can drain a default-sized buffer.
const RECV_BUFFER: usize = 4 << 20;

/// Datagrams handled per wake-up before yielding: under load one readiness
/// event drains a burst instead of paying a task wake-up per datagram.
const BURST: usize = 64;

fn bind_one(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    let _ = sock.set_send_buffer_size(RECV_BUFFER);
    // No SO_REUSEADDR: on UDP it would let a second server bind the same
    // port and silently share (or steal) its traffic.
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

/// Binds UDP on `addr` and starts receiving. An unspecified address
/// (0.0.0.0 or ::) is expanded to one socket per interface address of that
/// family, so that every flow knows the concrete address the client used
/// (needed for Via and Record-Route). Returns the bound addresses.
pub fn bind_udp(
    transports: &Arc<Transports>,
    addr: SocketAddr,
) -> std::io::Result<Vec<SocketAddr>> {
    let targets = super::expand_unspecified(addr);
    let mut bound = Vec::new();
    for target in targets {
        let sock = Arc::new(bind_one(target)?);
        let local = sock.local_addr()?;
        transports.add_udp(sock.clone());
        // One receiver per socket: several tasks waiting on one socket are
        // all woken for each datagram and all but one find nothing.
        tokio::spawn(receive_loop(transports.clone(), sock.clone(), local));
        bound.push(local);
    }
    Ok(bound)
}

async fn receive_loop(transports: Arc<Transports>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let Some(inbound) = transports.inbound() else {
        return;
    };
    let flow = |remote| Flow {
        transport: Transport::Udp,
        local,
        remote,
        conn: None,
    };
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                inbound.on_datagram(flow(remote), &buf[..n]);
                for _ in 1..BURST {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, remote)) => inbound.on_datagram(flow(remote), &buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            Err(e) => {
                // ICMP port unreachable surfaces as ConnectionReset on some
                // systems: it concerns one peer, not the socket.
                tracing::debug!(%local, error = %e, "udp receive error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_socket_cannot_bind_a_port_in_use() {
        let first = bind_one("127.0.0.1:0".parse().expect("addr")).expect("first bind");
        let taken = first.local_addr().expect("local addr");
        let second = bind_one(taken);
        assert_eq!(
            second.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::AddrInUse)
        );
    }
}
