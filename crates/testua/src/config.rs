//! Configuration of a user agent and options of its operations.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use switchboard_sip::HeaderName;
use switchboard_sip::digest::Algorithm;

/// How the agent reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One UDP socket bound on the local address.
    Udp,
    /// One TCP connection to the server.
    Tcp,
    /// One TLS connection (over TCP) to the server.
    Tls,
}

impl Transport {
    /// The transport token of a Via header: `UDP`, `TCP` or `TLS`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The value of the `transport` URI parameter: `udp`, `tcp` or `tls`.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// True for the stream transports, over which nothing is retransmitted.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// Transaction timers (RFC 3261 §17.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// First retransmission interval over UDP (T1), default 500 ms.
    pub t1: Duration,
    /// Cap of the retransmission interval of non-INVITE requests (T2), default 4 s.
    pub t2: Duration,
    /// How long a client transaction waits for its final response (Timer B/F,
    /// 64·T1 = 32 s by default), also for INVITE after a provisional response,
    /// so that no test waits without bound. Also bounds the wait for the ACK
    /// of a 2xx sent by [`crate::Incoming::accept`].
    pub transaction_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            transaction_timeout: Duration::from_secs(32),
        }
    }
}

/// How the agent answers digest challenges (401/407). The defaults behave like
/// a well-behaved client; the other settings make it misbehave on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOptions {
    /// Answer a 401/407 once with credentials (default true). When false the
    /// challenge is returned as the final response.
    pub auto: bool,
    /// Algorithms in order of preference when several challenges are offered;
    /// empty (the default) takes the first challenge with a supported algorithm.
    pub preference: Vec<Algorithm>,
    /// Answer with this algorithm: the challenge offering it is used if there
    /// is one, otherwise the first Digest challenge is answered with this
    /// algorithm anyway (to test that a server refuses algorithms it did not offer).
    pub force_algorithm: Option<Algorithm>,
    /// Compute credentials with this password instead of the configured one
    /// (a wrong password).
    pub password: Option<String>,
    /// Compute credentials with this nonce instead of the challenge's (a
    /// stale, forged or reused nonce).
    pub nonce: Option<String>,
    /// Use this nonce-count instead of the per-nonce counter (which starts at 1).
    pub nc: Option<u32>,
    /// Use this cnonce instead of a random one.
    pub cnonce: Option<String>,
    /// Put credentials computed from the last challenge answered into new
    /// requests before any challenge, with the next nonce-count, as clients
    /// that cache credentials do. A challenge in answer to them (for example
    /// `stale=true`) is still answered once.
    pub preemptive: bool,
    /// When answering a challenge, send the previous credentials header of the
    /// agent verbatim instead of computing new ones (a replay); new ones are
    /// computed if the agent has sent none of that kind yet.
    pub replay_previous: bool,
}

impl Default for AuthOptions {
    fn default() -> AuthOptions {
        AuthOptions {
            auto: true,
            preference: Vec::new(),
            force_algorithm: None,
            password: None,
            nonce: None,
            nc: None,
            cnonce: None,
            preemptive: false,
            replay_previous: false,
        }
    }
}

/// Everything a user agent needs to know to start.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Transport to the server.
    pub transport: Transport,
    /// The server (registrar, proxy); every request is sent there, as to an
    /// outbound proxy.
    pub server: SocketAddr,
    /// The domain of the user: host part of the address-of-record and of the
    /// REGISTER Request-URI.
    pub domain: String,
    /// The user part of the address-of-record.
    pub user: String,
    /// The password used for digest authentication.
    pub password: String,
    /// Digest username, if different from `user`.
    pub auth_username: Option<String>,
    /// Display name in From.
    pub display_name: Option<String>,
    /// The `+sip.instance` URN (RFC 5626); a random `urn:uuid:` by default.
    pub instance: Option<String>,
    /// Local address to bind (default 127.0.0.1).
    pub local_ip: IpAddr,
    /// Name sent in TLS SNI; defaults to `domain` when it is a DNS name. The
    /// server certificate is never checked against it.
    pub tls_server_name: Option<String>,
    /// Digest behaviour (can be changed later with [`crate::Ua::set_auth_options`]).
    pub auth: AuthOptions,
    /// Retransmission and timeout settings.
    pub timers: Timers,
    /// User-Agent header value (`switchboard-testua` by default; `None` omits it).
    pub user_agent: Option<String>,
}

impl UaConfig {
    /// A configuration with the defaults for everything not given.
    pub fn new(
        transport: Transport,
        server: SocketAddr,
        domain: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> UaConfig {
        UaConfig {
            transport,
            server,
            domain: domain.into(),
            user: user.into(),
            password: password.into(),
            auth_username: None,
            display_name: None,
            instance: None,
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            tls_server_name: None,
            auth: AuthOptions::default(),
            timers: Timers::default(),
            user_agent: Some("switchboard-testua".to_owned()),
        }
    }

    /// The digest username: `auth_username`, or the user part.
    pub fn auth_username(&self) -> &str {
        self.auth_username.as_deref().unwrap_or(&self.user)
    }
}

/// Options of one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Requested binding lifetime (Expires header), seconds.
    pub expires: u32,
    /// Extra Contact header parameters (`q`, `expires`, feature tags…), as
    /// written (quote values that need it).
    pub contact_params: Vec<(String, Option<String>)>,
    /// Extra headers appended to the request.
    pub headers: Vec<(HeaderName, String)>,
    /// Option tags for a Supported header (`path`, `outbound`, `gruu`…); with
    /// `outbound` the Contact also gets `reg-id=1`.
    pub supported: Vec<String>,
    /// Use this Call-ID instead of the agent's registration Call-ID (a second
    /// registration "from another boot").
    pub call_id: Option<String>,
    /// Replace the whole Contact value (e.g. `*`, or someone else's contact).
    pub contact: Option<String>,
    /// Put `+sip.instance` in the Contact (default true).
    pub instance: bool,
}

impl RegisterOptions {
    /// Defaults with the given lifetime.
    pub fn new(expires: u32) -> RegisterOptions {
        RegisterOptions {
            expires,
            contact_params: Vec::new(),
            headers: Vec::new(),
            supported: Vec::new(),
            call_id: None,
            contact: None,
            instance: true,
        }
    }

    /// True if `outbound` is among the Supported option tags.
    pub fn outbound(&self) -> bool {
        self.supported
            .iter()
            .any(|s| s.eq_ignore_ascii_case("outbound"))
    }
}

impl Default for RegisterOptions {
    /// One hour.
    fn default() -> RegisterOptions {
        RegisterOptions::new(3600)
    }
}
