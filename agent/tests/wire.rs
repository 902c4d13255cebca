//! Our requests are byte-identical to what neutron-dhcp-agent 29 sends (captured in shared/wire-samples).

use leasehold_agent::rabbit::envelope::{decode, decode_reply, encode_request, CallIds, Context};

use leasehold_testkit::shared;

fn sample(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(shared(&format!("wire-samples/{name}")))
        .expect("shared/wire-samples beside the repo");
    serde_json::from_str(&text).unwrap()
}

/// Re-encodes a captured request from its parts (method, args, version, ids,
/// request id, timestamp) and compares the bytes.
fn assert_same_bytes(name: &str) {
    let s = sample(name);
    let raw = s["request"]["body_raw_verbatim"].as_str().unwrap();
    let inner = decode(raw.as_bytes()).unwrap();
    let ids = CallIds {
        msg_id: inner["_msg_id"].as_str().unwrap().into(),
        reply_q: inner["_reply_q"].as_str().unwrap().into(),
    };
    let context = Context {
        request_id: inner["_context_request_id"].as_str().unwrap().into(),
        timestamp: inner["_context_timestamp"].as_str().unwrap().into(),
    };
    let ours = encode_request(
        inner["method"].as_str().unwrap(),
        inner["args"].clone(),
        inner["version"].as_str(),
        Some(&ids),
        inner["_unique_id"].as_str().unwrap(),
        &context,
    );
    assert_eq!(ours, raw, "{name}");
}

#[test]
fn get_active_networks_info_is_byte_identical_to_the_real_agent() {
    assert_same_bytes("17_REAL_neutron-dhcp-agent_get_active_networks_info.json");
}

#[test]
fn report_state_is_byte_identical_to_the_real_agent() {
    assert_same_bytes("18_REAL_neutron-dhcp-agent_report_state_start_flag.json");
    assert_same_bytes("19_REAL_neutron-dhcp-agent_report_state_periodic.json");
}

#[test]
fn captured_replies_decode() {
    for name in [
        "03_agent_to_server_get_network_info.json",
        "04_agent_to_server_create_dhcp_port.json",
        "05_agent_to_server_dhcp_ready_on_ports.json",
    ] {
        let s = sample(name);
        let raw = s["reply"]["body_raw_verbatim"].as_str().unwrap();
        let reply = decode_reply(raw.as_bytes()).unwrap();
        let request = decode(
            s["request"]["body_raw_verbatim"]
                .as_str()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(reply.msg_id, request["_msg_id"].as_str().unwrap(), "{name}");
        assert!(reply.outcome.is_ok(), "{name}");
    }
}
