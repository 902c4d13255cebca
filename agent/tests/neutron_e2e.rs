//! End to end against a real neutron-server (the PyPI package, pinned) over
//! RabbitMQ: the agent binary, the Linux bridge driver, real dnsmasq in
//! namespaces and a real DHCP client, driven through Neutron's REST API.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasehold_testkit::neutron::NeutronServer;
use leasehold_testkit::{privileged, sh_quiet, wait_for, Client};
use serde_json::{json, Value};

/// The agent binary, as an operator would run it.
struct Agent {
    dir: tempfile::TempDir,
    host: String,
    child: Option<Child>,
}

impl Agent {
    fn start(server: &NeutronServer, host: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dhcp_agent.ini"),
            format!(
                "[DEFAULT]\ntransport_url = {}\nhost = {host}\nstate_path = {}\ninterface_driver = linuxbridge\n[AGENT]\nreport_interval = 5\n",
                server.vhost.url(),
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
            .arg("--config-file")
            .arg(dir.path().join("dhcp_agent.ini"))
            .env("RUST_LOG", "info,netlink_packet_route=error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent {
            dir,
            host: host.into(),
            child: Some(child),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn conf_dir(&self, net: &str) -> PathBuf {
        self.dir.path().join("state/dhcp").join(net)
    }

    fn file(&self, net: &str, name: &str) -> String {
        std::fs::read_to_string(self.conf_dir(net).join(name)).unwrap_or_default()
    }

    fn dnsmasq_pid(&self, net: &str) -> Option<i32> {
        let pid: i32 = self.file(net, "pid").trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(net)
            .then_some(pid)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes what a failed test may leave: dnsmasq, namespace, bridge.
struct NetworkLeftovers<'a>(&'a Agent, String);

impl Drop for NetworkLeftovers<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.0.dnsmasq_pid(&self.1) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        sh_quiet(&["ip", "netns", "del", &format!("qdhcp-{}", self.1)]);
        sh_quiet(&["ip", "link", "del", &format!("brq{}", &self.1[..11])]);
    }
}

fn id(v: &Value, kind: &str) -> String {
    v[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} id in {v}"))
        .to_string()
}

fn device_addresses(net: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("qdhcp-{net}"), "ip", "-o", "addr"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_real_neutron_server_drives_the_agent() {
    if !privileged("neutron_e2e") {
        return;
    }
    let host = format!("lh-e2e-{}", std::process::id());
    let server = NeutronServer::start(&host);
    let agent = Agent::start(&server, &host);
    let context = |what: &str| {
        format!(
            "{what}\n--- agent log\n{}\n--- server\n{}",
            agent.log(),
            server.logs()
        )
    };

    // (f) The agent reports itself and is alive, as a DHCP agent.
    let alive = wait_for(Duration::from_secs(30), || {
        let agents = server.get("/v2.0/agents")?;
        agents["agents"]
            .as_array()?
            .iter()
            .find(|a| {
                a["agent_type"] == "DHCP agent" && a["host"] == host.as_str() && a["alive"] == true
            })
            .cloned()
    });
    let alive = alive.unwrap_or_else(|| panic!("{}", context("the DHCP agent is not alive")));
    assert_eq!(alive["binary"], "neutron-dhcp-agent");

    // (a) Network and subnet: scheduled here, DHCP port made, device and dnsmasq up.
    let net = id(
        &server.post("/v2.0/networks", json!({"network": {"name": "e2e"}})),
        "network",
    );
    let _leftovers = NetworkLeftovers(&agent, net.clone());
    let s1 = id(&server.post("/v2.0/subnets", json!({"subnet": {"network_id": net, "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1", "dns_nameservers": ["198.51.100.53"]}})), "subnet");
    let pid = wait_for(Duration::from_secs(30), || agent.dnsmasq_pid(&net))
        .unwrap_or_else(|| panic!("{}", context("dnsmasq did not start")));
    let dhcp_port = wait_for(Duration::from_secs(30), || {
        let ports = server.get(&format!(
            "/v2.0/ports?network_id={net}&device_owner=network:dhcp"
        ))?;
        ports["ports"]
            .as_array()?
            .first()
            .filter(|p| p["status"] == "ACTIVE")
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "{}",
            context("the DHCP port did not become ACTIVE (dhcp_ready_on_ports)")
        )
    });
    assert_eq!(dhcp_port["binding:host_id"], host.as_str());
    let dhcp_ip = dhcp_port["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        device_addresses(&net).contains(&format!("{dhcp_ip}/24")),
        "{}",
        device_addresses(&net)
    );

    // (b) A VM port: port_create_end, and a client with its MAC gets exactly its address.
    let vm = server.post("/v2.0/ports", json!({"port": {"network_id": net, "name": "vm1", "device_owner": "compute:nova", "device_id": "vm-1", "fixed_ips": [{"subnet_id": s1, "ip_address": "198.51.100.10"}]}}));
    let vm_id = id(&vm, "port");
    let vm_mac = vm["port"]["mac_address"].as_str().unwrap().to_string();
    assert!(
        wait_for(Duration::from_secs(15), || agent
            .file(&net, "host")
            .contains("198.51.100.10")
            .then_some(()))
        .is_some(),
        "{}",
        context("port not in hosts")
    );
    let client = Client::on_bridge(&format!("brq{}", &net[..11]));
    client.set_mac(&vm_mac);
    let lease = client
        .udhcpc_once(10, 1)
        .unwrap_or_else(|| panic!("{}", context("no lease")));
    assert_eq!(lease.get("ip"), "198.51.100.10");
    assert_eq!(lease.get("router"), "198.51.100.1");
    assert_eq!(lease.get("dns"), "198.51.100.53");
    // (f) dhcp_ready_on_ports reached the server: the VM port's DHCP
    // provisioning block is gone (it stays DOWN only for want of an L2 agent).
    let blocks = |port: &str| {
        server.sql(&format!(
            "SELECT COUNT(*) FROM provisioningblocks pb JOIN ports p ON p.standard_attr_id = pb.standard_attr_id WHERE p.id = '{port}' AND pb.entity = 'DHCP'"
        ))
    };
    let cleared = wait_for(Duration::from_secs(15), || {
        (blocks(&vm_id) == ["0"]).then_some(())
    });
    assert!(
        cleared.is_some(),
        "{}",
        context(&format!(
            "DHCP provisioning block of {vm_id} not cleared: {:?}",
            blocks(&vm_id)
        ))
    );
    // A router interface is a port too: its address appears in the hosts file.
    let router = id(
        &server.post("/v2.0/routers", json!({"router": {"name": "r1"}})),
        "router",
    );
    server.put(
        &format!("/v2.0/routers/{router}/add_router_interface"),
        json!({"subnet_id": s1}),
    );
    assert!(
        wait_for(Duration::from_secs(15), || agent
            .file(&net, "host")
            .contains("198.51.100.1\n")
            .then_some(()))
        .is_some(),
        "{}",
        context("router port not in hosts")
    );
    assert_eq!(
        agent.dnsmasq_pid(&net),
        Some(pid),
        "port events must not restart dnsmasq"
    );

    // (d) Port update: a renewing client gets the new address. Port delete: lease released.
    server.put(
        &format!("/v2.0/ports/{vm_id}"),
        json!({"port": {"fixed_ips": [{"subnet_id": s1, "ip_address": "198.51.100.20"}]}}),
    );
    assert!(
        wait_for(Duration::from_secs(15), || agent
            .file(&net, "host")
            .contains("198.51.100.20")
            .then_some(()))
        .is_some(),
        "{}",
        context("update not applied")
    );
    assert_eq!(
        client
            .udhcpc_once(10, 1)
            .map(|l| l.get("ip").to_string())
            .as_deref(),
        Some("198.51.100.20")
    );
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .file(&net, "leases")
            .contains("198.51.100.20")
            .then_some(()))
        .is_some(),
        "{}",
        agent.file(&net, "leases")
    );
    server.delete(&format!("/v2.0/ports/{vm_id}"));
    assert!(
        wait_for(Duration::from_secs(15), || (!agent
            .file(&net, "leases")
            .contains("198.51.100.20")
            && !agent.file(&net, "host").contains("198.51.100.20"))
        .then_some(()))
        .is_some(),
        "{}",
        context(&format!(
            "lease not released: {}",
            agent.file(&net, "leases")
        ))
    );

    // (c) A second subnet, then its deletion: dnsmasq restarted, the address gone, the first subnet still served.
    let s2 = id(
        &server.post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "203.0.113.0/24", "ip_version": 4}}),
        ),
        "subnet",
    );
    assert!(
        wait_for(Duration::from_secs(30), || device_addresses(&net)
            .contains("203.0.113.")
            .then_some(()))
        .is_some(),
        "{}",
        context("second subnet not on the device")
    );
    server.put(
        &format!("/v2.0/routers/{router}/remove_router_interface"),
        json!({"subnet_id": s1}),
    );
    server.delete(&format!("/v2.0/subnets/{s2}"));
    assert!(
        wait_for(Duration::from_secs(30), || (!device_addresses(&net)
            .contains("203.0.113."))
        .then_some(()))
        .is_some(),
        "{}",
        context("stale address left on the device")
    );
    assert!(device_addresses(&net).contains(&format!("{dhcp_ip}/24")));
    let vm2 = server.post("/v2.0/ports", json!({"port": {"network_id": net, "name": "vm2", "fixed_ips": [{"subnet_id": s1, "ip_address": "198.51.100.30"}]}}));
    client.set_mac(vm2["port"]["mac_address"].as_str().unwrap());
    assert!(
        wait_for(Duration::from_secs(15), || agent
            .file(&net, "host")
            .contains("198.51.100.30")
            .then_some(()))
        .is_some(),
        "{}",
        context("vm2 not in hosts")
    );
    assert_eq!(
        client
            .udhcpc_once(10, 1)
            .map(|l| l.get("ip").to_string())
            .as_deref(),
        Some("198.51.100.30"),
        "{}",
        context("first subnet no longer served")
    );

    // (e) Network delete (a fanout): namespace, device, files and dnsmasq gone.
    server.delete(&format!("/v2.0/ports/{}", id(&vm2, "port")));
    server.delete(&format!("/v2.0/routers/{router}"));
    server.delete(&format!("/v2.0/networks/{net}"));
    let gone = wait_for(Duration::from_secs(30), || {
        (agent.dnsmasq_pid(&net).is_none()
            && !agent.conf_dir(&net).exists()
            && !PathBuf::from(format!("/run/netns/qdhcp-{net}")).exists())
        .then_some(())
    });
    assert!(gone.is_some(), "{}", context("network not torn down"));
    let _ = agent.host.len();
}
