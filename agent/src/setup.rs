//! From command-line files to a checked configuration and a driver registry.

use std::path::PathBuf;
use std::sync::Arc;

use leasehold_core::driver::{DhcpDriver, DriverContext, InterfaceDriver};
use leasehold_core::options::{OptionSpec, Options};
use leasehold_core::registry::{DhcpDriverEntry, InterfaceDriverEntry, Registry};

use crate::config::{self, ConfigNotice, RawConfig, AGENT_OPTIONS};
use crate::drivers;

/// A loaded configuration with the registry that declared its options.
#[derive(Debug)]
pub struct Loaded {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// The resolved options.
    pub options: Options,
    /// Unknown options and ignored sections.
    pub notices: Vec<ConfigNotice>,
    /// Built-in and plugin drivers.
    pub registry: Registry,
    /// The agent's host name.
    pub host: String,
}

/// Reads the files, loads plugins, declares every option and checks every value.
pub fn load(files: &[PathBuf]) -> anyhow::Result<Loaded> {
    let raw = RawConfig::read(files)?;
    // Plugins declare options too, so find them with the agent's options alone first.
    let (bootstrap, _) = raw.resolve(AGENT_OPTIONS);
    let plugin_paths: Vec<PathBuf> = bootstrap
        .get_list("DEFAULT", "driver_plugins")?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let mut registry = drivers::builtin_registry()?;
    drivers::load_plugins(&mut registry, &plugin_paths)?;
    let mut specs: Vec<OptionSpec> = AGENT_OPTIONS.to_vec();
    specs.extend(registry.option_specs());
    let (options, notices) = raw.resolve(&specs);
    config::validate(&options)?;
    let host = config::host(&options)?;
    Ok(Loaded {
        files: files.to_vec(),
        options,
        notices,
        registry,
        host,
    })
}

impl Loaded {
    /// The configured DHCP driver's registration.
    pub fn dhcp_entry(&self) -> anyhow::Result<&DhcpDriverEntry> {
        let name = self.options.str_or("DEFAULT", "dhcp_driver", "dnsmasq")?;
        Ok(self.registry.dhcp(&name)?)
    }

    /// The configured interface driver's registration.
    pub fn interface_entry(&self) -> anyhow::Result<&InterfaceDriverEntry> {
        let name = self
            .options
            .str_or("DEFAULT", "interface_driver", "openvswitch")?;
        Ok(self.registry.interface(&name)?)
    }

    /// What drivers are built from.
    pub fn context(&self) -> DriverContext<'_> {
        DriverContext {
            options: &self.options,
            host: &self.host,
        }
    }

    /// Builds the configured DHCP driver.
    pub fn dhcp_driver(&self) -> anyhow::Result<Arc<dyn DhcpDriver>> {
        let entry = self.dhcp_entry()?;
        (entry.create)(&self.context())
            .map_err(|e| anyhow::anyhow!("DHCP driver {}: {e}", entry.name))
    }

    /// Builds the configured interface driver.
    pub fn interface_driver(&self) -> anyhow::Result<Arc<dyn InterfaceDriver>> {
        let entry = self.interface_entry()?;
        (entry.create)(&self.context())
            .map_err(|e| anyhow::anyhow!("interface driver {}: {e}", entry.name))
    }
}
