//! The DeviceManager: a network's DHCP port on the host — namespace, device,
//! addresses, default route — as Neutron's `DeviceManager` does it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use leasehold_core::driver::{DhcpDevice, InterfaceDriver, PlugSpec};
use leasehold_core::ipnet::IpNet;
use leasehold_core::model::{Id, IpVersion, Network, Port, Subnet};
use leasehold_core::namespace_of;

use super::host::HostNet;
use super::port::{agent_device_id, ensure_dhcp_port};
use crate::dispatch::ActionError;
use crate::server_api::PluginApi;

/// The metadata proxy's addresses on the DHCP device.
pub const METADATA_V4: &str = "169.254.169.254/32";
/// The IPv6 metadata address.
pub const METADATA_V6: &str = "fe80::a9fe:a9fe/128";

/// Settings the DeviceManager reads.
#[derive(Debug, Clone, Default)]
pub struct DeviceSettings {
    /// `[DEFAULT] host`.
    pub host: String,
    /// `enable_isolated_metadata` or `force_metadata`: the device gets the metadata addresses.
    pub metadata_addresses: bool,
}

/// Sets up and tears down networks' DHCP devices.
#[derive(Debug, Clone)]
pub struct DeviceManager {
    settings: DeviceSettings,
    plugin: Arc<dyn PluginApi>,
    interface: Arc<dyn InterfaceDriver>,
    host: Arc<dyn HostNet>,
}

fn ipv6_enabled() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

impl DeviceManager {
    /// A manager plugging with `interface` and asking `plugin` for ports.
    pub fn new(
        settings: DeviceSettings,
        plugin: Arc<dyn PluginApi>,
        interface: Arc<dyn InterfaceDriver>,
        host: Arc<dyn HostNet>,
    ) -> Self {
        DeviceManager {
            settings,
            plugin,
            interface,
            host,
        }
    }

    /// This agent's DHCP port device_id on `network`.
    pub fn device_id(&self, network: &Id) -> String {
        agent_device_id(&self.settings.host, network)
    }

    /// This agent's DHCP port among the network's ports.
    pub fn own_port<'a>(&self, network: &'a Network) -> Option<&'a Port> {
        let device_id = self.device_id(&network.id);
        network.ports.iter().find(|p| p.device_id == device_id)
    }

    /// Gets the DHCP port and makes its device ready in `qdhcp-<net>` with its
    /// addresses and default route. Returns the network with the port in it.
    pub async fn setup(&self, network: &Network) -> Result<(Network, DhcpDevice), ActionError> {
        // Where a setup's time goes, for the debug log (milliseconds).
        let mut lap = tokio::time::Instant::now();
        let mut laps = move || {
            let now = tokio::time::Instant::now();
            let ms = (now - lap).as_secs_f64() * 1e3;
            lap = now;
            ms
        };
        let port = match ensure_dhcp_port(self.plugin.as_ref(), &self.settings.host, network).await
        {
            Ok(p) => p,
            Err(e) => {
                let _ = self.cleanup_stale_devices(network, None).await;
                return Err(e);
            }
        };
        let port_ms = laps();
        let mut network = network.clone();
        network.put_port(port.clone());
        let name = self.interface.device_name(&port.id);
        let ns = namespace_of(&network.id);
        // A namespace made just now holds only `lo`: no device to reuse, no
        // route or stale device to look for. Each look skipped is a netlink
        // request less, and during a sync every request waits behind other
        // networks' device moves (they hold the host's rtnl lock ~20 ms each).
        let fresh = self.host.ensure_namespace(&ns).await?;
        self.host
            .sysctl(&ns, "net.ipv4.ip_nonlocal_bind", "1")
            .await?;
        if ipv6_enabled() {
            // Before plugging, so no SLAAC address appears on the device.
            self.host
                .sysctl(&ns, "net.ipv6.conf.default.accept_ra", "0")
                .await?;
        }
        let namespace_ms = laps();
        if !fresh && self.host.device_ready(&ns, &name).await {
            if let Some(mtu) = network.mtu.filter(|m| *m > 0) {
                self.host.set_mtu(&ns, &name, mtu).await?;
            }
        } else {
            let spec = PlugSpec {
                network_id: network.id.clone(),
                port_id: port.id.clone(),
                device_name: name.clone(),
                mac: port.mac_address.clone(),
                namespace: Some(ns.clone()),
                mtu: network.mtu.filter(|m| *m > 0),
                bridge: None,
            };
            if let Err(e) = self.interface.plug(&spec).await {
                let _ = self.interface.unplug(&name, Some(&ns)).await;
                let _ = self
                    .plugin
                    .release_dhcp_port(&network.id, &port.device_id)
                    .await;
                return Err(e.into());
            }
        }
        let plug_ms = laps();
        let cidrs = self.device_cidrs(&network, &port);
        self.interface.init_l3(&name, &cidrs, Some(&ns)).await?;
        let addresses_ms = laps();
        self.set_default_route(&network, &name, fresh).await?;
        let route_ms = laps();
        if !fresh {
            self.cleanup_stale_devices(&network, Some(&port)).await?;
        }
        tracing::debug!(
            network = %network.id,
            dhcp_port_ms = port_ms,
            namespace_ms,
            plug_ms,
            addresses_ms,
            route_ms,
            stale_devices_ms = laps(),
            "device set up"
        );
        let device = self.device(&network, &port);
        Ok((network, device))
    }

    /// The device description of the network's DHCP port, for the DHCP driver.
    pub fn device(&self, network: &Network, port: &Port) -> DhcpDevice {
        let interface_ips: BTreeMap<Id, IpAddr> = port
            .fixed_ips
            .iter()
            .map(|f| (f.subnet_id.clone(), *f.ip_address.value()))
            .collect();
        DhcpDevice {
            interface_name: self.interface.device_name(&port.id),
            namespace: Some(namespace_of(&network.id)),
            bridged: self.interface.bridged(),
            interface_ips,
        }
    }

    /// The addresses the device must have: each fixed IP with its subnet's
    /// prefix, and the metadata addresses when metadata is served here.
    pub fn device_cidrs(&self, network: &Network, port: &Port) -> Vec<IpNet> {
        let mut cidrs: Vec<IpNet> = port
            .fixed_ips
            .iter()
            .filter_map(|f| {
                let subnet = network.subnets.iter().find(|s| s.id == f.subnet_id)?;
                IpNet::new(*f.ip_address.value(), subnet.cidr.value().prefix_len()).ok()
            })
            .collect();
        if self.settings.metadata_addresses {
            cidrs.push(METADATA_V4.parse().expect("constant CIDR"));
            if ipv6_enabled()
                && network
                    .subnets
                    .iter()
                    .any(|s| s.ip_version == IpVersion::V6)
            {
                cidrs.push(METADATA_V6.parse().expect("constant CIDR"));
            }
        }
        cidrs
    }

    /// Re-evaluates the namespace's default routes (Neutron's `update`).
    pub async fn update(&self, network: &Network, device: &str) -> Result<(), ActionError> {
        self.set_default_route(network, device, false).await
    }

    /// Unplugs the device (if named) and gives the port back to the server.
    pub async fn destroy(
        &self,
        network: &Network,
        device: Option<&str>,
    ) -> Result<(), ActionError> {
        let ns = namespace_of(&network.id);
        let mut first_error = None;
        if let Some(device) = device {
            if let Err(e) = self.interface.unplug(device, Some(&ns)).await {
                tracing::warn!(network = %network.id, device, "unplug failed: {e}");
                first_error = Some(ActionError::from(e));
            }
        }
        if let Err(e) = self
            .plugin
            .release_dhcp_port(&network.id, &self.device_id(&network.id))
            .await
        {
            first_error.get_or_insert(ActionError::from(e));
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Unplugs one device of the network's namespace.
    pub async fn unplug(&self, network: &Id, device: &str) -> Result<(), ActionError> {
        Ok(self
            .interface
            .unplug(device, Some(&namespace_of(network)))
            .await?)
    }

    /// Deletes the network's namespace.
    pub async fn delete_namespace(&self, network: &Id) -> Result<(), ActionError> {
        Ok(self.host.delete_namespace(&namespace_of(network)).await?)
    }

    /// Unplugs devices in the namespace that belong to ports bound to other
    /// hosts or to no port of the network, keeping the DHCP port's own.
    pub async fn cleanup_stale_devices(
        &self,
        network: &Network,
        dhcp_port: Option<&Port>,
    ) -> Result<(), ActionError> {
        let ns = namespace_of(&network.id);
        if !self.host.namespace_exists(&ns).await {
            return Ok(());
        }
        let keep = dhcp_port.map(|p| self.interface.device_name(&p.id));
        for device in self.host.devices(&ns).await? {
            if keep.as_deref() == Some(device.as_str()) {
                continue;
            }
            let owner = network
                .ports
                .iter()
                .find(|p| self.interface.device_name(&p.id) == device);
            let stale = match owner {
                None => true,
                Some(p) => p
                    .binding_host_id
                    .as_deref()
                    .is_some_and(|h| !h.is_empty() && h != self.settings.host),
            };
            if stale {
                tracing::info!(network = %network.id, device, "unplugging a stale device");
                if let Err(e) = self.interface.unplug(&device, Some(&ns)).await {
                    tracing::warn!(network = %network.id, device, "unplugging a stale device failed: {e}");
                }
            }
        }
        Ok(())
    }

    /// `fresh`: the namespace was made by this setup, so it has no default
    /// route yet (none is looked up).
    async fn set_default_route(
        &self,
        network: &Network,
        device: &str,
        fresh: bool,
    ) -> Result<(), ActionError> {
        let ns = namespace_of(&network.id);
        for version in [IpVersion::V4, IpVersion::V6] {
            let current = if fresh {
                None
            } else {
                self.host.default_gateway(&ns, version).await?
            };
            match gateway_subnet(network, version) {
                Some((subnet, gateway)) if current != Some(gateway) => {
                    if let Some(old) = current.filter(|old| !subnet.contains(old)) {
                        let _ = self.host.delete_onlink_route(&ns, device, old).await;
                    }
                    if !subnet.contains(&gateway) {
                        self.host.add_onlink_route(&ns, device, gateway).await?;
                    }
                    self.host.set_default_gateway(&ns, device, gateway).await?;
                }
                Some(_) => {}
                None if current.is_some() => self.host.delete_default_gateway(&ns, version).await?,
                None => {}
            }
        }
        Ok(())
    }
}

/// The first DHCP subnet of `version` whose gateway makes a default route.
fn gateway_subnet(network: &Network, version: IpVersion) -> Option<(&Subnet, IpAddr)> {
    network
        .subnets
        .iter()
        .filter(|s| s.enable_dhcp && s.ip_version == version)
        .find_map(|s| {
            let gw = *s.gateway_ip.as_ref()?.value();
            if s.subnetpool_id.as_deref() == Some("prefix_delegation") {
                return None;
            }
            if version == IpVersion::V6 {
                let prefix = s.cidr.value().prefix_len();
                if prefix == 0
                    || prefix > 126
                    || ((s.is_slaac() || s.is_dhcpv6_stateless()) && prefix != 64)
                {
                    return None;
                }
            }
            Some((s, gw))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_subnet_follows_neutrons_rules() {
        let (net, _) = Network::from_json_value(json!({"id": "n", "subnets": [
            {"id": "off", "cidr": "203.0.113.0/24", "ip_version": 4, "gateway_ip": "203.0.113.1", "enable_dhcp": false},
            {"id": "nogw", "cidr": "198.51.100.0/25", "ip_version": 4, "gateway_ip": null},
            {"id": "v4", "cidr": "198.51.100.128/25", "ip_version": 4, "gateway_ip": "198.51.100.129"},
            {"id": "pd", "cidr": "2001:db8:1::/64", "ip_version": 6, "gateway_ip": "2001:db8:1::1", "subnetpool_id": "prefix_delegation"},
            {"id": "slaac56", "cidr": "2001:db8:2::/56", "ip_version": 6, "gateway_ip": "2001:db8:2::1", "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"},
            {"id": "v6", "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": "2001:db8::1", "ipv6_address_mode": "dhcpv6-stateful"}
        ]}))
        .unwrap();
        assert_eq!(
            gateway_subnet(&net, IpVersion::V4).unwrap().0.id.as_str(),
            "v4"
        );
        assert_eq!(
            gateway_subnet(&net, IpVersion::V6).unwrap().0.id.as_str(),
            "v6"
        );
    }
}
