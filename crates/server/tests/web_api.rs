//! The HTTP/JSON API end to end against the real binary, over real HTTP on
//! loopback: sign-in and tokens (wrong password, failures slowed down with
//! 429, revocation, expiry), the caller's presence, note and privacy mode,
//! contact lists with levels and groups, blocking, pending watchers, privacy
//! filtering of other users' presence, one-to-one and group conversations
//! (delivery to every web session, offline IM, history, escalation, join,
//! leave, typing, size limit, blocking), the event channel (long poll and
//! WebSocket), the admin endpoints, the per-token request budget, the public
//! presence endpoints (JSON and SVG, caching and CORS), and the OpenAPI
//! description: served, covering every route of the router, valid OpenAPI
//! 3.1 (checked with a pinned Node validator), and matching real responses.
//!
//! The client is a minimal HTTP/1.1 client over a tokio TCP stream (one
//! request per connection), so the test sees exactly what goes on the wire.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ArchiveLock, DOMAIN, PASSWORD, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for something that must happen.
const WAIT: Duration = Duration::from_secs(15);

fn addr(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

/// A response as received.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    /// Header names in lower case, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// What was asked (for messages).
    what: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: the body is not JSON ({e}): {:?}",
                self.what,
                self.text()
            )
        })
    }

    /// Asserts the status and a JSON body; returns the body.
    fn ok(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, got {} {}",
            self.what,
            self.status,
            self.text()
        );
        assert!(
            self.content_type().starts_with("application/json"),
            "{}: content type {:?}",
            self.what,
            self.content_type()
        );
        self.json()
    }

    /// Asserts a status without a body (204).
    fn empty(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, got {} {}",
            self.what,
            self.status,
            self.text()
        );
        assert!(
            self.body.is_empty(),
            "{}: body {:?}",
            self.what,
            self.text()
        );
    }

    /// Asserts an RFC 9457 problem with this status; returns it.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected problem {status}, got {} {}",
            self.what,
            self.status,
            self.text()
        );
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "{}: {}",
            self.what,
            self.text()
        );
        let p = self.json();
        assert_eq!(p["status"], status, "{}: {p}", self.what);
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("/problems/")),
            "{}: {p}",
            self.what
        );
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{}: {p}",
            self.what
        );
        p
    }
}

/// Recorded exchanges, checked against the OpenAPI document.
type Recorder = Arc<Mutex<Vec<Value>>>;

/// Sends one request on a fresh connection and reads the whole response.
async fn exchange(
    server: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let mut raw = req.into_bytes();
    match body {
        Some((ct, b)) => {
            raw.extend_from_slice(
                format!("Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes(),
            );
            raw.extend_from_slice(b);
        }
        None => raw.extend_from_slice(b"\r\n"),
    }
    let what = format!("{method} {path}");
    let read = async {
        let mut s = TcpStream::connect(server).await.expect("connect");
        s.write_all(&raw).await.expect("send request");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read response");
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(90), read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response"));
    parse_response(&buf, what)
}

fn parse_response(buf: &[u8], what: String) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no header end in {:?}",
                String::from_utf8_lossy(buf)
            )
        });
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let nl = rest[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size_text = String::from_utf8_lossy(&rest[at..at + nl]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            at += nl + 2;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        out
    } else {
        match headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            Some(n) => rest[..n.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    Resp {
        status,
        headers,
        body,
        what,
    }
}

/// An API client: the server and, once signed in, a bearer token.
#[derive(Clone)]
struct Api {
    server: SocketAddr,
    token: Option<String>,
    /// Who this client is (for messages).
    user: String,
    recorder: Option<Recorder>,
}

impl Api {
    fn anonymous(server: &Server) -> Api {
        Api {
            server: server.http,
            token: None,
            user: "anonymous".into(),
            recorder: None,
        }
    }

    fn recording(mut self, r: &Recorder) -> Api {
        self.recorder = Some(r.clone());
        self
    }

    fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Resp {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let mut r = exchange(self.server, method, path, &headers, body).await;
        r.what = format!("{method} {path} (as {})", self.user);
        if let Some(rec) = &self.recorder {
            let body = if r.body.is_empty() {
                Value::Null
            } else if r.content_type().contains("json") {
                serde_json::from_slice(&r.body).unwrap_or(Value::Null)
            } else {
                Value::String(r.text())
            };
            rec.lock().expect("recorder").push(json!({
                "method": method,
                "path": path,
                "status": r.status,
                "content_type": r.header("content-type"),
                "body": body,
            }));
        }
        r
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        match body {
            Some(b) => {
                let bytes = serde_json::to_vec(&b).expect("json");
                self.send(method, path, &[], Some(("application/json", &bytes)))
                    .await
            }
            None => self.send(method, path, &[], None).await,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }
    async fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(body)).await
    }
    async fn put_empty(&self, path: &str) -> Resp {
        self.call("PUT", path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }
    async fn post_empty(&self, path: &str) -> Resp {
        self.call("POST", path, None).await
    }
    async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }

    /// Polls the event channel once, without waiting; the session comes
    /// online (a point of presence of its user).
    async fn go_online(&self) {
        self.get("/api/v1/events/poll?timeout=0").await.ok(200);
    }

    /// Waits for an event matching `pred` after `*since`; advances `*since`
    /// past everything read.
    async fn wait_event(
        &self,
        since: &mut u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let batch = self
                .get(&format!("/api/v1/events/poll?since={since}&timeout=2"))
                .await
                .ok(200);
            *since = batch["next"].as_u64().expect("next");
            for e in batch["events"].as_array().expect("events") {
                if pred(e) {
                    return e.clone();
                }
                seen.push(e.clone());
            }
        }
        panic!(
            "{}: no event {what} within {WAIT:?}; saw {}",
            self.user,
            serde_json::to_string_pretty(&seen).unwrap_or_default()
        );
    }
}

/// Signs `user` in (status 201) and returns a client with the token.
async fn sign_in(server: &Server, user: &str) -> Api {
    sign_in_as(server, user, None).await
}

async fn sign_in_as(server: &Server, user: &str, rec: Option<&Recorder>) -> Api {
    let mut anon = Api::anonymous(server);
    if let Some(r) = rec {
        anon = anon.recording(r);
    }
    let s = anon
        .post(
            "/api/v1/sessions",
            json!({"user": user, "password": PASSWORD, "client": "web_api test"}),
        )
        .await
        .ok(201);
    assert_eq!(s["user"], addr(user), "{s}");
    assert_eq!(s["token_type"], "Bearer");
    let token = s["token"].as_str().expect("token");
    Api {
        user: user.to_owned(),
        ..anon.with_token(token)
    }
}

fn users_of(conversation: &Value) -> BTreeSet<String> {
    conversation["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants in {conversation}"))
        .iter()
        .map(|p| p["user"].as_str().expect("user").to_owned())
        .collect()
}

fn set_of(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| addr(u)).collect()
}

// ---------------------------------------------------------------------------
// Sign-in and tokens.

#[tokio::test]
async fn sign_in_answers_a_token_and_refuses_bad_credentials_and_bad_bodies() {
    let server = Server::with_users(&["alice"]);
    let anon = Api::anonymous(&server);

    // Success: a token that works, and the session it stands for.
    let alice = sign_in(&server, "alice").await;
    let me = alice.get("/api/v1/me").await.ok(200);
    assert_eq!(me["user"], addr("alice"));
    assert_eq!(me["admin"], false);
    assert_eq!(me["session"]["client"], "web_api test");
    assert!(me["session"]["expires_at"].as_i64() > me["session"]["created_at"].as_i64());
    // The full address works as well as the short name.
    let s = anon
        .post(
            "/api/v1/sessions",
            json!({"user": addr("alice"), "password": PASSWORD}),
        )
        .await
        .ok(201);
    assert_eq!(s["client"], Value::Null);

    // Wrong password and unknown user: the same 401.
    let wrong = anon
        .post(
            "/api/v1/sessions",
            json!({"user": "alice", "password": "not the password"}),
        )
        .await;
    let p = wrong.problem(401);
    assert_eq!(p["type"], "/problems/unauthorized");
    assert!(
        wrong
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let unknown = anon
        .post(
            "/api/v1/sessions",
            json!({"user": "nobody", "password": PASSWORD}),
        )
        .await
        .problem(401);
    assert_eq!(unknown["title"], p["title"], "no account enumeration");

    // Bodies that are not what the endpoint takes: 400 naming the field.
    let wrong_type = anon
        .post("/api/v1/sessions", json!({"user": "alice", "password": 5}))
        .await
        .problem(400);
    assert_eq!(wrong_type["field"], "password", "{wrong_type}");
    assert_eq!(wrong_type["type"], "/problems/invalid-field");
    let missing = anon
        .post("/api/v1/sessions", json!({"user": "alice"}))
        .await
        .problem(400);
    assert_eq!(missing["field"], "password", "{missing}");
    let unknown_field = anon
        .post(
            "/api/v1/sessions",
            json!({"user": "alice", "password": PASSWORD, "pasword": "x"}),
        )
        .await
        .problem(400);
    assert_eq!(unknown_field["field"], "pasword", "{unknown_field}");
    let empty = anon
        .post("/api/v1/sessions", json!({"user": "alice", "password": ""}))
        .await
        .problem(400);
    assert_eq!(empty["field"], "password");
    let bad_user = anon
        .post(
            "/api/v1/sessions",
            json!({"user": "not an address@", "password": PASSWORD}),
        )
        .await
        .problem(400);
    assert_eq!(bad_user["field"], "user");
    let syntax = anon
        .send(
            "POST",
            "/api/v1/sessions",
            &[],
            Some(("application/json", b"{\"user\": \"alice\", ")),
        )
        .await
        .problem(400);
    assert!(
        syntax["title"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON"),
        "{syntax}"
    );
    anon.send(
        "POST",
        "/api/v1/sessions",
        &[],
        Some(("text/plain", b"user=alice")),
    )
    .await
    .problem(415);

    // No token, a malformed header, an unknown token: 401 with WWW-Authenticate.
    let none = anon.get("/api/v1/me").await;
    none.problem(401);
    assert!(none.header("www-authenticate").is_some());
    anon.send(
        "GET",
        "/api/v1/me",
        &[("Authorization", "Basic YWxpY2U6eA==")],
        None,
    )
    .await
    .problem(401);
    anon.with_token("made-up")
        .get("/api/v1/me")
        .await
        .problem(401);

    // Unknown API paths are problems too, and so are wrong methods.
    alice.get("/api/v1/no/such/thing").await.problem(404);
    let p = alice
        .patch("/api/v1/me", json!({"availability": "busy"}))
        .await
        .problem(405);
    assert_eq!(p["title"], "This endpoint does not take this method", "{p}");
}

#[tokio::test]
async fn repeated_sign_in_failures_are_slowed_down_with_429_and_retry_after() {
    let server = Server::with_users(&["alice"]);
    let anon = Api::anonymous(&server);
    for i in 0..10 {
        anon.post(
            "/api/v1/sessions",
            json!({"user": "alice", "password": format!("guess {i}")}),
        )
        .await
        .problem(401);
    }
    // The 11th attempt within the minute is refused before the password is
    // looked at, even the right one.
    let r = anon
        .post(
            "/api/v1/sessions",
            json!({"user": "alice", "password": PASSWORD}),
        )
        .await;
    let p = r.problem(429);
    assert_eq!(p["type"], "/problems/rate-limited");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in {:?}", r.headers));
    assert!((1..=61).contains(&retry), "Retry-After {retry}");
}

#[tokio::test]
async fn sessions_can_be_listed_revoked_signed_out_and_expire() {
    let server = Server::with_users(&["alice", "bob"]);
    let first = sign_in(&server, "alice").await;
    let second = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;

    let list = first.get("/api/v1/sessions").await.ok(200);
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{list}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{list}"
    );
    let my_id = first.get("/api/v1/me").await.ok(200)["session"]["id"].clone();
    let other_id = second.get("/api/v1/me").await.ok(200)["session"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        sessions
            .iter()
            .any(|s| s["id"] == my_id && s["current"] == true)
    );

    // Someone else's session id is not found; one's own is revoked.
    bob.delete(&format!("/api/v1/sessions/{other_id}"))
        .await
        .problem(404);
    second.get("/api/v1/me").await.ok(200);
    first
        .delete(&format!("/api/v1/sessions/{other_id}"))
        .await
        .empty(204);
    let revoked = second.get("/api/v1/me").await;
    revoked.problem(401);
    first
        .delete("/api/v1/sessions/0123456789abcdef")
        .await
        .problem(404);
    assert_eq!(
        first.get("/api/v1/sessions").await.ok(200)["sessions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Signing out revokes the caller's own token.
    first.delete("/api/v1/sessions/current").await.empty(204);
    first.get("/api/v1/me").await.problem(401);
    bob.get("/api/v1/me").await.ok(200);

    // An expired session: its token no longer works. (The expiry is moved
    // into the past in the database before the server has seen the token.)
    let late = sign_in(&server, "alice").await;
    let mut db = sqlite(&server).await;
    use sqlx::Connection as _;
    let n = sqlx::query("UPDATE web_sessions SET expires_ms = 1 WHERE user_address = ?")
        .bind(addr("alice"))
        .execute(&mut db)
        .await
        .expect("expire the session")
        .rows_affected();
    assert!(n >= 1);
    db.close().await.expect("close");
    let expired = late.get("/api/v1/me").await.problem(401);
    assert!(
        expired["title"].as_str().unwrap_or("").contains("expired"),
        "{expired}"
    );
    late.get("/api/v1/events/poll?timeout=0").await.problem(401);
}

async fn sqlite(server: &Server) -> sqlx::sqlite::SqliteConnection {
    use sqlx::Connection as _;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.dir.path().join("switchboard.db"))
        .busy_timeout(Duration::from_secs(10));
    sqlx::sqlite::SqliteConnection::connect_with(&opts)
        .await
        .expect("open switchboard.db")
}

#[tokio::test]
async fn each_token_has_a_request_budget_beyond_which_it_gets_429() {
    let server =
        Server::with_users_and_config(&["alice"], "[web]\nrate_per_second = 0.2\nrate_burst = 3\n");
    let a = sign_in(&server, "alice").await;
    for _ in 0..3 {
        a.get("/api/v1/me").await.ok(200);
    }
    let r = a.get("/api/v1/me").await;
    let p = r.problem(429);
    assert_eq!(p["type"], "/problems/rate-limited");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in {:?}", r.headers));
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    // The budget is per token: another sign-in of the same user has its own.
    let b = sign_in(&server, "alice").await;
    b.get("/api/v1/me").await.ok(200);
    // And it refills: after Retry-After seconds the first token works again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    a.get("/api/v1/me").await.ok(200);
}

// ---------------------------------------------------------------------------
// The caller's presence, note and privacy mode.

/// A note set in one session changes only that session's note: another
/// session's chosen Busy is not copied into it, so when that session clears
/// its choice the user is Available again, with the note.
#[tokio::test]
async fn a_note_set_in_one_session_does_not_freeze_another_sessions_state() {
    let server = Server::with_users(&["alice"]);
    let laptop = sign_in(&server, "alice").await;
    let tablet = sign_in(&server, "alice").await;
    laptop
        .put("/api/v1/me/presence", json!({"availability": "busy"}))
        .await
        .ok(200);
    let noted = tablet
        .put("/api/v1/me/note", json!({"note": "Back at 3"}))
        .await
        .ok(200);
    assert_eq!(noted["availability"], "busy", "{noted}");
    assert_eq!(noted["note"], "Back at 3", "{noted}");
    let cleared = laptop.delete("/api/v1/me/presence").await.ok(200);
    assert_eq!(cleared["availability"], "available", "{cleared}");
    assert_eq!(cleared["note"], "Back at 3", "{cleared}");
    let gone = tablet.delete("/api/v1/me/note").await.ok(200);
    assert_eq!(gone["availability"], "available", "{gone}");
    assert_eq!(gone["note"], serde_json::Value::Null, "{gone}");
}

#[tokio::test]
async fn me_presence_can_be_set_read_and_cleared_and_the_note_and_privacy_mode_too() {
    let server = Server::with_users(&["alice"]);
    let alice = sign_in(&server, "alice").await;

    // Not online yet: offline.
    let p = alice.get("/api/v1/me/presence").await.ok(200);
    assert_eq!(p["availability"], "offline", "{p}");

    let set = alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "activity": "in-a-meeting", "note": "Budget review"}),
        )
        .await
        .ok(200);
    assert_eq!(set["availability"], "busy", "{set}");
    assert_eq!(set["label"], "Busy");
    assert_eq!(set["activity"], "in-a-meeting");
    assert_eq!(set["note"], "Budget review");
    let got = alice.get("/api/v1/me/presence").await.ok(200);
    assert_eq!(got, set);
    let me = alice.get("/api/v1/me").await.ok(200);
    assert_eq!(me["presence"], set);

    // Refusals name the field.
    for (body, field) in [
        (json!({"availability": "sleepy"}), "availability"),
        (json!({"availability": "offline"}), "availability"),
        (
            json!({"availability": "away", "activity": "napping"}),
            "activity",
        ),
        (
            json!({"availability": "away", "note": "x".repeat(501)}),
            "note",
        ),
        (json!({"availability": "away", "mood": "happy"}), "mood"),
        (json!({"activity": "in-a-call"}), "availability"),
    ] {
        let p = alice
            .put("/api/v1/me/presence", body.clone())
            .await
            .problem(400);
        assert_eq!(p["field"], field, "{body} → {p}");
    }

    // A new availability without a note keeps the note.
    let dnd = alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "do-not-disturb"}),
        )
        .await
        .ok(200);
    assert_eq!(dnd["availability"], "do-not-disturb");
    assert_eq!(dnd["note"], "Budget review");

    // The note alone.
    let noted = alice
        .put("/api/v1/me/note", json!({"note": "Back at 3"}))
        .await
        .ok(200);
    assert_eq!(noted["note"], "Back at 3");
    assert_eq!(noted["availability"], "do-not-disturb");
    alice
        .put("/api/v1/me/note", json!({"note": "x".repeat(501)}))
        .await
        .problem(400);
    let cleared = alice.delete("/api/v1/me/note").await.ok(200);
    assert_eq!(cleared["note"], Value::Null, "{cleared}");
    assert_eq!(cleared["availability"], "do-not-disturb");

    // Back to automatic: available while the session is online.
    let auto = alice.delete("/api/v1/me/presence").await.ok(200);
    assert_eq!(auto["availability"], "available", "{auto}");
    assert_eq!(auto["activity"], Value::Null);

    // Privacy mode.
    assert_eq!(
        alice.get("/api/v1/me/privacy").await.ok(200),
        json!({"privacy_mode": false})
    );
    assert_eq!(
        alice
            .put("/api/v1/me/privacy", json!({"privacy_mode": true}))
            .await
            .ok(200),
        json!({"privacy_mode": true})
    );
    assert_eq!(
        alice.get("/api/v1/me/privacy").await.ok(200),
        json!({"privacy_mode": true})
    );
    let p = alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": "yes"}))
        .await
        .problem(400);
    assert_eq!(p["field"], "privacy_mode");
    alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": false}))
        .await
        .ok(200);
    assert_eq!(
        alice.get("/api/v1/me/privacy").await.ok(200),
        json!({"privacy_mode": false})
    );
}

#[tokio::test]
async fn an_idle_browser_turns_available_into_away_after_the_configured_time() {
    let server =
        Server::with_users_and_config(&["alice", "bob"], "[presence]\naway_after_seconds = 2\n");
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let idle = alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "available", "idle": true}),
        )
        .await
        .ok(200);
    assert_eq!(
        (idle["availability"].as_str(), idle["idle"].as_bool()),
        (Some("available"), Some(true)),
        "{idle}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = bob.get("/api/v1/presence/alice").await.ok(200);
        if seen["availability"] == "away" {
            assert_eq!(seen["idle"], false);
            break;
        }
        assert!(Instant::now() < deadline, "still {seen}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Input again: available, not idle.
    let back = alice
        .put("/api/v1/me/presence", json!({"availability": "available"}))
        .await
        .ok(200);
    assert_eq!(
        (back["availability"].as_str(), back["idle"].as_bool()),
        (Some("available"), Some(false))
    );
    // A state the user chose is shown as chosen, idle or not.
    let busy = alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "idle": true}),
        )
        .await
        .ok(200);
    assert_eq!(busy["availability"], "busy");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        bob.get("/api/v1/presence/alice").await.ok(200)["availability"],
        "busy"
    );
}

// ---------------------------------------------------------------------------
// Contact lists.

#[tokio::test]
async fn contacts_groups_and_the_blocked_list_can_be_managed() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let alice = sign_in(&server, "alice").await;

    // Add without a body: no group, default level.
    let bob = alice.put_empty("/api/v1/contacts/bob").await.ok(201);
    assert_eq!(bob["user"], addr("bob"));
    assert_eq!(bob["group"], Value::Null);
    assert_eq!(bob["level"], Value::Null);
    assert_eq!(bob["access"], "allowed");
    assert_eq!(bob["presence"]["availability"], "offline");
    // Update: group and level; a field left out keeps its value; null clears.
    let bob = alice
        .put(
            &format!("/api/v1/contacts/{}", addr("bob")),
            json!({"group": "Team", "level": "workgroup"}),
        )
        .await
        .ok(200);
    assert_eq!(
        (bob["group"].as_str(), bob["level"].as_str()),
        (Some("Team"), Some("workgroup"))
    );
    let bob = alice
        .put("/api/v1/contacts/bob", json!({"level": null}))
        .await
        .ok(200);
    assert_eq!(
        (bob["group"].as_str(), bob["level"].clone()),
        (Some("Team"), Value::Null)
    );
    for level in ["external", "colleagues", "family", "workgroup"] {
        let c = alice
            .put("/api/v1/contacts/bob", json!({"level": level}))
            .await
            .ok(200);
        assert_eq!(c["level"], level);
    }

    // Refusals.
    let p = alice
        .put("/api/v1/contacts/carol", json!({"level": "best-friends"}))
        .await
        .problem(400);
    assert_eq!(p["field"], "level");
    let p = alice
        .put("/api/v1/contacts/carol", json!({"group": ""}))
        .await
        .problem(400);
    assert_eq!(p["field"], "group");
    let p = alice
        .put("/api/v1/contacts/carol", json!({"colour": "red"}))
        .await
        .problem(400);
    assert_eq!(p["field"], "colour");
    let p = alice.put_empty("/api/v1/contacts/alice").await.problem(400);
    assert_eq!(p["field"], "contact");

    // Reading.
    let list = alice.get("/api/v1/contacts").await.ok(200);
    assert_eq!(list["groups"], json!(["Team"]));
    assert_eq!(list["contacts"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["contacts"][0]["user"], addr("bob"));
    let one = alice.get("/api/v1/contacts/bob").await.ok(200);
    assert_eq!(one["group"], "Team");
    alice.get("/api/v1/contacts/carol").await.problem(404);

    // Groups.
    let groups = alice.get("/api/v1/groups").await.ok(200);
    assert_eq!(groups["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(groups["groups"][0]["name"], "Team");
    assert_eq!(groups["groups"][0]["contacts"], 1);
    let friends = alice
        .post("/api/v1/groups", json!({"name": "Friends"}))
        .await
        .ok(201);
    assert_eq!(friends["name"], "Friends");
    assert_eq!(friends["contacts"], 0);
    alice
        .post("/api/v1/groups", json!({"name": "Friends"}))
        .await
        .problem(409);
    let p = alice
        .post("/api/v1/groups", json!({"name": "  "}))
        .await
        .problem(400);
    assert_eq!(p["field"], "name");
    let renamed = alice
        .put("/api/v1/groups/Team", json!({"name": "Core team"}))
        .await
        .ok(200);
    assert_eq!(renamed["name"], "Core team");
    assert_eq!(
        alice.get("/api/v1/contacts/bob").await.ok(200)["group"],
        "Core team",
        "contacts move with their group"
    );
    alice
        .put("/api/v1/groups/Nope", json!({"name": "Other"}))
        .await
        .problem(404);
    alice
        .put("/api/v1/groups/Friends", json!({"name": "Core team"}))
        .await
        .problem(409);
    let names: Vec<Value> = alice.get("/api/v1/groups").await.ok(200)["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Core team"), json!("Friends")]);
    alice.delete("/api/v1/groups/Friends").await.empty(204);
    alice.delete("/api/v1/groups/Core%20team").await.empty(204);
    assert_eq!(
        alice.get("/api/v1/contacts/bob").await.ok(200)["group"],
        Value::Null,
        "contacts of a removed group stay, ungrouped"
    );
    alice.delete("/api/v1/groups/Friends").await.problem(404);
    assert_eq!(
        alice.get("/api/v1/groups").await.ok(200)["groups"],
        json!([])
    );

    // Removing.
    alice.delete("/api/v1/contacts/bob").await.empty(204);
    alice.delete("/api/v1/contacts/bob").await.problem(404);
    assert_eq!(
        alice.get("/api/v1/contacts").await.ok(200)["contacts"],
        json!([])
    );

    // Blocking.
    assert_eq!(
        alice.get("/api/v1/blocked").await.ok(200)["blocked"],
        json!([])
    );
    alice.put_empty("/api/v1/blocked/carol").await.empty(204);
    let blocked = alice.get("/api/v1/blocked").await.ok(200);
    assert_eq!(
        blocked["blocked"].as_array().map(Vec::len),
        Some(1),
        "{blocked}"
    );
    assert_eq!(blocked["blocked"][0]["user"], addr("carol"));
    // Blocking someone does not add them to the list.
    alice.get("/api/v1/contacts/carol").await.problem(404);
    assert_eq!(
        alice.get("/api/v1/contacts").await.ok(200)["contacts"],
        json!([])
    );
    alice.delete("/api/v1/contacts/carol").await.problem(404);
    alice.delete("/api/v1/blocked/carol").await.empty(204);
    assert_eq!(
        alice.get("/api/v1/blocked").await.ok(200)["blocked"],
        json!([])
    );
    alice.delete("/api/v1/blocked/carol").await.problem(404);
    alice.put_empty("/api/v1/blocked/alice").await.problem(400);
}

/// The names in `GET /contacts`.
async fn contact_names(api: &Api) -> BTreeSet<String> {
    api.get("/api/v1/contacts").await.ok(200)["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["user"].as_str().expect("user").to_owned())
        .collect()
}

/// The names in `GET /blocked`.
async fn blocked_names(api: &Api) -> BTreeSet<String> {
    api.get("/api/v1/blocked").await.ok(200)["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .map(|c| c["user"].as_str().expect("user").to_owned())
        .collect()
}

/// The names in `GET /watchers/pending`.
async fn pending_names(api: &Api) -> BTreeSet<String> {
    api.get("/api/v1/watchers/pending").await.ok(200)["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|c| c["user"].as_str().expect("user").to_owned())
        .collect()
}

/// How `who` sees alice: (availability, access).
async fn view_of_alice(who: &Api) -> (String, String) {
    let seen = who.get("/api/v1/presence/alice").await.ok(200);
    (
        seen["availability"].as_str().unwrap_or_default().to_owned(),
        seen["access"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn blocking_then_unblocking_a_stranger_with_privacy_mode_on_lets_nobody_in() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let carol = sign_in(&server, "carol").await;
    let dave = sign_in(&server, "dave").await;
    alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "note": "Budget review"}),
        )
        .await
        .ok(200);
    alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": true}))
        .await
        .ok(200);
    alice
        .put("/api/v1/contacts/bob", json!({"group": "Team"}))
        .await
        .ok(201);
    // Carol watches alice through her own list: a pending watcher of alice's.
    carol.put_empty("/api/v1/contacts/alice").await.ok(201);
    let pending = || ("offline".to_owned(), "pending".to_owned());
    assert_eq!(view_of_alice(&carol).await, pending());
    assert_eq!(pending_names(&alice).await, set_of(&["carol"]));

    // Blocked: offline, decided (no longer pending), but not a contact.
    alice.put_empty("/api/v1/blocked/carol").await.empty(204);
    assert_eq!(
        view_of_alice(&carol).await,
        ("offline".to_owned(), "allowed".to_owned())
    );
    assert_eq!(blocked_names(&alice).await, set_of(&["carol"]));
    assert_eq!(contact_names(&alice).await, set_of(&["bob"]));
    alice.get("/api/v1/contacts/carol").await.problem(404);
    assert_eq!(pending_names(&alice).await, set_of(&[]));
    assert_eq!(
        alice.get("/api/v1/groups").await.ok(200)["groups"][0]["contacts"],
        1
    );

    // Unblocked: exactly as before the block. Carol waits again, sees
    // nothing, and never made it into alice's list.
    alice.delete("/api/v1/blocked/carol").await.empty(204);
    assert_eq!(view_of_alice(&carol).await, pending());
    let entry = carol.get("/api/v1/contacts/alice").await.ok(200);
    assert_eq!(
        (entry["access"].as_str(), entry["presence"]["note"].clone()),
        (Some("pending"), Value::Null),
        "{entry}"
    );
    assert_eq!(contact_names(&alice).await, set_of(&["bob"]));
    alice.get("/api/v1/contacts/carol").await.problem(404);
    assert_eq!(blocked_names(&alice).await, set_of(&[]));
    assert_eq!(pending_names(&alice).await, set_of(&["carol"]));
    alice.delete("/api/v1/blocked/carol").await.problem(404);

    // A listed contact: blocking keeps them listed, in their group, and
    // unblocking gives them the default level back.
    let allowed_busy = ("busy".to_owned(), "allowed".to_owned());
    assert_eq!(view_of_alice(&bob).await, allowed_busy);
    alice.put_empty("/api/v1/blocked/bob").await.empty(204);
    assert_eq!(
        view_of_alice(&bob).await,
        ("offline".to_owned(), "allowed".to_owned())
    );
    let entry = alice.get("/api/v1/contacts/bob").await.ok(200);
    assert_eq!(
        (entry["group"].as_str(), entry["level"].as_str()),
        (Some("Team"), Some("blocked"))
    );
    assert_eq!(blocked_names(&alice).await, set_of(&["bob"]));
    alice.delete("/api/v1/blocked/bob").await.empty(204);
    let entry = alice.get("/api/v1/contacts/bob").await.ok(200);
    assert_eq!(
        (entry["group"].as_str(), entry["level"].clone()),
        (Some("Team"), Value::Null)
    );
    assert_eq!(contact_names(&alice).await, set_of(&["bob"]));
    assert_eq!(view_of_alice(&bob).await, allowed_busy);
    assert_eq!(
        bob.get("/api/v1/presence/alice").await.ok(200)["note"],
        "Budget review"
    );

    // Adding a blocked stranger lists them and keeps the block until the
    // level is changed.
    alice.put_empty("/api/v1/blocked/carol").await.empty(204);
    let entry = alice.put_empty("/api/v1/contacts/carol").await.ok(201);
    assert_eq!(entry["level"], "blocked", "{entry}");
    assert_eq!(contact_names(&alice).await, set_of(&["bob", "carol"]));
    alice.delete("/api/v1/blocked/carol").await.empty(204);
    assert_eq!(contact_names(&alice).await, set_of(&["bob", "carol"]));
    assert_eq!(view_of_alice(&carol).await, allowed_busy);
    alice.delete("/api/v1/contacts/carol").await.empty(204);
    assert_eq!(view_of_alice(&carol).await, pending());

    // Blocking a pending watcher does not list them either.
    dave.put_empty("/api/v1/contacts/alice").await.ok(201);
    assert_eq!(pending_names(&alice).await, set_of(&["carol", "dave"]));
    let p = alice
        .post(
            "/api/v1/watchers/pending/dave",
            json!({"decision": "block", "group": "Team"}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "group");
    let blocked = alice
        .post(
            "/api/v1/watchers/pending/dave",
            json!({"decision": "block"}),
        )
        .await
        .ok(200);
    assert_eq!(
        (blocked["user"].as_str(), blocked["level"].as_str()),
        (Some(addr("dave").as_str()), Some("blocked"))
    );
    assert_eq!(
        view_of_alice(&dave).await,
        ("offline".to_owned(), "allowed".to_owned())
    );
    assert_eq!(contact_names(&alice).await, set_of(&["bob"]));
    alice.delete("/api/v1/blocked/dave").await.empty(204);
    assert_eq!(view_of_alice(&dave).await, pending());
    assert_eq!(pending_names(&alice).await, set_of(&["carol", "dave"]));
}

#[tokio::test]
async fn blocks_of_strangers_do_not_use_up_the_contact_list() {
    let limit = 3;
    let server = Server::with_users_and_config(
        &["alice", "bob", "carol"],
        &format!("[presence]\nmax_contacts = {limit}\n"),
    );
    let alice = sign_in(&server, "alice").await;
    for i in 0..limit {
        alice
            .put_empty(&format!("/api/v1/blocked/stranger{i}@partner.example"))
            .await
            .empty(204);
    }
    let p = alice
        .put_empty("/api/v1/blocked/one-more@partner.example")
        .await
        .problem(409);
    assert!(
        p["title"].as_str().is_some_and(|t| t.contains("block")),
        "{p}"
    );
    // The list is still empty, so there is room for contacts.
    assert_eq!(contact_names(&alice).await, set_of(&[]));
    assert_eq!(blocked_names(&alice).await.len(), limit);
    alice.put_empty("/api/v1/contacts/bob").await.ok(201);
    // A blocked stranger added to the list moves from one count to the other.
    alice
        .put_empty("/api/v1/contacts/stranger1@partner.example")
        .await
        .ok(201);
    alice
        .put_empty("/api/v1/blocked/one-more@partner.example")
        .await
        .empty(204);
    // Blocking a contact needs no room among the blocks.
    alice.put_empty("/api/v1/blocked/bob").await.empty(204);
    alice
        .delete("/api/v1/blocked/stranger0@partner.example")
        .await
        .empty(204);
    alice.put_empty("/api/v1/blocked/carol").await.empty(204);
    assert_eq!(
        contact_names(&alice).await,
        set_of(&["bob"])
            .into_iter()
            .chain(["stranger1@partner.example".to_owned()])
            .collect()
    );
}

#[tokio::test]
async fn other_users_presence_is_filtered_by_privacy_and_pending_watchers_are_decided() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave", "erin", "frank"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let carol = sign_in(&server, "carol").await;
    let dave = sign_in(&server, "dave").await;
    let erin = sign_in(&server, "erin").await;
    let frank = sign_in(&server, "frank").await;

    alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "activity": "in-a-meeting", "note": "Budget review"}),
        )
        .await
        .ok(200);

    // A colleague (same organisation, not in the list) sees the note.
    let seen = bob.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(seen["user"], addr("alice"));
    assert_eq!(seen["availability"], "busy", "{seen}");
    assert_eq!(seen["activity"], "in-a-meeting");
    assert_eq!(seen["note"], "Budget review");
    assert_eq!(seen["access"], "allowed");

    // External: availability only.
    alice
        .put("/api/v1/contacts/carol", json!({"level": "external"}))
        .await
        .ok(201);
    let seen = carol
        .get(&format!("/api/v1/presence/{}", addr("alice")))
        .await
        .ok(200);
    assert_eq!(seen["availability"], "busy", "{seen}");
    assert_eq!(seen["activity"], Value::Null);
    assert_eq!(seen["note"], Value::Null);

    // Blocked: offline.
    alice.put_empty("/api/v1/blocked/dave").await.empty(204);
    let seen = dave.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(seen["availability"], "offline", "{seen}");
    assert_eq!(seen["note"], Value::Null);
    assert_eq!(seen["access"], "allowed");

    // Someone who does not exist looks offline.
    let ghost = bob.get("/api/v1/presence/ghost").await.ok(200);
    assert_eq!(ghost["availability"], "offline");

    // Privacy mode on: someone not in the list waits (pending, offline);
    // people in the list keep their level.
    alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": true}))
        .await
        .ok(200);
    let seen = erin.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(seen["availability"], "offline", "{seen}");
    assert_eq!(seen["access"], "pending");
    assert_eq!(
        carol.get("/api/v1/presence/alice").await.ok(200)["availability"],
        "busy"
    );

    // Watchers who put alice in their list are pending watchers of hers.
    let entry = erin.put_empty("/api/v1/contacts/alice").await.ok(201);
    assert_eq!(entry["access"], "pending", "{entry}");
    assert_eq!(entry["presence"]["availability"], "offline");
    bob.put_empty("/api/v1/contacts/alice").await.ok(201);
    let pending = alice.get("/api/v1/watchers/pending").await.ok(200);
    let who: BTreeSet<String> = pending["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|w| w["user"].as_str().expect("user").to_owned())
        .collect();
    assert_eq!(who, set_of(&["bob", "erin"]), "{pending}");

    // Allowing erin at the workgroup level, in a group.
    let p = alice
        .post(
            "/api/v1/watchers/pending/erin",
            json!({"decision": "maybe"}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "decision");
    alice
        .post(
            "/api/v1/watchers/pending/erin",
            json!({"decision": "allow", "level": "blocked"}),
        )
        .await
        .problem(400);
    let allowed = alice
        .post(
            "/api/v1/watchers/pending/erin",
            json!({"decision": "allow", "level": "workgroup", "group": "Team"}),
        )
        .await
        .ok(200);
    assert_eq!(allowed["user"], addr("erin"));
    assert_eq!(allowed["level"], "workgroup");
    assert_eq!(allowed["group"], "Team");
    let seen = erin.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(seen["access"], "allowed", "{seen}");
    assert_eq!(seen["availability"], "busy");
    assert_eq!(seen["note"], "Budget review");
    assert_eq!(
        erin.get("/api/v1/contacts/alice").await.ok(200)["access"],
        "allowed"
    );

    // Blocking bob: he sees her offline, and is in her blocked list.
    let blocked = alice
        .post("/api/v1/watchers/pending/bob", json!({"decision": "block"}))
        .await
        .ok(200);
    assert_eq!(blocked["level"], "blocked");
    let seen = bob.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(
        (seen["availability"].as_str(), seen["access"].as_str()),
        (Some("offline"), Some("allowed"))
    );
    let list = alice.get("/api/v1/blocked").await.ok(200);
    assert!(
        list["blocked"]
            .as_array()
            .expect("blocked")
            .iter()
            .any(|b| b["user"] == addr("bob")),
        "{list}"
    );
    assert_eq!(
        alice.get("/api/v1/watchers/pending").await.ok(200)["pending"],
        json!([])
    );

    // Nobody else is waiting.
    alice
        .post(
            "/api/v1/watchers/pending/frank",
            json!({"decision": "allow"}),
        )
        .await
        .problem(404);
    assert_eq!(
        frank.get("/api/v1/presence/alice").await.ok(200)["access"],
        "pending"
    );
}

// ---------------------------------------------------------------------------
// Conversations.

#[tokio::test]
async fn one_to_one_messages_reach_every_web_session_are_held_offline_and_can_be_refused() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let alice = sign_in(&server, "alice").await;
    let bob1 = sign_in(&server, "bob").await;
    let bob2 = sign_in(&server, "bob").await;
    alice.go_online().await;
    bob1.go_online().await;
    bob2.go_online().await;

    // Starting: with exactly one person.
    let conv = alice
        .post("/api/v1/conversations", json!({"with": "bob"}))
        .await
        .ok(200);
    assert_eq!(conv["kind"], "one_to_one");
    assert_eq!(conv["with"], addr("bob"));
    assert_eq!(conv["escalated_to"], Value::Null);
    let id = conv["id"].as_str().expect("id").to_owned();
    let again = alice
        .post("/api/v1/conversations", json!({"with": addr("bob")}))
        .await
        .ok(200);
    assert_eq!(again["id"], id.as_str(), "the same conversation");
    for (body, field) in [
        (json!({"with": "alice"}), "with"),
        (json!({"with": "nobody"}), "with"),
        (json!({}), "with"),
        (json!({"with": "bob", "participants": ["carol"]}), "with"),
        (json!({"with": "bob", "subject": "x"}), "subject"),
    ] {
        let p = alice
            .post("/api/v1/conversations", body.clone())
            .await
            .problem(400);
        assert_eq!(p["field"], field, "{body} → {p}");
    }

    // Sending: delivered to both of bob's web sessions.
    let sent = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "Hello Bob"}),
        )
        .await
        .ok(201);
    assert_eq!(sent, json!({"conversation": id, "status": "delivered"}));
    for bob in [&bob1, &bob2] {
        let mut since = 0;
        let m = bob
            .wait_event(&mut since, "message from alice", |e| e["type"] == "message")
            .await;
        assert_eq!(m["from"], addr("alice"), "{m}");
        assert_eq!(m["to"], addr("bob"));
        assert_eq!(m["text"], "Hello Bob");
        assert_eq!(m["content_type"], "text/plain");
        assert_eq!(m["conversation"], id.as_str());
        assert!(m["seq"].as_u64().is_some());
    }
    // HTML too.
    alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "<b>bold</b>", "content_type": "text/html"}),
        )
        .await
        .ok(201);

    // Both see the conversation; bob's id is the same one.
    let bobs = bob1.get("/api/v1/conversations").await.ok(200);
    assert!(
        bobs["conversations"]
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["id"] == id.as_str() && c["with"] == addr("alice")),
        "{bobs}"
    );
    let one = bob1
        .get(&format!("/api/v1/conversations/{id}"))
        .await
        .ok(200);
    assert_eq!(one["with"], addr("alice"));

    // History.
    let history = bob1
        .get(&format!("/api/v1/conversations/{id}/messages"))
        .await
        .ok(200);
    assert_eq!(history["conversation"], id.as_str());
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, vec!["Hello Bob", "<b>bold</b>"], "{history}");
    assert_eq!(history["messages"][1]["content_type"], "text/html");
    assert_eq!(history["messages"][0]["from"], addr("alice"));

    // Typing, to bob's sessions.
    let mut since = 0;
    alice
        .post_empty(&format!("/api/v1/conversations/{id}/typing"))
        .await
        .empty(204);
    let t = bob1
        .wait_event(&mut since, "typing", |e| e["type"] == "typing")
        .await;
    assert_eq!(
        (t["from"].as_str(), t["active"].as_bool()),
        (Some(addr("alice").as_str()), Some(true))
    );
    alice
        .post(
            &format!("/api/v1/conversations/{id}/typing"),
            json!({"active": false}),
        )
        .await
        .empty(204);
    let t = bob1
        .wait_event(&mut since, "typing stopped", |e| e["type"] == "typing")
        .await;
    assert_eq!(t["active"], false);

    // Refusals: size, emptiness, content type, other people's conversations.
    let big = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "x".repeat(40_000)}),
        )
        .await
        .problem(413);
    assert_eq!(big["type"], "/problems/too-large");
    let huge = "y".repeat(300 * 1024);
    alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": huge}),
        )
        .await
        .problem(413);
    let p = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "  "}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "text");
    let p = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "x", "content_type": "image/png"}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "content_type");
    let carol = sign_in(&server, "carol").await;
    carol
        .get(&format!("/api/v1/conversations/{id}"))
        .await
        .problem(404);
    carol
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "intrusion"}),
        )
        .await
        .problem(404);
    carol
        .get(&format!("/api/v1/conversations/{id}/messages"))
        .await
        .problem(404);
    alice
        .get("/api/v1/conversations/no-such-id")
        .await
        .problem(404);
    alice
        .post_empty(&format!("/api/v1/conversations/{id}/leave"))
        .await
        .problem(409);

    // Offline IM: carol has no session online; the message is stored, and
    // delivered when a session of hers comes online.
    let to_carol = alice
        .post("/api/v1/conversations", json!({"with": "carol"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stored = alice
        .post(
            &format!("/api/v1/conversations/{to_carol}/messages"),
            json!({"text": "Call me when you are back"}),
        )
        .await
        .ok(201);
    assert_eq!(stored["status"], "stored", "{stored}");
    let mut since = 0;
    let m = carol
        .wait_event(&mut since, "the held message", |e| e["type"] == "message")
        .await;
    assert_eq!(m["text"], "Call me when you are back");
    assert_eq!(m["from"], addr("alice"));

    // Blocked sender: 403.
    bob1.put_empty("/api/v1/blocked/alice").await.empty(204);
    let refused = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "Still there?"}),
        )
        .await
        .problem(403);
    assert_eq!(refused["type"], "/problems/forbidden");
}

#[tokio::test]
async fn group_conversations_start_invite_join_leave_and_carry_messages() {
    let server = Server::with_users(&["alice", "bob", "carol", "dave", "eve", "frank"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let carol = sign_in(&server, "carol").await;
    let dave = sign_in(&server, "dave").await;
    let eve = sign_in(&server, "eve").await;
    let frank = sign_in(&server, "frank").await;
    for u in [&alice, &bob, &carol, &dave] {
        u.go_online().await;
    }
    let (mut bob_since, mut carol_since) = (0, 0);

    // Refusals first.
    for (body, field) in [
        (json!({"participants": []}), "participants"),
        (
            json!({"participants": ["bob", "nobody"]}),
            "participants[1]",
        ),
    ] {
        let p = alice
            .post("/api/v1/conversations", body.clone())
            .await
            .problem(400);
        assert_eq!(p["field"], field, "{body} → {p}");
    }

    let group = alice
        .post(
            "/api/v1/conversations",
            json!({"participants": ["bob", addr("carol"), "alice"]}),
        )
        .await
        .ok(201);
    assert_eq!(group["kind"], "group");
    let gid = group["id"].as_str().expect("id").to_owned();
    let invitations = group["invitations"].as_array().expect("invitations");
    assert_eq!(invitations.len(), 2, "the caller is not invited: {group}");
    assert!(
        invitations
            .iter()
            .all(|i| i["status"] == 200 && i["added"] == true),
        "{group}"
    );
    assert_eq!(users_of(&group), set_of(&["alice", "bob", "carol"]));

    let inv = bob
        .wait_event(&mut bob_since, "invitation", |e| e["type"] == "invitation")
        .await;
    assert_eq!(
        (inv["conversation"].as_str(), inv["from"].as_str()),
        (Some(gid.as_str()), Some(addr("alice").as_str()))
    );

    // Messages reach every member's web sessions.
    let sent = alice
        .post(
            &format!("/api/v1/conversations/{gid}/messages"),
            json!({"text": "Hi all"}),
        )
        .await
        .ok(201);
    assert_eq!(sent, json!({"conversation": gid, "status": "delivered"}));
    for (who, since) in [(&bob, &mut bob_since), (&carol, &mut carol_since)] {
        let m = who
            .wait_event(since, "the group message", |e| {
                e["type"] == "conversation.message" && e["text"] == "Hi all"
            })
            .await;
        assert_eq!(m["conversation"], gid.as_str());
        assert_eq!(m["from"], addr("alice"));
        assert_eq!(m["replay"], false);
    }
    let history = bob
        .get(&format!("/api/v1/conversations/{gid}/messages"))
        .await
        .ok(200);
    assert!(
        history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .any(|m| m["text"] == "Hi all" && m["from"] == addr("alice")),
        "{history}"
    );
    let listed = carol.get("/api/v1/conversations").await.ok(200);
    assert!(
        listed["conversations"]
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["id"] == gid.as_str() && c["kind"] == "group"),
        "{listed}"
    );
    assert_eq!(
        users_of(
            &carol
                .get(&format!("/api/v1/conversations/{gid}"))
                .await
                .ok(200)
        ),
        set_of(&["alice", "bob", "carol"])
    );

    // Adding someone online.
    let added = alice
        .post(
            &format!("/api/v1/conversations/{gid}/participants"),
            json!({"user": "dave"}),
        )
        .await
        .ok(200);
    assert_eq!(added["added"], addr("dave"));
    assert_eq!(users_of(&added), set_of(&["alice", "bob", "carol", "dave"]));
    let p = alice
        .post(
            &format!("/api/v1/conversations/{gid}/participants"),
            json!({"user": "nobody"}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "user");

    // Someone offline cannot be added now, but is invited: once online they join.
    alice
        .post(
            &format!("/api/v1/conversations/{gid}/participants"),
            json!({"user": "eve"}),
        )
        .await
        .problem(409);
    eve.go_online().await;
    let joined = eve
        .post_empty(&format!("/api/v1/conversations/{gid}/join"))
        .await
        .ok(200);
    assert!(users_of(&joined).contains(&addr("eve")), "{joined}");
    // Nobody invited frank.
    frank.go_online().await;
    frank
        .post_empty(&format!("/api/v1/conversations/{gid}/join"))
        .await
        .problem(403);
    frank
        .get(&format!("/api/v1/conversations/{gid}"))
        .await
        .problem(404);
    frank
        .post_empty("/api/v1/conversations/no-such-conference/join")
        .await
        .problem(404);

    // Typing is for one-to-one conversations.
    alice
        .post_empty(&format!("/api/v1/conversations/{gid}/typing"))
        .await
        .problem(409);

    // Leaving.
    bob.post_empty(&format!("/api/v1/conversations/{gid}/leave"))
        .await
        .empty(204);
    bob.get(&format!("/api/v1/conversations/{gid}"))
        .await
        .problem(404);
    bob.post_empty(&format!("/api/v1/conversations/{gid}/leave"))
        .await
        .problem(404);
    let now = alice
        .get(&format!("/api/v1/conversations/{gid}"))
        .await
        .ok(200);
    assert_eq!(users_of(&now), set_of(&["alice", "carol", "dave", "eve"]));
    let _ = dave;
}

#[tokio::test]
async fn adding_a_third_person_escalates_a_one_to_one_conversation() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let carol = sign_in(&server, "carol").await;
    for u in [&alice, &bob, &carol] {
        u.go_online().await;
    }
    let id = alice
        .post("/api/v1/conversations", json!({"with": "bob"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "before"}),
        )
        .await
        .ok(201);
    for (who, field) in [("bob", "user"), ("alice", "user")] {
        let p = alice
            .post(
                &format!("/api/v1/conversations/{id}/participants"),
                json!({"user": who}),
            )
            .await
            .problem(400);
        assert_eq!(p["field"], field);
    }

    let group = alice
        .post(
            &format!("/api/v1/conversations/{id}/participants"),
            json!({"user": "carol"}),
        )
        .await
        .ok(200);
    assert_eq!(group["kind"], "group");
    assert_eq!(group["added"], addr("carol"));
    assert_eq!(users_of(&group), set_of(&["alice", "bob", "carol"]));
    let gid = group["id"].as_str().expect("id").to_owned();
    assert_ne!(gid, id);
    let one = bob
        .get(&format!("/api/v1/conversations/{id}"))
        .await
        .ok(200);
    assert_eq!(one["escalated_to"], gid.as_str(), "{one}");

    // Writing in the one-to-one conversation now goes to the group.
    let sent = alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "after"}),
        )
        .await
        .ok(201);
    assert_eq!(sent, json!({"conversation": gid, "status": "delivered"}));
    for who in [&bob, &carol] {
        let mut since = 0;
        let m = who
            .wait_event(&mut since, "the message in the group", |e| {
                e["type"] == "conversation.message" && e["text"] == "after"
            })
            .await;
        assert_eq!(m["conversation"], gid.as_str());
    }
}

// ---------------------------------------------------------------------------
// The event channel.

/// A minimal WebSocket client (RFC 6455) reading text frames.
struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl WsClient {
    /// Opens `path`: the 101 response's client, or the refusal.
    async fn open(
        server: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, Resp> {
        let mut stream = TcpStream::connect(server).await.expect("connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("send");
        let mut buf = Vec::new();
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake answer")
                .expect("read");
            assert!(n > 0, "connection closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = parse_response(&buf[..end + 4], format!("WebSocket {path}"));
        if head.status != 101 {
            // Read the rest (the problem body).
            let mut rest = buf[end + 4..].to_vec();
            let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
            let mut all = buf[..end + 4].to_vec();
            all.extend_from_slice(&rest);
            return Err(parse_response(&all, format!("WebSocket {path}")));
        }
        assert_eq!(
            head.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "RFC 6455 §1.3"
        );
        Ok(WsClient {
            stream,
            buf: buf[end + 4..].to_vec(),
        })
    }

    async fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = self.stream.read(&mut chunk).await.expect("read frame");
            assert!(got > 0, "the WebSocket closed");
            self.buf.extend_from_slice(&chunk[..got]);
        }
    }

    /// The next frame: opcode and payload.
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        tokio::time::timeout(WAIT, async {
            self.fill(2).await;
            let opcode = self.buf[0] & 0x0f;
            let mut len = u64::from(self.buf[1] & 0x7f);
            let mut at = 2;
            if len == 126 {
                self.fill(4).await;
                len = u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                at = 4;
            } else if len == 127 {
                self.fill(10).await;
                len = u64::from_be_bytes(self.buf[2..10].try_into().expect("8 bytes"));
                at = 10;
            }
            let total = at + len as usize;
            self.fill(total).await;
            let payload = self.buf[at..total].to_vec();
            self.buf.drain(..total);
            (opcode, payload)
        })
        .await
        .expect("a WebSocket frame within the wait")
    }

    /// The next text message (pings and other frames skipped).
    async fn next_text(&mut self) -> Value {
        loop {
            match self.frame().await {
                (0x1, payload) => {
                    return serde_json::from_slice(&payload).expect("a JSON event");
                }
                (0x8, _) => panic!("the WebSocket was closed"),
                _ => {}
            }
        }
    }

    /// Waits for the server's close frame (skipping other frames); returns
    /// its status code.
    async fn closed(&mut self) -> u16 {
        loop {
            if let (0x8, payload) = self.frame().await {
                assert!(payload.len() >= 2, "close frame without a code");
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }

    /// Waits for a text message matching `pred`.
    async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let e = self.next_text().await;
            if pred(&e) {
                return e;
            }
        }
        panic!("no WebSocket event {what}");
    }
}

#[tokio::test]
async fn the_event_channel_works_as_a_websocket_and_as_a_long_poll() {
    let server = Server::with_users(&["alice", "bob"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    let token = alice.token.clone().expect("token");

    // Refusals.
    let no_token = WsClient::open(server.http, "/api/v1/events", &[])
        .await
        .err()
        .expect("no token: refused");
    no_token.problem(401);
    alice.get("/api/v1/events").await.problem(400);
    let p = alice
        .get("/api/v1/events/poll?since=abc")
        .await
        .problem(400);
    assert!(p["title"].as_str().unwrap_or("").contains("query"), "{p}");
    assert_eq!(p["field"], "since", "{p}");
    let p = alice
        .get("/api/v1/events/poll?timeout=-1")
        .await
        .problem(400);
    assert_eq!(p["field"], "timeout", "{p}");
    let p = alice
        .get("/api/v1/events/poll?colour=red")
        .await
        .problem(400);
    assert_eq!(p["field"], "colour", "{p}");
    Api::anonymous(&server)
        .get("/api/v1/events/poll")
        .await
        .problem(401);
    Api::anonymous(&server)
        .get("/api/v1/events/poll?access_token=made-up")
        .await
        .problem(401);

    // The WebSocket, with the token in the query (as browsers do): hello
    // first, then what happens.
    let mut ws = WsClient::open(
        server.http,
        &format!("/api/v1/events?access_token={token}"),
        &[],
    )
    .await
    .unwrap_or_else(|r| panic!("WebSocket refused: {} {}", r.status, r.text()));
    let hello = ws.next_text().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let first_seq = hello["seq"].as_u64().expect("seq");
    assert!(first_seq > 0, "{hello}");
    assert_eq!(hello["user"], addr("alice"));
    let sid = alice.get("/api/v1/me").await.ok(200)["session"]["id"].clone();
    assert_eq!(hello["session"], sid);

    // While the socket is open, alice is online.
    let seen = bob.get("/api/v1/presence/alice").await.ok(200);
    assert_eq!(seen["availability"], "available", "{seen}");
    let sessions = alice.get("/api/v1/sessions").await.ok(200);
    assert_eq!(sessions["sessions"][0]["online"], true, "{sessions}");

    // A message from bob arrives on the socket.
    let id = bob
        .post("/api/v1/conversations", json!({"with": "alice"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    bob.post(
        &format!("/api/v1/conversations/{id}/messages"),
        json!({"text": "ping over websocket"}),
    )
    .await
    .ok(201);
    let m = ws.wait("message", |e| e["type"] == "message").await;
    assert_eq!(m["text"], "ping over websocket");
    assert!(m["seq"].as_u64() > Some(first_seq));

    // Contact list changes and presence of contacts arrive as events.
    alice.put_empty("/api/v1/contacts/bob").await.ok(201);
    ws.wait("contacts.changed", |e| e["type"] == "contacts.changed")
        .await;
    bob.put("/api/v1/me/presence", json!({"availability": "away"}))
        .await
        .ok(200);
    let p = ws
        .wait("bob away", |e| {
            e["type"] == "presence" && e["user"] == addr("bob") && e["availability"] == "away"
        })
        .await;
    assert_eq!(p["label"], "Away");

    // The same mailbox over long poll: everything after a sequence number,
    // and `next` to continue from.
    let all = alice
        .get("/api/v1/events/poll?since=0&timeout=0")
        .await
        .ok(200);
    let events = all["events"].as_array().expect("events");
    assert_eq!(events[0]["type"], "hello");
    assert!(events.iter().any(|e| e["type"] == "message"));
    let next = all["next"].as_u64().expect("next");
    assert_eq!(events.last().map(|e| e["seq"].clone()), Some(json!(next)));
    assert_eq!(all["gap"], false);
    let later = alice
        .get(&format!("/api/v1/events/poll?since={next}&timeout=1"))
        .await
        .ok(200);
    assert_eq!(later["events"], json!([]), "{later}");
    assert_eq!(later["next"], next);
    // The query parameter works as well as the bearer header: the same
    // session's events answer.
    let by_query = Api::anonymous(&server)
        .get(&format!(
            "/api/v1/events/poll?since={next}&timeout=0&access_token={token}"
        ))
        .await
        .ok(200);
    assert_eq!(by_query["next"], next, "{by_query}");

    // Signing out ends the session: the socket is told, then closed at once
    // (well before the periodic token check, every 30 s).
    alice.delete("/api/v1/sessions/current").await.empty(204);
    let closed = ws
        .wait("session.closed", |e| e["type"] == "session.closed")
        .await;
    assert!(closed["reason"].is_string());
    let started = Instant::now();
    assert_eq!(ws.closed().await, 4401);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Revoking a session from another one closes its socket too.
    let first = sign_in(&server, "bob").await;
    let token = first.token.clone().expect("token");
    let mut ws = WsClient::open(
        server.http,
        "/api/v1/events",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
    .unwrap_or_else(|r| panic!("WebSocket refused: {} {}", r.status, r.text()));
    assert_eq!(ws.next_text().await["type"], "hello");
    let sid = first.get("/api/v1/me").await.ok(200)["session"]["id"]
        .as_str()
        .expect("sid")
        .to_owned();
    bob.delete(&format!("/api/v1/sessions/{sid}"))
        .await
        .empty(204);
    assert_eq!(ws.closed().await, 4401);
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_still_gets_the_new_mailbox() {
    let mut server = Server::with_users(&["alice", "bob"]);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    alice.go_online().await;
    let id = bob
        .post("/api/v1/conversations", json!({"with": "alice"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for i in 0..10 {
        bob.post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": format!("message {i}")}),
        )
        .await
        .ok(201);
    }
    let mut since = 0;
    alice
        .wait_event(&mut since, "the last message", |e| e["text"] == "message 9")
        .await;
    assert!(since >= 11, "{since}");

    // The server restarts: tokens stay valid, mailboxes start again. A
    // message written meanwhile is held, and delivered to alice's session
    // when it comes back — with a cursor from the old mailbox.
    server.restart();
    let id = bob
        .post("/api/v1/conversations", json!({"with": "alice"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let held = bob
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "while you were away"}),
        )
        .await
        .ok(201);
    assert_eq!(held["status"], "stored");
    let first = alice
        .get(&format!("/api/v1/events/poll?since={since}&timeout=5"))
        .await
        .ok(200);
    assert_eq!(first["gap"], true, "the client is told to reload: {first}");
    assert_eq!(first["events"][0]["type"], "hello", "{first}");
    let mut since = first["next"].as_u64().expect("next");
    if !first["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["text"] == "while you were away")
    {
        alice
            .wait_event(&mut since, "the held message", |e| {
                e["text"] == "while you were away"
            })
            .await;
    }
}

// ---------------------------------------------------------------------------
// Administration.

#[tokio::test]
async fn admin_endpoints_are_refused_to_users_and_work_for_administrators() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    server.cli_ok(&["user", "admin", &addr("alice"), "on"], None);
    let admin = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    assert_eq!(admin.get("/api/v1/me").await.ok(200)["admin"], true);

    // A user without the role: 403 everywhere, whatever the body.
    let z = format!("/api/v1/admin/users/{}", addr("zoe"));
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/admin/users".into(), None),
        (
            "POST",
            "/api/v1/admin/users".into(),
            Some(json!({"user": addr("zoe"), "password": "long enough"})),
        ),
        ("GET", z.clone(), None),
        ("PATCH", z.clone(), Some(json!({"admin": true}))),
        ("DELETE", z.clone(), None),
        ("GET", "/api/v1/admin/domains".into(), None),
        (
            "POST",
            "/api/v1/admin/domains".into(),
            Some(json!({"name": "other.test"})),
        ),
        ("DELETE", format!("/api/v1/admin/domains/{DOMAIN}"), None),
        ("GET", "/api/v1/admin/policies/im".into(), None),
        (
            "PUT",
            "/api/v1/admin/policies/im/global".into(),
            Some(json!({"offline_im": false})),
        ),
        ("DELETE", "/api/v1/admin/policies/im/global".into(), None),
    ];
    for (method, path, body) in &cases {
        let p = bob.call(method, path, body.clone()).await.problem(403);
        assert_eq!(p["type"], "/problems/forbidden", "{method} {path}");
        Api::anonymous(&server)
            .call(method, path, body.clone())
            .await
            .problem(401);
    }

    // Users.
    let users = admin.get("/api/v1/admin/users").await.ok(200);
    let listed: BTreeMap<String, bool> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["user"].as_str().expect("user").to_owned(),
                u["admin"] == true,
            )
        })
        .collect();
    assert_eq!(listed.get(&addr("alice")), Some(&true), "{users}");
    assert_eq!(listed.get(&addr("bob")), Some(&false));
    let zoe = admin
        .post(
            "/api/v1/admin/users",
            json!({"user": addr("zoe"), "password": "zoe's password", "display_name": "Zoe"}),
        )
        .await
        .ok(201);
    assert_eq!(zoe["user"], addr("zoe"));
    assert_eq!(zoe["display_name"], "Zoe");
    assert_eq!(zoe["admin"], false);
    admin
        .post(
            "/api/v1/admin/users",
            json!({"user": addr("zoe"), "password": "zoe's password"}),
        )
        .await
        .problem(409);
    for (body, field) in [
        (
            json!({"user": addr("yves"), "password": "short"}),
            "password",
        ),
        (
            json!({"user": "yves@unserved.test", "password": "long enough"}),
            "user",
        ),
        (
            json!({"user": "not an address", "password": "long enough"}),
            "user",
        ),
        (
            json!({"user": addr("yves"), "password": "long enough", "role": "x"}),
            "role",
        ),
    ] {
        let p = admin
            .post("/api/v1/admin/users", body.clone())
            .await
            .problem(400);
        assert_eq!(p["field"], field, "{body} → {p}");
    }
    // The new user can sign in.
    let zoe_api = Api::anonymous(&server)
        .post(
            "/api/v1/sessions",
            json!({"user": "zoe", "password": "zoe's password"}),
        )
        .await
        .ok(201);
    let zoe_api = Api::anonymous(&server).with_token(zoe_api["token"].as_str().expect("token"));
    zoe_api.get("/api/v1/me").await.ok(200);
    assert_eq!(admin.get(&z).await.ok(200)["display_name"], "Zoe");
    admin
        .get(&format!("/api/v1/admin/users/{}", addr("nobody")))
        .await
        .problem(404);

    // Changing: display name, role, password (which signs her out).
    let changed = admin.patch(&z, json!({"display_name": null})).await.ok(200);
    assert_eq!(changed["display_name"], Value::Null);
    let changed = admin.patch(&z, json!({"admin": true})).await.ok(200);
    assert_eq!(changed["admin"], true);
    admin
        .patch(&z, json!({"password": "short"}))
        .await
        .problem(400);
    admin
        .patch(&z, json!({"password": "a new password"}))
        .await
        .ok(200);
    zoe_api.get("/api/v1/me").await.problem(401);
    Api::anonymous(&server)
        .post(
            "/api/v1/sessions",
            json!({"user": "zoe", "password": "a new password"}),
        )
        .await
        .ok(201);
    let p = admin
        .patch(
            &format!("/api/v1/admin/users/{}", addr("alice")),
            json!({"admin": false}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "admin");

    // Removing.
    admin.delete(&z).await.empty(204);
    admin.get(&z).await.problem(404);
    admin.delete(&z).await.problem(404);
    admin
        .delete(&format!("/api/v1/admin/users/{}", addr("alice")))
        .await
        .problem(400);

    // Domains.
    let domains = admin.get("/api/v1/admin/domains").await.ok(200);
    assert!(
        domains["domains"]
            .as_array()
            .expect("domains")
            .iter()
            .any(|d| d["name"] == DOMAIN),
        "{domains}"
    );
    let added = admin
        .post("/api/v1/admin/domains", json!({"name": "Other.Test"}))
        .await
        .ok(201);
    assert_eq!(added["name"], "other.test");
    admin
        .post("/api/v1/admin/domains", json!({"name": "other.test"}))
        .await
        .problem(409);
    let p = admin
        .post("/api/v1/admin/domains", json!({"name": "not a domain!"}))
        .await
        .problem(400);
    assert_eq!(p["field"], "name");
    admin
        .delete(&format!("/api/v1/admin/domains/{DOMAIN}"))
        .await
        .problem(409);
    admin
        .delete("/api/v1/admin/domains/other.test")
        .await
        .empty(204);
    admin
        .delete("/api/v1/admin/domains/other.test")
        .await
        .problem(404);

    // Policies.
    let im = admin.get("/api/v1/admin/policies/im").await.ok(200);
    assert_eq!(im["kind"], "im");
    assert_eq!(im["defaults"], json!({"offline_im": true}));
    assert_eq!(im["global"], Value::Null);
    let set = admin
        .put(
            "/api/v1/admin/policies/im/global",
            json!({"offline_im": false}),
        )
        .await
        .ok(200);
    assert_eq!(
        set,
        json!({"kind": "im", "scope": "global", "document": {"offline_im": false}})
    );
    assert_eq!(
        admin.get("/api/v1/admin/policies/im").await.ok(200)["global"],
        json!({"offline_im": false})
    );
    // It applies: a message to a signed-out user is no longer kept.
    let carol = bob
        .post("/api/v1/conversations", json!({"with": "carol"}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    bob.post(
        &format!("/api/v1/conversations/{carol}/messages"),
        json!({"text": "are you there?"}),
    )
    .await
    .problem(409);
    // Per user.
    let privacy = admin
        .put(
            &format!("/api/v1/admin/policies/privacy/{}", addr("bob")),
            json!({"privacy_mode": true}),
        )
        .await
        .ok(200);
    assert_eq!(privacy["scope"], addr("bob"));
    assert_eq!(
        bob.get("/api/v1/me/privacy").await.ok(200)["privacy_mode"],
        true
    );
    let docs = admin.get("/api/v1/admin/policies/privacy").await.ok(200);
    assert_eq!(
        docs["users"][addr("bob")],
        json!({"privacy_mode": true}),
        "{docs}"
    );
    // Refusals.
    let p = admin
        .put("/api/v1/admin/policies/im/global", json!({"offline": true}))
        .await
        .problem(400);
    assert_eq!(p["field"], "offline", "{p}");
    admin
        .put(
            "/api/v1/admin/policies/im/global",
            json!({"offline_im": "yes"}),
        )
        .await
        .problem(400);
    let p = admin
        .put(
            &format!("/api/v1/admin/policies/archiving-config/{}", addr("bob")),
            json!({"enabled": true}),
        )
        .await
        .problem(400);
    assert_eq!(p["field"], "scope");
    admin
        .get("/api/v1/admin/policies/colour")
        .await
        .problem(404);
    admin
        .put(
            &format!("/api/v1/admin/policies/im/{}", addr("nobody")),
            json!({"offline_im": true}),
        )
        .await
        .problem(404);
    let cfg = admin
        .put(
            "/api/v1/admin/policies/archiving-config/global",
            json!({"retention_days": 30}),
        )
        .await
        .ok(200);
    assert_eq!(cfg["document"], json!({"retention_days": 30}));
    // Clearing.
    admin
        .delete("/api/v1/admin/policies/im/global")
        .await
        .empty(204);
    admin
        .delete("/api/v1/admin/policies/im/global")
        .await
        .problem(404);
    assert_eq!(
        admin.get("/api/v1/admin/policies/im").await.ok(200)["global"],
        Value::Null
    );
}

// ---------------------------------------------------------------------------
// Presence for other applications.

/// Asserts that `svg` is well-formed XML with an `svg` root; returns the
/// text content.
fn well_formed_svg(svg: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut depth = 0i32;
    let mut root = None;
    let mut text = String::new();
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML ({e}): {svg}"))
        {
            quick_xml::events::Event::Start(e) => {
                root.get_or_insert_with(|| e.name().into_inner().to_owned());
                depth += 1;
            }
            quick_xml::events::Event::Empty(e) => {
                root.get_or_insert_with(|| e.name().into_inner().to_owned());
            }
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Text(t) => {
                text.push_str(&t.xml10_content());
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        assert!(depth >= 0, "unbalanced: {svg}");
    }
    assert_eq!(depth, 0, "unclosed elements: {svg}");
    assert_eq!(root.as_deref(), Some("svg"), "{svg}");
    text
}

#[tokio::test]
async fn public_presence_serves_json_and_svg_with_caching_cors_and_privacy() {
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let anon = Api::anonymous(&server);
    let alice = sign_in(&server, "alice").await;
    let bob = sign_in(&server, "bob").await;
    alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "note": "Budget review"}),
        )
        .await
        .ok(200);

    // Anonymous: availability only, publicly cacheable, CORS.
    let r = anon.get("/presence/alice").await;
    let p = r.ok(200);
    assert_eq!(p["user"], addr("alice"));
    assert_eq!(p["availability"], "busy", "{p}");
    assert_eq!(p["note"], Value::Null);
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("vary"), Some("Authorization"));
    let r = anon.get(&format!("/presence/{}.json", addr("alice"))).await;
    assert_eq!(r.ok(200)["availability"], "busy");

    // The badge.
    let r = anon.get("/presence/alice.svg").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "image/svg+xml; charset=utf-8");
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let text = well_formed_svg(&r.text());
    assert!(text.contains("Busy"), "{text}");
    let r = anon.get(&format!("/presence/{}.svg", addr("bob"))).await;
    assert!(well_formed_svg(&r.text()).contains("Offline"));

    // With a token: what the caller's level shows, privately cacheable.
    let r = bob.get("/presence/alice").await;
    let p = r.ok(200);
    assert_eq!(p["note"], "Budget review", "{p}");
    assert_eq!(r.header("cache-control"), Some("private, max-age=30"));
    alice.put_empty("/api/v1/blocked/bob").await.empty(204);
    assert_eq!(
        bob.get("/presence/alice").await.ok(200)["availability"],
        "offline"
    );
    let r = bob.get("/presence/alice.svg").await;
    assert!(well_formed_svg(&r.text()).contains("Offline"));
    bob.with_token("made-up")
        .get("/presence/alice")
        .await
        .problem(401);

    // Nonexistent users and users in privacy mode look offline.
    assert_eq!(
        anon.get("/presence/ghost").await.ok(200)["availability"],
        "offline"
    );
    alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": true}))
        .await
        .ok(200);
    assert_eq!(
        anon.get("/presence/alice").await.ok(200)["availability"],
        "offline"
    );
    assert!(well_formed_svg(&anon.get("/presence/alice.svg").await.text()).contains("Offline"));

    // CORS preflight.
    let r = anon
        .send(
            "OPTIONS",
            "/presence/alice.svg",
            &[
                ("Origin", "https://intranet.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            None,
        )
        .await;
    r.empty(204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization")
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET"))
    );
}

#[tokio::test]
async fn anonymous_presence_can_be_turned_off_and_cors_and_caching_configured() {
    let server = Server::with_users_and_config(
        &["alice", "bob"],
        "[web]\nanonymous_presence = \"none\"\nbadge_cors_origin = \"https://intranet.example\"\nbadge_cache_seconds = 5\n",
    );
    let anon = Api::anonymous(&server);
    let bob = sign_in(&server, "bob").await;
    for path in ["/presence/alice", "/presence/alice.svg"] {
        let r = anon.get(path).await;
        let p = r.problem(401);
        assert!(
            p["title"].as_str().unwrap_or("").contains("signed-in"),
            "{p}"
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://intranet.example"),
            "a page can read the refusal"
        );
        let r = bob.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("private, max-age=5"));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://intranet.example")
        );
    }
    let r = anon.send("OPTIONS", "/presence/alice", &[], None).await;
    r.empty(204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://intranet.example")
    );
}

// ---------------------------------------------------------------------------
// The OpenAPI description.

/// The routes of the router in `src/web/mod.rs`: full path → methods.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/mod.rs");
    let src = std::fs::read_to_string(&path).expect("read src/web/mod.rs");
    let body = &src[src.find("pub fn router(").expect("fn router")..];
    let nest = body
        .find(".nest(\"/api/v1\"")
        .expect("the API is nested under /api/v1");
    let bytes = body.as_bytes();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut at = 0;
    while let Some(p) = body[at..].find(".route(") {
        let start = at + p + ".route(".len();
        let mut depth = 1;
        let mut end = start;
        while depth > 0 {
            match bytes[end] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            end += 1;
        }
        let args = &body[start..end - 1];
        let route = args.split('"').nth(1).expect("route path");
        let full = if start < nest {
            format!("/api/v1{route}")
        } else {
            route.to_owned()
        };
        let methods = out.entry(full).or_default();
        for m in ["get", "post", "put", "patch", "delete", "options", "head"] {
            let pat = format!("{m}(");
            let mut from = 0;
            while let Some(i) = args[from..].find(&pat) {
                let i = from + i;
                let before = args[..i].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    methods.insert(m.to_owned());
                }
                from = i + pat.len();
            }
        }
        at = end;
    }
    assert!(out.len() > 30, "router parsing found only {out:?}");
    out
}

fn document_operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| {
                    ["get", "post", "put", "patch", "delete", "options", "head"]
                        .contains(&k.as_str())
                })
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_served_and_describes_every_route() {
    let server = Server::with_users(&["alice"]);
    let r = Api::anonymous(&server).get("/api/v1/openapi.json").await;
    let doc = r.ok(200);
    assert_eq!(
        r.text(),
        include_str!("../src/web/openapi.json"),
        "the served document is the file"
    );
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = document_operations(&doc);
    let routes = router_routes();
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        match documented.get(path) {
            None => missing.push(format!("{path} (whole path)")),
            Some(d) => {
                for m in methods {
                    if !d.contains(m) {
                        missing.push(format!("{} {path}", m.to_uppercase()));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    // And nothing the router does not serve (the badge is `/presence/{user}`
    // with a `.svg` suffix).
    let mut extra = Vec::new();
    for (path, methods) in &documented {
        let served = routes
            .get(path)
            .or_else(|| path.strip_suffix(".svg").and_then(|p| routes.get(p)));
        match served {
            None => extra.push(path.clone()),
            Some(s) => {
                for m in methods {
                    if !s.contains(m) {
                        extra.push(format!("{} {path}", m.to_uppercase()));
                    }
                }
            }
        }
    }
    assert!(
        extra.is_empty(),
        "openapi.json describes what the router does not serve: {extra:?}"
    );
    // Every authenticated operation can answer 401, and every admin one 403.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Some(responses) = op.get("responses") else {
                continue;
            };
            let public = op.get("security").is_some_and(|s| {
                s.as_array()
                    .is_some_and(|a| a.is_empty() || a.iter().any(|x| x == &json!({})))
            });
            if !public {
                assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            }
            if path.starts_with("/api/v1/admin/") {
                assert!(responses.get("403").is_some(), "{method} {path}: no 403");
            }
        }
    }
}

/// The Node project that validates the document.
fn openapi_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi")
}

/// Runs a command, panicking with its output unless it succeeds.
fn run(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run it ({e}); Node.js 20+ and npm are needed for this test")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_matches_real_responses() {
    // Node and npm first, so that a missing tool says so plainly.
    let project = openapi_project();
    run(
        std::process::Command::new("node").arg("--version"),
        "node --version",
    );
    let installed = ["@seriousme/openapi-schema-validator", "ajv", "ajv-formats"]
        .iter()
        .all(|p| project.join("node_modules").join(p).is_dir());
    if !installed {
        run(
            std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&project),
            "npm ci in tests/openapi",
        );
    }

    // Real exchanges over most operations, recorded.
    let server = Server::with_users(&["alice", "bob", "carol", "dave"]);
    server.cli_ok(&["user", "admin", &addr("alice"), "on"], None);
    let rec: Recorder = Arc::new(Mutex::new(Vec::new()));
    let doc = Api::anonymous(&server)
        .recording(&rec)
        .get("/api/v1/openapi.json")
        .await
        .text();
    tour(&server, &rec).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let doc_path = dir.path().join("openapi.json");
    let samples_path = dir.path().join("samples.json");
    std::fs::write(&doc_path, doc).expect("write document");
    let samples = rec.lock().expect("recorder").clone();
    assert!(
        samples.len() > 80,
        "only {} exchanges recorded",
        samples.len()
    );
    // The polls carried every kind of event but the end of a session, so
    // that their schemas are checked against real ones.
    let kinds: BTreeSet<String> = samples
        .iter()
        .filter(|s| {
            s["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/v1/events/poll"))
        })
        .flat_map(|s| s["body"]["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    for kind in [
        "hello",
        "contacts.changed",
        "presence",
        "message",
        "typing",
        "conversation.message",
        "invitation",
        "roster",
        "conversation.ended",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} event in the tour: {kinds:?}"
        );
    }
    std::fs::write(
        &samples_path,
        serde_json::to_vec_pretty(&samples).expect("json"),
    )
    .expect("write samples");
    let out = run(
        std::process::Command::new("node")
            .arg(project.join("validate.mjs"))
            .arg(&doc_path)
            .arg(&samples_path)
            .current_dir(&project),
        "node validate.mjs",
    );
    assert!(out.contains("document is valid"), "{out}");
}

/// A walk over the API that produces every documented kind of response
/// the server gives in ordinary operation.
async fn tour(server: &Server, rec: &Recorder) {
    let anon = Api::anonymous(server).recording(rec);
    let alice = sign_in_as(server, "alice", Some(rec)).await;
    let bob = sign_in_as(server, "bob", Some(rec)).await;
    let carol = sign_in_as(server, "carol", Some(rec)).await;
    let dave = sign_in_as(server, "dave", Some(rec)).await;

    // Errors of every kind.
    anon.post(
        "/api/v1/sessions",
        json!({"user": "alice", "password": "wrong"}),
    )
    .await
    .problem(401);
    anon.post("/api/v1/sessions", json!({"user": "alice"}))
        .await
        .problem(400);
    anon.send("POST", "/api/v1/sessions", &[], Some(("text/plain", b"x")))
        .await
        .problem(415);
    anon.get("/api/v1/me").await.problem(401);
    bob.get("/api/v1/admin/users").await.problem(403);
    alice.get("/api/v1/contacts/nobody").await.problem(404);

    // Me.
    alice.get("/api/v1/me").await.ok(200);
    alice.get("/api/v1/sessions").await.ok(200);
    alice.get("/api/v1/me/presence").await.ok(200);
    alice
        .put(
            "/api/v1/me/presence",
            json!({"availability": "busy", "activity": "in-a-call", "note": "On a call", "idle": false}),
        )
        .await
        .ok(200);
    alice
        .put("/api/v1/me/note", json!({"note": "Back soon"}))
        .await
        .ok(200);
    alice.delete("/api/v1/me/note").await.ok(200);
    alice.delete("/api/v1/me/presence").await.ok(200);
    alice.get("/api/v1/me/privacy").await.ok(200);
    alice
        .put("/api/v1/me/privacy", json!({"privacy_mode": false}))
        .await
        .ok(200);
    for u in [&alice, &bob, &carol, &dave] {
        u.go_online().await;
    }

    // Contacts.
    alice
        .put(
            "/api/v1/contacts/bob",
            json!({"group": "Team", "level": "workgroup"}),
        )
        .await
        .ok(201);
    alice
        .put("/api/v1/contacts/bob", json!({"level": null}))
        .await
        .ok(200);
    alice.get("/api/v1/contacts").await.ok(200);
    alice.get("/api/v1/contacts/bob").await.ok(200);
    alice
        .post("/api/v1/groups", json!({"name": "Friends"}))
        .await
        .ok(201);
    alice
        .post("/api/v1/groups", json!({"name": "Friends"}))
        .await
        .problem(409);
    alice.get("/api/v1/groups").await.ok(200);
    alice
        .put("/api/v1/groups/Friends", json!({"name": "Pals"}))
        .await
        .ok(200);
    alice.delete("/api/v1/groups/Pals").await.empty(204);
    alice.put_empty("/api/v1/blocked/dave").await.empty(204);
    alice.get("/api/v1/blocked").await.ok(200);
    alice.delete("/api/v1/blocked/dave").await.empty(204);
    // Blocking and unblocking did not put dave in the list.
    alice.get("/api/v1/contacts/dave").await.problem(404);
    alice.put_empty("/api/v1/contacts/dave").await.ok(201);
    alice.delete("/api/v1/contacts/dave").await.empty(204);
    carol
        .put("/api/v1/me/privacy", json!({"privacy_mode": true}))
        .await
        .ok(200);
    dave.put_empty("/api/v1/contacts/carol").await.ok(201);
    dave.get("/api/v1/contacts").await.ok(200);
    carol.get("/api/v1/watchers/pending").await.ok(200);
    carol
        .post(
            "/api/v1/watchers/pending/dave",
            json!({"decision": "allow", "level": "family", "group": "Family"}),
        )
        .await
        .ok(200);
    carol
        .post(
            "/api/v1/watchers/pending/dave",
            json!({"decision": "allow"}),
        )
        .await
        .problem(404);
    bob.get("/api/v1/presence/alice").await.ok(200);
    bob.get("/api/v1/presence/carol").await.ok(200);
    bob.get("/api/v1/presence/nobody").await.ok(200);

    // Conversations.
    let one = alice
        .post("/api/v1/conversations", json!({"with": "bob"}))
        .await
        .ok(200);
    let id = one["id"].as_str().expect("id").to_owned();
    alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "hi"}),
        )
        .await
        .ok(201);
    alice
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            json!({"text": "x".repeat(40_000)}),
        )
        .await
        .problem(413);
    alice
        .post_empty(&format!("/api/v1/conversations/{id}/typing"))
        .await
        .empty(204);
    alice
        .get(&format!("/api/v1/conversations/{id}"))
        .await
        .ok(200);
    alice
        .get(&format!("/api/v1/conversations/{id}/messages"))
        .await
        .ok(200);
    alice
        .post_empty(&format!("/api/v1/conversations/{id}/leave"))
        .await
        .problem(409);
    let group = alice
        .post("/api/v1/conversations", json!({"participants": ["carol"]}))
        .await
        .ok(201);
    let gid = group["id"].as_str().expect("id").to_owned();
    alice
        .post(
            &format!("/api/v1/conversations/{gid}/messages"),
            json!({"text": "group hi"}),
        )
        .await
        .ok(201);
    alice
        .post(
            &format!("/api/v1/conversations/{gid}/participants"),
            json!({"user": "bob"}),
        )
        .await
        .ok(200);
    alice
        .get(&format!("/api/v1/conversations/{gid}"))
        .await
        .ok(200);
    alice
        .get(&format!("/api/v1/conversations/{gid}/messages"))
        .await
        .ok(200);
    dave.post_empty(&format!("/api/v1/conversations/{gid}/join"))
        .await
        .problem(403);
    bob.post_empty(&format!("/api/v1/conversations/{gid}/join"))
        .await
        .ok(200);
    bob.post_empty(&format!("/api/v1/conversations/{gid}/leave"))
        .await
        .empty(204);
    let escalated = bob
        .post("/api/v1/conversations", json!({"with": "carol"}))
        .await
        .ok(200);
    let eid = escalated["id"].as_str().expect("id").to_owned();
    bob.post(
        &format!("/api/v1/conversations/{eid}/messages"),
        json!({"text": "hey"}),
    )
    .await
    .ok(201);
    bob.post(
        &format!("/api/v1/conversations/{eid}/participants"),
        json!({"user": "dave"}),
    )
    .await
    .ok(200);
    bob.get(&format!("/api/v1/conversations/{eid}"))
        .await
        .ok(200);
    alice.get("/api/v1/conversations").await.ok(200);
    bob.get("/api/v1/conversations").await.ok(200);

    // Every kind of event, as the long poll returns it.
    for u in [&alice, &bob, &carol, &dave] {
        u.get("/api/v1/events/poll?since=0&timeout=0").await.ok(200);
    }
    alice
        .get("/api/v1/events/poll?since=abc")
        .await
        .problem(400);

    // Administration.
    alice.get("/api/v1/admin/users").await.ok(200);
    alice
        .post(
            "/api/v1/admin/users",
            json!({"user": addr("zoe"), "password": "long enough", "display_name": "Zoe", "admin": false}),
        )
        .await
        .ok(201);
    alice
        .get(&format!("/api/v1/admin/users/{}", addr("zoe")))
        .await
        .ok(200);
    alice
        .patch(
            &format!("/api/v1/admin/users/{}", addr("zoe")),
            json!({"display_name": "Zoé"}),
        )
        .await
        .ok(200);
    alice
        .delete(&format!("/api/v1/admin/users/{}", addr("zoe")))
        .await
        .empty(204);
    alice.get("/api/v1/admin/domains").await.ok(200);
    alice
        .post("/api/v1/admin/domains", json!({"name": "other.test"}))
        .await
        .ok(201);
    alice
        .delete("/api/v1/admin/domains/other.test")
        .await
        .empty(204);
    for kind in ["im", "privacy", "archiving", "archiving-config"] {
        alice
            .get(&format!("/api/v1/admin/policies/{kind}"))
            .await
            .ok(200);
    }
    alice
        .put(
            "/api/v1/admin/policies/archiving/global",
            json!({"archive_internal": false}),
        )
        .await
        .ok(200);
    alice.get("/api/v1/admin/policies/archiving").await.ok(200);
    alice
        .delete("/api/v1/admin/policies/archiving/global")
        .await
        .empty(204);
    alice
        .put("/api/v1/admin/policies/im/global", json!({"nope": 1}))
        .await
        .problem(400);

    // Presence badges.
    anon.get("/presence/alice").await.ok(200);
    anon.get("/presence/alice.svg").await;
    bob.get("/presence/alice").await.ok(200);
    anon.send("OPTIONS", "/presence/alice", &[], None)
        .await
        .empty(204);
    anon.send("OPTIONS", "/presence/alice.svg", &[], None)
        .await
        .empty(204);

    // Sessions, last.
    let extra = sign_in_as(server, "dave", Some(rec)).await;
    let sid = extra.get("/api/v1/me").await.ok(200)["session"]["id"]
        .as_str()
        .expect("sid")
        .to_owned();
    dave.delete(&format!("/api/v1/sessions/{sid}"))
        .await
        .empty(204);
    dave.delete("/api/v1/sessions/current").await.empty(204);
}

/// Messages sent through the API are archived like SIP ones, critical mode
/// included: committed before delivery, and refused with `503` and
/// `Retry-After` while the archive cannot be written, until it can again.
#[tokio::test]
async fn critical_mode_archives_api_messages_first_and_refuses_them_while_the_archive_is_locked() {
    let server = Server::with_users(&["alice", "bob"]);
    server.cli_ok(
        &[
            "archive",
            "config",
            "set",
            "--enabled",
            "on",
            "--critical",
            "on",
        ],
        None,
    );
    server.cli_ok(
        &["archive", "policy", "set", "--global", "--internal", "on"],
        None,
    );
    // The server picks changes made with the CLI up within 500 ms.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let alice = sign_in(&server, "alice").await;
    let _bob = sign_in(&server, "bob").await;
    let id = alice
        .post("/api/v1/conversations", json!({"with": addr("bob")}))
        .await
        .ok(200)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/conversations/{id}/messages");
    alice
        .post(&path, json!({"text": "before the outage"}))
        .await
        .ok(201);
    let archived = server.cli_ok(&["archive", "search", "--json", "--text", "outage"], None);
    let records: Vec<Value> = serde_json::from_str(&archived).expect("JSON");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "message" && r["outcome"] == "accepted"),
        "committed before delivery: {archived}"
    );

    let lock = ArchiveLock::take(server.dir.path()).await;
    let refused = alice
        .post(&path, json!({"text": "during the outage"}))
        .await;
    let p = refused.problem(503);
    assert!(
        refused.header("retry-after").is_some(),
        "503 carries Retry-After: {p}"
    );
    lock.release().await;
    // Recovers by itself once the archive can be written again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = alice.post(&path, json!({"text": "after the outage"})).await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "still refused 10 s after the archive came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let archived = server.cli_ok(&["archive", "search", "--json", "--text", "outage"], None);
    assert!(
        !archived.contains("during the outage"),
        "a refused message is not archived: {archived}"
    );
}
