//! Multiparty IM with real clients: three headless baresip 1.0 instances
//! (Debian `baresip-core`) take part in one conference of the real binary as
//! pager-mode members.
//!
//! A test user agent (alice) creates the conference at the factory and
//! invites the three by REFER. baresip registers no `+sip.message` device, so
//! the focus makes each a pager member and sends it the invitation MESSAGE
//! from the conference URI. Each baresip was started with the conference URI
//! as its only (so current) contact, so its `message` command (over
//! `ctrl_tcp`) writes to the conference. What each baresip received is read
//! from its own output (`<from-uri>: "<text>"`, printed by the `stdio` UI):
//! the others' messages, from the conference URI, with the sender named.
//! Drivers and guards are in `support/interop.rs`; every wait is bounded and
//! every baresip is killed when the test ends.

mod support;

use std::time::{Duration, Instant};
use support::interop::{Baresip, set_password_and_wait};
use support::{DOMAIN, Server};
use switchboard_sip::{HeaderName, Method, NameAddr, Request};
use switchboard_testua::{Dialog, RegisterOptions, Transport, Ua, UaConfig};

/// Every wait for baresip or the server is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// baresip reads `auth_pass` up to the first space or `;`.
const BARESIP_PASSWORD: &str = "baresip-conference-7";

const BARESIPS: [&str; 3] = ["bob", "carol", "dave"];

fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

/// Refer NOTIFYs in `call` that end a REFER subscription.
fn final_refer_notifies(ua: &Ua, call: &str) -> Vec<Request> {
    ua.received(&Method::Notify)
        .into_iter()
        .filter(|r| {
            r.headers.call_id().ok() == Some(call)
                && r.headers
                    .get(&HeaderName::SubscriptionState)
                    .is_some_and(|s| s.trim_start().starts_with("terminated"))
        })
        .collect()
}

fn dump(reqs: &[Request]) -> String {
    reqs.iter()
        .map(|r| String::from_utf8_lossy(&r.to_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

/// alice's device: takes sessions, answers MESSAGE and NOTIFY by itself.
async fn alice(server: &Server) -> Ua {
    let ua = Ua::connect(UaConfig::new(
        Transport::Tcp,
        server.tcp,
        DOMAIN,
        "alice",
        BARESIP_PASSWORD,
    ))
    .await
    .expect("connect alice");
    ua.auto_answer(Method::Message, 200);
    ua.auto_answer(Method::Notify, 200);
    let mut opts = RegisterOptions::new(3600);
    opts.contact_params.push(("+sip.message".into(), None));
    let r = ua.register_with(&opts).await.expect("register alice");
    assert_eq!(r.status, 200, "{r:?}");
    ua
}

/// alice creates a conference at the factory: her dialog and its URI.
async fn create_conference(alice: &Ua) -> (Dialog, String) {
    let mut req = alice
        .new_request(Method::Invite, format!("sip:conf-factory@{DOMAIN}"))
        .expect("INVITE");
    req.headers.push(HeaderName::ContentType, "application/sdp");
    req.body = alice.im_sdp().into_bytes();
    let (ex, dialog) = alice
        .send_invite(req)
        .await
        .expect("INVITE to the conference factory");
    let contact = ex
        .response
        .headers
        .get(&HeaderName::Contact)
        .expect("Contact of the focus");
    let conf = NameAddr::parse(contact, "Contact")
        .expect("Contact parses")
        .uri
        .to_string();
    assert!(conf.starts_with("sip:conf-"), "{contact}");
    (dialog, conf)
}

/// Kills the baresips (their guards) and prints their output when the test
/// fails, so a failure shows what each one saw.
struct Members(Vec<Baresip>);

impl Members {
    fn get(&self, user: &str) -> &Baresip {
        self.0
            .iter()
            .find(|b| b.user == user)
            .expect("a baresip of that user")
    }

    fn diagnostics(&self) -> String {
        self.0.iter().map(Baresip::diagnostics).collect()
    }
}

#[tokio::test]
async fn baresip_pager_members_chat_in_a_conference_and_see_who_wrote() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    for user in ["alice", "bob", "carol", "dave"] {
        set_password_and_wait(&server, user, BARESIP_PASSWORD, WAIT).await;
    }
    let alice = alice(&server).await;
    let (mut ad, conf) = create_conference(&alice).await;

    // The conference URI is each baresip's only, hence current, contact.
    let tmp = tempfile::tempdir().expect("temp dir");
    let members = Members(
        BARESIPS
            .iter()
            .map(|u| {
                Baresip::start(
                    tmp.path(),
                    u,
                    BARESIP_PASSWORD,
                    server.udp,
                    &[conf.as_str()],
                    Duration::from_secs(120),
                )
            })
            .collect(),
    );
    for b in &members.0 {
        if let Err(why) = b.wait_registered(WAIT) {
            panic!(
                "baresip {} did not register: {why}\n{}",
                b.user,
                b.diagnostics()
            );
        }
    }

    // alice invites the three by REFER in her dialog with the focus.
    for (i, user) in BARESIPS.iter().enumerate() {
        let mut refer = ad.new_request(Method::Refer);
        refer
            .headers
            .push(HeaderName::ReferTo, format!("<{}>", aor(user)));
        let r = ad.send(refer).await.expect("REFER").response;
        assert_eq!(r.status, 202, "REFER for {user}: {r:?}");
        let deadline = Instant::now() + WAIT;
        while final_refer_notifies(&alice, &ad.call_id).len() <= i {
            assert!(
                Instant::now() < deadline,
                "no final NOTIFY for the REFER of {user}; alice got:\n{}\n{}",
                dump(&alice.received_all()),
                members.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last = final_refer_notifies(&alice, &ad.call_id);
        let frag = String::from_utf8_lossy(&last[i].body).into_owned();
        assert!(
            frag.starts_with("SIP/2.0 200"),
            "{user} should be in (sipfrag 200): {frag:?}\n{}",
            members.diagnostics()
        );
    }

    // Each baresip shows the invitation, from the conference URI.
    for user in BARESIPS {
        let b = members.get(user);
        let got = b.wait_for_im(&conf, WAIT, |t| t.contains("invited you to a group chat"));
        assert!(
            got.is_some(),
            "baresip {user} did not show the invitation from {conf}\n{}",
            b.diagnostics()
        );
    }

    // Each baresip writes to the conference; the two others show it from the
    // conference URI with the sender named, and alice gets it in her dialog.
    let nonce = std::process::id();
    for user in BARESIPS {
        let said = format!("{user} says hello to the group ({nonce})");
        members.get(user).send_message(&said, WAIT);
        let expected = format!("{user}@{DOMAIN}: {said}");
        for other in BARESIPS.iter().filter(|o| **o != user) {
            let b = members.get(other);
            let got = b.wait_for_im(&conf, WAIT, |t| t.contains(&said));
            assert_eq!(
                got.as_deref(),
                Some(expected.as_str()),
                "baresip {other} should show {user}'s message as {expected:?}\n{}",
                members.diagnostics()
            );
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let at_alice: Vec<String> = alice
                .received(&Method::Message)
                .iter()
                .filter(|r| r.headers.call_id().ok() == Some(ad.call_id.as_str()))
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .filter(|t| t.contains(&said))
                .collect();
            if let Some(t) = at_alice.first() {
                assert_eq!(t, &expected);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alice did not get {user}'s message in her dialog:\n{}\n{}",
                dump(&alice.received_all()),
                members.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // alice (a session member) writes: every baresip shows it, named.
    let said = format!("alice answers everyone ({nonce})");
    let r = ad
        .request(Method::Message, "text/plain", said.as_bytes())
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for user in BARESIPS {
        let b = members.get(user);
        let got = b.wait_for_im(&conf, WAIT, |t| t.contains(&said));
        assert_eq!(
            got,
            Some(format!("alice@{DOMAIN}: {said}")),
            "baresip {user}\n{}",
            b.diagnostics()
        );
    }

    // Nobody was shown their own message, and each message once.
    for user in BARESIPS {
        let b = members.get(user);
        let shown = b.ims_from(&conf);
        for author in BARESIPS {
            let said = format!("{author} says hello to the group ({nonce})");
            let n = shown.iter().filter(|t| t.contains(&said)).count();
            let want = usize::from(author != user);
            assert_eq!(
                n,
                want,
                "baresip {user} showed {author}'s message {n} times\n{}",
                b.diagnostics()
            );
        }
        // Its MESSAGE to the conference was challenged, then accepted.
        let seen = b.message_responses(server.udp);
        assert!(
            seen.first() == Some(&407) && seen.contains(&200),
            "baresip {user}: responses to its MESSAGE: {seen:?}\n{}",
            b.diagnostics()
        );
    }
    for user in BARESIPS {
        eprintln!(
            "baresip {user} showed from {conf}: {:?}",
            members.get(user).ims_from(&conf)
        );
    }
    let _ = ad.bye().await;
}
