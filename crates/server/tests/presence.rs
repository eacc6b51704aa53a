//! Presence end to end against the real binary: PUBLISH and SUBSCRIBE/NOTIFY
//! (RFC 3903/3856/6665) with PIDF/RPID bodies, aggregation over a person's
//! devices, idle turning into Away, the five privacy access levels, privacy
//! mode with watcher info (RFC 3857), batch subscriptions to a contact list
//! (RFC 4662), the subscription lifecycle and the refusals.
//!
//! Every wait is bounded. A NOTIFY may overtake the 200 to its SUBSCRIBE: the
//! test user agent queues it either way. The 1,000-contact list over TCP is
//! received by a minimal raw client at the end of this file, because the test
//! user agent frames at most 64 KiB per message.

mod support;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::digest::{self, Algorithm, ResponseInput};
use switchboard_sip::framing::{Frame, StreamFramer};
use switchboard_sip::{AuthHeader, HeaderName, Limits, Message, Method, Request, Response, Uri};
use switchboard_sip_bodies::pidf::{self, Basic, InputState, Presence};
use switchboard_sip_bodies::rlmi::{self, InstanceState, RlmiNotify};
use switchboard_sip_bodies::winfo::{DocState, WatcherInfo, WatcherStatus};
use switchboard_testua::{AuthOptions, Dialog, Transport, Ua, UaError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(5);
/// How long we watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(2000);
/// Long enough for the server to pick up a command-line change (it polls the
/// database every 500 ms).
const CLI_SETTLE: Duration = Duration::from_millis(1500);

fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

fn addr(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// A message as it went over the wire, for failure messages.
fn trace(req: &Request) -> String {
    String::from_utf8_lossy(&req.to_bytes()).into_owned()
}

fn trace_resp(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.to_bytes()).into_owned()
}

// ---------------------------------------------------------------------------
// PIDF documents a client publishes.

/// A PIDF document for `user` with one tuple (`basic`) and, if `person` is
/// not empty, a `<dm:person>` with that content.
fn pidf_doc(user: &str, basic: &str, person: &str) -> String {
    let person = if person.is_empty() {
        String::new()
    } else {
        format!("<dm:person id=\"p1\">{person}</dm:person>")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" \
         xmlns:sb=\"urn:switchboard:params:xml:ns:pidf:availability\" \
         entity=\"{}\">\
         <tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple>\
         {person}</presence>",
        aor(user)
    )
}

/// Online with a Switchboard availability number (and optional extras).
fn with_number(user: &str, n: u32, extra: &str) -> String {
    pidf_doc(
        user,
        "open",
        &format!("{extra}<sb:availability>{n}</sb:availability>"),
    )
}

// ---------------------------------------------------------------------------
// What a watcher is shown.

/// The parts of a received PIDF document the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    entity: String,
    /// `open`/`closed` of every tuple.
    basic: Vec<String>,
    /// `<sb:availability>` of the person.
    number: Option<u32>,
    /// RPID activity tokens (`other:<text>` for `<rpid:other>`).
    activities: Vec<String>,
    /// Notes inside `<rpid:activities>` (meeting subject).
    activity_notes: Vec<String>,
    /// `until` of `<rpid:activities>`.
    until: Option<String>,
    /// `<dm:note>` of the person.
    notes: Vec<String>,
    /// `<rpid:user-input>idle</rpid:user-input>` anywhere.
    idle: bool,
}

impl View {
    fn parse(body: &[u8]) -> View {
        let doc = Presence::parse(body).unwrap_or_else(|e| {
            panic!(
                "watcher got an unparsable PIDF ({e}):\n{}",
                String::from_utf8_lossy(body)
            )
        });
        let person = doc.persons.first();
        let acts = person.and_then(|p| p.activities.as_ref());
        let idle_input =
            |u: Option<&pidf::UserInput>| u.is_some_and(|u| u.state == InputState::Idle);
        View {
            entity: doc.entity.clone(),
            basic: doc
                .tuples
                .iter()
                .map(|t| match t.basic {
                    Some(Basic::Open) => "open".to_owned(),
                    Some(Basic::Closed) => "closed".to_owned(),
                    None => "none".to_owned(),
                })
                .collect(),
            number: person.and_then(|p| p.availability).map(|a| a.0),
            activities: acts
                .map(|a| {
                    a.list
                        .iter()
                        .map(|x| match x {
                            pidf::Activity::Other(t) => format!("other:{t}"),
                            other => other.token().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            activity_notes: acts
                .map(|a| a.notes.iter().map(|n| n.text.clone()).collect())
                .unwrap_or_default(),
            until: acts.and_then(|a| a.until.clone()),
            notes: person
                .map(|p| p.notes.iter().map(|n| n.text.clone()).collect())
                .unwrap_or_default(),
            idle: idle_input(person.and_then(|p| p.user_input.as_ref()))
                || doc.tuples.iter().any(|t| idle_input(t.user_input.as_ref()))
                || doc
                    .devices
                    .iter()
                    .any(|d| idle_input(d.user_input.as_ref())),
        }
    }

    fn is_open(&self) -> bool {
        !self.basic.is_empty() && self.basic.iter().all(|b| b == "open")
    }

    fn is_closed(&self) -> bool {
        !self.basic.is_empty() && self.basic.iter().all(|b| b == "closed")
    }
}

/// The Subscription-State of a NOTIFY.
fn sub_state(req: &Request) -> switchboard_sip::SubscriptionState {
    req.headers
        .subscription_state()
        .unwrap_or_else(|e| panic!("bad Subscription-State ({e}):\n{}", trace(req)))
        .unwrap_or_else(|| panic!("NOTIFY without Subscription-State:\n{}", trace(req)))
}

fn content_type(req: &Request) -> Option<String> {
    req.headers
        .content_type()
        .ok()
        .flatten()
        .map(|c| c.essence())
}

/// The presence document of a NOTIFY, if it carries one.
fn view_of(req: &Request) -> Option<View> {
    (content_type(req).as_deref() == Some(pidf::CONTENT_TYPE) && !req.body.is_empty())
        .then(|| View::parse(&req.body))
}

/// The presence document of a NOTIFY that must carry one.
fn must_view(req: &Request) -> View {
    view_of(req).unwrap_or_else(|| panic!("NOTIFY without a PIDF body:\n{}", trace(req)))
}

// ---------------------------------------------------------------------------
// Test user agent helpers.

/// The next NOTIFY (answered 200).
async fn next_notify(ua: &Ua) -> Request {
    next_notify_within(ua, WAIT).await
}

async fn next_notify_within(ua: &Ua, within: Duration) -> Request {
    let n = ua
        .expect_request(Method::Notify, within)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ua.aor()));
    n.respond(200).await.expect("answer NOTIFY");
    n.request
}

/// Consumes NOTIFYs until one carries a document satisfying `pred`; panics
/// with every NOTIFY seen meanwhile after [`WAIT`].
async fn notify_until(ua: &Ua, what: &str, pred: impl Fn(&View) -> bool) -> (Request, View) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ua.expect_request(Method::Notify, left).await {
            Ok(n) => {
                n.respond(200).await.expect("answer NOTIFY");
                let req = n.request;
                if let Some(v) = view_of(&req)
                    && pred(&v)
                {
                    return (req, v);
                }
                seen.push(format!("{:?}\n{}", view_of(&req), trace(&req)));
            }
            Err(e) => panic!(
                "{} waiting for {what}: {e}; NOTIFYs received meanwhile ({}):\n{}",
                ua.aor(),
                seen.len(),
                seen.join("\n-----\n")
            ),
        }
    }
}

/// Asserts that no NOTIFY arrives within `within`.
async fn assert_no_notify(ua: &Ua, within: Duration, why: &str) {
    match ua.expect_request(Method::Notify, within).await {
        Ok(n) => {
            let _ = n.respond(200).await;
            panic!(
                "{why}: unexpected NOTIFY to {}:\n{}",
                ua.aor(),
                trace(&n.request)
            );
        }
        Err(UaError::Timeout(_)) => {}
        Err(e) => panic!("{why}: {e}"),
    }
}

/// Lets the server apply registrations just answered to presence. Presence
/// from registration is applied after the 200 to REGISTER (see
/// `initial_notify_reflects_a_registration_answered_before_the_subscribe`);
/// tests about other behaviour wait this long so as not to trip on it.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Subscribes to `user`'s presence; panics unless 2xx.
async fn subscribe(ua: &Ua, user: &str, expires: u32) -> (Response, Dialog) {
    ua.subscribe(aor(user), "presence", pidf::CONTENT_TYPE, expires)
        .await
        .unwrap_or_else(|e| panic!("{} SUBSCRIBE to {user}: {e:?}", ua.aor()))
}

/// Subscribes and returns the dialog with the initial NOTIFY.
async fn watch(ua: &Ua, user: &str) -> (Dialog, Request) {
    let (_, dialog) = subscribe(ua, user, 600).await;
    let first = next_notify(ua).await;
    (dialog, first)
}

/// A SUBSCRIBE the caller adjusts, sent as is; returns the final response.
fn subscribe_request(ua: &Ua, target: &str, event: &str, expires: u32) -> Request {
    let mut req = ua.new_request(Method::Subscribe, target).expect("request");
    req.headers.push(HeaderName::Event, event);
    req.headers.push(HeaderName::Accept, pidf::CONTENT_TYPE);
    req.headers.push(HeaderName::Expires, expires.to_string());
    req
}

/// Publishes presence for the agent's own AOR; returns the response.
async fn publish(ua: &Ua, etag: Option<&str>, body: Option<&str>, expires: u32) -> Response {
    let target = Uri::Sip(ua.aor());
    ua.publish(
        target,
        "presence",
        etag,
        body.map(|b| (pidf::CONTENT_TYPE, b.as_bytes())),
        expires,
    )
    .await
    .expect("PUBLISH transaction")
}

/// Publishes and asserts 200 with SIP-ETag and Expires; returns the etag.
async fn publish_ok(ua: &Ua, etag: Option<&str>, body: Option<&str>) -> String {
    let resp = publish(ua, etag, body, 600).await;
    assert_eq!(resp.status, 200, "PUBLISH refused:\n{}", trace_resp(&resp));
    assert!(
        resp.headers.get(&HeaderName::Expires).is_some(),
        "200 to PUBLISH without Expires:\n{}",
        trace_resp(&resp)
    );
    resp.headers
        .get(&HeaderName::SipETag)
        .unwrap_or_else(|| panic!("200 to PUBLISH without SIP-ETag:\n{}", trace_resp(&resp)))
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------------------
// SUBSCRIBE / NOTIFY / PUBLISH basics.

#[tokio::test]
async fn subscribe_is_authenticated_then_full_state_and_every_published_change_is_notified() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Tcp).await;
    settle().await;

    // Without credentials: 407.
    let req = subscribe_request(&bob, &aor("alice"), "presence", 600);
    let no_auth = AuthOptions {
        auto: false,
        ..AuthOptions::default()
    };
    let challenged = bob.send_request_with(req, &no_auth).await.expect("send");
    assert_eq!(
        challenged.response.status,
        407,
        "{}",
        trace_resp(&challenged.response)
    );
    assert!(
        challenged
            .response
            .headers
            .contains(&HeaderName::ProxyAuthenticate)
    );

    // With credentials: 200 with a To tag and Expires.
    let (resp, dialog) = subscribe(&bob, "alice", 600).await;
    assert_eq!(resp.status, 200);
    assert!(
        dialog.remote_tag().len() > 1,
        "200 without To tag: {}",
        trace_resp(&resp)
    );
    let granted: u32 = resp
        .headers
        .get(&HeaderName::Expires)
        .unwrap_or_else(|| panic!("200 to SUBSCRIBE without Expires:\n{}", trace_resp(&resp)))
        .trim()
        .parse()
        .expect("Expires number");
    assert!((1..=600).contains(&granted), "Expires {granted}");

    // The initial NOTIFY: full state, active, PIDF.
    let first = next_notify(&bob).await;
    assert!(
        dialog.matches(&first),
        "NOTIFY outside the dialog:\n{}",
        trace(&first)
    );
    assert_eq!(
        first.headers.get(&HeaderName::Event).map(str::trim),
        Some("presence")
    );
    let st = sub_state(&first);
    assert_eq!(st.state, "active", "{}", trace(&first));
    let left = st
        .expires()
        .unwrap_or_else(|| panic!("no expires in Subscription-State:\n{}", trace(&first)));
    assert!(
        left > 0 && left <= granted,
        "expires={left} granted={granted}"
    );
    assert_eq!(content_type(&first).as_deref(), Some(pidf::CONTENT_TYPE));
    let v = must_view(&first);
    assert_eq!(v.entity, aor("alice"));
    assert!(v.is_open(), "{v:?}");
    assert_eq!(v.number, Some(3500), "registered alice is Available: {v:?}");

    // RPID busy without a number: user-set Busy; the note goes along.
    let body = pidf_doc(
        "alice",
        "open",
        "<rpid:activities><rpid:busy/></rpid:activities><dm:note>Writing the report</dm:note>",
    );
    let etag = publish_ok(&alice, None, Some(&body)).await;
    let n = next_notify(&bob).await;
    let v = must_view(&n);
    assert_eq!(
        (v.number, v.activities.clone(), v.notes.clone()),
        (
            Some(6500),
            vec!["busy".to_owned()],
            vec!["Writing the report".to_owned()]
        ),
        "{}",
        trace(&n)
    );

    // Modify: on the phone (a machine state: In a call, Busy).
    let body = pidf_doc(
        "alice",
        "open",
        "<rpid:activities><rpid:on-the-phone/></rpid:activities>",
    );
    let etag = publish_ok(&alice, Some(&etag), Some(&body)).await;
    let n = next_notify(&bob).await;
    let v = must_view(&n);
    assert_eq!(v.number, Some(6500), "{}", trace(&n));
    assert!(
        v.activities.contains(&"on-the-phone".to_owned())
            && v.activities.contains(&"busy".to_owned()),
        "{}",
        trace(&n)
    );
    assert!(v.is_open());

    // Refresh without a body: accepted with a new etag.
    let mut etag = publish_ok(&alice, Some(&etag), None).await;

    // Do not disturb, Be right back, Off work with out-of-office.
    for (n_in, acts, extra) in [
        (9500u32, vec!["busy"], ""),
        (12500, vec!["away"], ""),
        (
            16500,
            vec!["away", "other:out-of-office"],
            "<rpid:activities><rpid:other>out-of-office</rpid:other></rpid:activities>",
        ),
        (15500, vec!["away"], ""),
    ] {
        let body = with_number("alice", n_in, extra);
        etag = publish_ok(&alice, Some(&etag), Some(&body)).await;
        let n = next_notify(&bob).await;
        let v = must_view(&n);
        assert_eq!(v.number, Some(n_in), "{}", trace(&n));
        assert_eq!(v.activities, acts, "{}", trace(&n));
        assert!(v.is_open(), "{}", trace(&n));
        assert!(
            v.notes.is_empty(),
            "note from an earlier publication kept: {}",
            trace(&n)
        );
    }

    // Basic closed: this (only) device is offline.
    let etag = publish_ok(&alice, Some(&etag), Some(&pidf_doc("alice", "closed", ""))).await;
    let n = next_notify(&bob).await;
    let v = must_view(&n);
    assert_eq!(v.number, Some(18500), "{}", trace(&n));
    assert!(v.is_closed(), "{}", trace(&n));

    // Remove the publication: back to presence from registration.
    let resp = publish(&alice, Some(&etag), None, 0).await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify(&bob).await;
    let v = must_view(&n);
    assert_eq!(v.number, Some(3500), "{}", trace(&n));
    assert!(v.is_open());
}

#[tokio::test]
async fn presence_follows_registration_for_clients_that_never_publish() {
    let server = Server::with_users(&["alice", "bob"]);
    let bob = server.registered("bob", Transport::Udp).await;
    let (_dialog, first) = watch(&bob, "alice").await;
    let v = must_view(&first);
    assert_eq!(v.number, Some(18500), "nobody signed in: {}", trace(&first));
    assert!(v.is_closed());

    let alice = server.registered("alice", Transport::Tcp).await;
    let (n, _) = notify_until(&bob, "alice Available after REGISTER", |v| {
        v.number == Some(3500)
    })
    .await;
    assert!(must_view(&n).is_open(), "{}", trace(&n));

    let resp = alice.unregister().await.expect("unregister");
    assert_eq!(resp.status, 200);
    let (n, _) = notify_until(&bob, "alice Offline after un-REGISTER", |v| {
        v.number == Some(18500)
    })
    .await;
    assert!(must_view(&n).is_closed(), "{}", trace(&n));
}

// ---------------------------------------------------------------------------
// Aggregation over devices.

#[tokio::test]
async fn aggregation_over_a_registered_only_device_and_a_publishing_device() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let bob = server.registered("bob", Transport::Udp).await;
    let carol = server.registered("carol", Transport::Udp).await;
    // The phone registers and never publishes.
    let phone = server.registered("alice", Transport::Udp).await;
    settle().await;
    let (_d, first) = watch(&bob, "alice").await;
    assert_eq!(must_view(&first).number, Some(3500), "{}", trace(&first));

    // The laptop signs in and reports a call (machine Busy): the most
    // available device (the phone) wins.
    let laptop = server.registered("alice", Transport::Tcp).await;
    let call = pidf_doc(
        "alice",
        "open",
        "<rpid:activities><rpid:on-the-phone/></rpid:activities>",
    );
    let etag = publish_ok(&laptop, None, Some(&call)).await;
    // Give the change time to propagate, then check what a new watcher sees
    // and what the existing one was last told.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut last = None;
    while let Ok(n) = bob
        .expect_request(Method::Notify, Duration::from_millis(300))
        .await
    {
        n.respond(200).await.expect("answer");
        last = Some(n.request);
    }
    if let Some(n) = &last {
        assert_eq!(
            must_view(n).number,
            Some(3500),
            "registered-only phone (Available) must beat the laptop in a call:\n{}",
            trace(n)
        );
    }
    let (_d, fresh) = watch(&carol, "alice").await;
    let v = must_view(&fresh);
    assert_eq!(
        v.number,
        Some(3500),
        "registered-only phone (Available) must beat the laptop in a call:\n{}",
        trace(&fresh)
    );
    assert!(v.is_open(), "{}", trace(&fresh));

    // The phone signs out: the laptop's call shows.
    assert_eq!(phone.unregister().await.expect("unregister").status, 200);
    let (n, v) = notify_until(&bob, "Busy (in a call) once the phone is gone", |v| {
        v.number == Some(6500)
    })
    .await;
    assert!(
        v.activities.contains(&"on-the-phone".to_owned()),
        "{}",
        trace(&n)
    );

    // The phone comes back: most available wins again.
    assert_eq!(phone.register(3600).await.expect("register").status, 200);
    notify_until(&bob, "Available once the phone is back", |v| {
        v.number == Some(3500)
    })
    .await;

    // A state the user set on the laptop beats the phone's machine state.
    let etag = publish_ok(&laptop, Some(&etag), Some(&with_number("alice", 9500, ""))).await;
    let n = next_notify(&bob).await;
    assert_eq!(
        must_view(&n).number,
        Some(9500),
        "user-set DND must beat the phone's Available:\n{}",
        trace(&n)
    );

    // The most recent user-set state wins: the phone now sets Be right back.
    let phone_etag = publish_ok(&phone, None, Some(&with_number("alice", 12500, ""))).await;
    let n = next_notify(&bob).await;
    assert_eq!(must_view(&n).number, Some(12500), "{}", trace(&n));
    // ...and the laptop sets Busy afterwards.
    publish_ok(&laptop, Some(&etag), Some(&with_number("alice", 6500, ""))).await;
    let n = next_notify(&bob).await;
    assert_eq!(must_view(&n).number, Some(6500), "{}", trace(&n));

    // The laptop signs out: the phone's own user-set state remains.
    assert_eq!(laptop.unregister().await.expect("unregister").status, 200);
    notify_until(
        &bob,
        "the phone's Be right back once the laptop is gone",
        |v| v.number == Some(12500),
    )
    .await;
    // The phone withdraws its publication: back to Available from registration.
    assert_eq!(
        publish(&phone, Some(&phone_etag), None, 0).await.status,
        200
    );
    notify_until(&bob, "Available from registration", |v| {
        v.number == Some(3500)
    })
    .await;

    // The last device goes: Offline.
    assert_eq!(phone.unregister().await.expect("unregister").status, 200);
    let (n, v) = notify_until(&bob, "Offline when no device is left", |v| {
        v.number == Some(18500)
    })
    .await;
    assert!(v.is_closed(), "{}", trace(&n));
}

#[tokio::test]
async fn a_closed_device_does_not_hide_another_device_that_is_online() {
    let server = Server::with_users(&["alice", "bob"]);
    let bob = server.registered("bob", Transport::Udp).await;
    let phone = server.registered("alice", Transport::Udp).await;
    let laptop = server.registered("alice", Transport::Tcp).await;
    publish_ok(&laptop, None, Some(&pidf_doc("alice", "closed", ""))).await;
    settle().await;
    let (_d, first) = watch(&bob, "alice").await;
    assert_eq!(
        must_view(&first).number,
        Some(3500),
        "the registered phone is online:\n{}",
        trace(&first)
    );
    assert_eq!(phone.unregister().await.expect("unregister").status, 200);
    notify_until(
        &bob,
        "Offline: the remaining device published closed",
        |v| v.number == Some(18500) && v.is_closed(),
    )
    .await;
}

#[tokio::test]
async fn idle_device_is_available_idle_then_away_after_the_configured_time() {
    let server =
        Server::with_users_and_config(&["alice", "bob"], "[presence]\naway_after_seconds = 2\n");
    let bob = server.registered("bob", Transport::Udp).await;
    let alice = server.registered("alice", Transport::Udp).await;
    settle().await;
    let (_d, first) = watch(&bob, "alice").await;
    assert_eq!(must_view(&first).number, Some(3500));

    let idle = pidf_doc("alice", "open", "<rpid:user-input>idle</rpid:user-input>");
    let started = Instant::now();
    let etag = publish_ok(&alice, None, Some(&idle)).await;
    let n = next_notify(&bob).await;
    let v = must_view(&n);
    assert_eq!(
        v.number,
        Some(5000),
        "idle shorter than away_after: Available (idle):\n{}",
        trace(&n)
    );
    assert!(v.idle, "user-input idle expected:\n{}", trace(&n));
    assert!(v.is_open());

    let (n, v) = notify_until(&bob, "Away after 2 s idle", |v| v.number == Some(15500)).await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "Away too early ({after:?})"
    );
    assert_eq!(v.activities, vec!["away".to_owned()], "{}", trace(&n));
    assert!(!v.idle, "Away carries no idle user-input:\n{}", trace(&n));

    // Activity again: Available.
    let etag = publish_ok(&alice, Some(&etag), Some(&pidf_doc("alice", "open", ""))).await;
    notify_until(&bob, "Available after input", |v| {
        v.number == Some(3500) && !v.idle
    })
    .await;

    // Last input long ago (RFC 4480 last-input): Away at once.
    let long_idle = pidf_doc(
        "alice",
        "open",
        "<rpid:user-input last-input=\"2020-01-01T08:00:00Z\">idle</rpid:user-input>",
    );
    let started = Instant::now();
    publish_ok(&alice, Some(&etag), Some(&long_idle)).await;
    let n = next_notify(&bob).await;
    assert_eq!(
        must_view(&n).number,
        Some(15500),
        "idle since 2020: Away without waiting:\n{}",
        trace(&n)
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

// ---------------------------------------------------------------------------
// Privacy.

#[tokio::test]
async fn each_access_level_sees_exactly_its_subset() {
    let users = ["alice", "carol", "dave", "erin", "frank", "mallory"];
    let server = Server::with_users(&users);
    for (watcher, level) in [
        ("carol", "external"),
        ("erin", "workgroup"),
        ("frank", "family"),
        ("mallory", "blocked"),
    ] {
        server.cli_ok(
            &[
                "contact",
                "add",
                &addr("alice"),
                &addr(watcher),
                "--level",
                level,
            ],
            None,
        );
    }
    // dave has no entry: the default for the organisation (Colleagues).
    tokio::time::sleep(CLI_SETTLE).await;

    let alice = server.registered("alice", Transport::Udp).await;
    let meeting = with_number(
        "alice",
        6500,
        "<rpid:activities until=\"2030-06-01T15:00:00Z\"><rpid:note>Q3 budget</rpid:note><rpid:meeting/></rpid:activities><dm:note>Budget review</dm:note>",
    );
    publish_ok(&alice, None, Some(&meeting)).await;

    let mut watchers = Vec::new();
    for w in ["carol", "dave", "erin", "frank", "mallory"] {
        let ua = server.registered(w, Transport::Udp).await;
        let (dialog, first) = watch(&ua, "alice").await;
        assert_eq!(sub_state(&first).state, "active", "{w}: {}", trace(&first));
        watchers.push((w, ua, dialog, first));
    }
    // Alice watching herself sees everything.
    let (own_dialog, own) = watch(&alice, "alice").await;
    let v = must_view(&own);
    assert_eq!(
        v.activity_notes,
        vec!["Q3 budget".to_owned()],
        "{}",
        trace(&own)
    );
    assert_eq!(
        v.until.as_deref(),
        Some("2030-06-01T15:00:00Z"),
        "{}",
        trace(&own)
    );
    let mut own_dialog = own_dialog;
    assert_eq!(
        own_dialog
            .refresh_subscription(0)
            .await
            .expect("unsubscribe")
            .status,
        200
    );
    next_notify(&alice).await;
    let s = |x: &[&str]| x.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for (w, _, _, n) in &watchers {
        let v = must_view(n);
        let body = String::from_utf8_lossy(&n.body).into_owned();
        match *w {
            "carol" => {
                // External: availability only.
                assert!(v.is_open(), "{w}: {body}");
                assert_eq!(v.number, Some(6500), "{w}: {body}");
                assert_eq!(v.activities, s(&["busy"]), "{w}: {body}");
                assert!(
                    v.notes.is_empty() && v.activity_notes.is_empty() && v.until.is_none(),
                    "{w}: {body}"
                );
                assert!(
                    !body.contains("Budget") && !body.contains("Q3") && !body.contains("2030"),
                    "{w} must see no note or meeting: {body}"
                );
            }
            "dave" | "frank" => {
                // Colleagues (default) and Family: availability, activity, note; no meeting details.
                assert!(v.is_open(), "{w}: {body}");
                assert_eq!(v.number, Some(6500), "{w}: {body}");
                assert_eq!(v.activities, s(&["busy", "meeting"]), "{w}: {body}");
                assert_eq!(v.notes, s(&["Budget review"]), "{w}: {body}");
                assert!(
                    v.activity_notes.is_empty() && v.until.is_none(),
                    "{w}: {body}"
                );
                assert!(
                    !body.contains("Q3") && !body.contains("2030"),
                    "{w} must not see meeting details: {body}"
                );
            }
            "erin" => {
                // Workgroup: everything.
                assert_eq!(v.number, Some(6500), "{w}: {body}");
                assert_eq!(v.activities, s(&["busy", "meeting"]), "{w}: {body}");
                assert_eq!(v.notes, s(&["Budget review"]), "{w}: {body}");
                assert_eq!(v.activity_notes, s(&["Q3 budget"]), "{w}: {body}");
                assert_eq!(
                    v.until.as_deref(),
                    Some("2030-06-01T15:00:00Z"),
                    "{w}: {body}"
                );
            }
            "mallory" => {
                // Blocked: Offline, nothing else.
                assert!(v.is_closed(), "{w}: {body}");
                assert_eq!(v.number, Some(18500), "{w}: {body}");
                assert!(
                    v.activities.is_empty()
                        && v.notes.is_empty()
                        && v.activity_notes.is_empty()
                        && v.until.is_none(),
                    "{w}: {body}"
                );
                assert!(!body.contains("Budget"), "{w}: {body}");
            }
            _ => unreachable!(),
        }
    }

    // A change reaches every level, filtered again; blocked mallory is either
    // not notified or shown Offline again.
    publish_ok(
        &alice,
        None,
        Some(&with_number("alice", 9500, "<dm:note>Heads down</dm:note>")),
    )
    .await;
    for (w, ua, _, _) in &watchers {
        if *w == "mallory" {
            while let Ok(n) = ua
                .expect_request(Method::Notify, Duration::from_millis(700))
                .await
            {
                n.respond(200).await.expect("answer");
                let v = must_view(&n.request);
                assert!(
                    v.number == Some(18500) && v.is_closed() && v.notes.is_empty(),
                    "blocked watcher saw: {}",
                    trace(&n.request)
                );
            }
            continue;
        }
        let (n, v) = notify_until(ua, &format!("{w} sees DND"), |v| v.number == Some(9500)).await;
        let want_note = if *w == "carol" {
            vec![]
        } else {
            s(&["Heads down"])
        };
        assert_eq!(v.notes, want_note, "{w}: {}", trace(&n));
    }

    // Access levels changed with the CLI apply to running subscriptions.
    server.cli_ok(
        &[
            "contact",
            "add",
            &addr("alice"),
            &addr("dave"),
            "--level",
            "blocked",
        ],
        None,
    );
    let dave = &watchers[1].1;
    let (n, v) = notify_until(dave, "dave blocked by CLI sees Offline", |v| {
        v.number == Some(18500)
    })
    .await;
    assert!(v.is_closed() && v.notes.is_empty(), "{}", trace(&n));
    server.cli_ok(
        &[
            "contact",
            "add",
            &addr("alice"),
            &addr("carol"),
            "--level",
            "workgroup",
        ],
        None,
    );
    let carol = &watchers[0].1;
    let (n, v) = notify_until(carol, "carol promoted to workgroup sees the note", |v| {
        !v.notes.is_empty()
    })
    .await;
    assert_eq!(
        (v.number, v.notes.clone()),
        (Some(9500), s(&["Heads down"])),
        "{}",
        trace(&n)
    );
    // Removing mallory's entry gives her the organisation's default (Colleagues).
    server.cli_ok(
        &["contact", "remove", &addr("alice"), &addr("mallory")],
        None,
    );
    let mallory = &watchers[4].1;
    let (n, v) = notify_until(mallory, "mallory unblocked sees Colleagues' view", |v| {
        v.number == Some(9500)
    })
    .await;
    assert!(v.is_open(), "{}", trace(&n));
    assert_eq!(v.notes, s(&["Heads down"]), "{}", trace(&n));
}

#[tokio::test]
async fn blocked_watcher_sees_offline_and_cannot_send_im() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    server.cli_ok(
        &[
            "contact",
            "add",
            &addr("alice"),
            &addr("bob"),
            "--level",
            "blocked",
        ],
        None,
    );
    tokio::time::sleep(CLI_SETTLE).await;
    let alice = server.registered("alice", Transport::Udp).await;
    alice.auto_answer(Method::Message, 200);
    publish_ok(
        &alice,
        None,
        Some(&with_number("alice", 3500, "<dm:note>In today</dm:note>")),
    )
    .await;
    let bob = server.registered("bob", Transport::Udp).await;
    let carol = server.registered("carol", Transport::Udp).await;

    let (_d, n) = watch(&bob, "alice").await;
    let v = must_view(&n);
    assert_eq!(sub_state(&n).state, "active", "{}", trace(&n));
    assert!(
        v.is_closed() && v.number == Some(18500) && v.notes.is_empty(),
        "blocked bob must see Offline:\n{}",
        trace(&n)
    );

    let sent = tokio::time::timeout(WAIT, bob.send_message(aor("alice"), "text/plain", "hello?"))
        .await
        .expect("MESSAGE answered in time")
        .expect("MESSAGE transaction");
    assert_eq!(
        sent.status,
        403,
        "blocked bob's IM must be refused:\n{}",
        trace_resp(&sent)
    );
    assert!(
        alice.received(&Method::Message).is_empty(),
        "alice must not receive bob's IM"
    );

    // Nor start an IM session.
    alice.auto_answer(Method::Invite, 486);
    let sdp = bob.im_sdp();
    let invited = tokio::time::timeout(WAIT, bob.invite(aor("alice"), &sdp))
        .await
        .expect("INVITE answered in time");
    match invited {
        Err(UaError::Status(r)) => {
            assert_eq!(r.status, 403, "blocked bob's INVITE:\n{}", trace_resp(&r))
        }
        Err(e) => panic!("INVITE: {e}"),
        Ok(_) => panic!("blocked bob's INVITE was accepted"),
    }
    assert!(
        alice.received(&Method::Invite).is_empty(),
        "alice must not be invited by bob"
    );

    // Control: an unblocked colleague sees her and reaches her.
    let (_d, n) = watch(&carol, "alice").await;
    assert_eq!(must_view(&n).number, Some(3500), "{}", trace(&n));
    let sent = tokio::time::timeout(WAIT, carol.send_message(aor("alice"), "text/plain", "hi"))
        .await
        .expect("MESSAGE answered in time")
        .expect("MESSAGE transaction");
    assert_eq!(sent.status, 200, "{}", trace_resp(&sent));
}

#[tokio::test]
async fn subscription_to_a_user_that_does_not_exist_looks_like_a_blocked_one() {
    let server = Server::with_users(&["alice", "bob"]);
    server.cli_ok(
        &[
            "contact",
            "add",
            &addr("alice"),
            &addr("bob"),
            "--level",
            "blocked",
        ],
        None,
    );
    tokio::time::sleep(CLI_SETTLE).await;
    let _alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;

    let (blocked_resp, _d1) = subscribe(&bob, "alice", 600).await;
    let blocked = next_notify(&bob).await;
    let (ghost_resp, _d2) = subscribe(&bob, "ghost", 600).await;
    let ghost = next_notify(&bob).await;

    assert_eq!(
        (blocked_resp.status, blocked_resp.reason.as_str()),
        (ghost_resp.status, ghost_resp.reason.as_str())
    );
    let names = |r: &Response| {
        r.headers
            .iter()
            .map(|h| h.name.as_str().to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names(&blocked_resp),
        names(&ghost_resp),
        "200s differ:\n{}\n{}",
        trace_resp(&blocked_resp),
        trace_resp(&ghost_resp)
    );
    assert_eq!(
        blocked_resp.headers.get(&HeaderName::Expires),
        ghost_resp.headers.get(&HeaderName::Expires)
    );

    assert_eq!(sub_state(&blocked).state, sub_state(&ghost).state);
    assert_eq!(content_type(&blocked), content_type(&ghost));
    let (vb, vg) = (must_view(&blocked), must_view(&ghost));
    assert!(
        vg.is_closed() && vg.number == Some(18500),
        "{}",
        trace(&ghost)
    );
    assert_eq!(
        View {
            entity: String::new(),
            ..vb
        },
        View {
            entity: String::new(),
            ..vg
        }
    );
    let b = String::from_utf8_lossy(&blocked.body).replace(&aor("alice"), "ENTITY");
    let g = String::from_utf8_lossy(&ghost.body).replace(&aor("ghost"), "ENTITY");
    assert_eq!(b, g, "documents differ beyond the entity");
}

#[tokio::test]
async fn privacy_mode_holds_watchers_pending_and_watcher_info_shows_them_until_allowed() {
    let server = Server::with_users(&["alice", "bob"]);
    server.cli_ok(&["privacy", "set", &addr("alice"), "--mode", "on"], None);
    tokio::time::sleep(CLI_SETTLE).await;
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;

    // Alice watches her watchers.
    let (resp, winfo_dialog) = alice
        .subscribe(
            aor("alice"),
            "presence.winfo",
            "application/watcherinfo+xml",
            600,
        )
        .await
        .expect("winfo SUBSCRIBE");
    assert_eq!(resp.status, 200);
    let w0 = next_notify(&alice).await;
    assert!(winfo_dialog.matches(&w0));
    assert_eq!(
        w0.headers.get(&HeaderName::Event).map(str::trim),
        Some("presence.winfo")
    );
    assert_eq!(
        content_type(&w0).as_deref(),
        Some("application/watcherinfo+xml"),
        "{}",
        trace(&w0)
    );
    let doc0 = WatcherInfo::parse(&w0.body).unwrap_or_else(|e| panic!("{e}: {}", trace(&w0)));
    assert_eq!(doc0.state, DocState::Full);
    assert!(
        doc0.lists.iter().all(|l| l.watchers.is_empty()),
        "no watcher yet: {}",
        trace(&w0)
    );

    // Bob is not her contact: pending, no body.
    let (_, _bob_dialog) = subscribe(&bob, "alice", 600).await;
    let n = next_notify(&bob).await;
    let st = sub_state(&n);
    assert_eq!(
        st.state,
        "pending",
        "privacy mode: a non-contact is held:\n{}",
        trace(&n)
    );
    assert!(
        n.body.is_empty(),
        "a pending NOTIFY carries no presence:\n{}",
        trace(&n)
    );

    // Watcher info lists bob as pending.
    let w1 = next_notify(&alice).await;
    let doc1 = WatcherInfo::parse(&w1.body).unwrap_or_else(|e| panic!("{e}: {}", trace(&w1)));
    assert_eq!(doc1.state, DocState::Full);
    assert!(
        doc1.version > doc0.version,
        "version must increase: {} then {}",
        doc0.version,
        doc1.version
    );
    let list = doc1
        .lists
        .iter()
        .find(|l| l.package == "presence")
        .unwrap_or_else(|| panic!("{}", trace(&w1)));
    assert_eq!(list.resource, aor("alice"));
    assert_eq!(list.watchers.len(), 1, "{}", trace(&w1));
    assert_eq!(list.watchers[0].uri, aor("bob"));
    assert_eq!(
        list.watchers[0].status,
        WatcherStatus::Pending,
        "{}",
        trace(&w1)
    );

    // A presence change does not leak to the pending watcher.
    publish_ok(
        &alice,
        None,
        Some(&with_number("alice", 6500, "<dm:note>secret</dm:note>")),
    )
    .await;
    while let Ok(n) = bob
        .expect_request(Method::Notify, Duration::from_millis(800))
        .await
    {
        n.respond(200).await.expect("answer");
        assert!(
            n.request.body.is_empty() && sub_state(&n.request).state == "pending",
            "pending watcher got:\n{}",
            trace(&n.request)
        );
    }

    // Alice adds bob: he becomes active and sees her presence.
    server.cli_ok(&["contact", "add", &addr("alice"), &addr("bob")], None);
    let n = next_notify(&bob).await;
    assert_eq!(sub_state(&n).state, "active", "{}", trace(&n));
    let v = must_view(&n);
    assert_eq!(
        (v.number, v.notes.clone()),
        (Some(6500), vec!["secret".to_owned()]),
        "{}",
        trace(&n)
    );

    let w2 = next_notify(&alice).await;
    let doc2 = WatcherInfo::parse(&w2.body).unwrap_or_else(|e| panic!("{e}: {}", trace(&w2)));
    assert!(
        doc2.version > doc1.version,
        "version must increase: {} then {}",
        doc1.version,
        doc2.version
    );
    let list = doc2
        .lists
        .iter()
        .find(|l| l.package == "presence")
        .expect("presence list");
    assert_eq!(list.watchers.len(), 1, "{}", trace(&w2));
    assert_eq!(list.watchers[0].uri, aor("bob"));
    assert_eq!(
        list.watchers[0].status,
        WatcherStatus::Active,
        "{}",
        trace(&w2)
    );
}

#[tokio::test]
async fn only_the_user_may_watch_their_watchers() {
    let server = Server::with_users(&["alice", "bob"]);
    let bob = server.registered("bob", Transport::Udp).await;
    let req = subscribe_request(&bob, &aor("alice"), "presence.winfo", 600);
    let resp = bob.request(req).await.expect("SUBSCRIBE");
    assert_eq!(resp.status, 403, "{}", trace_resp(&resp));
}

// ---------------------------------------------------------------------------
// Batch subscriptions to a contact list (RFC 4662).

fn list_uri(owner: &str) -> String {
    format!("sip:{owner}@{DOMAIN};list=contacts")
}

fn rls_body(req: &Request) -> RlmiNotify {
    let ct = req
        .headers
        .get(&HeaderName::ContentType)
        .unwrap_or_else(|| panic!("RLS NOTIFY without Content-Type:\n{}", head_of(req)));
    rlmi::parse_rlmi_notify(ct, &req.body)
        .unwrap_or_else(|e| panic!("bad RLMI NOTIFY ({e}):\n{}", head_of(req)))
}

/// The start line and headers of a (large) request, without its body.
fn head_of(req: &Request) -> String {
    let t = trace(req);
    match t.find("\r\n\r\n") {
        Some(i) => format!("{}\r\n\r\n[{} bytes of body]", &t[..i], req.body.len()),
        None => t,
    }
}

fn assert_rls_headers(req: &Request) {
    let ct = req
        .headers
        .content_type()
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{}", head_of(req)));
    assert!(ct.is("multipart", "related"), "{}", head_of(req));
    let ty = ct
        .params
        .value("type")
        .map(|t| t.trim_matches('"').to_owned());
    assert_eq!(ty.as_deref(), Some(rlmi::CONTENT_TYPE), "{}", head_of(req));
    assert!(
        req.headers
            .tokens(&HeaderName::Require)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("eventlist")),
        "RLS NOTIFY without Require: eventlist:\n{}",
        head_of(req)
    );
    assert_eq!(sub_state(req).state, "active", "{}", head_of(req));
}

/// The presence part of `uri` in an RLMI NOTIFY, if it is active.
fn member_view(n: &RlmiNotify, uri: &str) -> Option<View> {
    let r = n.rlmi.resources.iter().find(|r| r.uri == uri)?;
    let cid = r.instances.first()?.cid.as_ref()?;
    let part = n.part(cid)?;
    assert_eq!(
        part.content_type.split(';').next().map(str::trim),
        Some(pidf::CONTENT_TYPE)
    );
    Some(View::parse(&part.body))
}

#[tokio::test]
async fn contact_list_subscription_requires_eventlist_and_the_owner() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    let req = subscribe_request(&alice, &list_uri("alice"), "presence", 600);
    let resp = alice.request(req).await.expect("SUBSCRIBE");
    assert_eq!(resp.status, 421, "{}", trace_resp(&resp));
    assert!(
        resp.headers
            .tokens(&HeaderName::Require)
            .iter()
            .any(|t| t == "eventlist"),
        "{}",
        trace_resp(&resp)
    );

    let mut req = subscribe_request(&bob, &list_uri("alice"), "presence", 600);
    req.headers.push(HeaderName::Supported, "eventlist");
    let resp = bob.request(req).await.expect("SUBSCRIBE");
    assert_eq!(resp.status, 403, "only the owner: {}", trace_resp(&resp));

    let mut req = subscribe_request(&alice, &list_uri("alice"), "presence.winfo", 600);
    req.headers.push(HeaderName::Supported, "eventlist");
    let resp = alice.request(req).await.expect("SUBSCRIBE");
    assert_eq!(
        resp.status,
        489,
        "a list carries presence only: {}",
        trace_resp(&resp)
    );
}

#[tokio::test]
async fn contact_list_subscription_full_state_then_deltas_with_pending_members() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    // carol runs privacy mode and has not added alice: alice's view of her is pending.
    server.cli_ok(&["privacy", "set", &addr("carol"), "--mode", "on"], None);
    for c in ["bob", "carol", "dave", "nobody"] {
        server.cli_ok(
            &[
                "contact",
                "add",
                &addr("alice"),
                &addr(c),
                "--group",
                "Team",
            ],
            None,
        );
    }
    tokio::time::sleep(CLI_SETTLE).await;
    let bob = server.registered("bob", Transport::Udp).await;
    let alice = server.registered("alice", Transport::Udp).await;
    settle().await;

    let mut req = subscribe_request(&alice, &list_uri("alice"), "presence", 600);
    req.headers.set(
        HeaderName::Accept,
        "application/pidf+xml, application/rlmi+xml, multipart/related",
    );
    req.headers.push(HeaderName::Supported, "eventlist");
    let (resp, mut list_dialog) = alice.create_dialog(req).await.expect("list SUBSCRIBE");
    assert_eq!(resp.status, 200);
    assert!(
        resp.headers
            .tokens(&HeaderName::Require)
            .iter()
            .any(|t| t == "eventlist"),
        "{}",
        trace_resp(&resp)
    );

    let first = next_notify(&alice).await;
    assert_rls_headers(&first);
    let full = rls_body(&first);
    assert!(
        full.rlmi.full_state,
        "first NOTIFY must be full state:\n{}",
        trace(&first)
    );
    assert_eq!(full.rlmi.uri, list_uri("alice"));
    let uris: BTreeSet<String> = full.rlmi.resources.iter().map(|r| r.uri.clone()).collect();
    let want: BTreeSet<String> = ["bob", "carol", "dave", "nobody"]
        .iter()
        .map(|u| aor(u))
        .collect();
    assert_eq!(uris, want, "{}", trace(&first));
    let carol = full
        .rlmi
        .resources
        .iter()
        .find(|r| r.uri == aor("carol"))
        .expect("carol");
    assert_eq!(carol.instances.len(), 1);
    assert_eq!(
        carol.instances[0].state,
        InstanceState::Pending,
        "{}",
        trace(&first)
    );
    assert!(carol.instances[0].cid.is_none());
    for u in ["bob", "dave", "nobody"] {
        let r = full
            .rlmi
            .resources
            .iter()
            .find(|r| r.uri == aor(u))
            .expect("member");
        assert_eq!(
            r.instances[0].state,
            InstanceState::Active,
            "{u}: {}",
            trace(&first)
        );
    }
    assert_eq!(
        member_view(&full, &aor("bob")).map(|v| v.number),
        Some(Some(3500))
    );
    assert_eq!(
        member_view(&full, &aor("dave")).map(|v| v.number),
        Some(Some(18500))
    );
    let nobody = member_view(&full, &aor("nobody")).expect("non-user shown");
    assert!(
        nobody.is_closed() && nobody.number == Some(18500),
        "{nobody:?}"
    );

    // Bob changes: a partial NOTIFY with bob only.
    publish_ok(&bob, None, Some(&with_number("bob", 9500, ""))).await;
    let delta = next_notify(&alice).await;
    assert_rls_headers(&delta);
    let d = rls_body(&delta);
    assert!(!d.rlmi.full_state, "{}", trace(&delta));
    assert!(d.rlmi.version > full.rlmi.version, "version must increase");
    assert_eq!(
        d.rlmi
            .resources
            .iter()
            .map(|r| r.uri.as_str())
            .collect::<Vec<_>>(),
        vec![aor("bob").as_str()],
        "{}",
        trace(&delta)
    );
    assert_eq!(
        member_view(&d, &aor("bob")).map(|v| v.number),
        Some(Some(9500))
    );

    // carol adds alice as a contact: her instance turns active.
    server.cli_ok(&["contact", "add", &addr("carol"), &addr("alice")], None);
    let n = next_notify_within(&alice, WAIT).await;
    assert_rls_headers(&n);
    let b = rls_body(&n);
    let carol = b
        .rlmi
        .resources
        .iter()
        .find(|r| r.uri == aor("carol"))
        .unwrap_or_else(|| panic!("carol's change must be notified:\n{}", trace(&n)));
    assert_eq!(
        carol.instances[0].state,
        InstanceState::Active,
        "{}",
        trace(&n)
    );
    assert_eq!(
        member_view(&b, &aor("carol")).map(|v| v.number),
        Some(Some(18500))
    );
    assert!(b.rlmi.version > d.rlmi.version);

    // alice adds erin to her list: the list is notified again, erin in it.
    server.cli_ok(&["contact", "add", &addr("alice"), &addr("erin")], None);
    let n = next_notify_within(&alice, WAIT).await;
    assert_rls_headers(&n);
    let b2 = rls_body(&n);
    assert!(
        b2.rlmi.resources.iter().any(|r| r.uri == aor("erin")),
        "a new contact must appear in the list subscription:\n{}",
        trace(&n)
    );
    assert!(b2.rlmi.version > b.rlmi.version);

    // A refresh brings full state again.
    let mut refresh = list_dialog.new_request(Method::Subscribe);
    refresh.headers.push(HeaderName::Expires, "600");
    refresh.headers.push(HeaderName::Supported, "eventlist");
    let resp = list_dialog.send(refresh).await.expect("refresh").response;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify_within(&alice, WAIT).await;
    assert_rls_headers(&n);
    let b3 = rls_body(&n);
    assert!(
        b3.rlmi.full_state,
        "a refresh NOTIFY carries full state:\n{}",
        trace(&n)
    );
    assert_eq!(b3.rlmi.resources.len(), 5, "{}", trace(&n));
    assert!(b3.rlmi.version > b2.rlmi.version);
}

/// 1,000 contacts: bob and carol (users), the rest people who are not users
/// (of this and of another domain).
fn thousand_contacts() -> (String, Vec<String>) {
    let mut lines = vec![
        format!("{},Team,workgroup", addr("bob")),
        format!("{},Team", addr("carol")),
    ];
    for i in 0..990 {
        lines.push(format!("person{i:04}@{DOMAIN},Directory"));
    }
    for i in 0..8 {
        lines.push(format!("partner{i}@partner.example,Partners,external"));
    }
    let uris = lines
        .iter()
        .map(|l| format!("sip:{}", l.split(',').next().unwrap_or_default()))
        .collect();
    (lines.join("\n") + "\n", uris)
}

#[tokio::test]
async fn contact_list_of_1000_over_tcp_full_state_in_one_notify_then_a_one_contact_delta() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let (file, uris) = thousand_contacts();
    assert_eq!(uris.len(), 1000);
    let out = server.cli_ok(&["contact", "import", &addr("alice"), "-"], Some(&file));
    assert!(out.contains("1000"), "import: {out}");
    tokio::time::sleep(CLI_SETTLE).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;

    // The test user agent cannot frame messages over 64 KiB (Limits::default),
    // so the owner is a minimal raw TCP client here.
    let mut owner = RawTcp::connect(server.tcp, "alice").await;
    let (resp, mut queued) = owner.subscribe_list().await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    assert!(
        resp.headers
            .tokens(&HeaderName::Require)
            .iter()
            .any(|t| t == "eventlist"),
        "{}",
        trace_resp(&resp)
    );

    let started = Instant::now();
    let first = match queued.pop_front() {
        Some(n) => n,
        None => owner
            .next_notify(Duration::from_secs(20))
            .await
            .expect("full-state NOTIFY"),
    };
    let took = started.elapsed();
    assert_rls_headers(&first);
    let full = rls_body(&first);
    assert!(full.rlmi.full_state, "{}", head_of(&first));
    let got: BTreeSet<String> = full.rlmi.resources.iter().map(|r| r.uri.clone()).collect();
    let want: BTreeSet<String> = uris.iter().cloned().collect();
    assert_eq!(
        got.len(),
        1000,
        "one NOTIFY must list all 1,000 contacts over TCP ({} listed):\n{}",
        got.len(),
        head_of(&first)
    );
    assert_eq!(got, want);
    for r in &full.rlmi.resources {
        assert_eq!(r.instances.len(), 1, "{}", r.uri);
        assert_eq!(r.instances[0].state, InstanceState::Active, "{}", r.uri);
    }
    assert_eq!(full.parts.len(), 1000, "one PIDF part per contact");
    assert_eq!(
        member_view(&full, &aor("bob")).map(|v| v.number),
        Some(Some(3500))
    );
    assert_eq!(
        member_view(&full, &aor("carol")).map(|v| v.number),
        Some(Some(18500))
    );
    assert_eq!(
        member_view(&full, &format!("sip:person0500@{DOMAIN}")).map(|v| v.number),
        Some(Some(18500))
    );
    assert_eq!(
        member_view(&full, "sip:partner3@partner.example").map(|v| v.number),
        Some(Some(18500))
    );
    eprintln!(
        "1,000-contact full state: {} bytes in {took:?}",
        first.body.len()
    );

    // bob sets Do not disturb: a delta with bob only.
    publish_ok(
        &bob,
        None,
        Some(&with_number("bob", 9500, "<dm:note>Focus</dm:note>")),
    )
    .await;
    let delta = owner.next_notify(WAIT).await.expect("delta NOTIFY");
    assert_rls_headers(&delta);
    let d = rls_body(&delta);
    assert!(!d.rlmi.full_state, "{}", head_of(&delta));
    assert!(
        d.rlmi.version > full.rlmi.version,
        "version {} then {}",
        full.rlmi.version,
        d.rlmi.version
    );
    assert_eq!(
        d.rlmi.resources.len(),
        1,
        "delta must carry only the changed contact:\n{}",
        trace(&delta)
    );
    assert_eq!(d.rlmi.resources[0].uri, aor("bob"));
    assert_eq!(d.parts.len(), 1);
    let v = member_view(&d, &aor("bob")).expect("bob active");
    assert_eq!((v.number, v.notes), (Some(9500), vec!["Focus".to_owned()]));
    // Nothing else follows.
    assert!(
        owner
            .next_notify(Duration::from_millis(1000))
            .await
            .is_none(),
        "unexpected extra NOTIFY"
    );
}

#[tokio::test]
async fn contact_list_of_1000_over_udp_is_split_across_notifies() {
    let server = Server::with_users(&["alice", "bob"]);
    let (file, uris) = thousand_contacts();
    server.cli_ok(&["contact", "import", &addr("alice"), "-"], Some(&file));
    tokio::time::sleep(CLI_SETTLE).await;
    let alice = server.registered("alice", Transport::Udp).await;
    let mut req = subscribe_request(&alice, &list_uri("alice"), "presence", 600);
    req.headers.push(HeaderName::Supported, "eventlist");
    let (resp, _dialog) = alice.create_dialog(req).await.expect("list SUBSCRIBE");
    assert_eq!(resp.status, 200);

    let mut seen = BTreeSet::new();
    let mut versions = Vec::new();
    let mut count = 0;
    while seen.len() < 1000 {
        let n = next_notify_within(&alice, WAIT).await;
        assert_rls_headers(&n);
        assert!(
            n.to_bytes().len() < 65_000,
            "a NOTIFY over UDP must fit a datagram: {} bytes",
            n.to_bytes().len()
        );
        let b = rls_body(&n);
        assert_eq!(
            b.rlmi.full_state,
            count == 0,
            "only the first NOTIFY is full state:\n{}",
            head_of(&n)
        );
        for r in &b.rlmi.resources {
            assert!(seen.insert(r.uri.clone()), "{} listed twice", r.uri);
        }
        versions.push(b.rlmi.version);
        count += 1;
    }
    assert!(count > 1, "1,000 contacts cannot fit one datagram");
    assert!(
        versions.windows(2).all(|w| w[1] > w[0]),
        "versions {versions:?}"
    );
    assert_eq!(seen, uris.into_iter().collect::<BTreeSet<_>>());
}

// ---------------------------------------------------------------------------
// Subscription lifecycle.

#[tokio::test]
async fn refresh_renews_and_expires_zero_ends_with_a_final_notify() {
    let server = Server::with_users(&["alice", "bob"]);
    let _alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;

    // A fetch: Expires 0 gets the state once and a terminated subscription.
    let (resp, _fetch) = subscribe(&bob, "alice", 0).await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify(&bob).await;
    let st = sub_state(&n);
    assert_eq!(
        st.state,
        "terminated",
        "a fetch ends at once: {}",
        trace(&n)
    );
    assert_eq!(
        must_view(&n).number,
        Some(3500),
        "a fetch carries the state: {}",
        trace(&n)
    );

    // Longer than presence.max_expires (3600): shortened.
    let (resp, _long) = subscribe(&bob, "alice", 100_000).await;
    assert_eq!(
        resp.headers.get(&HeaderName::Expires).map(str::trim),
        Some("3600"),
        "{}",
        trace_resp(&resp)
    );
    let n = next_notify(&bob).await;
    assert!(
        sub_state(&n).expires().is_some_and(|e| e <= 3600),
        "{}",
        trace(&n)
    );

    let (_, mut dialog) = subscribe(&bob, "alice", 120).await;
    let first = next_notify(&bob).await;
    assert!(sub_state(&first).expires().is_some_and(|e| e <= 120));

    let resp = dialog.refresh_subscription(600).await.expect("refresh");
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify(&bob).await;
    let st = sub_state(&n);
    assert_eq!(st.state, "active");
    assert!(
        st.expires().is_some_and(|e| e > 120 && e <= 600),
        "refreshed expiry: {}",
        trace(&n)
    );
    assert_eq!(
        must_view(&n).number,
        Some(3500),
        "a refresh NOTIFY carries full state"
    );

    let resp = dialog.refresh_subscription(0).await.expect("unsubscribe");
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify(&bob).await;
    let st = sub_state(&n);
    assert_eq!(
        (st.state.as_str(), st.reason()),
        ("terminated", Some("timeout")),
        "{}",
        trace(&n)
    );
    assert_no_notify(&bob, QUIET, "after unsubscribing").await;
    let resp = dialog
        .refresh_subscription(600)
        .await
        .expect("refresh after end");
    assert_eq!(resp.status, 481, "{}", trace_resp(&resp));
}

#[tokio::test]
async fn subscription_that_is_not_refreshed_expires_with_a_final_notify() {
    let server = Server::with_users_and_config(&["alice", "bob"], "[presence]\nmin_expires = 1\n");
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;
    let (resp, _dialog) = subscribe(&bob, "alice", 2).await;
    assert_eq!(
        resp.headers.get(&HeaderName::Expires).map(str::trim),
        Some("2")
    );
    let first = next_notify(&bob).await;
    assert_eq!(sub_state(&first).state, "active");
    let n = next_notify(&bob).await;
    let st = sub_state(&n);
    assert_eq!(
        (st.state.as_str(), st.reason()),
        ("terminated", Some("timeout")),
        "{}",
        trace(&n)
    );
    publish_ok(&alice, None, Some(&with_number("alice", 6500, ""))).await;
    assert_no_notify(&bob, QUIET, "after expiry").await;
}

#[tokio::test]
async fn publication_that_is_not_refreshed_expires() {
    let server = Server::with_users_and_config(&["alice", "bob"], "[presence]\nmin_expires = 1\n");
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;
    let (_d, first) = watch(&bob, "alice").await;
    assert_eq!(must_view(&first).number, Some(3500));
    let resp = publish(&alice, None, Some(&with_number("alice", 9500, "")), 2).await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    assert_eq!(
        resp.headers.get(&HeaderName::Expires).map(str::trim),
        Some("2")
    );
    let etag = resp
        .headers
        .get(&HeaderName::SipETag)
        .expect("etag")
        .trim()
        .to_owned();
    let started = Instant::now();
    notify_until(&bob, "DND", |v| v.number == Some(9500)).await;
    notify_until(
        &bob,
        "back to Available from registration when the publication expires",
        |v| v.number == Some(3500),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "expired too early"
    );
    let resp = publish(&alice, Some(&etag), None, 60).await;
    assert_eq!(
        resp.status,
        412,
        "an expired publication cannot be refreshed: {}",
        trace_resp(&resp)
    );
}

#[tokio::test]
async fn notify_answered_481_ends_the_subscription() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;
    let (_, mut dialog) = subscribe(&bob, "alice", 600).await;
    next_notify(&bob).await;
    let etag = publish_ok(&alice, None, Some(&with_number("alice", 6500, ""))).await;
    let n = bob
        .expect_request(Method::Notify, WAIT)
        .await
        .expect("NOTIFY for Busy");
    n.respond(481).await.expect("answer 481");
    publish_ok(&alice, Some(&etag), Some(&with_number("alice", 9500, ""))).await;
    assert_no_notify(&bob, QUIET, "after answering 481").await;
    let resp = dialog.refresh_subscription(600).await.expect("refresh");
    assert_eq!(
        resp.status,
        481,
        "the subscription must be gone: {}",
        trace_resp(&resp)
    );
}

#[tokio::test]
async fn subscriptions_of_a_device_that_signs_out_are_removed() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    let bob_laptop = server.registered("bob", Transport::Tcp).await;
    settle().await;
    let (_, mut dialog) = subscribe(&bob, "alice", 600).await;
    next_notify(&bob).await;
    let (_, _laptop_dialog) = subscribe(&bob_laptop, "alice", 600).await;
    next_notify(&bob_laptop).await;
    assert_eq!(bob.unregister().await.expect("unregister").status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_ok(&alice, None, Some(&with_number("alice", 6500, ""))).await;
    // The laptop, still signed in, keeps its subscription.
    notify_until(&bob_laptop, "the laptop still watches", |v| {
        v.number == Some(6500)
    })
    .await;
    assert_no_notify(&bob, QUIET, "after bob's phone signed out").await;
    let resp = dialog.refresh_subscription(600).await.expect("refresh");
    assert_eq!(resp.status, 481, "{}", trace_resp(&resp));
}

// ---------------------------------------------------------------------------
// Refusals.

#[tokio::test]
async fn subscribe_refusals_489_423_503() {
    let server = Server::with_users_and_config(
        &["alice", "bob", "carol", "dave"],
        "[presence]\nmax_subscriptions_per_device = 2\n",
    );
    let bob = server.registered("bob", Transport::Udp).await;

    let resp = bob
        .request(subscribe_request(&bob, &aor("alice"), "dialog", 600))
        .await
        .expect("SUBSCRIBE");
    assert_eq!(resp.status, 489, "{}", trace_resp(&resp));
    let allow = resp.headers.tokens(&HeaderName::AllowEvents);
    assert!(
        allow.iter().any(|t| t == "presence"),
        "489 must list Allow-Events: {}",
        trace_resp(&resp)
    );

    let resp = bob
        .request(subscribe_request(&bob, &aor("alice"), "presence", 10))
        .await
        .expect("SUBSCRIBE");
    assert_eq!(resp.status, 423, "{}", trace_resp(&resp));
    assert_eq!(
        resp.headers.get(&HeaderName::MinExpires).map(str::trim),
        Some("60"),
        "{}",
        trace_resp(&resp)
    );

    subscribe(&bob, "alice", 600).await;
    subscribe(&bob, "carol", 600).await;
    let resp = bob
        .request(subscribe_request(&bob, &aor("dave"), "presence", 600))
        .await
        .expect("SUBSCRIBE");
    assert_eq!(
        resp.status,
        503,
        "third subscription from one device: {}",
        trace_resp(&resp)
    );
    assert!(
        resp.headers.get(&HeaderName::RetryAfter).is_some(),
        "503 without Retry-After: {}",
        trace_resp(&resp)
    );

    // Another device of the same user has its own allowance.
    let bob2 = server.registered("bob", Transport::Tcp).await;
    subscribe(&bob2, "dave", 600).await;
}

#[tokio::test]
async fn publish_refusals_489_403_415_400_412_and_one_publication_per_device() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;
    let doc = with_number("alice", 6500, "");

    // Wrong event package.
    let resp = alice
        .publish(
            Uri::Sip(alice.aor()),
            "dialog",
            None,
            Some((pidf::CONTENT_TYPE, doc.as_bytes())),
            600,
        )
        .await
        .expect("PUBLISH");
    assert_eq!(resp.status, 489, "{}", trace_resp(&resp));

    // Someone else's presence.
    let resp = alice
        .publish(
            aor("bob"),
            "presence",
            None,
            Some((pidf::CONTENT_TYPE, doc.as_bytes())),
            600,
        )
        .await
        .expect("PUBLISH");
    assert_eq!(resp.status, 403, "{}", trace_resp(&resp));

    // Not PIDF.
    let resp = alice
        .publish(
            Uri::Sip(alice.aor()),
            "presence",
            None,
            Some(("text/plain", b"busy".as_slice())),
            600,
        )
        .await
        .expect("PUBLISH");
    assert_eq!(resp.status, 415, "{}", trace_resp(&resp));

    // Malformed PIDF.
    let broken = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.test\"><tuple id=\"t\"><status><basic>open</basic></status>";
    let resp = publish(&alice, None, Some(broken), 600).await;
    assert_eq!(resp.status, 400, "{}", trace_resp(&resp));
    assert!(
        resp.reason.starts_with("Bad PIDF:"),
        "reason must name the defect: {:?}",
        resp.reason
    );

    // Too short, and a removal without an entity tag.
    let resp = publish(&alice, None, Some(&doc), 10).await;
    assert_eq!(resp.status, 423, "{}", trace_resp(&resp));
    assert_eq!(
        resp.headers.get(&HeaderName::MinExpires).map(str::trim),
        Some("60")
    );
    let resp = publish(&alice, None, None, 0).await;
    assert_eq!(resp.status, 400, "{}", trace_resp(&resp));

    // Unknown entity tag.
    let resp = publish(&alice, Some("no-such-etag"), None, 600).await;
    assert_eq!(resp.status, 412, "{}", trace_resp(&resp));
    let resp = publish(&alice, Some("no-such-etag"), Some(&doc), 600).await;
    assert_eq!(resp.status, 412, "{}", trace_resp(&resp));

    // One publication per device: a new initial PUBLISH replaces the old one.
    let (_d, first) = watch(&bob, "alice").await;
    assert_eq!(must_view(&first).number, Some(3500));
    let old = publish_ok(&alice, None, Some(&doc)).await;
    notify_until(&bob, "Busy", |v| v.number == Some(6500)).await;
    let new = publish_ok(&alice, None, Some(&pidf_doc("alice", "open", ""))).await;
    assert_ne!(old, new);
    let (n, _) = notify_until(
        &bob,
        "Available: the device's new publication replaced its user-set Busy",
        |v| v.number != Some(6500),
    )
    .await;
    assert_eq!(must_view(&n).number, Some(3500), "{}", trace(&n));
    let resp = publish(&alice, Some(&old), None, 600).await;
    assert_eq!(
        resp.status,
        412,
        "the replaced publication's etag must be gone: {}",
        trace_resp(&resp)
    );
    let resp = publish(&alice, Some(&new), None, 600).await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
}

// ---------------------------------------------------------------------------
// Watcher info, privacy mode, timing.

#[tokio::test]
async fn watcher_info_subscription_leaves_the_server_responsive() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    let (resp, _winfo) = alice
        .subscribe(
            aor("alice"),
            "presence.winfo",
            "application/watcherinfo+xml",
            600,
        )
        .await
        .expect("winfo SUBSCRIBE");
    assert_eq!(resp.status, 200);
    let winfo = match alice.expect_request(Method::Notify, WAIT).await {
        Ok(n) => {
            n.respond(200).await.expect("answer NOTIFY");
            Ok(n.request)
        }
        Err(e) => Err(e),
    };
    if let Ok(n) = &winfo {
        assert_eq!(
            content_type(n).as_deref(),
            Some("application/watcherinfo+xml")
        );
    }
    // Other work must still be served: a presence SUBSCRIBE, a REGISTER.
    let other = tokio::time::timeout(
        WAIT,
        bob.subscribe(aor("carol"), "presence", pidf::CONTENT_TYPE, 600),
    )
    .await;
    let register = tokio::time::timeout(WAIT, server.registered("carol", Transport::Tcp)).await;
    assert!(
        winfo.is_ok() && matches!(other, Ok(Ok(_))) && register.is_ok(),
        "after a presence.winfo SUBSCRIBE: initial winfo NOTIFY {:?}; bob's presence SUBSCRIBE {:?}; carol's REGISTER answered: {}",
        winfo
            .as_ref()
            .map(|_| "received")
            .map_err(|e| e.to_string()),
        other
            .as_ref()
            .map(|r| r
                .as_ref()
                .map(|(resp, _)| resp.status)
                .map_err(|e| e.to_string()))
            .map_err(|_| "no answer within 5 s"),
        register.is_ok()
    );
}

#[tokio::test]
async fn privacy_mode_holds_non_contacts_pending_until_added() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    server.cli_ok(&["privacy", "set", &addr("alice"), "--mode", "on"], None);
    server.cli_ok(&["contact", "add", &addr("alice"), &addr("carol")], None);
    tokio::time::sleep(CLI_SETTLE).await;
    let alice = server.registered("alice", Transport::Udp).await;
    publish_ok(
        &alice,
        None,
        Some(&with_number("alice", 6500, "<dm:note>secret</dm:note>")),
    )
    .await;
    let bob = server.registered("bob", Transport::Udp).await;
    let carol = server.registered("carol", Transport::Udp).await;

    // A contact sees her at once.
    let (_d, n) = watch(&carol, "alice").await;
    assert_eq!(sub_state(&n).state, "active", "{}", trace(&n));
    assert_eq!(must_view(&n).number, Some(6500), "{}", trace(&n));

    // A non-contact is held pending, without presence.
    let (resp, _bob_dialog) = subscribe(&bob, "alice", 600).await;
    assert_eq!(resp.status, 200, "{}", trace_resp(&resp));
    let n = next_notify(&bob).await;
    assert_eq!(
        sub_state(&n).state,
        "pending",
        "privacy mode: a non-contact is held:\n{}",
        trace(&n)
    );
    assert!(
        n.body.is_empty(),
        "a pending NOTIFY carries no presence:\n{}",
        trace(&n)
    );

    // Changes do not leak to him while pending.
    publish_ok(
        &alice,
        None,
        Some(&with_number(
            "alice",
            9500,
            "<dm:note>still secret</dm:note>",
        )),
    )
    .await;
    notify_until(&carol, "carol sees DND", |v| v.number == Some(9500)).await;
    while let Ok(n) = bob
        .expect_request(Method::Notify, Duration::from_millis(800))
        .await
    {
        n.respond(200).await.expect("answer");
        assert!(
            n.request.body.is_empty() && sub_state(&n.request).state == "pending",
            "pending watcher got:\n{}",
            trace(&n.request)
        );
    }

    // Alice adds him: active, with her presence.
    server.cli_ok(&["contact", "add", &addr("alice"), &addr("bob")], None);
    let n = next_notify(&bob).await;
    assert_eq!(sub_state(&n).state, "active", "{}", trace(&n));
    let v = must_view(&n);
    assert_eq!(
        (v.number, v.notes.clone()),
        (Some(9500), vec!["still secret".to_owned()]),
        "{}",
        trace(&n)
    );
}

#[tokio::test]
async fn initial_notify_reflects_a_registration_answered_before_the_subscribe() {
    let users: Vec<String> = (0..30).map(|i| format!("user{i:02}")).collect();
    let mut all: Vec<&str> = users.iter().map(String::as_str).collect();
    all.push("bob");
    let server = Server::with_users(&all);
    let bob = server.registered("bob", Transport::Udp).await;
    let runs = users.iter().map(|u| {
        let (server, bob) = (&server, &bob);
        async move {
            let ua = server.registered(u, Transport::Udp).await;
            // The REGISTER has been answered 200: the device is signed in.
            let (_, dialog) = subscribe(bob, u, 600).await;
            (ua, dialog)
        }
    });
    let _keep = futures_join_all(runs).await;
    // The first NOTIFY of each dialog (CSeq 1) is the initial state.
    let mut stale = Vec::new();
    let mut initial = 0;
    let mut corrected = 0;
    while initial < users.len() || corrected < stale.len() {
        let n = next_notify(&bob).await;
        let v = must_view(&n);
        let first = n.headers.cseq().map(|c| c.seq == 1).unwrap_or(false);
        if first {
            initial += 1;
            if v.number != Some(3500) {
                stale.push(trace(&n));
            }
        } else if v.number == Some(3500) {
            corrected += 1;
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {} initial NOTIFYs showed a user whose REGISTER had been answered 200 as Offline \
         (each corrected by a later NOTIFY); first one:\n{}",
        stale.len(),
        users.len(),
        stale.first().map(String::as_str).unwrap_or_default()
    );
}

/// Runs futures concurrently (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut futs: Vec<Option<std::pin::Pin<Box<F>>>> = futs.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn blocked_watcher_learns_nothing_from_the_timing_of_notifies() {
    let server = Server::with_users(&["alice", "bob"]);
    server.cli_ok(
        &[
            "contact",
            "add",
            &addr("alice"),
            &addr("bob"),
            "--level",
            "blocked",
        ],
        None,
    );
    tokio::time::sleep(CLI_SETTLE).await;
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    settle().await;
    let (_d1, blocked) = watch(&bob, "alice").await;
    let (_d2, ghost) = watch(&bob, "ghost").await;
    assert_eq!(must_view(&blocked).number, Some(18500));
    assert_eq!(must_view(&ghost).number, Some(18500));
    // Alice's presence changes; what bob may see of it (Offline) does not.
    let etag = publish_ok(&alice, None, Some(&with_number("alice", 6500, ""))).await;
    let etag = publish_ok(
        &alice,
        Some(&etag),
        Some(&with_number("alice", 9500, "<dm:note>x</dm:note>")),
    )
    .await;
    publish_ok(&alice, Some(&etag), Some(&with_number("alice", 15500, ""))).await;
    // A non-existent user never changes, so a blocking one must not either.
    assert_no_notify(
        &bob,
        QUIET,
        "a blocked watcher must not be told that something changed",
    )
    .await;
}

// ---------------------------------------------------------------------------
// A minimal SIP-over-TCP client for messages larger than the test user agent
// frames (its Limits::default caps a message at 64 KiB).

static SEQ: AtomicU64 = AtomicU64::new(1);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}x{nanos:x}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

struct RawTcp {
    stream: tokio::net::TcpStream,
    framer: StreamFramer,
    local: SocketAddr,
    user: String,
    queued: VecDeque<Request>,
}

impl RawTcp {
    async fn connect(server: SocketAddr, user: &str) -> RawTcp {
        let stream = tokio::net::TcpStream::connect(server)
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let local = stream.local_addr().expect("local addr");
        RawTcp {
            stream,
            framer: StreamFramer::new(Limits {
                max_message_bytes: 32 << 20,
                max_headers: 256,
            }),
            local,
            user: user.to_owned(),
            queued: VecDeque::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next message, or None at `deadline`.
    async fn read_message(&mut self, deadline: tokio::time::Instant) -> Option<Message> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if let Some(frame) = self.framer.next_frame() {
                match frame {
                    Ok(Frame::Message(m)) => return Some(m),
                    Ok(_) => continue,
                    Err(e) => panic!("framing lost: {e}"),
                }
            }
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(r) => r.expect("read"),
            };
            assert!(n > 0, "server closed the connection");
            self.framer.push(&buf[..n]);
        }
    }

    /// Answers a server request 200 and queues it.
    async fn take_request(&mut self, req: Request) {
        let resp = Response::to_request(&req, 200);
        self.send(&resp.to_bytes()).await;
        if req.method == Method::Notify {
            self.queued.push_back(req);
        }
    }

    /// Sends `req` and returns its final response; requests that arrive
    /// meanwhile are answered and queued.
    async fn transact(&mut self, req: &Request) -> Response {
        self.send(&req.to_bytes()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let cseq = req.headers.cseq().expect("cseq");
        loop {
            match self.read_message(deadline).await {
                None => panic!("no response to {}", req.method),
                Some(Message::Request(r)) => self.take_request(r).await,
                Some(Message::Response(r))
                    if r.status >= 200 && r.headers.cseq().ok() == Some(cseq.clone()) =>
                {
                    return r;
                }
                Some(Message::Response(_)) => {}
            }
        }
    }

    fn list_subscribe(&self, call_id: &str, from_tag: &str, seq: u32) -> Request {
        let uri = Uri::parse(&list_uri(&self.user)).expect("uri");
        let mut req = Request::new(Method::Subscribe, uri);
        let h = &mut req.headers;
        h.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/TCP {};rport;branch=z9hG4bK{}",
                self.local,
                unique("b")
            ),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<{}>;tag={from_tag}", aor(&self.user)),
        );
        h.push(HeaderName::To, format!("<{}>", list_uri(&self.user)));
        h.push(HeaderName::CallId, call_id.to_owned());
        h.push(HeaderName::CSeq, format!("{seq} SUBSCRIBE"));
        h.push(
            HeaderName::Contact,
            format!("<sip:{}@{};transport=tcp>", self.user, self.local),
        );
        h.push(HeaderName::Event, "presence");
        h.push(HeaderName::Supported, "eventlist");
        h.push(
            HeaderName::Accept,
            "application/pidf+xml, application/rlmi+xml, multipart/related",
        );
        h.push(HeaderName::Expires, "600");
        req
    }

    /// SUBSCRIBE to the user's own contact list, answering the digest
    /// challenge; returns the final response and NOTIFYs that came first.
    async fn subscribe_list(&mut self) -> (Response, VecDeque<Request>) {
        let call_id = unique("c");
        let tag = unique("f");
        let req = self.list_subscribe(&call_id, &tag, 1);
        let challenge = self.transact(&req).await;
        assert_eq!(challenge.status, 407, "{}", trace_resp(&challenge));
        let ch = challenge
            .headers
            .proxy_authenticate()
            .expect("Proxy-Authenticate")
            .into_iter()
            .find(|c| {
                c.is_digest() && Algorithm::parse(c.param("algorithm")) == Some(Algorithm::Md5)
            })
            .expect("an MD5 challenge");
        let realm = ch.param("realm").unwrap_or_default().to_owned();
        let nonce = ch.param("nonce").unwrap_or_default().to_owned();
        let uri = list_uri(&self.user);
        let cnonce = "0a4f113b";
        let nc = "00000001";
        let response = digest::client_response(
            &ResponseInput {
                algorithm: Algorithm::Md5,
                nonce: &nonce,
                nc,
                cnonce,
                method: "SUBSCRIBE",
                uri: &uri,
            },
            &self.user,
            &realm,
            PASSWORD,
        );
        let mut params = vec![
            ("username".to_owned(), self.user.clone()),
            ("realm".to_owned(), realm),
            ("nonce".to_owned(), nonce),
            ("uri".to_owned(), uri),
            ("response".to_owned(), response),
            ("algorithm".to_owned(), "MD5".to_owned()),
            ("cnonce".to_owned(), cnonce.to_owned()),
        ];
        if let Some(opaque) = ch.param("opaque") {
            params.push(("opaque".to_owned(), opaque.to_owned()));
        }
        params.push(("qop".to_owned(), "auth".to_owned()));
        params.push(("nc".to_owned(), nc.to_owned()));
        let cred = AuthHeader {
            scheme: "Digest".to_owned(),
            params,
        };
        let mut req = self.list_subscribe(&call_id, &tag, 2);
        req.headers
            .push(HeaderName::ProxyAuthorization, cred.to_string());
        let resp = self.transact(&req).await;
        (resp, std::mem::take(&mut self.queued))
    }

    /// The next NOTIFY (answered 200), or None after `within`.
    async fn next_notify(&mut self, within: Duration) -> Option<Request> {
        if let Some(q) = self.queued.pop_front() {
            return Some(q);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.read_message(deadline).await? {
                Message::Request(r) if r.method == Method::Notify => {
                    let resp = Response::to_request(&r, 200);
                    self.send(&resp.to_bytes()).await;
                    return Some(r);
                }
                Message::Request(r) => {
                    let resp = Response::to_request(&r, 200).with_to_tag(&unique("t"));
                    self.send(&resp.to_bytes()).await;
                }
                Message::Response(_) => {}
            }
        }
    }
}
