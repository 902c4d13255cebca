//! End to end in the embedded `file://` mode on Open vSwitch: the agent
//! binary with `interface_driver = openvswitch` on a private userspace OVS,
//! where no L2 agent tags the DHCP ports, so the agent does. A network with a
//! VLAN segmentation id gets that tag, one without gets an assigned one; a
//! client on the right VLAN gets exactly its port's lease, the tags are
//! logged and survive a restart. Root only; with CI=true a non-root run
//! fails instead of skipping.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasehold_testkit::ovs::{self, port_tag, vsctl};
use leasehold_testkit::{privileged, sh_quiet, unique_name, wait_for, Client};
use serde_json::json;

/// The segmentation id network A names.
const VLAN_A: u16 = 1234;
const MAC_A: &str = "fa:16:3e:e3:0a:01";
const MAC_B: &str = "fa:16:3e:e3:0b:01";

/// One agent over a temporary state directory, networks file and bridge.
struct OvsStandalone {
    dir: tempfile::TempDir,
    bridge: String,
    net_a: String,
    net_b: String,
    agent: Option<Child>,
}

impl OvsStandalone {
    fn new() -> OvsStandalone {
        let bridge = unique_name("lhsint");
        ovs::netdev_bridge(&bridge);
        let s = OvsStandalone {
            dir: tempfile::tempdir().unwrap(),
            bridge,
            net_a: uuid::Uuid::new_v4().to_string(),
            net_b: uuid::Uuid::new_v4().to_string(),
            agent: None,
        };
        // OVSDB is named in the configuration, as an operator would for a
        // non-default OVS; the bridge is the test's own.
        std::fs::write(
            s.dir.path().join("agent.ini"),
            format!(
                "[DEFAULT]\ntransport_url = file://networks.json\nstate_path = {}\ninterface_driver = openvswitch\nhost = lh-ovs-e2e-{}\n[AGENT]\ncheck_child_processes_interval = 5\n[OVS]\nintegration_bridge = {}\novsdb_connection = {}\n",
                s.dir.path().join("state").display(),
                std::process::id(),
                s.bridge,
                ovs::ovs().db(),
            ),
        )
        .unwrap();
        let port = |net: &str, mac: &str, subnet: &str, ip: &str| {
            json!({"id": format!("{}-vm", &net[..8]), "mac_address": mac, "device_owner": "compute:nova",
                   "device_id": "vm", "fixed_ips": [{"subnet_id": subnet, "ip_address": ip}]})
        };
        let doc = json!({"networks": [
            {"id": s.net_a, "mtu": 1400, "provider:network_type": "vlan", "provider:segmentation_id": VLAN_A,
             "subnets": [{"id": "a-v4", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1"}],
             "ports": [port(&s.net_a, MAC_A, "a-v4", "198.51.100.10")]},
            {"id": s.net_b, "mtu": 1400,
             "subnets": [{"id": "b-v4", "cidr": "203.0.113.0/24", "ip_version": 4, "gateway_ip": "203.0.113.1"}],
             "ports": [port(&s.net_b, MAC_B, "b-v4", "203.0.113.10")]}
        ]});
        s.write_doc(&doc);
        s
    }

    fn write_doc(&self, doc: &serde_json::Value) {
        let tmp = self.dir.path().join(".networks.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("networks.json")).unwrap();
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
            .arg("--config-file")
            .arg(self.dir.path().join("agent.ini"))
            .env("RUST_LOG", "info,netlink_packet_route=error")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn conf_dir(&self, net: &str) -> PathBuf {
        self.dir.path().join("state/dhcp").join(net)
    }

    /// The network's DHCP device (and OVS port), from the `interface` file.
    fn device(&self, net: &str) -> Option<String> {
        std::fs::read_to_string(self.conf_dir(net).join("interface"))
            .ok()
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
    }

    /// The live dnsmasq of the network, from its pid file.
    fn dnsmasq_pid(&self, net: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.conf_dir(net).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (!zombie && String::from_utf8_lossy(&cmdline).contains(net)).then_some(pid)
    }

    /// The DHCP port's tag once the agent moved it off the dead VLAN.
    fn wait_tag(&self, net: &str) -> u16 {
        wait_for(Duration::from_secs(20), || {
            let dev = self.device(net)?;
            let tag: u16 = port_tag(&dev).parse().ok()?;
            (tag != 4095 && self.dnsmasq_pid(net).is_some()).then_some(tag)
        })
        .unwrap_or_else(|| panic!("network {net} was not tagged and served:\n{}", self.log()))
    }

    /// How many times the agent logged the network's tag.
    fn tag_lines(&self, net: &str, tag: u16) -> usize {
        let needle = format!("of network {net} is on local VLAN {tag} ");
        self.log().matches(&needle).count()
    }
}

impl Drop for OvsStandalone {
    fn drop(&mut self) {
        self.stop();
        for net in [self.net_a.clone(), self.net_b.clone()] {
            if let Some(pid) = self.dnsmasq_pid(&net) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            sh_quiet(&["ip", "netns", "del", &format!("qdhcp-{net}")]);
        }
        ovs::del_bridge(&self.bridge);
    }
}

/// The address a client gets, or "" (few tries: used for negative checks too).
fn lease(client: &Client, tries: u32) -> String {
    client
        .udhcpc_once(tries, 1)
        .map(|l| l.get("ip").to_string())
        .unwrap_or_default()
}

#[test]
fn ovs_standalone_tags_dhcp_ports_serves_each_vlan_and_keeps_tags_across_restart() {
    if !privileged("ovs_standalone_tags_dhcp_ports") {
        return;
    }
    let mut s = OvsStandalone::new();
    s.start();

    // A gets its segmentation id, B a tag the agent assigns; both logged.
    let tag_a = s.wait_tag(&s.net_a);
    let tag_b = s.wait_tag(&s.net_b);
    assert_eq!(tag_a, VLAN_A);
    assert!((3000..=4094).contains(&tag_b), "assigned tag {tag_b}");
    assert_eq!(s.tag_lines(&s.net_a, tag_a), 1, "{}", s.log());
    assert_eq!(s.tag_lines(&s.net_b, tag_b), 1, "{}", s.log());
    let dev_b = s.device(&s.net_b).unwrap();
    assert_eq!(vsctl(&["get", "Port", &dev_b, "trunks"]), "[]");
    assert_eq!(vsctl(&["get", "Port", &dev_b, "vlan_mode"]), "[]");

    // A client on each VLAN gets exactly its port's lease; A's port on B's
    // VLAN gets nothing (B's dnsmasq does not know it, A's is not there).
    let client_a = Client::on_ovs(&s.bridge, tag_a);
    client_a.set_mac(MAC_A);
    assert_eq!(lease(&client_a, 10), "198.51.100.10", "{}", s.log());
    let client_b = Client::on_ovs(&s.bridge, tag_b);
    client_b.set_mac(MAC_A);
    assert_eq!(
        lease(&client_b, 2),
        "",
        "no lease for a foreign MAC on B's VLAN"
    );
    client_b.set_mac(MAC_B);
    assert_eq!(lease(&client_b, 10), "203.0.113.10", "{}", s.log());

    // Restart: the ports keep their tags, the agent says so, DHCP goes on.
    let pid_b = s.dnsmasq_pid(&s.net_b);
    s.stop();
    s.start();
    let again = wait_for(Duration::from_secs(20), || {
        (s.tag_lines(&s.net_a, tag_a) == 2 && s.tag_lines(&s.net_b, tag_b) == 2).then_some(())
    });
    assert!(
        again.is_some(),
        "tags not re-applied after restart:\n{}",
        s.log()
    );
    assert_eq!(port_tag(&dev_b), tag_b.to_string());
    assert_eq!(
        s.dnsmasq_pid(&s.net_b),
        pid_b,
        "dnsmasq adopted, not restarted"
    );
    assert_eq!(lease(&client_b, 10), "203.0.113.10", "{}", s.log());

    // Removing the networks removes their DHCP ports from the bridge.
    s.write_doc(&json!({"networks": []}));
    let gone = wait_for(Duration::from_secs(15), || {
        let ports = vsctl(&["list-ports", &s.bridge]);
        (!ports.contains("tap") && s.dnsmasq_pid(&s.net_b).is_none()).then_some(())
    });
    assert!(gone.is_some(), "DHCP ports left:\n{}", s.log());
    drop(client_a);
    drop(client_b);
}
