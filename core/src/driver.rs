//! The two driver traits: a DHCP server for one network, and the device that plugs it in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;

use crate::model::{Id, MacAddress, Network};
use crate::options::{BadValue, Options};

/// Length of Linux device names the drivers make (IFNAMSIZ less margin, as Neutron).
pub const DEVICE_NAME_LEN: usize = 14;

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A configuration value the driver reads is wrong.
    #[error(transparent)]
    Config(#[from] BadValue),
    /// A file or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or device.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something the driver needs is missing (a bridge, a binary, a namespace).
    #[error("{what} is missing: {hint}")]
    Missing {
        /// What is missing.
        what: String,
        /// What to do about it.
        hint: String,
    },
    /// Any other failure, described.
    #[error("{0}")]
    Failed(String),
}

impl DriverError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What a driver is built from: the configuration and the agent's host name.
#[derive(Clone, Copy, Debug)]
pub struct DriverContext<'a> {
    /// The resolved configuration.
    pub options: &'a Options,
    /// The agent's `host` option.
    pub host: &'a str,
}

/// The network's DHCP device as the DHCP driver needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpDevice {
    /// Device name inside the namespace (`tapXXXXXXXX-XX`, `ns-…`).
    pub interface_name: String,
    /// Namespace the device lives in (`qdhcp-<network>`); `None` = root namespace.
    pub namespace: Option<String>,
    /// Whether the interface driver shares L2 with the VMs' taps.
    pub bridged: bool,
    /// Addresses found on the device, by subnet (for the metadata route).
    pub interface_ips: BTreeMap<Id, IpAddr>,
}

/// A DHCP server for networks: dnsmasq, or a plugin's.
///
/// One object serves every network; all per-network state lives on disk, so
/// a restarted agent can adopt what an earlier one left running. Methods are
/// called for one network at a time, never concurrently for the same network.
#[async_trait]
pub trait DhcpDriver: Send + Sync + fmt::Debug {
    /// Starts serving `network` on `device` (adopting a matching running server).
    async fn enable(&self, network: &Network, device: &DhcpDevice) -> Result<(), DriverError>;

    /// Stops serving the network; unless `retain_port`, removes its files too.
    /// Cleans up as much as it can and reports the first failure.
    async fn disable(&self, network_id: &Id, retain_port: bool) -> Result<(), DriverError>;

    /// Stops and starts again (after a change of subnets).
    async fn restart(&self, network: &Network, device: &DhcpDevice) -> Result<(), DriverError> {
        self.disable(&network.id, true).await?;
        self.enable(network, device).await
    }

    /// Applies a change of ports or options without a restart where possible.
    async fn reload_allocations(
        &self,
        network: &Network,
        device: &DhcpDevice,
    ) -> Result<(), DriverError>;

    /// Whether a server for the network is running.
    async fn active(&self, network_id: &Id) -> bool;

    /// Networks that have state on disk, for adoption at start.
    async fn existing_networks(&self) -> Result<Vec<Id>, DriverError>;
}

/// What to plug: one port's device.
#[derive(Clone, Debug, PartialEq)]
pub struct PlugSpec {
    /// The port's network.
    pub network_id: Id,
    /// The port.
    pub port_id: Id,
    /// Device name, from [`InterfaceDriver::device_name`].
    pub device_name: String,
    /// MAC address to set.
    pub mac: MacAddress,
    /// Namespace to put the device in.
    pub namespace: Option<String>,
    /// MTU to set, if known.
    pub mtu: Option<u32>,
    /// Bridge to plug into, if not the driver's default.
    pub bridge: Option<String>,
}

/// Plugs a port's device into the host's switch.
#[async_trait]
pub trait InterfaceDriver: Send + Sync + fmt::Debug {
    /// The device name of a port: `tap` and the first 11 characters of its id.
    fn device_name(&self, port_id: &Id) -> String {
        tap_name("tap", port_id)
    }

    /// Whether the device shares L2 with the VMs' taps; `false` makes dnsmasq
    /// listen with `--bridge-interface`.
    fn bridged(&self) -> bool {
        true
    }

    /// Makes the device exist, up, with the MAC and MTU, in the namespace. A
    /// device that already exists only gets its MTU fixed. On failure nothing
    /// half-made is left behind.
    async fn plug(&self, spec: &PlugSpec) -> Result<(), DriverError>;

    /// Removes the device (and its switch port). Removing what is absent is fine.
    async fn unplug(&self, device: &str, namespace: Option<&str>) -> Result<(), DriverError>;

    /// Makes the device's addresses exactly `cidrs`, keeping the kernel's IPv6 link-local.
    async fn init_l3(
        &self,
        device: &str,
        cidrs: &[IpNet],
        namespace: Option<&str>,
    ) -> Result<(), DriverError>;
}

/// `prefix` + the port id, cut to the device name length.
pub fn tap_name(prefix: &str, port_id: &Id) -> String {
    let mut name = format!("{prefix}{port_id}");
    name.truncate(DEVICE_NAME_LEN);
    name
}

/// Builds a DHCP driver from the configuration.
pub type DhcpFactory = fn(&DriverContext<'_>) -> Result<Arc<dyn DhcpDriver>, DriverError>;

/// Builds an interface driver from the configuration.
pub type InterfaceFactory = fn(&DriverContext<'_>) -> Result<Arc<dyn InterfaceDriver>, DriverError>;
