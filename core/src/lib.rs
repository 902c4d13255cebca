//! leasehold-core: the model, the driver traits, the driver registry and the
//! plugin loader — everything a Leasehold driver crate needs, and nothing
//! that needs a runtime, netlink or a transport.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod driver;
pub mod model;
pub mod options;
pub mod plugin;
pub mod registry;

pub use async_trait::async_trait;
pub use inventory;
pub use ipnet;

/// Neutron's namespace prefix for DHCP namespaces.
pub const NAMESPACE_PREFIX: &str = "qdhcp-";

/// The namespace of a network's DHCP server: `qdhcp-<network_id>`.
pub fn namespace_of(network_id: &model::Id) -> String {
    format!("{NAMESPACE_PREFIX}{network_id}")
}
