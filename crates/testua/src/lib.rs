//! A small SIP user agent on tokio for Switchboard's end-to-end tests.
//!
//! Each [`Ua`] owns one UDP socket or one TCP/TLS connection to the server,
//! reused for everything like a client behind NAT: requests from the server
//! arrive on it too. A background task parses what arrives (with
//! [`switchboard_sip`]), hands responses to the waiting client transaction,
//! queues requests for the test ([`Ua::next_request`], [`Ua::expect_request`])
//! and keeps whatever it cannot use for assertions ([`Ua::recv_raw`],
//! [`Ua::dropped_input`]).
//!
//! Client transactions retransmit over UDP (T1 doubling, capped at T2 for
//! non-INVITE), collect provisional responses and answer one digest
//! challenge (MD5, SHA-256, SHA-512-256; `qop=auth`) according to
//! [`AuthOptions`], which can also make the agent misbehave on purpose.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_testua::UaError> {
//! use switchboard_testua::{Transport, Ua, UaConfig};
//! use std::time::Duration;
//! let server = "127.0.0.1:5060".parse().expect("address");
//! let alice = Ua::connect(UaConfig::new(Transport::Tcp, server, "example.test", "alice", "pw")).await?;
//! let bob = Ua::connect(UaConfig::new(Transport::Udp, server, "example.test", "bob", "pw")).await?;
//! assert_eq!(alice.register(3600).await?.status, 200);
//! assert_eq!(bob.register(3600).await?.status, 200);
//! let sent = alice.send_message("sip:bob@example.test", "text/plain", "hi");
//! let got = bob.expect_request(switchboard_testua::sip::Method::Message, Duration::from_secs(5));
//! let (sent, got) = tokio::join!(sent, got);
//! got?.respond(200).await?;
//! assert_eq!(sent?.status, 200);
//! # Ok(()) }
//! ```
//!
//! Limitations: every request goes to the configured server (as to an
//! outbound proxy), whatever its Request-URI or Route; non-2xx final
//! responses sent by the test are not retransmitted (Timer G) and CANCEL is
//! not generated; early dialogs are not tracked.

#![deny(missing_docs)]

mod auth;
mod config;
mod dialog;
mod error;
mod incoming;
mod link;
mod tls;
mod ua;
mod util;

pub use config::{AuthOptions, RegisterOptions, Timers, Transport, UaConfig};
pub use dialog::Dialog;
pub use error::UaError;
pub use incoming::Incoming;
pub use switchboard_sip as sip;
pub use switchboard_sip::digest::Algorithm;
pub use ua::{Exchange, IntoUri, Ua, Unsolicited, im_sdp};
