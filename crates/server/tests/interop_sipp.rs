//! Interoperability with SIPp (Debian package `sip-tester`), a third-party SIP
//! implementation, against the real binary over UDP: digest registration,
//! and pager-mode MESSAGE from SIPp senders (answering the proxy's 407)
//! to a SIPp recipient that registered with digest authentication first.
//! The scenarios are test data in `tests/data/sipp/`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use support::interop::{ProcessGuard, free_udp_port, head, read_lines, require_program, tail};
use support::{DOMAIN, PASSWORD, Server};
use switchboard_sip::{Contacts, HeaderName, Response};
use switchboard_testua::{RegisterOptions, Transport, Ua, UaConfig};

/// SIPp's own limit on a run (`-timeout`, with `-timeout_error`).
const SIPP_TIMEOUT: Duration = Duration::from_secs(20);
/// The test kills a SIPp process that outlives its own limit by this much.
const KILL_GRACE: Duration = Duration::from_secs(5);

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sipp")
        .join(name)
}

/// `[authentication …]` for an injection file; the password is quoted
/// because it contains a space.
fn auth_field(user: &str) -> String {
    format!("[authentication username={user} password=\"{PASSWORD}\"]")
}

/// One SIPp process with its files in its own directory.
struct Sipp {
    name: String,
    dir: PathBuf,
    port: u16,
    cmdline: String,
    proc: ProcessGuard,
    status: Option<Option<ExitStatus>>,
}

impl Sipp {
    /// Starts SIPp against `server` with `scenario_file`, the injection file
    /// made of `injection` (after a `SEQUENTIAL` line) and `extra` options.
    fn start(
        name: &str,
        root: &Path,
        server: SocketAddr,
        scenario_file: &str,
        injection: &[String],
        extra: &[&str],
    ) -> Sipp {
        let sipp = require_program("sipp", "SIPP", "sip-tester");
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("SIPp run directory");
        let inf = dir.join("injection.csv");
        let mut csv = String::from("SEQUENTIAL\n");
        for line in injection {
            csv.push_str(line);
            csv.push('\n');
        }
        std::fs::write(&inf, csv).expect("write injection file");
        // SIPp's "-p 0" probes 5060, 5061, … instead of letting the kernel
        // choose; a port the kernel handed out a moment ago is safer from
        // other tests and from a stale registration of an earlier SIPp.
        let port = free_udp_port();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let timeout = format!("{}s", SIPP_TIMEOUT.as_secs());
        let mut args: Vec<String> = vec![
            server.to_string(),
            "-sf".into(),
            scenario(scenario_file).to_string_lossy().into_owned(),
            "-inf".into(),
            inf.to_string_lossy().into_owned(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-t".into(),
            "u1".into(),
            "-nostdin".into(),
            // Unexpected messages abort the call (a 202 or 4xx instead of the
            // 200 fails at once); no BYE for an aborted MESSAGE/REGISTER.
            "-default_behaviors".into(),
            "all,-bye".into(),
            "-timeout".into(),
            timeout,
            "-timeout_error".into(),
            "-trace_err".into(),
            "-error_file".into(),
            path("errors.log"),
            "-trace_stat".into(),
            "-stf".into(),
            path("stat.csv"),
            "-fd".into(),
            "1".into(),
            "-trace_logs".into(),
            "-log_file".into(),
            path("actions.log"),
            "-trace_msg".into(),
            "-message_file".into(),
            path("messages.log"),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let cmdline = format!("{} {}", sipp.display(), args.join(" "));
        std::fs::write(dir.join("cmd.txt"), &cmdline).expect("write cmd.txt");
        let mut cmd = Command::new(&sipp);
        cmd.args(&args).current_dir(&dir);
        let proc = ProcessGuard::spawn(name, cmd, false, Some(&dir.join("stdout.log")));
        Sipp {
            name: name.to_owned(),
            dir,
            port,
            cmdline,
            proc,
            status: None,
        }
    }

    /// Waits for SIPp to exit (its own timeout plus a grace period), killing
    /// it otherwise. `None` when it had to be killed.
    fn finish(&mut self) -> Option<ExitStatus> {
        self.finish_within(SIPP_TIMEOUT + KILL_GRACE)
    }

    /// Like [`Sipp::finish`], waiting at most `limit`.
    fn finish_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return s;
        }
        let s = self.proc.wait_exit(limit);
        self.status = Some(s);
        s
    }

    /// The last row of the statistics file, by column name.
    fn stats(&self) -> HashMap<String, String> {
        let lines: Vec<String> = read_lines(&self.dir.join("stat.csv"))
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let (Some(header), Some(last)) = (lines.first(), lines.last()) else {
            return HashMap::new();
        };
        if lines.len() < 2 {
            return HashMap::new();
        }
        header
            .split(';')
            .zip(last.split(';'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A cumulative counter such as `SuccessfulCall`, from the statistics.
    fn counter(&self, name: &str) -> Option<u64> {
        self.stats().get(&format!("{name}(C)"))?.trim().parse().ok()
    }

    /// The lines of the action log (`<log>` in the scenario) that start
    /// with `prefix`.
    fn log_lines(&self, prefix: &str) -> Vec<String> {
        read_lines(&self.dir.join("actions.log"))
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Everything useful to read when this run failed.
    fn diagnostics(&self) -> String {
        format!(
            "--- SIPp `{}` ({})\n{}\nexit: {:?}\n--- error log (first lines):\n{}\n--- output (tail):\n{}\n\
             --- action log (tail):\n{}\n--- SIP messages (tail):\n{}\n",
            self.name,
            self.dir.display(),
            self.cmdline,
            self.status,
            head(&self.dir.join("errors.log"), 40),
            tail(&self.dir.join("stdout.log"), 25),
            tail(&self.dir.join("actions.log"), 10),
            tail(&self.dir.join("messages.log"), 60),
        )
    }

    /// Asserts SIPp exited 0 with exactly `calls` successful calls and none
    /// failed.
    fn assert_all_successful(&mut self, calls: u64, context: &str) {
        let status = self.finish();
        let ok = self.counter("SuccessfulCall");
        let failed = self.counter("FailedCall");
        assert!(
            status.is_some_and(|s| s.code() == Some(0)) && ok == Some(calls) && failed == Some(0),
            "{context}: SIPp `{}` should exit 0 with {calls} successful and 0 failed calls; \
             got exit {status:?}, successful {ok:?}, failed {failed:?}\n{}",
            self.name,
            self.diagnostics()
        );
    }
}

/// The bindings of `user` as the registrar lists them (a REGISTER without
/// Contact, authenticated as that user).
async fn bindings(server: &Server, user: &str) -> Vec<String> {
    let ua = Ua::connect(UaConfig::new(
        Transport::Udp,
        server.udp,
        DOMAIN,
        user,
        PASSWORD,
    ))
    .await
    .expect("connect query user agent");
    let mut req = ua
        .register_request(&RegisterOptions::new(0))
        .expect("REGISTER request");
    req.headers.remove(&HeaderName::Contact);
    req.headers.remove(&HeaderName::Expires);
    let resp: Response = ua.request(req).await.expect("registration query");
    assert_eq!(resp.status, 200, "registration query for {user}: {resp:?}");
    match resp.headers.contacts().expect("Contact parses") {
        Contacts::List(l) => l.into_iter().map(|c| c.uri.to_string()).collect(),
        Contacts::Star => panic!("`*` in a registrar's answer"),
    }
}

#[tokio::test]
async fn sipp_registers_with_digest_auth_over_udp() {
    const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const CALLS: u64 = 20;
    let server = Server::with_users(&USERS);
    let tmp = tempfile::tempdir().expect("temp dir");
    let injection: Vec<String> = USERS
        .iter()
        .map(|u| format!("{u};{DOMAIN};{}", auth_field(u)))
        .collect();
    let started = Instant::now();
    let calls = CALLS.to_string();
    let mut sipp = Sipp::start(
        "register",
        tmp.path(),
        server.udp,
        "register.xml",
        &injection,
        &["-auth_uri", DOMAIN, "-m", &calls, "-r", "100"],
    );
    sipp.assert_all_successful(CALLS, "20 digest registrations of 4 users");
    let elapsed = started.elapsed();

    // Every call logged its 200 with the binding the registrar returned.
    let registered = sipp.log_lines("REGISTERED ");
    assert_eq!(
        registered.len() as u64,
        CALLS,
        "one REGISTERED line per call: {registered:?}\n{}",
        sipp.diagnostics()
    );
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for line in &registered {
        let mut f = line.split_whitespace().skip(1);
        let (user, contact) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        assert_eq!(
            contact,
            format!("sip:{user}@127.0.0.1:{}", sipp.port),
            "the 200 lists the binding just made: {line}"
        );
        *per_user.entry(user.to_owned()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = USERS.iter().map(|u| ((*u).to_owned(), 5)).collect();
    assert_eq!(per_user, expected, "5 registrations of each user");

    // The registrar kept exactly one binding per user: the five refreshes
    // of the same contact (each from a new Call-ID) replaced each other.
    for user in USERS {
        assert_eq!(
            bindings(&server, user).await,
            vec![format!("sip:{user}@127.0.0.1:{}", sipp.port)],
            "bindings of {user} after SIPp registered it 5 times"
        );
    }
    eprintln!("SIPp: {CALLS} digest registrations in {elapsed:?}");
}

#[tokio::test]
async fn sipp_messages_are_authenticated_and_delivered_to_a_registered_sipp() {
    const MESSAGES: u64 = 20;
    let server = Server::with_users(&["alice", "bob", "carol"]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();

    // The recipient: registers bob with digest auth, then answers MESSAGEs.
    let expected = MESSAGES.to_string();
    let mut receiver = Sipp::start(
        "receiver",
        tmp.path(),
        server.udp,
        "message-receiver.xml",
        &[format!("bob;{DOMAIN};{}", auth_field("bob"))],
        &[
            "-oocsf",
            &scenario("message-receiver-ooc.xml").to_string_lossy(),
            "-auth_uri",
            DOMAIN,
            "-set",
            "expected",
            &expected,
            "-m",
            "1",
        ],
    );
    let registered = support::interop::wait_until(Duration::from_secs(10), || {
        !receiver.log_lines("REGISTERED bob ").is_empty()
    });
    assert!(
        registered,
        "the SIPp recipient did not register bob within 10 s\n{}",
        receiver.diagnostics()
    );

    // The senders: alice and carol in turn, each MESSAGE challenged (407)
    // and sent again with credentials.
    let calls = MESSAGES.to_string();
    let mut sender = Sipp::start(
        "sender",
        tmp.path(),
        server.udp,
        "message-sender.xml",
        &[
            format!("alice;{DOMAIN};bob;{}", auth_field("alice")),
            format!("carol;{DOMAIN};bob;{}", auth_field("carol")),
        ],
        &[
            "-auth_uri",
            &format!("bob@{DOMAIN}"),
            "-m",
            &calls,
            "-r",
            "100",
        ],
    );
    let sender_status = sender.finish();
    // The receiver ends by itself once it has every message; when the sender
    // failed it never will, so do not wait for its timeout then.
    let receiver_status = if sender_status.is_some_and(|s| s.success()) {
        receiver.finish()
    } else {
        receiver.finish_within(Duration::from_secs(1))
    };
    let elapsed = started.elapsed();
    let both = || format!("{}\n{}", sender.diagnostics(), receiver.diagnostics());
    assert!(
        sender_status.is_some_and(|s| s.code() == Some(0))
            && sender.counter("SuccessfulCall") == Some(MESSAGES)
            && sender.counter("FailedCall") == Some(0),
        "sender: every MESSAGE should get its 200; exit {sender_status:?}, successful {:?}, \
         failed {:?}\n{}",
        sender.counter("SuccessfulCall"),
        sender.counter("FailedCall"),
        both()
    );
    assert!(
        receiver_status.is_some_and(|s| s.code() == Some(0))
            && receiver.counter("SuccessfulCall") == Some(1)
            && receiver.counter("FailedCall") == Some(0),
        "receiver: should register and then see all {MESSAGES} MESSAGEs; exit \
         {receiver_status:?}, successful {:?}, failed {:?}\n{}",
        receiver.counter("SuccessfulCall"),
        receiver.counter("FailedCall"),
        both()
    );
    assert_eq!(
        sender.log_lines("DELIVERED ").len() as u64,
        MESSAGES,
        "sender: one DELIVERED line per MESSAGE\n{}",
        both()
    );

    // Each message arrived exactly once, from the authenticated sender,
    // with that sender asserted by the server.
    let got = receiver.log_lines("GOT ");
    assert_eq!(
        got.len() as u64,
        MESSAGES,
        "receiver: each MESSAGE exactly once: {got:#?}\n{}",
        both()
    );
    let mut numbers = BTreeSet::new();
    for line in &got {
        let f: Vec<&str> = line.split_whitespace().collect();
        // GOT <number> <From> <P-Asserted-Identity> <sender in body> <Call-ID> | <body>
        assert!(f.len() >= 6, "malformed receiver log line: {line}");
        let n: u64 = f[1].parse().expect("message number");
        let sender_user = if n % 2 == 1 { "alice" } else { "carol" };
        let aor = format!("sip:{sender_user}@{DOMAIN}");
        assert_eq!(f[2], aor, "From of message {n}: {line}");
        assert_eq!(f[3], aor, "P-Asserted-Identity of message {n}: {line}");
        assert_eq!(f[4], sender_user, "body of message {n}: {line}");
        numbers.insert(n);
    }
    assert_eq!(
        numbers,
        (1..=MESSAGES).collect::<BTreeSet<_>>(),
        "every message number 1..={MESSAGES} received"
    );
    eprintln!("SIPp: registration + {MESSAGES} authenticated MESSAGEs relayed in {elapsed:?}");
}
