//! Presence interoperability with SIPp (Debian package `sip-tester`), a
//! third-party SIP implementation, against the real binary over UDP.
//!
//! A SIPp watcher (bob, `tests/data/sipp/presence-subscriber.xml`)
//! subscribes to alice's presence, answering the server's 407, and answers
//! every NOTIFY 200 (the initial NOTIFY may come before or after the 200 to
//! the SUBSCRIBE; both orders are handled). Then a SIPp publisher (alice,
//! `presence-publisher.xml`) runs one publication through its whole life
//! (RFC 3903), each PUBLISH challenged with 407: initial PIDF (open, a
//! note), refresh with `SIP-If-Match` and no body, modification with
//! `SIP-If-Match` (RPID busy, another note), removal with `Expires: 0`, and
//! a refresh of the removed entity tag (412).
//!
//! The watcher scenario itself checks every NOTIFY's headers and body with
//! regular expressions (`ereg check_it` / `check_it_inverse`) and fails the
//! call when one does not reflect the state just published, when a NOTIFY
//! is missing (10 s per NOTIFY) or when one more comes (the refresh changes
//! nothing, so it must not be notified). The test asserts SIPp's exit
//! status and statistics (one successful call each, none failed) and reads
//! both scenarios' action logs: the notes the watcher saw, in order, and the
//! chain of entity tags the publisher got. Logs of each run are in its own
//! directory under the test's temporary directory and printed on failure.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::interop::{Sipp, sipp_auth_field, wait_until};
use support::{DOMAIN, PASSWORD, Server};

/// The note of the initial publication, as written in both scenarios.
const NOTE_PUBLISHED: &str = "In the lab until noon";
/// The note of the modified publication, as written in both scenarios.
const NOTE_MODIFIED: &str = "Writing the interop report";

/// Every wait of the test itself is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// The fields of the log lines of `sipp` that start with `prefix`, after
/// the prefix, split on white space.
fn logged(sipp: &Sipp, prefix: &str) -> Vec<Vec<String>> {
    sipp.log_lines(prefix)
        .iter()
        .map(|l| {
            l[prefix.len()..]
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn sipp_watcher_is_notified_of_every_state_a_sipp_publisher_publishes() {
    let server = Server::with_users(&["alice", "bob"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let auth_uri = format!("alice@{DOMAIN}");

    // bob watches alice, who is neither registered nor published: the
    // initial NOTIFY says closed.
    let mut watcher = Sipp::start(
        "watcher",
        tmp.path(),
        server.udp,
        "presence-subscriber.xml",
        &[format!(
            "bob;{DOMAIN};alice;{}",
            sipp_auth_field("bob", PASSWORD)
        )],
        &["-auth_uri", &auth_uri, "-m", "1"],
    );
    let subscribed = wait_until(WAIT, || {
        !watcher.log_lines("SUBSCRIBED ").is_empty() && !watcher.log_lines("NOTIFY 1 ").is_empty()
    });
    if !subscribed {
        watcher.finish_within(Duration::from_millis(500));
        panic!(
            "the SIPp watcher was not subscribed with an initial NOTIFY (closed) within \
             {WAIT:?}: {}\n{}",
            watcher.outcome(),
            watcher.diagnostics()
        );
    }

    // alice's publication, through its whole life.
    let mut publisher = Sipp::start(
        "publisher",
        tmp.path(),
        server.udp,
        "presence-publisher.xml",
        &[format!(
            "alice;{DOMAIN};{}",
            sipp_auth_field("alice", PASSWORD)
        )],
        &["-auth_uri", &auth_uri, "-m", "1"],
    );
    let publisher_ok = publisher.all_successful(1);
    // The watcher ends by itself after the fourth NOTIFY and its
    // unsubscription; when the publisher failed it never will.
    let watcher_ok = if publisher_ok {
        watcher.all_successful(1)
    } else {
        watcher.finish_within(Duration::from_secs(1));
        false
    };
    let elapsed = started.elapsed();
    let both = || format!("{}\n{}", publisher.diagnostics(), watcher.diagnostics());
    assert!(
        publisher_ok,
        "publisher: each PUBLISH should be challenged and then get 200 (412 for the removed \
         entity tag); {}\n{}",
        publisher.outcome(),
        both()
    );
    assert!(
        watcher_ok,
        "watcher: the subscription, four NOTIFYs reflecting closed / published / modified / \
         removed, and the unsubscription should all succeed; {}\n{}",
        watcher.outcome(),
        both()
    );

    // What the watcher saw, in order.
    let notifies = watcher.log_lines("NOTIFY ");
    assert_eq!(
        notifies,
        vec![
            "NOTIFY 1 closed note=".to_owned(),
            format!("NOTIFY 2 open note={NOTE_PUBLISHED}"),
            format!("NOTIFY 3 open+busy note={NOTE_MODIFIED}"),
            "NOTIFY 4 closed note=".to_owned(),
        ],
        "the NOTIFYs the watcher accepted\n{}",
        both()
    );
    let subscribed = logged(&watcher, "SUBSCRIBED ");
    let granted: u32 = subscribed
        .first()
        .and_then(|f| f.first())
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    assert!(
        subscribed.len() == 1 && (1..=300).contains(&granted),
        "one 200 to the SUBSCRIBE granting at most the 300 s asked for: {subscribed:?}\n{}",
        both()
    );
    let terminated = watcher.log_lines("TERMINATED ");
    assert!(
        terminated.len() == 1 && terminated[0].starts_with("TERMINATED terminated"),
        "the unsubscription ends with one NOTIFY saying terminated: {terminated:?}\n{}",
        both()
    );

    // The publisher's chain of entity tags: every successful PUBLISH got a
    // fresh one, and each next request carried the previous one.
    let published = logged(&publisher, "PUBLISHED ");
    let refreshed = logged(&publisher, "REFRESHED ");
    let modified = logged(&publisher, "MODIFIED ");
    let removed = logged(&publisher, "REMOVED ");
    let stale = logged(&publisher, "STALE 412 ");
    let field = |v: &[Vec<String>], i: usize| v.first().and_then(|f| f.get(i)).cloned();
    let e1 = field(&published, 0);
    let e2 = field(&refreshed, 1);
    let e3 = field(&modified, 1);
    let granted: u32 = field(&published, 2)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    assert!(
        e1.is_some()
            && e2.is_some()
            && e3.is_some()
            && field(&refreshed, 0) == e1
            && field(&modified, 0) == e2
            && field(&removed, 0) == e3
            && field(&stale, 0) == e3
            && [&e1, &e2, &e3].into_iter().collect::<BTreeSet<_>>().len() == 3,
        "entity tags: published {published:?}, refreshed {refreshed:?}, modified {modified:?}, \
         removed {removed:?}, stale {stale:?}\n{}",
        both()
    );
    assert!(
        (1..=120).contains(&granted),
        "the 200 to the initial PUBLISH grants at most the 120 s asked for: {published:?}"
    );
    eprintln!("SIPp presence: subscription, 5 publications and 5 NOTIFYs in {elapsed:?}");
}
