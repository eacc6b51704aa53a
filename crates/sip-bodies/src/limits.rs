//! Size limits every parser enforces, so a hostile body cannot make the
//! server spend unbounded memory or time.
//!
//! The numbers are sized from the product's own worst cases (see
//! SFB-REFERENCE: presence documents of 25 KB at most, 1,000 contacts per
//! user, conferences of 250) with a wide margin; a body over a limit is
//! rejected with an error naming the limit. The SIP layer caps message size
//! separately (413); these limits bound what happens inside a body it let
//! through. Work per byte is linear: quick-xml is a linear scanner, attribute
//! duplicate checks are bounded by [`MAX_XML_ATTRIBUTES`], and namespace
//! lookups by depth times attributes.

/// Largest XML document accepted (1 MiB): forty times the largest presence
/// document Skype for Business produces, and room for a 1,000-entry contact
/// list with long display names.
pub const MAX_XML_BYTES: usize = 1 << 20;

/// Deepest element nesting accepted. The deepest standard document here
/// (conference-info with media) nests 6 levels; 32 allows extensions.
pub const MAX_XML_DEPTH: usize = 32;

/// Most elements in one XML document. A 1,000-contact resource list or RLMI
/// document needs about 3,000; a 250-user conference about 4,000.
pub const MAX_XML_ELEMENTS: usize = 20_000;

/// Most attributes (namespace declarations included) on one element; also
/// bounds the quadratic duplicate-attribute check.
pub const MAX_XML_ATTRIBUTES: usize = 64;

/// Most namespace declarations in scope at once. Real documents declare
/// fewer than ten; the cap bounds the cost of resolving each prefix.
pub const MAX_XML_NAMESPACES: usize = 128;

/// Largest `multipart/related` body accepted (16 MiB): a full-state RLMI
/// NOTIFY for 1,000 contacts with 4 KB presence documents is about 5 MiB.
pub const MAX_MULTIPART_BYTES: usize = 16 << 20;

/// Most body parts in one multipart body (one per list member plus the RLMI
/// document).
pub const MAX_MULTIPART_PARTS: usize = 2_048;

/// Most header lines in one body part or in one CPIM header block.
pub const MAX_HEADERS: usize = 128;

/// Largest CPIM message accepted (1 MiB); instant messages are small, and
/// the SIP layer's own message limit is normally far lower.
pub const MAX_CPIM_BYTES: usize = 1 << 20;

/// Largest SDP body accepted (64 KiB); an IM offer is a few hundred bytes.
pub const MAX_SDP_BYTES: usize = 64 << 10;
