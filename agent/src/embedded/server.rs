//! The embedded server: answers the agent's RPC from the networks file and
//! the DHCP ports it allocates itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use leasehold_core::model::{
    from_value, FixedIp, Id, IpAddress, Mac, MacAddress, Network, Port, DEVICE_OWNER_DHCP,
};
use serde::Deserialize;

use super::allocate::{address_for, dhcp_port_id, dhcp_port_mac};
use super::networks_file::NetworksFile;
use crate::server_api::{NetworkReply, PluginApi, RpcError};

/// Plays neutron-server for one agent from a file of networks.
#[derive(Debug)]
pub struct EmbeddedServer {
    host: String,
    base_mac: Mac,
    state: Mutex<State>,
    ready_reports: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    networks: BTreeMap<Id, Network>,
    dhcp_ports: BTreeMap<Id, Port>,
}

#[derive(Deserialize)]
struct PortBody {
    port: PortFields,
}

#[derive(Deserialize)]
struct PortFields {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    fixed_ips: Option<Vec<WantedIp>>,
}

#[derive(Deserialize)]
struct WantedIp {
    subnet_id: Id,
    #[serde(default)]
    ip_address: Option<IpAddress>,
}

impl EmbeddedServer {
    /// A server for `host`, with DHCP port MACs under `base_mac`.
    pub fn new(host: impl Into<String>, base_mac: Mac) -> Self {
        EmbeddedServer {
            host: host.into(),
            base_mac,
            state: Mutex::new(State::default()),
            ready_reports: AtomicUsize::new(0),
        }
    }

    /// Replaces the networks served; DHCP ports of removed networks go with them.
    pub fn replace(&self, file: &NetworksFile) {
        let mut state = self.lock();
        state.networks = file.networks.clone();
        let keep: Vec<Id> = state.networks.keys().cloned().collect();
        state.dhcp_ports.retain(|net, _| keep.contains(net));
    }

    /// How many port ids were reported ready so far.
    pub fn ready_reports(&self) -> usize {
        self.ready_reports.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bad_request(method: &str, error: impl std::fmt::Display) -> RpcError {
        RpcError::Remote {
            method: method.into(),
            exc_type: "InvalidInput".into(),
            message: error.to_string(),
        }
    }

    /// The network as `get_network_info` returns it: DHCP subnets only, the DHCP port included.
    fn network_view(state: &State, id: &Id, dhcp_subnets_only: bool) -> Option<Network> {
        let mut net = state.networks.get(id)?.clone();
        if dhcp_subnets_only {
            net.subnets.retain(|s| s.enable_dhcp);
            net.non_local_subnets.retain(|s| s.enable_dhcp);
        }
        if let Some(port) = state.dhcp_ports.get(id) {
            net.ports.push(port.clone());
        }
        Some(net)
    }

    /// Fills the wanted fixed IPs: keeps given addresses, allocates the others.
    fn assign(
        &self,
        method: &str,
        net: &Network,
        mac: Mac,
        wanted: Vec<WantedIp>,
    ) -> Result<Vec<FixedIp>, RpcError> {
        let mut fixed = Vec::new();
        for w in wanted {
            let Some(subnet) = net.subnets.iter().find(|s| s.id == w.subnet_id) else {
                return Err(RpcError::Remote {
                    method: method.into(),
                    exc_type: "SubnetNotFound".into(),
                    message: format!("subnet {} not found", w.subnet_id),
                });
            };
            let ip = match w.ip_address {
                Some(ip) => ip,
                None => match address_for(subnet, mac, net) {
                    Some(ip) => IpAddress::from_value(ip),
                    None => {
                        return Err(RpcError::Remote {
                            method: method.into(),
                            exc_type: "IpAddressGenerationFailure".into(),
                            message: format!(
                                "no more IP addresses available on subnet {}",
                                subnet.id
                            ),
                        })
                    }
                },
            };
            fixed.push(FixedIp {
                subnet_id: w.subnet_id,
                ip_address: ip,
            });
        }
        Ok(fixed)
    }
}

#[async_trait]
impl PluginApi for EmbeddedServer {
    async fn get_active_networks_info(&self) -> Result<Vec<NetworkReply>, RpcError> {
        let state = self.lock();
        Ok(state
            .networks
            .values()
            .filter(|n| n.admin_state_up)
            .filter_map(|n| Self::network_view(&state, &n.id, false).map(Ok))
            .collect())
    }

    async fn get_network_info(&self, network_id: &Id) -> Result<Option<Network>, RpcError> {
        Ok(Self::network_view(&self.lock(), network_id, true))
    }

    async fn create_dhcp_port(&self, body: serde_json::Value) -> Result<Option<Port>, RpcError> {
        const METHOD: &str = "create_dhcp_port";
        let network_id: Id = from_value(
            body.pointer("/port/network_id")
                .cloned()
                .unwrap_or_default(),
        )
        .map_err(|e| Self::bad_request(METHOD, e))?;
        let body: PortBody = from_value(body).map_err(|e| Self::bad_request(METHOD, e))?;
        let mut state = self.lock();
        let Some(net) = state.networks.get(&network_id).cloned() else {
            return Ok(None);
        };
        let device_id = body.port.device_id.unwrap_or_default();
        let id = dhcp_port_id(&network_id, &device_id);
        let mac = dhcp_port_mac(self.base_mac, &id);
        let fixed_ips = self.assign(METHOD, &net, mac, body.port.fixed_ips.unwrap_or_default())?;
        let port = Port {
            id,
            network_id: Some(network_id.clone()),
            mac_address: MacAddress::from_value(mac),
            device_owner: DEVICE_OWNER_DHCP.into(),
            device_id,
            admin_state_up: true,
            fixed_ips,
            extra_dhcp_opts: vec![],
            dns_assignment: vec![],
            revision_number: Some(1),
            binding_host_id: Some(self.host.clone()),
        };
        state.dhcp_ports.insert(network_id, port.clone());
        Ok(Some(port))
    }

    async fn update_dhcp_port(
        &self,
        port_id: &Id,
        body: serde_json::Value,
    ) -> Result<Option<Port>, RpcError> {
        const METHOD: &str = "update_dhcp_port";
        let body: PortBody = from_value(body).map_err(|e| Self::bad_request(METHOD, e))?;
        let mut state = self.lock();
        let Some((net_id, mut port)) = state
            .dhcp_ports
            .iter()
            .find(|(_, p)| &p.id == port_id)
            .map(|(n, p)| (n.clone(), p.clone()))
        else {
            return Ok(None);
        };
        let Some(net) = state.networks.get(&net_id).cloned() else {
            return Ok(None);
        };
        if let Some(device_id) = body.port.device_id {
            port.device_id = device_id;
        }
        if let Some(wanted) = body.port.fixed_ips {
            port.fixed_ips = self.assign(METHOD, &net, *port.mac_address.value(), wanted)?;
        }
        port.revision_number = Some(port.revision_number.unwrap_or(0) + 1);
        state.dhcp_ports.insert(net_id, port.clone());
        Ok(Some(port))
    }

    async fn release_dhcp_port(&self, network_id: &Id, device_id: &str) -> Result<(), RpcError> {
        let mut state = self.lock();
        if state
            .dhcp_ports
            .get(network_id)
            .is_some_and(|p| p.device_id == device_id)
        {
            state.dhcp_ports.remove(network_id);
        }
        Ok(())
    }

    async fn get_dhcp_port(&self, port_id: &Id) -> Result<Option<Port>, RpcError> {
        Ok(self
            .lock()
            .dhcp_ports
            .values()
            .find(|p| &p.id == port_id)
            .cloned())
    }

    async fn dhcp_ready_on_ports(&self, port_ids: &[Id]) -> Result<(), RpcError> {
        self.ready_reports
            .fetch_add(port_ids.len(), Ordering::Relaxed);
        Ok(())
    }
}
