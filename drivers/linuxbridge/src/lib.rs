//! Interface drivers that need no switch daemon:
//!
//! * `linuxbridge` ([`BridgeDriver`], Neutron's `BridgeInterfaceDriver`): a
//!   veth pair, `tap<port[:11]>` in the root namespace enslaved to the
//!   network's bridge `brq<network[:11]>`, and `ns-<port[:11]>` in the DHCP
//!   namespace.
//! * `null` ([`NullDriver`], Neutron's `NullDriver`): plugs nothing.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod bridge;
mod null;

pub use bridge::{
    bridge_name, root_device_name, BridgeDriver, BRIDGE_PREFIX, NS_PREFIX, TAP_PREFIX,
};
pub use null::NullDriver;

leasehold_core::inventory::submit!(leasehold_core::registry::InterfaceDriverEntry {
    name: "linuxbridge",
    aliases: &["neutron.agent.linux.interface.BridgeInterfaceDriver"],
    summary: "veth pair tap<port>/ns-<port>, the tap end on Linux bridge brq<network>",
    options: &[],
    create: bridge::create,
});

leasehold_core::inventory::submit!(leasehold_core::registry::InterfaceDriverEntry {
    name: "null",
    aliases: &["neutron.agent.linux.interface.NullDriver"],
    summary: "plugs nothing: the device is made by someone else",
    options: &[],
    create: null::create,
});

/// Referenced by the agent so the linker keeps this crate's driver registrations.
pub fn link() {}
