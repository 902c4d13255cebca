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

use leasehold_core::model::{Network, Port, Subnet, Warning};
use serde::Deserialize;

use crate::config::DnsmasqConfig;
use crate::sanitize::{Checker, Sanitized};

pub use cmdline::{cmdline, log_file};
pub use hosts::{addn_hosts, hosts};
pub use leases::leases;
pub use opts::opts;

/// Facts about the host the renderers need; the keys of the golden vectors'
/// `runtime` object (unknown keys are ignored).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeFacts {
    /// The DHCP device's name (`tap…`), for `--bridge-interface`.
    #[serde(deserialize_with = "null_is_default")]
    pub interface_name: String,
    /// Subnet id → the DHCP device's address on that subnet, as found on the
    /// device in the namespace (`ip addr`); empty when none was found. Only
    /// values that parse as an address (optionally `/prefix`) are used.
    #[serde(deserialize_with = "null_is_default")]
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

fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
///
/// The same per-port checks and writers as [`crate::sanitize::sanitize`] and
/// the single-file functions, fused into one pass over the ports: each port
/// is checked, then written to every file while its data is in cache (a
/// 10,000-port network does not fit in L2, and five passes cost five times).
pub fn render_all(network: &Network, config: &DnsmasqConfig, facts: &RuntimeFacts) -> Rendered {
    let mut warnings = Vec::new();
    let idx = Index::new(network);
    let checker = Checker::new(network, config);
    let old_leases = leases::OldLeases::parse(facts.existing_leases_file.as_deref());
    let tag_support = facts.host_tag_support();
    let merging = config.dnsmasq_enable_addr6_list;
    let ports = network.ports.len();
    let mut hosts_out = String::with_capacity(ports * 160);
    let mut addn_out = String::with_capacity(ports * 120);
    let mut leases_out = String::with_capacity(ports * 48);
    old_leases.write_duids(&mut leases_out);
    let mut port_opts = opts::PortOptions::new(network);
    let mut verdicts = Vec::new();

    for (i, port) in network.ports.iter().enumerate() {
        let mut verdict = checker.check_options(port, &mut warnings);
        if needs_host_entries(port) && !verdict.hidden {
            // Names are checked while writing; a bad one takes the port's
            // lines back out. host uses the same entries unless addr6 lists
            // are merged.
            let marks = (hosts_out.len(), addn_out.len(), leases_out.len());
            let mut bad = None;
            for_each_host_of_port(&idx, config, port, false, tag_support, |e| {
                if bad.is_some() {
                    return;
                }
                bad = checker.name_problem(port, &e);
                hosts::write_addn_hosts_line(&mut addn_out, &e);
                leases::write_lease_line(&mut leases_out, &old_leases, &e);
                if !merging {
                    hosts::write_host_line(&mut hosts_out, &e, &verdict);
                }
            });
            if let Some(problem) = bad {
                hosts_out.truncate(marks.0);
                addn_out.truncate(marks.1);
                leases_out.truncate(marks.2);
                checker.hide_for_name(port, problem, &mut verdict, &mut warnings);
            } else if merging {
                hosts::write_port_hosts(&mut hosts_out, &idx, config, port, &verdict, tag_support);
            }
        }
        port_opts.add_port(&idx, port, &verdict);
        if !verdict.is_clean() {
            verdicts.push((i, verdict));
        }
    }

    let cmdline = match config.validate() {
        Ok(()) => cmdline(&Sanitized::from_parts(network, verdicts), config, facts),
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
        hosts: hosts_out,
        addn_hosts: addn_out,
        opts: port_opts.finish(network, config, facts),
        leases: leases_out,
        cmdline,
        warnings,
    }
}

/// Neutron's `should_enable_metadata`: whether the agent runs the metadata
/// proxy in this network's namespace.
pub fn should_enable_metadata(network: &Network, config: &DnsmasqConfig) -> bool {
    let ovn = network.ports.iter().any(|p| {
        p.device_owner == opts::DEVICE_OWNER_DISTRIBUTED
            && p.device_id.starts_with(opts::OVN_METADATA_PREFIX)
    });
    if ovn {
        return false;
    }
    let mut dhcp_subnets = all_subnets(network).filter(|s| s.enable_dhcp).peekable();
    if dhcp_subnets.peek().is_none() {
        return false;
    }
    if config.force_metadata {
        return true;
    }
    if !config.enable_isolated_metadata {
        return false;
    }
    if config.enable_metadata_network && has_metadata_subnet(network) {
        return true;
    }
    let routed = routed_subnets(network);
    dhcp_subnets.any(|s| !routed.contains(s.id.as_str()))
}

/// Whether a subnet lies inside 169.254.0.0/16 (a "metadata network").
fn has_metadata_subnet(network: &Network) -> bool {
    let meta = ipnet::IpNet::V4(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(169, 254, 0, 0), 16).unwrap_or_default(),
    );
    all_subnets(network).any(|s| meta.contains(&s.cidr.value().trunc()))
}

/// Subnets that are not isolated: a router interface port holds the
/// subnet's gateway address (compared as text, as Neutron does).
pub fn routed_subnets(network: &Network) -> std::collections::HashSet<&str> {
    let idx = Index::new(network);
    let mut routed = std::collections::HashSet::new();
    for port in network.ports.iter().filter(|p| p.is_router_interface()) {
        for fip in &port.fixed_ips {
            let sid = fip.subnet_id.as_str();
            if let Some(gw) = idx.subnet(sid).and_then(|s| s.gateway_ip.as_ref()) {
                if gw.text() == fip.ip_address.text() {
                    routed.insert(sid);
                }
            }
        }
    }
    routed
}

/// Lookups shared by the renderers, built once per call.
pub(crate) struct Index<'a> {
    /// All subnets (local, then non-local) by id. A later duplicate wins, as
    /// in Neutron's dicts, so lookups scan from the back.
    list: Vec<(&'a str, &'a Subnet)>,
    /// The same as a map, when there are enough subnets for it to pay.
    map: Option<HashMap<&'a str, &'a Subnet>>,
}

/// Up to this many subnets a linear scan beats hashing.
const LINEAR_LOOKUP_MAX: usize = 8;

impl<'a> Index<'a> {
    pub(crate) fn new(network: &'a Network) -> Self {
        let list: Vec<(&str, &Subnet)> = all_subnets(network).map(|s| (s.id.as_str(), s)).collect();
        let map = (list.len() > LINEAR_LOOKUP_MAX).then(|| list.iter().copied().collect());
        Index { list, map }
    }

    pub(crate) fn subnet(&self, id: &str) -> Option<&'a Subnet> {
        match &self.map {
            Some(map) => map.get(id).copied(),
            None => self
                .list
                .iter()
                .rev()
                .find(|(k, _)| *k == id)
                .map(|(_, s)| *s),
        }
    }
}

/// Whether a port gets host, addn_hosts and leases entries (Neutron's
/// `port_requires_dhcp_configuration`); the prefix test skips the string
/// compares for the common `compute:*` ports.
pub(crate) fn needs_host_entries(port: &Port) -> bool {
    !port.device_owner.starts_with("network:") || port.requires_dhcp_configuration()
}

/// Local subnets, then non-local ones (Neutron's `_get_all_subnets`).
pub(crate) fn all_subnets(network: &Network) -> impl Iterator<Item = &Subnet> {
    network.subnets.iter().chain(&network.non_local_subnets)
}

pub(crate) use hosts::{for_each_host_of_port, HostEntry, Names};

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

    /// Renders with sanitizing, asserting there were no warnings and that
    /// the single-file functions agree with the fused `render_all`.
    pub(crate) fn render(n: &Network, c: &DnsmasqConfig, f: &RuntimeFacts) -> Rendered {
        let r = render_all(n, c, f);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let (s, w) = crate::sanitize::sanitize(n, c);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(hosts(&s, c, f), r.hosts, "hosts");
        assert_eq!(addn_hosts(&s, c), r.addn_hosts, "addn_hosts");
        assert_eq!(opts(&s, c, f), r.opts, "opts");
        assert_eq!(leases(&s, c, f), r.leases, "leases");
        assert_eq!(cmdline(&s, c, f), r.cmdline, "cmdline");
        r
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testutil::*;
    use super::*;

    #[test]
    fn metadata_proxy_decision() {
        let isolated = net(
            json!({"id": "n1", "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1"))],
            "ports": []}),
        );
        let routed = net(
            json!({"id": "n1", "subnets": [v4("s4", "198.51.100.0/24", Some("198.51.100.1"))],
            "ports": [port("r", "fa:16:3e:00:00:01", "network:router_interface_distributed",
                           &[("s4", "198.51.100.1")])]}),
        );
        let mut meta_subnet = v4("m", "169.254.169.0/24", Some("169.254.169.1"));
        meta_subnet["enable_dhcp"] = json!(true);
        let metadata_net = net(json!({"id": "n1", "subnets": [meta_subnet],
            "ports": [port("r", "fa:16:3e:00:00:01", "network:router_interface",
                           &[("m", "169.254.169.1")])]}));
        let mut ovn = routed.clone();
        ovn.ports.push(
            net(
                json!({"id": "x", "ports": [{"id": "o", "mac_address": "fa:16:3e:00:00:09",
                "device_owner": "network:distributed", "device_id": "ovnmeta-n1"}]}),
            )
            .ports
            .remove(0),
        );
        let off = DnsmasqConfig::default();
        let iso = DnsmasqConfig {
            enable_isolated_metadata: true,
            ..Default::default()
        };
        let force = DnsmasqConfig {
            force_metadata: true,
            ..Default::default()
        };
        let meta = DnsmasqConfig {
            enable_isolated_metadata: true,
            enable_metadata_network: true,
            ..Default::default()
        };
        assert!(!should_enable_metadata(&isolated, &off));
        assert!(should_enable_metadata(&isolated, &iso));
        assert!(!should_enable_metadata(&routed, &iso));
        assert!(should_enable_metadata(&routed, &force));
        assert!(!should_enable_metadata(&ovn, &force));
        assert!(!should_enable_metadata(&metadata_net, &iso));
        assert!(should_enable_metadata(&metadata_net, &meta));
        let mut no_dhcp = isolated.clone();
        no_dhcp.subnets[0].enable_dhcp = false;
        assert!(!should_enable_metadata(&no_dhcp, &force));
    }

    #[test]
    fn facts_tolerate_nulls_and_unknown_keys() {
        let f: RuntimeFacts = serde_json::from_value(json!({
            "interface_name": null, "dhcp_interface_ips": null, "dnsmasq_host_tag_support": null,
            "something_new": 1}))
        .unwrap();
        assert_eq!(f.interface_name, "");
        assert!(f.dhcp_interface_ips.is_empty());
        assert!(f.bridged());
    }
}
