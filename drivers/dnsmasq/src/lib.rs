//! leasehold-dnsmasq: the dnsmasq DHCP driver — renderers byte-compatible
//! with Neutron, and the process side (spawn in the namespace, adopt, reload,
//! release leases, monitor).
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod config;
pub mod driver;
pub mod files;
pub mod monitor;
pub mod process;
pub mod release;
pub mod render;
pub mod sanitize;

pub use driver::DnsmasqDriver;

leasehold_core::inventory::submit!(leasehold_core::registry::DhcpDriverEntry {
    name: "dnsmasq",
    aliases: &["neutron.agent.linux.dhcp.Dnsmasq"],
    summary: "dnsmasq per network in its namespace, Neutron-compatible files and command line",
    options: &driver::ALL_OPTIONS,
    create: driver::create,
});

/// Referenced by the agent so the linker keeps this crate's driver registrations.
pub fn link() {}
