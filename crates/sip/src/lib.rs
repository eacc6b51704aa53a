//! Sans-I/O SIP for Switchboard.
//!
//! Everything here is plain data and pure functions or state machines: no
//! sockets, no clock, no runtime. Drivers feed bytes and the current time in
//! and take bytes, events and deadlines out, which keeps every protocol rule
//! testable under a fake clock and fuzzable.
//!
//! - [`parse`], [`message`], [`header`], [`typed`], [`uri`]: the codec;
//! - [`framing`]: message boundaries on streams, keep-alives;
//! - [`digest`]: server-side HTTP digest authentication (RFC 7616, RFC 8760);
//! - [`transaction`]: the RFC 3261 §17 transaction state machines (with RFC 6026).

pub mod digest;
pub mod error;
pub mod framing;
pub mod header;
pub(crate) mod lex;
pub mod message;
pub mod method;
pub mod params;
pub mod parse;
pub mod transaction;
pub mod typed;
pub mod uri;

pub use error::ParseError;
pub use header::{Header, HeaderName, Headers};
pub use message::{Message, Request, Response, TransactionKey, default_reason};
pub use method::Method;
pub use params::{Param, Params};
pub use parse::{
    Defect, Limits, check_request, check_request_top_via, check_response, defect_for,
    parse_datagram,
};
pub use typed::{
    AuthHeader, CSeq, Contacts, EventHeader, MediaType, NameAddr, SubscriptionState, Via,
};
pub use uri::{Host, SipUri, TelUri, Uri};

/// Public re-exports of the lexical helpers other crates need to write
/// headers correctly.
pub mod text {
    pub use crate::lex::{escape, is_token, quote, split_top_level, unescape, unquote};
}
