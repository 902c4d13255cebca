//! A real dnsmasq started by the driver in `qdhcp-<net>`, a real udhcpc in a
//! client namespace: the exact lease and options, a changed IP after a reload,
//! a removed port's lease released at once, and a respawn after SIGKILL.

mod privileged_fixture;

use std::time::{Duration, Instant};

use leasehold_core::driver::DhcpDriver;
use leasehold_dnsmasq::driver::ReloadByRestart;
use privileged_fixture::{monitor, port, privileged, Fixture};

const MAC_A: &str = "fa:16:3e:aa:00:01";
const MAC_B: &str = "fa:16:3e:bb:00:02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gets_exact_lease_and_options_then_new_ip_after_reload() {
    if !privileged("client_gets_exact_lease_and_options_then_new_ip_after_reload") {
        return;
    }
    let mut fx = Fixture::new(false);
    fx.set_client_mac(MAC_A);
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.10")], false);
    driver.enable(&net, &fx.device()).await.unwrap();
    assert!(driver.active(&fx.id()).await);
    // The argv dnsmasq runs with is exactly the rendered one.
    let pid = fx.dnsmasq_pid().unwrap();
    let argv = leasehold_dnsmasq::process::cmdline(pid).unwrap();
    assert_eq!(argv[0], "dnsmasq");
    assert!(argv.contains(&format!("--pid-file={}", fx.conf_file("pid").display())));
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let tag = format!("PROCESS_TAG=dnsmasq-{}", fx.net_id);
    assert!(
        env.split(|b| *b == 0).any(|kv| kv == tag.as_bytes()),
        "PROCESS_TAG missing"
    );

    let first = fx.udhcpc_once(5, 1).expect("no lease");
    assert_eq!(first.get("ip"), "198.51.100.10");
    assert_eq!(first.get("router"), "198.51.100.1");
    assert_eq!(first.get("dns"), "203.0.113.53 203.0.113.54");
    assert_eq!(first.get("domain"), "openstacklocal");
    assert_eq!(first.get("mtu"), "1400");
    assert_eq!(first.get("subnet"), "255.255.255.0");
    assert_eq!(first.get("serverid"), "198.51.100.2");

    // A renewing client is NAKed after the port's IP changes, and rebinds to the new one.
    let udhcpc = fx.udhcpc_daemon();
    let from = fx.event_count();
    fx.wait_event(from, Duration::from_secs(10), |e| {
        e.event == "bound" && e.get("ip") == "198.51.100.10"
    })
    .expect("daemon client bound");
    let net2 = fx.network(vec![port(1, MAC_A, "198.51.100.11")], false);
    driver
        .reload_allocations(&net2, &fx.device())
        .await
        .unwrap();
    assert_eq!(
        fx.dnsmasq_pid(),
        Some(pid),
        "a plain reload keeps the process (SIGHUP)"
    );
    assert_eq!(mon.counters().snapshot().sighups, 1);
    let from = fx.event_count();
    // SAFETY: signalling the udhcpc this test started: SIGUSR1 = renew now.
    unsafe { libc::kill(udhcpc as i32, libc::SIGUSR1) };
    let renewed = fx
        .wait_event(from, Duration::from_secs(15), |e| {
            e.event == "bound" && !e.get("ip").is_empty()
        })
        .expect("no new lease after reload");
    assert_eq!(renewed.get("ip"), "198.51.100.11");

    driver.disable(&fx.id(), false).await.unwrap();
    assert!(!driver.active(&fx.id()).await);
    assert!(!fx.conf_file("").exists(), "config dir removed");
    assert!(
        leasehold_dnsmasq::process::proc_state(pid).is_none(),
        "dnsmasq stopped and reaped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_port_lease_released_and_address_reusable_at_once() {
    if !privileged("removed_port_lease_released_and_address_reusable_at_once") {
        return;
    }
    let fx = Fixture::new(false);
    fx.set_client_mac(MAC_A);
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.20")], false);
    driver.enable(&net, &fx.device()).await.unwrap();
    let lease = fx.udhcpc_once(5, 1).expect("no lease");
    assert_eq!(lease.get("ip"), "198.51.100.20");
    assert!(fx.leases_text().contains("198.51.100.20"));
    assert!(fx.leases_text().contains(MAC_A));

    // Port A goes, port B takes its address, in one reload.
    let net2 = fx.network(vec![port(2, MAC_B, "198.51.100.20")], false);
    driver
        .reload_allocations(&net2, &fx.device())
        .await
        .unwrap();
    assert!(
        !fx.leases_text().contains(MAC_A),
        "lease of the removed port still there:\n{}",
        fx.leases_text()
    );
    assert!(mon.counters().snapshot().releases_v4 >= 1);
    fx.set_client_mac(MAC_B);
    let lease = fx.udhcpc_once(3, 1).expect("new MAC got no lease");
    assert_eq!(lease.get("ip"), "198.51.100.20");
    driver.disable(&fx.id(), false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_dnsmasq_respawns_within_a_second() {
    if !privileged("sigkilled_dnsmasq_respawns_within_a_second") {
        return;
    }
    let fx = Fixture::new(false);
    fx.set_client_mac(MAC_A);
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.30")], false);
    driver.enable(&net, &fx.device()).await.unwrap();
    assert_eq!(
        fx.udhcpc_once(5, 1).expect("no lease").get("ip"),
        "198.51.100.30"
    );
    let old = fx.dnsmasq_pid().unwrap();
    let t0 = Instant::now();
    // SAFETY: killing the dnsmasq this test's driver started.
    unsafe { libc::kill(old, libc::SIGKILL) };
    let new = loop {
        if let Some(p) = fx.dnsmasq_pid().filter(|p| *p != old) {
            if leasehold_dnsmasq::process::is_active(p, &fx.net_id) {
                break p;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "no respawn within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = t0.elapsed();
    eprintln!("respawned {old} -> {new} in {took:?}");
    assert!(took < Duration::from_secs(1));
    // The pid file appears a moment before the monitor counts the respawn.
    let t1 = Instant::now();
    while mon.counters().snapshot().respawns == 0 && t1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(mon.counters().snapshot().respawns, 1);
    // The killed one was our (reparented) child and has been reaped: no zombie.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        leasehold_dnsmasq::process::proc_state(old),
        None,
        "zombie left behind"
    );
    assert_eq!(
        fx.udhcpc_once(5, 1)
            .expect("no lease after respawn")
            .get("ip"),
        "198.51.100.30"
    );
    assert_eq!(zombie_dnsmasq_children(), 0, "zombie dnsmasq children left");
    driver.disable(&fx.id(), false).await.unwrap();
    assert_eq!(
        mon.counters().snapshot().respawns,
        1,
        "disable must not respawn"
    );
}

/// Our children that are dnsmasq zombies (the daemon's reparented middle process, a dead daemon).
fn zombie_dnsmasq_children() -> usize {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if leasehold_dnsmasq::process::proc_state(pid) == Some('Z')
                && leasehold_dnsmasq::process::proc_comm(pid).as_deref() == Some("dnsmasq")
            {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_action_asks_the_agent_to_exit_instead_of_respawning() {
    if !privileged("exit_action_asks_the_agent_to_exit_instead_of_respawning") {
        return;
    }
    let fx = Fixture::new(false);
    let mon = leasehold_dnsmasq::monitor::ProcessMonitor::new(
        leasehold_dnsmasq::monitor::MonitorConfig {
            action: leasehold_dnsmasq::monitor::ChildAction::Exit,
            interval: None,
        },
    );
    let mut exits = mon.exit_requests();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.31")], false);
    driver.enable(&net, &fx.device()).await.unwrap();
    let pid = fx.dnsmasq_pid().unwrap();
    // SAFETY: killing the dnsmasq this test's driver started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tokio::time::timeout(Duration::from_secs(1), exits.changed())
        .await
        .expect("no exit request within 1 s")
        .unwrap();
    let req = exits.borrow().clone().unwrap();
    assert_eq!(req.uuid, fx.net_id);
    assert_eq!(req.service, "dnsmasq");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !driver.active(&fx.id()).await,
        "respawned although action = exit"
    );
    assert_eq!(mon.counters().snapshot().respawns, 0);
}
