//! The server API over RabbitMQ: `q-plugin` calls with the versions neutron-dhcp-agent sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use leasehold_core::model::{from_value, Id, Network, Port};
use serde_json::{json, Value};

use super::session::Rabbit;
use crate::server_api::{NetworkReply, PluginApi, RpcError};

/// The server's DHCP RPC topic.
pub const PLUGIN_TOPIC: &str = "q-plugin";
/// The server's state report topic.
pub const REPORTS_TOPIC: &str = "q-reports-plugin";

/// `PluginApi` over oslo.messaging calls, with neutron-lib's per-method
/// timeout back-off (doubled on each timeout up to `rpc_response_max_timeout`).
#[derive(Debug)]
pub struct RabbitPluginApi {
    rabbit: Rabbit,
    host: String,
    base_timeout: Duration,
    max_timeout: Duration,
    timeouts: Mutex<HashMap<&'static str, Duration>>,
    counts: Mutex<std::collections::BTreeMap<&'static str, RpcCounts>>,
}

/// Calls and failures of one RPC method, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RpcCounts {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (timeout, remote exception, transport).
    pub errors: u64,
}

impl RabbitPluginApi {
    /// The API of `host`'s agent over `rabbit`.
    pub fn new(
        rabbit: Rabbit,
        host: String,
        base_timeout: Duration,
        max_timeout: Duration,
    ) -> Self {
        RabbitPluginApi {
            rabbit,
            host,
            base_timeout,
            max_timeout,
            timeouts: Mutex::default(),
            counts: Mutex::default(),
        }
    }

    /// Calls and failures per method so far.
    pub fn rpc_counts(&self) -> Vec<(&'static str, RpcCounts)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn count(&self, method: &'static str, failed: bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = counts.entry(method).or_default();
        c.calls += 1;
        c.errors += u64::from(failed);
    }

    async fn call(
        &self,
        method: &'static str,
        version: &str,
        args: Value,
    ) -> Result<Value, RpcError> {
        let timeout = *self
            .timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
            .unwrap_or(&self.base_timeout);
        let result = self
            .rabbit
            .call(PLUGIN_TOPIC, method, args, version, Some(timeout))
            .await;
        self.count(method, result.is_err());
        if let Err(RpcError::Timeout { .. }) = &result {
            let doubled = (timeout * 2).min(self.max_timeout);
            self.timeouts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(method, doubled);
            tracing::warn!(
                method,
                next_timeout_s = doubled.as_secs(),
                "RPC timed out; backing off"
            );
        }
        result
    }

    fn decode<T: serde::de::DeserializeOwned>(
        method: &str,
        value: Value,
    ) -> Result<Option<T>, RpcError> {
        if value.is_null() {
            return Ok(None);
        }
        from_value(value).map(Some).map_err(|e| RpcError::BadReply {
            method: method.into(),
            error: e.to_string(),
        })
    }

    fn network(method: &str, value: Value) -> Result<Option<Network>, RpcError> {
        if value.is_null() {
            return Ok(None);
        }
        let (network, warnings) =
            Network::from_json_value(value).map_err(|e| RpcError::BadReply {
                method: method.into(),
                error: e.to_string(),
            })?;
        for w in warnings {
            tracing::warn!(network = %network.id, "{w}");
        }
        Ok(Some(network))
    }

    /// Reports the agent's state (`report_state`, version 1.4, on `q-reports-plugin`).
    pub async fn report_state(
        &self,
        agent_state: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let time = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string();
        let args = json!({"agent_state": {"agent_state": agent_state}, "time": time});
        let result = self
            .rabbit
            .call(REPORTS_TOPIC, "report_state", args, "1.4", Some(timeout))
            .await;
        self.count("report_state", result.is_err());
        result
    }
}

#[async_trait]
impl PluginApi for RabbitPluginApi {
    async fn get_active_networks_info(&self) -> Result<Vec<NetworkReply>, RpcError> {
        const M: &str = "get_active_networks_info";
        let reply = self
            .call(
                M,
                "1.1",
                json!({"host": self.host, "enable_dhcp_filter": false}),
            )
            .await?;
        let Value::Array(list) = reply else {
            return Err(RpcError::BadReply {
                method: M.into(),
                error: format!("expected a list, got {reply}"),
            });
        };
        Ok(list
            .into_iter()
            .map(|v| {
                let id = v.get("id").and_then(Value::as_str).map(String::from);
                Network::from_json_value(v)
                    .map(|(n, warnings)| {
                        for w in warnings {
                            tracing::warn!(network = %n.id, "{w}");
                        }
                        n
                    })
                    .map_err(|e| (id, e))
            })
            .collect())
    }

    async fn get_network_info(&self, network_id: &Id) -> Result<Option<Network>, RpcError> {
        const M: &str = "get_network_info";
        Self::network(
            M,
            self.call(
                M,
                "1.0",
                json!({"network_id": network_id, "host": self.host}),
            )
            .await?,
        )
    }

    async fn create_dhcp_port(&self, port: Value) -> Result<Option<Port>, RpcError> {
        const M: &str = "create_dhcp_port";
        Self::decode(
            M,
            self.call(M, "1.1", json!({"port": port, "host": self.host}))
                .await?,
        )
    }

    async fn update_dhcp_port(&self, port_id: &Id, port: Value) -> Result<Option<Port>, RpcError> {
        const M: &str = "update_dhcp_port";
        Self::decode(
            M,
            self.call(
                M,
                "1.1",
                json!({"port_id": port_id, "port": port, "host": self.host}),
            )
            .await?,
        )
    }

    async fn release_dhcp_port(&self, network_id: &Id, device_id: &str) -> Result<(), RpcError> {
        const M: &str = "release_dhcp_port";
        self.call(
            M,
            "1.0",
            json!({"network_id": network_id, "device_id": device_id, "host": self.host}),
        )
        .await
        .map(drop)
    }

    async fn get_dhcp_port(&self, port_id: &Id) -> Result<Option<Port>, RpcError> {
        const M: &str = "get_dhcp_port";
        Self::decode(M, self.call(M, "1.8", json!({"port_id": port_id})).await?)
    }

    async fn dhcp_ready_on_ports(&self, port_ids: &[Id]) -> Result<(), RpcError> {
        const M: &str = "dhcp_ready_on_ports";
        self.call(M, "1.5", json!({"port_ids": port_ids}))
            .await
            .map(drop)
    }
}
