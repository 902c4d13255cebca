//! Whether a network gets the isolated metadata proxy (Dnsmasq's
//! `should_enable_metadata`), and switching it on or off.

use std::net::IpAddr;

use leasehold_core::model::{Network, Subnet, ROUTER_INTERFACE_OWNERS};

use super::{lock, Dispatcher};

/// The metadata options of `dhcp_agent.ini`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetadataConfig {
    /// `enable_isolated_metadata`.
    pub enable_isolated_metadata: bool,
    /// `force_metadata`.
    pub force_metadata: bool,
    /// `enable_metadata_network`.
    pub enable_metadata_network: bool,
}

/// Whether the isolated metadata proxy should run for `net`, in Neutron's order.
pub fn should_enable_metadata(cfg: &MetadataConfig, net: &Network) -> bool {
    // OVN serves metadata itself when it has its own port here.
    if net
        .ports
        .iter()
        .any(|p| p.device_owner == "network:distributed" && p.device_id.starts_with("ovnmeta-"))
    {
        return false;
    }
    if !net
        .subnets
        .iter()
        .chain(&net.non_local_subnets)
        .any(|s| s.enable_dhcp)
    {
        return false;
    }
    if cfg.force_metadata {
        return true;
    }
    if !cfg.enable_isolated_metadata {
        return false;
    }
    if cfg.enable_metadata_network && net.subnets.iter().any(is_metadata_cidr) {
        return true;
    }
    net.subnets
        .iter()
        .filter(|s| s.enable_dhcp)
        .any(|s| is_isolated(net, s))
}

/// True if the subnet lies inside 169.254.0.0/16 (a "metadata network").
fn is_metadata_cidr(subnet: &Subnet) -> bool {
    let c = subnet.cidr.value();
    c.prefix_len() >= 16 && matches!(c.network(), IpAddr::V4(a) if a.octets()[..2] == [169, 254])
}

/// A subnet is isolated unless a router interface holds its gateway address.
fn is_isolated(net: &Network, subnet: &Subnet) -> bool {
    let Some(gw) = subnet.gateway_ip.as_ref().map(|g| *g.value()) else {
        return true;
    };
    !net.ports.iter().any(|p| {
        ROUTER_INTERFACE_OWNERS.contains(&p.device_owner.as_str())
            && p.fixed_ips
                .iter()
                .any(|f| f.subnet_id == subnet.id && *f.ip_address.value() == gw)
    })
}

impl Dispatcher {
    /// Starts or stops the metadata proxy as `should_enable_metadata` says.
    /// The first time a network gets it since start, the proxy is stopped
    /// first, so an upgraded agent restarts it with its own configuration.
    pub(super) async fn update_isolated_metadata_proxy(&self, net: &Network) {
        if should_enable_metadata(&self.config.metadata, net) {
            let first = lock(&self.metadata_restarted).insert(net.id.clone());
            if first {
                self.metadata(net, false).await;
            }
            self.metadata(net, true).await;
        } else {
            self.metadata(net, false).await;
        }
    }

    /// One proxy call; failures are logged (the proxy is checked again at
    /// the network's next change).
    pub(super) async fn metadata(&self, net: &Network, enable: bool) {
        if let Err(e) = self.actions.metadata(net, enable).await {
            tracing::warn!(network = %net.id, enable, error = %e, "metadata proxy change failed");
        }
    }
}
