//! Mail-store delivery of the compliance archive (`[archive.mail]`): every
//! finished conversation's transcript, one RFC 5322 message built by
//! [`archive_export::eml`](crate::archive_export::eml), is appended over IMAP
//! (TLS only) to a folder per participant who is a user of a served domain,
//! so that the organisation's mail archive and eDiscovery tools cover IM too.
//!
//! Each round the job asks the archive for conversations whose last record is
//! older than the idle time and that some party has not received since, and
//! for each of them and each recipient:
//!
//! 1. makes sure the folder exists (`CREATE`, an error only if `SELECT` then
//!    fails as well);
//! 2. `SELECT`s it and searches it for the transcript's `Message-ID`, which
//!    names the conversation and its last record (seq and chain hash): a
//!    transcript appended by an earlier attempt whose bookkeeping was lost
//!    (crash, lost connection after the server stored it, archive restored
//!    from a backup) is found and not appended again;
//! 3. `APPEND`s it when it is not there;
//! 4. only then records the delivery with
//!    [`mark_mailed`](switchboard_store::archive::Archive::mark_mailed), at the
//!    time of the transcript's last record (so that a record archived while
//!    the job worked makes the conversation due again instead of being
//!    covered by the mark).
//!
//! Parties who get no copy (outside the served domains, or not a user) are
//! marked once every recipient of the conversation has it, so that the
//! conversation counts as delivered and retention can purge it. A
//! conversation that goes on after it was delivered is due again and its
//! whole transcript, with a new `Message-ID`, is appended again.
//!
//! The check before each append is what makes "at most once per conversation
//! and folder" hold across crashes, without a second bookkeeping store that
//! could itself be lost; it costs one `SEARCH` in a folder that is selected
//! anyway.
//!
//! Failures (connection refused, TLS or authentication failure, timeouts, a
//! folder the server refuses) are logged without secrets and retried with
//! exponential backoff; the job's state is written to
//! `DATA/archive-mail-status.json`, which `switchboard archive status` shows.
//! Nothing is marked delivered that the server did not confirm.
//!
//! One job per archive: in a pool, run it on one front end only.

use crate::config::ArchiveMailConfig;
use anyhow::Context;
use async_imap::error::Error as ImapError;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;
use switchboard_core::{Address, Directory};
use switchboard_store::archive::{
    Archive, ArchiveQuery, ArchiveRecord, ConversationSummary, MAX_ARCHIVE_LIMIT,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The status file in the data directory.
pub const STATUS_FILE: &str = "archive-mail-status.json";

/// Conversations handled per round; a full batch is followed by another
/// round at once.
const BATCH: u32 = 200;

/// The longest wait between attempts after failures (unless the configured
/// interval is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The domain part of the transcripts' `Message-ID`s (as in exports).
const MESSAGE_ID_DOMAIN: &str = "archive.switchboard";

/// What `switchboard archive status` shows about the job
/// (`DATA/archive-mail-status.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailStatus {
    /// `ok` (the last round delivered everything that was due) or `failing`.
    pub state: String,
    /// The IMAP server, `host:port`.
    pub server: String,
    /// When a round last finished without any failure (ms since the epoch).
    pub last_success_ms: Option<i64>,
    /// When the last round ran.
    pub last_attempt_ms: Option<i64>,
    /// What went wrong in the last round (none when it succeeded). Never
    /// contains the password.
    pub last_error: Option<String>,
    /// Finished conversations not yet delivered to every recipient, as far
    /// as the last round saw (at most one batch).
    pub pending_conversations: u64,
    /// When the next round runs.
    pub next_attempt_ms: i64,
    /// Transcripts appended since the job was first started.
    pub delivered_total: u64,
    /// Transcripts found already in their folder (an earlier attempt
    /// appended them but could not record it) and recorded without a second
    /// append.
    pub already_present_total: u64,
    /// Rounds in a row that failed.
    pub consecutive_failures: u32,
}

/// The IMAP account's password, read from `password_file`. Its `Debug`
/// shows nothing of it.
#[derive(Clone)]
struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How the job connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Implicit,
    StartTls,
}

/// Everything the job needs, checked at start-up.
#[derive(Clone)]
struct Settings {
    host: String,
    port: u16,
    mode: TlsMode,
    tls: Arc<rustls::ClientConfig>,
    username: String,
    password_file: PathBuf,
    folder: String,
    seen: bool,
    idle_ms: i64,
    interval: Duration,
    timeout: Duration,
    archive_address: String,
}

/// Checks the configuration that can only be checked against the files it
/// names (the CA file parses, the password file is readable) and starts the
/// job on the current tokio runtime. `archive_address` is the `From` of the
/// transcripts.
pub fn start(
    archive: Arc<dyn Archive>,
    directory: Arc<Directory>,
    data: &Path,
    config: &ArchiveMailConfig,
    archive_address: String,
) -> anyhow::Result<()> {
    let tls = client_tls_config(config.ca_file.as_deref())?;
    let password_file = config
        .password_file
        .clone()
        .context("archive.mail.password_file is not set")?;
    read_password(&password_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    warn_if_readable_by_others(&password_file);
    let settings = Settings {
        host: config.server.clone(),
        port: config.effective_port(),
        mode: if config.tls == "starttls" {
            TlsMode::StartTls
        } else {
            TlsMode::Implicit
        },
        tls,
        username: config.username.clone(),
        password_file,
        folder: config.folder.clone(),
        seen: config.seen,
        idle_ms: i64::try_from(config.idle().as_millis()).unwrap_or(i64::MAX),
        interval: Duration::from_secs(config.interval_seconds),
        timeout: Duration::from_secs(config.timeout_seconds),
        archive_address,
    };
    let status_path = data.join(STATUS_FILE);
    let mut status = std::fs::read_to_string(&status_path)
        .ok()
        .and_then(|s| serde_json::from_str::<MailStatus>(&s).ok())
        .unwrap_or_default();
    status.server = format!("{}:{}", settings.host, settings.port);
    tracing::info!(
        server = %status.server,
        tls = ?settings.mode,
        folder = %settings.folder,
        idle_ms = settings.idle_ms,
        "archive mail-store delivery started"
    );
    let job = Job {
        archive,
        directory,
        settings,
        status,
        status_path,
        known_folders: HashSet::new(),
    };
    tokio::spawn(job.run());
    Ok(())
}

/// Checks a folder template; returns the problem, if any.
pub fn check_folder_template(template: &str) -> Option<String> {
    if template.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if template.split('/').any(|level| level.is_empty()) {
        return Some(format!(
            "{template:?} has an empty folder level (a leading, trailing or doubled `/`)"
        ));
    }
    if template.contains(['\r', '\n', '\0']) {
        return Some("must not contain line breaks".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Some(format!("{template:?} has a `{{` without `}}`"));
        };
        let name = &after[..close];
        if !matches!(name, "user" | "local" | "domain") {
            return Some(format!(
                "{template:?} uses {{{name}}}: the placeholders are {{user}}, {{local}} and {{domain}}"
            ));
        }
        rest = &after[close + 1..];
    }
    None
}

/// The folder of `user` from the template: `/`-separated levels with the
/// placeholders filled in, a server delimiter inside a level replaced by
/// `_` (so that `alice@example.com` stays one folder where the delimiter is
/// `.`), joined with the server's delimiter and encoded in IMAP's modified
/// UTF-7.
fn folder_name(template: &str, user: &Address, delimiter: Option<char>) -> String {
    let address = user.to_string();
    let sep = delimiter.unwrap_or('/');
    let levels: Vec<String> = template
        .split('/')
        .map(|level| {
            level
                .replace("{user}", &address)
                .replace("{local}", user.user())
                .replace("{domain}", user.domain())
                .chars()
                .map(|c| {
                    if Some(c) == delimiter || c == '/' {
                        '_'
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    utf7_imap(&levels.join(&sep.to_string()))
}

/// Modified UTF-7 of mailbox names (RFC 3501 section 5.1.3).
fn utf7_imap(name: &str) -> String {
    fn flush(out: &mut String, pending: &mut Vec<u16>) {
        if pending.is_empty() {
            return;
        }
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    }
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// The `Message-ID` of a transcript: the conversation and its last record,
/// so that a longer transcript of a conversation that went on gets a new one.
fn transcript_message_id(conversation: &str, last: &ArchiveRecord) -> String {
    let conv: String = conversation
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash: String = last.hash.chars().take(16).collect();
    format!("<{conv}.{}.{hash}@{MESSAGE_ID_DOMAIN}>", last.seq)
}

/// `message` with its `Message-ID` header (and its continuation lines)
/// replaced by `id`; added at the top if it has none.
fn with_message_id(message: &[u8], id: &str) -> Vec<u8> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    let mut out = Vec::with_capacity(message.len() + id.len() + 16);
    let line = format!("Message-ID: {id}\r\n");
    let mut pos = 0;
    let mut replaced = false;
    while pos < header_end {
        let end = message[pos..header_end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| pos + p + 2)
            .unwrap_or(header_end);
        let is_message_id = message[pos..end]
            .get(..11)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"message-id:"));
        if is_message_id && !replaced {
            out.extend_from_slice(line.as_bytes());
            replaced = true;
            pos = end;
            // Skip continuation lines of the folded header.
            while pos < header_end && matches!(message[pos], b' ' | b'\t') {
                pos = message[pos..header_end]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map(|p| pos + p + 2)
                    .unwrap_or(header_end);
            }
            continue;
        }
        out.extend_from_slice(&message[pos..end]);
        pos = end;
    }
    out.extend_from_slice(&message[header_end..]);
    if !replaced {
        let mut with = line.into_bytes();
        with.extend_from_slice(&out);
        return with;
    }
    out
}

/// An IMAP quoted string (the caller refuses CR, LF and NUL).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// IMAP `date-time` (the `APPEND` internal date) of a time in ms.
fn imap_date_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[day]-[month repr:short]-[year] [hour]:[minute]:[second] +0000"
    );
    format!("\"{}\"", t.format(&fmt).unwrap_or_default())
}

/// Reads the password file: one line, its line break dropped. Errors name
/// the file, never its content.
fn read_password(path: &Path) -> Result<Password, String> {
    let raw = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read archive.mail.password_file {}: {e}",
            path.display()
        )
    })?;
    let password = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw);
    if password.is_empty() {
        return Err(format!(
            "archive.mail.password_file {} is empty",
            path.display()
        ));
    }
    if password.contains(['\r', '\n', '\0']) {
        return Err(format!(
            "archive.mail.password_file {} holds more than one line",
            path.display()
        ));
    }
    Ok(Password(password.to_owned()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "archive.mail.password_file can be read by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The TLS client configuration: TLS 1.2 and 1.3 (ring), trusting the
/// certificates of `ca_file`, or the operating system's roots without it.
fn client_tls_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read archive.mail.ca_file {}", path.display()))?;
            let mut found = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| {
                    format!("archive.mail.ca_file {}: unreadable PEM", path.display())
                })?;
                roots.add(cert).with_context(|| {
                    format!(
                        "archive.mail.ca_file {}: a certificate cannot be used as a trust anchor",
                        path.display()
                    )
                })?;
                found += 1;
            }
            if found == 0 {
                anyhow::bail!(
                    "archive.mail.ca_file {}: no PEM certificate in it",
                    path.display()
                );
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "while loading the system's trusted certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                anyhow::bail!(
                    "no trusted certificates found on this system for the IMAP server: set archive.mail.ca_file"
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A stream that keeps the password out of the IMAP library: the library
/// is given a random stand-in for it, and only this wrapper, on the way to
/// the TLS stream, puts the real password in place of the stand-in. The
/// library's own trace logging of commands (`log` records that reach the
/// server's log at `trace` level) never sees it.
struct Guarded<S> {
    inner: S,
    /// `(stand-in as the library quotes it, the password quoted)`, until the
    /// login command has gone out; meanwhile writes are held in `held`.
    login: Option<(Vec<u8>, Vec<u8>)>,
    held: Vec<u8>,
    sent: usize,
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("logging_in", &self.login.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncWrite + Unpin> Guarded<S> {
    fn new(inner: S, stand_in: &str, password: &Password) -> Guarded<S> {
        Guarded {
            inner,
            login: Some((
                quoted(stand_in).into_bytes(),
                quoted(&password.0).into_bytes(),
            )),
            held: Vec::new(),
            sent: 0,
        }
    }

    /// Writes out what is held (after putting the password in place).
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        if let Some((stand_in, password)) = &self.login
            && let Some(at) = self
                .held
                .windows(stand_in.len())
                .position(|w| w == stand_in.as_slice())
        {
            let mut with = Vec::with_capacity(self.held.len() + password.len());
            with.extend_from_slice(&self.held[..at]);
            with.extend_from_slice(password);
            with.extend_from_slice(&self.held[at + stand_in.len()..]);
            self.held = with;
            self.login = None;
        }
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.login.is_some() {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

type Session = async_imap::Session<Guarded<TlsStream<TcpStream>>>;

/// Why a delivery did not happen.
#[derive(Debug)]
enum Failure {
    /// The connection is unusable (refused, TLS, login, timeout, lost): the
    /// round stops.
    Connection(String),
    /// The server refused something for one folder (`NO`/`BAD`): the other
    /// recipients are still served.
    Mailbox(String),
    /// The archive database failed: the round stops.
    Archive(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Connection(m) | Failure::Mailbox(m) | Failure::Archive(m) => m,
        }
    }
}

/// Classifies an IMAP error from a command about `what`.
fn imap_failure(what: &str, e: ImapError) -> Failure {
    let text = imap_error_text(&e);
    match e {
        ImapError::No(_) | ImapError::Bad(_) | ImapError::Validate(_) | ImapError::Append => {
            Failure::Mailbox(format!("{what}: {text}"))
        }
        _ => Failure::Connection(format!("{what}: {text}")),
    }
}

/// An IMAP error for people: the server's `NO`/`BAD` text as it sent it
/// (the library renders it as `code: …, info: Some("…")`).
fn imap_error_text(e: &ImapError) -> String {
    let (answer, detail) = match e {
        ImapError::No(d) => ("NO", d),
        ImapError::Bad(d) => ("BAD", d),
        other => return other.to_string(),
    };
    let info = detail
        .split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .map(|i| i.replace("\\\"", "\""));
    match info {
        Some(info) => format!("the server answered {answer} {info}"),
        None => format!("the server answered {answer} ({detail})"),
    }
}

/// What became of one recipient's copy.
enum Delivered {
    Appended,
    AlreadyThere,
}

/// What one round did.
#[derive(Debug, Default)]
struct Round {
    due: usize,
    completed: usize,
    appended: u64,
    already_there: u64,
    /// Problems that did not stop the round (one folder refused).
    failures: Vec<String>,
    /// The problem that stopped the round.
    stopped: Option<String>,
}

struct Job {
    archive: Arc<dyn Archive>,
    directory: Arc<Directory>,
    settings: Settings,
    status: MailStatus,
    status_path: PathBuf,
    /// Folders created or selected before (no `CREATE` for them).
    known_folders: HashSet<String>,
}

impl Job {
    async fn run(mut self) {
        loop {
            let round = self.round().await;
            let now = switchboard_core::now_ms();
            self.status.last_attempt_ms = Some(now);
            self.status.delivered_total += round.appended;
            self.status.already_present_total += round.already_there;
            self.status.pending_conversations = (round.due - round.completed) as u64;
            let problem = round
                .stopped
                .clone()
                .or_else(|| match round.failures.len() {
                    0 => None,
                    1 => Some(round.failures[0].clone()),
                    n => Some(format!(
                        "{} (and {} other folder(s) failed)",
                        round.failures[0],
                        n - 1
                    )),
                });
            let wait = match &problem {
                None => {
                    self.status.state = "ok".into();
                    self.status.last_error = None;
                    self.status.last_success_ms = Some(now);
                    self.status.consecutive_failures = 0;
                    if round.due >= BATCH as usize {
                        Duration::ZERO
                    } else {
                        self.settings.interval
                    }
                }
                Some(problem) => {
                    let problem = self.scrub(problem);
                    self.status.consecutive_failures =
                        self.status.consecutive_failures.saturating_add(1);
                    let wait = backoff(self.settings.interval, self.status.consecutive_failures);
                    tracing::warn!(
                        error = %problem,
                        pending = self.status.pending_conversations,
                        retry_in_s = wait.as_secs(),
                        "archive mail-store delivery failed"
                    );
                    self.status.state = "failing".into();
                    self.status.last_error = Some(problem);
                    wait
                }
            };
            if round.appended + round.already_there > 0 {
                tracing::info!(
                    appended = round.appended,
                    already_there = round.already_there,
                    conversations = round.completed,
                    "archive transcripts delivered to the mail store"
                );
            }
            self.status.next_attempt_ms =
                now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            if let Err(e) = write_status(&self.status_path, &self.status) {
                tracing::warn!(error = %e, "cannot write the archive mail status");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Removes the password from a message, should a server ever echo it.
    fn scrub(&self, message: &str) -> String {
        match read_password(&self.settings.password_file) {
            Ok(p) if p.0.len() >= 4 && message.contains(&p.0) => {
                message.replace(&p.0, "<redacted>")
            }
            _ => message.to_owned(),
        }
    }

    async fn round(&mut self) -> Round {
        let mut round = Round::default();
        let now = switchboard_core::now_ms();
        let due = match self
            .archive
            .conversations_to_mail(now.saturating_sub(self.settings.idle_ms), BATCH)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                round.stopped = Some(format!("cannot read the archive: {e}"));
                return round;
            }
        };
        round.due = due.len();
        let mut session: Option<Session> = None;
        let mut delimiter: Option<char> = None;
        for summary in &due {
            match self
                .conversation(summary, &mut session, &mut delimiter, &mut round)
                .await
            {
                Ok(true) => round.completed += 1,
                Ok(false) => {}
                Err(Failure::Mailbox(m)) => round.failures.push(m),
                Err(f) => {
                    round.stopped = Some(f.message().to_owned());
                    break;
                }
            }
        }
        if let Some(mut s) = session {
            let _ = tokio::time::timeout(self.settings.timeout, s.logout()).await;
        }
        round
    }

    /// Delivers one conversation to every recipient that lacks it; true when
    /// every party is now marked.
    async fn conversation(
        &mut self,
        summary: &ConversationSummary,
        session: &mut Option<Session>,
        delimiter: &mut Option<char>,
        round: &mut Round,
    ) -> Result<bool, Failure> {
        let records = self.records(&summary.conversation).await?;
        let Some(last) = records.last() else {
            // Purged meanwhile: nothing left to deliver.
            return Ok(false);
        };
        let last_ms = records
            .iter()
            .map(|r| r.record.at_ms)
            .max()
            .unwrap_or(last.record.at_ms);
        let mut parties: Vec<String> = summary.participants.clone();
        for p in crate::archive_export::participants(&records) {
            if !parties.contains(&p) {
                parties.push(p);
            }
        }
        let (recipients, others): (Vec<(String, Address)>, Vec<String>) = {
            let mut recipients = Vec::new();
            let mut others = Vec::new();
            for p in parties {
                match Address::parse(&p) {
                    Ok(a) if self.directory.user(&a).is_some() => recipients.push((p, a)),
                    _ => others.push(p),
                }
            }
            (recipients, others)
        };
        let mut complete = true;
        if !recipients.is_empty() {
            let message_id = transcript_message_id(&summary.conversation, last);
            let eml = crate::archive_export::eml(
                &summary.conversation,
                &records,
                &self.settings.archive_address,
            )
            .map_err(|e| {
                Failure::Mailbox(format!(
                    "cannot build the transcript of {}: {e}",
                    summary.conversation
                ))
            })?;
            let eml = with_message_id(&eml, &message_id);
            let date = imap_date_time(last_ms);
            for (mailbox, address) in &recipients {
                if session.is_none() {
                    let (s, d) = self.connect().await?;
                    *session = Some(s);
                    *delimiter = d;
                }
                let Some(s) = session.as_mut() else {
                    continue;
                };
                let folder = folder_name(&self.settings.folder, address, *delimiter);
                match self.deliver(s, &folder, &message_id, &date, &eml).await {
                    Ok(outcome) => {
                        self.archive
                            .mark_mailed(&summary.conversation, mailbox, last_ms)
                            .await
                            .map_err(|e| {
                                Failure::Archive(format!(
                                    "transcript of {} is in {folder:?} but cannot be recorded: {e}",
                                    summary.conversation
                                ))
                            })?;
                        match outcome {
                            Delivered::Appended => round.appended += 1,
                            Delivered::AlreadyThere => round.already_there += 1,
                        }
                    }
                    Err(Failure::Mailbox(m)) => {
                        complete = false;
                        round.failures.push(format!(
                            "conversation {} to {folder:?}: {m}",
                            summary.conversation
                        ));
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        if !complete {
            return Ok(false);
        }
        for p in &others {
            self.archive
                .mark_mailed(&summary.conversation, p, last_ms)
                .await
                .map_err(|e| Failure::Archive(format!("cannot record delivery: {e}")))?;
        }
        Ok(true)
    }

    /// Every remaining record of a conversation, in order.
    async fn records(&self, conversation: &str) -> Result<Vec<ArchiveRecord>, Failure> {
        let mut records: Vec<ArchiveRecord> = Vec::new();
        let mut q = ArchiveQuery {
            conversation: Some(conversation.to_owned()),
            limit: MAX_ARCHIVE_LIMIT,
            ..Default::default()
        };
        loop {
            let batch = self.archive.search_archive(&q).await.map_err(|e| {
                Failure::Archive(format!("cannot read conversation {conversation}: {e}"))
            })?;
            let n = batch.len();
            q.after_seq = batch.last().map(|r| r.seq);
            records.extend(batch);
            if n < MAX_ARCHIVE_LIMIT as usize {
                return Ok(records);
            }
        }
    }

    /// Runs one IMAP step within the timeout.
    async fn step<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, ImapError>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.settings.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(imap_failure(what, e)),
            Err(_) => Err(Failure::Connection(format!(
                "{what}: no answer within {} s",
                self.settings.timeout.as_secs()
            ))),
        }
    }

    /// Puts one transcript in one folder, unless it is there already.
    async fn deliver(
        &mut self,
        s: &mut Session,
        folder: &str,
        message_id: &str,
        date: &str,
        eml: &[u8],
    ) -> Result<Delivered, Failure> {
        let mut create_error: Option<String> = None;
        if !self.known_folders.contains(folder)
            && let Err(f) = self.step("CREATE", s.create(folder)).await
        {
            match f {
                // Usually "already exists"; SELECT tells.
                Failure::Mailbox(m) => create_error = Some(m),
                other => return Err(other),
            }
        }
        match self.step("SELECT", s.select(folder)).await {
            Ok(_) => {
                self.known_folders.insert(folder.to_owned());
            }
            Err(Failure::Mailbox(m)) => {
                self.known_folders.remove(folder);
                return Err(Failure::Mailbox(create_error.unwrap_or(m)));
            }
            Err(other) => return Err(other),
        }
        let query = format!("HEADER Message-ID {}", quoted(message_id));
        let found = self.step("SEARCH", s.uid_search(&query)).await?;
        if !found.is_empty() {
            return Ok(Delivered::AlreadyThere);
        }
        let flags = self.settings.seen.then_some("(\\Seen)");
        self.step("APPEND", s.append(folder, flags, Some(date), eml))
            .await?;
        Ok(Delivered::Appended)
    }

    /// Connects, secures and logs in; also returns the server's hierarchy
    /// delimiter.
    async fn connect(&self) -> Result<(Session, Option<char>), Failure> {
        let st = &self.settings;
        let server = format!("{}:{}", st.host, st.port);
        let timeout = st.timeout;
        let conn_err = |what: &str, e: &dyn std::fmt::Display| {
            Failure::Connection(format!("{what} {server}: {e}"))
        };
        let tcp =
            match tokio::time::timeout(timeout, TcpStream::connect((st.host.as_str(), st.port)))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(conn_err("cannot connect to", &e)),
                Err(_) => {
                    return Err(conn_err(
                        "cannot connect to",
                        &format!("no answer within {} s", timeout.as_secs()),
                    ));
                }
            };
        let _ = tcp.set_nodelay(true);
        let tcp = match st.mode {
            TlsMode::Implicit => tcp,
            TlsMode::StartTls => {
                let mut plain = async_imap::Client::new(tcp);
                let greeting = tokio::time::timeout(timeout, plain.read_response()).await;
                match greeting {
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => {
                        return Err(conn_err("no greeting from", &"connection closed"));
                    }
                    Ok(Err(e)) => return Err(conn_err("no greeting from", &e)),
                    Err(_) => return Err(conn_err("no greeting from", &"timed out")),
                }
                match tokio::time::timeout(
                    timeout,
                    plain.run_command_and_check_ok("STARTTLS", None),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(conn_err("STARTTLS refused by", &e)),
                    Err(_) => return Err(conn_err("STARTTLS", &"timed out")),
                }
                plain.into_inner()
            }
        };
        let name = rustls::pki_types::ServerName::try_from(st.host.clone())
            .map_err(|e| conn_err("invalid server name for", &e))?;
        let tls = match tokio::time::timeout(
            timeout,
            TlsConnector::from(st.tls.clone()).connect(name, tcp),
        )
        .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(conn_err("TLS handshake failed with", &e)),
            Err(_) => return Err(conn_err("TLS handshake with", &"timed out")),
        };
        let password = read_password(&st.password_file).map_err(Failure::Connection)?;
        let stand_in = stand_in();
        let mut client = async_imap::Client::new(Guarded::new(tls, &stand_in, &password));
        if st.mode == TlsMode::Implicit {
            match tokio::time::timeout(timeout, client.read_response()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => return Err(conn_err("no greeting from", &"connection closed")),
                Ok(Err(e)) => return Err(conn_err("no greeting from", &e)),
                Err(_) => return Err(conn_err("no greeting from", &"timed out")),
            }
        }
        let mut session =
            match tokio::time::timeout(timeout, client.login(&st.username, &stand_in)).await {
                Ok(Ok(s)) => s,
                Ok(Err((e, _))) => {
                    return Err(Failure::Connection(format!(
                        "login as {:?} at {server} failed: {}",
                        st.username,
                        imap_error_text(&e)
                    )));
                }
                Err(_) => {
                    return Err(Failure::Connection(format!(
                        "login as {:?} at {server}: no answer within {} s",
                        st.username,
                        timeout.as_secs()
                    )));
                }
            };
        let delimiter = self.delimiter(&mut session).await?;
        Ok((session, delimiter))
    }

    /// The server's hierarchy delimiter (`LIST "" ""`); `None` for a flat
    /// server.
    async fn delimiter(&self, s: &mut Session) -> Result<Option<char>, Failure> {
        let fut = async {
            let mut names = s.list(Some(""), Some("\"\"")).await?;
            let mut delimiter = None;
            while let Some(name) = names.next().await {
                if let Some(d) = name?.delimiter().and_then(|d| d.chars().next()) {
                    delimiter = Some(d);
                }
            }
            Ok::<_, ImapError>(delimiter)
        };
        match self.step("LIST", fut).await {
            Ok(d) => Ok(d),
            Err(Failure::Mailbox(m)) => Err(Failure::Connection(m)),
            Err(f) => Err(f),
        }
    }
}

/// A fresh random stand-in for the password (see [`Guarded`]).
fn stand_in() -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // Practically impossible; a fixed stand-in is still never the password.
        return "switchboard-password-stand-in".into();
    }
    format!("sb-{}", hex::encode(bytes))
}

/// The wait after `failures` failed rounds in a row: the interval, doubled
/// for each further failure, at most 5 minutes (or the interval if longer).
fn backoff(interval: Duration, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.max(interval);
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    interval.saturating_mul(factor).min(cap)
}

/// Writes the status file atomically (temporary file, then rename).
fn write_status(path: &Path, status: &MailStatus) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn addr(s: &str) -> Address {
        Address::parse(s).expect("address")
    }

    #[test]
    fn folder_levels_use_the_server_delimiter() {
        let alice = addr("alice@example.com");
        assert_eq!(
            folder_name("Archive/{user}", &alice, Some('/')),
            "Archive/alice@example.com"
        );
        assert_eq!(
            folder_name("Archive/{user}", &alice, Some('.')),
            "Archive.alice@example_com",
            "a dot in the address must not open a sub-folder"
        );
        assert_eq!(
            folder_name("INBOX/IM/{domain}/{local}", &alice, Some('.')),
            "INBOX.IM.example_com.alice"
        );
        assert_eq!(
            folder_name("Archive/{user}", &alice, None),
            "Archive/alice@example.com"
        );
    }

    #[test]
    fn folder_names_are_modified_utf7() {
        assert_eq!(utf7_imap("Archive"), "Archive");
        assert_eq!(utf7_imap("A&B"), "A&-B");
        // RFC 3501's example: "~peter/mail/台北/日本語".
        assert_eq!(
            utf7_imap("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(utf7_imap("Entwürfe"), "Entw&APw-rfe");
    }

    #[test]
    fn folder_templates_are_checked() {
        assert_eq!(check_folder_template("Archive/{user}"), None);
        assert_eq!(check_folder_template("Compliance"), None);
        for bad in [
            "",
            "Archive/",
            "/x",
            "a//b",
            "Archive/{usr}",
            "Archive/{user",
        ] {
            assert!(check_folder_template(bad).is_some(), "{bad:?} accepted");
        }
    }

    fn record(seq: i64, hash: &str) -> ArchiveRecord {
        ArchiveRecord {
            seq,
            record: switchboard_store::archive::NewArchiveRecord {
                conversation: "c".into(),
                kind: "message".into(),
                at_ms: 0,
                sender: "a@x".into(),
                participants: vec!["b@x".into()],
                content_type: "text/plain".into(),
                body: b"hi".to_vec(),
                text: "hi".into(),
                outcome: "delivered".into(),
                external: false,
            },
            prev_hash: String::new(),
            hash: hash.into(),
        }
    }

    #[test]
    fn message_id_names_conversation_and_last_record() {
        let h = "0123456789abcdef0123456789abcdef";
        let a = transcript_message_id("abc/def", &record(7, h));
        assert_eq!(a, "<abc_def.7.0123456789abcdef@archive.switchboard>");
        assert_ne!(a, transcript_message_id("abc/def", &record(8, h)));
        // A search for one id cannot match another as a substring.
        let longer = transcript_message_id("abc/def", &record(70, h));
        assert!(!longer.contains(&a));
    }

    #[test]
    fn message_id_is_replaced_in_the_header_only() {
        let msg = b"From: a\r\nMessage-ID: <old@x>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n";
        let out = String::from_utf8(with_message_id(msg, "<new@y>")).expect("utf8");
        assert_eq!(
            out,
            "From: a\r\nMessage-ID: <new@y>\r\nSubject: s\r\n\r\nMessage-ID: <body@x>\r\n"
        );
        let folded = b"Message-Id:\r\n <very-long@x>\r\nTo: b\r\n\r\nbody";
        let out = String::from_utf8(with_message_id(folded, "<n@y>")).expect("utf8");
        assert_eq!(out, "Message-ID: <n@y>\r\nTo: b\r\n\r\nbody");
        let none = b"To: b\r\n\r\nbody";
        let out = String::from_utf8(with_message_id(none, "<n@y>")).expect("utf8");
        assert_eq!(out, "Message-ID: <n@y>\r\nTo: b\r\n\r\nbody");
    }

    #[test]
    fn message_id_replacement_keeps_the_export_transcript() {
        let records = [record(1, "ab"), record(2, "cd")];
        let eml = crate::archive_export::eml("c", &records, "archive@x").expect("eml");
        let id = transcript_message_id("c", &records[1]);
        let out = String::from_utf8(with_message_id(&eml, &id)).expect("utf8");
        assert_eq!(out.matches("Message-ID:").count(), 1, "{out}");
        assert!(out.contains(&format!("Message-ID: {id}\r\n")), "{out}");
        let original = String::from_utf8(eml).expect("utf8");
        let body = |m: &str| m.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        assert_eq!(body(&out), body(&original));
    }

    #[test]
    fn internal_date_is_imap_date_time() {
        // 2026-11-24T09:05:03Z
        assert_eq!(
            imap_date_time(1_795_511_103_000),
            "\"24-Nov-2026 09:05:03 +0000\""
        );
    }

    #[test]
    fn server_refusals_read_as_the_server_wrote_them() {
        let e = ImapError::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            imap_error_text(&e),
            "the server answered NO [AUTHENTICATIONFAILED] Authentication failed."
        );
        assert!(matches!(
            imap_failure("APPEND", ImapError::No("x".into())),
            Failure::Mailbox(_)
        ));
        assert!(matches!(
            imap_failure("SELECT", ImapError::ConnectionLost),
            Failure::Connection(_)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(60), 1), s(60));
        assert_eq!(backoff(s(60), 2), s(120));
        assert_eq!(backoff(s(60), 3), s(240));
        assert_eq!(backoff(s(60), 4), s(300));
        assert_eq!(backoff(s(60), 400), s(300));
        assert_eq!(backoff(s(1), 3), s(4));
        assert_eq!(backoff(s(900), 5), s(900), "an interval above the cap wins");
    }

    #[test]
    fn password_file_content_never_appears_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2-secret\n").expect("write");
        assert_eq!(read_password(&p).expect("read").0, "hunter2-secret");
        std::fs::write(&p, "hunter2-secret\r\n").expect("write");
        assert_eq!(read_password(&p).expect("read").0, "hunter2-secret");
        std::fs::write(&p, "hunter2-secret\nsecond line\n").expect("write");
        let e = read_password(&p).expect_err("two lines");
        assert!(!e.contains("hunter2") && e.contains("password_file"), "{e}");
        assert!(
            !format!("{:?}", Password("hunter2-secret".into())).contains("hunter2"),
            "Debug shows the password"
        );
        std::fs::write(&p, "\n").expect("write");
        assert!(read_password(&p).is_err(), "empty password accepted");
        let e = read_password(&dir.path().join("missing")).expect_err("missing");
        assert!(e.contains("password_file"), "{e}");
    }

    #[tokio::test]
    async fn password_reaches_the_wire_but_not_the_library() {
        let (client, mut server) = tokio::io::duplex(4096);
        let password = Password("p\"a\\ss word".into());
        let mut g = Guarded::new(client, "sb-standin", &password);
        // As async-imap writes a command: tag, space, text, CRLF, flush.
        for part in [&b"A1"[..], b" ", b"LOGIN \"svc\" \"sb-standin\"", b"\r\n"] {
            g.write_all(part).await.expect("write");
        }
        g.flush().await.expect("flush");
        g.write_all(b"A2 SELECT \"sb-standin\"\r\n")
            .await
            .expect("write");
        g.flush().await.expect("flush");
        drop(g);
        let mut wire = String::new();
        server.read_to_string(&mut wire).await.expect("read");
        assert_eq!(
            wire, "A1 LOGIN \"svc\" \"p\\\"a\\\\ss word\"\r\nA2 SELECT \"sb-standin\"\r\n",
            "only the login's stand-in is replaced, quoted"
        );
    }

    #[test]
    fn stand_ins_are_random() {
        assert_ne!(stand_in(), stand_in());
    }
}
