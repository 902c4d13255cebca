//! An example third-party driver crate, loaded by the agent as a `.so` plugin.
//!
//! It registers one DHCP driver, `statichosts`, which serves no DHCP at all:
//! it writes each network's addresses to `<output_dir>/<network>/hosts` in
//! `/etc/hosts` form, for an external DHCP or DNS server to read. It shows
//! the whole plugin surface: options, a constructor, the trait, registration.
//!
//! Build: `cargo build --release -p leasehold-example-plugin`, then set
//! `[DEFAULT] driver_plugins = /path/to/libleasehold_example_plugin.so` and
//! `dhcp_driver = statichosts`.
//!
//! A plugin must not rely on the agent's tokio runtime (its own copy of tokio
//! would not see it), so this driver uses blocking std I/O on small files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use leasehold_core::async_trait;
use leasehold_core::driver::{DhcpDevice, DhcpDriver, DriverContext, DriverError};
use leasehold_core::model::{Id, Network};
use leasehold_core::options::OptionSpec;
use leasehold_core::plugin::PluginRegistrar;
use leasehold_core::registry::DhcpDriverEntry;

/// Options this driver reads.
const OPTIONS: &[OptionSpec] = &[OptionSpec::str(
    "statichosts",
    "output_dir",
    Some("$state_path/statichosts"),
    "Where the statichosts driver writes one hosts file per network.",
)];

/// Writes a hosts file per network.
#[derive(Debug)]
struct StaticHosts {
    dir: PathBuf,
}

impl StaticHosts {
    fn network_dir(&self, id: &Id) -> PathBuf {
        self.dir.join(id.as_str())
    }

    fn write(&self, network: &Network) -> Result<(), DriverError> {
        let dir = self.network_dir(&network.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("creating {}", dir.display()), e))?;
        let mut text = String::new();
        for port in network
            .ports
            .iter()
            .filter(|p| p.requires_dhcp_configuration())
        {
            for ip in &port.fixed_ips {
                let _ = writeln!(
                    text,
                    "{} {} host-{}",
                    ip.ip_address, port.mac_address, port.id
                );
            }
        }
        let path = dir.join("hosts");
        let tmp = dir.join(".hosts.tmp");
        std::fs::write(&tmp, text)
            .map_err(|e| DriverError::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| DriverError::io(format!("renaming to {}", path.display()), e))
    }
}

#[async_trait]
impl DhcpDriver for StaticHosts {
    async fn enable(&self, network: &Network, _device: &DhcpDevice) -> Result<(), DriverError> {
        self.write(network)
    }

    async fn disable(&self, network_id: &Id, retain_port: bool) -> Result<(), DriverError> {
        let dir = self.network_dir(network_id);
        if retain_port || !dir.exists() {
            return Ok(());
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("removing {}", dir.display()), e))
    }

    async fn reload_allocations(
        &self,
        network: &Network,
        _device: &DhcpDevice,
    ) -> Result<(), DriverError> {
        self.write(network)
    }

    async fn active(&self, network_id: &Id) -> bool {
        self.network_dir(network_id).join("hosts").is_file()
    }

    async fn existing_networks(&self) -> Result<Vec<Id>, DriverError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DriverError::io(
                    format!("listing {}", self.dir.display()),
                    e,
                ))
            }
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| Id::new(n).ok()))
            .collect())
    }
}

fn create(ctx: &DriverContext<'_>) -> Result<Arc<dyn DhcpDriver>, DriverError> {
    let dir = ctx
        .options
        .get_str("statichosts", "output_dir")?
        .filter(|d| Path::new(d).is_absolute())
        .ok_or_else(|| {
            DriverError::Failed("[statichosts] output_dir must be an absolute path".into())
        })?;
    Ok(Arc::new(StaticHosts { dir: dir.into() }))
}

fn register(registrar: &mut PluginRegistrar) {
    registrar.dhcp_driver(DhcpDriverEntry {
        name: "statichosts",
        aliases: &["example.StaticHostsDriver"],
        summary: "example plugin: writes a hosts file per network, serves no DHCP",
        options: OPTIONS,
        create,
    });
}

leasehold_core::declare_plugin!(register);
