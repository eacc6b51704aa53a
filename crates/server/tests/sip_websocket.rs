//! SIP over WebSocket (RFC 7118) end to end: a browser-like client on the
//! HTTP listener registers with digest authentication, is reached over its
//! socket by requests from UDP users (pager mode and a Record-Routed INVITE
//! dialog), sends to them, and survives garbage; an upgrade without the `sip`
//! subprotocol is refused; over HTTPS the flow is WSS.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::digest::{self, Algorithm, ResponseInput};
use switchboard_sip::{
    AuthHeader, HeaderName, Limits, Message, Method, Request, Response, parse_datagram,
};
use switchboard_testua::{Transport, UaError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

const WAIT: Duration = Duration::from_secs(5);

/// Any byte stream a WebSocket can run on (TCP, or TLS over TCP).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{t:x}{n}")
}

/// Opens a TCP (or TLS, trusting the server's generated certificate)
/// connection to the HTTP listener.
async fn open(server: &Server, tls: bool) -> Box<dyn Io> {
    let tcp = TcpStream::connect(server.http).await.expect("connect HTTP");
    if !tls {
        return Box::new(tcp);
    }
    let pem = std::fs::read(server.dir.path().join("tls/cert.pem")).expect("server certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("certificate")).expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    Box::new(tls)
}

/// Asks for a WebSocket on `path`, offering `protocols`.
async fn upgrade(
    server: &Server,
    tls: bool,
    path: &str,
    protocols: Option<&str>,
) -> Result<WebSocketStream<Box<dyn Io>>, tungstenite::Error> {
    let scheme = if tls { "wss" } else { "ws" };
    let mut req = format!("{scheme}://localhost:{}{path}", server.http.port())
        .into_client_request()
        .expect("request");
    if let Some(p) = protocols {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    let stream = open(server, tls).await;
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await?;
    if protocols.is_some() {
        assert_eq!(
            resp.headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok()),
            Some("sip"),
            "the server selects the sip subprotocol"
        );
    }
    Ok(ws)
}

/// A browser-like SIP client (JsSIP, SIP.js) on one WebSocket: a random
/// `.invalid` Via host and Contact, one SIP message per WebSocket message.
struct WsUa {
    ws: WebSocketStream<Box<dyn Io>>,
    user: String,
    contact: String,
    call_id: String,
    cseq: u32,
    /// Requests that arrived while a response was awaited.
    pending: Vec<Request>,
}

impl WsUa {
    async fn connect(server: &Server, user: &str, tls: bool) -> WsUa {
        let ws = upgrade(server, tls, "/", Some("sip"))
            .await
            .expect("SIP WebSocket");
        WsUa {
            ws,
            user: user.to_owned(),
            contact: format!("sip:{}@invalid.invalid;transport=ws", unique()),
            call_id: format!("{}@ws.test", unique()),
            cseq: 0,
            pending: Vec::new(),
        }
    }

    fn via(&self) -> String {
        format!(
            "SIP/2.0/WSS {}.invalid;branch=z9hG4bK{}",
            unique(),
            unique()
        )
    }

    async fn send_text(&mut self, text: &str) {
        self.ws
            .send(WsMessage::text(text.to_owned()))
            .await
            .expect("send over the WebSocket");
    }

    /// The next SIP message received, each WebSocket message parsed alone.
    async fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            let data = match frame.ok()? {
                WsMessage::Text(t) => t.as_bytes().to_vec(),
                WsMessage::Binary(b) => b.to_vec(),
                WsMessage::Close(_) => return None,
                _ => continue,
            };
            match parse_datagram(&data, &Limits::default()) {
                Ok(m) => return Some(m),
                Err(e) => panic!(
                    "the server sent an unparsable message ({e}): {}",
                    String::from_utf8_lossy(&data)
                ),
            }
        }
    }

    /// The next request (queued ones first).
    async fn recv_request(&mut self, method: Method, timeout: Duration) -> Request {
        if let Some(i) = self.pending.iter().position(|r| r.method == method) {
            return self.pending.remove(i);
        }
        loop {
            match self.recv(timeout).await {
                Some(Message::Request(r)) if r.method == method => return r,
                Some(Message::Request(r)) => self.pending.push(r),
                Some(Message::Response(r)) => panic!("unexpected response {}", r.status),
                None => panic!("no {method} arrived over the WebSocket"),
            }
        }
    }

    /// The final response to the request with CSeq `seq`.
    async fn final_response(&mut self, seq: u32) -> Response {
        loop {
            match self.recv(WAIT).await {
                Some(Message::Response(r))
                    if r.status >= 200 && r.headers.cseq().is_ok_and(|c| c.seq == seq) =>
                {
                    return r;
                }
                Some(Message::Response(_)) => {}
                Some(Message::Request(r)) => self.pending.push(r),
                None => panic!("no response to CSeq {seq}"),
            }
        }
    }

    /// Sends a request (head lines without Via, CSeq and Content-Length);
    /// answers one digest challenge; returns the final response.
    async fn request(&mut self, method: &str, uri: &str, lines: &[String], body: &str) -> Response {
        let mut auth: Option<String> = None;
        for _ in 0..2 {
            self.cseq += 1;
            let mut text = format!(
                "{method} {uri} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n",
                self.via(),
                self.call_id,
                self.cseq
            );
            for l in lines {
                text.push_str(l);
                text.push_str("\r\n");
            }
            if let Some(a) = &auth {
                text.push_str(a);
                text.push_str("\r\n");
            }
            text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            self.send_text(&text).await;
            let resp = self.final_response(self.cseq).await;
            let (challenge, answer) = match resp.status {
                401 => (HeaderName::WwwAuthenticate, "Authorization"),
                407 => (HeaderName::ProxyAuthenticate, "Proxy-Authorization"),
                _ => return resp,
            };
            if auth.is_some() {
                return resp;
            }
            let ch = resp
                .headers
                .get_all(&challenge)
                .filter_map(|v| AuthHeader::parse(v, challenge.as_str()).ok())
                .find(|c| {
                    c.param("algorithm")
                        .is_none_or(|a| a.eq_ignore_ascii_case("MD5"))
                })
                .expect("an MD5 digest challenge");
            auth = Some(format!(
                "{answer}: {}",
                credentials(&ch, &self.user, method, uri)
            ));
        }
        unreachable!()
    }

    async fn register(&mut self, expires: u32) -> Response {
        let aor = format!("sip:{}@{DOMAIN}", self.user);
        let lines = vec![
            format!("From: <{aor}>;tag={}", unique()),
            format!("To: <{aor}>"),
            format!("Contact: <{}>;expires={expires}", self.contact),
            "Supported: path, gruu".to_owned(),
            "User-Agent: ws-test".to_owned(),
        ];
        self.request("REGISTER", &format!("sip:{DOMAIN}"), &lines, "")
            .await
    }

    async fn message(&mut self, to: &str, text: &str) -> Response {
        let lines = vec![
            format!("From: <sip:{}@{DOMAIN}>;tag={}", self.user, unique()),
            format!("To: <{to}>"),
            "Content-Type: text/plain".to_owned(),
        ];
        self.request("MESSAGE", to, &lines, text).await
    }

    async fn options(&mut self) -> Response {
        let lines = vec![
            format!("From: <sip:{}@{DOMAIN}>;tag={}", self.user, unique()),
            format!("To: <sip:{DOMAIN}>"),
        ];
        self.request("OPTIONS", &format!("sip:{DOMAIN}"), &lines, "")
            .await
    }

    async fn respond(&mut self, resp: Response) {
        let bytes = resp.to_bytes();
        self.send_text(std::str::from_utf8(&bytes).expect("UTF-8 response"))
            .await;
    }
}

/// The `Digest …` credentials answering `ch` (qop=auth when offered).
fn credentials(ch: &AuthHeader, user: &str, method: &str, uri: &str) -> String {
    let realm = ch.param("realm").unwrap_or("");
    let nonce = ch.param("nonce").unwrap_or("");
    let cnonce = unique();
    let response = digest::client_response(
        &ResponseInput {
            algorithm: Algorithm::Md5,
            nonce,
            nc: "00000001",
            cnonce: &cnonce,
            method,
            uri,
        },
        user,
        realm,
        PASSWORD,
    );
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, cnonce=\"{cnonce}\", qop=auth, nc=00000001"
    );
    if let Some(o) = ch.param("opaque") {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

fn top_via(req: &Request) -> String {
    req.headers
        .values(&HeaderName::Via)
        .next()
        .expect("Via")
        .to_owned()
}

#[tokio::test]
async fn websocket_client_registers_and_exchanges_messages_with_a_udp_user() {
    let server = Server::with_users(&["alice", "bob"]);
    let mut alice = WsUa::connect(&server, "alice", false).await;
    let reg = alice.register(600).await;
    assert_eq!(reg.status, 200, "{reg:?}");
    let listed: Vec<&str> = reg.headers.values(&HeaderName::Contact).collect();
    assert!(
        listed
            .iter()
            .any(|c| c.contains("@invalid.invalid;transport=ws")),
        "{listed:?}"
    );

    // UDP → WebSocket: over the socket alice registered on.
    let bob = server.registered("bob", Transport::Udp).await;
    let send = bob.send_message(format!("sip:alice@{DOMAIN}"), "text/plain", "hi alice");
    let receive = async {
        let m = alice.recv_request(Method::Message, WAIT).await;
        alice
            .respond(Response::to_request(&m, 200).with_to_tag(&unique()))
            .await;
        m
    };
    let (sent, got) = tokio::join!(send, receive);
    assert_eq!(sent.expect("bob's MESSAGE").status, 200);
    assert_eq!(String::from_utf8_lossy(&got.body), "hi alice");
    assert_eq!(
        got.uri.to_string(),
        alice.contact,
        "sent to the registered Contact"
    );
    let via = top_via(&got);
    assert!(
        via.starts_with(&format!("SIP/2.0/WS 127.0.0.1:{};", server.http.port())),
        "the server's Via names the WebSocket listener: {via}"
    );

    // WebSocket → UDP, with proxy authentication.
    let receive = async {
        let m = bob.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m)
    };
    let bob_uri = format!("sip:bob@{DOMAIN}");
    let send = alice.message(&bob_uri, "hi bob");
    let (sent, got) = tokio::join!(send, receive);
    assert_eq!(sent.status, 200, "{sent:?}");
    let got = got.expect("bob got it");
    assert_eq!(got.body_text(), "hi bob");
    let pai = got
        .request
        .headers
        .get(&HeaderName::PAssertedIdentity)
        .expect("asserted identity");
    assert!(pai.contains(&format!("sip:alice@{DOMAIN}")), "{pai}");
    // What alice's Via said is corrected to what the server saw.
    let vias: Vec<&str> = got.request.headers.values(&HeaderName::Via).collect();
    assert!(
        vias.iter()
            .any(|v| v.contains(".invalid") && v.contains("received=127.0.0.1")),
        "{vias:?}"
    );
}

#[tokio::test]
async fn invite_dialog_with_a_websocket_client_is_record_routed_over_the_socket() {
    let server = Server::with_users(&["alice", "bob"]);
    let mut alice = WsUa::connect(&server, "alice", false).await;
    assert_eq!(alice.register(600).await.status, 200);
    let bob = server.registered("bob", Transport::Udp).await;
    let offer = bob.im_sdp();
    let invite = bob.invite(format!("sip:alice@{DOMAIN}"), &offer);
    let answer = async {
        let inv = alice.recv_request(Method::Invite, WAIT).await;
        let rr: Vec<String> = inv
            .headers
            .values(&HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        let mut ok = Response::to_request(&inv, 200)
            .with_to_tag(&unique())
            .with_header(HeaderName::Contact, format!("<{}>", alice.contact))
            .with_header(HeaderName::ContentType, "application/sdp");
        for r in &rr {
            ok.headers.push(HeaderName::RecordRoute, r.clone());
        }
        ok.body = offer.as_bytes().to_vec();
        alice.respond(ok).await;
        rr
    };
    let (dialog, rr) = tokio::join!(invite, answer);
    let mut dialog = dialog.expect("bob's INVITE answered");
    let ws_route = format!("<sip:127.0.0.1:{};transport=ws;lr>", server.http.port());
    assert_eq!(
        rr.first(),
        Some(&ws_route),
        "the WebSocket side of the server comes first: {rr:?}"
    );
    assert!(
        rr.iter().any(|r| r.contains("transport=udp")),
        "the UDP side is record-routed too: {rr:?}"
    );
    let ack = alice.recv_request(Method::Ack, WAIT).await;
    assert_eq!(ack.uri.to_string(), alice.contact);
    // In-dialog: through both of the server's routes, back over the socket.
    let bye = dialog.bye();
    let answer = async {
        let b = alice.recv_request(Method::Bye, WAIT).await;
        alice.respond(Response::to_request(&b, 200)).await;
    };
    let (bye, ()) = tokio::join!(bye, answer);
    assert_eq!(bye.expect("BYE").status, 200);
}

#[tokio::test]
async fn upgrade_without_the_sip_subprotocol_is_refused_and_plain_get_serves_the_client() {
    let server = Server::start();
    for offered in [None, Some("chat, superchat")] {
        match upgrade(&server, false, "/", offered).await {
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 400);
                assert_eq!(
                    resp.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("application/problem+json")
                );
                let body: serde_json::Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                        .expect("problem JSON");
                assert_eq!(body["status"], 400);
                assert!(
                    body["title"].as_str().is_some_and(|t| t.contains("sip")),
                    "{body}"
                );
            }
            Err(e) => panic!("expected 400, got {e}"),
            Ok(_) => panic!("upgrade without sip ({offered:?}) accepted"),
        }
    }
    // The other paths take SIP too.
    for path in ["/sip", "/ws"] {
        let mut ws = upgrade(&server, false, path, Some("sip"))
            .await
            .expect("SIP WebSocket");
        ws.close(None).await.expect("close");
    }
    let mut http = open(&server, false).await;
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut page = Vec::new();
    tokio::time::timeout(WAIT, http.read_to_end(&mut page))
        .await
        .expect("in time")
        .expect("read");
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{page}"
    );
}

#[tokio::test]
async fn garbage_is_answered_or_dropped_and_the_socket_keeps_working() {
    let server = Server::with_users(&["alice"]);
    let mut alice = WsUa::connect(&server, "alice", false).await;
    // Not SIP at all: dropped.
    alice.send_text("hello, is this HTTP?").await;
    alice
        .ws
        .send(WsMessage::binary(vec![0xff, 0xfe, 0x00, 0x13, 0x37]))
        .await
        .expect("send binary");
    alice.send_text("\r\n\r\n").await;
    assert!(
        alice.recv(Duration::from_millis(500)).await.is_none(),
        "nothing to answer"
    );
    // A request with a defect but a usable head: 400 naming it.
    let bad = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bKbad1\r\n\
         From: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: bad@x\r\n\
         CSeq: many OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    alice.send_text(&bad).await;
    match alice.recv(WAIT).await {
        Some(Message::Response(r)) => {
            assert_eq!(r.status, 400, "{r:?}");
            assert!(r.reason.contains("CSeq"), "{}", r.reason);
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // Larger than max_message_bytes (64 KiB by default): 513.
    let big = format!(
        "MESSAGE sip:alice@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bKbig1\r\n\
         From: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <sip:alice@{DOMAIN}>\r\nCall-ID: big@x\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n\r\n{}",
        "x".repeat(70_000)
    );
    alice.send_text(&big).await;
    match alice.recv(WAIT).await {
        Some(Message::Response(r)) => assert_eq!(r.status, 513, "{r:?}"),
        other => panic!("expected 513, got {other:?}"),
    }
    // The same socket still works.
    assert_eq!(alice.options().await.status, 200);
    assert_eq!(alice.register(600).await.status, 200);
}

#[tokio::test]
async fn a_websocket_registration_ends_with_its_websocket() {
    let server = Server::with_users(&["alice", "bob"]);
    let mut first = WsUa::connect(&server, "alice", false).await;
    assert_eq!(first.register(600).await.status, 200);
    let contact = first.contact.clone();
    first.ws.close(None).await.expect("close");
    drop(first);
    // Another tab asks for alice's registrations (no Contact: a query).
    let mut second = WsUa::connect(&server, "alice", false).await;
    let aor = format!("sip:alice@{DOMAIN}");
    let lines = vec![
        format!("From: <{aor}>;tag={}", unique()),
        format!("To: <{aor}>"),
    ];
    let mut gone = false;
    for _ in 0..50 {
        let q = second
            .request("REGISTER", &format!("sip:{DOMAIN}"), &lines, "")
            .await;
        assert_eq!(q.status, 200, "{q:?}");
        if !q
            .headers
            .values(&HeaderName::Contact)
            .any(|c| c.contains(&contact))
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the binding of the closed WebSocket is still listed");
}

#[tokio::test]
async fn over_https_the_flow_is_wss() {
    let server = Server::with_users_and_config(&["alice", "bob"], "[web]\ntls = true\n");
    assert!(
        server
            .stdout
            .lock()
            .expect("stdout")
            .iter()
            .any(|l| l == &format!("listening: HTTPS {}", server.http)),
        "the HTTPS listener is announced"
    );
    // The API and the client are served over TLS with the generated certificate.
    let mut https = open(&server, true).await;
    https
        .write_all(
            b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("request");
    let mut answer = Vec::new();
    https.read_to_end(&mut answer).await.expect("response");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"openapi\""), "{answer}");
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = open(&server, false).await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, plain.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    assert!(!buf[..n].starts_with(b"HTTP/"), "plain HTTP was answered");
    let mut alice = WsUa::connect(&server, "alice", true).await;
    assert_eq!(alice.register(600).await.status, 200);
    let bob = server.registered("bob", Transport::Udp).await;
    let send = bob.send_message(format!("sip:alice@{DOMAIN}"), "text/plain", "secure hi");
    let receive = async {
        let m = alice.recv_request(Method::Message, WAIT).await;
        alice
            .respond(Response::to_request(&m, 200).with_to_tag(&unique()))
            .await;
        m
    };
    let (sent, got) = tokio::join!(send, receive);
    assert_eq!(sent.expect("bob's MESSAGE").status, 200);
    let via = top_via(&got);
    assert!(
        via.starts_with(&format!("SIP/2.0/WSS 127.0.0.1:{};", server.http.port())),
        "{via}"
    );
}
