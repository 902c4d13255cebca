//! The options this driver reads, with Neutron's names and defaults.

use leasehold_core::driver::DriverError;
use leasehold_core::options::{OptionSpec, Options, Origin};

/// Neutron's default `[OVS] ovsdb_connection`; often nothing listens there,
/// so it is used only when the configuration sets it.
pub const DEFAULT_OVSDB_CONNECTION: &str = "tcp:127.0.0.1:6640";

/// Options declared in the registry entry.
pub static OPTIONS: [OptionSpec; 4] = [
    OptionSpec::str(
        "OVS",
        "integration_bridge",
        Some("br-int"),
        "Open vSwitch bridge the DHCP ports are plugged into",
    ),
    OptionSpec::str(
        "OVS",
        "ovsdb_connection",
        Some(DEFAULT_OVSDB_CONNECTION),
        "OVSDB to talk to (unix:PATH or tcp:HOST:PORT); when not set, ovs-vsctl's default unix socket is used",
    ),
    OptionSpec::int(
        "OVS",
        "ovsdb_timeout",
        Some("10"),
        Some(1),
        None,
        "seconds to wait for an OVSDB transaction",
    ),
    OptionSpec::bool(
        "DEFAULT",
        "ovs_use_veth",
        false,
        "plug a veth pair (tap on the bridge, ns- in the namespace) instead of an internal port",
    ),
];

/// The driver's settings, resolved from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `[OVS] integration_bridge`.
    pub integration_bridge: String,
    /// `[OVS] ovsdb_connection`, only when set explicitly.
    pub ovsdb_connection: Option<String>,
    /// `[OVS] ovsdb_timeout`, seconds.
    pub ovsdb_timeout: u32,
    /// `[DEFAULT] ovs_use_veth`.
    pub ovs_use_veth: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            integration_bridge: "br-int".into(),
            ovsdb_connection: None,
            ovsdb_timeout: 10,
            ovs_use_veth: false,
        }
    }
}

impl Settings {
    /// Reads the settings; values not declared by anyone get the defaults.
    pub fn from_options(options: &Options) -> Result<Self, DriverError> {
        let d = Settings::default();
        let connection = match options.raw("OVS", "ovsdb_connection")? {
            Some((v, origin)) if origin != Origin::Default && !v.trim().is_empty() => {
                Some(v.trim().to_string())
            }
            _ => None,
        };
        let timeout = options.get_int("OVS", "ovsdb_timeout")?.unwrap_or(10);
        Ok(Settings {
            integration_bridge: options.str_or(
                "OVS",
                "integration_bridge",
                &d.integration_bridge,
            )?,
            ovsdb_connection: connection,
            ovsdb_timeout: u32::try_from(timeout.clamp(1, 3600)).unwrap_or(10),
            ovs_use_veth: options.flag("DEFAULT", "ovs_use_veth")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_connection_is_not_passed_explicit_one_is() {
        let mut o = Options::new();
        o.declare(&OPTIONS);
        let s = Settings::from_options(&o).unwrap();
        assert_eq!(s, Settings::default());
        o.set(
            "OVS",
            "ovsdb_connection",
            "tcp:127.0.0.1:6640",
            Origin::Program,
        );
        o.set("OVS", "integration_bridge", "br-x", Origin::Program);
        o.set("DEFAULT", "ovs_use_veth", "True", Origin::Program);
        let s = Settings::from_options(&o).unwrap();
        assert_eq!(s.ovsdb_connection.as_deref(), Some("tcp:127.0.0.1:6640"));
        assert_eq!(s.integration_bridge, "br-x");
        assert!(s.ovs_use_veth);
    }
}
