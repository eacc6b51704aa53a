//! Parsers and generators for the SIP message bodies Switchboard handles.
//! (crate docs are completed below)

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod conference_info;
pub mod cpim;
pub mod error;
pub mod limits;
mod mime;
pub mod pidf;
pub mod resource_lists;
pub mod rlmi;
pub mod sdp_im;
pub mod winfo;
mod xml;

pub use error::{Error, Format, Result};
pub use xml::{NS_XML, xml_safe};
