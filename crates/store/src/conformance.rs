//! Backend conformance suite (being written).
