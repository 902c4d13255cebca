//! Test fixture for the privileged tests: a server namespace `qdhcp-<net>`
//! and a client namespace joined by a veth pair (no root-namespace devices),
//! a dnsmasq driver whose config dir is a temporary directory, and a real
//! DHCP client (busybox udhcpc) in the client namespace.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use leasehold_core::driver::DhcpDevice;
use leasehold_core::model::{Id, Network};
use leasehold_core::options::{Options, Origin};
use leasehold_dnsmasq::driver::{DnsmasqDriver, ProcessSettings, ReloadByRestart};
use leasehold_dnsmasq::monitor::{MonitorConfig, ProcessMonitor};
use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The server's address on the test subnet.
pub const SERVER_IP: &str = "198.51.100.2";

pub use leasehold_testkit::{privileged, sh};

/// One DHCP event as the client script saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lease {
    pub event: String,
    pub vars: BTreeMap<String, String>,
}

impl Lease {
    pub fn get(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or("")
    }
}

pub struct Fixture {
    pub net_id: String,
    pub server_ns: String,
    pub client_ns: String,
    pub server_dev: String,
    pub client_dev: String,
    pub dir: tempfile::TempDir,
    pub script: PathBuf,
    pub log: PathBuf,
    children: Vec<Child>,
}

impl Fixture {
    /// Namespaces, veth, addresses. `v6` adds 2001:db8::2/64 on the server end.
    pub fn new(v6: bool) -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let net_id = format!("{pid:08x}-{n:04x}-4000-8000-00000000dcb0");
        let port_id = format!("{n:02x}{:08x}-0000-4000-8000-000000000002", pid);
        let server_dev = format!("tap{}", &port_id[..11]);
        let client_dev = format!("lhc{}x{n}", pid % 100000);
        let server_ns = format!("qdhcp-{net_id}");
        let client_ns = format!("lhcli-{pid}-{n}");
        let dir = tempfile::tempdir().expect("tempdir");
        let fx = Fixture {
            net_id,
            server_ns,
            client_ns,
            server_dev,
            client_dev,
            script: dir.path().join("udhcpc.sh"),
            log: dir.path().join("udhcpc.log"),
            dir,
            children: Vec::new(),
        };
        sh(&["ip", "netns", "add", &fx.server_ns]);
        sh(&["ip", "netns", "add", &fx.client_ns]);
        let (s, c) = (fx.server_ns.as_str(), fx.client_ns.as_str());
        sh(&[
            "ip",
            "link",
            "add",
            &fx.server_dev,
            "netns",
            s,
            "type",
            "veth",
            "peer",
            "name",
            &fx.client_dev,
            "netns",
            c,
        ]);
        let ns = |ns: &str, args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns];
            v.extend_from_slice(args);
            sh(&v);
        };
        ns(
            s,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{}.accept_dad=0", fx.server_dev),
            ],
        );
        ns(
            c,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{}.accept_dad=0", fx.client_dev),
            ],
        );
        ns(s, &["ip", "link", "set", "lo", "up"]);
        ns(c, &["ip", "link", "set", "lo", "up"]);
        ns(
            s,
            &[
                "ip",
                "addr",
                "add",
                &format!("{SERVER_IP}/24"),
                "dev",
                &fx.server_dev,
            ],
        );
        if v6 {
            ns(
                s,
                &[
                    "ip",
                    "addr",
                    "add",
                    "2001:db8::2/64",
                    "dev",
                    &fx.server_dev,
                    "nodad",
                ],
            );
        }
        ns(s, &["ip", "link", "set", &fx.server_dev, "up"]);
        ns(c, &["ip", "link", "set", &fx.client_dev, "up"]);
        let script = format!(
            "#!/bin/sh\n\
             case \"$1\" in\n\
               deconfig) ip -4 addr flush dev \"$interface\" ;;\n\
               bound|renew) ip -4 addr flush dev \"$interface\"; ip addr add \"$ip/${{mask:-24}}\" dev \"$interface\" ;;\n\
             esac\n\
             echo \"event=$1|ip=$ip|router=$router|dns=$dns|domain=$domain|mtu=$mtu|subnet=$subnet|serverid=$serverid|lease=$lease|ntpsrv=$ntpsrv\" >> {}\n",
            fx.log.display()
        );
        std::fs::write(&fx.script, script).unwrap();
        sh(&["chmod", "755", &fx.script.display().to_string()]);
        fx
    }

    pub fn confs(&self) -> PathBuf {
        self.dir.path().join("dhcp")
    }

    pub fn conf_file(&self, name: &str) -> PathBuf {
        self.confs().join(&self.net_id).join(name)
    }

    pub fn id(&self) -> Id {
        Id::new(self.net_id.clone()).unwrap()
    }

    pub fn options(&self) -> Options {
        let mut o = Options::new();
        o.declare(&leasehold_dnsmasq::driver::ALL_OPTIONS);
        o.set(
            "DEFAULT",
            "dhcp_confs",
            self.confs().display().to_string(),
            Origin::Program,
        );
        o
    }

    pub fn driver(&self, reload: ReloadByRestart, monitor: &ProcessMonitor) -> DnsmasqDriver {
        let settings = ProcessSettings {
            reload_by_restart: reload,
            ..ProcessSettings::default()
        };
        DnsmasqDriver::from_options(&self.options(), settings, monitor.clone()).unwrap()
    }

    pub fn device(&self) -> DhcpDevice {
        DhcpDevice {
            interface_name: self.server_dev.clone(),
            namespace: Some(self.server_ns.clone()),
            bridged: true,
            interface_ips: BTreeMap::new(),
        }
    }

    /// A network with a v4 subnet (and optionally a stateful v6 one), the DHCP
    /// port, and `ports` (JSON port dicts).
    pub fn network(&self, ports: Vec<Value>, v6: bool) -> Network {
        let mut subnets = vec![json!({
            "id": "5b000000-0000-4000-8000-000000000004", "cidr": "198.51.100.0/24",
            "ip_version": 4, "gateway_ip": "198.51.100.1", "enable_dhcp": true,
            "dns_nameservers": ["203.0.113.53", "203.0.113.54"]
        })];
        let mut dhcp_ips = vec![
            json!({"subnet_id": "5b000000-0000-4000-8000-000000000004", "ip_address": SERVER_IP}),
        ];
        if v6 {
            subnets.push(json!({
                "id": "5b000000-0000-4000-8000-000000000006", "cidr": "2001:db8::/64",
                "ip_version": 6, "gateway_ip": "2001:db8::1", "enable_dhcp": true,
                "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful",
                "dns_nameservers": ["2001:db8::53"]
            }));
            dhcp_ips.push(json!({"subnet_id": "5b000000-0000-4000-8000-000000000006", "ip_address": "2001:db8::2"}));
        }
        let mut all = vec![json!({
            "id": "d0000000-0000-4000-8000-000000000001", "mac_address": "fa:16:3e:00:00:02",
            "device_owner": "network:dhcp", "device_id": "dhcp-test", "fixed_ips": dhcp_ips
        })];
        all.extend(ports);
        serde_json::from_value(json!({
            "id": self.net_id, "mtu": 1400, "subnets": subnets, "ports": all
        }))
        .unwrap()
    }

    pub fn set_client_mac(&self, mac: &str) {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.client_ns,
            "ip",
            "link",
            "set",
            &self.client_dev,
            "address",
            mac,
        ]);
    }

    fn events(&self) -> Vec<Lease> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut vars = BTreeMap::new();
                for kv in l.split('|') {
                    if let Some((k, v)) = kv.split_once('=') {
                        vars.insert(k.to_string(), v.trim().to_string());
                    }
                }
                Lease {
                    event: vars.get("event").cloned().unwrap_or_default(),
                    vars,
                }
            })
            .collect()
    }

    /// Runs `udhcpc -q -n` once; the bound lease, or `None` when it got none.
    pub fn udhcpc_once(&self, tries: u32, timeout_s: u32) -> Option<Lease> {
        let before = self.events().len();
        let status = Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "udhcpc", "-f", "-q", "-n"])
            .args(["-i", &self.client_dev, "-s"])
            .arg(&self.script)
            .args([
                "-t",
                &tries.to_string(),
                "-T",
                &timeout_s.to_string(),
                "-A",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("udhcpc");
        if !status.success() {
            return None;
        }
        self.events()
            .into_iter()
            .skip(before)
            .rev()
            .find(|e| e.event == "bound")
    }

    /// Starts a long-running udhcpc (renews on SIGUSR1); returns its pid.
    pub fn udhcpc_daemon(&mut self) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "udhcpc", "-f"])
            .args(["-i", &self.client_dev, "-s"])
            .arg(&self.script)
            .args(["-t", "10", "-T", "1", "-A", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udhcpc");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits up to `timeout` for a `bound`/`renew` event after index `from` that satisfies `pred`.
    pub fn wait_event(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Lease) -> bool,
    ) -> Option<Lease> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().skip(from).find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn event_count(&self) -> usize {
        self.events().len()
    }

    /// The pid of the dnsmasq the driver runs for this network.
    pub fn dnsmasq_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.conf_file("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn leases_text(&self) -> String {
        std::fs::read_to_string(self.conf_file("leases")).unwrap_or_default()
    }
}

/// A VM port dict on the test subnet.
pub fn port(id_n: u32, mac: &str, ip: &str) -> Value {
    json!({
        "id": format!("{id_n:08x}-0000-4000-8000-0000000000aa"),
        "mac_address": mac, "device_owner": "compute:nova", "device_id": "vm",
        "fixed_ips": [{"subnet_id": "5b000000-0000-4000-8000-000000000004", "ip_address": ip}]
    })
}

/// A monitor that respawns at once, with the default 60 s safety poll.
pub fn monitor() -> ProcessMonitor {
    ProcessMonitor::new(MonitorConfig::default())
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.server_ns, &self.client_ns] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: signalling a process inside a namespace this test made.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        // Reap it if it was reparented to us (we are a subreaper).
                        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
