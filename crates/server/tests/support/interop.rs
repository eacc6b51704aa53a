//! Helpers for interoperability tests that drive real third-party programs
//! (SIPp, baresip): finding the program (or failing with the Debian package
//! to install), free loopback ports, a guard that kills a child process when
//! the test ends, bounded waits on a process's output, a baresip driver
//! (configuration, `ctrl_tcp` commands, its SIP trace, received messages
//! and contacts' presence) and a SIPp driver (one run with its logs,
//! statistics and diagnostics).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Locates `program` on `PATH` (or the path in the environment variable
/// `env_override`, when set). Panics with a message naming the Debian
/// package to install when it is missing: an interoperability test never
/// passes silently without the program it is about.
pub fn require_program(program: &str, env_override: &str, debian_package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_override) {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "{env_override}={} is not an executable file; unset it or install the Debian \
             package `{debian_package}` (apt-get install {debian_package})",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/sbin".into()]) {
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "`{program}` was not found on PATH: this interoperability test needs the Debian \
         package `{debian_package}` (apt-get install {debian_package}; scripts/test installs \
         it), or set {env_override} to the program's path"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A UDP port on 127.0.0.1 that was free a moment ago (the kernel's pick
/// from the ephemeral range; for programs that cannot bind port 0 and tell
/// us which port they got).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind a UDP socket on 127.0.0.1")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind a TCP socket on 127.0.0.1")
}

/// A port `p` on 127.0.0.1 where UDP `p`, TCP `p` and TCP `p + 1` were all
/// free a moment ago: a SIP user agent that listens on UDP and TCP at its
/// SIP port and on TLS at the next one (baresip does) fits there.
pub fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if port == u16::MAX {
            continue;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let tls = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1));
        if tcp.is_ok() && tls.is_ok() {
            return port;
        }
    }
    panic!("no free UDP+TCP port pair on 127.0.0.1 after 100 tries");
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a text file (empty when it does not exist yet).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The first `n` lines of a text file, for failure messages.
pub fn head(path: &Path, n: usize) -> String {
    let lines = read_lines(path);
    lines[..n.min(lines.len())].join("\n")
}

/// The last `n` lines of a text file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let lines = read_lines(path);
    let from = lines.len().saturating_sub(n);
    lines[from..].join("\n")
}

#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    /// Readers (stdout, stderr) still running.
    open: usize,
}

/// A child process that is killed (SIGKILL) and reaped when the guard is
/// dropped, also when the test panics. Its standard output and standard
/// error are read line by line into memory (and copied to a log file when
/// one is given); its standard input can be kept open as a pipe.
pub struct ProcessGuard {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    captured: Arc<(Mutex<Captured>, Condvar)>,
    status: Option<ExitStatus>,
}

impl ProcessGuard {
    /// Starts `cmd` with stdout and stderr captured, stdin a pipe held by the
    /// guard (`keep_stdin`) or `/dev/null`. `log` receives a copy of
    /// everything the process prints.
    pub fn spawn(name: &str, mut cmd: Command, keep_stdin: bool, log: Option<&Path>) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({cmd:?}): {e}"));
        let captured = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let log = log.map(|p| {
            Arc::new(Mutex::new(
                File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display())),
            ))
        });
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            if let Ok(mut c) = captured.0.lock() {
                c.open += 1;
            }
            let captured = captured.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Some(log) = &log
                                && let Ok(mut f) = log.lock()
                            {
                                let _ = f.write_all(&buf);
                            }
                            let line = String::from_utf8_lossy(&buf)
                                .trim_end_matches(['\n', '\r'])
                                .to_owned();
                            let (lock, cv) = &*captured;
                            if let Ok(mut c) = lock.lock() {
                                c.lines.push(line);
                            }
                            cv.notify_all();
                        }
                    }
                }
                let (lock, cv) = &*captured;
                if let Ok(mut c) = lock.lock() {
                    c.open -= 1;
                }
                cv.notify_all();
            });
        }
        let stdin = child.stdin.take();
        ProcessGuard {
            child: Some(child),
            stdin,
            captured,
            status: None,
        }
    }

    /// Everything the process printed so far, one entry per line.
    pub fn lines(&self) -> Vec<String> {
        self.captured
            .0
            .lock()
            .map(|c| c.lines.clone())
            .unwrap_or_default()
    }

    /// Waits until a line printed by the process (from the start) satisfies
    /// `pred`, at most `timeout`. Returns the line, or `None` on timeout or
    /// when the process closed its output without printing one.
    pub fn wait_for_line(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.captured;
        let mut c = lock.lock().ok()?;
        let mut seen = 0;
        loop {
            if let Some(l) = c.lines[seen..].iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            seen = c.lines.len();
            if c.open == 0 {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            c = cv.wait_timeout(c, left).ok()?.0;
        }
    }

    /// Waits for the process to exit, at most `timeout`; kills it when it
    /// does not. Returns its exit status, `None` when it had to be killed.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.status = Some(s);
                // Let the readers drain what is left in the pipes.
                let (lock, cv) = &*self.captured;
                if let Ok(c) = lock.lock() {
                    let _ = cv.wait_timeout_while(c, Duration::from_secs(2), |c| c.open > 0);
                }
                return Some(s);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            if let Ok(s) = child.wait() {
                self.status.get_or_insert(s);
            }
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Encodes one netstring (`<length>:<bytes>,`).
pub fn netstring(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// Reads one netstring from `r`. Errors on malformed framing or EOF.
pub fn read_netstring(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut len = 0usize;
    let mut digits = 0;
    loop {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        match b[0] {
            b'0'..=b'9' if digits < 9 => {
                len = len * 10 + usize::from(b[0] - b'0');
                digits += 1;
            }
            b':' if digits > 0 => break,
            _ => return Err(bad("netstring: bad length")),
        }
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    let mut comma = [0u8; 1];
    r.read_exact(&mut comma)?;
    if comma[0] != b',' {
        return Err(bad("netstring: missing trailing comma"));
    }
    Ok(payload)
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// Gives `user@domain` of `server` the password `password` with the CLI
/// and waits (at most `timeout`) until the running server accepts it: a
/// REGISTER query (no Contact) with it gets 200.
pub async fn set_password_and_wait(
    server: &super::Server,
    user: &str,
    password: &str,
    timeout: Duration,
) {
    let address = format!("{user}@{}", super::DOMAIN);
    server.cli_ok(
        &["user", "passwd", &address, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    let deadline = Instant::now() + timeout;
    loop {
        let ua = switchboard_testua::Ua::connect(switchboard_testua::UaConfig::new(
            switchboard_testua::Transport::Udp,
            server.udp,
            super::DOMAIN,
            user,
            password,
        ))
        .await
        .expect("connect a query user agent");
        let accepted = match ua.register_request(&switchboard_testua::RegisterOptions::new(0)) {
            Ok(mut req) => {
                req.headers.remove(&switchboard_sip::HeaderName::Contact);
                req.headers.remove(&switchboard_sip::HeaderName::Expires);
                ua.request(req).await.is_ok_and(|r| r.status == 200)
            }
            Err(_) => false,
        };
        if accepted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not accept the new password of {address} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What [`Baresip::start_with`] adds to the plain configuration of
/// [`Baresip::start`].
#[derive(Debug, Clone, Default)]
pub struct BaresipOptions {
    /// More application modules (`module_app`), such as `presence.so`.
    pub app_modules: Vec<String>,
    /// Appended to the account line, such as `;pubint=60` (the presence
    /// module PUBLISHes only for an account with `pubint` above 0).
    pub account_params: String,
    /// The lines of the `contacts` file, written as given, such as
    /// `"Alice" <sip:alice@example.test>;presence=p2p` (the presence module
    /// SUBSCRIBEs only to contacts marked `;presence=p2p`).
    pub contacts: Vec<String>,
}

/// One SIP message in baresip's `-s` trace: the "`UDP <from> -> <to>`" line
/// that opens it and its lines (start line, headers, body).
#[derive(Debug, Clone)]
pub struct TracedSip {
    pub from: String,
    pub to: String,
    pub lines: Vec<String>,
}

impl TracedSip {
    /// The request or status line.
    pub fn start_line(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or("")
    }

    /// Whether this is a `method` request.
    pub fn is_request(&self, method: &str) -> bool {
        self.start_line().starts_with(&format!("{method} "))
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        self.start_line()
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }

    /// The value of the first header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.lines
            .iter()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> &str {
        self.header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }

    /// The body (the lines after the empty line that ends the headers).
    pub fn body(&self) -> String {
        self.lines
            .iter()
            .skip_while(|l| !l.is_empty())
            .skip(1)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The message as baresip printed it, for failure messages.
    pub fn text(&self) -> String {
        format!(
            "UDP {} -> {}\n{}",
            self.from,
            self.to,
            self.lines.join("\n")
        )
    }
}

/// `s` without ANSI escape sequences (baresip colours its status words).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates up to the final byte.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A change of a contact's presence that baresip's subscriber printed:
/// "`<sip:alice@example.test> changed status from Online to Offline`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub contact: String,
    pub from: String,
    pub to: String,
}

/// One headless baresip 1.0 (Debian `baresip-core`) with its own
/// configuration directory: modules `stdio`, `account`, `contact`, `menu`
/// and `ctrl_tcp` only (no audio or video), SIP on 127.0.0.1 at a free port,
/// one account registering through `server` over UDP, and `contacts` (the
/// first becomes the current contact, which the `message` command writes
/// to). Started with `-s` (SIP trace in its output) and `-t` (it quits by
/// itself after `lifetime` should the guard never run). Killed on drop.
///
/// Received instant messages appear only in the `stdio` UI's output, as
/// `<from-uri>: "<text>"`; the guard keeps baresip's stdin open and reads its
/// output.
pub struct Baresip {
    pub user: String,
    pub dir: PathBuf,
    pub sip_port: u16,
    pub ctrl_port: u16,
    pub proc: ProcessGuard,
}

impl Baresip {
    /// Writes the configuration under `root/user` and starts baresip.
    /// `password` must not contain spaces or `;` (baresip reads `auth_pass`
    /// up to the first of them).
    pub fn start(
        root: &Path,
        user: &str,
        password: &str,
        server: SocketAddr,
        contacts: &[&str],
        lifetime: Duration,
    ) -> Baresip {
        let options = BaresipOptions {
            contacts: contacts.iter().map(|c| format!("<{c}>")).collect(),
            ..BaresipOptions::default()
        };
        Baresip::start_with(root, user, password, server, lifetime, &options)
    }

    /// Like [`Baresip::start`], with extra modules, account parameters and
    /// contacts file lines written as given (see [`BaresipOptions`]).
    pub fn start_with(
        root: &Path,
        user: &str,
        password: &str,
        server: SocketAddr,
        lifetime: Duration,
        options: &BaresipOptions,
    ) -> Baresip {
        assert!(
            !password.contains([' ', ';']),
            "baresip cannot carry a password with spaces or ';'"
        );
        let baresip = require_program("baresip", "BARESIP", "baresip-core");
        let dir = root.join(user);
        std::fs::create_dir_all(&dir).expect("baresip config dir");
        let sip_port = free_sip_port();
        let ctrl_port = free_tcp_port();
        let modules = Path::new("/usr/lib/baresip/modules");
        for module in
            std::iter::once("ctrl_tcp.so").chain(options.app_modules.iter().map(String::as_str))
        {
            assert!(
                modules.join(module).exists(),
                "{} has no {module}: install the Debian package `baresip-core`",
                modules.display()
            );
        }
        let extra_modules: String = options
            .app_modules
            .iter()
            .map(|m| format!("module_app\t\t{m}\n"))
            .collect();
        let config = format!(
            "# generated by tests/support/interop.rs\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             module_path\t\t{modules}\n\
             module\t\t\tstdio.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tcontact.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             {extra_modules}\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n",
            modules = modules.display()
        );
        std::fs::write(dir.join("config"), config).expect("write config");
        let account = format!(
            "<sip:{user}@{domain};transport=udp>;auth_pass={password};\
             outbound=\"sip:{server};transport=udp\";regint=600{extra}\n",
            domain = super::DOMAIN,
            extra = options.account_params
        );
        std::fs::write(dir.join("accounts"), account).expect("write accounts");
        let contacts: String = options.contacts.iter().map(|c| format!("{c}\n")).collect();
        std::fs::write(dir.join("contacts"), contacts).expect("write contacts");
        let mut cmd = Command::new(baresip);
        cmd.arg("-f")
            .arg(&dir)
            .arg("-s")
            .args(["-t", &lifetime.as_secs().max(1).to_string()]);
        let proc = ProcessGuard::spawn(
            &format!("baresip {user}"),
            cmd,
            true,
            Some(&dir.join("output.log")),
        );
        Baresip {
            user: user.to_owned(),
            dir,
            sip_port,
            ctrl_port,
            proc,
        }
    }

    /// Waits for baresip's verdict on its registration: `Ok` on its
    /// "`user@domain: {0/UDP/v4} 200 OK`" line, `Err` with the line that
    /// reports a failure, or on timeout.
    pub fn wait_registered(&self, timeout: Duration) -> Result<String, String> {
        let me = format!("{}@{}: ", self.user, super::DOMAIN);
        let line = self.proc.wait_for_line(timeout, |l| {
            (l.contains(&me) && l.contains('{')) || l.contains("Register:")
        });
        match line {
            Some(l) if l.contains(&me) && l.contains(" 200 OK") => Ok(l),
            Some(l) => Err(l),
            None => Err(format!("no registration result within {timeout:?}")),
        }
    }

    /// Sends one command to `ctrl_tcp` and returns baresip's JSON answer.
    pub fn command(&self, command: &str, params: &str, timeout: Duration) -> serde_json::Value {
        let addr = loopback(self.ctrl_port);
        let mut stream = None;
        wait_until(timeout, || {
            stream = std::net::TcpStream::connect(addr).ok();
            stream.is_some()
        });
        let mut stream = stream.unwrap_or_else(|| {
            panic!(
                "ctrl_tcp of {} not reachable at {addr}\n{}",
                self.user,
                self.diagnostics()
            )
        });
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let token = format!("{}-{}", self.user, std::process::id());
        let request = serde_json::json!({"command": command, "params": params, "token": token});
        stream
            .write_all(&netstring(request.to_string().as_bytes()))
            .expect("send ctrl_tcp command");
        // Events may come first on the same connection; the answer is the
        // one with "response": true.
        loop {
            let frame = read_netstring(&mut stream).unwrap_or_else(|e| {
                panic!(
                    "no ctrl_tcp answer from {} to {request}: {e}\n{}",
                    self.user,
                    self.diagnostics()
                )
            });
            let v: serde_json::Value = serde_json::from_slice(&frame).unwrap_or_else(|e| {
                panic!(
                    "ctrl_tcp sent something that is not JSON ({e}): {}",
                    String::from_utf8_lossy(&frame)
                )
            });
            if v["response"] == true {
                return v;
            }
        }
    }

    /// Sends `text` to the current contact with the `message` command.
    pub fn send_message(&self, text: &str, timeout: Duration) {
        let answer = self.command("message", text, timeout);
        assert_eq!(
            answer["ok"],
            true,
            "baresip {} refused the message command: {answer}\n{}",
            self.user,
            self.diagnostics()
        );
    }

    /// The texts of the instant messages baresip printed as received from
    /// `from` (a URI such as `sip:alice@example.test`), in order.
    pub fn ims_from(&self, from: &str) -> Vec<String> {
        let prefix = format!("{from}: \"");
        self.proc
            .lines()
            .iter()
            .filter_map(|l| {
                let at = l.find(&prefix)?;
                let rest = &l[at + prefix.len()..];
                Some(rest.strip_suffix('"').unwrap_or(rest).to_owned())
            })
            .collect()
    }

    /// Waits until baresip printed an instant message from `from` whose
    /// text satisfies `pred`; returns the text.
    pub fn wait_for_im(
        &self,
        from: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.ims_from(from).into_iter().find(|t| pred(t));
            found.is_some()
        });
        found
    }

    /// The status codes of the responses to its MESSAGEs that baresip
    /// received from `server`, in order, read from its SIP trace (each traced
    /// message starts with a "UDP <from> -> <to>" line).
    pub fn message_responses(&self, server: SocketAddr) -> Vec<u16> {
        let from_server = format!("UDP {server} -> ");
        let mut out = Vec::new();
        let mut incoming = false;
        let mut status = None;
        for l in self.proc.lines() {
            let l = l.trim_start();
            if l.contains(" -> ") && l.starts_with("UDP ") {
                incoming = l.starts_with(&from_server);
                status = None;
            } else if let Some(rest) = l.strip_prefix("SIP/2.0 ") {
                status = rest.get(..3).and_then(|s| s.parse::<u16>().ok());
            } else if let Some(cseq) = l.strip_prefix("CSeq:")
                && cseq.trim_end().ends_with("MESSAGE")
                && incoming
                && let Some(s) = status.take()
            {
                out.push(s);
            }
        }
        out
    }

    /// The SIP messages of its `-s` trace so far, in order. baresip prints
    /// each as "`UDP <from> -> <to>`", the message, and a line that starts
    /// with the escape sequence that resets the colour.
    pub fn sip_trace(&self) -> Vec<TracedSip> {
        let mut out = Vec::new();
        let mut current: Option<TracedSip> = None;
        for l in self.proc.lines() {
            if let Some(m) = current.as_mut() {
                if l.starts_with("\u{1b}[;m") {
                    out.extend(current.take());
                } else {
                    m.lines.push(l);
                }
                continue;
            }
            if let Some(rest) = l.trim_start().strip_prefix("UDP ")
                && let Some((from, to)) = rest.split_once(" -> ")
            {
                current = Some(TracedSip {
                    from: from.trim().to_owned(),
                    to: to.trim().to_owned(),
                    lines: Vec::new(),
                });
            }
        }
        out
    }

    /// The presence changes of its contacts that baresip printed, in order.
    /// (The presence module's first status of a contact, from "Unknown",
    /// is not printed: see [`Baresip::contact_status`].)
    pub fn presence_changes(&self) -> Vec<PresenceChange> {
        self.proc
            .lines()
            .iter()
            .filter_map(|l| {
                let l = strip_ansi(l);
                let (contact, rest) = l.trim().split_once(" changed status from ")?;
                let contact = contact.strip_prefix('<')?.strip_suffix('>')?;
                let (from, to) = rest.split_once(" to ")?;
                Some(PresenceChange {
                    contact: contact.to_owned(),
                    from: from.trim().to_owned(),
                    to: to.trim().to_owned(),
                })
            })
            .collect()
    }

    /// Waits until baresip printed the `n`-th presence change (counting from
    /// 1) of `contact`; returns it.
    pub fn wait_for_presence_change(
        &self,
        contact: &str,
        n: usize,
        timeout: Duration,
    ) -> Option<PresenceChange> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .presence_changes()
                .into_iter()
                .filter(|c| c.contact == contact)
                .nth(n.saturating_sub(1));
            found.is_some()
        });
        found
    }

    /// The status the `contacts` command lists for `contact` (a URI such
    /// as `sip:alice@example.test`): "Unknown", "Online", "Offline", "Busy".
    pub fn contact_status(&self, contact: &str, timeout: Duration) -> Option<String> {
        let answer = self.command("contacts", "", timeout);
        let listing = strip_ansi(answer["data"].as_str().unwrap_or(""));
        let needle = format!("<{contact}>");
        listing
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.trim_start_matches(['>', ' ']).split_whitespace().next())
            .map(str::to_owned)
    }

    /// Waits until the `contacts` command lists `contact` with `status`;
    /// returns the last status seen.
    pub fn wait_for_contact_status(
        &self,
        contact: &str,
        status: &str,
        timeout: Duration,
    ) -> Option<String> {
        let mut last = None;
        wait_until(timeout, || {
            last = self.contact_status(contact, timeout);
            let seen = last.as_deref() == Some(status);
            if !seen {
                // One ctrl_tcp connection per poll: do not hammer it.
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        last
    }

    /// Its configuration and the last lines of its output, for failure messages.
    pub fn diagnostics(&self) -> String {
        let lines = self.proc.lines();
        let from = lines.len().saturating_sub(150);
        format!(
            "--- baresip {} (config {}, SIP 127.0.0.1:{}, ctrl_tcp 127.0.0.1:{}), last {} lines of output:\n{}\n",
            self.user,
            self.dir.display(),
            self.sip_port,
            self.ctrl_port,
            lines.len() - from,
            lines[from..].join("\n")
        )
    }
}

// ---------------------------------------------------------------------------
// SIPp (Debian `sip-tester`, 3.6.1)

/// SIPp's own limit on one run (`-timeout`, with `-timeout_error`).
pub const SIPP_TIMEOUT: Duration = Duration::from_secs(20);
/// A SIPp process that outlives its own limit by this much is killed.
const SIPP_KILL_GRACE: Duration = Duration::from_secs(5);

/// The path of a scenario in `tests/data/sipp/`.
pub fn sipp_scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sipp")
        .join(name)
}

/// `[authentication …]` for an injection file; the password is quoted
/// (SIPp 3.6 does not expand keywords nested inside `[authentication]`, and
/// a password with a space must be quoted).
pub fn sipp_auth_field(user: &str, password: &str) -> String {
    format!("[authentication username={user} password=\"{password}\"]")
}

/// One SIPp process (UDP, one local port the kernel handed out) with its
/// files in its own directory: the injection file, the error log
/// (`-trace_err`), the statistics (`-trace_stat`), the scenario's `<log>`
/// actions (`-trace_logs`), every SIP message (`-trace_msg`) and its
/// output. Unexpected messages abort the call (`-default_behaviors
/// all,-bye`); the run is bounded by [`SIPP_TIMEOUT`] and the process is
/// killed when the guard is dropped.
pub struct Sipp {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    pub cmdline: String,
    proc: ProcessGuard,
    status: Option<Option<ExitStatus>>,
}

impl Sipp {
    /// Starts SIPp against `server` with the scenario `scenario_file` (in
    /// `tests/data/sipp/`), the injection file made of `injection` (after a
    /// `SEQUENTIAL` line) and `extra` options (`-m`, `-auth_uri`, …).
    pub fn start(
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
        // choose; a port the kernel handed out a moment ago is safer.
        let port = free_udp_port();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let mut args: Vec<String> = vec![
            server.to_string(),
            "-sf".into(),
            sipp_scenario(scenario_file).to_string_lossy().into_owned(),
            "-inf".into(),
            inf.to_string_lossy().into_owned(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-t".into(),
            "u1".into(),
            "-nostdin".into(),
            "-default_behaviors".into(),
            "all,-bye".into(),
            "-timeout".into(),
            format!("{}s", SIPP_TIMEOUT.as_secs()),
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

    /// Waits for SIPp to exit (its own limit plus a grace period), killing
    /// it otherwise. `None` when it had to be killed.
    pub fn finish(&mut self) -> Option<ExitStatus> {
        self.finish_within(SIPP_TIMEOUT + SIPP_KILL_GRACE)
    }

    /// Like [`Sipp::finish`], waiting at most `limit`.
    pub fn finish_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return s;
        }
        let s = self.proc.wait_exit(limit);
        self.status = Some(s);
        s
    }

    /// The last row of the statistics file, by column name.
    pub fn stats(&self) -> std::collections::HashMap<String, String> {
        let lines: Vec<String> = read_lines(&self.dir.join("stat.csv"))
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.len() < 2 {
            return Default::default();
        }
        lines[0]
            .split(';')
            .zip(lines[lines.len() - 1].split(';'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A cumulative counter such as `SuccessfulCall`, from the statistics.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.stats().get(&format!("{name}(C)"))?.trim().parse().ok()
    }

    /// The lines of the action log (`<log>` in the scenario) that start
    /// with `prefix`.
    pub fn log_lines(&self, prefix: &str) -> Vec<String> {
        read_lines(&self.dir.join("actions.log"))
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Everything useful to read when this run failed: the command line,
    /// the exit, the error log, the output, the action log and the last SIP
    /// messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- SIPp `{}` ({})\n{}\nexit: {:?}\n--- error log (first lines):\n{}\n--- output (tail):\n{}\n\
             --- action log (tail):\n{}\n--- SIP messages (tail):\n{}\n",
            self.name,
            self.dir.display(),
            self.cmdline,
            self.status,
            head(&self.dir.join("errors.log"), 40),
            tail(&self.dir.join("stdout.log"), 25),
            tail(&self.dir.join("actions.log"), 15),
            tail(&self.dir.join("messages.log"), 120),
        )
    }

    /// Whether SIPp exited 0 with exactly `calls` successful calls and none
    /// failed (after waiting for it to end).
    pub fn all_successful(&mut self, calls: u64) -> bool {
        let status = self.finish();
        status.is_some_and(|s| s.code() == Some(0))
            && self.counter("SuccessfulCall") == Some(calls)
            && self.counter("FailedCall") == Some(0)
    }

    /// One line on the outcome: exit, successful and failed calls.
    pub fn outcome(&self) -> String {
        format!(
            "exit {:?}, successful calls {:?}, failed calls {:?}",
            self.status.flatten(),
            self.counter("SuccessfulCall"),
            self.counter("FailedCall")
        )
    }
}
