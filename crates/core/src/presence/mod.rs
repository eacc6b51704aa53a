//! Presence: the availability model, aggregation over devices, privacy and
//! contact lists, and the engine that ties them together.

pub mod access;
pub mod aggregate;
pub mod contacts;
pub mod engine;
pub mod model;
pub mod privacy;

pub use aggregate::{DeviceState, Rules, Source};
pub use contacts::{ContactBook, ContactEntry};
pub use engine::{PresenceChange, PresenceEngine};
pub use model::{Activity, Availability, MeetingDetails, PresenceState};
pub use privacy::{AccessLevel, Decision, Relationship};
