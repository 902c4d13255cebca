//! Render time of all dnsmasq files and the argv (`render_all`, sanitizing
//! included) for large networks. Run in release:
//! `cargo run --release -p leasehold-dnsmasq --example bench_render`

use std::time::{Duration, Instant};

use leasehold_core::model::Network;
use leasehold_dnsmasq::config::DnsmasqConfig;
use leasehold_dnsmasq::render::{render_all, RuntimeFacts};
use serde_json::{json, Value};

/// A dual-stack network of `ports` ports; every fifth port has extra options.
fn network(id: usize, ports: usize) -> Network {
    let net_id = format!("{id:08x}-0000-4000-8000-000000000000");
    let mut list: Vec<Value> = Vec::with_capacity(ports + 2);
    list.push(
        json!({"id": format!("router-{id}"), "mac_address": "fa:16:3e:ff:ff:01",
        "device_owner": "network:router_interface",
        "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.1"}]}),
    );
    list.push(
        json!({"id": format!("dhcp-{id}"), "mac_address": "fa:16:3e:ff:ff:02",
        "device_owner": "network:dhcp",
        "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"},
                      {"subnet_id": "s6", "ip_address": "2001:db8::2"}]}),
    );
    for i in 0..ports {
        let n = i + 10;
        let v4 = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let v6 = format!("2001:db8::{:x}", n);
        let mac = format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255
        );
        let mut p = json!({
            "id": format!("{i:08x}-1111-4111-8111-{id:012x}"),
            "mac_address": mac, "device_owner": "compute:nova", "device_id": "vm",
            "fixed_ips": [{"subnet_id": "s4", "ip_address": v4},
                          {"subnet_id": "s6", "ip_address": v6}],
            "dns_assignment": [
                {"hostname": format!("vm-{i}"), "ip_address": v4, "fqdn": format!("vm-{i}.example.org.")},
                {"hostname": format!("vm-{i}"), "ip_address": v6, "fqdn": format!("vm-{i}.example.org.")}],
        });
        if i % 5 == 0 {
            p["extra_dhcp_opts"] = json!([
                {"opt_name": "tag:ipxe,bootfile-name", "opt_value": "http://boot/ipxe", "ip_version": 4},
                {"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6},
            ]);
        }
        list.push(p);
    }
    let v = json!({"id": net_id, "mtu": 1450,
        "subnets": [
            {"id": "s4", "cidr": "10.0.0.0/8", "ip_version": 4, "gateway_ip": "10.0.0.1",
             "dns_nameservers": ["10.0.0.53"], "host_routes": [{"destination": "172.16.0.0/12", "nexthop": "10.0.0.254"}]},
            {"id": "s6", "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": "2001:db8::1",
             "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}],
        "ports": list});
    match Network::from_json_value(v) {
        Ok((n, _)) => n,
        Err(e) => panic!("bench network does not parse: {e}"),
    }
}

/// CPU time of this thread: unlike wall time, not inflated when other
/// processes take the CPU (the machine running this may be busy).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One case's figures per round (all networks rendered once).
struct Figures {
    wall_min: Duration,
    wall_median: Duration,
    cpu_min: Duration,
    cpu_median: Duration,
    bytes: usize,
}

/// Renders every network `rounds` times.
fn time(nets: &[Network], config: &DnsmasqConfig, facts: &RuntimeFacts, rounds: usize) -> Figures {
    let mut wall = Vec::with_capacity(rounds);
    let mut cpu = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let (start, start_cpu) = (Instant::now(), thread_cpu_time());
        bytes = 0;
        for n in nets {
            let r = render_all(n, config, facts);
            bytes += r.hosts.len() + r.addn_hosts.len() + r.opts.len() + r.leases.len();
            std::hint::black_box(&r);
        }
        wall.push(start.elapsed());
        cpu.push(thread_cpu_time().saturating_sub(start_cpu));
    }
    wall.sort();
    cpu.sort();
    Figures {
        wall_min: wall[0],
        wall_median: wall[wall.len() / 2],
        cpu_min: cpu[0],
        cpu_median: cpu[cpu.len() / 2],
        bytes,
    }
}

fn main() {
    let config = DnsmasqConfig {
        enable_isolated_metadata: true,
        ..Default::default()
    };
    let facts = RuntimeFacts {
        interface_name: "tap0".into(),
        dnsmasq_host_tag_support: Some(true),
        ..Default::default()
    };
    let cases: Vec<(&str, Vec<Network>, usize)> = vec![
        ("1 network x 1,000 ports", vec![network(1, 1_000)], 50),
        ("1 network x 10,000 ports", vec![network(2, 10_000)], 20),
        (
            "1,000 networks x 10 ports",
            (0..1_000).map(|i| network(i, 10)).collect(),
            20,
        ),
    ];
    println!(
        "render_all (sanitize + host, addn_hosts, opts, leases, argv), release build, per round"
    );
    println!(
        "{:<27} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "case", "wall min", "wall med", "cpu min", "cpu med", "output"
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for (name, nets, rounds) in cases {
        let f = time(&nets, &config, &facts, rounds);
        println!(
            "{:<27} {:>10} {:>10} {:>10} {:>10} {:>5} KiB",
            name,
            ms(f.wall_min),
            ms(f.wall_median),
            ms(f.cpu_min),
            ms(f.cpu_median),
            f.bytes / 1024
        );
    }
}
