//! Getting this agent's DHCP port on a network from the server (Neutron's `setup_dhcp_port`).

use std::collections::BTreeSet;

use leasehold_core::model::{Id, Network, Port};
use serde_json::json;

use crate::dispatch::ActionError;
use crate::server_api::PluginApi;

/// The device_id of a port the server keeps for any agent to adopt.
pub const RESERVED_DHCP_PORT: &str = "reserved_dhcp_port";

/// This agent's DHCP port device_id on a network:
/// `dhcp<uuid5(NAMESPACE_DNS, short host)>-<network id>` (the server computes the same).
pub fn agent_device_id(host: &str, network_id: &Id) -> String {
    let short = host.split('.').next().unwrap_or_default();
    format!(
        "dhcp{}-{network_id}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, short.as_bytes()).hyphenated()
    )
}

fn subnet_ids(port: &Port) -> BTreeSet<&Id> {
    port.fixed_ips.iter().map(|f| &f.subnet_id).collect()
}

/// Reuses our port (fixing its subnets), adopts a reserved one, or creates
/// one; then makes sure it has an address on every DHCP subnet.
pub async fn ensure_dhcp_port(
    plugin: &dyn PluginApi,
    host: &str,
    network: &Network,
) -> Result<Port, ActionError> {
    let device_id = agent_device_id(host, &network.id);
    let dhcp_subnets: BTreeSet<&Id> = network
        .subnets
        .iter()
        .filter(|s| s.enable_dhcp)
        .map(|s| &s.id)
        .collect();

    let mut port = None;
    if let Some(existing) = network.ports.iter().find(|p| p.device_id == device_id) {
        if subnet_ids(existing) == dhcp_subnets {
            port = Some(existing.clone());
        } else {
            let kept = existing
                .fixed_ips
                .iter()
                .filter(|f| dhcp_subnets.contains(&f.subnet_id))
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}));
            let have = subnet_ids(existing);
            let added = dhcp_subnets
                .iter()
                .filter(|s| !have.contains(*s))
                .map(|s| json!({"subnet_id": s}));
            let fixed_ips: Vec<_> = kept.chain(added).collect();
            let body = json!({"port": {"network_id": network.id, "fixed_ips": fixed_ips}});
            match plugin.update_dhcp_port(&existing.id, body).await? {
                Some(p) => port = Some(p),
                None => {
                    return Err(ActionError::Conflict(format!(
                        "the server refused to update DHCP port {}",
                        existing.id
                    )))
                }
            }
        }
    }
    if port.is_none() {
        if let Some(reserved) = network
            .ports
            .iter()
            .find(|p| p.device_id == RESERVED_DHCP_PORT)
        {
            port = plugin
                .update_dhcp_port(
                    &reserved.id,
                    json!({"port": {"network_id": network.id, "device_id": device_id}}),
                )
                .await?;
        }
    }
    if port.is_none() {
        let fixed_ips: Vec<_> = dhcp_subnets
            .iter()
            .map(|s| json!({"subnet_id": s}))
            .collect();
        let body = json!({"port": {"name": "", "admin_state_up": true, "device_id": device_id, "network_id": network.id, "project_id": network.project_id, "fixed_ips": fixed_ips}});
        port = plugin.create_dhcp_port(body).await?;
    }
    let Some(mut port) = port else {
        return Err(ActionError::Conflict(format!(
            "no DHCP port could be had on network {}",
            network.id
        )));
    };
    if !dhcp_subnets.iter().all(|s| subnet_ids(&port).contains(*s)) {
        // The reply may predate the allocation; read the port once more.
        let fresh = plugin.get_dhcp_port(&port.id).await?;
        match fresh {
            Some(p) if dhcp_subnets.iter().all(|s| subnet_ids(&p).contains(*s)) => port = p,
            _ => {
                return Err(ActionError::SubnetMismatch(format!(
                    "DHCP port {} lacks an address on a DHCP subnet of network {}",
                    port.id, network.id
                )))
            }
        }
    }
    port.fixed_ips
        .retain(|f| dhcp_subnets.contains(&f.subnet_id));
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_matches_neutron() {
        // neutron/tests: host "net-node-1" gives dhcpc2b78988-e3ce-53a6-80f8-6bd1d4767a11-<net>.
        let net = Id::new("n1").unwrap();
        assert_eq!(
            agent_device_id("net-node-1", &net),
            "dhcpc2b78988-e3ce-53a6-80f8-6bd1d4767a11-n1"
        );
        assert_eq!(
            agent_device_id("net-node-1.example.org", &net),
            agent_device_id("net-node-1", &net)
        );
    }

    #[test]
    fn device_id_of_the_captured_agent() {
        // wire sample 03: host "hostA" owns dhcp3dc2c4bb-836a-5f48-8716-ea0c9a036244-<net>.
        let net = Id::new("f92dfb46-282d-4ddc-8219-8838a48afaae").unwrap();
        assert_eq!(
            agent_device_id("hostA", &net),
            "dhcp3dc2c4bb-836a-5f48-8716-ea0c9a036244-f92dfb46-282d-4ddc-8219-8838a48afaae"
        );
    }
}
