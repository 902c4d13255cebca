//! The network, subnet and port dicts that neutron-server sends, as Rust types.
//!
//! Unknown keys are ignored, optional keys may be absent, and `null` is taken
//! wherever Neutron sends it. A value that does not parse (a MAC, IP, CIDR or
//! id) fails the whole network with an error that names the field.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::id::Id;
use super::verbatim::{Cidr, IpAddress, MacAddress};

/// Device owners whose ports get no host, addn_hosts or leases entry.
pub const DHCP_CONFIG_NOT_REQUIRED_OWNERS: [&str; 4] = [
    "network:router_ha_interface",
    "network:floatingip",
    "network:dhcp",
    "network:distributed",
];

/// Device owners of router interfaces: they decide whether a subnet is isolated.
pub const ROUTER_INTERFACE_OWNERS: [&str; 3] = [
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
];

/// The device owner of DHCP ports.
pub const DEVICE_OWNER_DHCP: &str = "network:dhcp";

/// A network with everything the DHCP agent needs (`get_network_info`'s reply).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Network {
    /// Network id.
    pub id: Id,
    /// Owning project; copied into the DHCP port the agent creates.
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: String,
    /// Whether the network is administratively up.
    #[serde(default = "yes", deserialize_with = "nullable_true")]
    pub admin_state_up: bool,
    /// MTU; absent, null or 0 means "not announced".
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Subnets on segments of this host (all subnets for a plain network).
    #[serde(default, deserialize_with = "nullable")]
    pub subnets: Vec<Subnet>,
    /// Subnets on other segments of a routed network: options and ranges only.
    #[serde(default, deserialize_with = "nullable")]
    pub non_local_subnets: Vec<Subnet>,
    /// Ports of the network.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<Port>,
    /// Segments of a multi-segment network.
    #[serde(default, deserialize_with = "nullable")]
    pub segments: Vec<Segment>,
    /// Provider network type (flat, vlan, vxlan…), when the server tells it.
    #[serde(
        default,
        rename = "provider:network_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_type: Option<String>,
    /// Provider segmentation id (VLAN or VNI), when the server tells it.
    #[serde(
        default,
        rename = "provider:segmentation_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub segmentation_id: Option<u32>,
}

impl Network {
    /// Puts `port` in place of the port with its id, or appends it.
    pub fn put_port(&mut self, port: Port) {
        match self.ports.iter_mut().find(|p| p.id == port.id) {
            Some(slot) => *slot = port,
            None => {
                // One more, not twice as many: cached networks live long,
                // and the DHCP port is usually the only one added this way.
                self.ports.reserve_exact(1);
                self.ports.push(port);
            }
        }
    }
}

/// IP version of a subnet or option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The number Neutron uses (4 or 6).
    pub fn number(self) -> u8 {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        }
    }

    /// The version of an address.
    pub fn of(addr: &IpAddr) -> Self {
        if addr.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }
}

impl Serialize for IpVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for IpVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Neutron sends an integer; accept "4"/"6" too, as the API does.
        let v = serde_json::Value::deserialize(d)?;
        match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        {
            Some(4) => Ok(IpVersion::V4),
            Some(6) => Ok(IpVersion::V6),
            _ => Err(serde::de::Error::custom(format!(
                "ip_version must be 4 or 6, got {v}"
            ))),
        }
    }
}

/// `ipv6_address_mode` / `ipv6_ra_mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ipv6Mode {
    /// Addresses by stateless autoconfiguration; no DHCP.
    #[serde(rename = "slaac")]
    Slaac,
    /// Addresses by DHCPv6.
    #[serde(rename = "dhcpv6-stateful")]
    Dhcpv6Stateful,
    /// SLAAC addresses, options by DHCPv6.
    #[serde(rename = "dhcpv6-stateless")]
    Dhcpv6Stateless,
}

/// A subnet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    /// Subnet id.
    pub id: Id,
    /// The network it belongs to, when the server includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<Id>,
    /// Address range.
    pub cidr: Cidr,
    /// IP version; must agree with `cidr`.
    pub ip_version: IpVersion,
    /// Default gateway; null for none.
    #[serde(default)]
    pub gateway_ip: Option<IpAddress>,
    /// Whether DHCP serves this subnet.
    #[serde(default = "yes", deserialize_with = "nullable_true")]
    pub enable_dhcp: bool,
    /// DNS servers announced on this subnet, in order.
    #[serde(default, deserialize_with = "nullable")]
    pub dns_nameservers: Vec<IpAddress>,
    /// Static routes announced on this subnet.
    #[serde(default, deserialize_with = "nullable")]
    pub host_routes: Vec<HostRoute>,
    /// IPv6 address mode.
    #[serde(default)]
    pub ipv6_address_mode: Option<Ipv6Mode>,
    /// IPv6 router advertisement mode.
    #[serde(default)]
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    /// Segment of a routed network (Neutron's own tests use integers here).
    #[serde(default, deserialize_with = "opt_id_string_or_number")]
    pub segment_id: Option<Id>,
    /// Subnet pool (prefix delegation uses a special one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnetpool_id: Option<String>,
    /// Allocation pools.
    #[serde(default, deserialize_with = "nullable")]
    pub allocation_pools: Vec<AllocationPool>,
}

impl Subnet {
    /// True for IPv6 subnets in SLAAC mode (or RA mode set with no address mode).
    pub fn is_slaac(&self) -> bool {
        self.ip_version == IpVersion::V6
            && match self.ipv6_address_mode {
                Some(Ipv6Mode::Slaac) => true,
                None => self.ipv6_ra_mode.is_some(),
                _ => false,
            }
    }

    /// True for IPv6 subnets in DHCPv6-stateless mode.
    pub fn is_dhcpv6_stateless(&self) -> bool {
        self.ip_version == IpVersion::V6
            && self.ipv6_address_mode == Some(Ipv6Mode::Dhcpv6Stateless)
    }

    /// True if `addr` lies inside this subnet's CIDR.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        self.cidr.value().contains(addr)
    }
}

/// A static route of a subnet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HostRoute {
    /// Destination CIDR.
    pub destination: Cidr,
    /// Next hop.
    pub nexthop: IpAddress,
}

/// An allocation pool of a subnet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AllocationPool {
    /// First address.
    pub start: IpAddress,
    /// Last address.
    pub end: IpAddress,
}

/// A port.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Port {
    /// Port id.
    pub id: Id,
    /// The network it belongs to, when the server includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<Id>,
    /// MAC address.
    pub mac_address: MacAddress,
    /// Owner kind (`compute:nova`, `network:dhcp`, …); empty when none.
    #[serde(default, deserialize_with = "nullable")]
    pub device_owner: String,
    /// Owner id (a VM, a router, `dhcp<uuid>-<net>`…).
    #[serde(default, deserialize_with = "nullable")]
    pub device_id: String,
    /// Whether the port is administratively up.
    #[serde(default = "yes", deserialize_with = "nullable_true")]
    pub admin_state_up: bool,
    /// Fixed IPs.
    #[serde(default, deserialize_with = "nullable")]
    pub fixed_ips: Vec<FixedIp>,
    /// Extra DHCP options.
    #[serde(default, deserialize_with = "nullable")]
    pub extra_dhcp_opts: Vec<ExtraDhcpOpt>,
    /// DNS names the server assigned to the fixed IPs.
    #[serde(default, deserialize_with = "nullable")]
    pub dns_assignment: Vec<DnsAssignment>,
    /// Revision, to drop stale update messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_number: Option<u64>,
    /// The host the port is bound to.
    #[serde(
        default,
        rename = "binding:host_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub binding_host_id: Option<String>,
}

impl Port {
    /// Whether this port needs host/lease entries (see `DHCP_CONFIG_NOT_REQUIRED_OWNERS`).
    pub fn requires_dhcp_configuration(&self) -> bool {
        !DHCP_CONFIG_NOT_REQUIRED_OWNERS.contains(&self.device_owner.as_str())
    }

    /// Whether the port is a router interface.
    pub fn is_router_interface(&self) -> bool {
        ROUTER_INTERFACE_OWNERS.contains(&self.device_owner.as_str())
    }

    /// The client-id extra option's value, if any (`client-id`, `61`).
    pub fn client_id(&self) -> Option<&str> {
        self.extra_dhcp_opts
            .iter()
            .find(|o| o.is_client_id())
            .and_then(|o| o.opt_value.as_deref())
    }

    /// The IP versions of the port's fixed IPs.
    pub fn ip_versions(&self) -> BTreeSet<IpVersion> {
        self.fixed_ips
            .iter()
            .map(|f| IpVersion::of(f.ip_address.value()))
            .collect()
    }
}

/// One fixed IP of a port.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct FixedIp {
    /// The subnet the address is on.
    pub subnet_id: Id,
    /// The address.
    pub ip_address: IpAddress,
}

/// An extra DHCP option of a port.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExtraDhcpOpt {
    /// Option name or number; may carry a `tag:x,` prefix.
    #[serde(deserialize_with = "string_or_number")]
    pub opt_name: String,
    /// Option value; null when the option is sent empty.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    pub opt_value: Option<String>,
    /// Which DHCP the option is for.
    #[serde(default = "v4", deserialize_with = "nullable_v4")]
    pub ip_version: IpVersion,
}

impl ExtraDhcpOpt {
    /// The client-id option goes into the hosts file, not the opts file.
    pub fn is_client_id(&self) -> bool {
        self.opt_name == "client-id" || self.opt_name == "61"
    }
}

/// A DNS name assigned to one fixed IP.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DnsAssignment {
    /// Host name.
    #[serde(deserialize_with = "string_or_number")]
    pub hostname: String,
    /// The fixed IP it names.
    pub ip_address: IpAddress,
    /// Fully qualified name, usually with a trailing dot.
    #[serde(deserialize_with = "string_or_number")]
    pub fqdn: String,
}

/// A segment of a multi-segment network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Segment id.
    pub id: Id,
    /// Network type.
    #[serde(default)]
    pub network_type: Option<String>,
    /// Physical network.
    #[serde(default)]
    pub physical_network: Option<String>,
    /// VLAN id or VNI.
    #[serde(default)]
    pub segmentation_id: Option<u32>,
}

fn yes() -> bool {
    true
}

fn v4() -> IpVersion {
    IpVersion::V4
}

/// `null` reads as the type's default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn nullable_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

fn nullable_v4<'de, D: Deserializer<'de>>(d: D) -> Result<IpVersion, D::Error> {
    Ok(Option::<IpVersion>::deserialize(d)?.unwrap_or(IpVersion::V4))
}

/// Accepts a JSON string or number as text, without buffering a `Value`.
struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, a number or null")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        // Python's str(True), as Neutron would write it.
        Ok(Some(if v { "True" } else { "False" }.to_string()))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(TextVisitor)?
        .ok_or_else(|| serde::de::Error::custom("expected a string or a number, got null"))
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(TextVisitor)
}

fn opt_id_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Id>, D::Error> {
    match d.deserialize_any(TextVisitor)? {
        None => Ok(None),
        Some(text) => Id::new(text).map(Some).map_err(serde::de::Error::custom),
    }
}
