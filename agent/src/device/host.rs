//! What the DeviceManager needs from the host's network stack, and nothing more.
//!
//! The production implementation is a thin adapter over `leasehold-netlink`
//! (see `netlink_host.rs`); keeping the surface this small makes the
//! DeviceManager's steps readable as Neutron's.

use std::net::IpAddr;

use async_trait::async_trait;
use leasehold_core::driver::DriverError;
use leasehold_core::ipnet::IpNet;
use leasehold_core::model::IpVersion;

/// Namespace-scoped network operations.
#[async_trait]
pub trait HostNet: Send + Sync + std::fmt::Debug {
    /// Creates the namespace if missing (lo up, promote_secondaries on).
    /// Returns whether it was created now, i.e. holds nothing but `lo`.
    async fn ensure_namespace(&self, ns: &str) -> Result<bool, DriverError>;
    /// Deletes the namespace; absent is fine.
    async fn delete_namespace(&self, ns: &str) -> Result<(), DriverError>;
    /// Whether the namespace exists.
    async fn namespace_exists(&self, ns: &str) -> bool;
    /// Writes `/proc/sys/<key>` (dotted form) inside the namespace.
    async fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), DriverError>;
    /// Whether the device exists in the namespace, has a MAC and is up.
    async fn device_ready(&self, ns: &str, device: &str) -> bool;
    /// Sets the device's MTU.
    async fn set_mtu(&self, ns: &str, device: &str, mtu: u32) -> Result<(), DriverError>;
    /// Devices in the namespace other than `lo`.
    async fn devices(&self, ns: &str) -> Result<Vec<String>, DriverError>;
    /// Global addresses of the device.
    async fn addresses(&self, ns: &str, device: &str) -> Result<Vec<IpNet>, DriverError>;
    /// The default gateway of one IP version, if any.
    async fn default_gateway(
        &self,
        ns: &str,
        version: IpVersion,
    ) -> Result<Option<IpAddr>, DriverError>;
    /// Replaces the default route of the gateway's version with one via `gateway` on `device`.
    async fn set_default_gateway(
        &self,
        ns: &str,
        device: &str,
        gateway: IpAddr,
    ) -> Result<(), DriverError>;
    /// Removes the default route of one IP version.
    async fn delete_default_gateway(&self, ns: &str, version: IpVersion)
        -> Result<(), DriverError>;
    /// Adds a link-scope host route to `ip` on `device` (a gateway outside the subnet).
    async fn add_onlink_route(&self, ns: &str, device: &str, ip: IpAddr)
        -> Result<(), DriverError>;
    /// Removes a link-scope host route to `ip`.
    async fn delete_onlink_route(
        &self,
        ns: &str,
        device: &str,
        ip: IpAddr,
    ) -> Result<(), DriverError>;
}
