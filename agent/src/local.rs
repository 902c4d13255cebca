//! What the dispatcher's decisions do on this host: the DeviceManager and the
//! DHCP driver together (Neutron's `call_driver` targets).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use leasehold_core::driver::DhcpDriver;
use leasehold_core::model::{Network, Port};
use leasehold_core::namespace_of;

use crate::device::{DeviceManager, HostNet};
use crate::dispatch::{ActionError, NetworkActions};
use crate::embedded::vlan::VlanTagger;

/// Networks served on this host.
#[derive(Debug)]
pub struct LocalNetworks {
    devices: DeviceManager,
    dhcp: Arc<dyn DhcpDriver>,
    host: Arc<dyn HostNet>,
    metadata_warned: AtomicBool,
    vlans: Option<Arc<VlanTagger>>,
    proxy: Option<crate::metadata_proxy::ProxySettings>,
}

fn has_dhcp_subnet(net: &Network) -> bool {
    net.subnets
        .iter()
        .chain(&net.non_local_subnets)
        .any(|s| s.enable_dhcp)
}

impl LocalNetworks {
    /// Serves networks with `devices` and `dhcp`.
    pub fn new(devices: DeviceManager, dhcp: Arc<dyn DhcpDriver>, host: Arc<dyn HostNet>) -> Self {
        LocalNetworks {
            devices,
            dhcp,
            host,
            metadata_warned: AtomicBool::new(false),
            vlans: None,
            proxy: None,
        }
    }

    /// Runs the isolated-metadata proxy (haproxy) where the dispatcher asks for it.
    pub fn with_metadata_proxy(mut self, proxy: crate::metadata_proxy::ProxySettings) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Tags each DHCP port with its network's local VLAN after setup (the
    /// embedded mode on Open vSwitch, where no L2 agent does it).
    pub fn with_vlan_tagger(mut self, tagger: Arc<VlanTagger>) -> Self {
        self.vlans = Some(tagger);
        self
    }

    /// Unplugs every device of the namespace: the namespace is this network's
    /// alone, and a placeholder network (adopted at start) names no port.
    async fn unplug_all(&self, net: &Network) -> Option<ActionError> {
        let ns = namespace_of(&net.id);
        if !self.host.namespace_exists(&ns).await {
            return None;
        }
        let devices = match self.host.devices(&ns).await {
            Ok(d) => d,
            Err(e) => return Some(e.into()),
        };
        let mut first = None;
        for device in devices {
            if let Err(e) = self.devices.unplug(&net.id, &device).await {
                first.get_or_insert(e);
            }
        }
        first
    }
}

#[async_trait]
impl NetworkActions for LocalNetworks {
    async fn enable(&self, net: &Network) -> Result<Option<Port>, ActionError> {
        if !has_dhcp_subnet(net) {
            return Ok(None);
        }
        let (net, device) = self.devices.setup(net).await?;
        let port = self.devices.own_port(&net).cloned();
        if let (Some(vlans), Some(port)) = (&self.vlans, &port) {
            vlans.tag(&net, &port.id).await?;
        }
        self.dhcp.enable(&net, &device).await?;
        Ok(port)
    }

    async fn disable(&self, net: &Network) -> Result<(), ActionError> {
        // Clean up as much as possible, then report the first failure.
        let mut first: Option<ActionError> = self
            .dhcp
            .disable(&net.id, false)
            .await
            .err()
            .map(Into::into);
        if let Some(e) = self.unplug_all(net).await {
            first.get_or_insert(e);
        }
        if let Err(e) = self.devices.destroy(net, None).await {
            first.get_or_insert(e);
        }
        if let Err(e) = self.devices.delete_namespace(&net.id).await {
            first.get_or_insert(e);
        }
        if let Some(vlans) = &self.vlans {
            vlans.release(&net.id).await;
        }
        first.map_or(Ok(()), Err)
    }

    async fn restart(&self, net: &Network) -> Result<(), ActionError> {
        self.dhcp.disable(&net.id, true).await?;
        self.enable(net).await.map(drop)
    }

    async fn reload_allocations(&self, net: &Network) -> Result<(), ActionError> {
        if !has_dhcp_subnet(net) {
            return self.disable(net).await;
        }
        let Some(port) = self.devices.own_port(net) else {
            tracing::info!(network = %net.id, "no DHCP port yet; nothing to reload");
            return Ok(());
        };
        let device = self.devices.device(net, port);
        self.dhcp.reload_allocations(net, &device).await?;
        self.devices.update(net, &device.interface_name).await
    }

    async fn clean_devices(&self, net: &Network) -> Result<(), ActionError> {
        self.devices.cleanup_stale_devices(net, None).await
    }

    async fn metadata(&self, net: &Network, enable: bool) -> Result<(), ActionError> {
        if !enable {
            return match &self.proxy {
                Some(p) => p
                    .disable(&net.id)
                    .await
                    .map_err(|e| ActionError::Other(e.to_string())),
                None => Ok(()),
            };
        }
        let Some(proxy) = self.proxy.as_ref().filter(|p| p.haproxy.is_some()) else {
            if !self.metadata_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(network = %net.id, "isolated metadata is enabled but haproxy is not installed: the 169.254.169.254 address and routes are set, requests will not be answered (install haproxy)");
            }
            return Ok(());
        };
        proxy
            .enable(&net.id)
            .await
            .map_err(|e| ActionError::Other(e.to_string()))
    }
}
