//! Pure renderers of everything dnsmasq reads for one network, byte-compatible
//! with Neutron's `Dnsmasq` driver: the `host`, `addn_hosts`, `opts` and
//! `leases` files and the command line.
//!
//! No I/O here: what the driver probes on the host (the DHCP device's addresses,
//! the dnsmasq host-tag probe, the old lease file) comes in as [`RuntimeFacts`].
//! [`render_all`] sanitizes the network first (see `crate::sanitize`); the
//! single-file functions take the already sanitized network.

mod cmdline;
mod hosts;
mod leases;
pub(crate) mod opts;

use std::collections::{BTreeMap, HashMap};

use leasehold_core::model::{IpVersion, Ipv6Mode, Network, Subnet, Warning};
use serde::Deserialize;

use crate::config::DnsmasqConfig;
use crate::sanitize::sanitize;

pub use cmdline::cmdline;
pub use hosts::{addn_hosts, hosts};
pub use leases::leases;
pub use opts::opts;

/// Facts about the host the renderers need; the keys of the golden vectors'
/// `runtime` object (unknown keys are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeFacts {
    /// The DHCP device's name (`tap…`), for `--bridge-interface`.
    pub interface_name: String,
    /// Subnet id → the DHCP device's address on that subnet, as found on the
    /// device in the namespace (`ip addr`); empty when none was found.
    pub dhcp_interface_ips: BTreeMap<String, String>,
    /// Result of the `dnsmasq --test --dhcp-host=tag:foo` probe; `None` = false.
    pub dnsmasq_host_tag_support: Option<bool>,
    /// The interface driver's `bridged`; `None` = true (no `--bridge-interface`).
    pub interface_driver_bridged: Option<bool>,
    /// The lease file's content before the rewrite, if there was one.
    pub existing_leases_file: Option<String>,
    /// `--pid-file` path; default `<dhcp_confs>/<network_id>/pid`.
    pub pid_file: Option<String>,
    /// The network's config dir; default `<dhcp_confs>/<network_id>`.
    pub conf_dir: Option<String>,
}

impl RuntimeFacts {
    fn host_tag_support(&self) -> bool {
        self.dnsmasq_host_tag_support.unwrap_or(false)
    }

    fn bridged(&self) -> bool {
        self.interface_driver_bridged.unwrap_or(true)
    }
}

/// Everything rendered for one network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// Content of `<conf_dir>/host` (`--dhcp-hostsfile`).
    pub hosts: String,
    /// Content of `<conf_dir>/addn_hosts` (`--addn-hosts`).
    pub addn_hosts: String,
    /// Content of `<conf_dir>/opts` (`--dhcp-optsfile`), no trailing newline.
    pub opts: String,
    /// Content of the bootstrap `<conf_dir>/leases`, written only at spawn.
    pub leases: String,
    /// dnsmasq's argv, `dnsmasq` first; empty if the config failed its checks.
    pub cmdline: Vec<String>,
    /// Elements left out or cut, each naming network, port and field.
    pub warnings: Vec<Warning>,
}

/// Sanitizes `network` and renders every file and the command line.
pub fn render_all(network: &Network, config: &DnsmasqConfig, facts: &RuntimeFacts) -> Rendered {
    let (clean, mut warnings) = sanitize(network, config);
    let cmdline = match config.validate() {
        Ok(()) => cmdline(&clean, config, facts),
        Err(e) => {
            // A config that bypassed `from_options` gets no command line at all
            // rather than one carrying an injected option.
            warnings.push(Warning {
                network_id: network.id.to_string(),
                port_id: None,
                field: e.option.clone(),
                value: e.value.clone(),
                reason: format!("{}; no dnsmasq command line rendered", e.reason),
            });
            Vec::new()
        }
    };
    Rendered {
        hosts: hosts(&clean, config, facts),
        addn_hosts: addn_hosts(&clean, config),
        opts: opts(&clean, config, facts),
        leases: leases(&clean, config, facts),
        cmdline,
        warnings,
    }
}

/// Lookups shared by the renderers, built once per call.
pub(crate) struct Index<'a> {
    /// All subnets (local, then non-local) by id; a later duplicate wins, as
    /// in Neutron's dicts.
    subnets: HashMap<&'a str, &'a Subnet>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(network: &'a Network) -> Self {
        let mut subnets =
            HashMap::with_capacity(network.subnets.len() + network.non_local_subnets.len());
        for s in all_subnets(network) {
            subnets.insert(s.id.as_str(), s);
        }
        Index { subnets }
    }

    pub(crate) fn subnet(&self, id: &str) -> Option<&'a Subnet> {
        self.subnets.get(id).copied()
    }

    /// The subnet if it is IPv6 (Neutron's `v6_nets`).
    pub(crate) fn v6(&self, id: &str) -> Option<&'a Subnet> {
        self.subnet(id).filter(|s| s.ip_version == IpVersion::V6)
    }

    /// `ipv6_address_mode` of an IPv6 subnet; `None` if not v6 or unset.
    pub(crate) fn v6_mode(&self, id: &str) -> Option<Ipv6Mode> {
        self.v6(id).and_then(|s| s.ipv6_address_mode)
    }

    /// Whether the subnet is known and has DHCP enabled.
    pub(crate) fn dhcp_enabled(&self, id: &str) -> bool {
        self.subnet(id).is_some_and(|s| s.enable_dhcp)
    }
}

/// Local subnets, then non-local ones (Neutron's `_get_all_subnets`).
pub(crate) fn all_subnets(network: &Network) -> impl Iterator<Item = &Subnet> {
    network.subnets.iter().chain(&network.non_local_subnets)
}

pub(crate) use hosts::{for_each_host_of_port, Names};

#[cfg(test)]
pub(crate) mod testutil {
    //! Small builders for the renderer unit tests.
    use super::*;
    use serde_json::{json, Value};

    /// Parses a network from JSON, failing the test on any model error.
    pub(crate) fn net(v: Value) -> Network {
        let (n, w) = Network::from_json_value(v).expect("network parses");
        assert!(w.is_empty(), "{w:?}");
        n
    }

    /// A v4 subnet dict.
    pub(crate) fn v4(id: &str, cidr: &str, gw: Option<&str>) -> Value {
        json!({"id": id, "cidr": cidr, "ip_version": 4, "gateway_ip": gw, "enable_dhcp": true,
               "dns_nameservers": [], "host_routes": []})
    }

    /// A v6 subnet dict with the given address mode.
    pub(crate) fn v6(id: &str, cidr: &str, mode: Option<&str>) -> Value {
        json!({"id": id, "cidr": cidr, "ip_version": 6, "gateway_ip": null, "enable_dhcp": true,
               "dns_nameservers": [], "host_routes": [], "ipv6_address_mode": mode, "ipv6_ra_mode": mode})
    }

    /// A port dict with fixed IPs `(subnet, ip)`.
    pub(crate) fn port(id: &str, mac: &str, owner: &str, ips: &[(&str, &str)]) -> Value {
        let fixed: Vec<Value> = ips
            .iter()
            .map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip}))
            .collect();
        json!({"id": id, "mac_address": mac, "device_owner": owner, "device_id": "dev",
               "fixed_ips": fixed, "extra_dhcp_opts": []})
    }

    /// Renders with sanitizing, asserting there were no warnings.
    pub(crate) fn render(n: &Network, c: &DnsmasqConfig, f: &RuntimeFacts) -> Rendered {
        let r = render_all(n, c, f);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        r
    }
}
