//! One-to-one instant messaging end to end: pager mode to every device,
//! session IM through the proxy, offline IM, and the refusals.

mod support;

use std::time::Duration;
use support::{DOMAIN, Server};
use switchboard_sip::{HeaderName, Method};
use switchboard_testua::{Transport, UaError};

const WAIT: Duration = Duration::from_secs(5);

fn bob_uri() -> String {
    format!("sip:bob@{DOMAIN}")
}

#[tokio::test]
async fn pager_message_reaches_every_device_with_asserted_identity() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Tcp).await;
    let bob_phone = server.registered("bob", Transport::Udp).await;
    let bob_laptop = server.registered("bob", Transport::Tls).await;
    let send = alice.send_message(bob_uri(), "text/plain", "hello bob");
    let phone = async {
        let m = bob_phone.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m)
    };
    let laptop = async {
        let m = bob_laptop.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m)
    };
    let (sent, phone, laptop) = tokio::join!(send, phone, laptop);
    assert_eq!(sent.expect("sent").status, 200);
    for got in [phone.expect("phone got it"), laptop.expect("laptop got it")] {
        assert_eq!(got.body_text(), "hello bob");
        let pai = got
            .request
            .headers
            .get(&HeaderName::PAssertedIdentity)
            .expect("asserted identity");
        assert!(pai.contains(&format!("sip:alice@{DOMAIN}")), "{pai}");
        assert_eq!(
            got.request
                .headers
                .content_type()
                .expect("ct")
                .expect("ct")
                .essence(),
            "text/plain"
        );
    }
}

#[tokio::test]
async fn forged_asserted_identity_is_replaced() {
    let server = Server::with_users(&["alice", "bob", "mallory"]);
    let mallory = server.registered("mallory", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    let mut req = mallory
        .new_request(Method::Message, bob_uri())
        .expect("req");
    req.headers.push(
        HeaderName::PAssertedIdentity,
        format!("<sip:alice@{DOMAIN}>"),
    );
    req.headers.push(HeaderName::ContentType, "text/plain");
    req.body = b"it's alice, really".to_vec();
    let send = mallory.request(req);
    let recv = async {
        let m = bob.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m)
    };
    let (sent, got) = tokio::join!(send, recv);
    assert_eq!(sent.expect("sent").status, 200);
    let got = got.expect("received");
    let pais: Vec<&str> = got
        .request
        .headers
        .get_all(&HeaderName::PAssertedIdentity)
        .collect();
    assert_eq!(pais.len(), 1);
    assert!(pais[0].contains("mallory@"), "{pais:?}");
}

#[tokio::test]
async fn session_im_first_device_wins_and_the_other_is_cancelled() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob_phone = server.registered("bob", Transport::Udp).await;
    let bob_laptop = server.registered("bob", Transport::Tcp).await;
    let sdp = alice.im_sdp();
    let invite = alice.invite(bob_uri(), &sdp);
    let answer = async {
        let on_phone = bob_phone.expect_request(Method::Invite, WAIT).await?;
        let on_laptop = bob_laptop.expect_request(Method::Invite, WAIT).await?;
        on_laptop.respond(180).await?;
        let sdp = bob_phone.im_sdp();
        let dialog = on_phone.accept(&sdp).await?;
        let cancel = bob_laptop.expect_request(Method::Cancel, WAIT).await?;
        cancel.respond(200).await?;
        on_laptop.respond(487).await?;
        Ok::<_, UaError>(dialog)
    };
    let (alice_dialog, bob_dialog) = tokio::join!(invite, answer);
    let mut alice_dialog = alice_dialog.expect("alice's dialog");
    let mut bob_dialog = bob_dialog.expect("bob's dialog");
    assert!(
        !alice_dialog.route_set.is_empty(),
        "the proxy must record-route"
    );

    // MESSAGE and a typing notification inside the dialog, both ways.
    let send = alice_dialog.request(Method::Message, "text/plain", b"in session");
    let recv = async {
        let m = bob_phone.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m.body_text())
    };
    let (sent, text) = tokio::join!(send, recv);
    assert_eq!(sent.expect("message sent").status, 200);
    assert_eq!(text.expect("message received"), "in session");
    let typing = br#"<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>"#;
    let send = bob_dialog.request(Method::Info, "application/im-iscomposing+xml", typing);
    let recv = async {
        let m = alice.expect_request(Method::Info, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(())
    };
    let (sent, got) = tokio::join!(send, recv);
    assert_eq!(sent.expect("info sent").status, 200);
    got.expect("info received");
    let bye = alice_dialog.bye();
    let recv = async {
        let m = bob_phone.expect_request(Method::Bye, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(())
    };
    let (bye, got) = tokio::join!(bye, recv);
    assert_eq!(bye.expect("bye").status, 200);
    got.expect("bye received");
    assert!(
        bob_laptop.received(&Method::Message).is_empty(),
        "the cancelled device must not see the session"
    );
}

#[tokio::test]
async fn offline_message_waits_and_is_delivered_at_sign_in_even_across_a_restart() {
    let mut server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    for text in ["first", "second"] {
        let resp = alice
            .send_message(bob_uri(), "text/plain", text)
            .await
            .expect("answer");
        assert_eq!(resp.status, 202, "{resp:?}");
    }
    server.crash();
    server.start_again();
    let bob = server.registered("bob", Transport::Tcp).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = bob
            .expect_request(Method::Message, WAIT)
            .await
            .expect("held message");
        let from = m.request.headers.from().expect("from");
        assert_eq!(from.uri.to_string(), format!("sip:alice@{DOMAIN}"));
        assert!(
            m.request.headers.contains(&HeaderName::Date),
            "original Date must be carried"
        );
        got.push(m.body_text());
        m.respond(200).await.expect("ack it");
    }
    assert_eq!(got, vec!["first", "second"], "in order");
    // Delivered messages are gone: a new sign-in gets nothing more.
    let again = server.registered("bob", Transport::Udp).await;
    assert!(
        again
            .expect_request(Method::Message, Duration::from_secs(2))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_device_that_never_answers_does_not_hold_back_the_next_held_message() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    // Bob's first device turns the messages down (so they are held), then
    // goes silent: a stale registration whose transactions would each time
    // out after 32 s.
    let stale = server.registered("bob", Transport::Udp).await;
    for text in ["one", "two", "three"] {
        let send = alice.send_message(bob_uri(), "text/plain", text);
        let refuse = async {
            let m = stale.expect_request(Method::Message, WAIT).await?;
            m.respond(480).await
        };
        let (sent, refused) = tokio::join!(send, refuse);
        refused.expect("the device turned it down");
        assert_eq!(sent.expect("answer").status, 202, "held for later");
    }
    // Bob's second device signs in: held messages go to both devices, and
    // each next one follows as soon as the live device took the previous.
    let live = server.registered("bob", Transport::Udp).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = live
            .expect_request(Method::Message, WAIT)
            .await
            .expect("the next held message arrives without waiting for the stale device");
        got.push(m.body_text());
        m.respond(200).await.expect("ack it");
    }
    assert_eq!(got, vec!["one", "two", "three"]);
    let tried = stale
        .expect_request(Method::Message, WAIT)
        .await
        .expect("the stale device was tried too");
    assert_eq!(tried.body_text(), "one");
}

#[tokio::test]
async fn a_failed_delivery_keeps_the_message_for_later() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    assert_eq!(
        alice
            .send_message(bob_uri(), "text/plain", "keep me")
            .await
            .expect("answer")
            .status,
        202
    );
    let bob1 = server.registered("bob", Transport::Udp).await;
    let m = bob1
        .expect_request(Method::Message, WAIT)
        .await
        .expect("delivery attempt");
    m.respond(500).await.expect("refuse");
    bob1.unregister().await.expect("unregister");
    let bob2 = server.registered("bob", Transport::Tcp).await;
    let m = bob2
        .expect_request(Method::Message, WAIT)
        .await
        .expect("second attempt");
    assert_eq!(m.body_text(), "keep me");
    m.respond(200).await.expect("ok");
}

#[tokio::test]
async fn devices_that_do_not_answer_lead_to_offline_storage() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Tcp).await;
    let bob = server.registered("bob", Transport::Tcp).await;
    let send = alice.send_message(bob_uri(), "text/plain", "are you there?");
    let refuse = async {
        let m = bob.expect_request(Method::Message, WAIT).await?;
        m.respond(480).await?;
        Ok::<_, UaError>(())
    };
    let (sent, refused) = tokio::join!(send, refuse);
    refused.expect("bob's device answered 480");
    assert_eq!(
        sent.expect("answer").status,
        202,
        "stored for later when every device is unavailable"
    );
}

#[tokio::test]
async fn offline_im_off_gives_480() {
    let server = Server::with_users(&["alice", "bob"]);
    server.cli_ok(
        &[
            "policy",
            "im",
            "set",
            "--user",
            &format!("bob@{DOMAIN}"),
            "--offline",
            "off",
        ],
        None,
    );
    let show = server.cli_ok(&["policy", "im", "show", "--json"], None);
    assert!(show.contains("bob@example.test"), "{show}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let alice = server.registered("alice", Transport::Udp).await;
    assert_eq!(
        alice
            .send_message(bob_uri(), "text/plain", "x")
            .await
            .expect("answer")
            .status,
        480
    );
    server.cli_ok(
        &["policy", "im", "set", "--global", "--offline", "off"],
        None,
    );
    server.cli_ok(
        &[
            "policy",
            "im",
            "set",
            "--user",
            &format!("bob@{DOMAIN}"),
            "--offline",
            "on",
        ],
        None,
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        alice
            .send_message(bob_uri(), "text/plain", "y")
            .await
            .expect("answer")
            .status,
        202,
        "user scope wins over global"
    );
}

#[tokio::test]
async fn bad_messages_are_refused_precisely() {
    let server = Server::with_users_and_config(&["alice", "bob"], "[im]\nmax_body_bytes = 100\n");
    let alice = server.registered("alice", Transport::Udp).await;
    let _bob = server.registered("bob", Transport::Udp).await;
    let big = alice
        .send_message(bob_uri(), "text/plain", &"x".repeat(101))
        .await
        .expect("answer");
    assert_eq!(big.status, 413);
    let pdf = alice
        .send_message(bob_uri(), "application/pdf", "%PDF")
        .await
        .expect("answer");
    assert_eq!(pdf.status, 415);
    assert!(
        pdf.headers
            .get(&HeaderName::Accept)
            .is_some_and(|a| a.contains("text/plain"))
    );
    let mut no_ct = alice.new_request(Method::Message, bob_uri()).expect("req");
    no_ct.body = b"hi".to_vec();
    let r = alice.request(no_ct).await.expect("answer");
    assert_eq!((r.status, r.reason.as_str()), (400, "Missing Content-Type"));
    let unknown = alice
        .send_message(format!("sip:nobody@{DOMAIN}"), "text/plain", "hi")
        .await
        .expect("answer");
    assert_eq!(unknown.status, 404);
    let foreign = alice
        .send_message("sip:someone@elsewhere.test", "text/plain", "hi")
        .await
        .expect("answer");
    assert_eq!(foreign.status, 403);
    let mut hops = alice.new_request(Method::Message, bob_uri()).expect("req");
    hops.headers.set(HeaderName::MaxForwards, "0");
    hops.headers.push(HeaderName::ContentType, "text/plain");
    assert_eq!(alice.request(hops).await.expect("answer").status, 483);
}

#[tokio::test]
async fn requests_from_other_domains_and_unauthenticated_senders_are_refused() {
    let server = Server::with_users(&["alice", "bob"]);
    let _bob = server.registered("bob", Transport::Udp).await;
    let outsider = switchboard_testua::Ua::connect(switchboard_testua::UaConfig::new(
        Transport::Udp,
        server.udp,
        "elsewhere.test",
        "eve",
        "whatever",
    ))
    .await
    .expect("ua");
    let r = outsider
        .send_message(bob_uri(), "text/plain", "hi")
        .await
        .expect("answer");
    assert_eq!(r.status, 403);
    let alice = server.ua("alice", Transport::Udp).await;
    alice.set_auth_options(switchboard_testua::AuthOptions {
        auto: false,
        ..alice.auth_options()
    });
    let r = alice
        .send_message(bob_uri(), "text/plain", "hi")
        .await
        .expect("answer");
    assert_eq!(r.status, 407, "local senders must authenticate");
}
