//! Leasehold's fuzz target bodies (see `targets`).
pub mod targets;
