//! `leasehold-agent check-config`: the effective configuration, drivers resolved.

use std::fmt::Write;

use crate::config::shown_value;
use crate::setup::Loaded;

/// Resolves both drivers (errors list the available names) and prints every
/// option with its value and origin, secrets masked.
pub fn report(loaded: &Loaded) -> anyhow::Result<String> {
    let dhcp = loaded.dhcp_entry()?;
    let interface = loaded.interface_entry()?;
    let mut out = String::new();
    let files: Vec<String> = loaded
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    writeln!(
        out,
        "# files: {}",
        if files.is_empty() {
            "(none: defaults only)".into()
        } else {
            files.join(", ")
        }
    )?;
    writeln!(out, "# host: {}", loaded.host)?;
    writeln!(out, "# dhcp_driver: {} ({})", dhcp.name, dhcp.summary)?;
    writeln!(
        out,
        "# interface_driver: {} ({})",
        interface.name, interface.summary
    )?;
    for notice in &loaded.notices {
        writeln!(out, "# note: {notice}")?;
    }
    let mut section = String::new();
    for spec in loaded.options.specs() {
        if spec.section != section {
            writeln!(out, "\n[{}]", spec.section)?;
            section = spec.section.to_string();
        }
        match loaded.options.raw(spec.section, spec.name)? {
            Some((value, origin)) => {
                let value = value.replace('\n', "\\n");
                writeln!(
                    out,
                    "{} = {}    # {origin}",
                    spec.name,
                    shown_value(spec, &value)
                )?
            }
            None if spec.name == "host" => writeln!(out, "host = {}    # hostname", loaded.host)?,
            None => writeln!(out, "# {} is unset", spec.name)?,
        }
    }
    Ok(out)
}
