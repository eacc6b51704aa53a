use thiserror::Error;

/// Why a storage call failed. Callers map these to protocol errors: `NotFound` to
/// 404, `Conflict` to 409 / a CLI message, `Limit` to a policy refusal, and
/// `Unavailable` to 503 (the database is down, locked for too long, or the disk is full).
#[derive(Debug, Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The change contradicts what is stored (duplicate, still referenced).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A configured limit would be exceeded.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The store cannot be reached or written right now; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported (corrupt data, bad migration…).
    #[error("store error: {0}")]
    Backend(String),
}
