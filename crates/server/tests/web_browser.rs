//! The web client in a real browser: Node scripts in `tests/browser/`
//! drive Debian's Chromium (package `chromium`) with Playwright
//! (`playwright-core`, pinned in `tests/browser/package-lock.json`) against
//! the real binary: sign-in (and a wrong password's error), contacts with
//! live presence, one-to-one and group chat, invitations, unread counts,
//! sign-out; and a web user chatting with a SIP user driven from here with
//! the test user agent.
//!
//! Node, npm and Chromium must be installed (`scripts/test` installs them);
//! a missing one fails the test with the package to install, it is never
//! skipped. `npm ci` runs in `tests/browser/` when its `node_modules` is
//! missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::interop::{ProcessGuard, require_program};
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::{HeaderName, Method};
use switchboard_testua::Transport;

/// The browser tests run one at a time: each drives Chromium, heavy on a
/// small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Longest run of one Node script.
const NODE_TIMEOUT: Duration = Duration::from_secs(150);

/// The Node project of the browser tests.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The programs the browser tests need.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
}

/// Finds Node and Chromium, and installs the Node project's dependencies
/// (`npm ci`, from the committed lock file) when they are missing.
fn tools() -> Tools {
    let node = require_program("node", "NODE", "nodejs");
    let npm = require_program("npm", "NPM", "npm");
    let chromium = require_program("chromium", "CHROMIUM", "chromium");
    let dir = browser_dir();
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let out = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("could not run `{} ci`: {e}", npm.display()));
        assert!(
            out.status.success(),
            "`npm ci` in {} failed ({}):\n{}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Tools { node, chromium }
}

/// `node SCRIPT` in the Node project, told where the server is and who
/// its users are.
fn node_script(tools: &Tools, server: &Server, users: &[&str], script: &str) -> Command {
    let mut cmd = Command::new(&tools.node);
    cmd.arg(script)
        .current_dir(browser_dir())
        .env("SWITCHBOARD_URL", format!("http://{}", server.http))
        .env("SWITCHBOARD_USERS", users.join(","))
        .env("SWITCHBOARD_PASSWORD", PASSWORD)
        .env("SWITCHBOARD_DOMAIN", DOMAIN)
        .env("CHROMIUM", &tools.chromium)
        .env("SWITCHBOARD_ARTIFACTS", artifacts_dir())
        .env("NO_COLOR", "1");
    cmd
}

/// Where the browser tests leave screenshots of the client (kept after the
/// run, under the target directory).
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-client");
    std::fs::create_dir_all(&dir).expect("artefact directory");
    dir
}

/// Waits for a Node script to end and fails with its output unless it
/// succeeded.
fn expect_success(name: &str, node: &mut ProcessGuard) {
    let status = node.wait_exit(NODE_TIMEOUT);
    let output = node.lines().join("\n");
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} failed ({}):\n{output}",
        status.map_or_else(
            || format!("killed after {NODE_TIMEOUT:?}"),
            |s| s.to_string()
        )
    );
}

#[test]
fn web_client_in_chromium() {
    let _serial = SERIAL.blocking_lock();
    let tools = tools();
    let users = ["alice", "bob", "carol"];
    let server = Server::with_users(&users);
    let mut node = ProcessGuard::spawn(
        "node web.test.mjs",
        node_script(&tools, &server, &users, "web.test.mjs"),
        false,
        None,
    );
    expect_success("the web client's browser tests (web.test.mjs)", &mut node);
    let shot = artifacts_dir().join("web-client-group-chat.png");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} is not a screenshot",
        shot.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_user_and_sip_user_chat_and_see_each_others_presence() {
    const SIP_TEXT: &str = "Hello from a SIP phone";
    const WEB_REPLY: &str = "Hello back from the browser";
    let _serial = SERIAL.lock().await;
    let tools = tokio::task::block_in_place(tools);
    let users = ["alice", "dave"];
    let server = Server::with_users(&users);
    let mut cmd = node_script(&tools, &server, &users, "sip.test.mjs");
    let files = tempfile::tempdir().expect("temp dir");
    let (go, done) = (files.path().join("go"), files.path().join("done"));
    cmd.env("SWITCHBOARD_GO_FILE", &go)
        .env("SWITCHBOARD_DONE_FILE", &done);
    cmd.env("SWITCHBOARD_SIP_USER", "dave")
        .env("SWITCHBOARD_SIP_TEXT", SIP_TEXT)
        .env("SWITCHBOARD_WEB_REPLY", WEB_REPLY);
    let mut node = ProcessGuard::spawn("node sip.test.mjs", cmd, false, None);
    let ready = tokio::task::block_in_place(|| {
        node.wait_for_line(Duration::from_secs(60), |l| l.trim() == "READY")
    });
    assert!(
        ready.is_some(),
        "alice did not get ready in the browser:\n{}",
        node.lines().join("\n")
    );

    // dave's SIP phone registers and writes to alice, who is only on the web.
    let dave = server.registered("dave", Transport::Udp).await;
    let resp = dave
        .send_message(format!("sip:alice@{DOMAIN}"), "text/plain", SIP_TEXT)
        .await
        .expect("an answer to the MESSAGE");
    assert_eq!(
        resp.status, 200,
        "alice's web session took the message: {resp:?}"
    );

    // alice answers in the browser (her typing comes first as isComposing).
    let reply = loop {
        let m = dave
            .expect_request(Method::Message, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no reply from the browser at the SIP phone ({e}); browser output:\n{}",
                    node.lines().join("\n")
                )
            });
        m.respond(200).await.expect("answer the MESSAGE");
        let content_type = m
            .request
            .headers
            .get(&HeaderName::ContentType)
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.contains("im-iscomposing") {
            break m;
        }
    };
    assert_eq!(reply.body_text(), WEB_REPLY);

    // dave watches alice's presence: Available (signed in on the web
    // only), then Busy when she chooses it in the browser.
    let (sub, _dialog) = dave
        .subscribe(
            format!("sip:alice@{DOMAIN}"),
            "presence",
            "application/pidf+xml",
            600,
        )
        .await
        .expect("SUBSCRIBE to alice's presence");
    assert_eq!(sub.status, 200, "{sub:?}");
    let pidf = |busy: bool| {
        move |body: &str| {
            body.contains("<basic>open</basic>") && body.contains("<rpid:busy/>") == busy
        }
    };
    let first = next_notify_body(&dave).await;
    assert!(pidf(false)(&first), "alice is not shown Available: {first}");
    std::fs::write(&go, b"").expect("go file");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let body = next_notify_body(&dave).await;
        if pidf(true)(&body) {
            break;
        }
        seen.push(body);
        assert!(
            std::time::Instant::now() < deadline,
            "alice never shown Busy; NOTIFYs: {seen:#?}\nbrowser output:\n{}",
            node.lines().join("\n")
        );
    }
    std::fs::write(&done, b"").expect("done file");
    tokio::task::block_in_place(|| {
        expect_success("the web and SIP browser test (sip.test.mjs)", &mut node);
    });
}

/// The body of `ua`'s next NOTIFY (answered 200), skipping other requests.
async fn next_notify_body(ua: &switchboard_testua::Ua) -> String {
    let n = ua
        .expect_request(Method::Notify, Duration::from_secs(30))
        .await
        .expect("a NOTIFY");
    n.respond(200).await.expect("answer the NOTIFY");
    n.body_text()
}
