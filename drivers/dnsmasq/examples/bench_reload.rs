//! Figures for the process side of the dnsmasq driver (run as root):
//!
//! ```text
//! cargo run --release -p leasehold-dnsmasq --example bench_reload
//! ```
//!
//! 1. reload-to-SIGHUP: `reload_allocations` after one port changed, on a
//!    network of 1,000 and 10,000 ports (render + release check + atomic
//!    rewrite of host/addn_hosts/opts + SIGHUP sent). The ports sit on a
//!    DHCPv6-stateful 2001:db8::/64: the IPv4 test ranges hold only 254 each.
//! 2. lease release: N DHCPv4 leases released through one socket from Rust
//!    vs one `dhcp_release` fork per lease (setns + exec, cheaper than
//!    Neutron's `ip netns exec`), each until dnsmasq's lease file is free of them.

use std::process::Command;
use std::time::{Duration, Instant};

use leasehold_core::driver::{DhcpDevice, DhcpDriver};
use leasehold_core::model::Network;
use leasehold_core::options::{Options, Origin};
use leasehold_dnsmasq::driver::{DnsmasqDriver, ProcessSettings, ReloadByRestart};
use leasehold_dnsmasq::monitor::{MonitorConfig, ProcessMonitor};
use leasehold_dnsmasq::release::{self, Release};
use serde_json::{json, Value};

const V4A: &str = "5b000000-0000-4000-8000-00000000000a";
const V4B: &str = "5b000000-0000-4000-8000-00000000000b";
const V6: &str = "5b000000-0000-4000-8000-000000000006";

fn sh(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "{args:?} failed");
}

struct Bench {
    net_id: String,
    ns: String,
    dev: String,
    dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let pid = std::process::id();
        let net_id = format!("{pid:08x}-0000-4000-8000-0000000be4c0");
        let b = Bench {
            ns: format!("qdhcp-{net_id}"),
            net_id,
            dev: "tapbench0000".into(),
            dir: tempfile::tempdir().unwrap(),
        };
        sh(&["ip", "netns", "add", &b.ns]);
        let ns = |a: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &b.ns];
            v.extend_from_slice(a);
            sh(&v);
        };
        ns(&[
            "ip",
            "link",
            "add",
            "name",
            &b.dev,
            "type",
            "veth",
            "peer",
            "name",
            "peerbench0",
        ]);
        ns(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.accept_dad=0", b.dev),
        ]);
        ns(&["ip", "addr", "add", "198.51.100.2/24", "dev", &b.dev]);
        ns(&["ip", "addr", "add", "203.0.113.2/24", "dev", &b.dev]);
        ns(&[
            "ip",
            "addr",
            "add",
            "2001:db8::2/64",
            "dev",
            &b.dev,
            "nodad",
        ]);
        ns(&["ip", "link", "set", "dev", &b.dev, "up"]);
        ns(&["ip", "link", "set", "dev", "peerbench0", "up"]);
        ns(&["ip", "link", "set", "dev", "lo", "up"]);
        b
    }

    fn driver(&self, monitor: &ProcessMonitor) -> DnsmasqDriver {
        let mut o = Options::new();
        o.declare(&leasehold_dnsmasq::driver::ALL_OPTIONS);
        o.set(
            "DEFAULT",
            "dhcp_confs",
            self.dir.path().display().to_string(),
            Origin::Program,
        );
        let settings = ProcessSettings {
            reload_by_restart: ReloadByRestart::Auto,
            ..Default::default()
        };
        DnsmasqDriver::from_options(&o, settings, monitor.clone()).unwrap()
    }

    fn device(&self) -> DhcpDevice {
        DhcpDevice {
            interface_name: self.dev.clone(),
            namespace: Some(self.ns.clone()),
            bridged: true,
            interface_ips: Default::default(),
        }
    }

    fn network(&self, ports: Vec<Value>) -> Network {
        let subnet = |id: &str, cidr: &str, v: u8, gw: &str| {
            let mut s = json!({"id": id, "cidr": cidr, "ip_version": v, "gateway_ip": gw, "enable_dhcp": true});
            if v == 6 {
                s["ipv6_address_mode"] = json!("dhcpv6-stateful");
                s["ipv6_ra_mode"] = json!("dhcpv6-stateful");
            }
            s
        };
        serde_json::from_value(json!({
            "id": self.net_id,
            "subnets": [subnet(V4A, "198.51.100.0/24", 4, "198.51.100.1"),
                        subnet(V4B, "203.0.113.0/24", 4, "203.0.113.1"),
                        subnet(V6, "2001:db8::/64", 6, "2001:db8::1")],
            "ports": ports,
        }))
        .unwrap()
    }

    fn leases_path(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.net_id).join("leases")
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: a process in the namespace this program made.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn mac(i: u32) -> String {
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn v6_addr(v: u32) -> String {
    format!("2001:db8::{:x}:{:x}", v >> 16, v & 0xffff)
}

fn v6_port(i: u32, shift: u32) -> Value {
    json!({"id": format!("{i:08x}-0000-4000-8000-000000000006"), "mac_address": mac(i),
           "device_owner": "compute:nova", "device_id": "vm",
           "fixed_ips": [{"subnet_id": V6, "ip_address": v6_addr(0x1000 + i + shift)}]})
}

fn v4_port(i: u32) -> Value {
    let (subnet, prefix, host) = if i < 250 {
        (V4A, "198.51.100", 3 + i)
    } else {
        (V4B, "203.0.113", 3 + i - 250)
    };
    json!({"id": format!("{i:08x}-0000-4000-8000-000000000004"), "mac_address": mac(0x10000 + i),
           "device_owner": "compute:nova", "device_id": "vm",
           "fixed_ips": [{"subnet_id": subnet, "ip_address": format!("{prefix}.{host}")}]})
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench_reload(n: u32) {
    let b = Bench::new();
    let mon = ProcessMonitor::new(MonitorConfig::default());
    let driver = b.driver(&mon);
    let ports: Vec<Value> = (0..n).map(|i| v6_port(i, 0)).collect();
    driver
        .enable(&b.network(ports.clone()), &b.device())
        .await
        .unwrap();
    let mut times = Vec::new();
    for round in 1..=7u32 {
        let mut ports = ports.clone();
        ports[(round * 7919 % n) as usize] = v6_port(round * 7919 % n, 0x100000 + round);
        let net = b.network(ports);
        let t = Instant::now();
        driver.reload_allocations(&net, &b.device()).await.unwrap();
        times.push(t.elapsed());
    }
    let c = mon.counters().snapshot();
    assert_eq!(c.sighups, 7, "every reload should have sent SIGHUP");
    assert!(driver.active(&b.network(vec![]).id).await, "dnsmasq died");
    println!(
        "reload-to-SIGHUP, {n:>6} ports: median {:>8.2?}  min {:>8.2?}  max {:>8.2?}  (7 reloads, one port changed each)",
        median(times.clone()),
        times.iter().min().unwrap(),
        times.iter().max().unwrap()
    );
    driver.disable(&b.network(vec![]).id, false).await.unwrap();
}

fn wait_gone(path: &std::path::Path, releases: &[Release], limit: Duration) -> bool {
    let t = Instant::now();
    loop {
        let now = release::parse_leases(&release::read_leases_file(path));
        if releases.iter().all(|r| !now.by_ip.contains_key(&r.ip())) {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

async fn bench_release(n: u32) {
    let b = Bench::new();
    let mon = ProcessMonitor::new(MonitorConfig::default());
    let driver = b.driver(&mon);
    let ports: Vec<Value> = (0..n).map(v4_port).collect();
    let net = b.network(ports);
    let releases = |text: &str| -> Vec<Release> {
        let leases = release::parse_leases(text);
        leases
            .by_ip
            .iter()
            .filter_map(|(ip, l)| match ip {
                std::net::IpAddr::V4(v4) => Some(Release::V4 {
                    ip: *v4,
                    mac: l.iaid.clone(),
                    client_id: None,
                }),
                _ => None,
            })
            .collect()
    };

    // Rust: one socket, all packets, then until dnsmasq has dropped them all.
    driver.enable(&net, &b.device()).await.unwrap();
    let text = release::read_leases_file(&b.leases_path());
    let todo = releases(&text);
    assert_eq!(
        todo.len(),
        n as usize,
        "bootstrap leases: {}",
        &text[..text.len().min(300)]
    );
    let (ns, dev, path) = (b.ns.clone(), b.dev.clone(), b.leases_path());
    let t = Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        release::release_and_confirm(Some(&ns), &dev, &path, todo)
    })
    .await
    .unwrap();
    let rust = t.elapsed();
    assert!(
        report.remaining.is_empty(),
        "left: {:?}",
        report.remaining.len()
    );

    // Fork: one dhcp_release per lease, then until all are gone.
    driver.restart(&net, &b.device()).await.unwrap();
    let todo = releases(&release::read_leases_file(&b.leases_path()));
    assert_eq!(todo.len(), n as usize, "bootstrap leases after restart");
    let t = Instant::now();
    for r in &todo {
        release::fork_dhcp_release(Some(&b.ns), &b.dev, r).unwrap();
    }
    let sent = t.elapsed();
    let gone = wait_gone(&b.leases_path(), &todo, Duration::from_secs(10));
    let fork = t.elapsed();
    assert!(gone, "fork path left leases");
    println!(
        "release {n} DHCPv4 leases until gone from the lease file: Rust one socket {:>9.2?} (sending {:.2?}, {} packets, {:.1} µs/lease)   fork dhcp_release {:>9.2?} (forks alone {:.2?}, {:.2} ms/lease)   ×{:.0}",
        rust,
        report.send_time,
        report.sent_v4,
        rust.as_secs_f64() * 1e6 / n as f64,
        fork,
        sent,
        fork.as_secs_f64() * 1e3 / n as f64,
        fork.as_secs_f64() / rust.as_secs_f64()
    );
    driver.disable(&net.id, false).await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench_reload needs root (namespaces, dnsmasq)");
        std::process::exit(1);
    }
    for n in [1_000, 10_000] {
        bench_reload(n).await;
    }
    for n in [100, 500] {
        bench_release(n).await;
    }
}
