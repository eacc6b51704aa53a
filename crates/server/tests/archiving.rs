//! Compliance archiving end to end against the real binary: the policy
//! matrix (archiving on/off, global and user scope, internal and external,
//! clearing an override), what is captured (1:1 pager messages with their
//! outcome, session IM, conference messages, joins and leaves), critical mode
//! (IM refused with 503 while the archive cannot be written, recovering by
//! itself) and non-critical mode (IM flows, records spooled and replayed),
//! search, transcripts, export (EML, mbox, JSON lines parsed back), retention
//! and tamper evidence (`archive verify`).
//!
//! The archive is made unwritable from the test by holding an exclusive
//! SQLite transaction on `DATA/archive.db` (as a backup tool or a runaway
//! query would), and tampered with by editing that file directly.
//!
//! Federation does not exist yet: the server refuses IM to and from other
//! domains (403), so no conversation with an external party can happen end
//! to end. The tests prove what is reachable (an external-only policy does
//! not archive internal IM, IM to an outside domain is refused and not
//! archived) and say so; the external branch of the decision itself is
//! covered by unit tests in the core.
//!
//! Negative checks ("nothing was archived") use a sentinel: after the message
//! that must not be archived, a message that must be archived is sent, and
//! once it is in the archive (the archiver writes in order) the first one is
//! checked to be absent.

mod support;

use serde_json::Value;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{ArchiveLock, DOMAIN, PASSWORD, Server, archive_connection as connect};
use switchboard_sip::{HeaderName, Method, NameAddr, Response};
use switchboard_testua::{Dialog, RegisterOptions, Transport, Ua, UaConfig};

/// Bound of every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long the tests watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(1500);
/// Time for the running server to pick up a configuration or policy change
/// made with the CLI (it polls the database every 500 ms).
const PICKUP: Duration = Duration::from_millis(1500);

const CRITICAL_REASON: &str = "Archiving unavailable: message not delivered (critical mode)";

fn addr(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

fn uri(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn out_text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

fn response_trace(r: &Response) -> String {
    text(&r.to_bytes())
}

// ---------------------------------------------------------------------------
// Server and CLI helpers
// ---------------------------------------------------------------------------

/// Runs `switchboard archive ARGS` and asserts success; returns stdout.
fn archive_ok(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["archive"];
    all.extend_from_slice(args);
    server.cli_ok(&all, None)
}

/// Runs `switchboard archive ARGS` (whatever its outcome).
fn archive_cli(server: &Server, args: &[&str]) -> Output {
    let mut all = vec!["archive"];
    all.extend_from_slice(args);
    server.cli(&all, None)
}

/// Changes the archiving configuration or policies and waits for the running
/// server to pick the change up.
async fn configure(server: &Server, commands: &[&[&str]]) {
    for c in commands {
        archive_ok(server, c);
    }
    tokio::time::sleep(PICKUP).await;
}

/// `archive search --json ARGS`: the matching records.
fn search(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    let out = archive_ok(server, &all);
    match serde_json::from_str::<Value>(&out) {
        Ok(Value::Array(v)) => v,
        other => panic!("archive search --json did not print an array: {other:?}\n{out}"),
    }
}

/// Every record in the archive.
fn all_records(server: &Server) -> Vec<Value> {
    search(server, &[])
}

/// The body of a record in the archive's JSON (base64, which carries any bytes).
fn body_of(r: &Value) -> Vec<u8> {
    use base64::Engine;
    match &r["body"] {
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("body is base64"),
        other => panic!("body must be a base64 string, got {other}"),
    }
}

fn str_of<'a>(r: &'a Value, field: &str) -> &'a str {
    r[field].as_str().unwrap_or("")
}

fn participants_of(r: &Value) -> Vec<String> {
    r["participants"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn pretty(records: &[Value]) -> String {
    serde_json::to_string_pretty(records).unwrap_or_default()
}

/// Records whose body contains `needle`.
fn with_body(records: &[Value], needle: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| text(&body_of(r)).contains(needle))
        .cloned()
        .collect()
}

/// Waits until some record satisfies `pred`; returns the records that do.
async fn wait_records(server: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = all_records(server);
        let hits: Vec<Value> = all.iter().filter(|r| pred(r)).cloned().collect();
        if !hits.is_empty() {
            return hits;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not in the archive within {WAIT:?}; the archive holds:\n{}",
                pretty(&all)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a message record whose body contains `needle` is archived.
async fn wait_message(server: &Server, needle: &str) -> Value {
    wait_records(server, &format!("message {needle:?}"), |r| {
        str_of(r, "kind") == "message" && text(&body_of(r)).contains(needle)
    })
    .await
    .remove(0)
}

/// Asserts that no record mentions any of `absent` (call after a sentinel
/// was seen in the archive).
fn assert_absent(server: &Server, absent: &[&str], why: &str) {
    let all = all_records(server);
    for a in absent {
        let found = with_body(&all, a);
        assert!(
            found.is_empty(),
            "{why}: {a:?} must not be archived, found:\n{}",
            pretty(&found)
        );
    }
}

/// A registered device of `user` that answers MESSAGE, NOTIFY and BYE with
/// 200 by itself; with `sessions` it takes IM sessions (`+sip.message`), so a
/// conference focus INVITEs it.
async fn device(server: &Server, user: &str, transport: Transport, sessions: bool) -> Ua {
    let ua = server.ua(user, transport).await;
    ua.auto_answer(Method::Message, 200);
    ua.auto_answer(Method::Notify, 200);
    ua.auto_answer(Method::Bye, 200);
    let mut opts = RegisterOptions::new(3600);
    if sessions {
        opts.contact_params.push(("+sip.message".into(), None));
    }
    let r = ua.register_with(&opts).await.expect("register");
    assert_eq!(r.status, 200, "registration of {user}: {r:?}");
    ua
}

async fn pager(server: &Server, user: &str) -> Ua {
    device(server, user, Transport::Udp, false).await
}

/// Bodies of the MESSAGEs `ua` received (retransmissions dropped).
fn received_texts(ua: &Ua) -> Vec<String> {
    let mut seen = HashSet::new();
    ua.received(&Method::Message)
        .into_iter()
        .filter(|r| {
            seen.insert((
                r.headers.call_id().unwrap_or_default().to_owned(),
                r.headers.cseq().map(|c| c.seq).unwrap_or(0),
            ))
        })
        .map(|r| text(&r.body))
        .collect()
}

/// Waits until `ua` received a MESSAGE containing `needle`.
async fn wait_received(ua: &Ua, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if received_texts(ua).iter().any(|t| t.contains(needle)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} did not receive {needle:?} within {WAIT:?}; it received {:?}",
        ua.aor(),
        received_texts(ua)
    );
}

/// Sends a pager MESSAGE and returns the final response.
async fn send(from: &Ua, to: &str, body: &str) -> Response {
    from.send_message(uri(to), "text/plain", body)
        .await
        .unwrap_or_else(|e| panic!("MESSAGE {body:?} to {to}: {e:?}"))
}

/// Sends a pager MESSAGE that must be answered 200.
async fn send_ok(from: &Ua, to: &str, body: &str) {
    let r = send(from, to, body).await;
    assert_eq!(r.status, 200, "MESSAGE {body:?}:\n{}", response_trace(&r));
}

/// An IM session from `from` to `to` (a session device): both dialogs.
async fn session(from: &Ua, to: &Ua) -> (Dialog, Dialog) {
    let sdp = from.im_sdp();
    let invite = from.invite(to.aor().to_string(), &sdp);
    let answer = async {
        let inv = to.expect_request(Method::Invite, WAIT).await?;
        inv.accept(&to.im_sdp()).await
    };
    let (a, b) = tokio::join!(invite, answer);
    (a.expect("caller's dialog"), b.expect("callee's dialog"))
}

/// Starts a conference at the factory; returns the creator's dialog and the
/// conference URI (`sip:conf-<hex>@DOMAIN`).
async fn create_conference(ua: &Ua) -> (Dialog, String) {
    let mut req = ua
        .new_request(Method::Invite, format!("sip:conf-factory@{DOMAIN}"))
        .expect("INVITE");
    req.headers.push(HeaderName::ContentType, "application/sdp");
    req.body = ua.im_sdp().into_bytes();
    let (ex, dialog) = ua
        .send_invite(req)
        .await
        .unwrap_or_else(|e| panic!("INVITE to the conference factory failed: {e:?}"));
    let contact = ex
        .response
        .headers
        .get(&HeaderName::Contact)
        .unwrap_or_else(|| panic!("200 without Contact:\n{}", response_trace(&ex.response)))
        .to_owned();
    let na = NameAddr::parse(&contact, "Contact").expect("Contact parses");
    (dialog, na.uri.to_string())
}

/// The archive conversation of a conference URI: `conf-<hex>`.
fn conf_conversation(conf_uri: &str) -> String {
    conf_uri
        .trim_start_matches("sip:")
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `referrer` brings `user` (session device `invitee`) into its conference.
async fn bring_in(referrer: &mut Dialog, invitee: &Ua, user: &str) -> Dialog {
    let mut req = referrer.new_request(Method::Refer);
    req.headers
        .push(HeaderName::ReferTo, format!("<{}>", uri(user)));
    let r = referrer.send(req).await.expect("REFER").response;
    assert_eq!(r.status, 202, "REFER for {user}:\n{}", response_trace(&r));
    let inv = invitee
        .expect_request(Method::Invite, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{user} got no INVITE from the focus: {e}"));
    inv.accept(&invitee.im_sdp())
        .await
        .expect("accept the focus's INVITE")
}

/// `archive status --json`.
fn status(server: &Server) -> Value {
    let out = archive_ok(server, &["status", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}\n{out}"))
}

fn spooled(server: &Server) -> u64 {
    status(server)["spooled"].as_u64().unwrap_or(0)
}

/// `archive verify`: (success, stdout+stderr).
fn verify(server: &Server, args: &[&str]) -> (bool, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let o = archive_cli(server, &all);
    (o.status.success(), out_text(&o))
}

fn assert_intact(server: &Server, why: &str) {
    let (ok, out) = verify(server, &[]);
    assert!(ok && out.contains("archive intact"), "{why}: {out}");
}

/// A server with these users, archiving on for everyone's internal IM.
async fn archiving_server(users: &[&str]) -> Server {
    let server = Server::with_users(users);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on"],
            &["policy", "set", "--global", "--internal", "on"],
        ],
    )
    .await;
    server
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

// ---------------------------------------------------------------------------
// Policy matrix
// ---------------------------------------------------------------------------

#[tokio::test]
async fn archiving_off_archives_nothing_even_with_policies_on() {
    let server = Server::with_users(&["alice", "bob"]);
    // Policies say archive everything, but archiving itself is off (default).
    configure(
        &server,
        &[
            &[
                "policy",
                "set",
                "--global",
                "--internal",
                "on",
                "--external",
                "on",
            ],
            &[
                "policy",
                "set",
                "--user",
                &addr("alice"),
                "--internal",
                "on",
            ],
        ],
    )
    .await;
    let show = archive_ok(&server, &["config", "show"]);
    assert!(show.contains("archiving: off"), "{show}");
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "while archiving is off 1").await;
    send_ok(&bob, "alice", "while archiving is off 2").await;
    tokio::time::sleep(QUIET).await;
    assert!(
        all_records(&server).is_empty(),
        "nothing may be archived while archiving is off"
    );

    // Sentinel: archiving on, the next message is archived, the earlier not.
    configure(&server, &[&["config", "set", "--enabled", "on"]]).await;
    send_ok(&alice, "bob", "sentinel after enabling").await;
    wait_message(&server, "sentinel after enabling").await;
    assert_absent(&server, &["while archiving is off"], "archiving was off");

    // And off again stops it.
    configure(&server, &[&["config", "set", "--enabled", "off"]]).await;
    send_ok(&alice, "bob", "after disabling again").await;
    configure(&server, &[&["config", "set", "--enabled", "on"]]).await;
    send_ok(&alice, "bob", "second sentinel").await;
    wait_message(&server, "second sentinel").await;
    assert_absent(
        &server,
        &["after disabling again"],
        "archiving was off again",
    );
}

#[tokio::test]
async fn a_user_policy_overrides_the_global_one_and_clear_restores_it() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on"],
            &[
                "policy",
                "set",
                "--global",
                "--internal",
                "off",
                "--external",
                "off",
            ],
            &[
                "policy",
                "set",
                "--user",
                &addr("carol"),
                "--internal",
                "on",
            ],
        ],
    )
    .await;
    let shown = archive_ok(&server, &["policy", "show", "--json"]);
    assert!(
        shown.contains(&addr("carol")),
        "policy show lists carol's override:\n{shown}"
    );

    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    let carol = pager(&server, "carol").await;
    let _dave = pager(&server, "dave").await;

    send_ok(&alice, "bob", "alice to bob, nobody archived").await;
    send_ok(&bob, "dave", "bob to dave, nobody archived").await;
    // carol is archived whether she sends or receives.
    send_ok(&alice, "carol", "alice to carol, carol archived").await;
    send_ok(&carol, "dave", "carol to dave, carol archived").await;
    let r = wait_message(&server, "carol to dave").await;
    assert_eq!(str_of(&r, "sender"), addr("carol"));
    let r = wait_message(&server, "alice to carol").await;
    assert_eq!(str_of(&r, "sender"), addr("alice"));
    assert_eq!(participants_of(&r), vec![addr("carol")]);
    assert_absent(&server, &["nobody archived"], "neither party is archived");

    // Clearing carol's override: the global policy (off) applies to her again.
    let out = archive_ok(&server, &["policy", "clear", "--user", &addr("carol")]);
    assert!(out.contains("removed"), "{out}");
    let shown = archive_ok(&server, &["policy", "show", "--json"]);
    assert!(!shown.contains(&addr("carol")), "override gone:\n{shown}");
    let again = archive_cli(&server, &["policy", "clear", "--user", &addr("carol")]);
    assert!(
        !again.status.success() && text(&again.stderr).contains("no archiving policy override"),
        "clearing a missing override is an error: {}",
        out_text(&again)
    );
    tokio::time::sleep(PICKUP).await;
    send_ok(&alice, "carol", "after clear, carol follows the global off").await;
    // Sentinel: the global policy on archives everyone.
    configure(
        &server,
        &[&["policy", "set", "--global", "--internal", "on"]],
    )
    .await;
    send_ok(&bob, "alice", "global on sentinel").await;
    wait_message(&server, "global on sentinel").await;
    assert_absent(&server, &["after clear"], "carol's override was cleared");

    // A user override can also exempt one user from a global "on": a message
    // between an exempt user and an archived one is still archived (any
    // party's policy covers it), between two exempt users it is not.
    configure(
        &server,
        &[
            &[
                "policy",
                "set",
                "--user",
                &addr("alice"),
                "--internal",
                "off",
            ],
            &["policy", "set", "--user", &addr("bob"), "--internal", "off"],
        ],
    )
    .await;
    send_ok(&alice, "bob", "between two exempt users").await;
    send_ok(&alice, "carol", "exempt alice to archived carol").await;
    wait_message(&server, "exempt alice to archived carol").await;
    assert_absent(
        &server,
        &["between two exempt users"],
        "both parties exempt",
    );
}

#[tokio::test]
async fn internal_and_external_are_decided_separately() {
    // External IM needs federation, which does not exist yet: what can be
    // proved end to end is that an external-only policy leaves internal IM
    // unarchived, and that IM to an outside domain is refused (403) and so
    // never archived.
    let server = Server::with_users(&["alice", "bob"]);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on"],
            &[
                "policy",
                "set",
                "--global",
                "--internal",
                "off",
                "--external",
                "on",
            ],
        ],
    )
    .await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "internal under an external-only policy").await;
    let outside = alice
        .send_message(
            "sip:partner@elsewhere.test",
            "text/plain",
            "to a partner company",
        )
        .await
        .expect("answer");
    assert_eq!(
        outside.status,
        403,
        "no federation: refused\n{}",
        response_trace(&outside)
    );
    configure(
        &server,
        &[&["policy", "set", "--global", "--internal", "on"]],
    )
    .await;
    send_ok(&alice, "bob", "internal sentinel").await;
    let r = wait_message(&server, "internal sentinel").await;
    assert_eq!(r["external"], Value::Bool(false), "internal record:\n{r:#}");
    assert_absent(
        &server,
        &[
            "internal under an external-only policy",
            "to a partner company",
        ],
        "external-only policy / refused external IM",
    );
}

// ---------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pager_messages_are_archived_with_their_outcome() {
    let server = archiving_server(&["alice", "bob", "carol", "dave"]).await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;

    let before = support_now_ms();
    send_ok(&alice, "bob", "Hello Bob, <pager> & co").await;
    wait_received(&bob, "Hello Bob").await;
    send_ok(&bob, "alice", "hi alice, got it").await;
    let after = support_now_ms();

    let r = wait_message(&server, "Hello Bob").await;
    let conv = str_of(&r, "conversation").to_owned();
    assert!(!conv.is_empty(), "a conversation id:\n{r:#}");
    assert_eq!(str_of(&r, "kind"), "message");
    assert_eq!(str_of(&r, "sender"), addr("alice"));
    assert_eq!(participants_of(&r), vec![addr("bob")]);
    assert_eq!(str_of(&r, "content_type"), "text/plain");
    assert_eq!(text(&body_of(&r)), "Hello Bob, <pager> & co");
    assert_eq!(str_of(&r, "outcome"), "delivered", "{r:#}");
    assert_eq!(r["external"], Value::Bool(false));
    let at = r["at_ms"].as_i64().unwrap_or(0);
    assert!(
        (before - 1000..=after + 1000).contains(&at),
        "time {at} within the exchange [{before}, {after}]"
    );
    let reply = wait_message(&server, "hi alice, got it").await;
    assert_eq!(
        str_of(&reply, "conversation"),
        conv,
        "both directions are one conversation"
    );
    assert_eq!(str_of(&reply, "sender"), addr("bob"));
    assert_eq!(participants_of(&reply), vec![addr("alice")]);

    // A recipient with two devices: delivered to both, archived once.
    let bob_laptop = device(&server, "bob", Transport::Tcp, false).await;
    send_ok(&alice, "bob", "to both of bob's devices").await;
    wait_received(&bob, "to both of bob's devices").await;
    wait_received(&bob_laptop, "to both of bob's devices").await;
    wait_message(&server, "to both of bob's devices").await;
    tokio::time::sleep(QUIET).await;
    let copies = with_body(&all_records(&server), "to both of bob's devices");
    assert_eq!(
        copies.len(),
        1,
        "one record per message:\n{}",
        pretty(&copies)
    );

    // Typing notifications are not archived.
    let typing = r#"<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>"#;
    let t = alice
        .send_message(uri("bob"), "application/im-iscomposing+xml", typing)
        .await
        .expect("typing");
    assert_eq!(t.status, 200);

    // carol has no device: stored for offline delivery (202).
    let r = send(&alice, "carol", "for carol when she signs in").await;
    assert_eq!(r.status, 202, "{}", response_trace(&r));
    let rec = wait_message(&server, "for carol when she signs in").await;
    assert_eq!(
        str_of(&rec, "outcome"),
        "stored for offline delivery",
        "{rec:#}"
    );
    assert_eq!(participants_of(&rec), vec![addr("carol")]);

    // dave keeps no offline messages: 480, archived as failed.
    server.cli_ok(
        &[
            "policy",
            "im",
            "set",
            "--user",
            &addr("dave"),
            "--offline",
            "off",
        ],
        None,
    );
    tokio::time::sleep(PICKUP).await;
    let r = send(&alice, "dave", "dave cannot get this").await;
    assert_eq!(r.status, 480, "{}", response_trace(&r));
    let rec = wait_message(&server, "dave cannot get this").await;
    assert_eq!(str_of(&rec, "outcome"), "failed 480", "{rec:#}");

    // HTML: the searchable text is the text without markup.
    let r = alice
        .send_message(uri("bob"), "text/html", "<p>Quarterly <b>numbers</b></p>")
        .await
        .expect("html");
    assert_eq!(r.status, 200);
    let rec = wait_message(&server, "Quarterly").await;
    assert_eq!(str_of(&rec, "content_type"), "text/html");
    let words: Vec<&str> = str_of(&rec, "text").split_whitespace().collect();
    assert_eq!(words, vec!["Quarterly", "numbers"], "{rec:#}");
    let hits = search(&server, &["--text", "numbers"]);
    assert_eq!(hits.len(), 1, "{}", pretty(&hits));

    assert!(
        with_body(&all_records(&server), "isComposing").is_empty(),
        "typing notifications are not archived"
    );
    assert_intact(&server, "after pager capture");
}

fn support_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn messages_answered_just_before_a_shutdown_are_in_the_archive() {
    let mut server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    let texts: Vec<String> = (0..5).map(|i| format!("last words {i}")).collect();
    for t in &texts {
        send_ok(&alice, "bob", t).await;
    }
    // Stopped (SIGTERM) at once: the records are still being gathered for
    // the next batch when the signal arrives.
    server.stop();
    drop((alice, bob));
    let archived: BTreeSet<String> = all_records(&server)
        .iter()
        .map(|r| text(&body_of(r)))
        .collect();
    for t in &texts {
        assert!(
            archived.contains(t),
            "{t:?} was answered 200 but is not in the archive after a clean stop: {archived:?}"
        );
    }
}

#[tokio::test]
async fn session_messages_are_archived() {
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = device(&server, "alice", Transport::Tcp, true).await;
    let bob = device(&server, "bob", Transport::Udp, true).await;
    let (mut ad, mut bd) = session(&alice, &bob).await;
    let r = ad
        .request(Method::Message, "text/plain", b"in session from alice")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_received(&bob, "in session from alice").await;
    let r = bd
        .request(Method::Message, "text/plain", b"in session from bob")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_received(&alice, "in session from bob").await;
    let typing = br#"<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>"#;
    let r = ad
        .request(Method::Message, "application/im-iscomposing+xml", typing)
        .await
        .expect("typing");
    assert_eq!(r.status, 200);

    let a = wait_message(&server, "in session from alice").await;
    assert_eq!(str_of(&a, "sender"), addr("alice"));
    assert_eq!(participants_of(&a), vec![addr("bob")]);
    assert_eq!(str_of(&a, "outcome"), "delivered", "{a:#}");
    assert_eq!(str_of(&a, "content_type"), "text/plain");
    let b = wait_message(&server, "in session from bob").await;
    assert_eq!(str_of(&b, "sender"), addr("bob"));
    assert_eq!(participants_of(&b), vec![addr("alice")]);
    assert_eq!(
        str_of(&a, "conversation"),
        str_of(&b, "conversation"),
        "one conversation"
    );
    // A pager message between the same two people belongs to it too.
    send_ok(&alice, "bob", "pager between session peers").await;
    let p = wait_message(&server, "pager between session peers").await;
    assert_eq!(str_of(&p, "conversation"), str_of(&a, "conversation"));

    assert_eq!(ad.bye().await.expect("BYE").status, 200);
    let _ = bd;
    assert!(
        with_body(&all_records(&server), "isComposing").is_empty(),
        "typing is not archived"
    );
    let show = archive_ok(&server, &["show", str_of(&a, "conversation")]);
    assert!(
        show.contains("in session from alice") && show.contains("in session from bob"),
        "{show}"
    );
}

#[tokio::test]
async fn conference_messages_joins_and_leaves_are_archived() {
    let server = archiving_server(&["alice", "bob", "carol"]).await;
    let alice = device(&server, "alice", Transport::Tcp, true).await;
    let bob = device(&server, "bob", Transport::Tcp, true).await;
    let (mut ad, conf) = create_conference(&alice).await;
    let conversation = conf_conversation(&conf);
    assert!(conversation.starts_with("conf-"), "{conf}");
    let mut bd = bring_in(&mut ad, &bob, "bob").await;
    let r = ad
        .request(
            Method::Message,
            "text/plain",
            b"conference hello from alice",
        )
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_received(&bob, "conference hello from alice").await;
    let r = bd
        .request(Method::Message, "text/plain", b"conference reply from bob")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_received(&alice, "conference reply from bob").await;
    assert_eq!(bd.bye().await.expect("BYE").status, 200);

    let m = wait_message(&server, "conference hello from alice").await;
    assert_eq!(str_of(&m, "conversation"), conversation, "{m:#}");
    assert_eq!(str_of(&m, "sender"), addr("alice"));
    assert_eq!(participants_of(&m), vec![addr("bob")]);
    assert_eq!(text(&body_of(&m)), "conference hello from alice");
    let m = wait_message(&server, "conference reply from bob").await;
    assert_eq!(str_of(&m, "sender"), addr("bob"));
    assert_eq!(participants_of(&m), vec![addr("alice")]);

    let events = wait_records(&server, "bob's leave", |r| {
        str_of(r, "conversation") == conversation && str_of(r, "kind") == "leave"
    })
    .await;
    assert_eq!(str_of(&events[0], "sender"), addr("bob"));
    let conv_records = search(&server, &["--conversation", &conversation]);
    let kinds: Vec<(String, String)> = conv_records
        .iter()
        .map(|r| (str_of(r, "kind").to_owned(), str_of(r, "sender").to_owned()))
        .collect();
    let expected = vec![
        ("join".to_owned(), addr("alice")),
        ("join".to_owned(), addr("bob")),
        ("message".to_owned(), addr("alice")),
        ("message".to_owned(), addr("bob")),
        ("leave".to_owned(), addr("bob")),
    ];
    assert_eq!(kinds, expected, "{}", pretty(&conv_records));
    let show = archive_ok(&server, &["show", &conversation]);
    for needle in [
        &format!("{} joined", addr("alice")),
        &format!("{} joined", addr("bob")),
        &format!("{} left", addr("bob")),
        &"conference hello from alice".to_owned(),
    ] {
        assert!(
            show.contains(needle.as_str()),
            "transcript lacks {needle:?}:\n{show}"
        );
    }
    assert_eq!(ad.bye().await.expect("BYE").status, 200);
    wait_records(&server, "alice's leave", |r| {
        str_of(r, "conversation") == conversation
            && str_of(r, "kind") == "leave"
            && str_of(r, "sender") == addr("alice")
    })
    .await;
    assert_intact(&server, "after a conference");
}

/// A one-to-one conversation escalated to a conference (`/invite carol`)
/// archives a join for every member: the two original parties, who become
/// members when the conference is created, as well as the invitee.
#[tokio::test]
async fn an_escalated_conversation_archives_a_join_for_every_member() {
    let server = archiving_server(&["alice", "bob", "carol"]).await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    let carol = pager(&server, "carol").await;
    send_ok(&alice, "bob", "one to one before the escalation").await;
    wait_received(&bob, "one to one before the escalation").await;
    send_ok(&alice, "bob", "/invite carol").await;
    wait_received(&carol, "invited you to a group chat").await;
    // From now on alice's messages to bob go to the conference.
    send_ok(&alice, "bob", "the three of us now").await;
    wait_received(&carol, "the three of us now").await;
    let m = wait_message(&server, "the three of us now").await;
    let conversation = str_of(&m, "conversation").to_owned();
    assert!(conversation.starts_with("conf-"), "{m:#}");

    let records = search(&server, &["--conversation", &conversation]);
    let kinds: Vec<(String, String)> = records
        .iter()
        .map(|r| (str_of(r, "kind").to_owned(), str_of(r, "sender").to_owned()))
        .collect();
    let expected = vec![
        ("join".to_owned(), addr("alice")),
        ("join".to_owned(), addr("bob")),
        ("join".to_owned(), addr("carol")),
        ("message".to_owned(), addr("alice")),
    ];
    assert_eq!(kinds, expected, "{}", pretty(&records));
    let show = archive_ok(&server, &["show", &conversation]);
    for u in ["alice", "bob", "carol"] {
        let needle = format!("{} joined", addr(u));
        assert!(
            show.contains(&needle),
            "transcript lacks {needle:?}:\n{show}"
        );
    }
    assert_intact(&server, "after an escalation");
}

// ---------------------------------------------------------------------------
// Critical and non-critical mode
// ---------------------------------------------------------------------------

/// Sends until the server accepts again (critical mode recovering); returns
/// how long that took.
async fn send_until_accepted(from: &Ua, to: &str, body: &str) -> Duration {
    let start = Instant::now();
    loop {
        let r = send(from, to, body).await;
        if r.status == 200 {
            return start.elapsed();
        }
        assert_eq!(r.status, 503, "while recovering:\n{}", response_trace(&r));
        assert!(
            start.elapsed() < WAIT,
            "critical mode did not recover within {WAIT:?} of the archive becoming writable"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn critical_mode_refuses_im_while_the_archive_cannot_be_written_and_recovers() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    // Only alice and bob are under an archiving policy.
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on", "--critical", "on"],
            &["policy", "set", "--global", "--internal", "off"],
            &[
                "policy",
                "set",
                "--user",
                &addr("alice"),
                "--internal",
                "on",
            ],
            &["policy", "set", "--user", &addr("bob"), "--internal", "on"],
        ],
    )
    .await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    let carol = pager(&server, "carol").await;
    let dave = pager(&server, "dave").await;
    send_ok(&alice, "bob", "before the outage").await;
    let first = wait_message(&server, "before the outage").await;
    assert_eq!(
        str_of(&first, "outcome"),
        "accepted",
        "critical mode commits the content before delivery:\n{first:#}"
    );
    wait_records(&server, "the delivery outcome", |r| {
        str_of(r, "kind") == "delivery" && str_of(r, "outcome") == "delivered"
    })
    .await;

    let lock = ArchiveLock::take(server.dir.path()).await;
    for n in 1..=3 {
        let body = format!("during the outage {n}");
        let r = send(&alice, "bob", &body).await;
        assert_eq!(
            (r.status, r.reason.as_str()),
            (503, CRITICAL_REASON),
            "message {n} while the archive is locked:\n{}",
            response_trace(&r)
        );
        assert!(
            r.headers.get(&HeaderName::RetryAfter).is_some(),
            "503 carries Retry-After:\n{}",
            response_trace(&r)
        );
    }
    // Offline delivery is refused the same way (the message would otherwise
    // be stored unarchived).
    bob.unregister().await.expect("unregister bob");
    let r = send(&alice, "bob", "during the outage, bob offline").await;
    assert_eq!(r.status, 503, "{}", response_trace(&r));
    let bob = pager(&server, "bob").await;
    // Users under no archiving policy are not affected.
    send_ok(&carol, "dave", "unarchived users talk during the outage").await;
    wait_received(&dave, "unarchived users talk").await;
    tokio::time::sleep(QUIET).await;
    let leaked: Vec<String> = received_texts(&bob)
        .into_iter()
        .filter(|t| t.contains("during the outage"))
        .collect();
    assert!(
        leaked.is_empty(),
        "refused messages must not reach bob: {leaked:?}"
    );

    lock.release().await;
    let took = send_until_accepted(&alice, "bob", "after the outage").await;
    wait_received(&bob, "after the outage").await;
    let rec = wait_message(&server, "after the outage").await;
    assert_eq!(str_of(&rec, "sender"), addr("alice"));
    assert!(
        took < Duration::from_secs(5),
        "recovered by itself, but only after {took:?}"
    );
    assert_absent(
        &server,
        &["during the outage", "unarchived users talk"],
        "refused messages were not delivered; carol and dave are not archived",
    );
    assert_intact(&server, "after recovery");
}

/// A lock shorter than the archive's busy timeout (1 s) only delays a
/// message in critical mode: it is committed, delivered once (UDP
/// retransmissions of the waiting MESSAGE are absorbed) and archived once.
#[tokio::test]
async fn critical_mode_waits_out_a_short_lock_without_refusing_or_duplicating() {
    let server = Server::with_users(&["alice", "bob"]);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on", "--critical", "on"],
            &["policy", "set", "--global", "--internal", "on"],
        ],
    )
    .await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "warm up").await;
    wait_message(&server, "warm up").await;
    let lock = ArchiveLock::take(server.dir.path()).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        lock.release().await;
    });
    let start = Instant::now();
    let r = send(&alice, "bob", "held for a moment").await;
    let took = start.elapsed();
    release.await.expect("release task");
    assert_eq!(r.status, 200, "after {took:?}:\n{}", response_trace(&r));
    assert!(
        took >= Duration::from_millis(500),
        "it waited for the commit: {took:?}"
    );
    wait_received(&bob, "held for a moment").await;
    wait_message(&server, "held for a moment").await;
    tokio::time::sleep(QUIET).await;
    let copies: Vec<String> = received_texts(&bob)
        .into_iter()
        .filter(|t| t.contains("held for a moment"))
        .collect();
    assert_eq!(copies.len(), 1, "delivered once: {copies:?}");
    let recs = with_body(&all_records(&server), "held for a moment");
    assert_eq!(recs.len(), 1, "archived once:\n{}", pretty(&recs));
    assert_eq!(str_of(&recs[0], "outcome"), "accepted");
}

#[tokio::test]
async fn critical_mode_refuses_session_messages_while_the_archive_cannot_be_written() {
    let server = Server::with_users(&["alice", "bob"]);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on", "--critical", "on"],
            &["policy", "set", "--global", "--internal", "on"],
        ],
    )
    .await;
    let alice = device(&server, "alice", Transport::Tcp, true).await;
    let bob = device(&server, "bob", Transport::Tcp, true).await;
    let (mut ad, _bd) = session(&alice, &bob).await;
    let lock = ArchiveLock::take(server.dir.path()).await;
    let r = ad
        .request(Method::Message, "text/plain", b"session during the outage")
        .await
        .expect("MESSAGE");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (503, CRITICAL_REASON),
        "{}",
        response_trace(&r)
    );
    tokio::time::sleep(QUIET).await;
    assert!(
        !received_texts(&bob)
            .iter()
            .any(|t| t.contains("session during the outage")),
        "not delivered"
    );
    lock.release().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ad
            .request(Method::Message, "text/plain", b"session after the outage")
            .await
            .expect("MESSAGE");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", response_trace(&r));
        assert!(Instant::now() < deadline, "session IM did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_received(&bob, "session after the outage").await;
    wait_message(&server, "session after the outage").await;
    assert_absent(&server, &["session during the outage"], "refused");
}

#[tokio::test]
async fn critical_mode_refuses_conference_messages_while_the_archive_cannot_be_written() {
    let server = Server::with_users(&["alice", "bob"]);
    configure(
        &server,
        &[
            &["config", "set", "--enabled", "on", "--critical", "on"],
            &["policy", "set", "--global", "--internal", "on"],
        ],
    )
    .await;
    let alice = device(&server, "alice", Transport::Tcp, true).await;
    let bob = device(&server, "bob", Transport::Tcp, true).await;
    let (mut ad, conf) = create_conference(&alice).await;
    let conversation = conf_conversation(&conf);
    let _bd = bring_in(&mut ad, &bob, "bob").await;
    let r = ad
        .request(
            Method::Message,
            "text/plain",
            b"conference before the outage",
        )
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    wait_received(&bob, "conference before the outage").await;

    let lock = ArchiveLock::take(server.dir.path()).await;
    let r = ad
        .request(
            Method::Message,
            "text/plain",
            b"conference during the outage",
        )
        .await
        .expect("MESSAGE");
    assert_eq!(
        (r.status, r.reason.as_str()),
        (503, CRITICAL_REASON),
        "{}",
        response_trace(&r)
    );
    tokio::time::sleep(QUIET).await;
    assert!(
        !received_texts(&bob)
            .iter()
            .any(|t| t.contains("conference during the outage")),
        "a refused conference message must not be fanned out: {:?}",
        received_texts(&bob)
    );
    lock.release().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ad
            .request(
                Method::Message,
                "text/plain",
                b"conference after the outage",
            )
            .await
            .expect("MESSAGE");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", response_trace(&r));
        assert!(Instant::now() < deadline, "conference IM did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_received(&bob, "conference after the outage").await;
    let rec = wait_message(&server, "conference after the outage").await;
    assert_eq!(str_of(&rec, "conversation"), conversation);
    assert_absent(&server, &["conference during the outage"], "refused");
    assert_intact(&server, "after the conference outage");
}

#[tokio::test]
async fn non_critical_mode_delivers_spools_and_replays_when_the_archive_is_back() {
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "before the outage").await;
    wait_message(&server, "before the outage").await;

    let lock = ArchiveLock::take(server.dir.path()).await;
    for n in 1..=3 {
        send_ok(&alice, "bob", &format!("spooled message {n}")).await;
        wait_received(&bob, &format!("spooled message {n}")).await;
    }
    // `archive status` cannot open the archive while it is locked (see
    // `archive_commands_work_while_the_archive_is_locked`): read the spool
    // file it reports on directly.
    let spool = server.dir.path().join("archive-spool.jsonl");
    let deadline = Instant::now() + WAIT;
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(&spool)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("spool line is JSON"))
            .collect();
        if lines.len() >= 3 {
            let texts: Vec<String> = lines.iter().map(|r| text(&body_of(r))).collect();
            assert_eq!(
                texts,
                vec![
                    "spooled message 1",
                    "spooled message 2",
                    "spooled message 3"
                ]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records were not spooled while the archive was locked: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    lock.release().await;
    for n in 1..=3 {
        wait_message(&server, &format!("spooled message {n}")).await;
    }
    let deadline = Instant::now() + WAIT;
    while spooled(&server) != 0 {
        // (status works again once the archive is no longer locked)
        assert!(
            Instant::now() < deadline,
            "the spool did not empty: {:#}",
            status(&server)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // In order, once each, with their outcome.
    let recs = with_body(&all_records(&server), "spooled message");
    let bodies: Vec<String> = recs.iter().map(|r| text(&body_of(r))).collect();
    assert_eq!(
        bodies,
        vec![
            "spooled message 1",
            "spooled message 2",
            "spooled message 3"
        ],
        "{}",
        pretty(&recs)
    );
    assert!(recs.iter().all(|r| str_of(r, "outcome") == "delivered"));
    let found = search(&server, &["--text", "spooled"]);
    assert_eq!(found.len(), 3, "full-text search finds replayed records");
    send_ok(&alice, "bob", "after the replay").await;
    wait_message(&server, "after the replay").await;
    assert_intact(&server, "after the replay");
}

/// During an outage is when an operator runs `archive status` (how much is
/// spooled?) and auditors keep searching: reading the archive must not need
/// its write lock (in WAL mode readers are not blocked by a writer).
#[tokio::test]
async fn archive_commands_work_while_the_archive_is_locked() {
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "archived before the lock").await;
    wait_message(&server, "archived before the lock").await;
    let lock = ArchiveLock::take(server.dir.path()).await;
    send_ok(&alice, "bob", "spooled under the lock").await;
    let spool = server.dir.path().join("archive-spool.jsonl");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&spool)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "nothing spooled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results: Vec<(&str, Output)> = vec![
        ("status", archive_cli(&server, &["status", "--json"])),
        ("search", archive_cli(&server, &["search", "--json"])),
        ("verify", archive_cli(&server, &["verify"])),
    ];
    lock.release().await;
    for (what, o) in &results {
        assert!(
            o.status.success(),
            "archive {what} while the archive is locked: {}",
            out_text(o)
        );
    }
    let st: Value = serde_json::from_slice(&results[0].1.stdout).expect("status json");
    assert_eq!(st["spooled"], 1, "{st:#}");
    let found: Vec<Value> = serde_json::from_slice(&results[1].1.stdout).expect("search json");
    assert_eq!(with_body(&found, "archived before the lock").len(), 1);
}

/// A locked or unwritable archive must not take IM down: the server starts,
/// IM of users under no archiving policy flows, and (non-critical mode)
/// archived IM is delivered and spooled.
#[tokio::test]
async fn the_server_starts_while_the_archive_is_locked() {
    let mut server = archiving_server(&["alice", "bob"]).await;
    server.stop();
    let lock = ArchiveLock::take(server.dir.path()).await;
    let started = std::thread::scope(|s| {
        s.spawn(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.start_again())).is_ok()
        })
        .join()
        .unwrap_or(false)
    });
    assert!(
        started,
        "switchboard serve did not start while the archive was locked"
    );
    let alice = pager(&server, "alice").await;
    let bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "delivered while the archive is locked").await;
    wait_received(&bob, "delivered while the archive is locked").await;
    lock.release().await;
    wait_message(&server, "delivered while the archive is locked").await;
}

// ---------------------------------------------------------------------------
// Search, transcripts, export
// ---------------------------------------------------------------------------

/// A small corpus: alice↔bob (pager), alice→carol, bob→carol, a conference of
/// alice and bob. Returns (alice–bob conversation, conference conversation).
async fn corpus(server: &Server) -> (String, String) {
    let alice = device(server, "alice", Transport::Tcp, true).await;
    let bob = device(server, "bob", Transport::Tcp, true).await;
    let _carol = pager(server, "carol").await;
    send_ok(&alice, "bob", "The Quarterly BUDGET review is on Friday").await;
    send_ok(&bob, "alice", "ok, budget slides ready").await;
    send_ok(&alice, "carol", "lunch on Friday?").await;
    send_ok(&bob, "carol", "From here on, the holiday schedule").await;
    let (mut ad, conf) = create_conference(&alice).await;
    let mut bd = bring_in(&mut ad, &bob, "bob").await;
    let r = ad
        .request(Method::Message, "text/plain", b"group budget question")
        .await
        .expect("MESSAGE");
    assert_eq!(r.status, 200, "{}", response_trace(&r));
    let conv = conf_conversation(&conf);
    assert_eq!(bd.bye().await.expect("BYE").status, 200);
    wait_records(server, "bob's leave", |r| {
        str_of(r, "conversation") == conv && str_of(r, "kind") == "leave"
    })
    .await;
    let ab = wait_message(server, "Quarterly BUDGET").await;
    for t in [
        "budget slides",
        "lunch on Friday",
        "holiday schedule",
        "group budget",
    ] {
        wait_message(server, t).await;
    }
    (str_of(&ab, "conversation").to_owned(), conv)
}

fn bodies(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .filter(|r| str_of(r, "kind") == "message")
        .map(|r| text(&body_of(r)))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn search_by_text_user_partner_and_time_and_show_transcripts() {
    let server = archiving_server(&["alice", "bob", "carol", "dave"]).await;
    let (ab, conf) = corpus(&server).await;

    // Words, case-insensitive, all must match.
    assert_eq!(
        bodies(&search(&server, &["--text", "budget"])),
        set(&[
            "The Quarterly BUDGET review is on Friday",
            "ok, budget slides ready",
            "group budget question"
        ])
    );
    assert_eq!(
        bodies(&search(&server, &["--text", "QUARTERLY budget"])),
        set(&["The Quarterly BUDGET review is on Friday"])
    );
    assert!(search(&server, &["--text", "budget holiday"]).is_empty());
    assert!(search(&server, &["--text", "nonexistentword"]).is_empty());
    let human = archive_ok(&server, &["search", "--text", "nonexistentword"]);
    assert!(human.contains("no archived message matches"), "{human}");

    // By user (sent or received) and partner.
    let carol = search(&server, &["--user", &addr("carol")]);
    assert_eq!(
        bodies(&carol),
        set(&["lunch on Friday?", "From here on, the holiday schedule"])
    );
    let alice_with_carol = search(
        &server,
        &["--user", &addr("alice"), "--with", &addr("carol")],
    );
    assert_eq!(bodies(&alice_with_carol), set(&["lunch on Friday?"]));
    let alice_with_bob = search(&server, &["--user", &addr("alice"), "--with", &addr("bob")]);
    assert_eq!(
        bodies(&alice_with_bob),
        set(&[
            "The Quarterly BUDGET review is on Friday",
            "ok, budget slides ready",
            "group budget question"
        ]),
        "pager conversation and conference"
    );
    // dave exists but has no records; case of the address does not matter.
    assert!(search(&server, &["--user", &addr("dave")]).is_empty());
    let upper = search(&server, &["--user", "CAROL@Example.Test"]);
    assert_eq!(
        bodies(&upper),
        bodies(&carol),
        "addresses are case-insensitive"
    );

    // Conversation.
    let conv = search(&server, &["--conversation", &ab]);
    assert_eq!(
        bodies(&conv),
        set(&[
            "The Quarterly BUDGET review is on Friday",
            "ok, budget slides ready"
        ])
    );

    // Time.
    let all = all_records(&server);
    let first = all
        .first()
        .and_then(|r| r["at_ms"].as_i64())
        .expect("first");
    let last = all.last().and_then(|r| r["at_ms"].as_i64()).expect("last");
    let everything = search(
        &server,
        &["--since", &rfc3339(first), "--until", &rfc3339(last + 1000)],
    );
    assert_eq!(everything.len(), all.len(), "since is inclusive");
    assert!(search(&server, &["--since", &rfc3339(last + 1000)]).is_empty());
    assert!(
        search(&server, &["--until", &rfc3339(first)]).is_empty(),
        "until is exclusive"
    );
    let today = time::OffsetDateTime::now_utc().date();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let today_s = today.format(&fmt).expect("date");
    let tomorrow_s = today
        .next_day()
        .expect("tomorrow")
        .format(&fmt)
        .expect("date");
    let yesterday_s = today
        .previous_day()
        .expect("yesterday")
        .format(&fmt)
        .expect("date");
    assert_eq!(
        search(&server, &["--since", &yesterday_s, "--until", &tomorrow_s]).len(),
        all.len()
    );
    assert!(search(&server, &["--until", &yesterday_s]).is_empty());
    let _ = today_s;

    // Invalid dates name the accepted formats.
    for bad in ["yesterday", "2026-13-45", "24/11/2026"] {
        let o = archive_cli(&server, &["search", "--since", bad]);
        let err = text(&o.stderr);
        assert!(
            !o.status.success() && err.contains("YYYY-MM-DD") && err.contains("RFC 3339"),
            "--since {bad}: {}",
            out_text(&o)
        );
    }
    // Unknown people and conversations are errors, not empty results.
    let o = archive_cli(&server, &["search", "--user", &addr("nobody")]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("no such user"),
        "{}",
        out_text(&o)
    );
    let o = archive_cli(&server, &["search", "--with", &addr("nobody")]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("no such user"),
        "{}",
        out_text(&o)
    );
    let o = archive_cli(&server, &["search", "--user", "not an address"]);
    assert!(!o.status.success(), "{}", out_text(&o));
    let o = archive_cli(
        &server,
        &["search", "--conversation", "no-such-conversation"],
    );
    assert!(
        !o.status.success() && text(&o.stderr).contains("no such conversation"),
        "{}",
        out_text(&o)
    );
    let o = archive_cli(&server, &["show", "no-such-conversation"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("no such conversation"),
        "{}",
        out_text(&o)
    );

    // Transcripts.
    let t = archive_ok(&server, &["show", &ab]);
    assert!(t.starts_with(&format!("Conversation {ab}\n")), "{t}");
    assert!(
        t.contains(&format!("Participants: {}, {}", addr("alice"), addr("bob"))),
        "{t}"
    );
    let a = t
        .find("The Quarterly BUDGET review")
        .expect("first message in transcript");
    let b = t
        .find("ok, budget slides ready")
        .expect("second message in transcript");
    assert!(a < b, "in order:\n{t}");
    assert!(
        t.contains(&format!(
            "{}: The Quarterly BUDGET review is on Friday",
            addr("alice")
        )),
        "sender named:\n{t}"
    );
    let j = archive_ok(&server, &["show", &conf, "--json"]);
    let recs: Vec<Value> = serde_json::from_str(&j).expect("show --json");
    assert!(recs.iter().all(|r| str_of(r, "conversation") == conf));
    assert_eq!(bodies(&recs), set(&["group budget question"]));
}

/// A checked reading of an exported message's headers, for the assertions
/// that do not depend on the parser.
fn header<'a>(msg: &'a mail_parser::Message<'a>, name: &str) -> String {
    msg.header(name)
        .and_then(|h| h.as_text())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn export_to_eml_mbox_and_jsonl_parses_back() {
    let server = archiving_server(&["alice", "bob", "carol"]).await;
    let (ab, conf) = corpus(&server).await;
    let all = all_records(&server);
    let conversations: BTreeSet<String> = all
        .iter()
        .map(|r| str_of(r, "conversation").to_owned())
        .collect();
    assert_eq!(
        conversations.len(),
        4,
        "alice–bob, alice–carol, bob–carol, conference"
    );
    let out_dir = tempfile::tempdir().expect("tmp");

    // EML: one file per conversation.
    let eml_dir = out_dir.path().join("eml");
    let o = archive_ok(
        &server,
        &[
            "export",
            "--format",
            "eml",
            "--output",
            eml_dir.to_str().expect("path"),
        ],
    );
    assert!(o.contains("exported 4 conversations"), "{o}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&eml_dir)
        .expect("eml dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), conversations.len(), "{files:?}");
    let mut seen = BTreeSet::new();
    for f in &files {
        let raw = std::fs::read(f).expect("read eml");
        let msg = mail_parser::MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("{} does not parse as a message", f.display()));
        let conv = header(&msg, "X-Switchboard-Conversation");
        assert!(conversations.contains(&conv), "{}: {conv:?}", f.display());
        seen.insert(conv.clone());
        let subject = msg.subject().unwrap_or_default();
        assert!(subject.starts_with("IM conversation with"), "{subject}");
        let to: BTreeSet<String> = msg
            .to()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|r| str_of(r, "conversation") == conv)
            .flat_map(|r| std::iter::once(str_of(r, "sender").to_owned()).chain(participants_of(r)))
            .collect();
        assert_eq!(to, expected, "To: everyone in {conv}");
        assert!(msg.date().is_some(), "Date header");
        let body = msg.body_text(0).unwrap_or_default().into_owned();
        for r in all.iter().filter(|r| str_of(r, "conversation") == conv) {
            if str_of(r, "kind") == "message" {
                let t = text(&body_of(r));
                assert!(body.contains(&t), "{conv} transcript lacks {t:?}:\n{body}");
            }
        }
        if conv == ab {
            assert!(
                body.contains("The Quarterly BUDGET review is on Friday"),
                "{body}"
            );
        }
        if conv == conf {
            assert!(body.contains("joined") && body.contains("left"), "{body}");
        }
    }
    assert_eq!(seen, conversations);

    // mbox: split back into one message per conversation.
    let mbox = out_dir.path().join("all.mbox");
    let o = archive_ok(
        &server,
        &[
            "export",
            "--format",
            "mbox",
            "--output",
            mbox.to_str().expect("path"),
        ],
    );
    assert!(o.contains("exported 4 conversations"), "{o}");
    let raw = std::fs::read_to_string(&mbox).expect("read mbox");
    let mut messages: Vec<String> = Vec::new();
    for line in raw.split_inclusive('\n') {
        if line.starts_with("From ") {
            messages.push(String::new());
            continue;
        }
        let m = messages.last_mut().expect("mbox starts with a From line");
        // mboxrd: unquote one level of >From.
        let unquoted = if line.trim_start_matches('>').starts_with("From ") {
            &line[1..]
        } else {
            line
        };
        m.push_str(unquoted);
    }
    assert_eq!(messages.len(), conversations.len(), "mbox:\n{raw}");
    let mut mseen = BTreeSet::new();
    for m in &messages {
        let msg = mail_parser::MessageParser::default()
            .parse(m.as_bytes())
            .expect("mbox entry parses");
        mseen.insert(header(&msg, "X-Switchboard-Conversation"));
        let body = msg.body_text(0).unwrap_or_default().into_owned();
        if body.contains("holiday schedule") {
            assert!(
                body.contains("From here on, the holiday schedule"),
                "a body line starting with From survives the round trip:\n{body}"
            );
        }
    }
    assert_eq!(mseen, conversations);

    // JSON lines: every line is a record, equal to what search prints.
    let jsonl = out_dir.path().join("all.jsonl");
    let o = archive_ok(
        &server,
        &[
            "export",
            "--format",
            "jsonl",
            "--output",
            jsonl.to_str().expect("path"),
        ],
    );
    assert!(
        o.contains(&format!("exported {} records", all.len())),
        "{o}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .expect("read jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    assert_eq!(lines, all, "JSONL equals the search results");

    // Filters apply to exports too.
    let carol_jsonl = out_dir.path().join("carol.jsonl");
    archive_ok(
        &server,
        &[
            "export",
            "--format",
            "jsonl",
            "--output",
            carol_jsonl.to_str().expect("path"),
            "--user",
            &addr("carol"),
        ],
    );
    let carol_lines: Vec<Value> = std::fs::read_to_string(&carol_jsonl)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(carol_lines, search(&server, &["--user", &addr("carol")]));
    let o = archive_cli(
        &server,
        &[
            "export",
            "--format",
            "jsonl",
            "--output",
            out_dir.path().join("none.jsonl").to_str().expect("path"),
            "--text",
            "nonexistentword",
        ],
    );
    assert!(
        !o.status.success() && text(&o.stderr).contains("nothing to export"),
        "{}",
        out_text(&o)
    );
}

// ---------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------

#[tokio::test]
async fn purge_removes_nothing_recent_and_the_chain_still_verifies() {
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    for n in 1..=3 {
        send_ok(&alice, "bob", &format!("recent {n}")).await;
    }
    wait_message(&server, "recent 3").await;
    let before = all_records(&server);
    configure(&server, &[&["config", "set", "--retention-days", "1"]]).await;
    let show = archive_ok(&server, &["config", "show", "--json"]);
    let cfg: Value = serde_json::from_str(&show).expect("config json");
    assert_eq!(cfg["retention_days"], 1);
    let out = archive_ok(&server, &["purge"]);
    assert!(out.contains("purged 0 records older than 1 days"), "{out}");
    assert_eq!(all_records(&server), before, "recent records are kept");
    assert_intact(&server, "after a purge");
    let o = archive_cli(&server, &["config", "set", "--retention-days", "0"]);
    assert!(
        !o.status.success(),
        "retention 0 is refused: {}",
        out_text(&o)
    );
    let o = archive_cli(&server, &["config", "set", "--retention-days", "2563"]);
    assert!(
        !o.status.success(),
        "retention above 2562 is refused: {}",
        out_text(&o)
    );
}

/// libfaketime, to run a server whose wall clock is days behind.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A `switchboard serve` started by the test itself (so that its environment
/// can carry a fake clock) on a given data directory.
struct Serve {
    child: Child,
    udp: SocketAddr,
}

impl Serve {
    fn start(data: &Path, fake_offset: Option<&str>) -> Serve {
        let mut cmd = Command::new(support::binary());
        cmd.arg("--data").arg(data).args([
            "serve",
            "--domain",
            DOMAIN,
            "--sip-udp",
            "127.0.0.1:0",
            "--sip-tcp",
            "127.0.0.1:0",
            "--sip-tls",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ]);
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null());
        if let Some(off) = fake_offset {
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME", off)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = cmd.spawn().expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let mut udp = None;
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("server output");
            if let Some(a) = line.strip_prefix("listening: SIP UDP ") {
                udp = a.parse().ok();
            }
            if line == "ready" {
                break;
            }
        }
        Serve {
            child,
            udp: udp.expect("UDP listener"),
        }
    }

    async fn ua(&self, user: &str) -> Ua {
        let ua = Ua::connect(UaConfig::new(
            Transport::Udp,
            self.udp,
            DOMAIN,
            user,
            PASSWORD,
        ))
        .await
        .expect("ua");
        ua.auto_answer(Method::Message, 200);
        let r = ua.register(3600).await.expect("register");
        assert_eq!(r.status, 200);
        ua
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_on(data: &Path, args: &[&str]) -> String {
    let o = Command::new(support::binary())
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cli");
    assert!(o.status.success(), "switchboard {args:?}: {}", out_text(&o));
    text(&o.stdout)
}

fn search_on(data: &Path) -> Vec<Value> {
    serde_json::from_str(&cli_on(data, &["archive", "search", "--json"])).expect("json")
}

/// A data directory with alice and bob, archiving on for internal IM.
fn provision(data: &Path) {
    cli_on(data, &["domain", "add", DOMAIN]);
    for u in ["alice", "bob"] {
        let mut c = Command::new(support::binary());
        c.arg("--data")
            .arg(data)
            .args(["user", "add", &addr(u), "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = c.spawn().expect("user add");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("password");
        assert!(child.wait().expect("wait").success());
    }
    cli_on(data, &["archive", "config", "set", "--enabled", "on"]);
    cli_on(
        data,
        &["archive", "policy", "set", "--global", "--internal", "on"],
    );
}

/// Runs a server on `data` (its clock shifted by `fake_offset`, e.g. "-3d"),
/// has alice send `texts` to bob, and waits until the archive holds
/// `expect_total` records.
async fn talk(data: &Path, fake_offset: Option<&str>, texts: &[&str], expect_total: usize) {
    let serve = Serve::start(data, fake_offset);
    let alice = serve.ua("alice").await;
    let _bob = serve.ua("bob").await;
    for t in texts {
        let r = alice
            .send_message(uri("bob"), "text/plain", *t)
            .await
            .expect("send");
        assert_eq!(r.status, 200, "{}", response_trace(&r));
    }
    let deadline = Instant::now() + WAIT;
    while search_on(data).len() < expect_total {
        assert!(
            Instant::now() < deadline,
            "{texts:?} not archived: {}",
            pretty(&search_on(data))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn texts_on(data: &Path) -> Vec<String> {
    search_on(data).iter().map(|r| text(&body_of(r))).collect()
}

/// Records made by a server whose wall clock is 3 days behind (libfaketime)
/// are old for real: `archive purge` with a 1-day retention removes them and
/// keeps today's, the chain verifies from the new anchor; and the server's
/// own retention job does the same by itself at the purge hour.
#[tokio::test]
async fn records_older_than_the_retention_are_purged_end_to_end() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: apt-get install faketime"
    );
    // The CLI's purge.
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    provision(data);
    talk(
        data,
        Some("-3d"),
        &["three days ago 1", "three days ago 2"],
        2,
    )
    .await;
    let now = support_now_ms();
    for r in search_on(data) {
        let age = now - r["at_ms"].as_i64().unwrap_or(now);
        assert!(
            (2 * 86_400_000..4 * 86_400_000).contains(&age),
            "made under a clock 3 days behind: age {age} ms\n{r:#}"
        );
    }
    talk(data, None, &["today"], 3).await;
    let out = cli_on(data, &["archive", "purge"]);
    assert!(
        out.contains("purged 0 records older than 14 days"),
        "default retention keeps 3-day-old records: {out}"
    );
    cli_on(data, &["archive", "config", "set", "--retention-days", "1"]);
    let out = cli_on(data, &["archive", "purge"]);
    assert!(out.contains("purged 2 records older than 1 days"), "{out}");
    assert_eq!(texts_on(data), vec!["today"]);
    let v = cli_on(data, &["archive", "verify"]);
    assert!(
        v.contains("checked 1 records from anchor #2") && v.contains("archive intact"),
        "{v}"
    );
    let st: Value =
        serde_json::from_str(&cli_on(data, &["archive", "status", "--json"])).expect("status");
    assert!(
        st["anchor"].as_str().unwrap_or("").starts_with("2:"),
        "{st:#}"
    );
    // The chain goes on from there.
    talk(data, None, &["tomorrow's news"], 2).await;
    let v = cli_on(data, &["archive", "verify"]);
    assert!(v.contains("archive intact"), "{v}");

    // The server's retention job, at the purge hour.
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    provision(data);
    cli_on(data, &["archive", "config", "set", "--retention-days", "1"]);
    talk(
        data,
        Some("-3d"),
        &["old for the job 1", "old for the job 2"],
        2,
    )
    .await;
    let now = time::OffsetDateTime::now_utc();
    if now.minute() == 59 && now.second() > 45 {
        // Not across an hour boundary.
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    let hour = time::OffsetDateTime::now_utc().hour().to_string();
    cli_on(data, &["archive", "config", "set", "--purge-hour", &hour]);
    {
        let _serve = Serve::start(data, None);
        let deadline = Instant::now() + WAIT;
        while !search_on(data).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the retention job did not purge at the purge hour ({hour}:00 UTC): {}",
                pretty(&search_on(data))
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let v = cli_on(data, &["archive", "verify"]);
    assert!(
        v.contains("checked 0 records from anchor #2") && v.contains("archive intact"),
        "{v}"
    );
}

/// A head the server logged before retention purged its record (records
/// made under a clock 3 days behind, a 1-day retention): `verify
/// --expect-head` reports it as purged and not checkable (exit 3), not as
/// records cut from the end; a head newer than the anchor is still checked.
#[tokio::test]
async fn verify_reports_an_expected_head_purged_by_retention() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: apt-get install faketime"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    provision(data);
    talk(data, Some("-3d"), &["aged 1", "aged 2"], 2).await;
    let status = |data: &Path| -> Value {
        serde_json::from_str(&cli_on(data, &["archive", "status", "--json"])).expect("status")
    };
    let old_head = status(data)["head"].as_str().expect("head").to_owned();
    assert!(old_head.starts_with("2:"), "{old_head}");
    talk(data, None, &["fresh 3"], 3).await;
    let new_head = status(data)["head"].as_str().expect("head").to_owned();
    assert!(new_head.starts_with("3:"), "{new_head}");
    cli_on(data, &["archive", "config", "set", "--retention-days", "1"]);
    let out = cli_on(data, &["archive", "purge"]);
    assert!(out.contains("purged 2 records"), "{out}");

    let verify = |args: &[&str]| -> Output {
        Command::new(support::binary())
            .arg("--data")
            .arg(data)
            .args(["archive", "verify"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("verify")
    };
    let o = verify(&["--expect-head", &old_head]);
    assert_eq!(o.status.code(), Some(3), "{}", out_text(&o));
    let out = text(&o.stdout);
    assert!(
        out.contains("NOT CHECKED: the expected head #2 was purged by retention")
            && !out.contains("TAMPERING"),
        "{}",
        out_text(&o)
    );
    assert!(
        text(&o.stderr).contains("could not be checked: retention has purged it"),
        "{}",
        out_text(&o)
    );
    let o = verify(&["--expect-head", &new_head]);
    assert!(
        o.status.success() && text(&o.stdout).contains("archive intact"),
        "{}",
        out_text(&o)
    );
    let o = verify(&["--expect-head", "4:abcd"]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(
        text(&o.stdout).contains("TAMPERING: the expected head #4 is missing"),
        "{}",
        out_text(&o)
    );
}

// ---------------------------------------------------------------------------
// Tamper evidence
// ---------------------------------------------------------------------------

/// One stored row of `archive_records`, as it is in the file.
#[derive(Debug, Clone)]
struct Row(BTreeMap<String, RowValue>);

#[derive(Debug, Clone, PartialEq)]
enum RowValue {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

const COLUMNS: [&str; 13] = [
    "seq",
    "conversation",
    "kind",
    "at_ms",
    "sender",
    "participants",
    "content_type",
    "body",
    "text",
    "outcome",
    "external",
    "prev_hash",
    "hash",
];

async fn read_row(conn: &mut SqliteConnection, seq: i64) -> Row {
    use sqlx::Row as _;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM archive_records WHERE seq = ?",
        COLUMNS.join(", ")
    )))
    .bind(seq)
    .fetch_one(conn)
    .await
    .expect("read row");
    let mut m = BTreeMap::new();
    for c in COLUMNS {
        let v = match c {
            "seq" | "at_ms" | "external" => RowValue::Int(row.get::<i64, _>(c)),
            "body" => RowValue::Blob(row.get::<Vec<u8>, _>(c)),
            _ => RowValue::Text(row.get::<String, _>(c)),
        };
        m.insert(c.to_owned(), v);
    }
    Row(m)
}

async fn insert_row(conn: &mut SqliteConnection, row: &Row) {
    let placeholders = vec!["?"; COLUMNS.len()].join(", ");
    let sql = format!(
        "INSERT INTO archive_records ({}) VALUES ({placeholders})",
        COLUMNS.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in COLUMNS {
        q = match &row.0[c] {
            RowValue::Int(i) => q.bind(*i),
            RowValue::Text(t) => q.bind(t.clone()),
            RowValue::Blob(b) => q.bind(b.clone()),
        };
    }
    q.execute(conn).await.expect("insert row");
}

async fn exec(conn: &mut SqliteConnection, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn verify_detects_edits_deletions_insertions_and_a_cut_tail() {
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    for n in 1..=5 {
        send_ok(&alice, "bob", &format!("evidence {n}")).await;
    }
    wait_message(&server, "evidence 5").await;
    assert_eq!(all_records(&server).len(), 5);
    let (ok, out) = verify(&server, &[]);
    assert!(
        ok && out.contains("checked 5 records") && out.contains("archive intact"),
        "{out}"
    );
    let head = status(&server)["head"].as_str().expect("head").to_owned();
    assert!(head.starts_with("5:"), "{head}");
    let (ok, out) = verify(&server, &["--expect-head", &head]);
    assert!(ok, "the recorded head is there: {out}");
    let o = archive_cli(&server, &["verify", "--json"]);
    let j: Value = serde_json::from_slice(&o.stdout).expect("verify --json");
    assert!(o.status.success());
    assert_eq!(j["records"], 5);
    assert_eq!(j["findings"], serde_json::json!([]));

    let data = server.dir.path().to_owned();
    let mut conn = connect(&data).await;

    // 1. A body edited in place.
    let original = read_row(&mut conn, 2).await;
    exec(
        &mut conn,
        "UPDATE archive_records SET body = CAST('nothing to see here' AS BLOB) WHERE seq = 2",
    )
    .await;
    let (ok, out) = verify(&server, &[]);
    assert!(
        !ok && out.contains("record #2 was altered"),
        "an edited body is reported: {out}"
    );
    // Also the searchable text and the outcome.
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 2").await;
    insert_row(&mut conn, &original).await;
    assert_intact(&server, "restored row 2");
    exec(
        &mut conn,
        "UPDATE archive_records SET outcome = 'failed 480' WHERE seq = 3",
    )
    .await;
    let (ok, out) = verify(&server, &[]);
    assert!(!ok && out.contains("record #3 was altered"), "{out}");
    exec(
        &mut conn,
        "UPDATE archive_records SET outcome = 'delivered' WHERE seq = 3",
    )
    .await;
    assert_intact(&server, "restored row 3");

    // 2. A record deleted from the middle.
    let third = read_row(&mut conn, 3).await;
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 3").await;
    let (ok, out) = verify(&server, &[]);
    assert!(
        !ok && out.contains("#3") && out.contains("missing"),
        "a deleted record is reported by number: {out}"
    );
    assert!(out.contains("chain broken before record #4"), "{out}");
    insert_row(&mut conn, &third).await;
    assert_intact(&server, "restored row 3");

    // 3. A forged record inserted at the end, chained to the real head but
    // with a made-up hash (the hash function is public, but not the content).
    let mut forged = read_row(&mut conn, 5).await;
    let head_hash = match &forged.0["hash"] {
        RowValue::Text(h) => h.clone(),
        _ => unreachable!(),
    };
    forged.0.insert("seq".into(), RowValue::Int(6));
    forged
        .0
        .insert("prev_hash".into(), RowValue::Text(head_hash));
    forged
        .0
        .insert("body".into(), RowValue::Blob(b"I never said this".to_vec()));
    forged
        .0
        .insert("text".into(), RowValue::Text("I never said this".into()));
    forged
        .0
        .insert("hash".into(), RowValue::Text("ab".repeat(32)));
    insert_row(&mut conn, &forged).await;
    let (ok, out) = verify(&server, &[]);
    assert!(
        !ok && out.contains("record #6 was altered"),
        "a forged record is reported: {out}"
    );
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 6").await;
    // A record inserted between two others (renumbering is impossible
    // without breaking the chain): seq 3 replaced by a forgery.
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 3").await;
    let mut fake3 = third.clone();
    fake3
        .0
        .insert("body".into(), RowValue::Blob(b"forged middle".to_vec()));
    fake3
        .0
        .insert("text".into(), RowValue::Text("forged middle".into()));
    insert_row(&mut conn, &fake3).await;
    let (ok, out) = verify(&server, &[]);
    assert!(!ok && out.contains("record #3 was altered"), "{out}");
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 3").await;
    insert_row(&mut conn, &third).await;
    assert_intact(&server, "restored the middle");

    // 4. The newest record removed: the chain itself cannot tell, the head
    // recorded earlier can.
    let fifth = read_row(&mut conn, 5).await;
    exec(&mut conn, "DELETE FROM archive_records WHERE seq = 5").await;
    let (ok, out) = verify(&server, &[]);
    assert!(ok, "a cut tail leaves a valid shorter chain: {out}");
    let (ok, out) = verify(&server, &["--expect-head", &head]);
    assert!(
        !ok && out.contains("the expected head #5 is missing"),
        "--expect-head reports the cut: {out}"
    );
    insert_row(&mut conn, &fifth).await;
    let (ok, out) = verify(&server, &["--expect-head", &head]);
    assert!(ok && out.contains("archive intact"), "{out}");
    let o = archive_cli(&server, &["verify", "--expect-head", "5:0000"]);
    assert!(
        !o.status.success() && text(&o.stdout).contains("does not have the expected head hash"),
        "{}",
        out_text(&o)
    );
    let o = archive_cli(&server, &["verify", "--expect-head", "garbage"]);
    assert!(!o.status.success(), "{}", out_text(&o));

    // Search still works after all that editing (the full-text index kept
    // in step through the triggers).
    assert_eq!(search(&server, &["--text", "evidence"]).len(), 5);
    conn.close().await.expect("close");
}

fn row_record(row: &Row) -> switchboard_store::archive::NewArchiveRecord {
    let t = |c: &str| match &row.0[c] {
        RowValue::Text(s) => s.clone(),
        other => panic!("{c}: {other:?}"),
    };
    let i = |c: &str| match &row.0[c] {
        RowValue::Int(n) => *n,
        other => panic!("{c}: {other:?}"),
    };
    switchboard_store::archive::NewArchiveRecord {
        conversation: t("conversation"),
        kind: t("kind"),
        at_ms: i("at_ms"),
        sender: t("sender"),
        participants: serde_json::from_str(&t("participants")).expect("participants"),
        content_type: t("content_type"),
        body: match &row.0["body"] {
            RowValue::Blob(b) => b.clone(),
            other => panic!("body: {other:?}"),
        },
        text: t("text"),
        outcome: t("outcome"),
        external: i("external") != 0,
    }
}

/// Someone who knows the (public) hash function rewrites a record and
/// re-chains everything after it: the chain alone verifies (there is no
/// secret), the head recorded elsewhere does not.
#[tokio::test]
async fn a_rechained_forgery_is_caught_by_the_recorded_head() {
    use switchboard_store::archive::chain_hash;
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    for n in 1..=4 {
        send_ok(&alice, "bob", &format!("rechain {n}")).await;
    }
    wait_message(&server, "rechain 4").await;
    let head = status(&server)["head"].as_str().expect("head").to_owned();
    assert!(head.starts_with("4:"), "{head}");

    let mut conn = connect(server.dir.path()).await;
    let mut prev = match &read_row(&mut conn, 1).await.0["hash"] {
        RowValue::Text(h) => h.clone(),
        _ => unreachable!(),
    };
    for seq in 2..=4 {
        let mut rec = row_record(&read_row(&mut conn, seq).await);
        if seq == 2 {
            rec.body = b"rewritten history".to_vec();
            rec.text = "rewritten history".into();
        }
        let hash = chain_hash(&prev, seq, &rec);
        sqlx::query(
            "UPDATE archive_records SET body = ?, text = ?, prev_hash = ?, hash = ? WHERE seq = ?",
        )
        .bind(rec.body.clone())
        .bind(rec.text.clone())
        .bind(prev.clone())
        .bind(hash.clone())
        .bind(seq)
        .execute(&mut conn)
        .await
        .expect("rewrite");
        prev = hash;
    }
    conn.close().await.expect("close");
    assert_eq!(search(&server, &["--text", "rewritten"]).len(), 1);
    let (ok, out) = verify(&server, &[]);
    assert!(
        ok,
        "a consistent re-chained archive verifies on its own: {out}"
    );
    let (ok, out) = verify(&server, &["--expect-head", &head]);
    assert!(
        !ok && out.contains("record #4 does not have the expected head hash"),
        "the head recorded earlier exposes the rewrite: {out}"
    );
}

/// A forged record with a sequence number at or below the anchor (0 or
/// negative while nothing was purged) shows in searches and exports like any
/// other record, so verification must see it too.
#[tokio::test]
async fn a_record_forged_below_the_chain_is_reported() {
    use switchboard_store::archive::{GENESIS, chain_hash};
    let server = archiving_server(&["alice", "bob"]).await;
    let alice = pager(&server, "alice").await;
    let _bob = pager(&server, "bob").await;
    send_ok(&alice, "bob", "genuine").await;
    wait_message(&server, "genuine").await;
    let mut conn = connect(server.dir.path()).await;
    let mut forged = read_row(&mut conn, 1).await;
    let mut rec = row_record(&forged);
    rec.body = b"forged confession".to_vec();
    rec.text = "forged confession".into();
    rec.at_ms -= 60_000;
    forged.0.insert("seq".into(), RowValue::Int(0));
    forged.0.insert("at_ms".into(), RowValue::Int(rec.at_ms));
    forged
        .0
        .insert("body".into(), RowValue::Blob(rec.body.clone()));
    forged
        .0
        .insert("text".into(), RowValue::Text(rec.text.clone()));
    forged
        .0
        .insert("prev_hash".into(), RowValue::Text(GENESIS.into()));
    forged
        .0
        .insert("hash".into(), RowValue::Text(chain_hash(GENESIS, 0, &rec)));
    insert_row(&mut conn, &forged).await;
    conn.close().await.expect("close");
    let found = search(&server, &["--text", "confession"]);
    assert_eq!(found.len(), 1, "the forgery is visible to searches");
    let (ok, out) = verify(&server, &[]);
    assert!(
        !ok && out.contains("#0"),
        "verify must report the record that searches show: {out}"
    );
}
