//! Starts the real `switchboard` binary on loopback for end-to-end tests and
//! provisions it with its own command-line tool.

#![allow(dead_code)]

pub mod interop;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_testua::{Transport, Ua, UaConfig};

/// The domain every test serves.
pub const DOMAIN: &str = "example.test";

/// A password that satisfies the CLI's rules.
pub const PASSWORD: &str = "correct horse";

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// A running server with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: SocketAddr,
    /// The HTTP (or HTTPS, with `web.tls`) listener: API, web client, SIP
    /// over WebSocket.
    pub http: SocketAddr,
    /// Everything the server printed on standard output.
    pub stdout: Arc<Mutex<Vec<String>>>,
    config: Option<String>,
    /// Extra environment of the server process (none unless given to
    /// [`Server::start_with_config_and_env`]).
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server serving [`DOMAIN`] with default settings.
    pub fn start() -> Server {
        Server::start_with_config("")
    }

    /// Starts a server with these users (all with [`PASSWORD`]) already provisioned.
    pub fn with_users(users: &[&str]) -> Server {
        Server::with_users_and_config(users, "")
    }

    /// Starts a server with users and extra configuration (TOML).
    pub fn with_users_and_config(users: &[&str], config: &str) -> Server {
        Server::build(users, config)
    }

    /// Starts a server with extra configuration (TOML).
    pub fn start_with_config(config: &str) -> Server {
        Server::build(&[], config)
    }

    /// Starts a server with extra configuration (TOML) whose process also
    /// gets `env` (e.g. libfaketime's variables, to shift its clock).
    pub fn start_with_config_and_env(config: &str, env: &[(&str, &str)]) -> Server {
        Server::build_with_env(&[], config, env)
    }

    fn build(users: &[&str], config: &str) -> Server {
        Server::build_with_env(users, config, &[])
    }

    fn build_with_env(users: &[&str], config: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = Server {
            child: None,
            dir,
            udp: ([0, 0, 0, 0], 0).into(),
            tcp: ([0, 0, 0, 0], 0).into(),
            tls: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            stdout: Arc::new(Mutex::new(Vec::new())),
            config: None,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        if !config.is_empty() {
            let path = s.dir.path().join("switchboard.toml");
            std::fs::write(&path, config).expect("write config");
            s.config = Some(path.to_string_lossy().into_owned());
        }
        if !users.is_empty() {
            s.cli_ok(&["domain", "add", DOMAIN], None);
            for u in users {
                s.cli_ok(
                    &["user", "add", &format!("{u}@{DOMAIN}"), "--password-stdin"],
                    Some(&format!("{PASSWORD}\n")),
                );
            }
        }
        s.spawn(None);
        s
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, ports: Option<(SocketAddr, SocketAddr, SocketAddr)>) {
        let (udp, tcp, tls) = ports
            .map(|(u, t, s)| (u.to_string(), t.to_string(), s.to_string()))
            .unwrap_or_else(|| {
                (
                    "127.0.0.1:0".into(),
                    "127.0.0.1:0".into(),
                    "127.0.0.1:0".into(),
                )
            });
        // A restarted server keeps its HTTP port too.
        let http = if self.http.port() == 0 {
            "127.0.0.1:0".to_owned()
        } else {
            self.http.to_string()
        };
        let mut cmd = Command::new(binary());
        cmd.arg("--data").arg(self.data());
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args([
            "serve",
            "--domain",
            DOMAIN,
            "--sip-udp",
            &udp,
            "--sip-tcp",
            &tcp,
            "--sip-tls",
            &tls,
            "--http",
            &http,
        ]);
        cmd.env(
            "RUST_LOG",
            std::env::var("SWITCHBOARD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let lines = self.stdout.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = lines.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening: SIP ") {
                        let (t, a) = rest.split_once(' ').expect("listening line");
                        let addr: SocketAddr = a.parse().expect("address");
                        match t {
                            "UDP" => self.udp = addr,
                            "TCP" => self.tcp = addr,
                            "TLS" => self.tls = addr,
                            _ => {}
                        }
                    }
                    if let Some(a) = line
                        .strip_prefix("listening: HTTP ")
                        .or_else(|| line.strip_prefix("listening: HTTPS "))
                    {
                        self.http = a.parse().expect("address");
                    }
                    if line == "ready" {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "switchboard did not become ready; output so far: {:?}",
                        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
                    );
                }
            }
        }
        self.child = Some(child);
    }

    /// Stops the server (SIGTERM, then kill) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server abruptly (a crash).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.stop();
        let ports = (self.udp, self.tcp, self.tls);
        self.spawn(Some(ports));
    }

    /// Starts the server again after [`Server::crash`] or [`Server::stop`].
    pub fn start_again(&mut self) {
        let ports = (self.udp, self.tcp, self.tls);
        self.spawn(Some(ports));
    }

    /// Runs the command-line tool on this server's data directory.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(binary());
        cmd.arg("--data")
            .arg(self.data())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("run switchboard cli");
        if let Some(input) = stdin
            && let Some(mut si) = child.stdin.take()
        {
            si.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("cli output")
    }

    /// Runs the CLI and asserts success; returns standard output.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "switchboard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `user@DOMAIN` with [`PASSWORD`] while the server runs, and
    /// waits long enough for the server to pick the change up.
    pub fn add_user(&self, user: &str) {
        self.cli_ok(
            &[
                "user",
                "add",
                &format!("{user}@{DOMAIN}"),
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        std::thread::sleep(Duration::from_millis(1200));
    }

    /// The address of the listener for `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        }
    }

    /// A user agent for `user` over `transport` (not yet registered).
    pub async fn ua(&self, user: &str, transport: Transport) -> Ua {
        Ua::connect(UaConfig::new(
            transport,
            self.addr(transport),
            DOMAIN,
            user,
            PASSWORD,
        ))
        .await
        .expect("connect user agent")
    }

    /// A registered user agent.
    pub async fn registered(&self, user: &str, transport: Transport) -> Ua {
        let ua = self.ua(user, transport).await;
        let resp = ua.register(3600).await.expect("register");
        assert_eq!(resp.status, 200, "registration of {user} failed: {resp:?}");
        ua
    }

    /// Lines printed so far.
    pub fn output(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Waits until `cond` holds (polling), or panics with `what` after `timeout`.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut cond: F) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Holds an exclusive transaction on `DATA/archive.db`: nobody else can
/// write the archive until it is released.
pub struct ArchiveLock(Option<sqlx::sqlite::SqliteConnection>);

impl ArchiveLock {
    pub async fn take(data: &Path) -> ArchiveLock {
        let mut conn = archive_connection(data).await;
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .expect("BEGIN EXCLUSIVE on archive.db");
        ArchiveLock(Some(conn))
    }

    pub async fn release(mut self) {
        if let Some(mut conn) = self.0.take() {
            sqlx::query("ROLLBACK")
                .execute(&mut conn)
                .await
                .expect("release the archive lock");
            sqlx::Connection::close(conn).await.expect("close");
        }
    }
}

/// A direct connection to the archive file (what an intruder or a backup
/// tool has).
pub async fn archive_connection(data: &Path) -> sqlx::sqlite::SqliteConnection {
    // Foreign keys off: deleting a record leaves its index rows alone, so
    // that putting the record back restores the file exactly.
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("archive.db"))
        .foreign_keys(false);
    <sqlx::sqlite::SqliteConnection as sqlx::Connection>::connect_with(&opts)
        .await
        .expect("open archive.db")
}
