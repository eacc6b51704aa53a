//! Helpers for interoperability tests that drive real third-party programs
//! (SIPp, baresip): finding the program (or failing with the Debian package
//! to install), free loopback ports, a guard that kills a child process when
//! the test ends, and bounded waits on a process's output.

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
