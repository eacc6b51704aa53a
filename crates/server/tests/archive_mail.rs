//! Mail-store delivery of the compliance archive end to end, against a real
//! Dovecot IMAP server (Debian `dovecot-imapd`) that each test starts on a
//! free loopback port with its own configuration, self-signed certificate
//! (TLS required), one service account and maildir storage in a temporary
//! directory: transcripts land once per conversation in each participant's
//! folder, an outage shows as `failing` without anything marked delivered,
//! recovery delivers exactly once, lost bookkeeping (an append that was not
//! recorded) does not cause a second copy, and a wrong password is reported
//! without revealing any password.

mod support;

use async_imap::types::Flag;
use futures_util::StreamExt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{DOMAIN, Server};
use switchboard_sip::Method;
use switchboard_store::archive::{Archive, ArchiveQuery};
use switchboard_store::sqlite::SqliteArchive;
use switchboard_testua::{Transport, Ua, UaError};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(5);
/// Bound on every wait for the delivery job (idle 2 s, rounds every second,
/// backoff up to 16 s during the outages of these tests).
const JOB_WAIT: Duration = Duration::from_secs(45);
const ACCOUNT: &str = "archiver";
const ACCOUNT_PASSWORD: &str = "imap-S3cret-for-tests";

/// The `dovecot` binary, or a failure naming the Debian package.
fn dovecot_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("dovecot"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "dovecot is not installed: these tests need the Debian package dovecot-imapd \
             (apt-get install dovecot-imapd; scripts/test installs it)"
        )
    })
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A Dovecot instance of our own.
struct Dovecot {
    dir: tempfile::TempDir,
    /// IMAPS (TLS from the first byte).
    port: u16,
    /// IMAP with STARTTLS (required before login).
    starttls_port: u16,
    child: Option<Child>,
}

impl Dovecot {
    fn start() -> Dovecot {
        // Fail early, naming the package, when Dovecot is missing.
        dovecot_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Dovecot's own processes (login, mail) run as other users.
        set_mode(root, 0o755);
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("certificate");
        std::fs::write(root.join("cert.pem"), key.cert.pem()).expect("cert");
        std::fs::write(root.join("key.pem"), key.signing_key.serialize_pem()).expect("key");
        set_mode(&root.join("key.pem"), 0o600);
        for d in ["run", "state", "mail"] {
            std::fs::create_dir_all(root.join(d)).expect("dir");
        }
        let root_user = command_output("id", &["-u"]) == "0";
        // As root, Dovecot needs unprivileged users for its internal and
        // login processes and refuses mail access as root: the Debian
        // package's own users and nobody. Otherwise everything runs as us.
        let (internal, login, uid, gid) = if root_user {
            (
                "dovecot".to_owned(),
                "dovenull".to_owned(),
                command_output("id", &["-u", "nobody"]),
                command_output("id", &["-g", "nobody"]),
            )
        } else {
            let me = command_output("id", &["-un"]);
            (
                me.clone(),
                me,
                command_output("id", &["-u"]),
                command_output("id", &["-g"]),
            )
        };
        let home = root.join("mail").join(ACCOUNT);
        std::fs::create_dir_all(&home).expect("home");
        if root_user {
            let _ = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(root.join("mail"))
                .status();
        }
        std::fs::write(
            root.join("passwd"),
            format!(
                "{ACCOUNT}:{{PLAIN}}{ACCOUNT_PASSWORD}:{uid}:{gid}::{}\n",
                home.display()
            ),
        )
        .expect("passwd");
        let port = free_port();
        let starttls_port = free_port();
        let r = root.display();
        let config = format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
instance_name = sbtest-{port}
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
ssl = required
ssl_cert = <{r}/cert.pem
ssl_key = <{r}/key.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = {r}/passwd
}}
mail_location = maildir:~/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = {starttls_port}
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
"#
        );
        std::fs::write(root.join("dovecot.conf"), config).expect("config");
        let mut d = Dovecot {
            dir,
            port,
            starttls_port,
            child: None,
        };
        d.start_again();
        d
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Starts (again) and waits until it accepts connections.
    fn start_again(&mut self) {
        assert!(self.child.is_none(), "dovecot already runs");
        let child = Command::new(dovecot_binary())
            .arg("-F")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("dovecot exited ({status}); its log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it and waits until the port is closed.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "dovecot still listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A logged-in IMAP session as the service account (TLS, trusting the
    /// test certificate only).
    async fn session(&self) -> async_imap::Session<TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(self.ca_file()).expect("ca");
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to dovecot");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name"),
                tcp,
            )
            .await
            .expect("tls");
        let mut client = async_imap::Client::new(tls);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(ACCOUNT, ACCOUNT_PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Every message of a folder, oldest first (none if the folder is missing).
    async fn messages(&self, folder: &str) -> Vec<Stored> {
        let mut s = self.session().await;
        if s.select(folder).await.is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        {
            let mut fetches = s
                .uid_fetch("1:*", "(FLAGS BODY.PEEK[])")
                .await
                .expect("fetch");
            while let Some(f) = fetches.next().await {
                let f = f.expect("fetch item");
                out.push(Stored {
                    seen: f.flags().any(|fl| fl == Flag::Seen),
                    raw: String::from_utf8_lossy(f.body().unwrap_or_default()).into_owned(),
                });
            }
        }
        let _ = s.logout().await;
        out
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// One message in a folder.
struct Stored {
    seen: bool,
    raw: String,
}

impl Stored {
    /// The body as text, quoted-printable decoded when it is encoded so.
    fn text(&self) -> String {
        let body = self
            .raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return body.to_owned();
        }
        let bytes = body.replace("=\r\n", "").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The (unfolded) value of a header.
    fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn folder(user: &str) -> String {
    format!("Archive/{user}@{DOMAIN}")
}

fn address(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// Server configuration with the delivery job pointed at `dovecot`, over
/// `tls` (`implicit` or `starttls`).
fn mail_config(dovecot: &Dovecot, password_file: &Path, tls: &str) -> String {
    let port = if tls == "starttls" {
        dovecot.starttls_port
    } else {
        dovecot.port
    };
    format!(
        r#"[archive.mail]
enabled = true
server = "127.0.0.1"
port = {port}
tls = "{tls}"
ca_file = "{}"
username = "{ACCOUNT}"
password_file = "{}"
idle_seconds = 2
interval_seconds = 1
timeout_seconds = 5
"#,
        dovecot.ca_file().display(),
        password_file.display()
    )
}

/// A server with these users, archiving every internal conversation, and
/// the job configured by `config`.
fn archiving_server(users: &[&str], config: &str) -> Server {
    let mut server = Server::with_users_and_config(users, config);
    server.cli_ok(&["archive", "config", "set", "--enabled", "on"], None);
    server.cli_ok(
        &["archive", "policy", "set", "--global", "--internal", "on"],
        None,
    );
    server.restart();
    server
}

/// `from` sends `text` to `to_user` (registered as `to`), who accepts it.
async fn im(from: &Ua, to: &Ua, to_user: &str, text: &str) {
    let send = from.send_message(format!("sip:{to_user}@{DOMAIN}"), "text/plain", text);
    let recv = async {
        let m = to.expect_request(Method::Message, WAIT).await?;
        m.respond(200).await?;
        Ok::<_, UaError>(m)
    };
    let (sent, got) = tokio::join!(send, recv);
    assert_eq!(sent.expect("sent").status, 200);
    assert_eq!(got.expect("received").body_text(), text);
}

fn status(server: &Server) -> serde_json::Value {
    std::fs::read_to_string(server.dir.path().join("archive-mail-status.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Polls the status file until `cond` holds; panics with the last status.
async fn wait_status(server: &Server, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        let s = status(server);
        if cond(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; mail status: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn num(s: &serde_json::Value, key: &str) -> u64 {
    s[key].as_u64().unwrap_or(0)
}

async fn archive(server: &Server) -> SqliteArchive {
    SqliteArchive::open(&server.dir.path().join("archive.db"))
        .await
        .expect("open archive")
}

/// The conversation `user` took part in (the only one).
async fn conversation_of(server: &Server, user: &str) -> String {
    let a = archive(server).await;
    let q = ArchiveQuery {
        user: Some(address(user)),
        limit: 1,
        ..Default::default()
    };
    let found = a.search_archive(&q).await.expect("search");
    found
        .first()
        .unwrap_or_else(|| panic!("nothing archived for {user}"))
        .record
        .conversation
        .clone()
}

async fn mailed(server: &Server, conversation: &str) -> Vec<String> {
    archive(server)
        .await
        .mailed(conversation)
        .await
        .expect("mailed")
}

fn copy_archive_files(from_dir: &Path, to_dir: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("archive.db{suffix}");
        let _ = std::fs::remove_file(to_dir.join(&name));
        if from_dir.join(&name).exists() {
            std::fs::copy(from_dir.join(&name), to_dir.join(&name)).expect("copy archive");
        }
    }
}

#[tokio::test]
async fn transcripts_reach_each_folder_once_through_outages_and_lost_bookkeeping() {
    let mut dovecot = Dovecot::start();
    let secrets = tempfile::tempdir().expect("tempdir");
    let password_file = secrets.path().join("imap-password");
    std::fs::write(&password_file, format!("{ACCOUNT_PASSWORD}\n")).expect("password");
    set_mode(&password_file, 0o600);
    let mut server = archiving_server(
        &["alice", "bob", "carol"],
        &mail_config(&dovecot, &password_file, "implicit"),
    );

    // 1. A conversation between alice and bob reaches both folders once.
    let alice = server.registered("alice", Transport::Tcp).await;
    let bob = server.registered("bob", Transport::Tcp).await;
    let started = switchboard_core::now_ms();
    im(&alice, &bob, "bob", "hello bob, lunch at noon?").await;
    im(&bob, &alice, "alice", "hi alice, yes please").await;
    wait_status(&server, "the first transcripts", |s| {
        num(s, "delivered_total") == 2 && s["state"] == "ok" && num(s, "pending_conversations") == 0
    })
    .await;
    let conv_ab = conversation_of(&server, "bob").await;
    assert_eq!(
        mailed(&server, &conv_ab).await,
        vec![address("alice"), address("bob")]
    );
    for user in ["alice", "bob"] {
        let msgs = dovecot.messages(&folder(user)).await;
        assert_eq!(msgs.len(), 1, "one transcript in {user}'s folder");
        let m = &msgs[0];
        assert!(m.seen, "appended as read");
        assert!(m.text().contains("hello bob, lunch at noon?"), "{}", m.raw);
        assert!(m.text().contains("hi alice, yes please"), "{}", m.raw);
        let participants = m
            .header("X-Switchboard-Participants")
            .expect("participants");
        assert_eq!(
            participants,
            format!("{}, {}", address("alice"), address("bob"))
        );
        let to = m.header("To").expect("To");
        assert!(
            to.contains(&address("alice")) && to.contains(&address("bob")),
            "{to}"
        );
        assert_eq!(
            m.header("X-Switchboard-Conversation").as_deref(),
            Some(conv_ab.as_str())
        );
        let start = m.header("X-Switchboard-Start").expect("start");
        let end = m.header("X-Switchboard-End").expect("end");
        let t = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .expect("RFC 3339 time")
        };
        assert!(
            t(&start) >= started - 1000 && t(&start) <= t(&end),
            "{start} .. {end}"
        );
        let subject = m.header("Subject").expect("subject");
        // RFC 2047 (the span has an en dash): "IM_conversation_with_…".
        assert!(
            subject
                .replace('_', " ")
                .contains("IM conversation with alice@"),
            "{subject}"
        );
        let id = m.header("Message-ID").expect("message id");
        assert!(id.ends_with("@archive.switchboard>"), "{id}");
    }
    assert!(
        dovecot.messages(&folder("carol")).await.is_empty(),
        "carol took no part"
    );

    // 2. The conversation goes on: the whole transcript is delivered again,
    //    as a new message, to both.
    im(&alice, &bob, "bob", "one more thing: bring the slides").await;
    wait_status(&server, "the continued transcript", |s| {
        num(s, "delivered_total") == 4 && num(s, "pending_conversations") == 0
    })
    .await;
    for user in ["alice", "bob"] {
        let msgs = dovecot.messages(&folder(user)).await;
        assert_eq!(msgs.len(), 2, "{user}: first and continued transcript");
        assert_ne!(msgs[0].header("Message-ID"), msgs[1].header("Message-ID"));
        assert!(msgs[1].text().contains("hello bob, lunch at noon?"));
        assert!(msgs[1].text().contains("one more thing: bring the slides"));
        assert!(!msgs[0].text().contains("one more thing"));
    }

    // 3. The mail store is down: the job reports it and marks nothing.
    dovecot.stop();
    let carol = server.registered("carol", Transport::Tcp).await;
    im(&alice, &carol, "carol", "carol, the secret plan").await;
    im(&carol, &alice, "alice", "understood").await;
    wait_status(&server, "the outage to show", |s| {
        s["state"] == "failing" && num(s, "pending_conversations") >= 1
    })
    .await;
    let s = status(&server);
    let error = s["last_error"].as_str().expect("last_error").to_owned();
    assert!(
        error.contains("127.0.0.1") && error.to_lowercase().contains("refused"),
        "{error}"
    );
    assert!(num(&s, "next_attempt_ms") > 0 && num(&s, "consecutive_failures") >= 1);
    let shown = server.cli_ok(&["archive", "status"], None);
    assert!(
        shown.contains("failing") && shown.contains("refused"),
        "{shown}"
    );
    assert!(!shown.contains(ACCOUNT_PASSWORD), "{shown}");
    let conv_ac = conversation_of(&server, "carol").await;
    assert!(
        mailed(&server, &conv_ac).await.is_empty(),
        "nothing may be marked while the store is down"
    );
    assert_eq!(num(&s, "delivered_total"), 4);

    // The server restarts during the outage; keep a copy of its archive as
    // it is now (transcripts not yet appended, nothing marked).
    server.stop();
    let snapshot = tempfile::tempdir().expect("tempdir");
    copy_archive_files(server.dir.path(), snapshot.path());
    server.start_again();

    // 4. The store is back: delivered exactly once.
    dovecot.start_again();
    wait_status(&server, "recovery", |s| {
        s["state"] == "ok" && num(s, "delivered_total") == 6 && num(s, "pending_conversations") == 0
    })
    .await;
    assert_eq!(
        mailed(&server, &conv_ac).await,
        vec![address("alice"), address("carol")]
    );
    let check_counts = async |dovecot: &Dovecot| {
        let alice_msgs = dovecot.messages(&folder("alice")).await;
        let carol_msgs = dovecot.messages(&folder("carol")).await;
        assert_eq!(alice_msgs.len(), 3, "alice: two with bob, one with carol");
        assert_eq!(carol_msgs.len(), 1, "carol: one");
        assert_eq!(dovecot.messages(&folder("bob")).await.len(), 2);
        assert!(carol_msgs[0].text().contains("carol, the secret plan"));
        assert!(carol_msgs[0].text().contains("understood"));
        assert_eq!(
            alice_msgs[2].header("Message-ID"),
            carol_msgs[0].header("Message-ID")
        );
    };
    check_counts(&dovecot).await;

    // 5. The bookkeeping of those deliveries is lost (as after a crash
    //    between APPEND and recording it, or an archive restored from a
    //    backup): the job finds the transcripts in the folders, records
    //    them, and appends nothing.
    server.stop();
    copy_archive_files(snapshot.path(), server.dir.path());
    server.start_again();
    wait_status(&server, "the lost bookkeeping to be redone", |s| {
        num(s, "already_present_total") == 2 && num(s, "pending_conversations") == 0
    })
    .await;
    let s = status(&server);
    assert_eq!(s["state"], "ok", "{s}");
    assert_eq!(num(&s, "delivered_total"), 6, "no second append: {s}");
    assert_eq!(
        mailed(&server, &conv_ac).await,
        vec![address("alice"), address("carol")]
    );
    check_counts(&dovecot).await;
    let log = dovecot.log();
    assert!(!log.contains(" Error: "), "dovecot reported errors:\n{log}");
}

#[tokio::test]
async fn wrong_password_over_starttls_shows_failing_without_revealing_it_and_recovers() {
    let dovecot = Dovecot::start();
    let secrets = tempfile::tempdir().expect("tempdir");
    let password_file = secrets.path().join("imap-password");
    let wrong = "Not-The-Password-917";
    std::fs::write(&password_file, format!("{wrong}\n")).expect("password");
    set_mode(&password_file, 0o600);
    let server = archiving_server(
        &["alice", "bob"],
        &mail_config(&dovecot, &password_file, "starttls"),
    );
    let alice = server.registered("alice", Transport::Udp).await;
    let bob = server.registered("bob", Transport::Udp).await;
    im(&alice, &bob, "bob", "is the archive listening?").await;
    wait_status(&server, "the login failure", |s| s["state"] == "failing").await;
    let s = status(&server);
    let error = s["last_error"].as_str().expect("last_error");
    assert!(
        error.contains("login") && error.contains(ACCOUNT),
        "the error names the step and account: {error}"
    );
    let raw = std::fs::read_to_string(server.dir.path().join("archive-mail-status.json"))
        .expect("status");
    let shown = server.cli_ok(&["archive", "status", "--json"], None);
    for text in [&raw, &shown] {
        assert!(
            !text.contains(wrong) && !text.contains(ACCOUNT_PASSWORD),
            "a password is shown: {text}"
        );
    }
    let conv = conversation_of(&server, "bob").await;
    assert!(mailed(&server, &conv).await.is_empty());
    assert!(dovecot.messages(&folder("bob")).await.is_empty());

    // The password file is read at each connection: fixing it is enough.
    std::fs::write(&password_file, format!("{ACCOUNT_PASSWORD}\n")).expect("password");
    wait_status(&server, "delivery with the right password", |s| {
        s["state"] == "ok" && num(s, "delivered_total") == 2
    })
    .await;
    assert_eq!(dovecot.messages(&folder("alice")).await.len(), 1);
    assert_eq!(dovecot.messages(&folder("bob")).await.len(), 1);
    assert_eq!(
        mailed(&server, &conv).await,
        vec![address("alice"), address("bob")]
    );
}
