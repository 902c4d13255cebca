//! Choosing the DHCP port's addresses and MAC, as neutron-server would, for the embedded mode.
//!
//! Everything is derived from the network and host, so a restarted agent
//! gets the same port back and finds its running dnsmasq unchanged.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use leasehold_core::ipnet;
use leasehold_core::model::{Id, IpVersion, Mac, Network, Subnet};
use uuid::Uuid;

/// Namespace of the ids and MACs this mode derives.
const EMBEDDED_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6173_6568_6f6c_645f_656d_6265_6464);

/// A stable port id for the DHCP port of `device_id` on `network`.
pub fn dhcp_port_id(network: &Id, device_id: &str) -> Id {
    let id = Uuid::new_v5(
        &EMBEDDED_NAMESPACE,
        format!("{network}/{device_id}").as_bytes(),
    );
    Id::new(id.to_string()).expect("a UUID is a valid id")
}

/// A stable MAC: the first three bytes of `base_mac`, the rest from the port id.
pub fn dhcp_port_mac(base: Mac, port_id: &Id) -> Mac {
    let hash = Uuid::new_v5(&EMBEDDED_NAMESPACE, port_id.as_str().as_bytes());
    let h = hash.as_bytes();
    Mac([base.0[0], base.0[1], base.0[2], h[0], h[1], h[2]])
}

/// The address the DHCP port gets on `subnet`: EUI-64 of its MAC on SLAAC and
/// stateless subnets (as the server assigns there), else the first free
/// address of the allocation pools (the whole CIDR less network, gateway and
/// broadcast when there are none).
pub fn address_for(subnet: &Subnet, mac: Mac, network: &Network) -> Option<IpAddr> {
    if subnet.ip_version == IpVersion::V6 && (subnet.is_slaac() || subnet.is_dhcpv6_stateless()) {
        return eui64(subnet, mac);
    }
    let used: HashSet<IpAddr> = network
        .ports
        .iter()
        .flat_map(|p| &p.fixed_ips)
        .map(|f| *f.ip_address.value())
        .chain(subnet.gateway_ip.as_ref().map(|g| *g.value()))
        .collect();
    let cidr = *subnet.cidr.value();
    let pools: Vec<(u128, u128)> = if subnet.allocation_pools.is_empty() {
        let net = to_u128(cidr.network());
        let last = to_u128(cidr.broadcast());
        match cidr {
            ipnet::IpNet::V4(_) if last > net + 1 => vec![(net + 1, last - 1)],
            ipnet::IpNet::V6(_) if last > net => vec![(net + 1, last)],
            _ => vec![],
        }
    } else {
        subnet
            .allocation_pools
            .iter()
            .map(|p| (to_u128(*p.start.value()), to_u128(*p.end.value())))
            .collect()
    };
    let v4 = subnet.ip_version == IpVersion::V4;
    for (start, end) in pools {
        // A bounded walk: a pool whose first 65536 addresses are all taken is full enough.
        let mut n = start;
        while n <= end && n - start < 65_536 {
            let ip = from_u128(n, v4);
            if cidr.contains(&ip) && !used.contains(&ip) {
                return Some(ip);
            }
            n += 1;
        }
    }
    None
}

fn eui64(subnet: &Subnet, mac: Mac) -> Option<IpAddr> {
    let ipnet::IpNet::V6(net) = *subnet.cidr.value() else {
        return None;
    };
    if net.prefix_len() != 64 {
        return None;
    }
    let m = mac.0;
    let iid = [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
    let mut bytes = net.network().octets();
    bytes[8..].copy_from_slice(&iid);
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network(extra_ports: serde_json::Value, pools: serde_json::Value) -> Network {
        Network::from_json_value(json!({
            "id": "n1",
            "subnets": [
                {"id": "v4", "cidr": "198.51.100.0/29", "ip_version": 4, "gateway_ip": "198.51.100.1", "allocation_pools": pools},
                {"id": "v6", "cidr": "2001:db8::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}
            ],
            "ports": extra_ports
        }))
        .unwrap()
        .0
    }

    #[test]
    fn first_free_address_skips_gateway_and_used() {
        let net = network(
            json!([{"id": "p", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": [{"subnet_id": "v4", "ip_address": "198.51.100.2"}]}]),
            json!([]),
        );
        let mac = Mac([0xfa, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(
            address_for(&net.subnets[0], mac, &net),
            Some("198.51.100.3".parse().unwrap())
        );
    }

    #[test]
    fn pools_are_honoured_and_a_full_subnet_gives_none() {
        let net = network(
            json!([]),
            json!([{"start": "198.51.100.5", "end": "198.51.100.6"}]),
        );
        let mac = Mac([0xfa, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(
            address_for(&net.subnets[0], mac, &net),
            Some("198.51.100.5".parse().unwrap())
        );
        let full = network(
            json!([{"id": "p", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": [
                {"subnet_id": "v4", "ip_address": "198.51.100.5"}, {"subnet_id": "v4", "ip_address": "198.51.100.6"}]}]),
            json!([{"start": "198.51.100.5", "end": "198.51.100.6"}]),
        );
        assert_eq!(address_for(&full.subnets[0], mac, &full), None);
    }

    #[test]
    fn slaac_uses_eui64_and_ids_are_stable() {
        let net = network(json!([]), json!([]));
        let mac = Mac([0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33]);
        assert_eq!(
            address_for(&net.subnets[1], mac, &net),
            Some("2001:db8::f816:3eff:fe11:2233".parse().unwrap())
        );
        let id = Id::new("n1").unwrap();
        assert_eq!(dhcp_port_id(&id, "dhcpx-n1"), dhcp_port_id(&id, "dhcpx-n1"));
        assert_ne!(dhcp_port_id(&id, "dhcpx-n1"), dhcp_port_id(&id, "dhcpy-n1"));
        let p = dhcp_port_id(&id, "d");
        assert_eq!(dhcp_port_mac(mac, &p).0[..3], [0xfa, 0x16, 0x3e]);
    }
}
