//! Registration end to end: the real binary on loopback, driven by the test
//! user agent over UDP, TCP and TLS.

mod support;

use std::time::Duration;
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::{Contacts, HeaderName, Method, Response};
use switchboard_testua::{Algorithm, AuthOptions, RegisterOptions, Transport, Ua, UaConfig};

fn contacts(resp: &Response) -> Vec<String> {
    match resp.headers.contacts().expect("contacts parse") {
        Contacts::List(l) => l.into_iter().map(|c| c.uri.to_string()).collect(),
        Contacts::Star => panic!("star in response"),
    }
}

async fn query(ua: &Ua) -> Response {
    let mut opts = RegisterOptions::new(0);
    opts.contact = Some(String::new());
    let req = ua.register_request(&opts).expect("request");
    let mut req = req;
    req.headers.remove(&HeaderName::Contact);
    req.headers.remove(&HeaderName::Expires);
    ua.request(req).await.expect("query")
}

#[tokio::test]
async fn registers_over_udp_tcp_and_tls_with_md5_and_sha256() {
    let server =
        Server::with_users_and_config(&["alice"], "[auth]\nalgorithms = [\"SHA-256\", \"MD5\"]\n");
    for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ua = server.ua("alice", transport).await;
            ua.set_auth_options(AuthOptions {
                force_algorithm: Some(alg),
                ..ua.auth_options()
            });
            let resp = ua
                .register(600)
                .await
                .unwrap_or_else(|e| panic!("{transport:?} {alg:?}: {e}"));
            assert_eq!(resp.status, 200, "{transport:?} {alg:?}");
            let mine = ua.contact_uri().to_string();
            assert!(
                contacts(&resp).contains(&mine),
                "{transport:?} {alg:?}: {mine} not in {:?}",
                contacts(&resp)
            );
            let exp = resp.headers.contacts().ok();
            if let Some(Contacts::List(l)) = exp {
                let c = l
                    .iter()
                    .find(|c| c.uri.to_string() == mine)
                    .expect("own contact");
                assert_eq!(c.params.value("expires"), Some("600"));
            }
            assert_eq!(ua.unregister().await.expect("unregister").status, 200);
        }
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_challenge() {
    let server = Server::with_users(&["alice"]);
    let wrong = Ua::connect(UaConfig::new(
        Transport::Udp,
        server.udp,
        DOMAIN,
        "alice",
        "not the password",
    ))
    .await
    .expect("ua");
    let r1 = wrong.register(600).await.expect("answer");
    assert_eq!(
        r1.headers.www_authenticate().expect("challenges").len(),
        1,
        "MD5 only by default"
    );
    let ghost = Ua::connect(UaConfig::new(
        Transport::Udp,
        server.udp,
        DOMAIN,
        "ghost",
        PASSWORD,
    ))
    .await
    .expect("ua");
    let r2 = ghost.register(600).await.expect("answer");
    assert_eq!(r1.status, 401);
    assert_eq!(r2.status, 401);
    assert_eq!(r1.reason, r2.reason);
    assert!(
        r1.headers.contains(&HeaderName::WwwAuthenticate)
            && r2.headers.contains(&HeaderName::WwwAuthenticate)
    );
}

#[tokio::test]
async fn expired_nonce_is_answered_with_stale() {
    let server = Server::with_users_and_config(&["alice"], "[auth]\nnonce_lifetime = 1\n");
    let ua = server.ua("alice", Transport::Udp).await;
    assert_eq!(ua.register(600).await.expect("first").status, 200);
    let (_, creds) = ua.last_credentials().expect("credentials used");
    let nonce = creds
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("nonce")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let opts = AuthOptions {
        auto: false,
        preemptive: true,
        nonce: Some(nonce),
        nc: Some(2),
        ..ua.auth_options()
    };
    let req = ua
        .register_request(&RegisterOptions::new(600))
        .expect("req");
    let ex = ua.send_request_with(req, &opts).await.expect("answer");
    let resp = ex.response;
    assert_eq!(resp.status, 401);
    let challenge = resp
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .expect("challenge");
    assert!(challenge.contains("stale=true"), "{challenge}");
}

#[tokio::test]
async fn replayed_credentials_are_refused() {
    let server = Server::with_users(&["alice"]);
    let ua = server.ua("alice", Transport::Udp).await;
    assert_eq!(ua.register(600).await.expect("first").status, 200);
    let opts = AuthOptions {
        auto: false,
        replay_previous: true,
        ..ua.auth_options()
    };
    let req = ua
        .register_request(&RegisterOptions::new(600))
        .expect("req");
    let ex = ua.send_request_with(req, &opts).await.expect("answer");
    assert_eq!(
        ex.response.status, 401,
        "a replayed nonce count must be refused"
    );
}

#[tokio::test]
async fn several_devices_and_their_removal() {
    let server = Server::with_users(&["alice"]);
    let phone = server.registered("alice", Transport::Udp).await;
    let laptop = server.registered("alice", Transport::Tcp).await;
    let resp = query(&phone).await;
    assert_eq!(resp.status, 200);
    let listed = contacts(&resp);
    assert!(
        listed.contains(&phone.contact_uri().to_string())
            && listed.contains(&laptop.contact_uri().to_string()),
        "{listed:?}"
    );
    assert_eq!(laptop.unregister().await.expect("unregister").status, 200);
    let listed = contacts(&query(&phone).await);
    assert_eq!(listed, vec![phone.contact_uri().to_string()]);
    let all = phone.unregister_all().await.expect("contact star");
    assert_eq!(all.status, 200);
    assert!(contacts(&query(&phone).await).is_empty());
}

#[tokio::test]
async fn registrations_expire() {
    let server = Server::with_users_and_config(
        &["alice"],
        "[registrar]\nmin_expires = 1\ndefault_expires = 60\n",
    );
    let ua = server.ua("alice", Transport::Udp).await;
    assert_eq!(ua.register(1).await.expect("register").status, 200);
    assert_eq!(contacts(&query(&ua).await).len(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        contacts(&query(&ua).await).is_empty(),
        "binding should have expired"
    );
}

#[tokio::test]
async fn too_brief_interval_gets_423() {
    let server = Server::with_users(&["alice"]);
    let ua = server.ua("alice", Transport::Udp).await;
    let resp = ua.register(10).await.expect("answer");
    assert_eq!(resp.status, 423);
    assert_eq!(resp.headers.min_expires().expect("parse"), Some(60));
}

#[tokio::test]
async fn cannot_register_someone_else_or_an_unserved_domain() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.ua("alice", Transport::Udp).await;
    let mut req = alice
        .register_request(&RegisterOptions::new(600))
        .expect("req");
    req.headers
        .set(HeaderName::To, format!("<sip:bob@{DOMAIN}>"));
    assert_eq!(alice.request(req).await.expect("answer").status, 403);
    let stranger = Ua::connect(UaConfig::new(
        Transport::Udp,
        server.udp,
        "elsewhere.test",
        "alice",
        PASSWORD,
    ))
    .await
    .expect("ua");
    assert_eq!(stranger.register(600).await.expect("answer").status, 403);
}

#[tokio::test]
async fn gruu_outbound_and_path() {
    let server = Server::with_users(&["alice"]);
    let ua = server.ua("alice", Transport::Tcp).await;
    let mut opts = RegisterOptions::new(600);
    opts.supported = vec!["gruu".into(), "outbound".into(), "path".into()];
    let resp = ua.register_with(&opts).await.expect("register");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.get(&HeaderName::Require), Some("outbound"));
    let Contacts::List(list) = resp.headers.contacts().expect("contacts") else {
        panic!("star")
    };
    let me = list
        .iter()
        .find(|c| c.uri == switchboard_sip::Uri::Sip(ua.contact_uri()))
        .expect("own binding");
    let gruu = me.params.get_unquoted("pub-gruu").expect("pub-gruu");
    assert_eq!(gruu, format!("sip:alice@{DOMAIN};gr={}", ua.instance()));
    assert_eq!(me.params.value("reg-id"), Some("1"));
}

#[tokio::test]
async fn outbound_flow_dies_with_its_connection() {
    let server = Server::with_users(&["alice"]);
    let watcher = server.registered("alice", Transport::Udp).await;
    let ua = server.ua("alice", Transport::Tcp).await;
    let mut opts = RegisterOptions::new(600);
    opts.supported = vec!["outbound".into()];
    assert_eq!(ua.register_with(&opts).await.expect("register").status, 200);
    assert_eq!(contacts(&query(&watcher).await).len(), 2);
    ua.close().await;
    let mut gone = false;
    for _ in 0..40 {
        if contacts(&query(&watcher).await).len() == 1 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the outbound binding should be removed when its connection closes"
    );
}

#[tokio::test]
async fn unsupported_require_gets_420() {
    let server = Server::with_users(&["alice"]);
    let ua = server.ua("alice", Transport::Udp).await;
    let mut req = ua
        .register_request(&RegisterOptions::new(600))
        .expect("req");
    req.headers.push(HeaderName::Require, "newfeature1, gruu");
    let resp = ua.request(req).await.expect("answer");
    assert_eq!(resp.status, 420);
    assert_eq!(
        resp.headers.get(&HeaderName::Unsupported),
        Some("newfeature1")
    );
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_defect() {
    let server = Server::start();
    let ua = server.ua("alice", Transport::Udp).await;
    let local = ua.local_addr();
    let raw = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_raw(raw.as_bytes()).await.expect("send");
    let got = ua
        .recv_raw(Duration::from_secs(3))
        .await
        .expect("an answer");
    let text = String::from_utf8_lossy(&got.bytes).into_owned();
    assert!(
        text.starts_with("SIP/2.0 400 Bad CSeq: method does not match request line"),
        "{text}"
    );
    let raw = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad2\r\nMax-Forwards: 300\r\nFrom: <sip:alice@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: bad2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_raw(raw.as_bytes()).await.expect("send");
    let text = String::from_utf8_lossy(
        &ua.recv_raw(Duration::from_secs(3))
            .await
            .expect("answer")
            .bytes,
    )
    .into_owned();
    assert!(
        text.starts_with("SIP/2.0 400 Bad Max-Forwards header"),
        "{text}"
    );
    let raw = format!(
        "OPTIONS sip:{DOMAIN} SIP/7.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad3\r\nFrom: <sip:a@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: bad3\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_raw(raw.as_bytes()).await.expect("send");
    let text = String::from_utf8_lossy(
        &ua.recv_raw(Duration::from_secs(3))
            .await
            .expect("answer")
            .bytes,
    )
    .into_owned();
    assert!(text.starts_with("SIP/2.0 505"), "{text}");
    // The server keeps serving after bad input.
    let ok = ua
        .request(
            ua.new_request(Method::Options, format!("sip:{DOMAIN}").as_str())
                .expect("req"),
        )
        .await
        .expect("options");
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn garbage_on_a_stream_closes_only_that_connection() {
    let server = Server::with_users(&["alice"]);
    let bad = server.ua("alice", Transport::Tcp).await;
    bad.send_raw(b"this is not SIP at all\r\n\r\n")
        .await
        .expect("send");
    bad.wait_closed(Duration::from_secs(5))
        .await
        .expect("connection closed by the server");
    let good = server.registered("alice", Transport::Tcp).await;
    assert!(!good.is_closed());
}

#[tokio::test]
async fn oversize_datagram_is_answered_513() {
    let server = Server::start_with_config(
        "[limits]\nmax_message_bytes = 2000\n[im]\nmax_body_bytes = 1000\n",
    );
    let ua = server.ua("alice", Transport::Udp).await;
    let mut req = ua
        .new_request(Method::Options, format!("sip:{DOMAIN}").as_str())
        .expect("req");
    req.headers
        .push(HeaderName::parse("X-Padding"), "x".repeat(3000));
    let resp = ua.request(req).await.expect("answer");
    assert_eq!(resp.status, 513);
}

#[tokio::test]
async fn cli_changes_apply_without_restart() {
    let server = Server::start();
    let ua = server.ua("carol", Transport::Udp).await;
    assert_eq!(ua.register(600).await.expect("answer").status, 401);
    server.cli_ok(
        &[
            "user",
            "add",
            &format!("carol@{DOMAIN}"),
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let mut ok = false;
    for _ in 0..30 {
        if ua.register(600).await.expect("answer").status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ok,
        "a user added with the CLI must be able to register while the server runs"
    );
    server.cli_ok(
        &[
            "user",
            "passwd",
            &format!("carol@{DOMAIN}"),
            "--password-stdin",
        ],
        Some("another password\n"),
    );
    let mut refused = false;
    for _ in 0..30 {
        if ua.register(600).await.expect("answer").status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused, "the old password must stop working after passwd");
}

#[tokio::test]
async fn registrations_survive_a_restart() {
    let mut server = Server::with_users(&["alice"]);
    let ua = server.registered("alice", Transport::Udp).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    assert!(
        server
            .output()
            .iter()
            .any(|l| l == "registrations restored: 1 (dropped 0 stream flows)"),
        "{:?}",
        server.output()
    );
    let listed = contacts(&query(&ua).await);
    assert_eq!(listed, vec![ua.contact_uri().to_string()]);
}

#[tokio::test]
async fn responses_tell_the_client_its_address_rport() {
    let server = Server::with_users(&["alice"]);
    let ua = server.ua("alice", Transport::Udp).await;
    let resp = ua.register(600).await.expect("register");
    let via = resp.headers.top_via().expect("via");
    let local = ua.local_addr();
    assert_eq!(
        via.params.value("rport"),
        Some(local.port().to_string().as_str())
    );
    assert_eq!(
        via.params.value("received"),
        Some(local.ip().to_string().as_str())
    );
}
