//! End to end in the embedded `file://` mode: the agent binary, the Linux
//! bridge driver, real dnsmasq in a namespace, and a real DHCP client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasehold_testkit::{privileged, sh_quiet, wait_for, Client};
use serde_json::{json, Value};

/// One agent run over a temporary state directory and networks file.
struct Standalone {
    dir: tempfile::TempDir,
    net_id: String,
    agent: Option<Child>,
    metrics_port: u16,
}

impl Standalone {
    fn new() -> Standalone {
        let dir = tempfile::tempdir().unwrap();
        let net_id = uuid::Uuid::new_v4().to_string();
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = Standalone {
            dir,
            net_id,
            agent: None,
            metrics_port,
        };
        std::fs::write(
            s.dir.path().join("agent.ini"),
            format!(
                "[DEFAULT]\ntransport_url = file://networks.json\nstate_path = {}\ninterface_driver = linuxbridge\nhost = lh-e2e-{}\ndns_domain = e2e.test\nmetrics_listen = 127.0.0.1:{}\n[AGENT]\ncheck_child_processes_interval = 5\n",
                s.dir.path().join("state").display(),
                std::process::id(),
                s.metrics_port
            ),
        )
        .unwrap();
        s
    }

    fn port(&self, n: u32, ip: &str) -> Value {
        json!({"id": format!("{}-p{n}", &self.net_id[..13]), "mac_address": format!("fa:16:3e:e2:e0:{n:02x}"),
               "device_owner": "compute:nova", "device_id": format!("vm-{n}"),
               "fixed_ips": [{"subnet_id": "e2e-subnet-v4", "ip_address": ip}]})
    }

    fn write_networks(&self, ports: &[Value]) {
        self.write_networks_with(ports, &[]);
    }

    /// The network with its first subnet and `extra` subnets.
    fn write_networks_with(&self, ports: &[Value], extra: &[Value]) {
        let mut subnets = vec![
            json!({"id": "e2e-subnet-v4", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1",
                         "enable_dhcp": true, "dns_nameservers": ["198.51.100.53"]}),
        ];
        subnets.extend(extra.iter().cloned());
        let doc = json!({"networks": [{
            "id": self.net_id, "project_id": "e2e", "mtu": 1400,
            "subnets": subnets,
            "ports": ports
        }]});
        self.write_doc(&doc);
    }

    /// Addresses on the DHCP device, as `ip -o addr` in the namespace prints them.
    fn device_addresses(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.namespace(), "ip", "-o", "addr"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write_doc(&self, doc: &Value) {
        // Written whole and renamed, as an operator's tool should.
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
            .env_remove("RUST_LOG")
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

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("state/dhcp").join(&self.net_id)
    }

    fn namespace(&self) -> String {
        format!("qdhcp-{}", self.net_id)
    }

    fn bridge(&self) -> String {
        format!("brq{}", &self.net_id[..11])
    }

    /// The running dnsmasq's pid, if its pid file names a live dnsmasq of this network.
    fn dnsmasq_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.conf_dir().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        (!zombie && String::from_utf8_lossy(&cmdline).contains(&self.net_id)).then_some(pid)
    }

    /// One scrape of the metrics endpoint.
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn file_contains(&self, name: &str, text: &str) -> bool {
        std::fs::read_to_string(self.conf_dir().join(name)).is_ok_and(|c| c.contains(text))
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        self.stop();
        if let Some(pid) = self.dnsmasq_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        sh_quiet(&["ip", "netns", "del", &self.namespace()]);
        sh_quiet(&["ip", "link", "del", &self.bridge()]);
        for n in 0..4 {
            sh_quiet(&[
                "ip",
                "link",
                "del",
                &format!("tap{}", &format!("{}-p{n}", &self.net_id[..13])[..11]),
            ]);
        }
    }
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn standalone_serves_changes_survives_restart_and_cleans_up() {
    if !privileged("standalone_e2e") {
        return;
    }
    let mut s = Standalone::new();
    s.write_networks(&[s.port(1, "198.51.100.10")]);
    s.start();

    // The network comes up: namespace, dnsmasq, and a client gets exactly its lease.
    let pid = wait_for(Duration::from_secs(30), || s.dnsmasq_pid())
        .unwrap_or_else(|| panic!("dnsmasq did not start:\n{}", s.log()));
    assert!(exists(&PathBuf::from(format!(
        "/run/netns/{}",
        s.namespace()
    ))));
    let c1 = Client::on_bridge(&s.bridge());
    c1.set_mac("fa:16:3e:e2:e0:01");
    let lease = c1
        .udhcpc_once(10, 1)
        .unwrap_or_else(|| panic!("no lease:\n{}", s.log()));
    assert_eq!(lease.get("ip"), "198.51.100.10");
    assert_eq!(lease.get("router"), "198.51.100.1");
    assert_eq!(lease.get("dns"), "198.51.100.53");
    assert_eq!(lease.get("domain"), "e2e.test");
    assert_eq!(lease.get("mtu"), "1400");
    let metrics = s.metrics();
    assert!(metrics.contains("leasehold_networks 1\n"), "{metrics}");
    assert!(
        metrics.contains("leasehold_driver_calls_total{action=\"enable\"} 1\n"),
        "{metrics}"
    );

    // SIGHUP re-reads the configuration: the log level applies at once, other
    // changes are named as needing a restart.
    let ini = s.dir.path().join("agent.ini");
    let original = std::fs::read_to_string(&ini).unwrap();
    let mut text = original.clone();
    text.push_str("\n[DEFAULT]\ndebug = true\ndns_domain = other.test\n");
    std::fs::write(&ini, text).unwrap();
    let agent_pid = s.agent.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent_pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || s
            .log()
            .contains("log level changed")
            .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    assert!(
        s.log()
            .contains("only after a restart: [DEFAULT] dns_domain"),
        "{}",
        s.log()
    );
    std::fs::write(&ini, original).unwrap();

    // A changed port address and a new port are served after the file changes.
    s.write_networks(&[s.port(1, "198.51.100.20"), s.port(2, "198.51.100.21")]);
    assert!(
        wait_for(Duration::from_secs(10), || s
            .file_contains("host", "198.51.100.21")
            .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    let lease = c1.udhcpc_once(10, 1).expect("a lease after the change");
    assert_eq!(lease.get("ip"), "198.51.100.20");
    let c2 = Client::on_bridge(&s.bridge());
    c2.set_mac("fa:16:3e:e2:e0:02");
    assert_eq!(
        c2.udhcpc_once(10, 1)
            .expect("the new port's lease")
            .get("ip"),
        "198.51.100.21"
    );
    assert_eq!(
        s.dnsmasq_pid(),
        Some(pid),
        "a port change must not restart dnsmasq"
    );

    // A file that does not validate is refused whole; the last good state stays.
    s.write_doc(&json!({"networks": [{"id": s.net_id, "ports": [{"id": "x", "mac_address": "not-a-mac"}]}]}));
    assert!(
        wait_for(Duration::from_secs(5), || s
            .log()
            .contains("not-a-mac")
            .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    assert_eq!(
        c2.udhcpc_once(10, 1).expect("still served").get("ip"),
        "198.51.100.21"
    );

    // A second subnet restarts DHCP and puts the DHCP port's address on it on
    // the device; deleting that subnet takes exactly that address away again.
    let ports = [s.port(1, "198.51.100.20"), s.port(2, "198.51.100.21")];
    let second = json!({"id": "e2e-subnet-b", "cidr": "203.0.113.0/24", "ip_version": 4, "gateway_ip": null, "enable_dhcp": true});
    s.write_networks_with(&ports, &[second]);
    assert!(
        wait_for(Duration::from_secs(15), || s
            .device_addresses()
            .contains("203.0.113.")
            .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    let pid = wait_for(Duration::from_secs(10), || s.dnsmasq_pid())
        .expect("dnsmasq after the subnet change");
    s.write_networks(&ports);
    assert!(
        wait_for(Duration::from_secs(15), || (!s
            .device_addresses()
            .contains("203.0.113."))
        .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    assert!(
        s.device_addresses().contains("198.51.100."),
        "{}",
        s.device_addresses()
    );
    let pid = wait_for(Duration::from_secs(10), || s.dnsmasq_pid()).unwrap_or(pid);
    assert_eq!(
        c2.udhcpc_once(10, 1)
            .expect("first subnet still served")
            .get("ip"),
        "198.51.100.21"
    );

    // Restarting the agent with unchanged networks restarts no dnsmasq.
    s.write_networks(&[s.port(1, "198.51.100.20"), s.port(2, "198.51.100.21")]);
    std::thread::sleep(Duration::from_millis(800));
    s.stop();
    assert_eq!(s.dnsmasq_pid(), Some(pid), "SIGTERM leaves dnsmasq running");
    s.start();
    assert!(
        wait_for(Duration::from_secs(15), || s
            .log()
            .contains("agent running")
            .then_some(()))
        .is_some(),
        "{}",
        s.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.dnsmasq_pid(),
        Some(pid),
        "an unchanged network is adopted, not restarted:\n{}",
        s.log()
    );
    assert_eq!(
        c1.udhcpc_once(10, 1)
            .expect("served after restart")
            .get("ip"),
        "198.51.100.20"
    );

    // Removing the network removes its namespace, files, dnsmasq and (with
    // the clients gone) the bridge the agent made.
    drop(c1);
    drop(c2);
    s.write_doc(&json!({"networks": []}));
    let gone = wait_for(Duration::from_secs(15), || {
        (!exists(&PathBuf::from(format!("/run/netns/{}", s.namespace())))
            && !s.conf_dir().exists()
            && s.dnsmasq_pid().is_none()
            && !exists(&PathBuf::from(format!("/sys/class/net/{}", s.bridge()))))
        .then_some(())
    });
    assert!(gone.is_some(), "network not torn down:\n{}", s.log());
    assert!(std::fs::metadata(format!("/proc/{pid}")).is_err() || s.dnsmasq_pid().is_none());
}
