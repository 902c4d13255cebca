//! neutron-server's `[DEFAULT]` options, which every neutron.conf carries.
//!
//! The list is generated from the pinned neutron by
//! `agent/tests/support/neutron_server_options.py`;
//! `agent/tests/server_options.rs` fails when it is stale.

use leasehold_core::options::normalize_option;

/// One name a line; `#` starts a comment line.
const LIST: &str = include_str!("neutron_server_options.txt");

/// The names of neutron-server's `[DEFAULT]` options that neutron-dhcp-agent does not read.
pub fn neutron_server_options() -> impl Iterator<Item = &'static str> {
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Whether `[DEFAULT] name` is one of them.
pub fn is_neutron_server_option(name: &str) -> bool {
    let name = normalize_option(name);
    neutron_server_options().any(|o| o == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_options_are_known_and_agent_options_are_not_among_them() {
        assert!(is_neutron_server_option("core_plugin"));
        assert!(is_neutron_server_option("service-plugins"));
        assert!(!is_neutron_server_option("core_plugn"));
        // Options of neutron.conf's [DEFAULT] that the DHCP agent reads too.
        for agent in [
            "host",
            "state_path",
            "dhcp_lease_duration",
            "dns_domain",
            "debug",
        ] {
            assert!(!is_neutron_server_option(agent), "{agent}");
        }
    }
}
