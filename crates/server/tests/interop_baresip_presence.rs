//! Presence with real clients: headless baresip 1.0 instances (Debian
//! `baresip-core`) publish and watch presence through the real binary.
//!
//! How baresip presence is driven: each instance loads the `presence`
//! module besides the usual headless set (see `support/interop.rs`,
//! [`Baresip::start_with`]). baresip 1.0's presence module
//! - SUBSCRIBEs (Event: presence, 600 s, answering the server's 407) to each
//!   contact marked `;presence=p2p` in its `contacts` file, about a second
//!   after it starts, and reads each NOTIFY's PIDF with three patterns:
//!   `<basic>open</basic>` gives Online (else Offline), then `<rpid:away/>`
//!   gives Offline, `<rpid:busy/>` or `<rpid:on-the-phone/>` Busy;
//! - PUBLISHes (Event: presence, Expires = `pubint`, answering 407, then
//!   `SIP-If-Match` with the last entity tag) only for an account with
//!   `pubint` above 0, and only open or closed: its own status, which the
//!   commands `presence_online` and `presence_offline` (over `ctrl_tcp`)
//!   set; there is no command for busy, away or a note in 1.0.
//!
//! What the watcher saw is read from its own output: the subscriber prints
//! "`<sip:alice@example.test> changed status from Online to Offline`" on
//! every change except the first (from "Unknown"), and the `contacts`
//! command lists each contact with its current status, which gives the
//! first one. The SIP trace (`-s`) in the same output shows the NOTIFYs and
//! PUBLISHes behind them; it is printed when something fails.
//!
//! Every wait is bounded (10 s) and every baresip is killed when the test
//! ends.

mod support;

use std::time::{Duration, Instant};
use support::interop::{Baresip, BaresipOptions, TracedSip, set_password_and_wait, wait_until};
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::Uri;
use switchboard_sip_bodies::pidf;
use switchboard_testua::{Transport, Ua, UaConfig};

/// Every wait for baresip or the server is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// baresip reads `auth_pass` up to the first space or `;`.
const BARESIP_PASSWORD: &str = "baresip-presence-7";

/// baresip quits by itself after this, should its guard never run.
const LIFETIME: Duration = Duration::from_secs(90);

fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

/// bob's baresip, watching alice (`;presence=p2p`), not publishing.
fn start_watcher(root: &std::path::Path, server: &Server) -> Baresip {
    let options = BaresipOptions {
        app_modules: vec!["presence.so".into()],
        account_params: String::new(),
        contacts: vec![format!("\"Alice\" <{}>;presence=p2p", aor("alice"))],
    };
    let bob = Baresip::start_with(
        root,
        "bob",
        BARESIP_PASSWORD,
        server.udp,
        LIFETIME,
        &options,
    );
    if let Err(why) = bob.wait_registered(WAIT) {
        panic!("baresip bob did not register: {why}\n{}", bob.diagnostics());
    }
    bob
}

/// The `<basic>` of each NOTIFY (Event: presence) the server sent to `b`,
/// in order, with the messages themselves for failure messages.
fn notified_basics(b: &Baresip) -> (Vec<String>, String) {
    let notifies: Vec<TracedSip> = b
        .sip_trace()
        .into_iter()
        .filter(|m| m.is_request("NOTIFY") && m.header("Event") == Some("presence"))
        .collect();
    let basics = notifies
        .iter()
        .map(|m| {
            let body = m.body();
            ["open", "closed"]
                .into_iter()
                .find(|b| body.contains(&format!("<basic>{b}</basic>")))
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    let text = notifies
        .iter()
        .map(TracedSip::text)
        .collect::<Vec<_>>()
        .join("\n-----\n");
    (basics, text)
}

/// `v` without consecutive repeats.
fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.dedup();
    v
}

/// Waits for bob's `n`-th printed change of alice's presence and asserts it
/// went `from` → `to`.
fn expect_change(bob: &Baresip, alice: Option<&Baresip>, n: usize, from: &str, to: &str) {
    let change = bob.wait_for_presence_change(&aor("alice"), n, WAIT);
    let ok = change
        .as_ref()
        .is_some_and(|c| c.from == from && c.to == to);
    if !ok {
        let (basics, notifies) = notified_basics(bob);
        panic!(
            "bob's baresip should print alice's presence change #{n} {from} -> {to} within \
             {WAIT:?}; got {change:?} (all: {:?})\nNOTIFY bodies' <basic> so far: {basics:?}\n\
             --- NOTIFYs to bob:\n{notifies}\n{}\n{}",
            bob.presence_changes(),
            alice.map(Baresip::diagnostics).unwrap_or_default(),
            bob.diagnostics()
        );
    }
}

/// The PUBLISH requests `b` sent, each with the status of the response
/// the server gave it (matched by Call-ID and CSeq).
fn publishes(b: &Baresip) -> Vec<(TracedSip, Option<u16>)> {
    let trace = b.sip_trace();
    trace
        .iter()
        .filter(|m| m.is_request("PUBLISH"))
        .map(|req| {
            let status = trace
                .iter()
                .filter(|r| {
                    r.header("Call-ID") == req.header("Call-ID")
                        && r.header("CSeq") == req.header("CSeq")
                })
                .filter_map(TracedSip::status)
                .rfind(|s| *s >= 200);
            (req.clone(), status)
        })
        .collect()
}

#[tokio::test]
async fn baresip_watcher_follows_a_baresip_publisher_offline_online_offline_online() {
    let server = Server::with_users(&["alice", "bob"]);
    for user in ["alice", "bob"] {
        set_password_and_wait(&server, user, BARESIP_PASSWORD, WAIT).await;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();

    // bob first: alice is neither registered nor published, so the
    // server's first NOTIFY says closed, which baresip lists as Offline.
    let bob = start_watcher(tmp.path(), &server);
    let first = bob.wait_for_contact_status(&aor("alice"), "Offline", WAIT);
    assert_eq!(
        first.as_deref(),
        Some("Offline"),
        "bob's baresip should list alice as Offline after the initial NOTIFY (closed)\n{}",
        bob.diagnostics()
    );

    // alice's baresip registers and publishes (pubint): Online.
    let options = BaresipOptions {
        app_modules: vec!["presence.so".into()],
        account_params: ";pubint=60".into(),
        contacts: vec![format!("<{}>", aor("bob"))],
    };
    let alice = Baresip::start_with(
        tmp.path(),
        "alice",
        BARESIP_PASSWORD,
        server.udp,
        LIFETIME,
        &options,
    );
    if let Err(why) = alice.wait_registered(WAIT) {
        panic!(
            "baresip alice did not register: {why}\n{}",
            alice.diagnostics()
        );
    }
    expect_change(&bob, Some(&alice), 1, "Offline", "Online");
    // bob may see her Online from her registration alone, before her own
    // PUBLISH is answered; a status change in between would go out as a
    // new publication (baresip has no entity tag yet). Let it settle.
    let settled = wait_until(WAIT, || {
        let pubs = publishes(&alice);
        !pubs.is_empty()
            && pubs.iter().all(|(_, s)| s.is_some())
            && pubs.iter().any(|(_, s)| *s == Some(200))
    });
    assert!(
        settled,
        "alice's baresip PUBLISHes (open) should be answered, one with 200, within {WAIT:?}\n{}",
        alice.diagnostics()
    );
    let initial_publishes = publishes(&alice).len();

    // alice goes offline: baresip PUBLISHes closed under its entity tag.
    let answer = alice.command("presence_offline", "", WAIT);
    assert_eq!(
        answer["ok"],
        true,
        "alice's baresip refused presence_offline: {answer}\n{}",
        alice.diagnostics()
    );
    expect_change(&bob, Some(&alice), 2, "Online", "Offline");
    assert_eq!(
        bob.contact_status(&aor("alice"), WAIT).as_deref(),
        Some("Offline"),
        "bob's contacts listing after alice went offline\n{}",
        bob.diagnostics()
    );

    // And online again.
    let answer = alice.command("presence_online", "", WAIT);
    assert_eq!(
        answer["ok"],
        true,
        "alice's baresip refused presence_online: {answer}\n{}",
        alice.diagnostics()
    );
    expect_change(&bob, Some(&alice), 3, "Offline", "Online");
    assert_eq!(
        bob.contact_status(&aor("alice"), WAIT).as_deref(),
        Some("Online"),
        "bob's contacts listing after alice came back\n{}",
        bob.diagnostics()
    );
    let elapsed = started.elapsed();

    // Behind it on the wire: the NOTIFYs to bob carried closed, open,
    // closed, open (the same state twice in a row is allowed, not needed)...
    let (basics, notifies) = notified_basics(&bob);
    assert_eq!(
        dedup(basics.clone()),
        ["closed", "open", "closed", "open"],
        "the <basic> of the NOTIFYs bob received, in order: {basics:?}\n{notifies}"
    );
    // ... and alice's status changes went out as PUBLISHes under her entity
    // tag (SIP-If-Match), closed then open, each accepted (200) once sent
    // with credentials. (baresip PUBLISHes twice when it starts, both
    // without an entity tag, and keeps the tag of whichever 200 came last;
    // the server keeps one publication per device, the later one, so a 412
    // to the first change followed by a new publication is also correct.)
    let pubs = publishes(&alice);
    let dump = || {
        pubs.iter()
            .map(|(p, s)| format!("{}\n=> {s:?}", p.text()))
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    let changes: Vec<(&str, bool, Option<u16>)> = pubs[initial_publishes..]
        .iter()
        .filter(|(p, _)| p.header("Proxy-Authorization").is_some())
        .map(|(p, s)| {
            let body = p.body();
            let basic = if body.contains("<basic>closed</basic>") {
                "closed"
            } else if body.contains("<basic>open</basic>") {
                "open"
            } else {
                "refresh"
            };
            (basic, p.header("SIP-If-Match").is_some(), *s)
        })
        .collect();
    let accepted: Vec<String> = changes
        .iter()
        .filter(|(_, _, s)| *s == Some(200))
        .map(|(b, _, _)| (*b).to_owned())
        .collect();
    assert!(
        changes
            .first()
            .is_some_and(|(b, m, _)| *b == "closed" && *m)
            && changes
                .iter()
                .all(|(_, m, s)| *s == Some(200) || (*m && *s == Some(412)))
            && dedup(accepted.clone()) == ["closed", "open"],
        "alice's authenticated PUBLISHes after her first was answered, as (basic, \
         SIP-If-Match, status): {changes:?}; the first should be closed with SIP-If-Match, \
         the accepted ones closed then open\n{}",
        dump()
    );
    eprintln!(
        "baresip presence: Offline -> Online -> Offline -> Online seen by bob in {elapsed:?}"
    );
}

/// A PIDF document for alice's other device (a test user agent): open,
/// with these RPID activities.
fn pidf(activities: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\">\
         <tuple id=\"t1\"><status><basic>open</basic></status></tuple>\
         <dm:person id=\"p1\"><rpid:activities>{activities}</rpid:activities></dm:person>\
         </presence>",
        aor("alice")
    )
}

/// baresip understands only a few RPID elements, written exactly so
/// (`<rpid:busy/>`, `<rpid:away/>`): the documents the server renders for
/// Busy and Away must carry them in that form.
#[tokio::test]
async fn baresip_watcher_reads_busy_and_away_as_the_server_renders_them() {
    let server = Server::with_users(&["alice", "bob"]);
    set_password_and_wait(&server, "bob", BARESIP_PASSWORD, WAIT).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let bob = start_watcher(tmp.path(), &server);
    let first = bob.wait_for_contact_status(&aor("alice"), "Offline", WAIT);
    assert_eq!(
        first.as_deref(),
        Some("Offline"),
        "bob's baresip should list alice as Offline after the initial NOTIFY (closed)\n{}",
        bob.diagnostics()
    );

    // alice publishes from a test user agent (not registered: the
    // publication alone makes her present).
    let alice = Ua::connect(UaConfig::new(
        Transport::Udp,
        server.udp,
        DOMAIN,
        "alice",
        PASSWORD,
    ))
    .await
    .expect("connect alice's user agent");
    let mut etag: Option<String> = None;
    let steps: [(&str, &str, &str); 4] = [
        ("", "Offline", "Online"),
        ("<rpid:busy/>", "Online", "Busy"),
        // baresip shows Away as Offline: its own mapping of <rpid:away/>.
        ("<rpid:away/>", "Busy", "Offline"),
        ("", "Offline", "Online"),
    ];
    for (n, (activities, from, to)) in steps.into_iter().enumerate() {
        let body = pidf(activities);
        let resp = alice
            .publish(
                Uri::Sip(alice.aor()),
                "presence",
                etag.as_deref(),
                Some((pidf::CONTENT_TYPE, body.as_bytes())),
                120,
            )
            .await
            .expect("PUBLISH transaction");
        assert_eq!(
            resp.status,
            200,
            "alice's PUBLISH ({activities:?}) refused: {}",
            String::from_utf8_lossy(&resp.to_bytes())
        );
        etag = resp
            .headers
            .get(&switchboard_sip::HeaderName::SipETag)
            .map(|e| e.trim().to_owned());
        expect_change(&bob, None, n + 1, from, to);
    }

    // The publication removed: closed again.
    let resp = alice
        .publish(Uri::Sip(alice.aor()), "presence", etag.as_deref(), None, 0)
        .await
        .expect("PUBLISH transaction");
    assert_eq!(
        resp.status,
        200,
        "removal of alice's publication refused: {}",
        String::from_utf8_lossy(&resp.to_bytes())
    );
    expect_change(&bob, None, steps.len() + 1, "Online", "Offline");
}
