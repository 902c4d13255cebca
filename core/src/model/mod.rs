//! The model: networks, subnets and ports as neutron-server sends them.

mod id;
mod network;
mod validate;
mod verbatim;

pub use id::{Id, MAX_ID_LEN};
pub use network::{
    AllocationPool, DnsAssignment, ExtraDhcpOpt, FixedIp, HostRoute, IpVersion, Ipv6Mode, Network,
    Port, Segment, Subnet, DEVICE_OWNER_DHCP, DHCP_CONFIG_NOT_REQUIRED_OWNERS,
    ROUTER_INTERFACE_OWNERS,
};
pub use validate::{from_str, from_value, ModelError, Warning};
pub use verbatim::{Cidr, IpAddress, Mac, MacAddress, ParseVerbatim, Verbatim};

#[cfg(test)]
mod tests;
