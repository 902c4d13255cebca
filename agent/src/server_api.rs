//! What the agent asks of the server (`q-plugin`), whichever transport carries it.
//!
//! The RabbitMQ transport implements it over oslo.messaging; the embedded
//! `file://` mode implements it from a networks file. The dispatcher, the
//! sync and the DeviceManager only see this trait.

use async_trait::async_trait;
use leasehold_core::model::{Id, ModelError, Network, Port};

/// A call to the server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// No reply within the timeout.
    #[error("{method}: no reply within {seconds} s")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout.
        seconds: u64,
    },
    /// The server raised an exception; classified by its class name
    /// (`NetworkNotFound`, `IpAddressGenerationFailure`, …).
    #[error("{method}: server raised {exc_type}: {message}")]
    Remote {
        /// The method called.
        method: String,
        /// Exception class name.
        exc_type: String,
        /// Its message.
        message: String,
    },
    /// The reply could not be decoded.
    #[error("{method}: bad reply: {error}")]
    BadReply {
        /// The method called.
        method: String,
        /// What is wrong with it, naming the field.
        error: String,
    },
    /// The transport is down or refused the message.
    #[error("{method}: transport: {message}")]
    Transport {
        /// The method called.
        method: String,
        /// What happened.
        message: String,
    },
}

impl RpcError {
    /// The server's exception class, if this is a remote failure.
    pub fn exc_type(&self) -> Option<&str> {
        match self {
            RpcError::Remote { exc_type, .. } => Some(exc_type),
            _ => None,
        }
    }
}

/// One network of `get_active_networks_info`: decoded, or why not. A bad
/// network never hides the others.
pub type NetworkReply = Result<Network, (Option<String>, ModelError)>;

/// The server's DHCP RPC API (`DhcpPluginApi` in Neutron), one method per call.
#[async_trait]
pub trait PluginApi: Send + Sync + std::fmt::Debug {
    /// Every network this agent hosts (version 1.1, `enable_dhcp_filter=false`).
    async fn get_active_networks_info(&self) -> Result<Vec<NetworkReply>, RpcError>;
    /// One network with its DHCP-enabled subnets and all ports; `None` if it is gone.
    async fn get_network_info(&self, network_id: &Id) -> Result<Option<Network>, RpcError>;
    /// Creates the DHCP port: `port` is the `{"port": {...}}` body.
    async fn create_dhcp_port(&self, port: serde_json::Value) -> Result<Option<Port>, RpcError>;
    /// Updates the DHCP port (fixed IPs, or adoption of a reserved port).
    async fn update_dhcp_port(
        &self,
        port_id: &Id,
        port: serde_json::Value,
    ) -> Result<Option<Port>, RpcError>;
    /// Deletes the DHCP ports of `device_id` on the network.
    async fn release_dhcp_port(&self, network_id: &Id, device_id: &str) -> Result<(), RpcError>;
    /// Reads one port again.
    async fn get_dhcp_port(&self, port_id: &Id) -> Result<Option<Port>, RpcError>;
    /// Tells the server these ports' DHCP is configured (clears the provisioning block).
    async fn dhcp_ready_on_ports(&self, port_ids: &[Id]) -> Result<(), RpcError>;
}
