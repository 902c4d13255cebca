//! The server API over RabbitMQ: `q-plugin` calls with the versions neutron-dhcp-agent sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use leasehold_core::model::{from_str, Id, Network, Port};
use serde_json::value::RawValue;
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
    ) -> Result<Box<RawValue>, RpcError> {
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
        reply: &RawValue,
    ) -> Result<Option<T>, RpcError> {
        if reply.get() == "null" {
            return Ok(None);
        }
        from_str(reply.get())
            .map(Some)
            .map_err(|e| RpcError::BadReply {
                method: method.into(),
                error: e.to_string(),
            })
    }

    /// A network from its JSON text, straight into the model.
    fn network(method: &str, reply: &RawValue) -> Result<Option<Network>, RpcError> {
        if reply.get() == "null" {
            return Ok(None);
        }
        let (network, warnings) =
            Network::from_json_str(reply.get()).map_err(|e| RpcError::BadReply {
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
        let reply = result?;
        serde_json::from_str(reply.get()).map_err(|e| RpcError::BadReply {
            method: "report_state".into(),
            error: e.to_string(),
        })
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
        active_networks(M, &reply)
    }

    async fn get_network_info(&self, network_id: &Id) -> Result<Option<Network>, RpcError> {
        const M: &str = "get_network_info";
        Self::network(
            M,
            &self
                .call(
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
            &self
                .call(M, "1.1", json!({"port": port, "host": self.host}))
                .await?,
        )
    }

    async fn update_dhcp_port(&self, port_id: &Id, port: Value) -> Result<Option<Port>, RpcError> {
        const M: &str = "update_dhcp_port";
        Self::decode(
            M,
            &self
                .call(
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
        Self::decode(M, &self.call(M, "1.8", json!({"port_id": port_id})).await?)
    }

    async fn dhcp_ready_on_ports(&self, port_ids: &[Id]) -> Result<(), RpcError> {
        const M: &str = "dhcp_ready_on_ports";
        self.call(M, "1.5", json!({"port_ids": port_ids}))
            .await
            .map(drop)
    }
}

/// `get_active_networks_info`'s list. Each network is decoded from its own
/// text: one that does not decode fails alone, and no `Value` tree of every
/// network (tens of megabytes at a thousand networks, left behind as heap
/// fragmentation) is built on the way.
fn active_networks(method: &str, reply: &RawValue) -> Result<Vec<NetworkReply>, RpcError> {
    let list: Vec<&RawValue> =
        serde_json::from_str(reply.get()).map_err(|_| RpcError::BadReply {
            method: method.into(),
            error: format!("expected a list, got {}", excerpt(reply.get())),
        })?;
    Ok(list
        .into_iter()
        .map(|raw| {
            Network::from_json_str(raw.get())
                .map(|(n, warnings)| {
                    for w in warnings {
                        tracing::warn!(network = %n.id, "{w}");
                    }
                    n
                })
                .map_err(|e| (id_of(raw), e))
        })
        .collect())
}

/// The `id` of a network whose text did not decode, if it has a string one.
fn id_of(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    let only: IdOnly = serde_json::from_str(raw.get()).ok()?;
    only.id?.as_str().map(String::from)
}

/// The start of a reply's text, for an error message.
fn excerpt(text: &str) -> &str {
    let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.into()).unwrap()
    }

    #[test]
    fn a_network_that_does_not_decode_fails_alone_and_keeps_its_id() {
        let reply = raw(r#"[
            {"id": "net-1", "subnets": [], "ports": []},
            {"id": "net-2", "ports": [{"id": "p1", "mac_address": "not-a-mac"}]},
            {"id": 7, "ports": 1},
            {"id": "net-4", "ports": null}
        ]"#);
        let list = active_networks("get_active_networks_info", &reply).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list[0].as_ref().unwrap().id.as_str(), "net-1");
        let (id, err) = list[1].as_ref().unwrap_err();
        assert_eq!(id.as_deref(), Some("net-2"));
        assert!(err.to_string().contains("not-a-mac"), "{err}");
        assert_eq!(list[2].as_ref().unwrap_err().0, None);
        assert_eq!(list[3].as_ref().unwrap().id.as_str(), "net-4");
    }

    #[test]
    fn a_reply_that_is_not_a_list_is_named() {
        let err = active_networks("get_active_networks_info", &raw(r#"{"a": 1}"#)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("get_active_networks_info") && text.contains(r#"{"a": 1}"#),
            "{text}"
        );
    }
}
