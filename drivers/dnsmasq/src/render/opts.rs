//! The `opts` file (`--dhcp-optsfile`): per-subnet options (DNS, domain
//! search, routes, router), per-port extra DHCP options, and the DNS servers
//! of several DHCP agents.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use leasehold_core::model::{
    IpAddress, IpVersion, Ipv6Mode, Network, Port, Subnet, DEVICE_OWNER_DHCP,
};

use super::{all_subnets, Index, RuntimeFacts};
use crate::config::DnsmasqConfig;
use crate::sanitize::{PortVerdict, Sanitized};

/// Destination Neutron never emits as a host route (it only supplies a gateway).
const IPV4_ANY: &str = "0.0.0.0/0";
/// The metadata service's route destination.
const METADATA_CIDR: &str = "169.254.169.254/32";
/// Microsoft's classless static route option, sent alongside 121.
const WIN2K3_STATIC_ROUTES: &str = "249";
/// Device owner of OVN's metadata port.
pub(crate) const DEVICE_OWNER_DISTRIBUTED: &str = "network:distributed";
/// Device id prefix of OVN's metadata port.
pub(crate) const OVN_METADATA_PREFIX: &str = "ovnmeta-";

/// Builds the `opts` file; lines joined with `\n`, no trailing newline.
pub fn opts(net: &Sanitized<'_>, config: &DnsmasqConfig, facts: &RuntimeFacts) -> String {
    let network = net.network();
    let idx = Index::new(network);
    let mut ports = PortOptions::new(network);
    for (i, port) in network.ports.iter().enumerate() {
        ports.add_port(&idx, port, net.verdict(i));
    }
    ports.finish(network, config, facts)
}

/// What the per-port pass collects for the opts file: the port option lines,
/// the DHCP ports' addresses and which subnets have their router attached.
pub(crate) struct PortOptions<'a> {
    lines: Lines,
    without_dns: HashSet<&'a str>,
    /// subnet id → DHCP ports' addresses on it, in first-seen order.
    dhcp_ips: Vec<(&'a str, Vec<&'a IpAddress>)>,
    /// Subnets whose gateway address a router interface port holds.
    routed: HashSet<&'a str>,
}

impl<'a> PortOptions<'a> {
    /// An empty collection for `network`.
    pub(crate) fn new(network: &'a Network) -> Self {
        PortOptions {
            lines: Lines::with_capacity(network.ports.len() * 24),
            without_dns: subnets_without_dns(network),
            dhcp_ips: Vec::new(),
            routed: HashSet::new(),
        }
    }

    /// Takes one port (in network order).
    pub(crate) fn add_port(&mut self, idx: &Index<'a>, port: &'a Port, verdict: &PortVerdict) {
        if port.is_router_interface() {
            // Not isolated iff a router port holds the gateway (text compare).
            for fip in &port.fixed_ips {
                let sid = fip.subnet_id.as_str();
                if let Some(gw) = idx.subnet(sid).and_then(|s| s.gateway_ip.as_ref()) {
                    if gw.text() == fip.ip_address.text() {
                        self.routed.insert(sid);
                    }
                }
            }
        }
        if verdict.remaining_opts(port) > 0 {
            // The IP versions of the port's fixed IPs.
            let (mut has_v4, mut has_v6) = (false, false);
            for fip in &port.fixed_ips {
                match fip.ip_address.value() {
                    IpAddr::V4(_) => has_v4 = true,
                    IpAddr::V6(_) => has_v6 = true,
                }
            }
            for (oi, opt) in port.extra_dhcp_opts.iter().enumerate() {
                let version_ok = match opt.ip_version {
                    IpVersion::V4 => has_v4,
                    IpVersion::V6 => has_v6,
                };
                if opt.is_client_id() || verdict.drops(oi) || !version_ok {
                    continue;
                }
                let value = opt.opt_value.as_deref().unwrap_or("");
                self.lines.option(
                    opt.ip_version,
                    "port-",
                    port.id.as_str(),
                    &opt.opt_name,
                    Some(value),
                );
            }
        }
        if port.device_owner == DEVICE_OWNER_DHCP {
            for fip in &port.fixed_ips {
                let sid = fip.subnet_id.as_str();
                if !self.without_dns.contains(sid) {
                    continue;
                }
                match self.dhcp_ips.iter_mut().find(|(s, _)| *s == sid) {
                    Some((_, ips)) => ips.push(&fip.ip_address),
                    None => self.dhcp_ips.push((sid, vec![&fip.ip_address])),
                }
            }
        }
    }

    /// The whole file: subnet lines, port lines, then the several-agents lines.
    pub(crate) fn finish(
        self,
        network: &'a Network,
        config: &DnsmasqConfig,
        facts: &RuntimeFacts,
    ) -> String {
        let mut out = Lines::with_capacity(self.lines.buf.len() + 1024);
        per_subnet(&mut out, network, config, facts, &self.routed);
        if !self.lines.buf.is_empty() {
            out.start().push_str(&self.lines.buf);
        }
        for (sid, ips) in self.dhcp_ips {
            for v in [IpVersion::V4, IpVersion::V6] {
                let of_version: Vec<&IpAddress> = ips
                    .iter()
                    .copied()
                    .filter(|ip| IpVersion::of(ip.value()) == v)
                    .collect();
                if of_version.len() > 1 {
                    let list = literal_addrs(v, of_version.into_iter());
                    out.option(v, "subnet-", sid, "dns-server", Some(list.as_str()));
                }
            }
        }
        out.buf
    }
}

/// Subnets that get options but announce no DNS server (dnsmasq then offers
/// itself; several DHCP agents announce each other, see `finish`).
fn subnets_without_dns(network: &Network) -> HashSet<&str> {
    all_subnets(network)
        .filter(|s| gets_options(s) && s.dns_nameservers.is_empty())
        .map(|s| s.id.as_str())
        .collect()
}

/// Whether a subnet gets per-subnet options: DHCP on and not SLAAC.
fn gets_options(subnet: &Subnet) -> bool {
    subnet.enable_dhcp
        && !(subnet.ip_version == IpVersion::V6
            && subnet.ipv6_address_mode == Some(Ipv6Mode::Slaac))
}

/// Option lines joined by `\n`.
struct Lines {
    buf: String,
}

impl Lines {
    fn with_capacity(n: usize) -> Self {
        Lines {
            buf: String::with_capacity(n),
        }
    }

    /// Starts a new line (separator first, so there is no trailing newline).
    fn start(&mut self) -> &mut String {
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        &mut self.buf
    }

    /// Neutron's `_format_option(ip_version, tag, option, *values)`: the name
    /// and each value are cut at their first `\n`; a leading `tag:x,` (up to the
    /// last comma) of the name becomes an extra tag; v6 names get `option6:`,
    /// non-numeric v4 names `option:`.
    fn option<'v>(
        &mut self,
        version: IpVersion,
        tag_prefix: &str,
        tag_id: &str,
        name: &str,
        values: impl IntoIterator<Item = &'v str>,
    ) {
        let out = self.start();
        let (extra_tag, name) = split_option_name(name);
        out.push_str("tag:");
        out.push_str(tag_prefix);
        out.push_str(tag_id);
        out.push(',');
        if let Some(extra) = extra_tag {
            out.push_str(extra);
            out.push(',');
        }
        match version {
            IpVersion::V6 => out.push_str("option6:"),
            IpVersion::V4 if !is_digits(name) => out.push_str("option:"),
            IpVersion::V4 => {}
        }
        out.push_str(name);
        for v in values {
            out.push(',');
            out.push_str(cut_at_newline(v));
        }
    }
}

/// Everything before the first `\n` (the CVE-2021-40085 fix).
pub(crate) fn cut_at_newline(s: &str) -> &str {
    s.split_once('\n').map_or(s, |(head, _)| head)
}

/// Splits an option name as Neutron's `(tag:(.*),)?(.*)$` does, after the
/// newline cut: `("tag:a,tag:b", "name")` for `tag:a,tag:b,name`.
pub(crate) fn split_option_name(name: &str) -> (Option<&str>, &str) {
    let name = cut_at_newline(name);
    if name.starts_with("tag:") {
        if let Some(comma) = name.rfind(',') {
            return (Some(&name[..comma]), &name[comma + 1..]);
        }
    }
    (None, name)
}

/// Python's `str.isdigit()` for the names that matter: ASCII digits only (a
/// name of non-ASCII digits gets `option:` here; dnsmasq knows no such name).
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Per-subnet lines. `routed`: subnets whose gateway a router port holds.
fn per_subnet(
    out: &mut Lines,
    network: &Network,
    config: &DnsmasqConfig,
    facts: &RuntimeFacts,
    routed: &HashSet<&str>,
) {
    let metadata_enabled = config.enable_isolated_metadata || config.force_metadata;
    let is_isolated = |id: &str| !routed.contains(id);
    let mut routes: Vec<String> = Vec::new();
    for subnet in all_subnets(network) {
        if !subnet.enable_dhcp
            || (subnet.ip_version == IpVersion::V6
                && subnet.ipv6_address_mode == Some(Ipv6Mode::Slaac))
        {
            continue;
        }
        let id = subnet.id.as_str();
        let v = subnet.ip_version;
        if subnet.dns_nameservers.is_empty() {
            // dnsmasq offers itself; see `PortOptions::finish`.
        } else if is_any_address(&subnet.dns_nameservers, v) {
            // One "any" address: announce no DNS server at all.
            out.option(v, "subnet-", id, "dns-server", None);
        } else {
            let list = literal_addrs(v, subnet.dns_nameservers.iter());
            out.option(v, "subnet-", id, "dns-server", Some(list.as_str()));
        }
        if v == IpVersion::V6 && !config.dns_domain.is_empty() {
            out.option(
                v,
                "subnet-",
                id,
                "domain-search",
                Some(config.dns_domain.as_str()),
            );
        }
        if v != IpVersion::V4 {
            continue;
        }

        let mut gateway: Option<&str> = subnet.gateway_ip.as_ref().map(|g| g.text());
        routes.clear();
        for hr in &subnet.host_routes {
            if hr.destination.text() == IPV4_ANY {
                if gateway.is_none() {
                    gateway = Some(hr.nexthop.text());
                }
            } else {
                routes.push(format!("{},{}", hr.destination, hr.nexthop));
            }
        }

        // Neutron first asks the server (RPC `get_ports`) for an OVN metadata
        // port (ML2/OVN with the DHCP agent) and routes metadata to its
        // address. That lookup is not made here: like the conformance vectors
        // (recorded with the lookup returning nothing), the route comes from
        // the rules below.
        let metadata_ip: Option<&str> =
            if config.force_metadata || (is_isolated(id) && config.enable_isolated_metadata) {
                // The DHCP port's own address as found on the device; none found,
                // no metadata route (no fallback to the gateway).
                if metadata_enabled {
                    facts
                        .dhcp_interface_ips
                        .get(id)
                        .map(|ip| ip.split('/').next().unwrap_or(""))
                        .filter(|ip| ip.parse::<IpAddr>().is_ok())
                } else {
                    None
                }
            } else if !is_isolated(id) {
                gateway
            } else {
                None
            };
        if let Some(ip) = metadata_ip {
            routes.push(format!("{METADATA_CIDR},{ip}"));
        }

        // On-link routes to the other IPv4 subnets of the same segment, each
        // inserted at the front (so the last such subnet comes first).
        for other in all_subnets(network) {
            if other.ip_version == IpVersion::V4
                && other.cidr.text() != subnet.cidr.text()
                && other.segment_id == subnet.segment_id
            {
                routes.insert(0, format!("{},0.0.0.0", other.cidr));
            }
        }

        if !routes.is_empty() {
            if let Some(gw) = gateway {
                routes.push(format!("{IPV4_ANY},{gw}"));
            }
            let list = routes.join(",");
            out.option(
                v,
                "subnet-",
                id,
                "classless-static-route",
                Some(list.as_str()),
            );
            out.option(v, "subnet-", id, WIN2K3_STATIC_ROUTES, Some(list.as_str()));
        }
        match gateway {
            Some(gw) => out.option(v, "subnet-", id, "router", Some(gw)),
            None => out.option(v, "subnet-", id, "router", None),
        }
    }
}

/// Addresses joined with `,`, IPv6 ones in brackets, as the server wrote them.
fn literal_addrs<'a>(v: IpVersion, ips: impl Iterator<Item = &'a IpAddress>) -> String {
    let mut s = String::new();
    for (i, ip) in ips.enumerate() {
        if i > 0 {
            s.push(',');
        }
        match v {
            IpVersion::V4 => s.push_str(ip.text()),
            IpVersion::V6 => {
                s.push('[');
                s.push_str(ip.text());
                s.push(']');
            }
        }
    }
    s
}

/// Neutron's `is_dns_servers_any_address`: exactly one server, the version's
/// unspecified address.
fn is_any_address(servers: &[IpAddress], v: IpVersion) -> bool {
    let any = match v {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    servers.len() == 1 && *servers[0].value() == any
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testutil::*;
    use super::*;

    #[test]
    fn option_name_splitting() {
        assert_eq!(
            split_option_name("tag:ipxe,bootfile-name"),
            (Some("tag:ipxe"), "bootfile-name")
        );
        assert_eq!(
            split_option_name("tag:a,tag:b,x"),
            (Some("tag:a,tag:b"), "x")
        );
        assert_eq!(split_option_name("tag:foo"), (None, "tag:foo"));
        assert_eq!(split_option_name("mal\nicious"), (None, "mal"));
        assert_eq!(split_option_name("tag:a,b\n,c"), (Some("tag:a"), "b"));
    }

    fn two_subnets(seg_a: Option<&str>, seg_b: Option<&str>) -> Network {
        let mut a = v4("sa", "198.51.100.0/24", Some("198.51.100.1"));
        a["segment_id"] = json!(seg_a);
        let mut b = v4("sb", "203.0.113.0/24", Some("203.0.113.1"));
        b["segment_id"] = json!(seg_b);
        b["dns_nameservers"] = json!(["0.0.0.0"]);
        net(json!({"id": "n1", "subnets": [a, b],
            "ports": [port("r1", "fa:16:3e:00:00:01", "network:router_interface",
                           &[("sa", "198.51.100.1"), ("sb", "203.0.113.1")])]}))
    }

    #[test]
    fn on_link_routes_only_within_a_segment() {
        let c = DnsmasqConfig::default();
        let same = render(&two_subnets(None, None), &c, &RuntimeFacts::default());
        assert_eq!(
            same.opts,
            "tag:subnet-sa,option:classless-static-route,203.0.113.0/24,0.0.0.0,169.254.169.254/32,198.51.100.1,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sa,249,203.0.113.0/24,0.0.0.0,169.254.169.254/32,198.51.100.1,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sa,option:router,198.51.100.1\n\
             tag:subnet-sb,option:dns-server\n\
             tag:subnet-sb,option:classless-static-route,198.51.100.0/24,0.0.0.0,169.254.169.254/32,203.0.113.1,0.0.0.0/0,203.0.113.1\n\
             tag:subnet-sb,249,198.51.100.0/24,0.0.0.0,169.254.169.254/32,203.0.113.1,0.0.0.0/0,203.0.113.1\n\
             tag:subnet-sb,option:router,203.0.113.1"
        );
        let split = render(
            &two_subnets(Some("seg1"), Some("seg2")),
            &c,
            &RuntimeFacts::default(),
        );
        assert_eq!(
            split.opts,
            "tag:subnet-sa,option:classless-static-route,169.254.169.254/32,198.51.100.1,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sa,249,169.254.169.254/32,198.51.100.1,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sa,option:router,198.51.100.1\n\
             tag:subnet-sb,option:dns-server\n\
             tag:subnet-sb,option:classless-static-route,169.254.169.254/32,203.0.113.1,0.0.0.0/0,203.0.113.1\n\
             tag:subnet-sb,249,169.254.169.254/32,203.0.113.1,0.0.0.0/0,203.0.113.1\n\
             tag:subnet-sb,option:router,203.0.113.1"
        );
    }

    #[test]
    fn non_local_subnets_get_options_and_ranges() {
        let mut local = v4("sl", "198.51.100.0/24", Some("198.51.100.1"));
        local["segment_id"] = json!("seg1");
        let mut remote = v4("sr", "203.0.113.0/24", Some("203.0.113.1"));
        remote["segment_id"] = json!("seg2");
        let n = net(
            json!({"id": "n1", "subnets": [local], "non_local_subnets": [remote],
            "ports": [port("p1", "fa:16:3e:00:00:01", "", &[("sl", "198.51.100.5")])]}),
        );
        let c = DnsmasqConfig {
            force_metadata: true,
            ..Default::default()
        };
        let facts = RuntimeFacts {
            dhcp_interface_ips: [("sl".to_string(), "198.51.100.2".to_string())].into(),
            ..Default::default()
        };
        let r = render(&n, &c, &facts);
        assert_eq!(
            r.opts,
            "tag:subnet-sl,option:classless-static-route,169.254.169.254/32,198.51.100.2,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sl,249,169.254.169.254/32,198.51.100.2,0.0.0.0/0,198.51.100.1\n\
             tag:subnet-sl,option:router,198.51.100.1\n\
             tag:subnet-sr,option:router,203.0.113.1"
        );
        assert!(r.cmdline.contains(
            &"--dhcp-range=set:subnet-sr,203.0.113.0,static,255.255.255.0,86400s".to_string()
        ));
        assert!(r.cmdline.contains(&"--dhcp-lease-max=512".to_string()));
    }

    #[test]
    fn multiple_dhcp_agents_announce_each_other() {
        let mut s6 = v6("s6", "2001:db8::/64", Some("dhcpv6-stateful"));
        s6["dns_nameservers"] = json!([]);
        let mut s4dns = v4("s4dns", "203.0.113.0/24", None);
        s4dns["dns_nameservers"] = json!(["203.0.113.53"]);
        let n = net(json!({"id": "n1",
        "subnets": [v4("s4", "198.51.100.0/24", None), s6, s4dns],
        "ports": [
            port("d1", "fa:16:3e:00:00:01", "network:dhcp",
                 &[("s4", "198.51.100.2"), ("s6", "2001:db8::2"), ("s4dns", "203.0.113.2")]),
            port("d2", "fa:16:3e:00:00:02", "network:dhcp",
                 &[("s4", "198.51.100.3"), ("s6", "2001:db8::3"), ("s4dns", "203.0.113.3")]),
        ]}));
        let c = DnsmasqConfig {
            enable_isolated_metadata: true,
            ..Default::default()
        };
        let r = render(&n, &c, &RuntimeFacts::default());
        let lines: Vec<&str> = r.opts.lines().collect();
        assert_eq!(
            &lines[lines.len() - 2..],
            [
                "tag:subnet-s4,option:dns-server,198.51.100.2,198.51.100.3",
                "tag:subnet-s6,option6:dns-server,[2001:db8::2],[2001:db8::3]"
            ]
        );
        // A single DHCP port announces nothing; isolated with metadata on but
        // the DHCP address unknown: no metadata route either.
        let one = net(
            json!({"id": "n1", "subnets": [v4("s4", "198.51.100.0/24", None)],
            "ports": [port("d1", "fa:16:3e:00:00:01", "network:dhcp", &[("s4", "198.51.100.2")])]}),
        );
        assert_eq!(
            render(&one, &c, &RuntimeFacts::default()).opts,
            "tag:subnet-s4,option:router"
        );
    }

    #[test]
    fn port_options_follow_ip_version_and_blank_values() {
        let mut p = port("p1", "fa:16:3e:00:00:01", "", &[("s4", "198.51.100.5")]);
        p["extra_dhcp_opts"] = json!([
            {"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6},
            {"opt_name": "router", "opt_value": "", "ip_version": 4},
            {"opt_name": "tag:ipxe6,bootfile-url", "opt_value": "http://x/y", "ip_version": 4},
        ]);
        let n = net(
            json!({"id": "n1", "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1"))],
            "ports": [p]}),
        );
        let r = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        assert_eq!(
            r.opts,
            "tag:subnet-s4,option:router,198.51.100.1\n\
             tag:port-p1,option:router,\n\
             tag:port-p1,tag:ipxe6,option:bootfile-url,http://x/y"
        );
    }

    #[test]
    fn gateway_from_default_host_route_when_no_gateway_ip() {
        let mut s = v4("s4", "198.51.100.0/24", None);
        s["host_routes"] = json!([{"destination": "0.0.0.0/0", "nexthop": "198.51.100.254"},
                                  {"destination": "10.0.0.0/8", "nexthop": "198.51.100.253"}]);
        let n = net(json!({"id": "n1", "subnets": [s], "ports": []}));
        let r = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        assert_eq!(
            r.opts,
            "tag:subnet-s4,option:classless-static-route,10.0.0.0/8,198.51.100.253,0.0.0.0/0,198.51.100.254\n\
             tag:subnet-s4,249,10.0.0.0/8,198.51.100.253,0.0.0.0/0,198.51.100.254\n\
             tag:subnet-s4,option:router,198.51.100.254"
        );
    }

    #[test]
    fn v6_dns_servers_bracketed_and_any_address() {
        let mut a = v6("a", "2001:db8:1::/64", Some("dhcpv6-stateless"));
        a["dns_nameservers"] = json!(["2001:0db8::53", "2001:db8::54"]);
        let mut b = v6("b", "2001:db8:2::/64", Some("dhcpv6-stateful"));
        b["dns_nameservers"] = json!(["::"]);
        let mut c = v6("c", "2001:db8:3::/64", Some("slaac"));
        c["dns_nameservers"] = json!(["2001:db8::55"]);
        let n = net(json!({"id": "n1", "subnets": [a, b, c], "ports": []}));
        let r = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        assert_eq!(
            r.opts,
            "tag:subnet-a,option6:dns-server,[2001:0db8::53],[2001:db8::54]\n\
             tag:subnet-a,option6:domain-search,openstacklocal\n\
             tag:subnet-b,option6:dns-server\n\
             tag:subnet-b,option6:domain-search,openstacklocal"
        );
    }
}
