//! The options the agent itself reads, with Neutron's names, sections and defaults.
//!
//! Driver options (dnsmasq_*, [OVS] …) are declared by the drivers' registry
//! entries; together they are every option `neutron-dhcp-agent` reads.

use leasehold_core::options::OptionSpec;

/// `[DEFAULT] host`'s default is computed (the machine's hostname), so it has none here.
pub const AGENT_OPTIONS: &[OptionSpec] = &[
    // Identity, paths and drivers.
    OptionSpec::str("DEFAULT", "host", None, "Name of this agent's host, as neutron-server knows it (default: the hostname)."),
    OptionSpec::str("DEFAULT", "state_path", Some("/var/lib/neutron"), "Where the agent keeps its state."),
    OptionSpec::str("DEFAULT", "external_pids", Some("$state_path/external/pids"), "Where pid files of helper processes go."),
    OptionSpec::str("DEFAULT", "interface_driver", Some("openvswitch"), "Interface driver: openvswitch, linuxbridge, null, a Neutron class path or a plugin's driver."),
    OptionSpec::str("DEFAULT", "dhcp_driver", Some("neutron.agent.linux.dhcp.Dnsmasq"), "DHCP driver: dnsmasq, its Neutron class path, or a plugin's driver."),
    OptionSpec::str("DEFAULT", "base_mac", Some("fa:16:3e:00:00:00"), "Embedded mode: the first three bytes of DHCP port MACs."),
    OptionSpec::str("DEFAULT", "metrics_listen", Some(""), "Leasehold: address:port of the Prometheus /metrics endpoint; empty turns it off."),
    OptionSpec::list("DEFAULT", "driver_plugins", "", "Leasehold: comma-separated .so driver plugins to load."),
    // Sync.
    OptionSpec::int("DEFAULT", "resync_interval", Some("5"), Some(1), None, "Longest wait in seconds between checks for pending resyncs."),
    OptionSpec::int("DEFAULT", "resync_throttle", Some("1"), Some(0), None, "Shortest time in seconds between two resyncs; at most resync_interval."),
    OptionSpec::int("DEFAULT", "num_sync_threads", Some("4"), Some(1), None, "Networks configured in parallel during a sync."),
    OptionSpec::int("DEFAULT", "bulk_reload_interval", Some("0"), Some(0), None, "Defer reloads and apply them every this many seconds (0: at once)."),
    OptionSpec::int("DEFAULT", "dhcp_lease_duration", Some("86400"), Some(-1), None, "Lease time in seconds; -1 means infinite."),
    OptionSpec::str("DEFAULT", "dns_domain", Some("openstacklocal"), "Domain for generated host names."),
    // Metadata.
    OptionSpec::bool("DEFAULT", "enable_isolated_metadata", false, "Serve metadata on isolated subnets from the DHCP namespace."),
    OptionSpec::bool("DEFAULT", "force_metadata", false, "Always serve metadata from the DHCP namespace."),
    OptionSpec::bool("DEFAULT", "enable_metadata_network", false, "Serve metadata for networks of 169.254.0.0/16 subnets."),
    OptionSpec::str("DEFAULT", "metadata_proxy_socket", Some("$state_path/metadata_proxy"), "Unix socket of the metadata agent."),
    OptionSpec::str("DEFAULT", "metadata_proxy_user", Some(""), "User the metadata proxy runs as."),
    OptionSpec::str("DEFAULT", "metadata_proxy_group", Some(""), "Group the metadata proxy runs as."),
    // Messaging.
    OptionSpec::str("DEFAULT", "transport_url", None, "rabbit://user:pass@host:port/vhost, or file:///path/networks.json for the embedded mode.").secret(),
    OptionSpec::str("DEFAULT", "control_exchange", Some("neutron"), "AMQP exchange of neutron's topics."),
    OptionSpec::int("DEFAULT", "rpc_response_timeout", Some("60"), Some(1), None, "Seconds to wait for a reply to a call."),
    OptionSpec::int("DEFAULT", "rpc_response_max_timeout", Some("600"), Some(1), None, "Longest per-method timeout after backing off."),
    // Logging (oslo.log).
    OptionSpec::bool("DEFAULT", "debug", false, "Log at debug level."),
    OptionSpec::str("DEFAULT", "log_file", None, "Log to this file instead of standard error."),
    OptionSpec::str("DEFAULT", "log_dir", None, "Directory of log_file."),
    OptionSpec::bool("DEFAULT", "use_stderr", false, "Log to standard error as well as log_file."),
    // [AGENT]
    OptionSpec::float("AGENT", "report_interval", "30", Some(0.0), "Seconds between state reports; 0 disables them."),
    OptionSpec::bool("AGENT", "log_agent_heartbeats", false, "Log each heartbeat on the server."),
    OptionSpec::str("AGENT", "availability_zone", Some("nova"), "Availability zone of this agent."),
    OptionSpec::str("AGENT", "root_helper", Some("sudo"), "Ignored: Leasehold runs as root and needs no helper."),
    OptionSpec::bool("AGENT", "use_helper_for_ns_read", true, "Ignored: Leasehold reads namespaces directly."),
    OptionSpec::str("AGENT", "root_helper_daemon", None, "Ignored: Leasehold runs as root and needs no helper."),
    OptionSpec::choice("AGENT", "check_child_processes_action", &["respawn", "exit"], "respawn", "What to do when a dnsmasq dies."),
    OptionSpec::int("AGENT", "check_child_processes_interval", Some("60"), Some(0), None, "Seconds between safety checks of child processes; 0 disables them."),
    OptionSpec::str("AGENT", "kill_scripts_path", Some("/etc/neutron/kill_scripts/"), "Directory of per-service kill scripts."),
    // [oslo_messaging_rabbit]
    OptionSpec::int("oslo_messaging_rabbit", "heartbeat_timeout_threshold", Some("60"), Some(0), None, "AMQP heartbeat timeout in seconds; 0 disables heartbeats."),
    OptionSpec::int("oslo_messaging_rabbit", "heartbeat_rate", Some("3"), Some(1), None, "Heartbeats per timeout period."),
    OptionSpec::bool("oslo_messaging_rabbit", "amqp_durable_queues", false, "Declare durable queues."),
    OptionSpec::bool("oslo_messaging_rabbit", "amqp_auto_delete", false, "Declare auto-delete queues and exchanges."),
    OptionSpec::int("oslo_messaging_rabbit", "rabbit_qos_prefetch_count", Some("0"), Some(0), None, "AMQP prefetch count; 0 is unlimited."),
    OptionSpec::int("oslo_messaging_rabbit", "rabbit_transient_queues_ttl", Some("1800"), Some(0), None, "Expiry in seconds of reply and fanout queues."),
    OptionSpec::bool("oslo_messaging_rabbit", "rabbit_quorum_queue", false, "Declare the topic queues (dhcp_agent, dhcp_agent.<host>) as quorum queues."),
    OptionSpec::bool("oslo_messaging_rabbit", "rabbit_transient_quorum_queue", false, "Declare the reply and fanout queues as quorum queues."),
    OptionSpec::int("oslo_messaging_rabbit", "rabbit_quorum_delivery_limit", Some("0"), Some(0), None, "x-delivery-limit of quorum queues; 0 sets none."),
    OptionSpec::int("oslo_messaging_rabbit", "rabbit_quorum_max_memory_length", Some("0"), Some(0), None, "x-max-in-memory-length of quorum queues; 0 sets none."),
    OptionSpec::int("oslo_messaging_rabbit", "rabbit_quorum_max_memory_bytes", Some("0"), Some(0), None, "x-max-in-memory-bytes of quorum queues; 0 sets none."),
    OptionSpec::bool("oslo_messaging_rabbit", "ssl", false, "Connect with TLS."),
];

/// Sections whose options the agent knows; others (neutron.conf's server
/// sections) are ignored with a single notice instead of a warning per option.
pub fn is_known_section(section: &str, declared: &[OptionSpec]) -> bool {
    let s = leasehold_core::options::normalize_section(section);
    declared
        .iter()
        .any(|o| leasehold_core::options::normalize_section(o.section) == s)
}

/// Whether an option's value is a secret that must never be shown.
pub fn is_secret(spec: &OptionSpec) -> bool {
    spec.secret || spec.name.contains("password")
}
