//! The `openvswitch` interface driver (Neutron's `OVSInterfaceDriver`): the
//! DHCP port is an Open vSwitch internal port `tap<port[:11]>` on the
//! integration bridge, moved into the DHCP namespace, with Neutron's
//! `external_ids` so that an OVS L2 agent binds it. With `ovs_use_veth` it
//! is a veth pair instead: `tap…` on the bridge, `ns-…` in the namespace.
//!
//! OVSDB is reached with `ovs-vsctl` ([`Vsctl`]): `--db` from `[OVS]
//! ovsdb_connection` when that is set in the configuration, otherwise
//! ovs-vsctl's own default (the unix socket under `$OVS_RUNDIR`). Nothing
//! here assumes the kernel or the userspace datapath.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod driver;
mod settings;
mod vsctl;

pub use driver::OvsDriver;
pub use settings::{Settings, DEFAULT_OVSDB_CONNECTION, OPTIONS};
pub use vsctl::{PortIds, Vsctl};

leasehold_core::inventory::submit!(leasehold_core::registry::InterfaceDriverEntry {
    name: "openvswitch",
    aliases: &["neutron.agent.linux.interface.OVSInterfaceDriver"],
    summary: "internal port tap<port> on the OVS integration bridge (or a veth with ovs_use_veth)",
    options: &OPTIONS,
    create: driver::create,
});

/// Referenced by the agent so the linker keeps this crate's driver registrations.
pub fn link() {}
