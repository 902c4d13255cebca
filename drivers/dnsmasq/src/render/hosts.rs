//! The host iteration shared by `host`, `addn_hosts` and `leases` (Neutron's
//! `_iter_hosts`), and the `host` and `addn_hosts` files.

use leasehold_core::model::{DnsAssignment, IpAddress, IpVersion, Ipv6Mode, Port, Subnet};

use super::{needs_host_entries, Index, RuntimeFacts};
use crate::config::DnsmasqConfig;
use crate::sanitize::{PortVerdict, Sanitized};

/// Tag dnsmasq matches DHCPv6 host lines on, when it supports tags there.
const HOST_DHCPV6_TAG: &str = "tag:dhcpv6,";

/// The address(es) of one host entry.
#[derive(Debug)]
pub(crate) enum AllocIp<'a> {
    /// One fixed IP, as the server wrote it.
    Single(&'a IpAddress),
    /// All of a port's fixed IPs on one DHCPv6-stateful subnet
    /// (`dnsmasq_enable_addr6_list`), written `[a],[b]`.
    Merged(Vec<&'a IpAddress>),
}

impl<'a> AllocIp<'a> {
    /// The address names are looked up and generated from. For a merged list
    /// Neutron's lookup can only ever match the first address.
    pub(crate) fn first_text(&self) -> &'a str {
        match self {
            AllocIp::Single(ip) => ip.text(),
            AllocIp::Merged(ips) => ips.first().map(|ip| ip.text()).unwrap_or(""),
        }
    }

    /// Writes the address for the dhcp-host line: IPv6 in brackets.
    fn write_for_dnsmasq(&self, out: &mut String) {
        match self {
            AllocIp::Single(ip) if ip.value().is_ipv6() => {
                out.push('[');
                out.push_str(ip.text());
                out.push(']');
            }
            AllocIp::Single(ip) => out.push_str(ip.text()),
            AllocIp::Merged(ips) => {
                for (i, ip) in ips.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    out.push_str(ip.text());
                    out.push(']');
                }
            }
        }
    }
}

/// Host name and fqdn of an entry: the server's `dns_assignment`, or generated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Names<'a> {
    /// Taken verbatim from the port's `dns_assignment`.
    Assigned(&'a DnsAssignment),
    /// `host-<ip with . and : as ->` [`.<dns_domain>`].
    Generated {
        /// The address the name is made from.
        ip: &'a str,
        /// `dns_domain`; empty for none.
        domain: &'a str,
    },
}

impl Names<'_> {
    /// Writes the short host name.
    pub(crate) fn write_hostname(&self, out: &mut String) {
        match self {
            Names::Assigned(d) => out.push_str(&d.hostname),
            Names::Generated { ip, .. } => {
                out.push_str("host-");
                out.extend(
                    ip.chars()
                        .map(|c| if c == '.' || c == ':' { '-' } else { c }),
                );
            }
        }
    }

    /// Writes the fully qualified name.
    pub(crate) fn write_fqdn(&self, out: &mut String) {
        match self {
            Names::Assigned(d) => out.push_str(&d.fqdn),
            Names::Generated { domain, .. } => {
                self.write_hostname(out);
                if !domain.is_empty() {
                    out.push('.');
                    out.push_str(domain);
                }
            }
        }
    }
}

/// One of Neutron's host tuples.
#[derive(Debug)]
pub(crate) struct HostEntry<'a> {
    /// The port.
    pub(crate) port: &'a Port,
    /// The subnet of the allocation, if the network has it.
    pub(crate) subnet: Option<&'a Subnet>,
    /// The address(es).
    pub(crate) ip: AllocIp<'a>,
    /// Names for the address.
    pub(crate) names: Names<'a>,
    /// Address not handed out by DHCP (SLAAC or DHCPv6-stateless subnet).
    pub(crate) no_dhcp: bool,
    /// No options either (SLAAC).
    pub(crate) no_opts: bool,
    /// `tag:dhcpv6,` or empty.
    pub(crate) tag: &'static str,
}

/// Ports rarely have more fixed IPs than this; more take a heap buffer.
const INLINE_FIXED_IPS: usize = 4;

/// Calls `f` for each host tuple of one port, in Neutron's order: fixed IPs on
/// DHCPv6-stateless subnets first, then the others (stable); with `merge` and
/// `dnsmasq_enable_addr6_list`, a port's IPs on one DHCPv6-stateful subnet
/// become one entry, placed after the port's other entries.
pub(crate) fn for_each_host_of_port<'a>(
    idx: &Index<'a>,
    config: &'a DnsmasqConfig,
    port: &'a Port,
    merge: bool,
    tag_support: bool,
    mut f: impl FnMut(HostEntry<'a>),
) {
    // Look each fixed IP's subnet up once.
    let mut inline: [Option<&'a Subnet>; INLINE_FIXED_IPS] = [None; INLINE_FIXED_IPS];
    let heap: Vec<Option<&'a Subnet>>;
    let subnets: &[Option<&'a Subnet>] = if port.fixed_ips.len() <= INLINE_FIXED_IPS {
        for (slot, fip) in inline.iter_mut().zip(&port.fixed_ips) {
            *slot = idx.subnet(fip.subnet_id.as_str());
        }
        &inline[..port.fixed_ips.len()]
    } else {
        heap = port
            .fixed_ips
            .iter()
            .map(|fip| idx.subnet(fip.subnet_id.as_str()))
            .collect();
        &heap
    };
    let v6_mode = |s: Option<&Subnet>| {
        s.filter(|s| s.ip_version == IpVersion::V6)
            .and_then(|s| s.ipv6_address_mode)
    };
    let is_stateless = |i: &usize| v6_mode(subnets[*i]) == Some(Ipv6Mode::Dhcpv6Stateless);
    let n = port.fixed_ips.len();
    let sorted = (0..n)
        .filter(is_stateless)
        .chain((0..n).filter(|i| !is_stateless(i)));
    let merging = merge && config.dnsmasq_enable_addr6_list;
    let mut groups: Vec<(&'a str, Option<&'a Subnet>, Vec<&'a IpAddress>)> = Vec::new();
    let mut emit = |subnet: Option<&'a Subnet>, ip: AllocIp<'a>| {
        let (mut no_dhcp, mut no_opts, mut tag) = (false, false, "");
        if let Some(subnet) = subnet.filter(|s| s.ip_version == IpVersion::V6) {
            let mode = subnet.ipv6_address_mode;
            no_dhcp = matches!(mode, Some(Ipv6Mode::Slaac | Ipv6Mode::Dhcpv6Stateless));
            no_opts = mode == Some(Ipv6Mode::Slaac);
            if tag_support {
                tag = HOST_DHCPV6_TAG;
            }
        }
        let names = names_for(port, ip.first_text(), &config.dns_domain);
        f(HostEntry {
            port,
            subnet,
            ip,
            names,
            no_dhcp,
            no_opts,
            tag,
        });
    };
    for i in sorted {
        let fip = &port.fixed_ips[i];
        let subnet = subnets[i];
        if merging && v6_mode(subnet) == Some(Ipv6Mode::Dhcpv6Stateful) {
            let subnet_id = fip.subnet_id.as_str();
            match groups.iter_mut().find(|(s, _, _)| *s == subnet_id) {
                Some((_, _, ips)) => ips.push(&fip.ip_address),
                None => groups.push((subnet_id, subnet, vec![&fip.ip_address])),
            }
        } else {
            emit(subnet, AllocIp::Single(&fip.ip_address));
        }
    }
    for (_, subnet, ips) in groups {
        emit(subnet, AllocIp::Merged(ips));
    }
}

/// The names for `ip`: the port's `dns_assignment` entry with that exact text
/// (the last one if several, as Neutron builds a dict), else generated.
pub(crate) fn names_for<'a>(port: &'a Port, ip: &'a str, domain: &'a str) -> Names<'a> {
    match port
        .dns_assignment
        .iter()
        .rev()
        .find(|d| d.ip_address.text() == ip)
    {
        Some(d) => Names::Assigned(d),
        None => Names::Generated { ip, domain },
    }
}

/// The `host` file (`--dhcp-hostsfile`): one line per DHCP allocation.
pub fn hosts(net: &Sanitized<'_>, config: &DnsmasqConfig, facts: &RuntimeFacts) -> String {
    let network = net.network();
    let idx = Index::new(network);
    let mut out = String::with_capacity(network.ports.len() * 160);
    for (i, port) in network.ports.iter().enumerate() {
        write_port_hosts(
            &mut out,
            &idx,
            config,
            port,
            net.verdict(i),
            facts.host_tag_support(),
        );
    }
    out
}

/// Appends the dhcp-host lines of one port.
pub(crate) fn write_port_hosts(
    out: &mut String,
    idx: &Index<'_>,
    config: &DnsmasqConfig,
    port: &Port,
    verdict: &PortVerdict,
    tag_support: bool,
) {
    if !needs_host_entries(port) || verdict.hidden {
        return;
    }
    for_each_host_of_port(idx, config, port, true, tag_support, |e| {
        write_host_line(out, &e, verdict);
    });
}

/// Appends the dhcp-host line of one entry (nothing for some entries).
pub(crate) fn write_host_line(out: &mut String, e: &HostEntry<'_>, verdict: &PortVerdict) {
    let port = e.port;
    let opts = verdict.remaining_opts(port);
    let has_opts = opts > 0;
    if e.no_dhcp {
        if !e.no_opts && has_opts {
            out.push_str(port.mac_address.text());
            out.push(',');
            out.push_str(e.tag);
            out.push_str("set:port-");
            out.push_str(port.id.as_str());
            out.push('\n');
        }
        return;
    }
    if !e.subnet.is_some_and(|s| s.enable_dhcp) {
        return;
    }
    out.push_str(port.mac_address.text());
    out.push(',');
    out.push_str(e.tag);
    let client_id = if has_opts {
        port.client_id().filter(|c| !c.is_empty())
    } else {
        None
    };
    if let Some(id) = client_id {
        out.push_str("id:");
        out.push_str(id);
        out.push(',');
    }
    e.names.write_fqdn(out);
    out.push(',');
    e.ip.write_for_dnsmasq(out);
    // The port tag is left off only when the client-id is the port's one option.
    if has_opts && !(client_id.is_some() && opts == 1) {
        out.push_str(",set:port-");
        out.push_str(port.id.as_str());
    }
    out.push('\n');
}

/// The `addn_hosts` file (`/etc/hosts` format): every allocation, fqdn first.
pub fn addn_hosts(net: &Sanitized<'_>, config: &DnsmasqConfig) -> String {
    let network = net.network();
    let idx = Index::new(network);
    let mut out = String::with_capacity(network.ports.len() * 120);
    for (i, port) in network.ports.iter().enumerate() {
        if needs_host_entries(port) && !net.verdict(i).hidden {
            for_each_host_of_port(&idx, config, port, false, false, |e| {
                write_addn_hosts_line(&mut out, &e);
            });
        }
    }
    out
}

/// Appends the `<ip>\t<fqdn> <hostname>` line of one entry.
pub(crate) fn write_addn_hosts_line(out: &mut String, e: &HostEntry<'_>) {
    out.push_str(e.ip.first_text());
    out.push('\t');
    e.names.write_fqdn(out);
    out.push(' ');
    e.names.write_hostname(out);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testutil::*;
    use crate::config::DnsmasqConfig;
    use crate::render::RuntimeFacts;

    const MAC: &str = "fa:16:3e:00:00:01";

    #[test]
    fn addr6_list_merges_stateful_ips_after_the_others() {
        let mut p = port(
            "p1",
            MAC,
            "compute:nova",
            &[
                ("s6", "2001:db8::5"),
                ("s4", "198.51.100.5"),
                ("s6", "2001:db8::6"),
            ],
        );
        p["dns_assignment"] = json!([
            {"hostname": "vm2", "ip_address": "2001:db8::6", "fqdn": "vm2.example.org."}
        ]);
        let n = net(json!({"id": "n1",
            "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1")),
                        v6("s6", "2001:db8::/64", Some("dhcpv6-stateful"))],
            "ports": [p]}));
        let facts = RuntimeFacts {
            dnsmasq_host_tag_support: Some(true),
            ..Default::default()
        };
        let mut c = DnsmasqConfig::default();
        let plain = render(&n, &c, &facts);
        assert_eq!(
            plain.hosts,
            "fa:16:3e:00:00:01,tag:dhcpv6,host-2001-db8--5.openstacklocal,[2001:db8::5]\n\
             fa:16:3e:00:00:01,host-198-51-100-5.openstacklocal,198.51.100.5\n\
             fa:16:3e:00:00:01,tag:dhcpv6,vm2.example.org.,[2001:db8::6]\n"
        );
        c.dnsmasq_enable_addr6_list = true;
        let merged = render(&n, &c, &facts);
        // Only the first address of a merged list can match dns_assignment.
        assert_eq!(
            merged.hosts,
            "fa:16:3e:00:00:01,host-198-51-100-5.openstacklocal,198.51.100.5\n\
             fa:16:3e:00:00:01,tag:dhcpv6,host-2001-db8--5.openstacklocal,[2001:db8::5],[2001:db8::6]\n"
        );
        // addn_hosts and leases are never merged.
        assert_eq!(merged.addn_hosts, plain.addn_hosts);
        assert_eq!(merged.addn_hosts.lines().count(), 3);
    }

    #[test]
    fn slaac_and_stateless_and_disabled_subnets() {
        let mut disabled = v4("s4off", "203.0.113.0/24", None);
        disabled["enable_dhcp"] = json!(false);
        let mut p = port(
            "p1",
            MAC,
            "",
            &[
                ("s4off", "203.0.113.9"),
                ("slaac", "2001:db8:1::9"),
                ("sl", "2001:db8:2::9"),
            ],
        );
        p["extra_dhcp_opts"] =
            json!([{"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6}]);
        let n = net(json!({"id": "n1",
            "subnets": [disabled, v6("slaac", "2001:db8:1::/64", Some("slaac")),
                        v6("sl", "2001:db8:2::/64", Some("dhcpv6-stateless"))],
            "ports": [p]}));
        let r = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        // Stateless first (options only), SLAAC and DHCP-disabled: no line.
        assert_eq!(r.hosts, "fa:16:3e:00:00:01,set:port-p1\n");
        // addn_hosts lists everything, stateless first.
        assert_eq!(
            r.addn_hosts,
            "2001:db8:2::9\thost-2001-db8-2--9.openstacklocal host-2001-db8-2--9\n\
             203.0.113.9\thost-203-0-113-9.openstacklocal host-203-0-113-9\n\
             2001:db8:1::9\thost-2001-db8-1--9.openstacklocal host-2001-db8-1--9\n"
        );
    }

    #[test]
    fn no_dns_domain_gives_bare_generated_names_and_skipped_owners() {
        let n = net(json!({"id": "n1",
            "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1"))],
            "ports": [port("p1", MAC, "compute:nova", &[("s4", "198.51.100.5")]),
                      port("d1", "fa:16:3e:00:00:02", "network:dhcp", &[("s4", "198.51.100.2")]),
                      port("f1", "fa:16:3e:00:00:03", "network:floatingip", &[("s4", "198.51.100.3")])]}));
        let c = DnsmasqConfig {
            dns_domain: String::new(),
            ..Default::default()
        };
        let r = render(&n, &c, &RuntimeFacts::default());
        assert_eq!(
            r.hosts,
            "fa:16:3e:00:00:01,host-198-51-100-5,198.51.100.5\n"
        );
        assert_eq!(
            r.addn_hosts,
            "198.51.100.5\thost-198-51-100-5 host-198-51-100-5\n"
        );
    }

    #[test]
    fn client_id_numeric_name_and_empty_value() {
        let mut p1 = port("p1", MAC, "", &[("s4", "198.51.100.5")]);
        p1["extra_dhcp_opts"] = json!([{"opt_name": 61, "opt_value": "cid", "ip_version": 4}]);
        let mut p2 = port("p2", "fa:16:3e:00:00:02", "", &[("s4", "198.51.100.6")]);
        p2["extra_dhcp_opts"] =
            json!([{"opt_name": "client-id", "opt_value": "", "ip_version": 4}]);
        let n = net(json!({"id": "n1",
            "subnets": [v4("s4", "198.51.100.0/24", None)], "ports": [p1, p2]}));
        let r = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        assert_eq!(
            r.hosts,
            "fa:16:3e:00:00:01,id:cid,host-198-51-100-5.openstacklocal,198.51.100.5\n\
             fa:16:3e:00:00:02,host-198-51-100-6.openstacklocal,198.51.100.6,set:port-p2\n"
        );
    }
}
