//! placeholder

/// Referenced by the agent so the linker keeps this crate's driver registrations.
pub fn link() {}
