//! `leasehold-agent render`: the operator's dry run writes the driver's files and touches nothing else.

mod support;

use support::{agent, stderr};

use leasehold_testkit::shared;

#[test]
fn render_writes_the_golden_bytes() {
    let vector: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared("golden/reload_allocations_dual.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.json");
    let facts = dir.path().join("facts.json");
    let conf = dir.path().join("a.ini");
    std::fs::write(&net, vector["network"].to_string()).unwrap();
    std::fs::write(&facts, vector["runtime"].to_string()).unwrap();
    std::fs::write(
        &conf,
        "[DEFAULT]\ndhcp_confs = /dhcp\nenable_isolated_metadata = true\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = agent(&[
        "render",
        "--config-file",
        conf.to_str().unwrap(),
        "--network",
        net.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (file, key) in [
        ("host", "hosts"),
        ("addn_hosts", "addn_hosts"),
        ("opts", "opts"),
    ] {
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            vector["expected"][key].as_str().unwrap(),
            "{file}"
        );
    }
    let argv: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("cmdline.json")).unwrap()).unwrap();
    assert_eq!(argv[0], "dnsmasq");
    assert!(
        argv.iter()
            .any(|a| a.starts_with("--dhcp-hostsfile=/dhcp/")),
        "{argv:?}"
    );
}

#[test]
fn an_unusable_network_exits_2_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.json");
    std::fs::write(&net, r#"{"id": "n1", "subnets": [{"id": "s", "cidr": "198.51.100.0/24", "ip_version": 4}], "ports": [{"id": "p", "mac_address": "fa:16:3e:00:00:zz"}]}"#).unwrap();
    let out = dir.path().join("out");
    let o = agent(&[
        "render",
        "--network",
        net.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ports[0].mac_address"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn a_hostile_element_is_left_out_with_a_warning_and_the_rest_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net.json");
    let network = serde_json::json!({"id": "n1",
    "subnets": [{"id": "s", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1"}],
    "ports": [
        {"id": "good", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.5"}]},
        {"id": "evil", "mac_address": "fa:16:3e:00:00:02", "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.6"}],
         "dns_assignment": [{"hostname": "x\ndhcp-script=/tmp/pwn", "ip_address": "198.51.100.6", "fqdn": "x\ndhcp-script=/tmp/pwn."}]}
    ]});
    std::fs::write(&net, network.to_string()).unwrap();
    let out = dir.path().join("out");
    let o = agent(&[
        "render",
        "--network",
        net.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("evil"),
        "the warning names the port: {}",
        stderr(&o)
    );
    let hosts = std::fs::read_to_string(out.join("host")).unwrap();
    assert!(hosts.contains("198.51.100.5"), "{hosts}");
    assert!(!hosts.contains("dhcp-script"), "{hosts}");
    let addn = std::fs::read_to_string(out.join("addn_hosts")).unwrap();
    assert!(!addn.contains("dhcp-script"), "{addn}");
}
