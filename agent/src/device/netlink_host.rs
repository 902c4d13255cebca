//! [`HostNet`] over `leasehold-netlink`: the DeviceManager's host operations.

use std::net::IpAddr;

use async_trait::async_trait;
use leasehold_core::driver::DriverError;
use leasehold_core::ipnet::IpNet;
use leasehold_core::model::IpVersion;
use leasehold_netlink::{sysctl_set, Handle, Netns, Scope};

use super::host::HostNet;

/// The host's network stack through netlink.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetlinkHost;

fn failed(e: leasehold_netlink::Error) -> DriverError {
    e.into_driver_error("host network")
}

fn version(v: IpVersion) -> leasehold_netlink::IpVersion {
    match v {
        IpVersion::V4 => leasehold_netlink::IpVersion::V4,
        IpVersion::V6 => leasehold_netlink::IpVersion::V6,
    }
}

async fn open(ns: &str) -> Result<Handle, DriverError> {
    Handle::open(Some(ns)).await.map_err(failed)
}

#[async_trait]
impl HostNet for NetlinkHost {
    async fn ensure_namespace(&self, ns: &str) -> Result<bool, DriverError> {
        Netns::ensure(ns).await.map_err(failed)
    }

    async fn delete_namespace(&self, ns: &str) -> Result<(), DriverError> {
        Netns::delete(ns).await.map(drop).map_err(failed)
    }

    async fn namespace_exists(&self, ns: &str) -> bool {
        Netns::exists(ns)
    }

    async fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), DriverError> {
        sysctl_set(Some(ns), key, value).await.map_err(failed)
    }

    async fn device_ready(&self, ns: &str, device: &str) -> bool {
        match open(ns).await {
            Ok(h) => h.ensure_device_ready(device).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn set_mtu(&self, ns: &str, device: &str, mtu: u32) -> Result<(), DriverError> {
        open(ns).await?.set_mtu(device, mtu).await.map_err(failed)
    }

    async fn devices(&self, ns: &str) -> Result<Vec<String>, DriverError> {
        let links = open(ns).await?.list_links().await.map_err(failed)?;
        Ok(links
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n != "lo")
            .collect())
    }

    async fn addresses(&self, ns: &str, device: &str) -> Result<Vec<IpNet>, DriverError> {
        let addrs = open(ns).await?.addresses(device).await.map_err(failed)?;
        Ok(addrs
            .into_iter()
            .filter(|a| a.scope == Scope::Global)
            .map(|a| a.cidr)
            .collect())
    }

    async fn default_gateway(&self, ns: &str, v: IpVersion) -> Result<Option<IpAddr>, DriverError> {
        open(ns)
            .await?
            .default_gateway(version(v))
            .await
            .map_err(failed)
    }

    async fn set_default_gateway(
        &self,
        ns: &str,
        device: &str,
        gateway: IpAddr,
    ) -> Result<(), DriverError> {
        open(ns)
            .await?
            .set_default_gateway(device, gateway)
            .await
            .map_err(failed)
    }

    async fn delete_default_gateway(&self, ns: &str, v: IpVersion) -> Result<(), DriverError> {
        open(ns)
            .await?
            .del_default_gateway(version(v))
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn add_onlink_route(
        &self,
        ns: &str,
        device: &str,
        ip: IpAddr,
    ) -> Result<(), DriverError> {
        open(ns)
            .await?
            .add_onlink_route(device, ip)
            .await
            .map_err(failed)
    }

    async fn delete_onlink_route(
        &self,
        ns: &str,
        device: &str,
        ip: IpAddr,
    ) -> Result<(), DriverError> {
        open(ns)
            .await?
            .del_onlink_route(device, ip)
            .await
            .map(drop)
            .map_err(failed)
    }
}
