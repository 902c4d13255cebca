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
    let mut hosts = String::new();
    for p in &n.ports {
        for ip in &p.fixed_ips {
            hosts.push_str(&format!("{},{}\n", p.mac_address, ip.ip_address));
        }
    }
    Rendered {
        hosts,
        cmdline: vec![
            "dnsmasq".into(),
            "--no-hosts".into(),
            format!("--pid-file={}", f.pid_file),
        ],
        ..Default::default()
    }
}
