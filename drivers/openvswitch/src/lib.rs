//! The `openvswitch` interface driver (Neutron's `OVSInterfaceDriver`): the
//! DHCP port is an Open vSwitch internal port `tap<port[:11]>` on the
//! integration bridge, moved into the DHCP namespace, with Neutron's
//! `external_ids` so that an OVS L2 agent binds it. With `ovs_use_veth` it
//! is a veth pair instead: `tap…` on the bridge, `ns-…` in the namespace.
//!
//! The plug path speaks OVSDB itself ([`Ovsdb`], one connection, no
//! process per transaction); VLAN tags of the standalone mode go through
//! `ovs-vsctl` ([`Vsctl`]). Both reach `[OVS] ovsdb_connection` when the
//! configuration sets it (`unix:` or `tcp:`), otherwise ovs-vsctl's own
//! default (the unix socket under `$OVS_RUNDIR`). Nothing here assumes the
//! kernel or the userspace datapath.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod driver;
mod ovsdb;
mod settings;
mod vsctl;

pub use driver::OvsDriver;
pub use ovsdb::{AddPortError, Ovsdb, PortIds, Target, TransactError};
pub use settings::{Settings, DEFAULT_OVSDB_CONNECTION, OPTIONS};
pub use vsctl::Vsctl;

leasehold_core::inventory::submit!(leasehold_core::registry::InterfaceDriverEntry {
    name: "openvswitch",
    aliases: &["neutron.agent.linux.interface.OVSInterfaceDriver"],
    summary: "internal port tap<port> on the OVS integration bridge (or a veth with ovs_use_veth)",
    options: &OPTIONS,
    create: driver::create,
});

/// Referenced by the agent so the linker keeps this crate's driver registrations.
pub fn link() {}
