//! Adoption of a running dnsmasq by a new driver (an agent restart, or a
//! switch from neutron-dhcp-agent), and safety against pid files that name
//! an unrelated process.

mod privileged_fixture;

use std::process::Command;
use std::time::Duration;

use leasehold_core::driver::DhcpDriver;
use leasehold_core::model::Network;
use leasehold_dnsmasq::driver::ReloadByRestart;
use leasehold_dnsmasq::process;
use privileged_fixture::{monitor, port, privileged, Fixture};

const MAC_A: &str = "fa:16:3e:ad:00:01";
const MAC_B: &str = "fa:16:3e:ad:00:02";

/// Starts the network's dnsmasq with a driver and monitor that are then
/// dropped (the agent "exits"); returns the pid left running.
async fn started_by_an_agent_that_exits(fx: &Fixture, net: &Network) -> i32 {
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    driver.enable(net, &fx.device()).await.unwrap();
    fx.dnsmasq_pid().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_driver_adopts_running_dnsmasq_and_reloads_only_on_change() {
    if !privileged("new_driver_adopts_running_dnsmasq_and_reloads_only_on_change") {
        return;
    }
    let fx = Fixture::new(false);
    fx.set_client_mac(MAC_A);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.70")], false);
    let pid = started_by_an_agent_that_exits(&fx, &net).await;
    assert!(process::is_active(pid, &fx.net_id));
    let lease_before = std::fs::read(fx.conf_file("leases")).unwrap();

    // Same network: same pid, no signal, lease file untouched.
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    driver.enable(&net, &fx.device()).await.unwrap();
    assert_eq!(fx.dnsmasq_pid(), Some(pid), "restarted instead of adopted");
    let c = mon.counters().snapshot();
    assert_eq!((c.adoptions, c.sighups, c.reload_restarts), (1, 0, 0));
    assert_eq!(std::fs::read(fx.conf_file("leases")).unwrap(), lease_before);
    assert_eq!(
        mon.registered(),
        vec![fx.net_id.clone()],
        "adopted process not monitored"
    );

    // Changed network: files rewritten, one SIGHUP, still the same process,
    // and the new port is served.
    let net2 = fx.network(
        vec![
            port(1, MAC_A, "198.51.100.70"),
            port(2, MAC_B, "198.51.100.71"),
        ],
        false,
    );
    driver.enable(&net2, &fx.device()).await.unwrap();
    assert_eq!(fx.dnsmasq_pid(), Some(pid));
    assert_eq!(mon.counters().snapshot().sighups, 1);
    let hosts = std::fs::read_to_string(fx.conf_file("host")).unwrap();
    assert!(hosts.contains(MAC_B), "{hosts}");
    fx.set_client_mac(MAC_B);
    assert_eq!(
        fx.udhcpc_once(5, 1).expect("no lease").get("ip"),
        "198.51.100.71"
    );

    // The adopted process is watched like our own: kill it, it comes back.
    // SAFETY: the dnsmasq this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let t0 = std::time::Instant::now();
    while fx.dnsmasq_pid() == Some(pid) || !driver.active(&fx.id()).await {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "adopted dnsmasq not respawned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    driver.disable(&fx.id(), false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_file_naming_an_unrelated_process_never_kills_it() {
    if !privileged("pid_file_naming_an_unrelated_process_never_kills_it") {
        return;
    }
    let fx = Fixture::new(false);
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.80")], false);
    // Two bystanders: a plain sleep, and one whose argv even mentions the network id.
    let mut plain = Command::new("sleep").arg("100").spawn().unwrap();
    let mut sneaky = Command::new("sh")
        .args(["-c", "sleep 100", &fx.net_id])
        .spawn()
        .unwrap();
    std::fs::create_dir_all(fx.conf_file("")).unwrap();
    for bystander in [&plain, &sneaky] {
        std::fs::write(fx.conf_file("pid"), format!("{}\n", bystander.id())).unwrap();
        assert!(!driver.active(&fx.id()).await);
        driver.disable(&fx.id(), true).await.unwrap();
        std::fs::write(fx.conf_file("pid"), format!("{}\n", bystander.id())).unwrap();
        driver.restart(&net, &fx.device()).await.unwrap();
        driver.disable(&fx.id(), false).await.unwrap();
        std::fs::create_dir_all(fx.conf_file("")).unwrap();
        std::fs::write(fx.conf_file("pid"), format!("{}\n", bystander.id())).unwrap();
        driver.enable(&net, &fx.device()).await.unwrap();
        let served_by = fx.dnsmasq_pid().unwrap();
        assert_ne!(served_by, bystander.id() as i32);
        assert!(driver.active(&fx.id()).await);
        driver.disable(&fx.id(), false).await.unwrap();
        std::fs::create_dir_all(fx.conf_file("")).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        plain.try_wait().unwrap().is_none(),
        "unrelated sleep was killed"
    );
    assert!(
        sneaky.try_wait().unwrap().is_none(),
        "process mentioning the id was killed"
    );
    plain.kill().unwrap();
    sneaky.kill().unwrap();
    let _ = plain.wait();
    let _ = sneaky.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_running_without_its_pid_file_is_taken_over_and_stopped_on_disable() {
    if !privileged("dnsmasq_running_without_its_pid_file_is_taken_over_and_stopped_on_disable") {
        return;
    }
    let fx = Fixture::new(false);
    fx.set_client_mac(MAC_A);
    let net = fx.network(vec![port(1, MAC_A, "198.51.100.90")], false);
    let pid = started_by_an_agent_that_exits(&fx, &net).await;
    // The state directory's pid file is wiped while dnsmasq runs; a new
    // start could not bind (the old process holds the sockets).
    std::fs::remove_file(fx.conf_file("pid")).unwrap();
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    driver.enable(&net, &fx.device()).await.unwrap();
    assert_eq!(fx.dnsmasq_pid(), Some(pid), "pid file not given back");
    assert!(process::is_active(pid, &fx.net_id));
    assert_eq!(mon.counters().snapshot().adoptions, 1);
    assert_eq!(
        fx.udhcpc_once(5, 1).expect("no lease").get("ip"),
        "198.51.100.90"
    );

    // Wiped again, then the network goes: the process goes with it.
    std::fs::remove_file(fx.conf_file("pid")).unwrap();
    driver.disable(&fx.id(), false).await.unwrap();
    let t0 = std::time::Instant::now();
    while process::is_active(pid, &fx.net_id) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "dnsmasq outlived its network"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
