//! dnsmasq 2.90 dies on SIGHUP once its hosts file has had `set:<tag>` lines.
//! The driver reloads such networks by a quick controlled restart instead, and
//! the monitor respawns a dnsmasq that dies anyway. Both are shown here with a
//! real client that keeps asking for leases while the network changes.

mod privileged_fixture;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leasehold_core::driver::DhcpDriver;
use leasehold_dnsmasq::driver::{DnsmasqProbe, ReloadByRestart};
use privileged_fixture::{monitor, port, privileged, Fixture};
use serde_json::{json, Value};

const MAC: &str = "fa:16:3e:dd:00:01";
const IP: &str = "198.51.100.40";

fn with_opts(mut p: Value) -> Value {
    p["extra_dhcp_opts"] =
        json!([{"opt_name": "ntp-server", "opt_value": "203.0.113.123", "ip_version": 4}]);
    p
}

/// The network at step `i`: the client's port plus `i` other ports, all with extra options.
fn ports(i: u32) -> Vec<Value> {
    let mut v = vec![with_opts(port(1, MAC, IP))];
    for k in 0..i {
        v.push(with_opts(port(
            100 + k,
            &format!("fa:16:3e:cc:00:{:02x}", k),
            &format!("198.51.100.{}", 60 + k),
        )));
    }
    v
}

struct Attempt {
    end: Instant,
    ok: bool,
}

/// Runs `udhcpc -q -n -t 1 -T 1` in a loop until stopped.
fn client_loop(fx: Arc<Fixture>, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Attempt>>>) {
    while !stop.load(Ordering::SeqCst) {
        let ok = fx
            .udhcpc_once(1, 1)
            .is_some_and(|l| l.get("ip") == IP && l.get("ntpsrv") == "203.0.113.123");
        log.lock().unwrap().push(Attempt {
            end: Instant::now(),
            ok,
        });
    }
}

fn max_gap(attempts: &[Attempt], from: Instant) -> (Duration, usize, usize) {
    let mut last = from;
    let mut gap = Duration::ZERO;
    let ok: Vec<&Attempt> = attempts.iter().filter(|a| a.ok).collect();
    for a in &ok {
        gap = gap.max(a.end.duration_since(last));
        last = a.end;
    }
    (gap, ok.len(), attempts.len() - ok.len())
}

async fn reload_under_load(
    reload: ReloadByRestart,
    reloads: u32,
) -> (
    Duration,
    usize,
    usize,
    leasehold_dnsmasq::monitor::CounterSnapshot,
) {
    let fx = Arc::new(Fixture::new(false));
    fx.set_client_mac(MAC);
    let mon = monitor();
    let driver = fx.driver(reload, &mon);
    driver
        .enable(&fx.network(ports(0), false), &fx.device())
        .await
        .unwrap();
    let first = fx.udhcpc_once(5, 1).expect("no first lease");
    assert_eq!(first.get("ip"), IP);
    assert_eq!(
        first.get("ntpsrv"),
        "203.0.113.123",
        "per-port option (set:/tag:) not served"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let client = {
        let (fx, stop, log) = (fx.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || client_loop(fx, stop, log))
    };
    for i in 1..=reloads {
        tokio::time::sleep(Duration::from_millis(150)).await;
        driver
            .reload_allocations(&fx.network(ports(i), false), &fx.device())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    let (gap, ok, failed) = max_gap(&log.lock().unwrap(), t0);
    assert!(
        driver.active(&fx.id()).await,
        "dnsmasq not running at the end"
    );
    let hosts = std::fs::read_to_string(fx.conf_file("host")).unwrap();
    assert_eq!(hosts.matches("set:port-").count(), reloads as usize + 1);
    driver.disable(&fx.id(), false).await.unwrap();
    (gap, ok, failed, mon.counters().snapshot())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_with_set_tags_keep_leases_flowing() {
    if !privileged("reloads_with_set_tags_keep_leases_flowing") {
        return;
    }
    let probe = DnsmasqProbe::run();
    let reloads = 20;
    let (gap, ok, failed, c) = reload_under_load(ReloadByRestart::Auto, reloads).await;
    eprintln!(
        "auto: dnsmasq {:?}; {ok} leases, {failed} failed attempts, longest gap {gap:?}; {c:?}",
        probe.version
    );
    if probe.sighup_crashes_on_set_tags() {
        assert_eq!(
            c.reload_restarts, reloads as u64,
            "2.90: every reload must be a restart"
        );
        assert_eq!(c.sighups, 0);
    } else {
        assert_eq!(c.sighups, reloads as u64);
    }
    assert_eq!(c.deaths, 0, "dnsmasq died during reloads");
    assert!(ok >= 10, "too few leases: {ok}");
    assert!(
        gap < Duration::from_secs(1),
        "gap of {gap:?} without a lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_crash_is_absorbed_by_the_monitor() {
    if !privileged("sighup_crash_is_absorbed_by_the_monitor") {
        return;
    }
    let probe = DnsmasqProbe::run();
    let reloads = 4;
    let (gap, ok, failed, c) = reload_under_load(ReloadByRestart::Never, reloads).await;
    eprintln!(
        "never: dnsmasq {:?}; {ok} leases, {failed} failed attempts, longest gap {gap:?}; {c:?}",
        probe.version
    );
    assert_eq!(c.sighups, reloads as u64);
    if probe.sighup_crashes_on_set_tags() {
        // The bug is real here: SIGHUP kills it, and the monitor brings it back.
        assert!(c.deaths >= 1, "expected dnsmasq 2.90 to crash on SIGHUP");
        assert_eq!(c.respawns, c.deaths);
    }
    assert!(
        gap < Duration::from_secs(2),
        "gap of {gap:?} without a lease"
    );
}
