//! dnsmasq's command line, element for element as Neutron builds it.

use leasehold_core::model::{IpVersion, Ipv6Mode};

use super::{all_subnets, RuntimeFacts};
use crate::config::DnsmasqConfig;
use crate::sanitize::Sanitized;

/// The argv (`dnsmasq` first). The config must have passed
/// [`DnsmasqConfig::validate`] (`from_options` does that).
///
/// With `dnsmasq_base_log_dir` set, the log flags are always included: the
/// caller creates `<log_dir>/<network_id>` before spawning and drops the
/// three flags if that fails, as Neutron does.
pub fn cmdline(net: &Sanitized<'_>, config: &DnsmasqConfig, facts: &RuntimeFacts) -> Vec<String> {
    let network = net.network();
    let conf_dir = facts.conf_dir.clone().unwrap_or_else(|| {
        config
            .network_conf_dir(network.id.as_str())
            .to_string_lossy()
            .into_owned()
    });
    let pid_file = facts
        .pid_file
        .clone()
        .unwrap_or_else(|| format!("{conf_dir}/pid"));
    // Decision: keep Neutron's EMPTY element where `--no-resolv` is left out
    // (`dnsmasq_local_resolv = true` and no `dnsmasq_dns_servers`). The argv
    // then equals the reference's element for element (golden
    // `cmdline_local_resolv`), and dnsmasq ignores empty arguments (checked
    // with dnsmasq 2.90: `dnsmasq --test ""` passes, `dnsmasq --test x` fails).
    let no_resolv = if !config.dnsmasq_dns_servers.is_empty() || !config.dnsmasq_local_resolv {
        "--no-resolv"
    } else {
        ""
    };
    let mut cmd: Vec<String> = Vec::with_capacity(32);
    cmd.extend([
        "dnsmasq".to_string(),
        "--no-hosts".to_string(),
        no_resolv.to_string(),
        format!("--pid-file={pid_file}"),
        format!("--dhcp-hostsfile={conf_dir}/host"),
        format!("--addn-hosts={conf_dir}/addn_hosts"),
        format!("--dhcp-optsfile={conf_dir}/opts"),
        format!("--dhcp-leasefile={conf_dir}/leases"),
        "--dhcp-match=set:ipxe,175".to_string(),
        "--dhcp-userclass=set:ipxe6,iPXE".to_string(),
        "--local-service".to_string(),
        "--bind-dynamic".to_string(),
    ]);
    if !facts.bridged() {
        cmd.push(format!("--bridge-interface={},tap*", facts.interface_name));
    }

    let lease = if config.dhcp_lease_duration == -1 {
        "infinite".to_string()
    } else {
        format!("{}s", config.dhcp_lease_duration)
    };
    let mut possible_leases: u128 = 0;
    for subnet in all_subnets(network) {
        if !subnet.enable_dhcp {
            continue;
        }
        let cidr = subnet.cidr.value();
        let id = &subnet.id;
        match subnet.ip_version {
            IpVersion::V4 => {
                cmd.push(format!(
                    "--dhcp-range=set:subnet-{id},{},static,{},{lease}",
                    cidr.network(),
                    cidr.netmask()
                ));
            }
            IpVersion::V6 => {
                // A range for DHCPv6 stateful or stateless, or with no mode at
                // all; none for SLAAC (or an RA mode without address mode).
                let static_mode = matches!(
                    (subnet.ipv6_address_mode, subnet.ipv6_ra_mode),
                    (
                        Some(Ipv6Mode::Dhcpv6Stateful | Ipv6Mode::Dhcpv6Stateless),
                        _
                    ) | (None, None)
                );
                if !static_mode || cidr.prefix_len() < 64 {
                    continue;
                }
                cmd.push(format!(
                    "--dhcp-range=set:subnet-{id},{},static,{},{lease}",
                    cidr.network(),
                    cidr.prefix_len()
                ));
            }
        }
        possible_leases = possible_leases.saturating_add(range_size(cidr));
    }

    if let Some(mtu) = network.mtu.filter(|m| *m > 0) {
        cmd.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
    }
    let lease_max = possible_leases.min(u128::from(config.dnsmasq_lease_max));
    cmd.push(format!("--dhcp-lease-max={lease_max}"));
    if config.dhcp_renewal_time > 0 {
        cmd.push(format!(
            "--dhcp-option-force=option:T1,{}s",
            config.dhcp_renewal_time
        ));
    }
    if config.dhcp_rebinding_time > 0 {
        cmd.push(format!(
            "--dhcp-option-force=option:T2,{}s",
            config.dhcp_rebinding_time
        ));
    }
    if !config.dnsmasq_txt_record.is_empty() {
        cmd.push(format!("--txt-record={}", config.dnsmasq_txt_record));
    }
    let conf_file = config.dnsmasq_config_file.trim();
    cmd.push(format!(
        "--conf-file={}",
        if conf_file.is_empty() {
            "/dev/null"
        } else {
            conf_file
        }
    ));
    for server in &config.dnsmasq_dns_servers {
        cmd.push(format!("--server={server}"));
    }
    if !config.dns_domain.is_empty() {
        cmd.push(format!("--domain={}", config.dns_domain));
    }
    if config.dhcp_broadcast_reply {
        cmd.push("--dhcp-broadcast".into());
    }
    if let Some(dir) = config
        .dnsmasq_base_log_dir
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        cmd.push("--log-queries".into());
        cmd.push("--log-dhcp".into());
        cmd.push(format!(
            "--log-facility={}",
            log_file(dir, network.id.as_str())
        ));
    }
    cmd
}

/// `os.path.join(log_dir, network_id, "dhcp_dns_log")`.
pub fn log_file(log_dir: &str, network_id: &str) -> String {
    let sep = if log_dir.ends_with('/') { "" } else { "/" };
    format!("{log_dir}{sep}{network_id}/dhcp_dns_log")
}

/// Number of addresses in a CIDR (netaddr's `size`).
fn range_size(cidr: &ipnet::IpNet) -> u128 {
    let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testutil::*;
    use super::*;

    fn facts() -> RuntimeFacts {
        RuntimeFacts {
            interface_name: "tap0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn local_resolv_leaves_an_empty_element_unless_servers_are_set() {
        let n =
            net(json!({"id": "n1", "subnets": [v4("s4", "198.51.100.0/24", None)], "ports": []}));
        let mut c = DnsmasqConfig {
            dnsmasq_local_resolv: true,
            dhcp_confs: "/dhcp".into(),
            ..Default::default()
        };
        let argv = render(&n, &c, &facts()).cmdline;
        assert_eq!(argv[2], "");
        assert_eq!(argv[3], "--pid-file=/dhcp/n1/pid");
        c.dnsmasq_dns_servers = vec!["8.8.8.8".into(), "9.9.9.9".into()];
        let argv = render(&n, &c, &facts()).cmdline;
        assert_eq!(argv[2], "--no-resolv");
        let tail: Vec<&str> = argv
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            tail,
            [
                "--server=8.8.8.8",
                "--server=9.9.9.9",
                "--domain=openstacklocal"
            ]
        );
    }

    #[test]
    fn v6_ranges_prefix_and_modes() {
        let mut ra_only = v6("ra", "2001:db8:3::/64", None);
        ra_only["ipv6_ra_mode"] = json!("slaac");
        let n = net(json!({"id": "n1", "subnets": [
            v6("s56", "2001:db8:1::/56", Some("dhcpv6-stateless")),
            v6("slaac", "2001:db8:2::/64", Some("slaac")),
            ra_only,
            v6("none", "2001:db8:4::/64", None),
        ], "ports": []}));
        let argv = render(&n, &DnsmasqConfig::default(), &facts()).cmdline;
        let ranges: Vec<&String> = argv
            .iter()
            .filter(|a| a.starts_with("--dhcp-range"))
            .collect();
        assert_eq!(
            ranges,
            ["--dhcp-range=set:subnet-none,2001:db8:4::,static,64,86400s"]
        );
        assert!(argv.contains(&"--dhcp-lease-max=16777216".to_string()));
        let only56 = net(json!({"id": "n1", "subnets": [
            v6("s56", "2001:db8:1::/56", Some("dhcpv6-stateless"))], "ports": []}));
        let argv = render(&only56, &DnsmasqConfig::default(), &facts()).cmdline;
        assert!(argv.contains(&"--dhcp-lease-max=0".to_string()), "{argv:?}");
    }

    #[test]
    fn optional_flags_in_order() {
        let mut s = v4("s4", "198.51.100.7/28", None);
        s["enable_dhcp"] = json!(true);
        let mut off = v4("off", "203.0.113.0/24", None);
        off["enable_dhcp"] = json!(false);
        let n = net(json!({"id": "n1", "mtu": 0, "subnets": [s, off], "ports": []}));
        let c = DnsmasqConfig {
            dhcp_confs: "/d".into(),
            dhcp_lease_duration: 600,
            dnsmasq_txt_record: "record.example.com,txt_value".into(),
            dnsmasq_config_file: " /etc/dnsmasq.conf ".into(),
            dns_domain: String::new(),
            dhcp_broadcast_reply: true,
            dnsmasq_base_log_dir: Some("/var/log/dnsmasq/".into()),
            ..Default::default()
        };
        let f = RuntimeFacts {
            interface_name: "tap0".into(),
            interface_driver_bridged: Some(false),
            ..Default::default()
        };
        let argv = render(&n, &c, &f).cmdline;
        assert_eq!(
            &argv[12..],
            [
                "--bridge-interface=tap0,tap*",
                "--dhcp-range=set:subnet-s4,198.51.100.0,static,255.255.255.240,600s",
                "--dhcp-lease-max=16",
                "--txt-record=record.example.com,txt_value",
                "--conf-file=/etc/dnsmasq.conf",
                "--dhcp-broadcast",
                "--log-queries",
                "--log-dhcp",
                "--log-facility=/var/log/dnsmasq/n1/dhcp_dns_log",
            ]
        );
    }
}
