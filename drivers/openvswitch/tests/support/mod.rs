//! Test support shared by this crate's privileged tests.
pub mod ovs;
