//! Turning JSON into a checked [`Network`]: what rejects the whole network and
//! what only drops one element.
//!
//! Level (a), the network is unusable: JSON of the wrong shape, an address or
//! id that does not parse, a subnet whose CIDR is not of its `ip_version`.
//! These are [`ModelError`]s naming the field path and the value.
//!
//! Level (b), one element is wrong: a fixed IP outside the subnet it names.
//! That element is dropped and a [`Warning`] says which, so the rest is served.

use std::fmt;

use serde::de::DeserializeOwned;

use super::id::Id;
use super::network::{IpVersion, Network};

/// Why a network (or message) was rejected as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ModelError {
    /// Path of the offending field, e.g. `ports[2].mac_address`.
    pub field: String,
    /// What is wrong, naming the value.
    pub message: String,
}

/// One element left out or neutralised, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The network it is about.
    pub network_id: String,
    /// The port it is about, if any.
    pub port_id: Option<String>,
    /// The field, e.g. `fixed_ips[1].ip_address`.
    pub field: String,
    /// The offending value.
    pub value: String,
    /// What was done and why.
    pub reason: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network {}", self.network_id)?;
        if let Some(port) = &self.port_id {
            write!(f, " port {port}")?;
        }
        write!(f, ": {} = {:?}: {}", self.field, self.value, self.reason)
    }
}

/// Deserializes any model type from a JSON value, naming the failing field.
///
/// The value is read once without path tracking (the common case costs no
/// more than plain serde); only a failure is read again to name the field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ModelError> {
    match T::deserialize(&value) {
        Ok(v) => Ok(v),
        Err(_) => serde_path_to_error::deserialize(value).map_err(|e| ModelError {
            field: path_or_root(e.path().to_string()),
            message: e.into_inner().to_string(),
        }),
    }
}

/// Deserializes any model type from JSON text, naming the failing field.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, ModelError> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| ModelError {
                field: path_or_root(e.path().to_string()),
                message: e.into_inner().to_string(),
            })
        }
    }
}

fn path_or_root(path: String) -> String {
    if path.is_empty() || path == "." {
        "(document)".into()
    } else {
        path
    }
}

impl Network {
    /// Parses and checks a network dict: level (a) errors reject it, level (b)
    /// problems drop the element and come back as warnings.
    pub fn from_json_value(
        value: serde_json::Value,
    ) -> Result<(Network, Vec<Warning>), ModelError> {
        let mut network: Network = from_value(value)?;
        network.check_structure()?;
        let warnings = network.drop_bad_elements();
        Ok((network, warnings))
    }

    /// Like [`Network::from_json_value`], from text.
    pub fn from_json_str(text: &str) -> Result<(Network, Vec<Warning>), ModelError> {
        let mut network: Network = from_str(text)?;
        network.check_structure()?;
        let warnings = network.drop_bad_elements();
        Ok((network, warnings))
    }

    /// Level (a) checks that serde cannot express.
    pub fn check_structure(&self) -> Result<(), ModelError> {
        for (list, subnets) in [
            ("subnets", &self.subnets),
            ("non_local_subnets", &self.non_local_subnets),
        ] {
            for (i, subnet) in subnets.iter().enumerate() {
                let cidr_version = IpVersion::of(&subnet.cidr.value().addr());
                if cidr_version != subnet.ip_version {
                    return Err(ModelError {
                        field: format!("{list}[{i}].cidr"),
                        message: format!(
                            "{:?} is not an IPv{} CIDR although ip_version is {}",
                            subnet.cidr.text(),
                            subnet.ip_version.number(),
                            subnet.ip_version.number()
                        ),
                    });
                }
                if let Some(gw) = &subnet.gateway_ip {
                    if IpVersion::of(gw.value()) != subnet.ip_version {
                        return Err(ModelError {
                            field: format!("{list}[{i}].gateway_ip"),
                            message: format!(
                                "{:?} is not an IPv{} address",
                                gw.text(),
                                subnet.ip_version.number()
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Level (b): drops fixed IPs that lie outside the subnet they name.
    /// A fixed IP on a subnet the network does not list is kept: the server
    /// lists only DHCP-enabled subnets, and the renderers skip it quietly.
    pub fn drop_bad_elements(&mut self) -> Vec<Warning> {
        // Sorted by id for a binary search: no hashing of 36-byte ids for
        // each of a large network's fixed IPs.
        let mut cidrs: Vec<(&Id, ipnet::IpNet)> = self
            .subnets
            .iter()
            .chain(&self.non_local_subnets)
            .map(|s| (&s.id, *s.cidr.value()))
            .collect();
        cidrs.sort_by(|a, b| a.0.cmp(b.0));
        let cidr_of = |id: &Id| {
            cidrs
                .binary_search_by(|(k, _)| (*k).cmp(id))
                .ok()
                .map(|i| cidrs[i].1)
        };
        let mut warnings = Vec::new();
        for port in &mut self.ports {
            // In place: a port's list is only rebuilt when it loses an entry.
            let mut i = 0;
            port.fixed_ips.retain(|fixed| {
                let index = i;
                i += 1;
                let Some(cidr) = cidr_of(&fixed.subnet_id) else {
                    return true;
                };
                if cidr.contains(fixed.ip_address.value()) {
                    return true;
                }
                warnings.push(Warning {
                    network_id: self.id.to_string(),
                    port_id: Some(port.id.to_string()),
                    field: format!("fixed_ips[{index}].ip_address"),
                    value: fixed.ip_address.to_string(),
                    reason: format!(
                        "outside its subnet {} ({}); address left out",
                        fixed.subnet_id, cidr
                    ),
                });
                false
            });
        }
        warnings
    }
}
