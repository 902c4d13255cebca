//! Decoding the notifications neutron-server really sends (captured in shared/wire-samples).

use leasehold_agent::notification::{decode, DecodeError, Notification, DEFAULT_PRIORITY};
use serde_json::json;

use leasehold_testkit::shared;

/// (method, args) of a captured server-to-agent cast.
fn sample(name: &str) -> (String, serde_json::Value) {
    let text = std::fs::read_to_string(shared(&format!("wire-samples/{name}")))
        .expect("shared/wire-samples beside the repo");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inner = v
        .pointer("/message/body_decoded/oslo.message(parsed)")
        .or_else(|| v.pointer("/request/body_decoded/oslo.message(parsed)"))
        .or_else(|| v.pointer("/body_decoded/oslo.message(parsed)"))
        .unwrap_or_else(|| panic!("{name}: no decoded message"))
        .clone();
    (
        inner["method"].as_str().unwrap().to_string(),
        inner["args"].clone(),
    )
}

#[test]
fn every_captured_server_cast_decodes() {
    let names = [
        "06_server_to_agent_cast_network_create_end.json",
        "07_server_to_agent_cast_subnet_create_end.json",
        "08_server_to_agent_cast_port_create_end.json",
        "09_server_to_agent_cast_port_update_end.json",
        "10_server_to_agent_cast_subnet_update_end.json",
        "11_server_to_agent_cast_network_update_end.json",
        "12_server_to_agent_cast_port_delete_end.json",
        "13_server_to_agent_cast_subnet_delete_end.json",
        "14_server_to_agent_fanout_network_delete_end.json",
        "15_server_to_agent_cast_network_delete_end.json",
        "16_server_to_agent_cast_agent_updated.json",
    ];
    for name in names {
        let (method, args) = sample(name);
        let event = decode(&method, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        match (&method[..], &event.notification) {
            ("network_create_end", Notification::NetworkCreateEnd { .. }) => {
                assert_eq!(event.priority, 0)
            }
            ("network_update_end", Notification::NetworkUpdateEnd { .. }) => {
                assert_eq!(event.priority, 1)
            }
            ("network_delete_end", Notification::NetworkDeleteEnd { .. }) => {
                assert_eq!(event.priority, 2)
            }
            ("subnet_create_end" | "subnet_update_end", Notification::SubnetUpdateEnd { .. }) => {
                assert_eq!(event.priority, 3)
            }
            ("subnet_delete_end", Notification::SubnetDeleteEnd { .. }) => {
                assert_eq!(event.priority, 4)
            }
            ("port_create_end", Notification::PortCreateEnd { port, .. }) => {
                assert!(event.priority == 5 || event.priority == 6);
                assert_eq!(port.device_owner, "compute:nova", "{name}");
            }
            ("port_update_end", Notification::PortUpdateEnd { .. }) => {
                assert_eq!(event.priority, 6)
            }
            ("port_delete_end", Notification::PortDeleteEnd { port_id, .. }) => {
                assert_eq!(event.priority, 6);
                assert_eq!(port_id.as_str(), "683506f8-e51f-470c-a0da-17aaaa78bc5e");
            }
            ("agent_updated", Notification::AgentUpdated { .. }) => {
                assert_eq!(event.priority, DEFAULT_PRIORITY)
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn bad_payloads_name_the_field() {
    let e = decode(
        "port_create_end",
        json!({"payload": {"port": {"id": "p", "network_id": "n", "mac_address": "zz"}}}),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("payload.port.mac_address") && text.contains("zz"),
        "{text}"
    );
    let e = decode(
        "network_delete_end",
        json!({"payload": {"network_id": "../x"}}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("payload.network_id"), "{e}");
    let e = decode("port_update_end", json!({"payload": {"port": {"id": "p"}}})).unwrap_err();
    assert!(e.to_string().contains("payload.port.network_id"), "{e}");
    assert!(
        matches!(decode("rm_rf", json!({})), Err(DecodeError::UnknownMethod(m)) if m == "rm_rf")
    );
}

#[test]
fn missing_priority_defaults_to_255() {
    let event = decode(
        "network_create_end",
        json!({"payload": {"network": {"id": "n1"}}}),
    )
    .unwrap();
    assert_eq!(event.priority, DEFAULT_PRIORITY);
    assert_eq!(
        event.notification.network_id().map(|i| i.as_str()),
        Some("n1")
    );
}

#[test]
fn port_delete_carries_fixed_ips_for_ordering() {
    let event = decode(
        "port_delete_end",
        json!({"payload": {"port_id": "p", "network_id": "n", "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.7"}], "priority": 6}}),
    )
    .unwrap();
    match event.notification {
        Notification::PortDeleteEnd { fixed_ips, .. } => assert_eq!(
            fixed_ips,
            ["198.51.100.7".parse::<std::net::IpAddr>().unwrap()]
        ),
        other => panic!("{other:?}"),
    }
}
