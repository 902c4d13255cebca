//! The agent options the dnsmasq renderers read, with Neutron's names, sections
//! and defaults, and the checks that keep config values from adding options to
//! the dnsmasq command line.

use std::path::{Component, Path, PathBuf};

use leasehold_core::options::{BadValue, OptionSpec, Options, Origin};

const D: &str = "DEFAULT";

/// Every option the renderers read, as Neutron declares it (all in `[DEFAULT]`).
/// `dhcp_confs` defaults to `$state_path/dhcp`; the agent declares `state_path`.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::str(
        D,
        "dhcp_confs",
        Some("$state_path/dhcp"),
        "Location to store DHCP server config files.",
    ),
    OptionSpec::str(
        D,
        "dns_domain",
        Some("openstacklocal"),
        "Domain to use for building the hostnames.",
    ),
    OptionSpec::int(
        D,
        "dhcp_lease_duration",
        Some("86400"),
        Some(-1),
        None,
        "DHCP lease duration (in seconds); -1 tells dnsmasq to use infinite lease times.",
    ),
    OptionSpec::list(
        D,
        "dnsmasq_dns_servers",
        "",
        "Comma-separated list of the DNS servers which will be used as forwarders.",
    ),
    OptionSpec::bool(
        D,
        "dnsmasq_local_resolv",
        false,
        "Let dnsmasq resolve through the host's resolvers (drops --no-resolv).",
    ),
    OptionSpec::str(
        D,
        "dnsmasq_config_file",
        Some(""),
        "Override the default dnsmasq settings with this file.",
    ),
    OptionSpec::int(
        D,
        "dnsmasq_lease_max",
        Some("16777216"),
        Some(1),
        None,
        "Limit number of leases to prevent a denial-of-service.",
    ),
    OptionSpec::bool(
        D,
        "dhcp_broadcast_reply",
        false,
        "Use broadcast in DHCP replies.",
    ),
    OptionSpec::str(
        D,
        "dnsmasq_base_log_dir",
        None,
        "Base log dir for dnsmasq logging; unset disables the dnsmasq log.",
    ),
    OptionSpec::bool(
        D,
        "dnsmasq_enable_addr6_list",
        false,
        "One dhcp-host entry listing all IPv6 addresses a port has on one subnet.",
    ),
    OptionSpec::str(
        D,
        "dnsmasq_txt_record",
        Some(""),
        "Return a TXT DNS record (<name>[[,<text>],<text>]).",
    ),
    OptionSpec::int(
        D,
        "dhcp_renewal_time",
        Some("0"),
        Some(0),
        None,
        "DHCP renewal time T1 (in seconds); 0 leaves it to dnsmasq.",
    ),
    OptionSpec::int(
        D,
        "dhcp_rebinding_time",
        Some("0"),
        Some(0),
        None,
        "DHCP rebinding time T2 (in seconds); 0 leaves it to dnsmasq.",
    ),
    OptionSpec::bool(
        D,
        "enable_isolated_metadata",
        false,
        "Serve metadata routes on subnets without a router.",
    ),
    OptionSpec::bool(
        D,
        "force_metadata",
        false,
        "Always route metadata through the DHCP port.",
    ),
    OptionSpec::bool(
        D,
        "enable_metadata_network",
        false,
        "Serve metadata on a dedicated 169.254.0.0/16 metadata network.",
    ),
];

/// The resolved options the dnsmasq renderers read.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsmasqConfig {
    /// `dhcp_confs`, made absolute and normalised as Neutron does.
    pub dhcp_confs: PathBuf,
    /// `dns_domain`; empty for none.
    pub dns_domain: String,
    /// `dhcp_lease_duration` in seconds; -1 is infinite.
    pub dhcp_lease_duration: i64,
    /// `dnsmasq_dns_servers`, one `--server=` each.
    pub dnsmasq_dns_servers: Vec<String>,
    /// `dnsmasq_local_resolv`.
    pub dnsmasq_local_resolv: bool,
    /// `dnsmasq_config_file` (not yet stripped; the command line strips it).
    pub dnsmasq_config_file: String,
    /// `dnsmasq_lease_max`.
    pub dnsmasq_lease_max: u64,
    /// `dhcp_broadcast_reply`.
    pub dhcp_broadcast_reply: bool,
    /// `dnsmasq_base_log_dir`; `None` (or empty) disables dnsmasq logging.
    pub dnsmasq_base_log_dir: Option<String>,
    /// `dnsmasq_enable_addr6_list`.
    pub dnsmasq_enable_addr6_list: bool,
    /// `dnsmasq_txt_record`; empty for none.
    pub dnsmasq_txt_record: String,
    /// `dhcp_renewal_time` (T1) in seconds; 0 for dnsmasq's default.
    pub dhcp_renewal_time: u64,
    /// `dhcp_rebinding_time` (T2) in seconds; 0 for dnsmasq's default.
    pub dhcp_rebinding_time: u64,
    /// `enable_isolated_metadata`.
    pub enable_isolated_metadata: bool,
    /// `force_metadata`.
    pub force_metadata: bool,
    /// `enable_metadata_network`.
    pub enable_metadata_network: bool,
}

impl Default for DnsmasqConfig {
    /// Neutron's production defaults (with `state_path = /var/lib/neutron`).
    fn default() -> Self {
        DnsmasqConfig {
            dhcp_confs: PathBuf::from("/var/lib/neutron/dhcp"),
            dns_domain: "openstacklocal".into(),
            dhcp_lease_duration: 86400,
            dnsmasq_dns_servers: Vec::new(),
            dnsmasq_local_resolv: false,
            dnsmasq_config_file: String::new(),
            dnsmasq_lease_max: 1 << 24,
            dhcp_broadcast_reply: false,
            dnsmasq_base_log_dir: None,
            dnsmasq_enable_addr6_list: false,
            dnsmasq_txt_record: String::new(),
            dhcp_renewal_time: 0,
            dhcp_rebinding_time: 0,
            enable_isolated_metadata: false,
            force_metadata: false,
            enable_metadata_network: false,
        }
    }
}

impl DnsmasqConfig {
    /// Reads the options (declared with [`OPTIONS`]) and checks every value that
    /// reaches the dnsmasq command line or files; the error names option and value.
    pub fn from_options(o: &Options) -> Result<Self, BadValue> {
        let int = |name: &str, default: i64| -> Result<i64, BadValue> {
            Ok(o.get_int(D, name)?.unwrap_or(default))
        };
        let confs = o.str_or(D, "dhcp_confs", "/var/lib/neutron/dhcp")?;
        let config = DnsmasqConfig {
            dhcp_confs: absolute_normalised(Path::new(&confs)),
            dns_domain: o.str_or(D, "dns_domain", "openstacklocal")?,
            dhcp_lease_duration: int("dhcp_lease_duration", 86400)?,
            dnsmasq_dns_servers: o.get_list(D, "dnsmasq_dns_servers")?,
            dnsmasq_local_resolv: o.flag(D, "dnsmasq_local_resolv")?,
            dnsmasq_config_file: o.str_or(D, "dnsmasq_config_file", "")?,
            dnsmasq_lease_max: non_negative(
                o,
                "dnsmasq_lease_max",
                int("dnsmasq_lease_max", 1 << 24)?,
            )?,
            dhcp_broadcast_reply: o.flag(D, "dhcp_broadcast_reply")?,
            dnsmasq_base_log_dir: o
                .get_str(D, "dnsmasq_base_log_dir")?
                .filter(|s| !s.is_empty()),
            dnsmasq_enable_addr6_list: o.flag(D, "dnsmasq_enable_addr6_list")?,
            dnsmasq_txt_record: o.str_or(D, "dnsmasq_txt_record", "")?,
            dhcp_renewal_time: non_negative(o, "dhcp_renewal_time", int("dhcp_renewal_time", 0)?)?,
            dhcp_rebinding_time: non_negative(
                o,
                "dhcp_rebinding_time",
                int("dhcp_rebinding_time", 0)?,
            )?,
            enable_isolated_metadata: o.flag(D, "enable_isolated_metadata")?,
            force_metadata: o.flag(D, "force_metadata")?,
            enable_metadata_network: o.flag(D, "enable_metadata_network")?,
        };
        config.validate().map_err(|mut e| {
            // Say where the value came from when the options know it.
            if let Ok(Some((_, origin))) = o.raw(D, &e.option) {
                e.origin = origin;
            }
            e
        })?;
        Ok(config)
    }

    /// Checks the values that become dnsmasq arguments or file content: none may
    /// carry a control character (a newline would add a line to a file) or start
    /// with `-` (it would read as another option), and `dns_domain`, which also
    /// goes into generated host names, must be a plain domain.
    pub fn validate(&self) -> Result<(), BadValue> {
        argv_value("dhcp_confs", &self.dhcp_confs.to_string_lossy())?;
        argv_value("dns_domain", &self.dns_domain)?;
        if let Some(bad) = self
            .dns_domain
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, ',' | '#' | '"' | '\\'))
        {
            return Err(bad_value(
                "dns_domain",
                &self.dns_domain,
                format!(
                    "{bad:?} is not allowed in a domain name (it would split host file fields)"
                ),
            ));
        }
        for server in &self.dnsmasq_dns_servers {
            argv_value("dnsmasq_dns_servers", server)?;
        }
        argv_value("dnsmasq_config_file", self.dnsmasq_config_file.trim())?;
        if let Some(dir) = &self.dnsmasq_base_log_dir {
            argv_value("dnsmasq_base_log_dir", dir)?;
        }
        argv_value("dnsmasq_txt_record", &self.dnsmasq_txt_record)?;
        Ok(())
    }

    /// `<dhcp_confs>/<network_id>`, the network's config directory.
    pub fn network_conf_dir(&self, network_id: &str) -> PathBuf {
        self.dhcp_confs.join(network_id)
    }
}

fn non_negative(o: &Options, name: &str, n: i64) -> Result<u64, BadValue> {
    u64::try_from(n).map_err(|_| {
        let origin = o
            .raw(D, name)
            .ok()
            .flatten()
            .map(|(_, origin)| origin)
            .unwrap_or(Origin::Program);
        BadValue {
            origin,
            section: D.into(),
            option: name.into(),
            value: n.to_string(),
            reason: "must not be negative".into(),
        }
    })
}

fn bad_value(option: &str, value: &str, reason: String) -> BadValue {
    BadValue {
        origin: Origin::Program,
        section: D.into(),
        option: option.into(),
        value: value.into(),
        reason,
    }
}

/// One value that is written into a dnsmasq argument.
fn argv_value(option: &str, value: &str) -> Result<(), BadValue> {
    if let Some(bad) = value.chars().find(|c| is_control(*c)) {
        return Err(bad_value(
            option,
            value,
            format!("control character {bad:?} would inject into the dnsmasq command line"),
        ));
    }
    if value.starts_with('-') {
        return Err(bad_value(
            option,
            value,
            "a leading '-' would read as another dnsmasq option".into(),
        ));
    }
    Ok(())
}

/// Control characters, including the Unicode line separators Python splits on.
pub(crate) fn is_control(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Neutron's `abspath(normpath(path))`: relative to the working directory, with
/// `.`, `..` and repeated separators folded away lexically.
fn absolute_normalised(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        let mut o = Options::new();
        o.declare(&[OptionSpec::str(
            D,
            "state_path",
            Some("/var/lib/neutron"),
            "state",
        )]);
        o.declare(OPTIONS);
        o
    }

    #[test]
    fn defaults_are_neutrons() {
        let c = DnsmasqConfig::from_options(&options()).unwrap();
        assert_eq!(c, DnsmasqConfig::default());
    }

    #[test]
    fn values_are_read_and_paths_normalised() {
        let mut o = options();
        o.set(D, "dhcp_confs", "/srv//x/./dhcp/../dhcp/", Origin::Program);
        o.set(D, "dhcp_lease_duration", "-1", Origin::Program);
        o.set(
            D,
            "dnsmasq_dns_servers",
            "8.8.8.8, 9.9.9.9",
            Origin::Program,
        );
        o.set(D, "dnsmasq_base_log_dir", "", Origin::Program);
        let c = DnsmasqConfig::from_options(&o).unwrap();
        assert_eq!(c.dhcp_confs, PathBuf::from("/srv/x/dhcp"));
        assert_eq!(c.dhcp_lease_duration, -1);
        assert_eq!(c.dnsmasq_dns_servers, ["8.8.8.8", "9.9.9.9"]);
        assert_eq!(c.dnsmasq_base_log_dir, None);
    }

    #[test]
    fn injecting_values_are_rejected_with_option_and_value() {
        for (option, value) in [
            ("dns_domain", "example.org\n--dhcp-script=/bin/sh"),
            ("dns_domain", "-x"),
            ("dns_domain", "a,b"),
            ("dns_domain", "a b"),
            ("dnsmasq_dns_servers", "--conf-file=/tmp/evil"),
            ("dnsmasq_txt_record", "t\r\nx"),
            ("dnsmasq_config_file", "  -C/tmp/evil"),
            ("dnsmasq_base_log_dir", "/tmp/\u{0}x"),
            ("dhcp_confs", "/x\ny"),
        ] {
            let mut o = options();
            o.set(D, option, value, Origin::Program);
            let e = DnsmasqConfig::from_options(&o).unwrap_err();
            assert_eq!(e.option, option, "{e}");
            assert!(e.to_string().contains(option), "{e}");
        }
        let mut o = options();
        o.set(D, "dhcp_lease_duration", "-2", Origin::Program);
        assert!(DnsmasqConfig::from_options(&o).is_err());
    }
}
