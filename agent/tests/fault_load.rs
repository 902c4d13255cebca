//! Load: many networks served at once (`LEASEHOLD_LOAD_NETWORKS`: CI sets
//! 500 (1,000 by hand); 200 when unset, so a developer's run stays short), then a DHCP client storm and a notification storm together. No
//! change may be lost (the host ends exactly as the server says, every added
//! port in its network's files) and no client may get an address that is
//! not its port's. The agent binary in `file://` mode, Linux bridge, real
//! dnsmasq and udhcpc.

mod fault_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_support::{tail, Net, Standalone};
use leasehold_testkit::{privileged, Client};

fn networks() -> usize {
    std::env::var("LEASEHOLD_LOAD_NETWORKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
fn fault_load_many_networks_client_and_notification_storms() {
    if !privileged("fault_load") {
        return;
    }
    let n = networks();
    let t0 = Instant::now();
    let mut s = Standalone::new("num_sync_threads = 8");
    let nets: Vec<Net> = (0..n).map(|i| Net::new((i % 200) as u8, 2)).collect();
    let all: Vec<&Net> = nets.iter().collect();
    s.write(&all);
    s.start();
    s.assert_converged(&all, Duration::from_secs(60 + n as u64 / 4));
    let up = t0.elapsed();
    eprintln!("fault_load: {n} networks served after {up:?}");

    // The storms: clients on some networks ask again and again while the
    // server adds a port to one network after another.
    let nets = Arc::new(Mutex::new(nets));
    let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
    let leases = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let nets = nets.clone();
            let wrong = wrong.clone();
            let leases = leases.clone();
            std::thread::spawn(move || {
                for round in 0..4 {
                    let i = (c * 131 + round * 17) % n;
                    let (bridge, mac, ip) = {
                        let nets = nets.lock().unwrap();
                        let net = &nets[i];
                        (net.bridge(), net.ports[0].0.clone(), net.ports[0].1.clone())
                    };
                    let client = Client::on_bridge(&bridge);
                    client.set_mac(&mac);
                    match client.udhcpc_once(10, 1) {
                        Some(l) if l.get("ip") == ip => {
                            leases.fetch_add(1, Ordering::Relaxed);
                        }
                        other => wrong.lock().unwrap().push(format!(
                            "network {i} port {mac}: wanted {ip}, got {:?}",
                            other.map(|l| l.get("ip").to_string())
                        )),
                    }
                }
            })
        })
        .collect();
    let changes = 200.min(n);
    let t1 = Instant::now();
    for k in 0..changes {
        let mut nets = nets.lock().unwrap();
        let i = (k * 7919) % n;
        nets[i].add_port((i % 200) as u8);
        let all: Vec<&Net> = nets.iter().collect();
        s.write(&all);
        drop(nets);
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "fault_load: {changes} changes written in {:?}",
        t1.elapsed()
    );
    for c in clients {
        c.join().expect("client thread");
    }
    let wrong = wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "leases answered wrongly or not at all:\n{}",
        wrong.join("\n")
    );

    let nets = nets.lock().unwrap();
    let all: Vec<&Net> = nets.iter().collect();
    s.assert_converged(&all, Duration::from_secs(120));
    eprintln!(
        "fault_load: converged {:?} after the storm began; {} storm leases right",
        t1.elapsed(),
        leases.load(Ordering::Relaxed)
    );
    // The agent's log is kept for reading the figures (target/fault_load_agent.log).
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fault_load_agent.log"),
        s.log(),
    );
    // A port added in the storm is served.
    let i = (changes - 1) * 7919 % n;
    let last = nets[i].ports.len() - 1;
    s.assert_lease(&nets[i], last);
    assert!(s.alive(), "{}", tail(&s.log(), 20));
}
