//! The driver registry: names from the config file to driver constructors.
//!
//! Built-in drivers register with [`inventory::submit!`]; plugins add theirs
//! at run time. Names and aliases follow Neutron's config values so that an
//! unchanged `dhcp_agent.ini` selects the same drivers.

use std::fmt;
use std::path::PathBuf;

use crate::driver::{DhcpFactory, InterfaceFactory};
use crate::options::OptionSpec;

/// A DHCP driver's registration.
#[derive(Clone, Copy, Debug)]
pub struct DhcpDriverEntry {
    /// The short name (`dnsmasq`).
    pub name: &'static str,
    /// Other names it answers to (`neutron.agent.linux.dhcp.Dnsmasq`).
    pub aliases: &'static [&'static str],
    /// One line on what it is.
    pub summary: &'static str,
    /// Options it reads.
    pub options: &'static [OptionSpec],
    /// Its constructor.
    pub create: DhcpFactory,
}

/// An interface driver's registration.
#[derive(Clone, Copy, Debug)]
pub struct InterfaceDriverEntry {
    /// The short name (`openvswitch`).
    pub name: &'static str,
    /// Other names it answers to.
    pub aliases: &'static [&'static str],
    /// One line on what it is.
    pub summary: &'static str,
    /// Options it reads.
    pub options: &'static [OptionSpec],
    /// Its constructor.
    pub create: InterfaceFactory,
}

inventory::collect!(DhcpDriverEntry);
inventory::collect!(InterfaceDriverEntry);

/// Which kind of driver a name is looked up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// `dhcp_driver`.
    Dhcp,
    /// `interface_driver`.
    Interface,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::Dhcp => "DHCP driver",
            DriverKind::Interface => "interface driver",
        })
    }
}

/// Where a driver came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Compiled into the agent.
    BuiltIn,
    /// Loaded from a plugin file.
    Plugin(PathBuf),
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::BuiltIn => f.write_str("built-in"),
            Provenance::Plugin(p) => write!(f, "plugin {}", p.display()),
        }
    }
}

/// Looking up or adding a driver failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two drivers claim the same name.
    #[error("{kind} name {name:?} is claimed twice: by {first} and by {second}")]
    Duplicate {
        /// Driver kind.
        kind: DriverKind,
        /// The contested name.
        name: String,
        /// The first claimant (driver and where it came from).
        first: String,
        /// The second claimant.
        second: String,
    },
    /// No driver has this name.
    #[error("unknown {kind} {name:?}; available: {}", available.join(", "))]
    Unknown {
        /// Driver kind.
        kind: DriverKind,
        /// The name asked for.
        name: String,
        /// Every name and alias that would work.
        available: Vec<String>,
    },
}

/// A registered driver of either kind, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverListing {
    /// Kind.
    pub kind: DriverKind,
    /// Name.
    pub name: &'static str,
    /// Aliases.
    pub aliases: Vec<&'static str>,
    /// Summary.
    pub summary: &'static str,
    /// Origin.
    pub provenance: Provenance,
}

/// Names and constructors of every driver the agent can use.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    dhcp: Vec<(DhcpDriverEntry, Provenance)>,
    interface: Vec<(InterfaceDriverEntry, Provenance)>,
}

trait Named {
    fn name(&self) -> &'static str;
    fn aliases(&self) -> &'static [&'static str];
}

impl Named for DhcpDriverEntry {
    fn name(&self) -> &'static str {
        self.name
    }
    fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }
}

impl Named for InterfaceDriverEntry {
    fn name(&self) -> &'static str {
        self.name
    }
    fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }
}

fn names<E: Named>(e: &E) -> impl Iterator<Item = &'static str> {
    std::iter::once(e.name()).chain(e.aliases().iter().copied())
}

fn add<E: Named>(
    list: &mut Vec<(E, Provenance)>,
    kind: DriverKind,
    entry: E,
    provenance: Provenance,
) -> Result<(), RegistryError> {
    for name in names(&entry) {
        if let Some((other, other_prov)) = list.iter().find(|(e, _)| names(e).any(|n| n == name)) {
            return Err(RegistryError::Duplicate {
                kind,
                name: name.to_string(),
                first: format!("{} ({other_prov})", other.name()),
                second: format!("{} ({provenance})", entry.name()),
            });
        }
    }
    list.push((entry, provenance));
    Ok(())
}

fn find<'a, E: Named>(
    list: &'a [(E, Provenance)],
    kind: DriverKind,
    name: &str,
) -> Result<&'a E, RegistryError> {
    let name = name.trim();
    list.iter()
        .map(|(e, _)| e)
        .find(|e| names(*e).any(|n| n == name))
        .ok_or_else(|| RegistryError::Unknown {
            kind,
            name: name.to_string(),
            available: list
                .iter()
                .flat_map(|(e, _)| names(e))
                .map(String::from)
                .collect(),
        })
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every driver compiled into this program. The driver crates must be
    /// linked in (the agent references each one) for their entries to exist.
    pub fn builtin() -> Result<Self, RegistryError> {
        let mut registry = Registry::empty();
        let mut dhcp: Vec<_> = inventory::iter::<DhcpDriverEntry>
            .into_iter()
            .copied()
            .collect();
        let mut interface: Vec<_> = inventory::iter::<InterfaceDriverEntry>
            .into_iter()
            .copied()
            .collect();
        // inventory's order is unspecified; list drivers in a stable order.
        dhcp.sort_by_key(|e| e.name);
        interface.sort_by_key(|e| e.name);
        for e in dhcp {
            registry.add_dhcp(e, Provenance::BuiltIn)?;
        }
        for e in interface {
            registry.add_interface(e, Provenance::BuiltIn)?;
        }
        Ok(registry)
    }

    /// Adds a DHCP driver; a name or alias already taken is an error naming both.
    pub fn add_dhcp(
        &mut self,
        entry: DhcpDriverEntry,
        provenance: Provenance,
    ) -> Result<(), RegistryError> {
        add(&mut self.dhcp, DriverKind::Dhcp, entry, provenance)
    }

    /// Adds an interface driver; a name or alias already taken is an error naming both.
    pub fn add_interface(
        &mut self,
        entry: InterfaceDriverEntry,
        provenance: Provenance,
    ) -> Result<(), RegistryError> {
        add(
            &mut self.interface,
            DriverKind::Interface,
            entry,
            provenance,
        )
    }

    /// The DHCP driver called `name`; unknown names list what is available.
    pub fn dhcp(&self, name: &str) -> Result<&DhcpDriverEntry, RegistryError> {
        find(&self.dhcp, DriverKind::Dhcp, name)
    }

    /// The interface driver called `name`; unknown names list what is available.
    pub fn interface(&self, name: &str) -> Result<&InterfaceDriverEntry, RegistryError> {
        find(&self.interface, DriverKind::Interface, name)
    }

    /// Options declared by every registered driver.
    pub fn option_specs(&self) -> Vec<OptionSpec> {
        self.dhcp
            .iter()
            .flat_map(|(e, _)| e.options)
            .chain(self.interface.iter().flat_map(|(e, _)| e.options))
            .copied()
            .collect()
    }

    /// Every driver, DHCP drivers first.
    pub fn listing(&self) -> Vec<DriverListing> {
        let dhcp = self.dhcp.iter().map(|(e, p)| DriverListing {
            kind: DriverKind::Dhcp,
            name: e.name,
            aliases: e.aliases.to_vec(),
            summary: e.summary,
            provenance: p.clone(),
        });
        let interface = self.interface.iter().map(|(e, p)| DriverListing {
            kind: DriverKind::Interface,
            name: e.name,
            aliases: e.aliases.to_vec(),
            summary: e.summary,
            provenance: p.clone(),
        });
        dhcp.chain(interface).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{DriverContext, DriverError, InterfaceDriver};
    use std::sync::Arc;

    fn no_interface(_: &DriverContext<'_>) -> Result<Arc<dyn InterfaceDriver>, DriverError> {
        Err(DriverError::Failed("test".into()))
    }

    fn entry(name: &'static str, aliases: &'static [&'static str]) -> InterfaceDriverEntry {
        InterfaceDriverEntry {
            name,
            aliases,
            summary: "test",
            options: &[],
            create: no_interface,
        }
    }

    #[test]
    fn finds_by_name_and_alias() {
        let mut r = Registry::empty();
        r.add_interface(
            entry(
                "openvswitch",
                &["neutron.agent.linux.interface.OVSInterfaceDriver"],
            ),
            Provenance::BuiltIn,
        )
        .unwrap();
        assert_eq!(r.interface("openvswitch").unwrap().name, "openvswitch");
        assert_eq!(
            r.interface("neutron.agent.linux.interface.OVSInterfaceDriver")
                .unwrap()
                .name,
            "openvswitch"
        );
    }

    #[test]
    fn unknown_name_lists_every_name() {
        let mut r = Registry::empty();
        r.add_interface(entry("openvswitch", &["ovs-alias"]), Provenance::BuiltIn)
            .unwrap();
        r.add_interface(entry("null", &[]), Provenance::BuiltIn)
            .unwrap();
        let e = r.interface("ovn").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"ovn\""), "{text}");
        assert!(text.contains("openvswitch, ovs-alias, null"), "{text}");
    }

    #[test]
    fn duplicate_names_both_claimants() {
        let mut r = Registry::empty();
        r.add_interface(entry("veth", &[]), Provenance::BuiltIn)
            .unwrap();
        let e = r
            .add_interface(
                entry("other", &["veth"]),
                Provenance::Plugin("/opt/p.so".into()),
            )
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("veth (built-in)") && text.contains("other (plugin /opt/p.so)"),
            "{text}"
        );
    }
}
