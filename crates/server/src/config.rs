//! The configuration file (TOML). Every key is optional and has a documented
//! default, so a server starts with no file at all; `docs/CONFIGURATION.md`
//! lists them. Unknown keys are errors, so a typo is reported with its exact
//! key instead of being silently ignored.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Served domains added at start-up (besides those in the database).
    pub domains: Vec<String>,
    pub sip: SipConfig,
    pub tls: TlsConfig,
    pub registrar: RegistrarConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub im: ImConfig,
    pub presence: PresenceConfig,
    pub conference: ConferenceConfig,
    /// Compliance archive delivery (`[archive.mail]`).
    pub archive: ArchiveConfig,
    /// The HTTP listener: API, web client, presence badges, SIP over WebSocket.
    pub web: WebConfig,
    pub log: LogConfig,
}

/// The web front door (`[web]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// HTTP listen address; empty string disables it.
    pub listen: String,
    /// Serve HTTPS (with the SIP TLS certificate) instead of plain HTTP.
    pub tls: bool,
    /// Hours a sign-in (bearer token) stays valid.
    pub session_hours: u64,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// Requests per second allowed per token (sustained).
    pub rate_per_second: f64,
    /// Requests a token may make in a burst.
    pub rate_burst: u32,
    /// Most simultaneous HTTP connections.
    pub max_connections: usize,
    /// Longest wait of one long-poll request (seconds).
    pub long_poll_seconds: u64,
    /// What anonymous callers of `/presence/{user}` see: "external"
    /// (availability only, like the External access level) or "none".
    pub anonymous_presence: String,
    /// `Access-Control-Allow-Origin` of the presence endpoints ("*", one
    /// origin, or "" for none).
    pub badge_cors_origin: String,
    /// `Cache-Control: max-age` of the presence endpoints (seconds).
    pub badge_cache_seconds: u64,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            listen: "0.0.0.0:8080".into(),
            tls: false,
            session_hours: 12,
            max_body_bytes: 256 * 1024,
            rate_per_second: 20.0,
            rate_burst: 60,
            max_connections: 1000,
            long_poll_seconds: 25,
            anonymous_presence: "external".into(),
            badge_cors_origin: "*".into(),
            badge_cache_seconds: 30,
        }
    }
}

/// SIP listeners.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listen address; empty string disables it.
    pub udp: String,
    /// TCP listen address; empty string disables it.
    pub tcp: String,
    /// TLS listen address; empty string disables it.
    pub tls: String,
}

impl Default for SipConfig {
    fn default() -> SipConfig {
        SipConfig {
            udp: "0.0.0.0:5060".into(),
            tcp: "0.0.0.0:5060".into(),
            tls: "0.0.0.0:5061".into(),
        }
    }
}

/// Certificate for SIP TLS (and later HTTPS).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Without it a self-signed certificate for the
    /// served domains is generated into the data directory on first start.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Registrar rules.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Shortest registration accepted (seconds); shorter gets 423.
    pub min_expires: u32,
    /// Longest registration granted (seconds); longer is shortened.
    pub max_expires: u32,
    /// Registration length when the client asks for none.
    pub default_expires: u32,
    /// Most devices (bindings) one user may have registered at once.
    pub max_devices_per_user: usize,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_devices_per_user: 10,
        }
    }
}

/// Digest authentication.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a nonce stays valid (seconds); then the client gets `stale=true`.
    pub nonce_lifetime: u64,
    /// Algorithms offered, one challenge each, in this order (`MD5`, `SHA-256`,
    /// `SHA-512-256`). Only MD5 by default: widely deployed clients (baresip
    /// 1.0 with libre 1.1) give up when any challenge uses an algorithm they
    /// lack, instead of picking one they know as RFC 8760 asks. Offer
    /// `["SHA-256", "MD5"]` when every client copes (docs/DECISIONS.md).
    pub algorithms: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            nonce_lifetime: 300,
            algorithms: vec!["MD5".into()],
        }
    }
}

/// Limits that protect the server from a single client.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest SIP message accepted (bytes).
    pub max_message_bytes: usize,
    /// Most header lines in one SIP message.
    pub max_headers: usize,
    /// Most simultaneous TCP/TLS connections.
    pub max_connections: usize,
    /// Most simultaneous TCP/TLS connections from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection with no traffic and no registration for this long is closed (seconds).
    pub idle_timeout: u64,
    /// A TLS handshake must finish within this many seconds.
    pub tls_handshake_timeout: u64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_message_bytes: 65_535,
            max_headers: 256,
            max_connections: 10_000,
            max_connections_per_ip: 200,
            idle_timeout: 300,
            tls_handshake_timeout: 10,
        }
    }
}

/// Instant messaging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImConfig {
    /// Largest MESSAGE body accepted (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Most messages held for one signed-out user.
    pub offline_max_per_user: u32,
    /// How long a held message waits before it expires (hours).
    pub offline_expiry_hours: u64,
}

impl Default for ImConfig {
    fn default() -> ImConfig {
        ImConfig {
            max_body_bytes: 32_768,
            offline_max_per_user: 500,
            offline_expiry_hours: 24 * 14,
        }
    }
}

/// Presence and contact lists.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Seconds a device may be idle before Available turns into Away.
    pub away_after_seconds: u64,
    /// Shortest subscription or publication accepted (seconds); shorter gets 423.
    pub min_expires: u32,
    /// Longest subscription or publication granted (seconds).
    pub max_expires: u32,
    /// Length when the client asks for none (seconds).
    pub default_expires: u32,
    /// Most subscriptions one device may hold; more gets 503 with Retry-After.
    pub max_subscriptions_per_device: usize,
    /// Most contacts in one user's list.
    pub max_contacts: u32,
}

impl Default for PresenceConfig {
    fn default() -> PresenceConfig {
        PresenceConfig {
            away_after_seconds: 300,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_subscriptions_per_device: 2000,
            max_contacts: 1000,
        }
    }
}

/// Multiparty IM (the conference focus).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConferenceConfig {
    /// User part of the conference factory URI in every served domain
    /// (`sip:conf-factory@DOMAIN`); reserved, no user may have it.
    pub factory_user: String,
    /// Most participants in one conference.
    pub max_participants: usize,
    /// A conference without messages or joins for this long ends (minutes).
    pub idle_timeout_minutes: u64,
    /// History replayed to late joiners and kept when a conversation
    /// escalates: at most this many messages…
    pub history_messages: usize,
    /// …none older than this (seconds).
    pub history_seconds: u64,
    /// Anyone in a served domain may join a conference without an invitation.
    pub open_to_organisation: bool,
}

impl Default for ConferenceConfig {
    fn default() -> ConferenceConfig {
        ConferenceConfig {
            factory_user: "conf-factory".into(),
            max_participants: 250,
            idle_timeout_minutes: 120,
            history_messages: 50,
            history_seconds: 300,
            open_to_organisation: false,
        }
    }
}

/// Compliance archiving settings of the server process (`[archive]`). The
/// archiving policies themselves live in the database (`switchboard archive
/// config` and `archive policy`); this section holds what only the server
/// process needs.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Delivery of conversation transcripts into a mail store over IMAP.
    pub mail: ArchiveMailConfig,
}

/// The mail-store delivery job (`[archive.mail]`): appends each finished
/// conversation's transcript (one RFC 5322 message) to a folder per archived
/// participant on an IMAP server, over TLS only, at most once per
/// conversation and folder. Progress and failures show in
/// `DATA/archive-mail-status.json` and `switchboard archive status`.
///
/// ```toml
/// [archive.mail]
/// enabled = true
/// server = "mail.example.com"
/// username = "im-archive"
/// password_file = "/etc/switchboard/imap-password"
/// folder = "Archive/{user}"
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveMailConfig {
    /// Run the job (default false).
    pub enabled: bool,
    /// Host name or address of the IMAP server; also the name its
    /// certificate must carry.
    pub server: String,
    /// TCP port; default 993 with `tls = "implicit"`, 143 with `"starttls"`.
    pub port: Option<u16>,
    /// `"implicit"` (TLS from the first byte, IMAPS; the default) or
    /// `"starttls"` (plain connect, then `STARTTLS` before anything else).
    /// Plain-text IMAP is refused; TLS 1.2 or 1.3 only.
    pub tls: String,
    /// PEM file with the certificate(s) to trust for the IMAP server (an
    /// internal CA, or the server's own self-signed certificate). Without
    /// it, the operating system's trusted roots (`/etc/ssl/certs`).
    pub ca_file: Option<PathBuf>,
    /// The IMAP account the job logs in as (a service account that may
    /// create and append to the archive folders).
    pub username: String,
    /// File holding the account's password (one line; a trailing newline is
    /// ignored), so that it is not in this file. Read at each connection; it
    /// is never logged, printed or put in an error message. Keep it readable
    /// by the server's user only.
    pub password_file: Option<PathBuf>,
    /// Folder for one participant's copies: `/` separates levels (translated
    /// to the server's hierarchy separator), `{user}` is the participant's
    /// address (`alice@example.com`), `{local}` and `{domain}` its parts.
    /// Created when missing. Default `"Archive/{user}"`. A template without
    /// a placeholder puts one copy of each conversation in one shared folder.
    pub folder: String,
    /// Mark appended transcripts as read (`\Seen`), so that they do not show
    /// as unread mail. Default true.
    pub seen: bool,
    /// A conversation counts as finished, and is delivered, when its last
    /// archived record is this old (minutes; default 30). A conversation
    /// that goes on afterwards is delivered again in full.
    pub idle_minutes: u64,
    /// The same in seconds, for finer control (tests); overrides
    /// `idle_minutes` when given.
    pub idle_seconds: Option<u64>,
    /// How often the job looks for finished conversations (seconds; default 60).
    /// After a failure it retries with exponential backoff from this
    /// interval up to 5 minutes (or this interval, when longer).
    pub interval_seconds: u64,
    /// Longest wait for connecting or for one IMAP command (seconds; default 60).
    pub timeout_seconds: u64,
}

impl Default for ArchiveMailConfig {
    fn default() -> ArchiveMailConfig {
        ArchiveMailConfig {
            enabled: false,
            server: String::new(),
            port: None,
            tls: "implicit".into(),
            ca_file: None,
            username: String::new(),
            password_file: None,
            folder: "Archive/{user}".into(),
            seen: true,
            idle_minutes: 30,
            idle_seconds: None,
            interval_seconds: 60,
            timeout_seconds: 60,
        }
    }
}

impl ArchiveMailConfig {
    /// The port to connect to: the configured one, or the standard port of
    /// the TLS mode (993 implicit, 143 STARTTLS).
    pub fn effective_port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls == "starttls" { 143 } else { 993 })
    }

    /// How old a conversation's last record must be before it is delivered.
    pub fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.idle_seconds
                .unwrap_or(self.idle_minutes.saturating_mul(60)),
        )
    }

    /// Checks the section; returns (key, problem).
    fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("archive.mail.{k}");
        match self.tls.as_str() {
            "implicit" | "starttls" => {}
            "none" | "plain" | "off" | "no" | "false" | "" => {
                return Err((
                    key("tls"),
                    format!(
                        "{:?} is refused: the archive goes to the mail store over TLS only \
                         (\"implicit\" or \"starttls\"), never in plain text",
                        self.tls
                    ),
                ));
            }
            other => {
                return Err((
                    key("tls"),
                    format!("{other:?} is not \"implicit\" or \"starttls\""),
                ));
            }
        }
        if self.port == Some(0) {
            return Err((key("port"), "must be between 1 and 65535".into()));
        }
        let folder_problem = crate::archive_mail::check_folder_template(&self.folder);
        if let Some(problem) = folder_problem {
            return Err((key("folder"), problem));
        }
        if self.idle_seconds == Some(0) {
            return Err((key("idle_seconds"), "must be at least 1".into()));
        }
        if self.idle_seconds.is_none() && self.idle_minutes == 0 {
            return Err((key("idle_minutes"), "must be at least 1".into()));
        }
        if self.interval_seconds == 0 {
            return Err((key("interval_seconds"), "must be at least 1".into()));
        }
        if self.timeout_seconds == 0 {
            return Err((key("timeout_seconds"), "must be at least 1".into()));
        }
        if !self.enabled {
            return Ok(());
        }
        let host = self.server.trim();
        if host.is_empty() {
            return Err((
                key("server"),
                "the IMAP server's host name is needed when enabled".into(),
            ));
        }
        if host != self.server
            || host.contains("://")
            || host.contains(char::is_whitespace)
            || host.contains('/')
        {
            return Err((
                key("server"),
                format!(
                    "{:?} is not a host name or address (no scheme, path or spaces; the port goes in archive.mail.port)",
                    self.server
                ),
            ));
        }
        if self.username.is_empty() {
            return Err((
                key("username"),
                "the IMAP account is needed when enabled".into(),
            ));
        }
        if self.username.contains(['\r', '\n', '\0']) {
            return Err((key("username"), "must not contain line breaks".into()));
        }
        if self.password_file.is_none() {
            return Err((
                key("password_file"),
                "a file holding the IMAP password is needed when enabled".into(),
            ));
        }
        Ok(())
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter
    /// (`switchboard=debug,sqlx=warn`). `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Checks `log.level` the way the server reads it at start
/// (`EnvFilter::new`, which skips, with a warning on standard error, every
/// comma-separated directive it cannot parse): accepts exactly the values
/// that start without such a warning. An empty value is accepted, as the
/// server does (only errors are logged then).
pub fn check_log_level(level: &str) -> Result<(), String> {
    let bad: Vec<String> = level
        .split(',')
        .filter(|d| !d.is_empty())
        .filter_map(|d| {
            tracing_subscriber::EnvFilter::builder()
                .parse(d)
                .err()
                .map(|e| format!("`{d}` ({e})"))
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{level:?} is not a log filter: cannot read {}; use error, warn, info, debug, trace, \
         or directives such as \"switchboard=debug,sqlx=warn\"",
        bad.join(", ")
    ))
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The OS error is part of the message, not a `source`: a source would
    /// be printed a second time by `{:#}` (the error chain).
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        cfg.validate()
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            })?;
        Ok(cfg)
    }

    /// Semantic checks serde cannot express; returns (key, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, d) in self.domains.iter().enumerate() {
            switchboard_core::address::normalise_domain(d)
                .map_err(|e| (format!("domains[{i}]"), format!("{d:?}: {e}")))?;
        }
        for (key, v) in [
            ("sip.udp", &self.sip.udp),
            ("sip.tcp", &self.sip.tcp),
            ("sip.tls", &self.sip.tls),
            ("web.listen", &self.web.listen),
        ] {
            if !v.is_empty() {
                v.parse::<SocketAddr>().map_err(|_| {
                    (
                        key.to_owned(),
                        format!(
                            "{v:?} is not an address:port (e.g. 0.0.0.0:5060), or \"\" to disable"
                        ),
                    )
                })?;
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err((
                "tls.cert".into(),
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        let w = &self.web;
        if w.session_hours == 0 || w.session_hours > 24 * 365 {
            return Err((
                "web.session_hours".into(),
                "must be between 1 and 8760".into(),
            ));
        }
        if w.max_body_bytes < 1024 {
            return Err(("web.max_body_bytes".into(), "must be at least 1024".into()));
        }
        if !(w.rate_per_second > 0.0 && w.rate_per_second.is_finite()) || w.rate_burst == 0 {
            return Err((
                "web.rate_per_second".into(),
                "rate_per_second and rate_burst must be above 0".into(),
            ));
        }
        if w.max_connections == 0 {
            return Err(("web.max_connections".into(), "must be at least 1".into()));
        }
        if w.long_poll_seconds == 0 || w.long_poll_seconds > 120 {
            return Err((
                "web.long_poll_seconds".into(),
                "must be between 1 and 120".into(),
            ));
        }
        if !matches!(w.anonymous_presence.as_str(), "external" | "none") {
            return Err((
                "web.anonymous_presence".into(),
                format!("{:?} is not external or none", w.anonymous_presence),
            ));
        }
        let r = &self.registrar;
        if r.min_expires == 0 {
            return Err(("registrar.min_expires".into(), "must be at least 1".into()));
        }
        if r.max_expires < r.min_expires {
            return Err((
                "registrar.max_expires".into(),
                "must not be below registrar.min_expires".into(),
            ));
        }
        if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
            return Err((
                "registrar.default_expires".into(),
                "must lie between min_expires and max_expires".into(),
            ));
        }
        if r.max_devices_per_user == 0 {
            return Err((
                "registrar.max_devices_per_user".into(),
                "must be at least 1".into(),
            ));
        }
        if self.auth.algorithms.is_empty() {
            return Err((
                "auth.algorithms".into(),
                "at least one algorithm is needed".into(),
            ));
        }
        for (i, a) in self.auth.algorithms.iter().enumerate() {
            if switchboard_sip::digest::Algorithm::parse(Some(a)).is_none() {
                return Err((
                    format!("auth.algorithms[{i}]"),
                    format!("{a:?} is not one of SHA-256, MD5, SHA-512-256"),
                ));
            }
        }
        if self.auth.nonce_lifetime == 0 {
            return Err((
                "auth.nonce_lifetime".into(),
                "must be at least 1 second".into(),
            ));
        }
        let l = &self.limits;
        if l.max_message_bytes < 1024 || l.max_message_bytes > 1 << 20 {
            return Err((
                "limits.max_message_bytes".into(),
                "must be between 1024 and 1048576".into(),
            ));
        }
        if l.max_headers < 10 {
            return Err(("limits.max_headers".into(), "must be at least 10".into()));
        }
        if l.max_connections == 0 || l.max_connections_per_ip == 0 {
            return Err((
                "limits.max_connections".into(),
                "connection limits must be at least 1".into(),
            ));
        }
        if self.im.max_body_bytes == 0 || self.im.max_body_bytes > l.max_message_bytes {
            return Err((
                "im.max_body_bytes".into(),
                "must be between 1 and limits.max_message_bytes".into(),
            ));
        }
        let p = &self.presence;
        if p.min_expires == 0
            || p.max_expires < p.min_expires
            || p.default_expires < p.min_expires
            || p.default_expires > p.max_expires
        {
            return Err((
                "presence.default_expires".into(),
                "need 1 <= min_expires <= default_expires <= max_expires".into(),
            ));
        }
        if p.max_subscriptions_per_device == 0 {
            return Err((
                "presence.max_subscriptions_per_device".into(),
                "must be at least 1".into(),
            ));
        }
        if p.max_contacts == 0 {
            return Err(("presence.max_contacts".into(), "must be at least 1".into()));
        }
        let c = &self.conference;
        if switchboard_core::Address::from_parts(&c.factory_user, "example.com").is_err() {
            return Err((
                "conference.factory_user".into(),
                format!("{:?} is not a valid user name", c.factory_user),
            ));
        }
        if c.max_participants < 2 {
            return Err((
                "conference.max_participants".into(),
                "must be at least 2".into(),
            ));
        }
        if c.idle_timeout_minutes == 0 {
            return Err((
                "conference.idle_timeout_minutes".into(),
                "must be at least 1".into(),
            ));
        }
        self.archive.mail.validate()?;
        check_log_level(&self.log.level).map_err(|problem| ("log.level".to_owned(), problem))?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err((
                "log.format".into(),
                format!("{:?} is not text or json", self.log.format),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(check("").expect("valid"), Config::default());
    }

    #[test]
    fn names_unknown_and_invalid_keys() {
        let e = check("[registrar]\nmin_expire = 5\n")
            .expect_err("typo")
            .to_string();
        assert!(e.contains("min_expire"), "{e}");
        let e = check("[registrar]\nmin_expires = 100\nmax_expires = 50\n")
            .expect_err("inverted")
            .to_string();
        assert!(e.contains("registrar.max_expires"), "{e}");
        let e = check("[sip]\nudp = \"nowhere\"\n")
            .expect_err("bad addr")
            .to_string();
        assert!(e.contains("sip.udp"), "{e}");
        let e = check("domains = [\"bad domain\"]\n")
            .expect_err("bad domain")
            .to_string();
        assert!(e.contains("domains[0]"), "{e}");
        let e = check("[auth]\nalgorithms = [\"SHA-1\"]\n")
            .expect_err("bad alg")
            .to_string();
        assert!(e.contains("auth.algorithms[0]"), "{e}");
        let e = check("[registrar]\nmin_expires = \"sixty\"\n")
            .expect_err("type")
            .to_string();
        assert!(e.contains("min_expires"), "{e}");
    }

    #[test]
    fn archive_mail_section_is_checked() {
        let d = Config::default().archive.mail;
        assert!(!d.enabled);
        assert_eq!(
            (d.tls.as_str(), d.effective_port(), d.folder.as_str()),
            ("implicit", 993, "Archive/{user}")
        );
        assert_eq!(d.idle(), std::time::Duration::from_secs(30 * 60));
        assert_eq!(d.interval_seconds, 60);
        let ok = "[archive.mail]\nenabled = true\nserver = \"mail.example.com\"\n\
                  username = \"im-archive\"\npassword_file = \"/etc/sb/imap\"\n";
        let cfg = check(ok).expect("valid");
        assert_eq!(cfg.archive.mail.effective_port(), 993);
        let cfg = check(&format!("{ok}tls = \"starttls\"\nidle_seconds = 5\n")).expect("valid");
        assert_eq!(cfg.archive.mail.effective_port(), 143);
        assert_eq!(cfg.archive.mail.idle(), std::time::Duration::from_secs(5));
        for (extra, key) in [
            ("tls = \"none\"\n", "archive.mail.tls"),
            ("tls = \"ssl\"\n", "archive.mail.tls"),
            ("port = 0\n", "archive.mail.port"),
            ("folder = \"Archive/{who}\"\n", "archive.mail.folder"),
            ("interval_seconds = 0\n", "archive.mail.interval_seconds"),
            ("idle_minutes = 0\n", "archive.mail.idle_minutes"),
            ("idle_seconds = 0\n", "archive.mail.idle_seconds"),
            ("imap_port = 993\n", "imap_port"),
        ] {
            let e = check(&format!("{ok}{extra}")).expect_err(extra).to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = check("[archive.mail]\ntls = \"plain\"\n")
            .expect_err("plain text")
            .to_string();
        assert!(
            e.contains("archive.mail.tls") && e.contains("TLS only"),
            "{e}"
        );
        for (text, key) in [
            ("enabled = true\n", "archive.mail.server"),
            (
                "enabled = true\nserver = \"imaps://mail.example.com\"\n",
                "archive.mail.server",
            ),
            (
                "enabled = true\nserver = \"mail.example.com\"\n",
                "archive.mail.username",
            ),
            (
                "enabled = true\nserver = \"mail.example.com\"\nusername = \"a\"\n",
                "archive.mail.password_file",
            ),
        ] {
            let e = check(&format!("[archive.mail]\n{text}"))
                .expect_err(text)
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn log_level_is_checked_like_the_server_reads_it() {
        for ok in [
            "info",
            "TRACE",
            "off",
            "",
            "switchboard=debug,sqlx=warn",
            "warn,switchboard::app=trace",
            "switchboard",
            "info,",
        ] {
            check_log_level(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            let cfg = check(&format!("[log]\nlevel = {ok:?}\n")).expect(ok);
            assert_eq!(cfg.log.level, ok);
        }
        // A bare word is a target name (everything from that target), not a
        // level: the server takes "loud" without a warning, so it passes.
        check_log_level("loud").expect("a target");
        for bad in ["switchboard=verbose", "info,sqlx=chatty", "a=b=c", "[{=x"] {
            assert!(check_log_level(bad).is_err(), "{bad:?} accepted");
            let e = check(&format!("[log]\nlevel = {bad:?}\n"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains("key `log.level`") && e.contains(bad), "{e}");
        }
        let e = check("[log]\nlevel = \"info,sqlx=chatty\"\n")
            .expect_err("one bad directive")
            .to_string();
        assert!(e.contains("`sqlx=chatty`") && !e.contains("`info`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_reported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing.toml");
        let e = anyhow::Error::from(Config::load(&path).expect_err("missing"));
        let text = format!("{e:#}");
        assert!(text.starts_with("cannot read "), "{text}");
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
    }

    #[test]
    fn full_example_parses() {
        let cfg = check(
            r#"domains = ["example.com"]
[sip]
udp = "127.0.0.1:5070"
tcp = ""
tls = "127.0.0.1:5071"
[tls]
cert = "/etc/ssl/sb.pem"
key = "/etc/ssl/sb.key"
[registrar]
min_expires = 30
[im]
max_body_bytes = 1000
[log]
format = "json"
"#,
        )
        .expect("valid");
        assert_eq!(cfg.sip.tcp, "");
        assert_eq!(cfg.registrar.min_expires, 30);
        assert_eq!(cfg.registrar.max_expires, 7200);
    }
}
