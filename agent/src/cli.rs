//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Leasehold: a DHCP agent for OpenStack-style networks, a drop-in for neutron-dhcp-agent.
#[derive(Debug, Parser)]
#[command(name = "leasehold-agent", version, about, long_about = None)]
pub struct Cli {
    /// A configuration file (oslo-style INI); repeat it, later files win.
    #[arg(long = "config-file", value_name = "FILE", global = true)]
    pub config_file: Vec<PathBuf>,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    /// What to do; without one, the agent runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run,
    /// List the registered drivers, built-in and from plugins, with their aliases.
    Drivers,
    /// Parse the configuration, resolve drivers and plugins, print the effective configuration.
    CheckConfig,
    /// Print the man page (roff) on standard output.
    #[command(hide = true)]
    Man,
    /// Write what the DHCP driver would write for one network, touching nothing else.
    Render {
        /// A network dict as neutron-server's get_network_info returns it.
        #[arg(long, value_name = "NET.json")]
        network: PathBuf,
        /// Facts the driver would otherwise probe (the golden vectors' `runtime` keys).
        #[arg(long, value_name = "FACTS.json")]
        facts: Option<PathBuf>,
        /// Directory to write host, addn_hosts, opts, leases and cmdline.json into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}
