//! Multiparty IM end to end against the real binary: the conference factory,
//! invitations by REFER (session-capable and pager-only invitees) with their
//! sipfrag NOTIFYs, fan-out with the sender named (CPIM or a name prefix) in
//! the order received, pager-mode members, the roster (conference event
//! package), escalation of a one-to-one conversation (pager `/invite` and
//! in-dialog REFER) with its history, and the refusals (full, not invited,
//! unknown user, bad Refer-To, unknown conference), and the end of a
//! conference when its last member leaves.
//!
//! Every user agent answers MESSAGE and NOTIFY with 200 by itself; the tests
//! read what each received (`Ua::received`, retransmissions dropped) and wait
//! for it with bounded polls. Failure messages carry the SIP requests seen.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::{HeaderName, Method, NameAddr, Request, Response};
use switchboard_sip_bodies::conference_info::{ConferenceInfo, ElementState};
use switchboard_sip_bodies::cpim::Cpim;
use switchboard_testua::{Dialog, Exchange, RegisterOptions, Transport, Ua, UaError};

/// Bound of every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long the tests watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(1200);

/// The people of these tests: user and display name (erin has none, so she
/// is named by her address).
const PEOPLE: [(&str, Option<&str>); 7] = [
    ("alice", Some("Alice Liddell")),
    ("bob", Some("Bob Builder")),
    ("carol", Some("Carol Danvers")),
    ("dave", Some("Dave Grohl")),
    ("erin", None),
    ("frank", Some("Frank Ocean")),
    ("mallory", Some("Mallory Knox")),
];

fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

fn factory() -> String {
    format!("sip:conf-factory@{DOMAIN}")
}

/// How the focus names `user` to others.
fn name(user: &str) -> String {
    PEOPLE
        .iter()
        .find(|(u, _)| *u == user)
        .and_then(|(_, d)| d.map(str::to_owned))
        .unwrap_or_else(|| format!("{user}@{DOMAIN}"))
}

/// A server with [`PEOPLE`] provisioned (with display names) and `config`.
async fn server(config: &str) -> Server {
    server_with_env(config, &[]).await
}

/// [`server`] whose process also gets `env`.
async fn server_with_env(config: &str, env: &[(&str, &str)]) -> Server {
    let server = Server::start_with_config_and_env(config, env);
    // The server may already have the domain it was started with.
    let _ = server.cli(&["domain", "add", DOMAIN], None);
    for (user, display) in PEOPLE {
        let address = format!("{user}@{DOMAIN}");
        let mut args = vec!["user", "add", &address, "--password-stdin"];
        if let Some(d) = display {
            args.extend(["--display-name", d]);
        }
        server.cli_ok(&args, Some(&format!("{PASSWORD}\n")));
    }
    // The running server reloads its directory by itself: wait until it
    // knows everyone (a REGISTER query succeeds).
    let deadline = Instant::now() + Duration::from_secs(15);
    for (user, _) in PEOPLE {
        let ua = server.ua(user, Transport::Udp).await;
        loop {
            let mut opts = RegisterOptions::new(0);
            opts.contact = Some("*".into());
            if ua.register_with(&opts).await.is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not pick up user {user} within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    server
}

/// A registered device that answers MESSAGE and NOTIFY with 200 by itself;
/// with `sessions` it registers the `+sip.message` feature (it takes IM
/// sessions, so the focus INVITEs it).
async fn device(server: &Server, user: &str, transport: Transport, sessions: bool) -> Ua {
    let ua = server.ua(user, transport).await;
    ua.auto_answer(Method::Message, 200);
    ua.auto_answer(Method::Notify, 200);
    let mut opts = RegisterOptions::new(3600);
    if sessions {
        opts.contact_params.push(("+sip.message".into(), None));
    }
    let r = ua.register_with(&opts).await.expect("register");
    assert_eq!(r.status, 200, "registration of {user}: {r:?}");
    ua
}

async fn session_device(server: &Server, user: &str) -> Ua {
    device(server, user, Transport::Tcp, true).await
}

async fn pager_device(server: &Server, user: &str) -> Ua {
    device(server, user, Transport::Udp, false).await
}

/// An IM-session SDP offer or answer whose accept-types are `types`.
fn sdp_accepting(ua: &Ua, types: &str) -> String {
    ua.im_sdp().replace(
        "a=accept-types:text/plain",
        &format!("a=accept-types:{types}"),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn trace(reqs: &[Request]) -> String {
    if reqs.is_empty() {
        return "(nothing)".into();
    }
    reqs.iter()
        .map(|r| text(&r.to_bytes()))
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

fn response_trace(r: &Response) -> String {
    text(&r.to_bytes())
}

fn from_uri(r: &Request) -> String {
    r.headers
        .from()
        .map(|f| f.uri.to_string())
        .unwrap_or_default()
}

fn call_id(r: &Request) -> String {
    r.headers.call_id().unwrap_or_default().to_owned()
}

fn content_type(r: &Request) -> String {
    r.headers
        .content_type()
        .ok()
        .flatten()
        .map(|c| c.essence().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The distinct requests of `method` `ua` received (retransmissions
/// dropped), in arrival order.
fn got(ua: &Ua, method: &Method) -> Vec<Request> {
    let mut seen = HashSet::new();
    ua.received(method)
        .into_iter()
        .filter(|r| {
            let seq = r.headers.cseq().map(|c| c.seq).unwrap_or(0);
            seen.insert((call_id(r), seq))
        })
        .collect()
}

/// Waits until `ua` received at least `n` distinct requests of `method`
/// satisfying `pred`; returns them. Panics with everything received.
async fn wait_for(
    ua: &Ua,
    method: Method,
    n: usize,
    what: &str,
    pred: impl Fn(&Request) -> bool,
) -> Vec<Request> {
    wait_for_within(ua, method, n, what, WAIT, pred).await
}

/// [`wait_for`] with its own bound.
async fn wait_for_within(
    ua: &Ua,
    method: Method,
    n: usize,
    what: &str,
    bound: Duration,
    pred: impl Fn(&Request) -> bool,
) -> Vec<Request> {
    let deadline = Instant::now() + bound;
    loop {
        let hits: Vec<Request> = got(ua, &method).into_iter().filter(&pred).collect();
        if hits.len() >= n {
            return hits;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: {} got {} of {n} expected {method} requests within {bound:?}; \
                 everything it received:\n{}",
                ua.aor(),
                hits.len(),
                trace(&ua.received_all())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The conference messages `ua` received whose text contains `needle`.
fn messages_with(ua: &Ua, needle: &str) -> Vec<Request> {
    got(ua, &Method::Message)
        .into_iter()
        .filter(|r| text(&r.body).contains(needle))
        .collect()
}

/// How a member sees a conference message: (who the sender is said to be,
/// the text). CPIM: the sender's URI from the CPIM From; text: the name
/// before ": ".
fn shown(r: &Request) -> Option<(String, String)> {
    if content_type(r) == "message/cpim" {
        let c = Cpim::parse(&r.body).ok()?;
        return Some((c.from?.uri, text(&c.body)));
    }
    let body = text(&r.body);
    let (who, what) = body.split_once(": ")?;
    Some((who.to_owned(), what.to_owned()))
}

/// Starts a conference at the factory; returns the exchange, the creator's
/// dialog and the conference URI from the focus's Contact.
async fn create(ua: &Ua, sdp: &str) -> (Exchange, Dialog, String) {
    let mut req = ua.new_request(Method::Invite, factory()).expect("INVITE");
    req.headers.push(HeaderName::ContentType, "application/sdp");
    req.body = sdp.as_bytes().to_vec();
    let (ex, dialog) = match ua.send_invite(req).await {
        Ok(x) => x,
        Err(e) => panic!("INVITE to the conference factory failed: {e:?}"),
    };
    let contact = ex
        .response
        .headers
        .get(&HeaderName::Contact)
        .unwrap_or_else(|| panic!("200 without Contact:\n{}", response_trace(&ex.response)))
        .to_owned();
    let na = NameAddr::parse(&contact, "Contact").expect("Contact parses");
    (ex, dialog, na.uri.to_string())
}

/// A REFER inside `dialog` naming `refer_to` (a raw Refer-To value).
async fn refer_in(dialog: &mut Dialog, refer_to: &str) -> Response {
    let mut req = dialog.new_request(Method::Refer);
    req.headers.push(HeaderName::ReferTo, refer_to.to_owned());
    dialog.send(req).await.expect("in-dialog REFER").response
}

/// A REFER out of any dialog to `conf` naming `refer_to`.
async fn refer_out(ua: &Ua, conf: &str, refer_to: &str) -> Result<(Response, Dialog), UaError> {
    let mut req = ua.new_request(Method::Refer, conf)?;
    req.headers.push(HeaderName::ReferTo, refer_to.to_owned());
    ua.create_dialog(req).await
}

fn sipfrag_status(r: &Request) -> Option<u16> {
    text(&r.body)
        .strip_prefix("SIP/2.0 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
}

fn is_terminated(r: &Request) -> bool {
    r.headers
        .get(&HeaderName::SubscriptionState)
        .is_some_and(|s| {
            s.trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
        })
}

fn is_refer_notify(r: &Request, call: &str) -> bool {
    call_id(r) == call
        && r.headers
            .event()
            .ok()
            .flatten()
            .is_some_and(|e| e.package.eq_ignore_ascii_case("refer"))
}

/// Waits until the `n`th refer subscription in dialog `call` ended (a
/// NOTIFY with Subscription-State terminated); returns every refer NOTIFY of
/// that dialog so far, in order.
async fn refer_notifies(ua: &Ua, call: &str, n: usize) -> Vec<Request> {
    wait_for(ua, Method::Notify, n, "final REFER NOTIFY", |r| {
        is_refer_notify(r, call) && is_terminated(r)
    })
    .await;
    got(ua, &Method::Notify)
        .into_iter()
        .filter(|r| is_refer_notify(r, call))
        .collect()
}

/// Answers the focus's INVITE arriving at `ua` with `sdp`; returns the
/// INVITE and the invitee's dialog with the focus.
async fn answer_focus(ua: &Ua, sdp: &str) -> (Request, Dialog) {
    let inv = ua
        .expect_request(Method::Invite, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{} got no INVITE from the focus: {e}", ua.aor()));
    let request = inv.request.clone();
    let dialog = inv.accept(sdp).await.expect("accept the focus's INVITE");
    (request, dialog)
}

/// `referrer` brings `invitee` (a session-capable device of `user`) in with
/// a REFER in its dialog; waits for the invitee's dialog and the final NOTIFY.
async fn bring_in(referrer: &mut Dialog, invitee: &Ua, user: &str, sdp: &str) -> Dialog {
    let call = referrer.call_id.clone();
    let ua = referrer.ua().clone();
    let before = got(&ua, &Method::Notify)
        .iter()
        .filter(|r| is_refer_notify(r, &call) && is_terminated(r))
        .count();
    let r = refer_in(referrer, &format!("<{}>", aor(user))).await;
    assert_eq!(r.status, 202, "REFER for {user}:\n{}", response_trace(&r));
    let (_, dialog) = answer_focus(invitee, sdp).await;
    refer_notifies(&ua, &call, before + 1).await;
    dialog
}

fn is_conference_uri(uri: &str) -> bool {
    uri.strip_prefix("sip:conf-")
        .and_then(|r| r.strip_suffix(&format!("@{DOMAIN}")))
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

#[tokio::test]
async fn factory_invite_creates_a_conference_with_the_creator_as_a_session_member() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let (ex, mut dialog, conf) = create(&alice, &alice.im_sdp()).await;

    assert_eq!(
        ex.challenge.as_ref().map(|c| c.status),
        Some(407),
        "the factory must authenticate the creator"
    );
    assert_eq!(ex.response.status, 200);
    let contact = ex
        .response
        .headers
        .get(&HeaderName::Contact)
        .unwrap_or_default();
    assert!(
        is_conference_uri(&conf) && contact.contains(";isfocus"),
        "Contact must be <sip:conf-<32 hex>@{DOMAIN}>;isfocus:\n{}",
        response_trace(&ex.response)
    );
    assert!(
        text(&ex.response.body).contains("m=message"),
        "the answer is an IM session SDP:\n{}",
        response_trace(&ex.response)
    );
    assert_eq!(dialog.remote_target.to_string(), conf);

    // A message in the dialog is posted to the conference (nobody else yet).
    let r = dialog
        .request(Method::Message, "text/plain", b"anyone here?")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));

    // Each factory INVITE makes a new conference.
    let (_, mut other, conf2) = create(&alice, &alice.im_sdp()).await;
    assert_ne!(conf, conf2, "every conference gets its own URI");

    // A non-IM offer is refused.
    let audio = alice
        .im_sdp()
        .replace("m=message 5060 sip null", "m=audio 4000 RTP/AVP 0");
    let mut req = alice.new_request(Method::Invite, factory()).expect("req");
    req.headers.push(HeaderName::ContentType, "application/sdp");
    req.body = audio.into_bytes();
    let r = alice.request(req).await.expect("audio INVITE");
    assert_eq!(r.status, 488, "{}", response_trace(&r));

    assert_eq!(dialog.bye().await.expect("BYE").status, 200);
    assert_eq!(other.bye().await.expect("BYE").status, 200);
}

#[tokio::test]
async fn refer_in_dialog_brings_in_a_session_capable_user_with_sipfrag_progress() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;

    // Said before bob joins: he gets it as history.
    let r = ad
        .request(Method::Message, "text/plain", b"before bob arrives")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);

    let r = refer_in(&mut ad, &format!("<{}>", aor("bob"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));

    let (invite, mut bd) = answer_focus(&bob, &bob.im_sdp()).await;
    let wire = text(&invite.to_bytes());
    assert_eq!(
        from_uri(&invite),
        conf,
        "INVITE From the conference:\n{wire}"
    );
    let contact = invite.headers.get(&HeaderName::Contact).unwrap_or_default();
    assert!(
        contact.contains(&conf) && contact.contains(";isfocus"),
        "Contact <conf>;isfocus:\n{wire}"
    );
    assert!(
        invite
            .headers
            .get(&HeaderName::ReferredBy)
            .is_some_and(|v| v.contains(&aor("alice"))),
        "Referred-By names alice:\n{wire}"
    );
    assert!(text(&invite.body).contains("m=message"), "{wire}");

    let notifies = refer_notifies(&alice, &ad.call_id, 1).await;
    let statuses: Vec<Option<u16>> = notifies.iter().map(sipfrag_status).collect();
    assert!(
        statuses.first() == Some(&Some(100)) && statuses.last() == Some(&Some(200)),
        "NOTIFYs must go 100 Trying then 200; got {statuses:?}:\n{}",
        trace(&notifies)
    );
    for n in &notifies {
        assert!(
            content_type(n) == "message/sipfrag",
            "sipfrag body:\n{}",
            trace(std::slice::from_ref(n))
        );
    }

    // bob: the history first, then the notice that he was added.
    let history = wait_for(&bob, Method::Message, 1, "history for bob", |r| {
        call_id(r) == bd.call_id && text(&r.body).contains("before bob arrives")
    })
    .await;
    assert_eq!(
        text(&history[0].body),
        format!("{}: before bob arrives", name("alice"))
    );
    let added = format!(
        "{} added {} to the conversation",
        name("alice"),
        name("bob")
    );
    wait_for(&alice, Method::Message, 1, "notice to alice", |r| {
        call_id(r) == ad.call_id && text(&r.body).contains(&added)
    })
    .await;
    let in_bob_dialog: Vec<String> = got(&bob, &Method::Message)
        .iter()
        .filter(|r| call_id(r) == bd.call_id)
        .map(|r| text(&r.body))
        .collect();
    let h = in_bob_dialog
        .iter()
        .position(|t| t.contains("before bob arrives"));
    let n = in_bob_dialog.iter().position(|t| t.contains(&added));
    assert!(
        h.is_some() && (n.is_none() || h < n),
        "history before the notice: {in_bob_dialog:?}"
    );

    // Both ways inside the dialogs, the sender named.
    assert_eq!(
        ad.request(Method::Message, "text/plain", b"hello bob")
            .await
            .expect("MESSAGE")
            .status,
        200
    );
    let m = wait_for(&bob, Method::Message, 1, "alice to bob", |r| {
        call_id(r) == bd.call_id && text(&r.body).contains("hello bob")
    })
    .await;
    assert_eq!(text(&m[0].body), format!("{}: hello bob", name("alice")));
    assert_eq!(content_type(&m[0]), "text/plain");
    assert_eq!(
        bd.request(Method::Message, "text/plain", b"hi alice")
            .await
            .expect("MESSAGE")
            .status,
        200
    );
    let m = wait_for(&alice, Method::Message, 1, "bob to alice", |r| {
        call_id(r) == ad.call_id && text(&r.body).contains("hi alice")
    })
    .await;
    assert_eq!(text(&m[0].body), format!("{}: hi alice", name("bob")));
}

#[tokio::test]
async fn refer_out_of_dialog_reports_progress_in_sipfrag_notifies() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;

    // A session-capable invitee, REFER to the conference URI outside the dialog.
    let (resp, sub) = refer_out(&alice, &conf, &format!("<{}>", aor("bob")))
        .await
        .expect("out-of-dialog REFER");
    assert_eq!(resp.status, 202, "{}", response_trace(&resp));
    assert!(
        resp.headers
            .get(&HeaderName::Contact)
            .is_some_and(|c| c.contains(&conf) && c.contains(";isfocus")),
        "{}",
        response_trace(&resp)
    );
    let (_invite, _bd) = answer_focus(&bob, &bob.im_sdp()).await;
    let notifies = refer_notifies(&alice, &sub.call_id, 1).await;
    let statuses: Vec<Option<u16>> = notifies.iter().map(sipfrag_status).collect();
    assert!(
        statuses.first() == Some(&Some(100)) && statuses.last() == Some(&Some(200)),
        "sipfrag 100 Trying, then 200; got {statuses:?}:\n{}",
        trace(&notifies)
    );
    for n in &notifies {
        assert_eq!(
            content_type(n),
            "message/sipfrag",
            "{}",
            trace(std::slice::from_ref(n))
        );
    }

    // A pager-only invitee: 200 once she is a member.
    let (resp, sub) = refer_out(&alice, &conf, &format!("<{}>", aor("carol")))
        .await
        .expect("out-of-dialog REFER");
    assert_eq!(resp.status, 202, "{}", response_trace(&resp));
    let notifies = refer_notifies(&alice, &sub.call_id, 1).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(200),
        "final sipfrag 200:\n{}",
        trace(&notifies)
    );
    wait_for(&carol, Method::Message, 1, "invitation to carol", |r| {
        from_uri(r) == conf && text(&r.body).contains("invited you to a group chat")
    })
    .await;

    // Nonexistent and unreachable users: the failure in the final sipfrag.
    for (user, status) in [("nobody", 404), ("frank", 480)] {
        let (resp, sub) = refer_out(&alice, &conf, &format!("<{}>", aor(user)))
            .await
            .expect("REFER");
        assert_eq!(resp.status, 202, "{}", response_trace(&resp));
        let n = refer_notifies(&alice, &sub.call_id, 1).await;
        assert_eq!(
            n.last().and_then(sipfrag_status),
            Some(status),
            "{}",
            trace(&n)
        );
    }
    let _ = ad.bye().await;
}

#[tokio::test]
async fn a_pager_only_invitee_becomes_a_pager_member_who_takes_part_and_leaves() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    let mut bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;

    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    let notifies = refer_notifies(&alice, &ad.call_id, 2).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(200),
        "final sipfrag 200 once carol is a pager member:\n{}",
        trace(&notifies)
    );

    // carol has no +sip.message device: she is invited by MESSAGE from the conference.
    let inv = wait_for(&carol, Method::Message, 1, "invitation to carol", |r| {
        from_uri(r) == conf && text(&r.body).contains("invited you to a group chat")
    })
    .await;
    assert!(
        text(&inv[0].body).starts_with(&format!("{} invited you to a group chat", name("alice"))),
        "{}",
        trace(&inv)
    );
    assert!(
        got(&carol, &Method::Invite).is_empty(),
        "a pager-only device is not INVITEd"
    );

    // alice writes: carol (pager) and bob (session) get it, named.
    assert_eq!(
        ad.request(Method::Message, "text/plain", b"welcome carol")
            .await
            .expect("MESSAGE")
            .status,
        200
    );
    let m = wait_for(&carol, Method::Message, 1, "alice to carol", |r| {
        from_uri(r) == conf && text(&r.body).contains("welcome carol")
    })
    .await;
    assert_eq!(
        text(&m[0].body),
        format!("{}: welcome carol", name("alice"))
    );
    assert!(
        m[0].headers
            .to()
            .is_ok_and(|t| t.uri.to_string() == aor("carol")),
        "To carol:\n{}",
        trace(&m)
    );

    // carol answers by MESSAGE to the conference URI.
    let r = carol
        .send_message(conf.as_str(), "text/plain", "thanks, carol here")
        .await
        .expect("MESSAGE to the conference");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    for (ua, call) in [(&alice, &ad.call_id), (&bob, &bd.call_id)] {
        let m = wait_for(ua, Method::Message, 1, "carol's message", |r| {
            call_id(r) == *call && text(&r.body).contains("thanks, carol here")
        })
        .await;
        assert_eq!(
            text(&m[0].body),
            format!("{}: thanks, carol here", name("carol"))
        );
    }
    assert!(
        messages_with(&carol, "thanks, carol here").is_empty(),
        "the sender does not get her own message back"
    );

    // /leave: out, the others are told, nothing more reaches her.
    let r = carol
        .send_message(conf.as_str(), "text/plain", "/leave")
        .await
        .expect("/leave");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    let left = format!("{} left the conversation", name("carol"));
    wait_for(&bob, Method::Message, 1, "leave notice", |r| {
        call_id(r) == bd.call_id && text(&r.body).contains(&left)
    })
    .await;
    assert_eq!(
        bd.request(Method::Message, "text/plain", b"after carol left")
            .await
            .expect("MESSAGE")
            .status,
        200
    );
    wait_for(&alice, Method::Message, 1, "bob to alice", |r| {
        text(&r.body).contains("after carol left")
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert!(
        messages_with(&carol, "after carol left").is_empty(),
        "carol left; she got:\n{}",
        trace(&messages_with(&carol, "after carol left"))
    );
}

#[tokio::test]
async fn three_session_members_get_every_message_once_in_order_with_the_sender_named() {
    const N: usize = 8;
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let erin = session_device(&server, "erin").await;
    // alice's client shows CPIM; bob's and erin's only text/plain.
    let (_, mut ad, _conf) =
        create(&alice, &sdp_accepting(&alice, "message/cpim text/plain")).await;
    let mut bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;
    let mut ed = bring_in(&mut ad, &erin, "erin", &erin.im_sdp()).await;

    // Everyone writes N messages as fast as the 200s come back, all at once.
    async fn burst(d: &mut Dialog, who: &str) {
        for i in 0..N {
            let body = format!("{who} #{i}");
            let r = d
                .request(Method::Message, "text/plain", body.as_bytes())
                .await
                .expect("MESSAGE");
            assert_eq!(r.status, 200, "{who} #{i}: {}", response_trace(&r));
        }
    }
    tokio::join!(
        burst(&mut ad, "alice"),
        burst(&mut bd, "bob"),
        burst(&mut ed, "erin")
    );

    let members = [
        ("alice", &alice, ad.call_id.clone()),
        ("bob", &bob, bd.call_id.clone()),
        ("erin", &erin, ed.call_id.clone()),
    ];
    for (me, ua, call) in &members {
        let msgs = wait_for(ua, Method::Message, 2 * N, "burst", |r| {
            call_id(r) == *call && text(&r.body).contains(" #")
        })
        .await;
        let mut per_sender: Vec<(String, Vec<usize>)> = Vec::new();
        for r in &msgs {
            let (who, what) = shown(r)
                .unwrap_or_else(|| panic!("unreadable: {}", trace(std::slice::from_ref(r))));
            let (author, idx) = what
                .split_once(" #")
                .map(|(a, i)| (a.to_owned(), i.parse::<usize>().expect("index")))
                .expect("a burst message");
            assert_ne!(&author, me, "{me} got its own message back");
            // The sender is named correctly: CPIM From for alice, the
            // display name (or address) for the others.
            let expected = if *me == "alice" {
                aor(&author)
            } else {
                name(&author)
            };
            assert_eq!(
                who,
                expected,
                "{me} sees {what:?} attributed to {who:?}:\n{}",
                trace(std::slice::from_ref(r))
            );
            if *me == "alice" {
                assert_eq!(content_type(r), "message/cpim");
                let c = Cpim::parse(&r.body).expect("cpim");
                assert_eq!(
                    c.from.clone().and_then(|f| f.display_name),
                    PEOPLE
                        .iter()
                        .find(|(u, _)| *u == author)
                        .and_then(|(_, d)| d.map(str::to_owned))
                );
                assert_eq!(c.content_type(), Some("text/plain"));
            } else {
                assert_eq!(content_type(r), "text/plain");
            }
            match per_sender.iter_mut().find(|(a, _)| *a == author) {
                Some((_, v)) => v.push(idx),
                None => per_sender.push((author, vec![idx])),
            }
        }
        for (author, seq) in &per_sender {
            assert_eq!(
                seq,
                &(0..N).collect::<Vec<_>>(),
                "{me} must get {author}'s messages once each, in the order sent"
            );
        }
        assert_eq!(per_sender.len(), 2, "{me} hears both others");
    }
}

#[tokio::test]
async fn roster_subscription_gets_full_state_then_partial_joins_and_leaves() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;

    let (resp, sub) = alice
        .subscribe(
            conf.as_str(),
            "conference",
            "application/conference-info+xml",
            600,
        )
        .await
        .unwrap_or_else(|e| panic!("SUBSCRIBE to the roster: {e:?}"));
    assert_eq!(resp.status, 200);
    let roster = |n: usize| {
        let alice = alice.clone();
        let call = sub.call_id.clone();
        async move {
            wait_for(&alice, Method::Notify, n, "roster NOTIFY", |r| {
                call_id(r) == call
                    && r.headers
                        .event()
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.package == "conference")
            })
            .await
        }
    };
    let docs = |reqs: &[Request]| -> Vec<ConferenceInfo> {
        reqs.iter()
            .map(|r| {
                assert_eq!(
                    content_type(r),
                    "application/conference-info+xml",
                    "{}",
                    trace(std::slice::from_ref(r))
                );
                ConferenceInfo::parse(&r.body).unwrap_or_else(|e| {
                    panic!(
                        "conference-info does not parse ({e}):\n{}",
                        trace(std::slice::from_ref(r))
                    )
                })
            })
            .collect()
    };
    let first = roster(1).await;
    let d = docs(&first);
    assert_eq!(d[0].state, ElementState::Full, "{}", trace(&first));
    assert_eq!(d[0].entity, conf, "{}", trace(&first));
    let users = |doc: &ConferenceInfo| -> Vec<(String, Option<ElementState>)> {
        doc.users
            .as_ref()
            .map(|u| u.list.iter().map(|u| (u.entity.clone(), u.state)).collect())
            .unwrap_or_default()
    };
    assert!(
        users(&d[0]).iter().any(|(e, _)| *e == aor("alice")),
        "alice is in the full roster:\n{}",
        trace(&first)
    );

    // bob joins: a partial document with him.
    let mut bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;
    let joined = roster(2).await;
    let all = docs(&joined);
    let bob_in = all.iter().skip(1).find(|d| {
        users(d)
            .iter()
            .any(|(e, s)| *e == aor("bob") && *s != Some(ElementState::Deleted))
    });
    let bob_in =
        bob_in.unwrap_or_else(|| panic!("no NOTIFY shows bob joining:\n{}", trace(&joined)));
    assert_eq!(bob_in.state, ElementState::Partial, "{}", trace(&joined));

    // bob leaves: his user element deleted.
    assert_eq!(bd.bye().await.expect("BYE").status, 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let now = got(&alice, &Method::Notify)
            .into_iter()
            .filter(|r| call_id(r) == sub.call_id)
            .collect::<Vec<_>>();
        let gone = docs(&now).iter().any(|d| {
            d.state == ElementState::Partial
                && users(d)
                    .iter()
                    .any(|(e, s)| *e == aor("bob") && *s == Some(ElementState::Deleted))
        });
        if gone {
            // Versions grow by one per NOTIFY.
            let versions: Vec<Option<u32>> = docs(&now).iter().map(|d| d.version).collect();
            for w in versions.windows(2) {
                assert_eq!(
                    w[1].zip(w[0]).map(|(b, a)| b - a),
                    Some(1),
                    "versions {versions:?}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no NOTIFY with bob's user state=\"deleted\" after his BYE:\n{}",
            trace(&now)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = ad.bye().await;
}

#[tokio::test]
async fn roster_subscription_is_refused_to_outsiders_and_for_unknown_conferences() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = session_device(&server, "carol").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    match carol
        .subscribe(
            conf.as_str(),
            "conference",
            "application/conference-info+xml",
            600,
        )
        .await
    {
        Err(UaError::Status(r)) => assert_eq!(r.status, 403, "{}", response_trace(&r)),
        other => panic!("an uninvited roster SUBSCRIBE must get 403: {other:?}"),
    }
    let unknown = format!("sip:conf-0123456789abcdef0123456789abcdef@{DOMAIN}");
    match alice
        .subscribe(
            unknown.as_str(),
            "conference",
            "application/conference-info+xml",
            600,
        )
        .await
    {
        Err(UaError::Status(r)) => assert_eq!(r.status, 404, "{}", response_trace(&r)),
        other => panic!("SUBSCRIBE to an unknown conference must get 404: {other:?}"),
    }
    // An invitee who has not joined yet may watch (bob declines the session).
    let r = refer_in(&mut ad, &format!("<{}>", aor("bob"))).await;
    assert_eq!(r.status, 202);
    let inv = bob
        .expect_request(Method::Invite, WAIT)
        .await
        .expect("INVITE");
    inv.respond(603).await.expect("decline");
    let (resp, _sub) = bob
        .subscribe(
            conf.as_str(),
            "conference",
            "application/conference-info+xml",
            600,
        )
        .await
        .unwrap_or_else(|e| panic!("an invitee may watch the roster: {e:?}"));
    assert_eq!(resp.status, 200);
    let _ = ad.bye().await;
}

#[tokio::test]
async fn pager_conversation_escalates_with_invite_command_keeping_both_and_the_history() {
    let server = server("").await;
    let alice = pager_device(&server, "alice").await;
    let bob = pager_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;

    // A one-to-one conversation.
    for (from, to, body) in [
        (&alice, "bob", "Hi Bob, pager one"),
        (&bob, "alice", "Hi Alice, pager two"),
    ] {
        let r = from
            .send_message(aor(to), "text/plain", body)
            .await
            .expect("MESSAGE");
        assert_eq!(r.status, 200, "{}", response_trace(&r));
    }
    wait_for(&bob, Method::Message, 1, "1:1", |r| {
        text(&r.body) == "Hi Bob, pager one"
    })
    .await;

    // alice types /invite carol to bob.
    let r = alice
        .send_message(aor("bob"), "text/plain", "/invite carol")
        .await
        .expect("/invite");
    assert_eq!(r.status, 200, "{}", response_trace(&r));

    // carol: invited, then the 1:1 history in order, from the conference URI.
    let inv = wait_for(&carol, Method::Message, 1, "invitation", |r| {
        text(&r.body).contains("invited you to a group chat")
    })
    .await;
    let conf = from_uri(&inv[0]);
    assert!(is_conference_uri(&conf), "{}", trace(&inv));
    let history = wait_for(&carol, Method::Message, 2, "history for carol", |r| {
        from_uri(r) == conf && text(&r.body).contains("pager ")
    })
    .await;
    let texts: Vec<String> = history.iter().map(|r| text(&r.body)).collect();
    assert_eq!(
        texts,
        vec![
            format!("{}: Hi Bob, pager one", name("alice")),
            format!("{}: Hi Alice, pager two", name("bob")),
        ],
        "{}",
        trace(&history)
    );

    // Both original parties are in: what alice sends to bob's AOR goes to
    // the conference, bob and carol get it from the conference URI.
    let r = alice
        .send_message(aor("bob"), "text/plain", "now the three of us")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for ua in [&bob, &carol] {
        let m = wait_for(ua, Method::Message, 1, "alice after escalation", |r| {
            text(&r.body).contains("now the three of us")
        })
        .await;
        assert_eq!(from_uri(&m[0]), conf, "{}", trace(&m));
        assert_eq!(
            text(&m[0].body),
            format!("{}: now the three of us", name("alice"))
        );
    }
    // bob to alice's AOR likewise; carol writes to the conference.
    let r = bob
        .send_message(aor("alice"), "text/plain", "bob in the group")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    let r = carol
        .send_message(conf.as_str(), "text/plain", "carol in the group")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for (ua, needle, who) in [
        (&alice, "bob in the group", "bob"),
        (&carol, "bob in the group", "bob"),
        (&alice, "carol in the group", "carol"),
        (&bob, "carol in the group", "carol"),
    ] {
        let m = wait_for(ua, Method::Message, 1, "group message", |r| {
            from_uri(r) == conf && text(&r.body).contains(needle)
        })
        .await;
        assert_eq!(text(&m[0].body), format!("{}: {needle}", name(who)));
    }
    tokio::time::sleep(QUIET).await;
    let leaked = messages_with(&bob, "/invite");
    assert!(
        leaked.is_empty(),
        "the /invite command must not reach bob:\n{}",
        trace(&leaked)
    );
    let direct: Vec<Request> = messages_with(&bob, "now the three of us")
        .into_iter()
        .filter(|r| from_uri(r) != conf)
        .collect();
    assert!(
        direct.is_empty(),
        "after escalation bob gets alice's messages once, from the conference:\n{}",
        trace(&direct)
    );
    assert_eq!(
        messages_with(&bob, "now the three of us").len(),
        1,
        "exactly once"
    );
}

/// alice and bob in an IM session through the proxy (record-routed).
async fn one_to_one_session(alice: &Ua, bob: &Ua) -> (Dialog, Dialog) {
    let sdp = alice.im_sdp();
    let invite = alice.invite(aor("bob"), &sdp);
    let answer = async {
        let inv = bob.expect_request(Method::Invite, WAIT).await?;
        inv.accept(&bob.im_sdp()).await
    };
    let (a, b) = tokio::join!(invite, answer);
    let a = a.expect("alice's session");
    let b = b.expect("bob's session");
    assert!(!a.route_set.is_empty(), "the proxy record-routes");
    (a, b)
}

#[tokio::test]
async fn session_conversation_escalates_with_in_dialog_refer_keeping_both_and_the_history() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = session_device(&server, "carol").await;
    let (mut ad, mut bd) = one_to_one_session(&alice, &bob).await;
    for (d, body) in [(&mut ad, "session one"), (&mut bd, "session two")] {
        let r = d
            .request(Method::Message, "text/plain", body.as_bytes())
            .await
            .expect("MESSAGE");
        assert_eq!(r.status, 200);
    }
    wait_for(&alice, Method::Message, 1, "1:1", |r| {
        text(&r.body) == "session two"
    })
    .await;

    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    assert!(
        got(&bob, &Method::Refer).is_empty(),
        "the escalation REFER is the server's, not relayed to bob"
    );

    // carol takes sessions: the focus INVITEs her, referred by alice.
    let (invite, cd) = answer_focus(&carol, &carol.im_sdp()).await;
    let conf = from_uri(&invite);
    assert!(
        is_conference_uri(&conf),
        "{}",
        trace(std::slice::from_ref(&invite))
    );
    assert!(
        invite
            .headers
            .get(&HeaderName::ReferredBy)
            .is_some_and(|v| v.contains(&aor("alice"))),
        "{}",
        trace(std::slice::from_ref(&invite))
    );
    let history = wait_for(&carol, Method::Message, 2, "history for carol", |r| {
        call_id(r) == cd.call_id && text(&r.body).contains("session ")
    })
    .await;
    let texts: Vec<String> = history.iter().map(|r| text(&r.body)).collect();
    assert_eq!(
        texts,
        vec![
            format!("{}: session one", name("alice")),
            format!("{}: session two", name("bob")),
        ]
    );

    // alice goes on in her 1:1 dialog: bridged into the conference.
    let r = ad
        .request(Method::Message, "text/plain", b"bridged from the session")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    let m = wait_for(&carol, Method::Message, 1, "bridged to carol", |r| {
        call_id(r) == cd.call_id && text(&r.body).contains("bridged from the session")
    })
    .await;
    assert_eq!(
        text(&m[0].body),
        format!("{}: bridged from the session", name("alice"))
    );
    let m = wait_for(&bob, Method::Message, 1, "bridged to bob", |r| {
        text(&r.body).contains("bridged from the session")
    })
    .await;
    assert!(
        text(&m[0].body).contains(&name("alice")),
        "bob sees who wrote:\n{}",
        trace(&m)
    );
    // bob answers in his 1:1 dialog: alice and carol get it.
    let r = bd
        .request(Method::Message, "text/plain", b"bob answers the group")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for ua in [&alice, &carol] {
        let m = wait_for(ua, Method::Message, 1, "bob to the group", |r| {
            text(&r.body).contains("bob answers the group")
        })
        .await;
        assert_eq!(
            text(&m[0].body),
            format!("{}: bob answers the group", name("bob")),
            "{}",
            trace(&m)
        );
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        messages_with(&bob, "bridged from the session").len(),
        1,
        "bob gets alice's message once:\n{}",
        trace(&messages_with(&bob, "bridged from the session"))
    );
}

/// RFC 3515 §2.4.4: a REFER that was accepted (202) is followed by NOTIFYs
/// reporting its outcome; the escalation REFER inside a 1:1 session too.
#[tokio::test]
async fn escalation_refer_in_a_session_reports_its_outcome_by_notify() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = session_device(&server, "carol").await;
    let (mut ad, _bd) = one_to_one_session(&alice, &bob).await;
    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    let (_invite, _cd) = answer_focus(&carol, &carol.im_sdp()).await;
    let notifies = refer_notifies(&alice, &ad.call_id, 1).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(200),
        "{}",
        trace(&notifies)
    );
}

#[tokio::test]
async fn escalation_refer_is_honoured_only_from_the_senders_registered_device() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = session_device(&server, "carol").await;
    let mallory = session_device(&server, "mallory").await;
    let (mut ad, _bd) = one_to_one_session(&alice, &bob).await;
    bob.auto_answer(Method::Refer, 603);

    // mallory forges a REFER in alice's dialog from her own connection.
    let mut req = ad.new_request(Method::Refer);
    req.headers
        .push(HeaderName::ReferTo, format!("<{}>", aor("carol")));
    req.headers.set(
        HeaderName::Via,
        mallory.via(&format!("z9hG4bK{:016x}", rand::random::<u64>())),
    );
    let r = mallory.request(req).await.expect("forged REFER");
    assert_ne!(r.status, 202, "{}", response_trace(&r));
    tokio::time::sleep(QUIET).await;
    assert!(
        got(&carol, &Method::Invite).is_empty() && got(&carol, &Method::Message).is_empty(),
        "no conference from a forged REFER; carol got:\n{}",
        trace(&carol.received_all())
    );
}

#[tokio::test]
async fn a_full_conference_refuses_joins_and_invitations() {
    let server = server("[conference]\nmax_participants = 2\nopen_to_organisation = true\n").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = session_device(&server, "carol").await;
    let dave = session_device(&server, "dave").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;

    // Open to the organisation: bob joins uninvited.
    let mut bd = bob
        .invite(conf.as_str(), &bob.im_sdp())
        .await
        .expect("bob joins an open conference");
    // Two is the limit.
    match carol.invite(conf.as_str(), &carol.im_sdp()).await {
        Err(UaError::Status(r)) => {
            assert_eq!(r.status, 486, "{}", response_trace(&r));
            assert!(
                r.reason.contains("Conference full"),
                "{}",
                response_trace(&r)
            );
        }
        other => panic!("a third INVITE must get 486: {other:?}"),
    }
    let r = carol
        .send_message(conf.as_str(), "text/plain", "let me in")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 486, "{}", response_trace(&r));
    let r = refer_in(&mut ad, &format!("<{}>", aor("dave"))).await;
    assert_eq!(r.status, 202);
    let notifies = refer_notifies(&alice, &ad.call_id, 1).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(486),
        "{}",
        trace(&notifies)
    );
    tokio::time::sleep(QUIET).await;
    assert!(got(&dave, &Method::Invite).is_empty());
    let _ = bd.bye().await;
    let _ = ad.bye().await;
}

#[tokio::test]
async fn uninvited_users_cannot_join_or_invite() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let carol = session_device(&server, "carol").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;

    match carol.invite(conf.as_str(), &carol.im_sdp()).await {
        Err(UaError::Status(r)) => {
            assert_eq!(r.status, 403, "{}", response_trace(&r));
            assert!(r.reason.contains("Not invited"), "{}", response_trace(&r));
        }
        other => panic!("an uninvited INVITE must get 403: {other:?}"),
    }
    let r = carol
        .send_message(conf.as_str(), "text/plain", "let me in")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 403, "{}", response_trace(&r));
    match refer_out(&carol, &conf, &format!("<{}>", aor("dave"))).await {
        Err(UaError::Status(r)) => assert_eq!(r.status, 403, "{}", response_trace(&r)),
        other => panic!("a REFER from a non-member must get 403: {other:?}"),
    }
    // Nothing of it reached alice as a message from carol.
    tokio::time::sleep(QUIET).await;
    assert!(messages_with(&alice, "let me in").is_empty());
    let _ = ad.bye().await;
}

#[tokio::test]
async fn refer_for_a_nonexistent_blocking_or_unreachable_user_ends_in_a_failure_notify() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    // dave blocks alice; frank exists but has no device.
    server.cli_ok(
        &[
            "contact",
            "add",
            &format!("dave@{DOMAIN}"),
            &format!("alice@{DOMAIN}"),
            "--level",
            "blocked",
        ],
        None,
    );
    let dave = session_device(&server, "dave").await;
    // The running server picks the block up in the background: wait until a
    // one-to-one message from alice to dave is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = alice
            .send_message(aor("dave"), "text/plain", "are you blocking me?")
            .await
            .expect("MESSAGE");
        if r.status == 403 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the block did not take effect: {}",
            response_trace(&r)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each in a conference of its own (the first REFER of a dialog), so that
    // the NOTIFYs are unambiguous: 100 Trying, then the failure.
    for (user, status) in [("nobody", 404), ("frank", 480), ("dave", 403)] {
        let (_, mut ad, _conf) = create(&alice, &alice.im_sdp()).await;
        let r = refer_in(&mut ad, &format!("<{}>", aor(user))).await;
        assert_eq!(r.status, 202, "{}", response_trace(&r));
        let notifies = refer_notifies(&alice, &ad.call_id, 1).await;
        let statuses: Vec<Option<u16>> = notifies.iter().map(sipfrag_status).collect();
        assert_eq!(
            statuses,
            vec![Some(100), Some(status)],
            "REFER for {user}:\n{}",
            trace(&notifies)
        );
        assert!(is_terminated(notifies.last().expect("final")));
        let _ = ad.bye().await;
    }
    tokio::time::sleep(QUIET).await;
    assert!(
        got(&dave, &Method::Invite).is_empty(),
        "dave blocked alice: no INVITE:\n{}",
        trace(&got(&dave, &Method::Invite))
    );
}

/// RFC 3515 §2.4.6: NOTIFYs for a second REFER in the same dialog carry
/// `Event: refer;id=<CSeq of that REFER>`.
#[tokio::test]
async fn notifies_of_a_second_refer_in_a_dialog_carry_its_id() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let (_, mut ad, _conf) = create(&alice, &alice.im_sdp()).await;
    let r = refer_in(&mut ad, &format!("<sip:nobody@{DOMAIN}>")).await;
    assert_eq!(r.status, 202);
    refer_notifies(&alice, &ad.call_id, 1).await;
    let r = refer_in(&mut ad, &format!("<sip:nobody-either@{DOMAIN}>")).await;
    assert_eq!(r.status, 202);
    let second_cseq = ad.local_cseq.to_string();
    let n = refer_notifies(&alice, &ad.call_id, 2).await;
    let later: Vec<&Request> = n.iter().skip(2).collect();
    assert!(
        !later.is_empty()
            && later.iter().all(|r| r
                .headers
                .event()
                .ok()
                .flatten()
                .and_then(|e| e.id().map(str::to_owned))
                .as_deref()
                == Some(second_cseq.as_str())),
        "NOTIFYs of the second REFER (CSeq {second_cseq}) need Event: refer;id={second_cseq}:\n{}",
        trace(&n)
    );
}

#[tokio::test]
async fn malformed_refer_to_gets_400() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    for bad in [
        "<sip:bob@",
        "not a uri at all",
        &format!("<sip:bob@{DOMAIN};method=BYE>"),
        "<mailto:bob@example.test>",
    ] {
        let r = refer_in(&mut ad, bad).await;
        assert_eq!(
            r.status,
            400,
            "in-dialog Refer-To: {bad}\n{}",
            response_trace(&r)
        );
        match refer_out(&alice, &conf, bad).await {
            Err(UaError::Status(r)) => assert_eq!(
                r.status,
                400,
                "out-of-dialog Refer-To: {bad}\n{}",
                response_trace(&r)
            ),
            other => panic!("Refer-To {bad} must get 400: {other:?}"),
        }
    }
    // Missing Refer-To.
    let req = ad.new_request(Method::Refer);
    let r = ad.send(req).await.expect("REFER").response;
    assert_eq!(r.status, 400, "{}", response_trace(&r));
    tokio::time::sleep(QUIET).await;
    let notifies: Vec<Request> = got(&alice, &Method::Notify);
    assert!(
        notifies.is_empty(),
        "a refused REFER has no NOTIFY:\n{}",
        trace(&notifies)
    );
}

#[tokio::test]
async fn requests_to_an_unknown_conference_get_404() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let unknown = format!("sip:conf-0123456789abcdef0123456789abcdef@{DOMAIN}");
    match alice.invite(unknown.as_str(), &alice.im_sdp()).await {
        Err(UaError::Status(r)) => assert_eq!(r.status, 404, "{}", response_trace(&r)),
        other => panic!("INVITE to an unknown conference: {other:?}"),
    }
    let r = alice
        .send_message(unknown.as_str(), "text/plain", "hello?")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 404, "{}", response_trace(&r));
    match refer_out(&alice, &unknown, &format!("<{}>", aor("bob"))).await {
        Err(UaError::Status(r)) => assert_eq!(r.status, 404, "{}", response_trace(&r)),
        other => panic!("REFER to an unknown conference: {other:?}"),
    }
}

#[tokio::test]
async fn the_conference_ends_when_its_last_member_leaves() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    let mut bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;

    assert_eq!(bd.bye().await.expect("BYE").status, 200);
    let left = format!("{} left the conversation", name("bob"));
    wait_for(&alice, Method::Message, 1, "leave notice", |r| {
        call_id(r) == ad.call_id && text(&r.body).contains(&left)
    })
    .await;
    // Still there while alice is in: bob (invited) may come back.
    let mut bd = bob
        .invite(conf.as_str(), &bob.im_sdp())
        .await
        .expect("bob rejoins");
    assert_eq!(bd.bye().await.expect("BYE").status, 200);
    assert_eq!(ad.bye().await.expect("BYE").status, 200);

    // Gone.
    match alice.invite(conf.as_str(), &alice.im_sdp()).await {
        Err(UaError::Status(r)) => assert_eq!(r.status, 404, "{}", response_trace(&r)),
        Ok(_) => panic!("the conference must have ended with its last member"),
        Err(e) => panic!("{e:?}"),
    }
    let r = bob
        .send_message(conf.as_str(), "text/plain", "anyone?")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 404, "{}", response_trace(&r));
}

/// bob has two session-capable devices; one only rings, the other answers.
/// The answer makes him a member at once, the ringing one is cancelled.
async fn first_answer_wins(answering_registered_first: bool) {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let first = session_device(&server, "bob").await;
    let second = session_device(&server, "bob").await;
    let (answering, ringing) = if answering_registered_first {
        (first, second)
    } else {
        (second, first)
    };
    let (_, mut ad, _conf) = create(&alice, &alice.im_sdp()).await;
    let r = refer_in(&mut ad, &format!("<{}>", aor("bob"))).await;
    assert_eq!(r.status, 202);
    let (a, b) = tokio::join!(
        answering.expect_request(Method::Invite, WAIT),
        ringing.expect_request(Method::Invite, WAIT)
    );
    let (a, b) = (
        a.expect("INVITE on one device"),
        b.expect("INVITE on the other"),
    );
    b.respond(180).await.expect("180");
    let mut bd = a.accept(&answering.im_sdp()).await.expect("answer");

    let cancel = ringing.expect_request(Method::Cancel, WAIT).await;
    let cancelled = cancel.is_ok();
    if let Ok(c) = cancel {
        c.respond(200).await.expect("200 to CANCEL");
        b.respond(487).await.expect("487");
    }
    let notifies = refer_notifies(&alice, &ad.call_id, 1).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(200),
        "{}",
        trace(&notifies)
    );
    assert!(
        cancelled,
        "the device that only rang must get a CANCEL once the other answered"
    );
    assert_eq!(
        ad.request(Method::Message, "text/plain", b"which device?")
            .await
            .expect("MESSAGE")
            .status,
        200
    );
    wait_for(
        &answering,
        Method::Message,
        1,
        "message to the answering device",
        |r| call_id(r) == bd.call_id && text(&r.body).contains("which device?"),
    )
    .await;
    tokio::time::sleep(QUIET).await;
    assert!(messages_with(&ringing, "which device?").is_empty());
    let _ = bd.bye().await;
}

#[tokio::test]
async fn an_invitee_with_two_session_devices_joins_on_the_first_answer_first_registered_answers() {
    first_answer_wins(true).await;
}

#[tokio::test]
async fn an_invitee_with_two_session_devices_joins_on_the_first_answer_second_registered_answers() {
    first_answer_wins(false).await;
}

#[tokio::test]
async fn a_cpim_from_written_by_the_sender_does_not_change_who_the_focus_names() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    let bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;
    let forged = Cpim {
        from: Some(switchboard_sip_bodies::cpim::Address::new(
            Some("Carol Danvers"),
            aor("carol"),
        )),
        to: vec![switchboard_sip_bodies::cpim::Address::new(
            None,
            conf.clone(),
        )],
        content_headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"this is carol, honest".to_vec(),
        ..Cpim::default()
    };
    let r = ad
        .request(Method::Message, "message/cpim", forged.to_bytes())
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    let m = wait_for(&bob, Method::Message, 1, "cpim from alice", |r| {
        call_id(r) == bd.call_id && text(&r.body).contains("this is carol, honest")
    })
    .await;
    assert_eq!(
        text(&m[0].body),
        format!("{}: this is carol, honest", name("alice")),
        "{}",
        trace(&m)
    );
}

#[tokio::test]
async fn a_pager_invite_command_from_a_client_that_is_not_a_registered_device_is_not_honoured() {
    let server = server("").await;
    let alice = pager_device(&server, "alice").await;
    // bob's device takes the one-to-one message.
    let _bob = pager_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    let r = alice
        .send_message(aor("bob"), "text/plain", "hello bob")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    // alice's credentials, from a client that never registered.
    let script = server.ua("alice", Transport::Tcp).await;
    let r = script
        .send_message(aor("bob"), "text/plain", "/invite carol")
        .await
        .expect("MESSAGE");
    tokio::time::sleep(QUIET).await;
    assert!(
        carol.received_all().is_empty(),
        "/invite from alice's unregistered client (answered {}) must not escalate; carol got:\n{}",
        r.status,
        trace(&carol.received_all())
    );
}

#[tokio::test]
async fn a_late_joiner_gets_only_the_configured_amount_of_history() {
    let server = server("[conference]\nhistory_messages = 2\n").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let (_, mut ad, _conf) = create(&alice, &alice.im_sdp()).await;
    for i in 0..4 {
        let r = ad
            .request(Method::Message, "text/plain", format!("earlier {i}"))
            .await
            .expect("MESSAGE");
        assert_eq!(r.status, 200);
    }
    let bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;
    wait_for(&bob, Method::Message, 2, "history", |r| {
        call_id(r) == bd.call_id && text(&r.body).contains("earlier ")
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let history: Vec<String> = messages_with(&bob, "earlier ")
        .iter()
        .map(|r| text(&r.body))
        .collect();
    assert_eq!(
        history,
        vec![
            format!("{}: earlier 2", name("alice")),
            format!("{}: earlier 3", name("alice")),
        ]
    );
}

/// Inviting someone who is already a member (a REFER naming her, `/invite`
/// from a pager member) succeeds and changes nothing: no second invitation,
/// no second replay of the history, no second copy of later messages, no
/// second "added" notice; the one who invited is told she is already in.
#[tokio::test]
async fn inviting_a_current_member_again_duplicates_nothing() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let carol = pager_device(&server, "carol").await;
    let dave = pager_device(&server, "dave").await;
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    for (n, user) in [(1, "carol"), (2, "dave")] {
        let r = refer_in(&mut ad, &format!("<{}>", aor(user))).await;
        assert_eq!(r.status, 202, "{}", response_trace(&r));
        let notifies = refer_notifies(&alice, &ad.call_id, n).await;
        assert_eq!(
            notifies.last().and_then(sipfrag_status),
            Some(200),
            "{user} is in:\n{}",
            trace(&notifies)
        );
    }
    for ua in [&carol, &dave] {
        wait_for(ua, Method::Message, 1, "invitation", |r| {
            from_uri(r) == conf && text(&r.body).contains("invited you to a group chat")
        })
        .await;
    }
    let r = ad
        .request(
            Method::Message,
            "text/plain",
            b"said before the re-invitations",
        )
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for ua in [&carol, &dave] {
        wait_for(ua, Method::Message, 1, "alice's message", |r| {
            text(&r.body).contains("said before the re-invitations")
        })
        .await;
    }

    // A REFER naming carol again: accepted, and its outcome is success.
    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    let notifies = refer_notifies(&alice, &ad.call_id, 3).await;
    assert_eq!(
        notifies.last().and_then(sipfrag_status),
        Some(200),
        "inviting a member succeeds:\n{}",
        trace(&notifies)
    );
    // dave (pager) types /invite carol: he is told she is already in.
    let r = dave
        .send_message(conf.as_str(), "text/plain", "/invite carol")
        .await
        .expect("/invite");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    let already = format!("{} is already in the conversation", name("carol"));
    wait_for(&dave, Method::Message, 1, "already in", |r| {
        from_uri(r) == conf && text(&r.body) == already
    })
    .await;

    let r = ad
        .request(
            Method::Message,
            "text/plain",
            b"said after the re-invitations",
        )
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    wait_for(&carol, Method::Message, 1, "alice's later message", |r| {
        text(&r.body).contains("said after the re-invitations")
    })
    .await;
    tokio::time::sleep(QUIET).await;
    for (needle, what) in [
        ("invited you to a group chat", "invitation"),
        ("said before the re-invitations", "replayed history"),
        ("said after the re-invitations", "later message"),
    ] {
        let m = messages_with(&carol, needle);
        assert_eq!(
            m.len(),
            1,
            "carol gets the {what} once; everything she received:\n{}",
            trace(&got(&carol, &Method::Message))
        );
    }
    let added = format!(
        "{} added {} to the conversation",
        name("alice"),
        name("carol")
    );
    assert_eq!(
        messages_with(&alice, &added).len(),
        1,
        "one \"added\" notice:\n{}",
        trace(&got(&alice, &Method::Message))
    );
    for (ua, n) in [(&alice, 1), (&dave, 1), (&carol, 0)] {
        assert_eq!(
            messages_with(ua, &already).len(),
            n,
            "only whoever invited her is told, once per invitation; {} received:\n{}",
            ua.aor(),
            trace(&got(ua, &Method::Message))
        );
    }
}

/// libfaketime, to move the server's wall clock forward while it runs.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A conference idle for longer than `conference.idle_timeout_minutes` ends
/// by itself: its session members get a BYE in their dialog with the focus
/// (so their client shows the chat as over instead of meeting a 481 at the
/// next message), and every member is told why by a notice first. The server
/// runs under libfaketime reading its clock offset from a file; the test
/// moves that clock 3 minutes ahead instead of waiting a real minute. With
/// archiving on, the archive shows every member leaving when it ended.
#[tokio::test]
async fn an_idle_conference_ends_with_a_bye_to_session_members_and_a_notice_to_all() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: apt-get install faketime"
    );
    let clock_dir = tempfile::tempdir().expect("tmp");
    let clock = clock_dir.path().join("faketime");
    std::fs::write(&clock, "+0\n").expect("clock file");
    let clock_path = clock.to_string_lossy().into_owned();
    let server = server_with_env(
        "[conference]\nidle_timeout_minutes = 1\n",
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock_path),
            // Re-read the file at most every second; timers (monotonic) untouched.
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )
    .await;
    server.cli_ok(&["archive", "config", "set", "--enabled", "on"], None);
    server.cli_ok(
        &["archive", "policy", "set", "--global", "--internal", "on"],
        None,
    );
    // The server picks changes made with the CLI up within 500 ms.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    for ua in [&alice, &bob] {
        ua.auto_answer(Method::Bye, 200);
    }
    let (_, mut ad, conf) = create(&alice, &alice.im_sdp()).await;
    let bd = bring_in(&mut ad, &bob, "bob", &bob.im_sdp()).await;
    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    refer_notifies(&alice, &ad.call_id, 2).await;
    let r = ad
        .request(Method::Message, "text/plain", b"anyone there?")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200);
    for ua in [&bob, &carol] {
        wait_for(ua, Method::Message, 1, "alice's message", |r| {
            text(&r.body).contains("anyone there?")
        })
        .await;
    }
    assert!(
        got(&alice, &Method::Bye).is_empty() && got(&bob, &Method::Bye).is_empty(),
        "not idle yet"
    );

    // Three minutes later (for the server): idle for longer than a minute.
    // The focus looks for idle conferences every 5 s and libfaketime
    // re-reads the clock file every second: the end comes within IDLE_END.
    std::fs::write(&clock, "+3m\n").expect("move the clock");
    const IDLE_END: Duration = Duration::from_secs(15);
    let ended = "This group chat ended after 1 minute without activity.";
    for (ua, call) in [(&alice, &ad.call_id), (&bob, &bd.call_id)] {
        let bye = wait_for_within(ua, Method::Bye, 1, "BYE from the focus", IDLE_END, |r| {
            call_id(r) == *call
        })
        .await;
        // In the dialog: above every request the focus sent in it before.
        let focus_cseqs: Vec<u32> = got(ua, &Method::Message)
            .iter()
            .chain(got(ua, &Method::Notify).iter())
            .filter(|r| call_id(r) == *call)
            .filter_map(|r| r.headers.cseq().ok().map(|c| c.seq))
            .collect();
        let bye_cseq = bye[0].headers.cseq().map(|c| c.seq).unwrap_or(0);
        assert!(
            focus_cseqs.iter().all(|c| *c < bye_cseq),
            "BYE CSeq {bye_cseq} above {focus_cseqs:?}:\n{}",
            trace(&bye)
        );
        let notice = messages_with(ua, ended);
        assert_eq!(
            notice.len(),
            1,
            "{} is told why before the BYE:\n{}",
            ua.aor(),
            trace(&got(ua, &Method::Message))
        );
        assert!(
            notice[0].headers.cseq().map(|c| c.seq).unwrap_or(0) < bye_cseq,
            "the notice comes before the BYE"
        );
    }
    // The pager member is told; she has no session to end.
    let notice = wait_for(&carol, Method::Message, 1, "end notice", |r| {
        from_uri(r) == conf && text(&r.body) == ended
    })
    .await;
    assert_eq!(notice.len(), 1, "{}", trace(&notice));
    assert!(got(&carol, &Method::Bye).is_empty());
    // The conference is gone.
    let r = carol
        .send_message(conf.as_str(), "text/plain", "hello?")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 404, "{}", response_trace(&r));
    // Its archive ends with every member leaving, and why.
    let expected: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| format!("{u}@{DOMAIN}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = server.cli_ok(&["archive", "search", "--json"], None);
        let records: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
        let mut idle_leaves: Vec<String> = records
            .iter()
            .filter(|r| r["kind"] == "leave" && r["outcome"] == "conference ended: idle")
            .filter_map(|r| r["sender"].as_str().map(str::to_owned))
            .collect();
        idle_leaves.sort();
        if idle_leaves == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leave records at the idle end: {idle_leaves:?}, expected {expected:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// RFC 6665 §4.1.2.2 (one NOTIFY in flight per subscription): the NOTIFYs
/// of an escalation REFER inside a one-to-one session are sent in CSeq
/// order, the final one only after the `100 Trying` one was answered. alice
/// holds the first NOTIFY unanswered while carol (pager-only, so the
/// invitation succeeds at once) is brought in.
#[tokio::test]
async fn escalation_refer_notifies_are_sent_one_at_a_time_in_cseq_order() {
    let server = server("").await;
    let alice = session_device(&server, "alice").await;
    let bob = session_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    let (mut ad, _bd) = one_to_one_session(&alice, &bob).await;
    alice.stop_auto_answer(&Method::Notify);
    let r = refer_in(&mut ad, &format!("<{}>", aor("carol"))).await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    let first = alice
        .expect_request(Method::Notify, WAIT)
        .await
        .expect("first NOTIFY of the REFER");
    assert!(
        is_refer_notify(&first.request, &ad.call_id)
            && sipfrag_status(&first.request) == Some(100)
            && !is_terminated(&first.request),
        "the first NOTIFY is 100 Trying:\n{}",
        trace(std::slice::from_ref(&first.request))
    );
    // The invitation is decided while the first NOTIFY is unanswered...
    wait_for(&carol, Method::Message, 1, "invitation", |r| {
        text(&r.body).contains("invited you to a group chat")
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let notifies: Vec<Request> = got(&alice, &Method::Notify)
        .into_iter()
        .filter(|r| is_refer_notify(r, &ad.call_id))
        .collect();
    assert_eq!(
        notifies.len(),
        1,
        "no second NOTIFY while the first is unanswered:\n{}",
        trace(&notifies)
    );
    // ...and the final status follows once it is answered.
    first.respond(200).await.expect("answer the first NOTIFY");
    let second = alice
        .expect_request(Method::Notify, WAIT)
        .await
        .expect("final NOTIFY of the REFER");
    let seq = |r: &Request| r.headers.cseq().map(|c| c.seq).unwrap_or(0);
    assert!(
        sipfrag_status(&second.request) == Some(200)
            && is_terminated(&second.request)
            && seq(&second.request) > seq(&first.request),
        "final NOTIFY after the first, above its CSeq:\n{}",
        trace(&[first.request.clone(), second.request.clone()])
    );
    second.respond(200).await.expect("answer the final NOTIFY");
}

/// One person can be a pager member of two conferences at once (two of her
/// one-to-one conversations escalated): each conference's messages reach
/// her from that conference, and leaving one leaves the other alone.
#[tokio::test]
async fn a_pager_member_of_two_conferences_gets_each_ones_messages_from_it() {
    let server = server("").await;
    let alice = pager_device(&server, "alice").await;
    let bob = pager_device(&server, "bob").await;
    let carol = pager_device(&server, "carol").await;
    let dave = pager_device(&server, "dave").await;
    let erin = pager_device(&server, "erin").await;
    let mut confs = Vec::new();
    for (peer, invitee) in [("bob", &carol), ("dave", &erin)] {
        let r = alice
            .send_message(
                aor(peer),
                "text/plain",
                &format!("/invite {}", invitee.aor()),
            )
            .await
            .expect("/invite");
        assert_eq!(r.status, 200, "{}", response_trace(&r));
        let inv = wait_for(invitee, Method::Message, 1, "invitation", |r| {
            text(&r.body).contains("invited you to a group chat")
        })
        .await;
        confs.push(from_uri(&inv[0]));
    }
    assert_ne!(confs[0], confs[1]);
    for (ua, peer, body, conf) in [
        (&bob, "alice", "bob's group speaking", &confs[0]),
        (&dave, "alice", "dave's group speaking", &confs[1]),
    ] {
        let r = ua
            .send_message(aor(peer), "text/plain", body)
            .await
            .expect("MESSAGE");
        assert_eq!(r.status, 200, "{}", response_trace(&r));
        let m = wait_for(&alice, Method::Message, 1, body, |r| {
            text(&r.body).contains(body)
        })
        .await;
        assert_eq!(&from_uri(&m[0]), conf, "{}", trace(&m));
    }
    // alice leaves the first; the second goes on for her.
    let r = alice
        .send_message(confs[0].as_str(), "text/plain", "/leave")
        .await
        .expect("/leave");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_for(&bob, Method::Message, 1, "leave notice", |r| {
        text(&r.body).contains(&format!("{} left the conversation", name("alice")))
    })
    .await;
    let r = dave
        .send_message(aor("alice"), "text/plain", "still here in dave's group")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    let m = wait_for(&alice, Method::Message, 1, "after leaving the other", |r| {
        text(&r.body).contains("still here in dave's group")
    })
    .await;
    assert_eq!(from_uri(&m[0]), confs[1], "{}", trace(&m));
}
