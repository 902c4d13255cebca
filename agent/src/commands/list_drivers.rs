//! `leasehold-agent drivers`: what names `dhcp_driver` and `interface_driver` accept.

use std::fmt::Write;

use leasehold_core::registry::{DriverKind, Registry};

/// The listing as text, one driver a line, grouped by kind.
pub fn listing(registry: &Registry) -> String {
    let mut out = String::new();
    for (kind, title) in [
        (DriverKind::Dhcp, "DHCP drivers (dhcp_driver)"),
        (
            DriverKind::Interface,
            "Interface drivers (interface_driver)",
        ),
    ] {
        let _ = writeln!(out, "{title}:");
        for d in registry.listing().into_iter().filter(|d| d.kind == kind) {
            let _ = writeln!(out, "  {:<14} {} [{}]", d.name, d.summary, d.provenance);
            for alias in &d.aliases {
                let _ = writeln!(out, "  {:<14}   alias: {alias}", "");
            }
        }
    }
    out
}
