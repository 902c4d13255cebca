//! The bootstrap `leases` file written before dnsmasq starts, so that it does
//! not NAK renewals of leases it handed out before a restart or reschedule.

use std::collections::HashMap;
use std::net::IpAddr;

use leasehold_core::model::IpVersion;

use super::hosts::{for_each_host_of_port, AllocIp, HostEntry};
use super::{needs_host_entries, Index, RuntimeFacts};
use crate::config::DnsmasqConfig;
use crate::sanitize::Sanitized;

/// The lease file: the old file's `duid` lines, then `0 <mac> <ip> * *` for
/// each DHCPv4 allocation and, for each DHCPv6 allocation, its line from the
/// old file if it had one (the IAID is only known to dnsmasq).
pub fn leases(net: &Sanitized<'_>, config: &DnsmasqConfig, facts: &RuntimeFacts) -> String {
    let network = net.network();
    let idx = Index::new(network);
    let old = OldLeases::parse(facts.existing_leases_file.as_deref());
    let mut out = String::with_capacity(network.ports.len() * 48);
    old.write_duids(&mut out);
    for (i, port) in network.ports.iter().enumerate() {
        if needs_host_entries(port) && !net.verdict(i).hidden {
            for_each_host_of_port(&idx, config, port, false, false, |e| {
                write_lease_line(&mut out, &old, &e);
            });
        }
    }
    out
}

/// The lease file dnsmasq left behind, as far as the bootstrap needs it.
#[derive(Debug, Default)]
pub(crate) struct OldLeases<'a> {
    duids: Vec<&'a str>,
    v6: HashMap<IpAddr, &'a str>,
}

impl<'a> OldLeases<'a> {
    /// Reads `duid` lines and IPv6 lease lines (exactly five space-separated
    /// fields; a later line for the same address wins).
    pub(crate) fn parse(existing: Option<&'a str>) -> Self {
        let mut old = OldLeases::default();
        for line in existing.unwrap_or("").split_inclusive('\n') {
            if line.starts_with("duid ") {
                old.duids.push(line);
                continue;
            }
            let mut fields = line.split(' ');
            let ip = fields.nth(2);
            if fields.count() != 2 {
                continue;
            }
            if let Some(Ok(IpAddr::V6(ip))) = ip.map(str::parse::<IpAddr>) {
                old.v6.insert(IpAddr::V6(ip), line);
            }
        }
        old
    }

    /// Writes the `duid` lines, which come first.
    pub(crate) fn write_duids(&self, out: &mut String) {
        for line in &self.duids {
            push_line(out, line);
        }
    }
}

/// Appends the lease line of one host entry, if it gets one.
pub(crate) fn write_lease_line(out: &mut String, old: &OldLeases<'_>, e: &HostEntry<'_>) {
    if e.no_dhcp {
        return;
    }
    let AllocIp::Single(ip) = &e.ip else {
        return;
    };
    let Some(subnet) = e.subnet.filter(|s| s.enable_dhcp) else {
        return;
    };
    match subnet.ip_version {
        IpVersion::V4 => {
            out.push_str("0 ");
            out.push_str(e.port.mac_address.text());
            out.push(' ');
            out.push_str(ip.text());
            out.push_str(" * *\n");
        }
        IpVersion::V6 => {
            if let Some(line) = old.v6.get(ip.value()) {
                push_line(out, line);
            }
        }
    }
}

/// Copies a line of the old file. Neutron copies it as read, so a last line
/// without a newline would run into the next one; we end it with one.
fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testutil::*;
    use crate::config::DnsmasqConfig;
    use crate::render::RuntimeFacts;

    #[test]
    fn existing_file_keeps_duid_and_v6_leases_of_current_ports() {
        let n = net(json!({"id": "n1",
        "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1")),
                    v6("s6", "2001:db8::/64", Some("dhcpv6-stateful"))],
        "ports": [
            port("p1", "fa:16:3e:00:00:01", "", &[("s4", "198.51.100.2")]),
            port("p2", "fa:16:3e:00:00:02", "", &[("s6", "2001:db8::2")]),
            port("p3", "fa:16:3e:00:00:03", "", &[("s4", "198.51.100.3"), ("s6", "2001:db8::3")]),
        ]}));
        let existing = "1623162161 fa:16:3e:00:00:01 198.51.100.2 host-1 *\n\
                        duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n\
                        1623083263 755752236 2001:db8:0::2 host-2 00:01:00:01:28:50\n\
                        bad line\n\
                        1623143299 3042863103 2001:db8::45 host-45 00:02:00:00:ab:11";
        let facts = RuntimeFacts {
            existing_leases_file: Some(existing.into()),
            ..Default::default()
        };
        let r = render(&n, &DnsmasqConfig::default(), &facts);
        assert_eq!(
            r.leases,
            "duid 00:01:00:01:27:da:58:97:fa:16:3e:6c:ad:c1\n\
             0 fa:16:3e:00:00:01 198.51.100.2 * *\n\
             1623083263 755752236 2001:db8:0::2 host-2 00:01:00:01:28:50\n\
             0 fa:16:3e:00:00:03 198.51.100.3 * *\n"
        );
        let fresh = render(&n, &DnsmasqConfig::default(), &RuntimeFacts::default());
        assert_eq!(
            fresh.leases,
            "0 fa:16:3e:00:00:01 198.51.100.2 * *\n0 fa:16:3e:00:00:03 198.51.100.3 * *\n"
        );
    }

    #[test]
    fn lease_timestamp_is_zero_even_for_infinite_leases() {
        let n = net(json!({"id": "n1",
            "subnets": [v4("s4", "198.51.100.0/24", None)],
            "ports": [port("p1", "FA:16:3E:00:00:01", "", &[("s4", "198.51.100.2")])]}));
        let c = DnsmasqConfig {
            dhcp_lease_duration: -1,
            ..Default::default()
        };
        let r = render(&n, &c, &RuntimeFacts::default());
        assert_eq!(r.leases, "0 FA:16:3E:00:00:01 198.51.100.2 * *\n");
        assert!(r
            .cmdline
            .iter()
            .any(|a| a.ends_with(",255.255.255.0,infinite")));
    }
}
