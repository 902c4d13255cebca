//! The embedded mode's input: `{"networks": [ … ]}`, Neutron network dicts.

use std::collections::BTreeMap;
use std::path::Path;

use leasehold_core::model::{Id, Network, Warning};

/// A networks file that cannot be used; the last good one keeps being served.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("networks file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some part is malformed; names the place.
    #[error("networks file {path}: {place}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Where: `networks[2].ports[0].mac_address`.
        place: String,
        /// What is wrong.
        message: String,
    },
}

/// The networks of a file, by id, with warnings about left-out elements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworksFile {
    /// Networks by id.
    pub networks: BTreeMap<Id, Network>,
    /// Elements left out (level (b) problems), for the log.
    pub warnings: Vec<Warning>,
}

/// Reads and checks a networks file as a whole: any unusable network refuses it.
pub fn load(path: &Path) -> Result<NetworksFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|(place, message)| FileError::Invalid {
        path: path.display().to_string(),
        place,
        message,
    })
}

/// Parses the text of a networks file; errors give the place and the problem.
pub fn parse(text: &str) -> Result<NetworksFile, (String, String)> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        (
            format!("line {} column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let list = doc
        .get("networks")
        .and_then(|n| n.as_array())
        .ok_or_else(|| {
            (
                "(document)".to_string(),
                "expected an object with a \"networks\" list".to_string(),
            )
        })?;
    let mut out = NetworksFile::default();
    for (i, value) in list.iter().enumerate() {
        let (network, warnings) = Network::from_json_value(value.clone())
            .map_err(|e| (format!("networks[{i}].{}", e.field), e.message))?;
        if out.networks.contains_key(&network.id) {
            return Err((
                format!("networks[{i}].id"),
                format!("{:?} appears twice", network.id.as_str()),
            ));
        }
        check_unique_ports(i, &network)?;
        out.warnings.extend(warnings);
        out.networks.insert(network.id.clone(), network);
    }
    Ok(out)
}

fn check_unique_ports(i: usize, network: &Network) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (j, port) in network.ports.iter().enumerate() {
        if !seen.insert(&port.id) {
            return Err((
                format!("networks[{i}].ports[{j}].id"),
                format!("{:?} appears twice", port.id.as_str()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_networks_by_id() {
        let f = parse(r#"{"networks": [{"id": "a", "subnets": [], "ports": []}, {"id": "b"}]}"#)
            .unwrap();
        assert_eq!(f.networks.len(), 2);
    }

    #[test]
    fn refuses_the_whole_file_naming_the_place() {
        let (place, msg) = parse(r#"{"networks": [{"id": "a"}, {"id": "b", "ports": [{"id": "p", "mac_address": "nope"}]}]}"#).unwrap_err();
        assert_eq!(place, "networks[1].ports[0].mac_address");
        assert!(msg.contains("nope"));
        let (place, _) = parse(r#"{"networks": [{"id": "a"}, {"id": "a"}]}"#).unwrap_err();
        assert_eq!(place, "networks[1].id");
        let (place, _) = parse("{\"networks\": [\n{\"id\": ").unwrap_err();
        assert!(place.starts_with("line 2"), "{place}");
        assert!(parse(r#"{"nets": []}"#).is_err());
    }
}
