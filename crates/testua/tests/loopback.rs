//! The agent against a scripted peer on loopback: every byte the agent sends
//! is checked by hand, and the peer misbehaves where a real server would not
//! (dropping the first copy of a request, retransmitting, sending garbage).

use std::net::SocketAddr;
use std::time::Duration;
use switchboard_testua::sip::digest::{self, Algorithm, ResponseInput};
use switchboard_testua::sip::framing::{Frame, StreamFramer};
use switchboard_testua::sip::{
    AuthHeader, HeaderName, Limits, Message, Method, Request, Response, parse_datagram,
};
use switchboard_testua::{Transport, Ua, UaConfig, UaError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(5);

struct UdpPeer {
    sock: UdpSocket,
}

impl UdpPeer {
    async fn new() -> UdpPeer {
        UdpPeer {
            sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind peer"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("peer addr")
    }

    async fn recv(&self) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = timeout(WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("peer: nothing received in time")
            .expect("peer recv");
        (
            parse_datagram(&buf[..n], &Limits::default()).expect("agent sent valid SIP"),
            from,
        )
    }

    async fn recv_request(&self) -> (Request, SocketAddr) {
        match self.recv().await {
            (Message::Request(r), from) => (r, from),
            (Message::Response(r), _) => {
                panic!("expected a request, got {} {}", r.status, r.reason)
            }
        }
    }

    async fn recv_response(&self) -> Response {
        match self.recv().await {
            (Message::Response(r), _) => r,
            (Message::Request(r), _) => panic!("expected a response, got {}", r.method),
        }
    }

    async fn send(&self, bytes: &[u8], to: SocketAddr) {
        self.sock.send_to(bytes, to).await.expect("peer send");
    }
}

struct TcpPeer {
    stream: TcpStream,
    framer: StreamFramer,
}

impl TcpPeer {
    async fn next_frame(&mut self) -> Frame {
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(f) = self.framer.next_frame() {
                return f.expect("agent framed correctly");
            }
            let n = timeout(WAIT, self.stream.read(&mut buf))
                .await
                .expect("peer: nothing received in time")
                .expect("peer read");
            assert!(n > 0, "agent closed the connection");
            self.framer.push(&buf[..n]);
        }
    }

    async fn recv_request(&mut self) -> Request {
        match self.next_frame().await {
            Frame::Message(Message::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("peer write");
    }
}

fn reply(req: &Request, status: u16) -> Response {
    Response::to_request(req, status).with_to_tag("peertag")
}

fn branch(req: &Request) -> String {
    req.headers
        .top_via()
        .expect("via")
        .branch()
        .expect("branch")
        .to_owned()
}

fn cseq(req: &Request) -> u32 {
    req.headers.cseq().expect("cseq").seq
}

#[tokio::test]
async fn udp_register_is_retransmitted_and_answers_a_sha256_challenge() {
    let peer = UdpPeer::new().await;
    let cfg = UaConfig::new(
        Transport::Udp,
        peer.addr(),
        "example.test",
        "alice",
        "s3cret",
    );
    let ua = Ua::connect(cfg).await.expect("connect");
    let task = tokio::spawn({
        let ua = ua.clone();
        async move { ua.register(600).await }
    });

    let (first, from) = peer.recv_request().await;
    let t0 = Instant::now();
    assert_eq!(from, ua.local_addr());
    assert_eq!(first.method, Method::Register);
    assert_eq!(first.uri.to_string(), "sip:example.test");
    let contact = first.headers.get(&HeaderName::Contact).expect("contact");
    assert!(
        contact.starts_with(&format!("<sip:alice@{};transport=udp>", ua.local_addr())),
        "{contact}"
    );
    assert!(contact.contains(&format!("+sip.instance=\"<{}>\"", ua.instance())));
    assert_eq!(first.headers.get(&HeaderName::Expires), Some("600"));
    let via = first.headers.top_via().expect("via");
    assert!(via.params.contains("rport"));

    // Ignore the first copy: the agent must retransmit it after T1.
    let (again, _) = peer.recv_request().await;
    let gap = t0.elapsed();
    assert!(
        gap >= Duration::from_millis(400) && gap < Duration::from_millis(1500),
        "retransmitted after {gap:?}"
    );
    assert_eq!(again, first, "a retransmission is byte-identical");

    let challenge = reply(&first, 401).with_header(
        HeaderName::WwwAuthenticate,
        r#"Digest realm="example.test", nonce="n0nce", algorithm=SHA-256, qop="auth", opaque="op""#,
    );
    peer.send(&challenge.to_bytes(), from).await;

    let (authed, _) = peer.recv_request().await;
    assert_ne!(branch(&authed), branch(&first), "new branch");
    assert_eq!(cseq(&authed), cseq(&first) + 1, "CSeq + 1");
    assert_eq!(
        authed.headers.call_id().expect("call-id"),
        first.headers.call_id().expect("call-id")
    );
    let creds = authed.headers.authorization().expect("parses");
    assert_eq!(creds.len(), 1);
    let c = &creds[0];
    assert_eq!(c.param("username"), Some("alice"));
    assert_eq!(c.param("realm"), Some("example.test"));
    assert_eq!(c.param("nonce"), Some("n0nce"));
    assert_eq!(c.param("uri"), Some("sip:example.test"));
    assert_eq!(c.param("algorithm"), Some("SHA-256"));
    assert_eq!(c.param("qop"), Some("auth"));
    assert_eq!(c.param("nc"), Some("00000001"));
    assert_eq!(c.param("opaque"), Some("op"));
    let cnonce = c.param("cnonce").expect("cnonce");
    let expected = digest::expected_response(
        &ResponseInput {
            algorithm: Algorithm::Sha256,
            nonce: "n0nce",
            nc: "00000001",
            cnonce,
            method: "REGISTER",
            uri: "sip:example.test",
        },
        &digest::ha1(Algorithm::Sha256, "alice", "example.test", "s3cret"),
    );
    assert_eq!(c.param("response"), Some(expected.as_str()));
    peer.send(&reply(&authed, 200).to_bytes(), from).await;

    let resp = task.await.expect("join").expect("register");
    assert_eq!(resp.status, 200);

    // A re-registration keeps the Call-ID and continues the CSeq.
    let task = tokio::spawn({
        let ua = ua.clone();
        async move { ua.register(600).await }
    });
    let (next, from) = peer.recv_request().await;
    assert_eq!(
        next.headers.call_id().expect("call-id"),
        first.headers.call_id().expect("call-id")
    );
    assert!(
        cseq(&next) > cseq(&authed),
        "CSeq grows across registrations"
    );
    peer.send(&reply(&next, 200).to_bytes(), from).await;
    assert_eq!(task.await.expect("join").expect("register").status, 200);
}

#[tokio::test]
async fn auth_options_disable_auto_auth_and_replay_credentials() {
    let peer = UdpPeer::new().await;
    let cfg = UaConfig::new(Transport::Udp, peer.addr(), "example.test", "bob", "pw");
    let ua = Ua::connect(cfg).await.expect("connect");
    let challenge = r#"Digest realm="example.test", nonce="abc", qop="auth""#;

    // Auto-auth on: the challenge is answered.
    let task = tokio::spawn({
        let ua = ua.clone();
        async move {
            ua.send_message("sip:carol@example.test", "text/plain", "hi")
                .await
        }
    });
    let (m1, from) = peer.recv_request().await;
    peer.send(
        &reply(&m1, 407)
            .with_header(HeaderName::ProxyAuthenticate, challenge)
            .to_bytes(),
        from,
    )
    .await;
    let (m2, _) = peer.recv_request().await;
    let sent_creds = m2
        .headers
        .get(&HeaderName::ProxyAuthorization)
        .expect("credentials")
        .to_owned();
    peer.send(&reply(&m2, 202).to_bytes(), from).await;
    assert_eq!(task.await.expect("join").expect("message").status, 202);
    assert_eq!(
        ua.last_credentials(),
        Some((HeaderName::ProxyAuthorization, sent_creds.clone()))
    );

    // Replay: the next challenge is answered with the very same header.
    let mut opts = ua.auth_options();
    opts.replay_previous = true;
    ua.set_auth_options(opts);
    let task = tokio::spawn({
        let ua = ua.clone();
        async move {
            ua.send_message("sip:carol@example.test", "text/plain", "again")
                .await
        }
    });
    let (m3, from) = peer.recv_request().await;
    peer.send(
        &reply(&m3, 407)
            .with_header(HeaderName::ProxyAuthenticate, challenge)
            .to_bytes(),
        from,
    )
    .await;
    let (m4, _) = peer.recv_request().await;
    assert_eq!(
        m4.headers.get(&HeaderName::ProxyAuthorization),
        Some(sent_creds.as_str())
    );
    peer.send(&reply(&m4, 403).to_bytes(), from).await;
    assert_eq!(task.await.expect("join").expect("message").status, 403);

    // Auto-auth off: the 407 comes back to the caller.
    let mut opts = ua.auth_options();
    opts.replay_previous = false;
    opts.auto = false;
    ua.set_auth_options(opts);
    let task = tokio::spawn({
        let ua = ua.clone();
        async move {
            ua.send_message("sip:carol@example.test", "text/plain", "x")
                .await
        }
    });
    let (m5, from) = peer.recv_request().await;
    peer.send(
        &reply(&m5, 407)
            .with_header(HeaderName::ProxyAuthenticate, challenge)
            .to_bytes(),
        from,
    )
    .await;
    assert_eq!(task.await.expect("join").expect("message").status, 407);

    // Wrong password, forced nonce and nc: the credentials show them.
    let mut opts = ua.auth_options();
    opts.auto = true;
    opts.password = Some("wrong".into());
    opts.nonce = Some("stale-nonce".into());
    opts.nc = Some(7);
    ua.set_auth_options(opts);
    let task = tokio::spawn({
        let ua = ua.clone();
        async move {
            ua.send_message("sip:carol@example.test", "text/plain", "y")
                .await
        }
    });
    let (m6, from) = peer.recv_request().await;
    peer.send(
        &reply(&m6, 407)
            .with_header(HeaderName::ProxyAuthenticate, challenge)
            .to_bytes(),
        from,
    )
    .await;
    let (m7, _) = peer.recv_request().await;
    let c = AuthHeader::parse(
        m7.headers
            .get(&HeaderName::ProxyAuthorization)
            .expect("credentials"),
        "Proxy-Authorization",
    )
    .expect("parses");
    assert_eq!(c.param("nonce"), Some("stale-nonce"));
    assert_eq!(c.param("nc"), Some("00000007"));
    let good = digest::client_response(
        &ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "stale-nonce",
            nc: "00000007",
            cnonce: c.param("cnonce").expect("cnonce"),
            method: "MESSAGE",
            uri: "sip:carol@example.test",
        },
        "bob",
        "example.test",
        "pw",
    );
    assert_ne!(
        c.param("response"),
        Some(good.as_str()),
        "computed with the wrong password"
    );
    peer.send(&reply(&m7, 407).to_bytes(), from).await;
    assert_eq!(
        task.await.expect("join").expect("message").status,
        407,
        "a second challenge is not answered"
    );
}

#[tokio::test]
async fn udp_incoming_requests_are_answered_once_and_retransmissions_absorbed() {
    let peer = UdpPeer::new().await;
    let cfg = UaConfig::new(Transport::Udp, peer.addr(), "example.test", "bob", "pw");
    let ua = Ua::connect(cfg).await.expect("connect");
    let to = ua.local_addr();
    let msg = format!(
        "MESSAGE sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKm1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\nCall-ID: c1\r\nCSeq: 5 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        peer.addr()
    );
    peer.send(msg.as_bytes(), to).await;
    let inc = ua.next_request(WAIT).await.expect("message arrives");
    assert_eq!(inc.method(), &Method::Message);
    assert_eq!(inc.body_text(), "hello");
    inc.respond(200).await.expect("respond");
    let r1 = peer.recv_response().await;
    assert_eq!(r1.status, 200);
    let to_hdr = r1.headers.to().expect("to");
    assert_eq!(to_hdr.tag(), Some(inc.to_tag()));
    assert_eq!(r1.headers.cseq().expect("cseq").seq, 5);

    // The retransmission gets the same answer and is not queued again.
    peer.send(msg.as_bytes(), to).await;
    let r2 = peer.recv_response().await;
    assert_eq!(r2, r1);
    assert!(matches!(
        ua.next_request(Duration::from_millis(300)).await,
        Err(UaError::Timeout(_))
    ));
    assert_eq!(ua.received(&Method::Message).len(), 2);

    // Auto-answered NOTIFY: answered at once, recorded, not queued.
    ua.auto_answer(Method::Notify, 200);
    let notify = format!(
        "NOTIFY sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKn1\r\nFrom: <sip:p@example.test>;tag=p1\r\nTo: <sip:bob@example.test>;tag=b1\r\nCall-ID: c2\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\nSubscription-State: active\r\nContent-Length: 0\r\n\r\n",
        peer.addr()
    );
    peer.send(notify.as_bytes(), to).await;
    let r = peer.recv_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.to().expect("to").tag(),
        Some("b1"),
        "in-dialog tag kept"
    );
    assert_eq!(ua.received(&Method::Notify).len(), 1);

    // expect_request answers and skips what it does not want.
    let options = format!(
        "OPTIONS sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKo1\r\nFrom: <sip:p@example.test>;tag=o1\r\nTo: <sip:bob@example.test>\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        peer.addr()
    );
    let info = options
        .replace("OPTIONS", "INFO")
        .replace("z9hG4bKo1", "z9hG4bKi1");
    peer.send(options.as_bytes(), to).await;
    peer.send(info.as_bytes(), to).await;
    let got = ua
        .expect_request(Method::Info, WAIT)
        .await
        .expect("INFO arrives");
    let skipped = peer.recv_response().await;
    assert_eq!(
        (skipped.status, skipped.headers.cseq().expect("cseq").method),
        (200, Method::Options)
    );
    got.respond(200).await.expect("respond");
    assert_eq!(peer.recv_response().await.status, 200);
    let err = ua
        .expect_request(Method::Bye, Duration::from_millis(200))
        .await
        .expect_err("nothing more");
    assert!(err.to_string().contains("BYE"), "{err}");

    // Garbage is recorded, not fatal; a response nobody waits for is unsolicited.
    peer.send(b"this is not SIP\r\n\r\n", to).await;
    let junk = ua.recv_raw(WAIT).await.expect("garbage recorded");
    assert_eq!(junk.bytes, b"this is not SIP\r\n\r\n");
    assert!(junk.error.is_some());
    assert_eq!(ua.dropped_input().len(), 1);
    let stray = "SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    peer.send(stray.as_bytes(), to).await;
    let u = ua.recv_raw(WAIT).await.expect("stray response");
    assert_eq!(u.response().map(|r| r.status), Some(400));
    assert!(u.error.is_none());
}

#[tokio::test]
async fn udp_accept_retransmits_200_until_ack_and_routes_bye() {
    let peer = UdpPeer::new().await;
    let cfg = UaConfig::new(Transport::Udp, peer.addr(), "example.test", "bob", "pw");
    let ua = Ua::connect(cfg).await.expect("connect");
    let to = ua.local_addr();
    let p = peer.addr();
    let invite = format!(
        "INVITE sip:bob@{to};transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bKinv\r\nRecord-Route: <sip:{p};r2=on;lr>, <sip:{p};transport=tcp;r2=on;lr>\r\nFrom: \"Alice\" <sip:alice@example.test>;tag=al\r\nTo: <sip:bob@example.test>\r\nCall-ID: inv1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@192.0.2.1:5999;transport=tcp>\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send(invite.as_bytes(), to).await;
    let inc = ua
        .expect_request(Method::Invite, WAIT)
        .await
        .expect("INVITE");
    let accept = tokio::spawn(async move { inc.accept("v=0\r\n").await });
    let ok = peer.recv_response().await;
    let t0 = Instant::now();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"v=0\r\n");
    assert_eq!(
        ok.headers.record_routes().expect("rr").len(),
        2,
        "Record-Route copied into the 2xx"
    );
    assert!(ok.headers.contains(&HeaderName::Contact));
    let again = peer.recv_response().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(again, ok, "200 retransmitted until ACK");
    let tag = ok.headers.to().expect("to").tag().expect("tag").to_owned();
    let ack = format!(
        "ACK sip:bob@{to};transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bKack\r\nFrom: \"Alice\" <sip:alice@example.test>;tag=al\r\nTo: <sip:bob@example.test>;tag={tag}\r\nCall-ID: inv1\r\nCSeq: 10 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send(ack.as_bytes(), to).await;
    let mut dialog = accept.await.expect("join").expect("ACK received");
    assert_eq!(dialog.route_set.len(), 2);
    assert_eq!(dialog.remote_cseq, Some(10));
    assert_eq!(dialog.local_tag(), tag);

    let bye = tokio::spawn(async move { dialog.bye().await });
    let (req, _) = peer.recv_request().await;
    assert_eq!(req.method, Method::Bye);
    assert_eq!(
        req.uri.to_string(),
        "sip:alice@192.0.2.1:5999;transport=tcp"
    );
    let routes: Vec<String> = req
        .headers
        .routes()
        .expect("routes")
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        routes,
        vec![
            format!("<sip:{p};r2=on;lr>"),
            format!("<sip:{p};transport=tcp;r2=on;lr>")
        ]
    );
    assert_eq!(req.headers.from().expect("from").tag(), Some(tag.as_str()));
    assert_eq!(req.headers.to().expect("to").tag(), Some("al"));
    peer.send(&Response::to_request(&req, 200).to_bytes(), to)
        .await;
    assert_eq!(bye.await.expect("join").expect("bye").status, 200);
}

#[tokio::test]
async fn tcp_invite_dialog_keepalives_and_server_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let server = listener.local_addr().expect("addr");
    let cfg = UaConfig::new(Transport::Tcp, server, "example.test", "alice", "pw");
    let ua = Ua::connect(cfg).await.expect("connect");
    let (stream, _) = listener.accept().await.expect("accept");
    let mut peer = TcpPeer {
        stream,
        framer: StreamFramer::new(Limits::default()),
    };

    // Server ping: the agent answers with CRLF.
    peer.send(b"\r\n\r\n").await;
    let mut pong = [0u8; 2];
    timeout(WAIT, peer.stream.read_exact(&mut pong))
        .await
        .expect("pong in time")
        .expect("read");
    assert_eq!(&pong, b"\r\n");
    // Agent ping: waits for our CRLF.
    let ka = tokio::spawn({
        let ua = ua.clone();
        async move { ua.keepalive(WAIT).await }
    });
    assert_eq!(peer.next_frame().await, Frame::Ping);
    peer.send(b"\r\n").await;
    ka.await.expect("join").expect("pong seen");

    // INVITE → 100, 180, 200 with Record-Route; ACK through the route set.
    let sdp = ua.im_sdp();
    assert!(sdp.contains("m=message 5060 sip null\r\na=accept-types:text/plain"));
    let call = tokio::spawn({
        let ua = ua.clone();
        async move {
            let mut req = ua.new_request(Method::Invite, "sip:bob@example.test")?;
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = sdp.into_bytes();
            ua.send_invite(req).await
        }
    });
    let invite = peer.recv_request().await;
    assert_eq!(invite.method, Method::Invite);
    assert!(invite.headers.contains(&HeaderName::Contact));
    assert_eq!(
        invite.headers.top_via().expect("via").transport,
        "TCP",
        "Via names the transport"
    );
    peer.send(&Response::to_request(&invite, 100).to_bytes())
        .await;
    peer.send(&reply(&invite, 180).to_bytes()).await;
    let ok = reply(&invite, 200)
        .with_header(
            HeaderName::RecordRoute,
            format!("<sip:{server};transport=tcp;lr>"),
        )
        .with_header(HeaderName::RecordRoute, "<sip:edge.example.test;lr>")
        .with_header(
            HeaderName::Contact,
            "<sip:bob@192.0.2.7:5070;transport=tcp>",
        );
    peer.send(&ok.to_bytes()).await;
    let (ex, mut dialog) = call.await.expect("join").expect("session");
    assert_eq!(
        ex.provisional.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![100, 180]
    );
    let ack = peer.recv_request().await;
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.7:5070;transport=tcp");
    assert_eq!(ack.headers.cseq().expect("cseq").seq, cseq(&invite));
    let routes: Vec<String> = ack
        .headers
        .routes()
        .expect("routes")
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        routes,
        vec![
            "<sip:edge.example.test;lr>".to_owned(),
            format!("<sip:{server};transport=tcp;lr>")
        ],
        "route set is the Record-Route reversed"
    );
    assert_ne!(branch(&ack), branch(&invite));

    // In-dialog MESSAGE, challenged once: CSeq follows the retry.
    let msg = tokio::spawn(async move {
        let r = dialog
            .request(Method::Message, "text/plain", "in session")
            .await;
        (r, dialog)
    });
    let m1 = peer.recv_request().await;
    assert_eq!(cseq(&m1), cseq(&invite) + 1);
    assert_eq!(m1.uri.to_string(), "sip:bob@192.0.2.7:5070;transport=tcp");
    assert_eq!(m1.headers.to().expect("to").tag(), Some("peertag"));
    assert_eq!(m1.body, b"in session");
    peer.send(
        &Response::to_request(&m1, 407)
            .with_header(
                HeaderName::ProxyAuthenticate,
                r#"Digest realm="example.test", nonce="x", qop="auth""#,
            )
            .to_bytes(),
    )
    .await;
    let m2 = peer.recv_request().await;
    assert_eq!(cseq(&m2), cseq(&m1) + 1);
    assert!(m2.headers.contains(&HeaderName::ProxyAuthorization));
    peer.send(&Response::to_request(&m2, 200).to_bytes()).await;
    let (r, dialog) = msg.await.expect("join");
    assert_eq!(r.expect("message").status, 200);
    assert_eq!(dialog.local_cseq, cseq(&m2));

    // A rejected INVITE is ACKed on the same branch and reported as Status.
    let call = tokio::spawn({
        let ua = ua.clone();
        async move { ua.invite("sip:bob@example.test", "v=0\r\n").await }
    });
    let invite2 = peer.recv_request().await;
    peer.send(&reply(&invite2, 486).to_bytes()).await;
    let err = call.await.expect("join").expect_err("busy");
    assert_eq!(err.status(), Some(486));
    let ack2 = peer.recv_request().await;
    assert_eq!(ack2.method, Method::Ack);
    assert_eq!(branch(&ack2), branch(&invite2));
    assert_eq!(ack2.headers.to().expect("to").tag(), Some("peertag"));

    // The server closes: waiting operations fail with Closed.
    let pending = tokio::spawn({
        let ua = ua.clone();
        async move {
            ua.send_message("sip:bob@example.test", "text/plain", "lost")
                .await
        }
    });
    let _ = peer.recv_request().await;
    drop(peer);
    ua.wait_closed(WAIT).await.expect("closed seen");
    assert!(matches!(
        pending.await.expect("join"),
        Err(UaError::Closed(_))
    ));
    assert!(ua.is_closed());
}

#[tokio::test]
async fn udp_retransmitted_2xx_is_acked_again_and_a_forked_2xx_is_released() {
    let peer = UdpPeer::new().await;
    let p = peer.addr();
    let cfg = UaConfig::new(Transport::Udp, p, "example.test", "alice", "pw");
    let ua = Ua::connect(cfg).await.expect("connect");
    let call = tokio::spawn({
        let ua = ua.clone();
        async move { ua.invite("sip:bob@example.test", "v=0\r\n").await }
    });
    let (invite, from) = peer.recv_request().await;
    let ok = reply(&invite, 200).with_header(HeaderName::Contact, format!("<sip:bob@{p}>"));
    peer.send(&ok.to_bytes(), from).await;
    let dialog = call.await.expect("join").expect("session");
    assert_eq!(dialog.remote_tag(), "peertag");
    let (ack1, _) = peer.recv_request().await;
    assert_eq!(ack1.method, Method::Ack);

    // The same 200 again (our ACK "was lost"): the same ACK again.
    peer.send(&ok.to_bytes(), from).await;
    let (ack_again, _) = peer.recv_request().await;
    assert_eq!(ack_again, ack1);

    // A 200 from another fork: ACKed, then released with BYE.
    let fork = Response::to_request(&invite, 200)
        .with_to_tag("fork2")
        .with_header(HeaderName::Contact, format!("<sip:bob2@{p}>"));
    peer.send(&fork.to_bytes(), from).await;
    let (ack2, _) = peer.recv_request().await;
    assert_eq!(ack2.method, Method::Ack);
    assert_eq!(ack2.headers.to().expect("to").tag(), Some("fork2"));
    assert_eq!(ack2.uri.to_string(), format!("sip:bob2@{p}"));
    let (bye, _) = peer.recv_request().await;
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.headers.to().expect("to").tag(), Some("fork2"));
    assert_eq!(cseq(&bye), cseq(&invite) + 1);
    peer.send(&Response::to_request(&bye, 200).to_bytes(), from)
        .await;
    let u = ua.recv_raw(WAIT).await.expect("fork 2xx reported");
    assert_eq!(
        u.response()
            .and_then(|r| r.headers.to().ok())
            .and_then(|t| t.tag().map(str::to_owned))
            .as_deref(),
        Some("fork2")
    );
}
