//! The isolated-metadata proxy: haproxy in the network's namespace answers
//! 169.254.169.254 for a client on an isolated subnet and forwards to the
//! metadata socket with X-Neutron-Network-ID (file:// mode, Linux bridge).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use leasehold_testkit::{kill_pid_file, privileged, sh_quiet, wait_for, Client};
use serde_json::json;

/// Answers each request on the metadata socket with the network id header it carried.
fn metadata_agent(socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut network = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line
                    .to_ascii_lowercase()
                    .strip_prefix("x-neutron-network-id:")
                {
                    network = v.trim().to_string();
                }
                line.clear();
            }
            let mut stream = stream;
            let body = format!("network={network}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn haproxy_serves_metadata_for_an_isolated_subnet() {
    if !privileged("metadata_e2e") {
        return;
    }
    assert!(
        Path::new("/usr/sbin/haproxy").exists(),
        "haproxy must be installed (.ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let net = uuid::Uuid::new_v4().to_string();
    let socket = dir.path().join("metadata_proxy");
    metadata_agent(&socket);
    let state = dir.path().join("state");
    std::fs::write(
        dir.path().join("agent.ini"),
        format!(
            "[DEFAULT]\ntransport_url = file://networks.json\nstate_path = {}\ninterface_driver = linuxbridge\nenable_isolated_metadata = true\nmetadata_proxy_socket = {}\n",
            state.display(),
            socket.display()
        ),
    )
    .unwrap();
    let port = json!({"id": format!("{}-p1", &net[..13]), "mac_address": "fa:16:3e:4d:e7:01", "device_owner": "compute:nova",
                      "fixed_ips": [{"subnet_id": "md-subnet", "ip_address": "198.51.100.40"}]});
    let doc = |ports: serde_json::Value| json!({"networks": [{"id": net, "subnets": [{"id": "md-subnet", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1"}], "ports": ports}]});
    std::fs::write(
        dir.path().join("networks.json"),
        doc(json!([port])).to_string(),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
            .arg("--config-file")
            .arg(dir.path().join("agent.ini"))
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let cleanup = Cleanup(net.clone(), state.clone());
    let pid_file = state
        .join("external/pids")
        .join(format!("{net}.pid.haproxy"));
    assert!(
        wait_for(Duration::from_secs(30), || pid_file.exists().then_some(())).is_some(),
        "haproxy not started:\n{}",
        agent_log()
    );
    let cfg = std::fs::read_to_string(state.join("ns-metadata-proxy").join(format!("{net}.conf")))
        .unwrap();
    assert!(
        cfg.contains(&format!(
            "http-request set-header X-Neutron-Network-ID {net}"
        )),
        "{cfg}"
    );
    assert!(cfg.contains("bind 169.254.169.254:80"), "{cfg}");

    // The client learns the metadata route from DHCP (option 121) and reaches the proxy.
    let client = Client::on_bridge(&format!("brq{}", &net[..11]));
    client.set_mac("fa:16:3e:4d:e7:01");
    let lease = client
        .udhcpc_once(10, 1)
        .unwrap_or_else(|| panic!("no lease:\n{}", agent_log()));
    assert_eq!(lease.get("ip"), "198.51.100.40");
    let routes = lease.get("staticroutes").to_string();
    let via = routes
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "169.254.169.254/32")
        .map(|w| w[1].to_string());
    let via = via.unwrap_or_else(|| panic!("no metadata route in {routes:?}"));
    client.exec(&["ip", "addr", "add", "198.51.100.40/24", "dev", &client.dev]);
    client.exec(&["ip", "route", "add", "169.254.169.254/32", "via", &via]);
    let body = client.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        "http://169.254.169.254/latest/meta-data/",
    ]);
    assert_eq!(body, format!("network={net}"));

    // The network goes: so do the proxy and its configuration.
    std::fs::write(
        dir.path().join("networks.json"),
        json!({"networks": []}).to_string(),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || (!pid_file.exists()
            && !state
                .join("ns-metadata-proxy")
                .join(format!("{net}.conf"))
                .exists())
        .then_some(()))
        .is_some(),
        "{}",
        agent_log()
    );
    drop(cleanup);
}

/// Kills a leftover haproxy and dnsmasq and removes the namespace and bridge.
struct Cleanup(String, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid_file in [
            self.1
                .join("external/pids")
                .join(format!("{}.pid.haproxy", self.0)),
            self.1.join("dhcp").join(&self.0).join("pid"),
        ] {
            kill_pid_file(&pid_file);
        }
        sh_quiet(&["ip", "netns", "del", &format!("qdhcp-{}", self.0)]);
        sh_quiet(&["ip", "link", "del", &format!("brq{}", &self.0[..11])]);
    }
}
