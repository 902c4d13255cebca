//! Notifications from the server (`dhcp_agent` topic), decoded from `method` and `args`.

use std::net::IpAddr;

use leasehold_core::model::{from_value, Id, ModelError, Port};
use serde::Deserialize;

/// Priority when the payload has none (old servers).
pub const DEFAULT_PRIORITY: u8 = 255;

/// One event the server casts to the agent.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// The network was scheduled to this agent.
    NetworkCreateEnd {
        /// The network.
        network_id: Id,
    },
    /// The network changed; admin state decides enable or disable.
    NetworkUpdateEnd {
        /// The network.
        network_id: Id,
        /// Its admin state.
        admin_state_up: bool,
    },
    /// The network is gone (or was unscheduled); sent as a fanout.
    NetworkDeleteEnd {
        /// The network.
        network_id: Id,
    },
    /// A subnet was created or changed.
    SubnetUpdateEnd {
        /// The subnet's network.
        network_id: Id,
    },
    /// A subnet was deleted.
    SubnetDeleteEnd {
        /// The subnet.
        subnet_id: Id,
        /// Its network, when the server says (newer servers do).
        network_id: Option<Id>,
    },
    /// A port was created.
    PortCreateEnd {
        /// The port as the server sent it.
        port: Box<Port>,
        /// Its network.
        network_id: Id,
    },
    /// A port changed.
    PortUpdateEnd {
        /// The port as the server sent it.
        port: Box<Port>,
        /// Its network.
        network_id: Id,
    },
    /// A port was deleted.
    PortDeleteEnd {
        /// The port.
        port_id: Id,
        /// Its network.
        network_id: Id,
        /// Its addresses, to order a delete before a create of the same IP.
        fixed_ips: Vec<IpAddr>,
    },
    /// The agent's admin state changed: full resync.
    AgentUpdated {
        /// The new admin state.
        admin_state_up: bool,
    },
}

/// A notification with its priority (lower is more urgent).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub notification: Notification,
    /// Priority from the payload, or [`DEFAULT_PRIORITY`].
    pub priority: u8,
}

impl Notification {
    /// The network the event is about (the work-queue key); `None` for agent events.
    pub fn network_id(&self) -> Option<&Id> {
        match self {
            Notification::NetworkCreateEnd { network_id }
            | Notification::NetworkUpdateEnd { network_id, .. }
            | Notification::NetworkDeleteEnd { network_id }
            | Notification::SubnetUpdateEnd { network_id }
            | Notification::PortCreateEnd { network_id, .. }
            | Notification::PortUpdateEnd { network_id, .. }
            | Notification::PortDeleteEnd { network_id, .. } => Some(network_id),
            Notification::SubnetDeleteEnd { network_id, .. } => network_id.as_ref(),
            Notification::AgentUpdated { .. } => None,
        }
    }
}

/// A message that is not a notification we can act on.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The method is not one the DHCP agent serves.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// A field is missing or malformed.
    #[error("{method}: {error}")]
    Field {
        /// The method.
        method: String,
        /// The field and what is wrong.
        error: ModelError,
    },
}

#[derive(Deserialize)]
struct Args<P> {
    payload: P,
}

#[derive(Deserialize)]
struct NetworkRef {
    id: Id,
    #[serde(default = "yes")]
    admin_state_up: bool,
}

#[derive(Deserialize)]
struct NetworkPayload {
    network: NetworkRef,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct NetworkIdPayload {
    network_id: Id,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct SubnetRef {
    network_id: Id,
}

#[derive(Deserialize)]
struct SubnetPayload {
    subnet: SubnetRef,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct SubnetDeletePayload {
    subnet_id: Id,
    #[serde(default)]
    network_id: Option<Id>,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct PortPayload {
    port: serde_json::Value,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct FixedIpRef {
    ip_address: leasehold_core::model::IpAddress,
}

#[derive(Deserialize)]
struct PortDeletePayload {
    port_id: Id,
    network_id: Id,
    #[serde(default)]
    fixed_ips: Option<Vec<FixedIpRef>>,
    #[serde(default)]
    priority: Option<u8>,
}

#[derive(Deserialize)]
struct AgentUpdatedPayload {
    #[serde(default = "yes")]
    admin_state_up: bool,
}

fn yes() -> bool {
    true
}

/// Decodes `method(**args)`; errors name the method and the field.
pub fn decode(method: &str, args: serde_json::Value) -> Result<Event, DecodeError> {
    let field = |error: ModelError| DecodeError::Field {
        method: method.to_string(),
        error,
    };
    let event = |notification, priority: Option<u8>| Event {
        notification,
        priority: priority.unwrap_or(DEFAULT_PRIORITY),
    };
    Ok(match method {
        "network_create_end" => {
            let a: Args<NetworkPayload> = from_value(args).map_err(field)?;
            event(
                Notification::NetworkCreateEnd {
                    network_id: a.payload.network.id,
                },
                a.payload.priority,
            )
        }
        "network_update_end" => {
            let a: Args<NetworkPayload> = from_value(args).map_err(field)?;
            let n = a.payload.network;
            event(
                Notification::NetworkUpdateEnd {
                    network_id: n.id,
                    admin_state_up: n.admin_state_up,
                },
                a.payload.priority,
            )
        }
        "network_delete_end" => {
            let a: Args<NetworkIdPayload> = from_value(args).map_err(field)?;
            event(
                Notification::NetworkDeleteEnd {
                    network_id: a.payload.network_id,
                },
                a.payload.priority,
            )
        }
        "subnet_create_end" | "subnet_update_end" => {
            let a: Args<SubnetPayload> = from_value(args).map_err(field)?;
            event(
                Notification::SubnetUpdateEnd {
                    network_id: a.payload.subnet.network_id,
                },
                a.payload.priority,
            )
        }
        "subnet_delete_end" => {
            let a: Args<SubnetDeletePayload> = from_value(args).map_err(field)?;
            let p = a.payload;
            event(
                Notification::SubnetDeleteEnd {
                    subnet_id: p.subnet_id,
                    network_id: p.network_id,
                },
                p.priority,
            )
        }
        "port_create_end" | "port_update_end" => {
            let a: Args<PortPayload> = from_value(args).map_err(field)?;
            let mut port_value = a.payload.port;
            let network_id: Id = from_value(
                port_value
                    .get("network_id")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            )
            .map_err(|e| {
                field(ModelError {
                    field: format!("payload.port.network_id{}", suffix(&e.field)),
                    message: e.message,
                })
            })?;
            // The server may attach a whole `network` dict; it is not ours to parse.
            if let Some(obj) = port_value.as_object_mut() {
                obj.remove("network");
            }
            let port: Port = from_value(port_value).map_err(|e| {
                field(ModelError {
                    field: format!("payload.port.{}", e.field),
                    message: e.message,
                })
            })?;
            let port = Box::new(port);
            let notification = if method == "port_create_end" {
                Notification::PortCreateEnd { port, network_id }
            } else {
                Notification::PortUpdateEnd { port, network_id }
            };
            event(notification, a.payload.priority)
        }
        "port_delete_end" => {
            let a: Args<PortDeletePayload> = from_value(args).map_err(field)?;
            let p = a.payload;
            let fixed_ips = p
                .fixed_ips
                .unwrap_or_default()
                .into_iter()
                .map(|f| *f.ip_address.value())
                .collect();
            event(
                Notification::PortDeleteEnd {
                    port_id: p.port_id,
                    network_id: p.network_id,
                    fixed_ips,
                },
                p.priority,
            )
        }
        "agent_updated" => {
            let a: Args<AgentUpdatedPayload> = from_value(args).map_err(field)?;
            event(
                Notification::AgentUpdated {
                    admin_state_up: a.payload.admin_state_up,
                },
                None,
            )
        }
        other => return Err(DecodeError::UnknownMethod(other.to_string())),
    })
}

fn suffix(field: &str) -> String {
    if field == "(document)" {
        String::new()
    } else {
        format!(".{field}")
    }
}
