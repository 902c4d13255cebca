//! The driver registry of this agent: built-in drivers plus configured plugins.

use std::path::PathBuf;

use leasehold_core::plugin::{load_plugin, PluginError};
use leasehold_core::registry::{Registry, RegistryError};

/// Every built-in driver. Each driver crate is referenced here so the linker
/// keeps its `inventory` registration.
pub fn builtin_registry() -> Result<Registry, RegistryError> {
    leasehold_dnsmasq::link();
    leasehold_linuxbridge::link();
    leasehold_openvswitch::link();
    Registry::builtin()
}

/// Loads each plugin in order into `registry`; the first failure stops.
pub fn load_plugins(registry: &mut Registry, paths: &[PathBuf]) -> Result<(), PluginError> {
    for path in paths {
        let added = load_plugin(path, registry)?;
        tracing::info!(plugin = %path.display(), drivers = added, "loaded driver plugin");
    }
    Ok(())
}
