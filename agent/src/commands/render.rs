//! `leasehold-agent render`: the dnsmasq driver's files for one network, as a dry run.

use std::path::Path;

use leasehold_core::model::Network;
use leasehold_dnsmasq::config::DnsmasqConfig;
use leasehold_dnsmasq::render::{render_all, RuntimeFacts};

use crate::setup::Loaded;

/// Why rendering stopped.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The network cannot be served at all: nothing is written (exit status 2).
    #[error("network {file}: {message}")]
    Unusable {
        /// The input file.
        file: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Anything else (config, I/O).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Renders `network_file` with `facts_file` into `out`; warnings go to the log.
pub fn run(
    loaded: &Loaded,
    network_file: &Path,
    facts_file: Option<&Path>,
    out: &Path,
) -> Result<(), RenderError> {
    let unusable = |message: String| RenderError::Unusable {
        file: network_file.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(network_file).map_err(|e| unusable(e.to_string()))?;
    let (network, mut warnings) =
        Network::from_json_str(&text).map_err(|e| unusable(e.to_string()))?;
    let facts: RuntimeFacts = match facts_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("facts {}: {e}", path.display()))?;
            leasehold_core::model::from_str(&text)
                .map_err(|e| anyhow::anyhow!("facts {}: {e}", path.display()))?
        }
        None => RuntimeFacts::default(),
    };
    let config = DnsmasqConfig::from_options(&loaded.options).map_err(anyhow::Error::from)?;
    let rendered = render_all(&network, &config, &facts);
    warnings.extend(rendered.warnings.iter().cloned());
    for w in &warnings {
        tracing::warn!(network = %network.id, "{w}");
    }
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let cmdline = serde_json::to_string_pretty(&rendered.cmdline).map_err(anyhow::Error::from)?;
    for (name, content) in [
        ("host", &rendered.hosts),
        ("addn_hosts", &rendered.addn_hosts),
        ("opts", &rendered.opts),
        ("leases", &rendered.leases),
        ("cmdline.json", &cmdline),
    ] {
        let path = out.join(name);
        std::fs::write(&path, content).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}
