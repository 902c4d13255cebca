use super::*;
use serde_json::json;

/// The shared reference folder beside the repository.
fn shared(path: &str) -> std::path::PathBuf {
    let base = std::env::var("LEASEHOLD_SHARED")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared").into());
    std::path::Path::new(&base).join(path)
}

/// The network inside a captured get_network_info reply.
fn captured_network() -> serde_json::Value {
    let text = std::fs::read_to_string(shared(
        "wire-samples/03_agent_to_server_get_network_info.json",
    ))
    .expect("shared/wire-samples must be beside the repository");
    let sample: serde_json::Value = serde_json::from_str(&text).unwrap();
    sample["reply"]["body_decoded"]["oslo.message(parsed)"]["result"].clone()
}

fn minimal() -> serde_json::Value {
    json!({
        "id": "net-1",
        "subnets": [{"id": "sub-1", "cidr": "198.51.100.0/24", "ip_version": 4,
                     "gateway_ip": "198.51.100.1", "enable_dhcp": true}],
        "ports": [{"id": "port-1", "mac_address": "fa:16:3e:00:00:01",
                   "fixed_ips": [{"subnet_id": "sub-1", "ip_address": "198.51.100.5"}]}]
    })
}

fn error_of(value: serde_json::Value) -> ModelError {
    Network::from_json_value(value).unwrap_err()
}

#[test]
fn parses_a_real_neutron_server_reply() {
    let (net, warnings) = Network::from_json_value(captured_network()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(net.id.as_str(), "f92dfb46-282d-4ddc-8219-8838a48afaae");
    assert_eq!(net.mtu, Some(1450));
    assert_eq!(net.subnets.len(), 2);
    let v6 = &net.subnets[0];
    assert_eq!(v6.ip_version, IpVersion::V6);
    assert_eq!(v6.ipv6_address_mode, Some(Ipv6Mode::Dhcpv6Stateful));
    let v4 = &net.subnets[1];
    assert_eq!(v4.dns_nameservers.len(), 2);
    assert_eq!(net.ports.len(), 2);
    let dhcp = &net.ports[0];
    assert_eq!(dhcp.device_owner, DEVICE_OWNER_DHCP);
    assert_eq!(dhcp.binding_host_id.as_deref(), Some("hostA"));
    assert_eq!(dhcp.revision_number, Some(3));
    let vm = &net.ports[1];
    assert_eq!(vm.extra_dhcp_opts[0].opt_name, "bootfile-name");
    assert_eq!(vm.extra_dhcp_opts[0].ip_version, IpVersion::V4);
}

#[test]
fn accepts_nulls_and_missing_optional_keys() {
    let mut v = minimal();
    v["subnets"][0]["gateway_ip"] = json!(null);
    v["subnets"][0]["dns_nameservers"] = json!(null);
    v["subnets"][0]["ipv6_address_mode"] = json!(null);
    v["ports"][0]["dns_assignment"] = json!(null);
    v["ports"][0]["device_owner"] = json!(null);
    v["ports"][0]["extra_dhcp_opts"] =
        json!([{"opt_name": 61, "opt_value": "abc", "ip_version": null}]);
    v["mtu"] = json!(null);
    v["unknown_key"] = json!({"nested": [1, 2]});
    let (net, _) = Network::from_json_value(v).unwrap();
    assert_eq!(net.subnets[0].gateway_ip, None);
    assert_eq!(net.ports[0].client_id(), Some("abc"));
    assert!(net.ports[0].requires_dhcp_configuration());
    assert_eq!(net.mtu, None);
}

#[test]
fn rejects_bad_mac_naming_field_and_value() {
    let mut v = minimal();
    v["ports"][0]["mac_address"] = json!("fa:16:3e:zz:00:01");
    let e = error_of(v);
    assert_eq!(e.field, "ports[0].mac_address");
    assert!(e.message.contains("fa:16:3e:zz:00:01"), "{e}");
}

#[test]
fn rejects_bad_ip_and_cidr() {
    let mut v = minimal();
    v["ports"][0]["fixed_ips"][0]["ip_address"] = json!("198.51.100.300");
    let e = error_of(v);
    assert_eq!(e.field, "ports[0].fixed_ips[0].ip_address");
    assert!(e.message.contains("198.51.100.300"));

    let mut v = minimal();
    v["subnets"][0]["cidr"] = json!("198.51.100.0/40");
    let e = error_of(v);
    assert_eq!(e.field, "subnets[0].cidr");
    assert!(e.message.contains("198.51.100.0/40"));

    let mut v = minimal();
    v["subnets"][0]["dns_nameservers"] = json!(["8.8.8.8", "not-an-ip"]);
    assert_eq!(error_of(v).field, "subnets[0].dns_nameservers[1]");
}

#[test]
fn rejects_unsafe_ids() {
    for (path, bad) in [("id", "../../etc"), ("id", "a b"), ("id", "x\ny")] {
        let mut v = minimal();
        v[path] = json!(bad);
        let e = error_of(v);
        assert_eq!(e.field, path);
        assert!(e.message.contains(&format!("{bad:?}")), "{e}");
    }
    let mut v = minimal();
    v["ports"][0]["id"] = json!("p".repeat(65));
    assert_eq!(error_of(v).field, "ports[0].id");
    let mut v = minimal();
    v["ports"][0]["fixed_ips"][0]["subnet_id"] = json!("sub/1");
    assert_eq!(error_of(v).field, "ports[0].fixed_ips[0].subnet_id");
}

#[test]
fn rejects_wrong_shapes() {
    let e = error_of(json!({"id": "n", "ports": {"not": "a list"}}));
    assert_eq!(e.field, "ports");
    let e = error_of(json!({"subnets": []}));
    assert!(e.message.contains("id"), "{e}");
    let mut v = minimal();
    v["subnets"][0]["ip_version"] = json!(5);
    let e = error_of(v);
    assert_eq!(e.field, "subnets[0].ip_version");
    assert!(e.message.contains('5'));
    let mut v = minimal();
    v["subnets"][0]["ipv6_address_mode"] = json!("dhcpv7");
    assert_eq!(error_of(v).field, "subnets[0].ipv6_address_mode");
}

#[test]
fn rejects_cidr_of_the_wrong_family() {
    let mut v = minimal();
    v["subnets"][0]["ip_version"] = json!(6);
    let e = error_of(v);
    assert_eq!(e.field, "subnets[0].cidr");
}

#[test]
fn drops_a_fixed_ip_outside_its_subnet_and_keeps_the_rest() {
    let mut v = minimal();
    v["ports"][0]["fixed_ips"] = json!([
        {"subnet_id": "sub-1", "ip_address": "203.0.113.9"},
        {"subnet_id": "sub-1", "ip_address": "198.51.100.6"},
        {"subnet_id": "not-listed", "ip_address": "203.0.113.10"}
    ]);
    let (net, warnings) = Network::from_json_value(v).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.port_id.as_deref(), Some("port-1"));
    assert_eq!(w.field, "fixed_ips[0].ip_address");
    assert_eq!(w.value, "203.0.113.9");
    let kept: Vec<String> = net.ports[0]
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.to_string())
        .collect();
    assert_eq!(kept, ["198.51.100.6", "203.0.113.10"]);
}

#[test]
fn round_trips_through_serde_keeping_text() {
    let (net, _) = Network::from_json_value(captured_network()).unwrap();
    let again = serde_json::to_value(&net).unwrap();
    let (net2, _) = Network::from_json_value(again).unwrap();
    assert_eq!(net, net2);
}

#[test]
fn segment_id_may_be_a_number_as_in_neutrons_own_tests() {
    let mut v = minimal();
    v["subnets"][0]["segment_id"] = json!(1);
    let (net, _) = Network::from_json_value(v).unwrap();
    assert_eq!(
        net.subnets[0].segment_id.as_ref().map(|s| s.as_str()),
        Some("1")
    );
    let mut v = minimal();
    v["subnets"][0]["segment_id"] = json!("../x");
    assert_eq!(error_of(v).field, "subnets[0].segment_id");
}

#[test]
fn put_port_replaces_the_port_with_its_id_or_appends() {
    let (mut net, _) = Network::from_json_value(minimal()).unwrap();
    let mut changed = net.ports[0].clone();
    changed.device_id = "vm-2".into();
    net.put_port(changed);
    assert_eq!(net.ports.len(), 1);
    assert_eq!(net.ports[0].device_id, "vm-2");
    let mut other = net.ports[0].clone();
    other.id = Id::new("port-2").unwrap();
    net.put_port(other);
    let ids: Vec<&str> = net.ports.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["port-1", "port-2"]);
}
