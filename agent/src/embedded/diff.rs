//! Turning a change of the networks file into the notifications neutron-server would send.

use leasehold_core::model::Network;

use super::networks_file::NetworksFile;
use crate::notification::{Event, Notification};

/// The events that take an agent serving `old` to serving `new`, in the order
/// and with the priorities the server uses.
pub fn events(old: &NetworksFile, new: &NetworksFile) -> Vec<Event> {
    let mut out = Vec::new();
    let ev = |notification, priority| Event {
        notification,
        priority,
    };
    for (id, net) in &new.networks {
        match old.networks.get(id) {
            None => out.push(ev(
                Notification::NetworkCreateEnd {
                    network_id: id.clone(),
                },
                0,
            )),
            Some(before) => out.extend(changes(before, net)),
        }
    }
    for id in old
        .networks
        .keys()
        .filter(|id| !new.networks.contains_key(*id))
    {
        out.push(ev(
            Notification::NetworkDeleteEnd {
                network_id: id.clone(),
            },
            2,
        ));
    }
    out
}

fn changes(before: &Network, after: &Network) -> Vec<Event> {
    let id = &after.id;
    let mut out = Vec::new();
    let ev = |notification, priority| Event {
        notification,
        priority,
    };
    // Network-wide attributes (admin state, MTU, segments) go through an
    // update, which re-enables: the dnsmasq command line may change, and on
    // Open vSwitch the segmentation id is the DHCP port's VLAN.
    if before.admin_state_up != after.admin_state_up
        || before.mtu != after.mtu
        || before.segments != after.segments
        || before.segmentation_id != after.segmentation_id
    {
        out.push(ev(
            Notification::NetworkUpdateEnd {
                network_id: id.clone(),
                admin_state_up: after.admin_state_up,
            },
            1,
        ));
        if !after.admin_state_up {
            return out;
        }
    }
    if before.subnets != after.subnets || before.non_local_subnets != after.non_local_subnets {
        out.push(ev(
            Notification::SubnetUpdateEnd {
                network_id: id.clone(),
            },
            3,
        ));
    }
    for port in &after.ports {
        match before.ports.iter().find(|p| p.id == port.id) {
            None => out.push(ev(
                Notification::PortCreateEnd {
                    port: Box::new(port.clone()),
                    network_id: id.clone(),
                },
                5,
            )),
            Some(old) if old != port => out.push(ev(
                Notification::PortUpdateEnd {
                    port: Box::new(port.clone()),
                    network_id: id.clone(),
                },
                6,
            )),
            Some(_) => {}
        }
    }
    for port in before
        .ports
        .iter()
        .filter(|p| !after.ports.iter().any(|a| a.id == p.id))
    {
        let fixed_ips = port
            .fixed_ips
            .iter()
            .map(|f| *f.ip_address.value())
            .collect();
        out.push(ev(
            Notification::PortDeleteEnd {
                port_id: port.id.clone(),
                network_id: id.clone(),
                fixed_ips,
            },
            6,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::networks_file::parse;
    use super::*;

    fn file(text: &str) -> NetworksFile {
        parse(text).unwrap()
    }

    const BASE: &str = r#"{"networks": [{"id": "a", "subnets": [{"id": "s", "cidr": "198.51.100.0/24", "ip_version": 4}],
        "ports": [{"id": "p1", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.10"}]}]}]}"#;

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e.notification {
                Notification::NetworkCreateEnd { .. } => "network_create",
                Notification::NetworkUpdateEnd { .. } => "network_update",
                Notification::NetworkDeleteEnd { .. } => "network_delete",
                Notification::SubnetUpdateEnd { .. } => "subnet_update",
                Notification::SubnetDeleteEnd { .. } => "subnet_delete",
                Notification::PortCreateEnd { .. } => "port_create",
                Notification::PortUpdateEnd { .. } => "port_update",
                Notification::PortDeleteEnd { .. } => "port_delete",
                Notification::AgentUpdated { .. } => "agent_updated",
            })
            .collect()
    }

    #[test]
    fn new_and_removed_networks() {
        let empty = NetworksFile::default();
        assert_eq!(kinds(&events(&empty, &file(BASE))), ["network_create"]);
        assert_eq!(kinds(&events(&file(BASE), &empty)), ["network_delete"]);
        assert!(events(&file(BASE), &file(BASE)).is_empty());
    }

    #[test]
    fn port_changes() {
        let changed = BASE.replace("198.51.100.10", "198.51.100.11");
        assert_eq!(
            kinds(&events(&file(BASE), &file(&changed))),
            ["port_update"]
        );
        let added = BASE.replace(
            "\"ports\": [",
            "\"ports\": [{\"id\": \"p2\", \"mac_address\": \"fa:16:3e:00:00:02\"}, ",
        );
        assert_eq!(kinds(&events(&file(BASE), &file(&added))), ["port_create"]);
        let e = events(&file(&added), &file(BASE));
        assert_eq!(kinds(&e), ["port_delete"]);
    }

    #[test]
    fn subnet_and_network_changes() {
        let subnet = BASE.replace(
            "\"ip_version\": 4}",
            "\"ip_version\": 4, \"dns_nameservers\": [\"198.51.100.53\"]}",
        );
        assert_eq!(
            kinds(&events(&file(BASE), &file(&subnet))),
            ["subnet_update"]
        );
        let mtu = BASE.replace("{\"id\": \"a\",", "{\"id\": \"a\", \"mtu\": 1400,");
        assert_eq!(kinds(&events(&file(BASE), &file(&mtu))), ["network_update"]);
        let vlan = BASE.replace(
            "{\"id\": \"a\",",
            "{\"id\": \"a\", \"provider:segmentation_id\": 42,",
        );
        assert_eq!(
            kinds(&events(&file(BASE), &file(&vlan))),
            ["network_update"]
        );
        let down = BASE.replace(
            "{\"id\": \"a\",",
            "{\"id\": \"a\", \"admin_state_up\": false,",
        );
        let e = events(&file(BASE), &file(&down));
        assert!(matches!(
            e[0].notification,
            Notification::NetworkUpdateEnd {
                admin_state_up: false,
                ..
            }
        ));
        assert_eq!(e.len(), 1);
    }
}
