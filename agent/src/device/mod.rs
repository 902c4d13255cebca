//! Each network's DHCP port on the host: the server-side port, the namespace,
//! the plugged device, its addresses and routes.

pub mod host;
pub mod manager;
pub mod netlink_host;
pub mod port;

pub use host::HostNet;
pub use manager::{DeviceManager, DeviceSettings};
pub use netlink_host::NetlinkHost;
pub use port::{agent_device_id, ensure_dhcp_port};
