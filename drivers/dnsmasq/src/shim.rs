//! TEMPORARY stand-in for the renderer API until it lands; deleted then.
#![allow(missing_docs, dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use leasehold_core::model::{Network, Warning};
use leasehold_core::options::{BadValue, OptionSpec, Options};

pub const OPTIONS: &[OptionSpec] = &[OptionSpec::str(
    "DEFAULT",
    "dhcp_confs",
    Some("$state_path/dhcp"),
    "confs",
)];

#[derive(Clone, Debug)]
pub struct DnsmasqConfig {
    pub dhcp_confs: PathBuf,
}

impl DnsmasqConfig {
    pub fn from_options(o: &Options) -> Result<Self, BadValue> {
        Ok(DnsmasqConfig {
            dhcp_confs: o
                .str_or("DEFAULT", "dhcp_confs", "/var/lib/neutron/dhcp")?
                .into(),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct RuntimeFacts {
    pub interface_name: String,
    pub dhcp_interface_ips: BTreeMap<String, String>,
    pub dnsmasq_host_tag_support: Option<bool>,
    pub interface_driver_bridged: Option<bool>,
    pub existing_leases_file: Option<String>,
    pub pid_file: String,
    pub conf_dir: String,
}

#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub hosts: String,
    pub addn_hosts: String,
    pub opts: String,
    pub leases: String,
    pub cmdline: Vec<String>,
    pub warnings: Vec<Warning>,
}

pub fn render_all(n: &Network, _c: &DnsmasqConfig, f: &RuntimeFacts) -> Rendered {
    use leasehold_core::model::IpVersion;
    let dir = &f.conf_dir;
    let mut cmd: Vec<String> = vec![
        "dnsmasq".into(),
        "--no-hosts".into(),
        "--no-resolv".into(),
        format!("--pid-file={}", f.pid_file),
        format!("--dhcp-hostsfile={dir}/host"),
        format!("--addn-hosts={dir}/addn_hosts"),
        format!("--dhcp-optsfile={dir}/opts"),
        format!("--dhcp-leasefile={dir}/leases"),
        "--dhcp-match=set:ipxe,175".into(),
        "--dhcp-userclass=set:ipxe6,iPXE".into(),
        "--local-service".into(),
        "--bind-dynamic".into(),
    ];
    if f.interface_driver_bridged == Some(false) {
        cmd.push(format!("--bridge-interface={},tap*", f.interface_name));
    }
    let mut max: u64 = 0;
    let mut opts = Vec::new();
    for s in n.subnets.iter().filter(|s| s.enable_dhcp) {
        let net = s.cidr.value();
        let len = match s.ip_version {
            IpVersion::V4 => net.netmask().to_string(),
            IpVersion::V6 => net.prefix_len().to_string(),
        };
        cmd.push(format!(
            "--dhcp-range=set:subnet-{},{},static,{},86400s",
            s.id,
            net.network(),
            len
        ));
        max += 1u64 << (net.max_prefix_len() - net.prefix_len()).min(24);
        let v = if s.ip_version == IpVersion::V4 {
            "option"
        } else {
            "option6"
        };
        if !s.dns_nameservers.is_empty() {
            let list: Vec<String> = s
                .dns_nameservers
                .iter()
                .map(|d| {
                    if s.ip_version == IpVersion::V6 {
                        format!("[{d}]")
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            opts.push(format!(
                "tag:subnet-{},{v}:dns-server,{}",
                s.id,
                list.join(",")
            ));
        }
        if s.ip_version == IpVersion::V4 {
            if let Some(gw) = &s.gateway_ip {
                opts.push(format!("tag:subnet-{},option:router,{gw}", s.id));
            }
        } else {
            opts.push(format!(
                "tag:subnet-{},option6:domain-search,openstacklocal",
                s.id
            ));
        }
    }
    if let Some(mtu) = n.mtu.filter(|m| *m > 0) {
        cmd.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
    }
    cmd.push(format!("--dhcp-lease-max={}", max.min(16777216)));
    cmd.push("--conf-file=/dev/null".into());
    cmd.push("--domain=openstacklocal".into());
    let mut hosts = String::new();
    let mut addn = String::new();
    let mut leases = String::new();
    for p in n.ports.iter().filter(|p| p.requires_dhcp_configuration()) {
        for ip in &p.fixed_ips {
            let Some(s) = n.subnets.iter().find(|s| s.id == ip.subnet_id) else {
                continue;
            };
            let name = format!("host-{}", ip.ip_address.text().replace(['.', ':'], "-"));
            addn.push_str(&format!(
                "{}\t{name}.openstacklocal {name}\n",
                ip.ip_address
            ));
            if !s.enable_dhcp {
                continue;
            }
            let set = if p.extra_dhcp_opts.is_empty() {
                String::new()
            } else {
                format!(",set:port-{}", p.id)
            };
            if s.ip_version == IpVersion::V4 {
                hosts.push_str(&format!(
                    "{},{name}.openstacklocal,{}{set}\n",
                    p.mac_address, ip.ip_address
                ));
                leases.push_str(&format!("0 {} {} * *\n", p.mac_address, ip.ip_address));
            } else {
                let tag = if f.dnsmasq_host_tag_support == Some(true) {
                    "tag:dhcpv6,"
                } else {
                    ""
                };
                hosts.push_str(&format!(
                    "{},{tag}{name}.openstacklocal,[{}]{set}\n",
                    p.mac_address, ip.ip_address
                ));
            }
        }
        for o in &p.extra_dhcp_opts {
            if let Some(v) = &o.opt_value {
                opts.push(format!("tag:port-{},option:{},{v}", p.id, o.opt_name));
            }
        }
    }
    Rendered {
        hosts,
        addn_hosts: addn,
        opts: opts.join("\n"),
        leases,
        cmdline: cmd,
        warnings: Vec::new(),
    }
}
