//! Parsers and generators for the SIP message bodies Switchboard handles.
//!
//! Sans-I/O: every function takes bytes or a struct and returns a struct or
//! bytes; there is no I/O, no clock and no randomness (multipart boundaries
//! are derived from the content), so everything is deterministic and
//! fuzzable. The types follow the wire formats, not the server's domain
//! model: the SIP front door translates between the two, and this crate
//! stays usable by the test user agent and tools as well.
//!
//! | module | format | used for |
//! | --- | --- | --- |
//! | [`pidf`] | `application/pidf+xml` (RFC 3863, 4479, 4480) | PUBLISH and presence NOTIFY bodies |
//! | [`resource_lists`] | `application/resource-lists+xml` (RFC 4826) | ad-hoc list subscriptions, contact-list export |
//! | [`rlmi`] | `application/rlmi+xml` in `multipart/related` (RFC 4662, 2387) | batch (list) presence NOTIFYs |
//! | [`winfo`] | `application/watcherinfo+xml` (RFC 3858) | `presence.winfo` NOTIFYs |
//! | [`conference_info`] | `application/conference-info+xml` (RFC 4575) | conference roster NOTIFYs |
//! | [`cpim`] | `message/cpim` (RFC 3862) | sender identity in conference IM |
//! | [`sdp_im`] | `application/sdp`, `m=message … sip` | Skype for Business style IM sessions |
//!
//! # Conventions
//!
//! * Each document type has `parse(&[u8]) -> Result<Self>` and a generator
//!   (`to_xml`, `to_bytes` or `to_sdp`) that cannot fail. Generators write
//!   exactly what the struct holds, so filtering (presence privacy levels)
//!   is done by building the struct with only what a watcher may see.
//! * Parsing is tolerant where clients differ and strict where the
//!   document would be meaningless: XML namespaces are matched by URI
//!   whatever the prefix; unknown elements, attributes and namespaces are
//!   skipped; a missing required attribute, an unknown enumerated value or a
//!   malformed number is an [`Error`] naming it.
//! * Every [`Error`] displays as a short printable-ASCII line suitable for a
//!   SIP reason phrase (`pidf: <basic> must be open or closed`,
//!   `xml: unexpected end of document at byte 123`).
//! * User text (notes, display names, subjects) is kept verbatim when
//!   parsing and always escaped when generating; characters that XML 1.0
//!   cannot represent at all are dropped ([`xml_safe`] tells what survives).
//! * Hostile input is bounded by the [`limits`]: document size, nesting
//!   depth, element and attribute counts, multipart parts and headers.
//!   Parsers never panic; this is checked by property tests and fuzz
//!   targets (`fuzz/fuzz_targets/`).
//!
//! # Switchboard's PIDF extension
//!
//! Skype for Business clients show a numeric availability (3500 Available …
//! 18500 Offline) that RPID cannot express exactly. It travels as
//! `<sb:availability>` in namespace
//! `urn:switchboard:params:xml:ns:pidf:availability` inside `<dm:person>`,
//! after the standard elements; see [`pidf`] for the definition.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod conference_info;
pub mod cpim;
pub mod error;
pub mod iscomposing;
pub mod limits;
mod mime;
pub mod pidf;
pub mod resource_lists;
pub mod rlmi;
pub mod sdp_im;
pub mod winfo;
mod xml;

pub use conference_info::ConferenceInfo;
pub use cpim::Cpim;
pub use error::{Error, Format, Result};
pub use pidf::Presence;
pub use resource_lists::ResourceLists;
pub use rlmi::{BodyPart, MultipartBody, Rlmi};
pub use sdp_im::ImSdp;
pub use winfo::WatcherInfo;
pub use xml::{NS_XML, xml_safe};
