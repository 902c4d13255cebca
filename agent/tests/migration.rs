//! Zero-outage migration from the real neutron-dhcp-agent to Leasehold and
//! back, against a real neutron-server (the pinned PyPI packages).
//!
//! 1. neutron-dhcp-agent (openvswitch interface driver, private userspace
//!    OVS) serves three networks: 198.51.100.0/24, 203.0.113.0/24, and a
//!    dual-stack one (198.51.100.0/24 + 2001:db8::/64 DHCPv6-stateful), each
//!    with VM ports. No L2 agent runs (the server sees a reported one), so
//!    the test plays its part: it gives each DHCP port its VLAN tag.
//! 2. A DHCP client renews its lease once a second from then on. The
//!    reference gets SIGTERM (its dnsmasq stay, as on a real node) and
//!    leasehold-agent starts with the *same* `--config-file`s (same host,
//!    same state_path).
//! 3. After Leasehold's first full sync: the same agent record (id, host,
//!    type) is alive; no dnsmasq was restarted (pid and start time); no
//!    namespace, device, address, route or OVS port was recreated or
//!    changed; the files under `<state_path>/dhcp/<net>/` are byte for byte
//!    the same (the lease file up to what dnsmasq itself rewrites for the
//!    renewing client, see `compare_leases`); every renewal was answered
//!    with the right address, none refused. Then a new dual-stack port is
//!    served (udhcpc and `dhclient -6`) and a subnet change (DNS servers, a
//!    host route) reaches the renewing client, all by Leasehold.
//!    The agent record is watched once a second through the switch.
//! 4. The way back: Leasehold gets SIGTERM, the reference starts with the
//!    same files, keeps the agent record, writes for the networks Leasehold
//!    changed the same files Leasehold wrote (host and addn_hosts up to
//!    line order, see there), and serves a new port.
//!
//! Root only; with CI=true a non-root run fails instead of skipping.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leasehold_testkit::agents::{self, Agent, Kind, Setup};
use leasehold_testkit::neutron::{neutron_venv, NeutronServer};
use leasehold_testkit::ovs::{self, vsctl};
use leasehold_testkit::{
    dhclient6_once, parse_events, poll_every, privileged, sh, unique_name, Client, Lease,
};
use serde_json::{json, Value};

/// One network of the test: its id, the VLAN the test gives its DHCP port,
/// and its VM ports (MAC → IPv4 address).
#[derive(Clone, Debug)]
struct Net {
    name: &'static str,
    id: String,
    vlan: u16,
    subnets: Vec<String>,
    vms: Vec<(String, String)>,
}

/// Files the agent keeps per network. `leases` is compared apart.
const FILES: &[&str] = &["host", "addn_hosts", "opts", "interface", "pid"];

/// Removes what the test made on the host, whatever happened.
struct HostGuard {
    dir: PathBuf,
    bridge: String,
    nets: Vec<String>,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        agents::clean(&self.dir, &self.nets, &self.bridge);
        ovs::del_bridge(&self.bridge);
    }
}

fn id(v: &Value, kind: &str) -> String {
    v[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} id in {v}"))
        .to_string()
}

/// The DHCP agent record of `host` (exactly one must exist).
fn dhcp_agent(server: &NeutronServer, host: &str) -> Option<Value> {
    let agents = server.get("/v2.0/agents")?;
    let mine: Vec<&Value> = agents["agents"]
        .as_array()?
        .iter()
        .filter(|a| a["agent_type"] == "DHCP agent" && a["host"] == host)
        .collect();
    assert!(
        mine.len() <= 1,
        "more than one DHCP agent for {host}: {mine:?}"
    );
    mine.first().map(|a| (*a).clone())
}

/// The networks the server has scheduled to agent `agent_id`.
fn hosted_networks(server: &NeutronServer, agent_id: &str) -> BTreeSet<String> {
    server
        .get(&format!("/v2.0/agents/{agent_id}/dhcp-networks"))
        .and_then(|v| {
            Some(
                v["networks"]
                    .as_array()?
                    .iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

fn conf_dir(dir: &Path, net: &str) -> PathBuf {
    dir.join("state/dhcp").join(net)
}

fn read(dir: &Path, net: &str, file: &str) -> String {
    std::fs::read_to_string(conf_dir(dir, net).join(file)).unwrap_or_default()
}

/// The network's dnsmasq: pid and start time (clock ticks since boot), so
/// a reused pid cannot pass for the same process.
fn dnsmasq(dir: &Path, net: &str) -> Option<(i32, u64)> {
    let pid: i32 = read(dir, net, "pid").trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state (3rd overall) is [0], starttime (22nd) is [19].
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !String::from_utf8_lossy(&cmdline).contains(net) {
        return None;
    }
    Some((pid, fields.get(19)?.parse().ok()?))
}

fn ns(net: &str) -> String {
    format!("qdhcp-{net}")
}

/// What must not change on the host across the switch, for one network.
#[derive(Clone, Debug, PartialEq)]
struct HostState {
    dnsmasq: Option<(i32, u64)>,
    dnsmasq_argv: String,
    netns_inode: Option<(u64, u64)>,
    device: String,
    /// `ip -o link` of the device: ifindex, name, flags, MTU, MAC.
    link: String,
    /// `ip -o addr` lines of the device.
    addrs: Vec<String>,
    /// IPv4 and IPv6 routes of the namespace.
    routes: Vec<String>,
    /// The OVS Interface and Port rows: uuids, ofport, tag, external_ids.
    ovs: String,
    /// The names of the files in the network's conf dir.
    file_names: BTreeSet<String>,
    /// [`FILES`], byte for byte.
    files: BTreeMap<String, Vec<u8>>,
    /// [`FILES`]' inode and modification time: not even rewritten with the
    /// same bytes.
    file_ids: BTreeMap<String, Option<(u64, i64, i64)>>,
    leases: String,
}

fn ip_ns(net: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", &ns(net)])
        .args(args)
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_state(dir: &Path, net: &str) -> HostState {
    let device = read(dir, net, "interface").trim().to_string();
    let cd = conf_dir(dir, net);
    let pid = dnsmasq(dir, net);
    let argv = pid
        .and_then(|(p, _)| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default();
    let mut routes: Vec<String> = ip_ns(net, &["-4", "route", "show", "table", "all"])
        .lines()
        .chain(ip_ns(net, &["-6", "route", "show", "table", "all"]).lines())
        .map(str::to_string)
        .collect();
    routes.sort();
    let ovs = if device.is_empty() {
        String::new()
    } else {
        format!(
            "Interface {} | Port {}",
            vsctl(&[
                "get",
                "Interface",
                &device,
                "_uuid",
                "ofport",
                "external_ids"
            ])
            .replace('\n', " "),
            vsctl(&[
                "get",
                "Port",
                &device,
                "_uuid",
                "tag",
                "trunks",
                "vlan_mode"
            ])
            .replace('\n', " ")
        )
    };
    HostState {
        dnsmasq: pid,
        dnsmasq_argv: argv,
        netns_inode: std::fs::metadata(format!("/run/netns/{}", ns(net)))
            .ok()
            .map(|m| (m.dev(), m.ino())),
        link: ip_ns(net, &["-o", "link", "show", "dev", &device])
            .trim()
            .to_string(),
        addrs: ip_ns(net, &["-o", "addr", "show", "dev", &device])
            .lines()
            .map(str::to_string)
            .collect(),
        routes,
        ovs,
        device,
        file_names: std::fs::read_dir(&cd)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        files: FILES
            .iter()
            .map(|f| (f.to_string(), std::fs::read(cd.join(f)).unwrap_or_default()))
            .collect(),
        file_ids: FILES
            .iter()
            .map(|f| {
                let id = std::fs::metadata(cd.join(f))
                    .ok()
                    .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()));
                (f.to_string(), id)
            })
            .collect(),
        leases: read(dir, net, "leases"),
    }
}

/// Compares dnsmasq's lease files from before and after the switch.
///
/// The agent writes `leases` only when it starts a dnsmasq (the initial
/// lease file); from then on dnsmasq owns it and rewrites it whenever a
/// lease changes. The client renewing through the switch makes dnsmasq
/// move its lease's expiry (the first field of its line) on every renewal,
/// so that field of that one line legitimately differs. Everything else —
/// the server DUID line, every other lease, the order, the MACs,
/// addresses, host names and client ids — must be the same.
fn compare_leases(net: &str, before: &str, after: &str, renewing_mac: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    if a.len() != b.len() {
        problems.push(format!(
            "{net}: leases has {} lines, had {}:\n{before}---\n{after}",
            a.len(),
            b.len()
        ));
        return problems;
    }
    for (lb, la) in b.iter().zip(&a) {
        if lb == la {
            continue;
        }
        let fb: Vec<&str> = lb.split(' ').collect();
        let fa: Vec<&str> = la.split(' ').collect();
        let only_expiry = fb.len() == fa.len() && fb[1..] == fa[1..];
        let renewing = fb.get(1) == Some(&renewing_mac);
        if !(only_expiry && renewing) {
            problems.push(format!("{net}: lease line {lb:?} became {la:?}"));
        }
    }
    problems
}

/// Adds a line naming `what` and both values when they differ.
fn note_change<T: PartialEq + std::fmt::Debug>(
    out: &mut Vec<String>,
    net: &str,
    what: &str,
    before: &T,
    after: &T,
) {
    if before != after {
        out.push(format!(
            "{net}: {what} changed:\n  before {before:?}\n  after  {after:?}"
        ));
    }
}

/// Differences between two host states of a network, as messages.
fn compare(net: &Net, before: &HostState, after: &HostState, renewing_mac: &str) -> Vec<String> {
    let n = net.name;
    let mut out = Vec::new();
    note_change(
        &mut out,
        n,
        "dnsmasq (pid, start time)",
        &before.dnsmasq,
        &after.dnsmasq,
    );
    note_change(
        &mut out,
        n,
        "dnsmasq command line",
        &before.dnsmasq_argv,
        &after.dnsmasq_argv,
    );
    note_change(
        &mut out,
        n,
        "namespace (dev, inode)",
        &before.netns_inode,
        &after.netns_inode,
    );
    note_change(&mut out, n, "device name", &before.device, &after.device);
    note_change(
        &mut out,
        n,
        "device (ifindex, flags, MTU, MAC)",
        &before.link,
        &after.link,
    );
    note_change(&mut out, n, "device addresses", &before.addrs, &after.addrs);
    note_change(
        &mut out,
        n,
        "namespace routes",
        &before.routes,
        &after.routes,
    );
    note_change(&mut out, n, "OVS port", &before.ovs, &after.ovs);
    note_change(
        &mut out,
        n,
        "files in the conf dir",
        &before.file_names,
        &after.file_names,
    );
    for f in FILES {
        let (b, a) = (&before.files[*f], &after.files[*f]);
        if b != a {
            out.push(format!(
                "{n}: file {f} changed:\n--- before\n{}\n--- after\n{}",
                String::from_utf8_lossy(b),
                String::from_utf8_lossy(a)
            ));
        }
    }
    for f in FILES {
        let (b, a) = (&before.file_ids[*f], &after.file_ids[*f]);
        if b != a {
            out.push(format!(
                "{n}: file {f} was rewritten (inode, mtime {b:?} -> {a:?})"
            ));
        }
    }
    out.extend(compare_leases(
        n,
        &before.leases,
        &after.leases,
        renewing_mac,
    ));
    out
}

/// Sets the flag to false when dropped.
struct StoreFalseOnDrop<'a>(&'a AtomicBool);

impl Drop for StoreFalseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A client that holds a lease and renews it on demand (SIGUSR1 to a
/// long-running busybox udhcpc), configuring the address it gets so the
/// renewal is a real unicast RENEWING request.
struct Renewer {
    /// Its namespace and OVS port, removed after udhcpc is stopped.
    _client: Client,
    udhcpc: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    seen: usize,
}

/// One renewal: when, what answered, how long it took, and during which
/// phase of the switch it was asked.
#[derive(Debug, Clone)]
struct Renewal {
    phase: String,
    event: Option<Lease>,
    took: Duration,
}

impl Renewer {
    fn start(bridge: &str, tag: u16, mac: &str) -> Renewer {
        let client = Client::on_ovs(bridge, tag);
        client.set_mac(mac);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("events.log");
        let script = dir.path().join("renew.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$1\" in\n  bound|renew) ip addr replace \"$ip/$mask\" dev \"$interface\" ;;\n  deconfig) ip -4 addr flush dev \"$interface\" ;;\nesac\n{{ echo \"EVENT=$1\"; env | grep -E '^(ip|mask|router|dns|domain|lease|serverid|staticroutes|message)='; echo END; }} >> {}\n",
                log.display()
            ),
        )
        .expect("script");
        sh(&["chmod", "755", script.to_str().expect("utf-8")]);
        let udhcpc = Command::new("ip")
            .args([
                "netns",
                "exec",
                &client.ns,
                "udhcpc",
                "-f",
                "-i",
                &client.dev,
                "-s",
            ])
            .arg(&script)
            .args(["-t", "10", "-T", "1", "-O", "staticroutes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("udhcpc starts");
        Renewer {
            _client: client,
            udhcpc,
            log,
            _dir: dir,
            seen: 0,
        }
    }

    fn events(&self) -> Vec<Lease> {
        parse_events(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The next event not seen yet, waiting up to `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Option<Lease> {
        let ev = poll_every(timeout, Duration::from_millis(10), || {
            self.events().get(self.seen).cloned()
        })?;
        self.seen += 1;
        Some(ev)
    }

    /// Waits for the first lease (skipping udhcpc's initial `deconfig`).
    fn bound(&mut self, timeout: Duration) -> Option<Lease> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.next_event(left)?;
            if ev.event == "bound" {
                return Some(ev);
            }
        }
    }

    /// Asks for one renewal and waits for its outcome.
    fn renew(&mut self, phase: &str, timeout: Duration) -> Renewal {
        let t0 = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.udhcpc.id() as i32),
            nix::sys::signal::Signal::SIGUSR1,
        );
        let event = self.next_event(timeout);
        Renewal {
            phase: phase.to_string(),
            event,
            took: t0.elapsed(),
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        let _ = self.udhcpc.kill();
        let _ = self.udhcpc.wait();
    }
}

/// A thread renewing once a second until [`RenewLoop::finish`]; the
/// phase label is read at each renewal. Dropped unfinished (a failed
/// assertion), it stops and joins the thread, so the client is removed.
struct RenewLoop {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Renewer, Vec<Renewal>)>>,
}

impl RenewLoop {
    fn start(mut r: Renewer, phase: Arc<Mutex<String>>) -> RenewLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let p = phase.lock().map(|p| p.clone()).unwrap_or_default();
                let renewal = r.renew(&p, Duration::from_secs(10));
                let failed = renewal.event.as_ref().is_none_or(|e| e.event != "renew");
                out.push(renewal);
                if failed {
                    // Not answered or refused: the assertion says so;
                    // renewing on top of a half-done exchange would only
                    // muddle the log.
                    break;
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
            (r, out)
        });
        RenewLoop {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops renewing; the client and every renewal.
    fn finish(mut self) -> (Renewer, Vec<Renewal>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("renew loop")
    }
}

impl Drop for RenewLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The DHCPv4 lease a client gets with the port's MAC.
fn v4_lease(client: &Client, mac: &str) -> Option<Lease> {
    client.set_mac(mac);
    client.udhcpc_once(15, 1)
}

/// `dhclient -6` in the client's namespace: the lease file it wrote
/// (dhclient is stopped again once it has its lease; empty without one).
fn v6_lease(client: &Client) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    dhclient6_once(&client.ns, &client.dev, dir.path(), 30).unwrap_or_default()
}

/// Gives each network's DHCP port its VLAN, as the OVS agent would.
fn tag_dhcp_ports(dir: &Path, nets: &[Net]) {
    for n in nets {
        let dev = read(dir, &n.id, "interface").trim().to_string();
        vsctl(&[
            "--",
            "set",
            "Port",
            &dev,
            &format!("tag={}", n.vlan),
            "--",
            "clear",
            "Port",
            &dev,
            "trunks",
            "--",
            "clear",
            "Port",
            &dev,
            "vlan_mode",
        ]);
    }
}

/// Every network served by a live dnsmasq with all its VM ports, its
/// device plugged and addressed.
fn converged(dir: &Path, nets: &[Net]) -> bool {
    nets.iter().all(|n| {
        let dev = read(dir, &n.id, "interface").trim().to_string();
        let hosts = read(dir, &n.id, "host");
        !dev.is_empty()
            && dnsmasq(dir, &n.id).is_some()
            && n.vms.iter().all(|(mac, _)| hosts.contains(mac.as_str()))
            && ip_ns(&n.id, &["-o", "-4", "addr", "show", "dev", &dev]).contains("inet ")
    })
}

/// The files of every network, for "has the agent stopped writing?".
fn files_of(dir: &Path, nets: &[Net]) -> Vec<BTreeMap<String, Vec<u8>>> {
    nets.iter().map(|n| host_state(dir, &n.id).files).collect()
}

#[test]
fn migration_to_leasehold_and_back_is_a_non_event() {
    if !privileged("migration_to_leasehold_and_back_is_a_non_event") {
        return;
    }
    let t_start = Instant::now();
    // The reference's DeviceManager adds a CHECKSUM-fill rule in every
    // namespace with iptables-save/iptables-restore and fails without them.
    assert!(
        Command::new("iptables-restore")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "neutron-dhcp-agent needs iptables-save/iptables-restore: install Debian's iptables package"
    );
    let venv = neutron_venv();
    let ovs = ovs::ovs();
    let bridge = unique_name("lhmig");
    ovs::netdev_bridge(&bridge);
    let host = format!("lh-mig-{}", std::process::id());
    let server = NeutronServer::start(&host);
    eprintln!(
        "[{:>5.1}s] neutron-server up in {} (vhost {})",
        t_start.elapsed().as_secs_f64(),
        server.path().display(),
        server.vhost.name
    );
    let work = tempfile::Builder::new()
        .prefix("leasehold-migration")
        .tempdir()
        .unwrap();
    let dir = work.path().to_path_buf();
    eprintln!("agents' directory: {}", dir.display());
    let setup = Setup {
        server: &server,
        host: host.clone(),
        bridge: bridge.clone(),
        ovsdb: ovs.db(),
        venv: venv.clone(),
        leasehold: PathBuf::from(env!("CARGO_BIN_EXE_leasehold-agent")),
    };
    let config = agents::write_config(&setup, &dir).unwrap();
    let config_bytes: Vec<Vec<u8>> = config.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let mut guard = HostGuard {
        dir: dir.clone(),
        bridge: bridge.clone(),
        nets: Vec::new(),
    };

    // ---- 1. neutron-dhcp-agent registers (the server schedules networks
    // only to a DHCP agent it knows), then three networks with VM ports are
    // made and scheduled to it through the usual notifications.
    let mut reference = Agent::start(Kind::Reference, &setup, &dir).unwrap();
    let context = |what: &str, agent: &Agent| {
        format!(
            "{what}\n--- {} log (own)\n{}\n--- stderr\n{}\n--- server\n{}",
            agent.kind.name(),
            tail(&agent.own_log(), 80),
            tail(&agent.stderr(), 40),
            server.logs()
        )
    };
    let record = poll_every(Duration::from_secs(60), Duration::from_millis(500), || {
        dhcp_agent(&server, &host).filter(|a| a["alive"] == true)
    })
    .unwrap_or_else(|| panic!("{}", context("no live DHCP agent record", &reference)));
    let mut nets = Vec::new();
    let specs: [(&str, u16, &str, bool); 3] = [
        ("a", 101, "198.51.100", false),
        ("b", 102, "203.0.113", false),
        ("c", 103, "198.51.100", true),
    ];
    for (name, vlan, prefix, dual) in specs {
        let net = id(
            &server.post(
                "/v2.0/networks",
                json!({"network": {"name": format!("mig-{name}")}}),
            ),
            "network",
        );
        guard.nets.push(net.clone());
        let mut subnets = vec![id(
            &server.post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net, "cidr": format!("{prefix}.0/24"), "ip_version": 4,
                    "gateway_ip": format!("{prefix}.1"), "dns_nameservers": [format!("{prefix}.53")]}}),
            ),
            "subnet",
        )];
        if dual {
            subnets.push(id(
                &server.post(
                    "/v2.0/subnets",
                    json!({"subnet": {"network_id": net, "cidr": "2001:db8::/64", "ip_version": 6,
                        "gateway_ip": "2001:db8::1", "ipv6_address_mode": "dhcpv6-stateful",
                        "dns_nameservers": ["2001:db8::53"]}}),
                ),
                "subnet",
            ));
        }
        // VM ports are bound to this host, as a VM's port is to its compute
        // host: ML2 spends 10 × 0.5 s on every *unbound* compute port an
        // agent reports ready (waiting for a binding), which holds the
        // reference's sync lock, and so its port events, for half a minute.
        let mut vms = Vec::new();
        for i in 0..2 {
            let ip = format!("{prefix}.{}", 10 + i);
            let mut fixed = vec![json!({"subnet_id": subnets[0], "ip_address": ip})];
            if dual {
                fixed.push(
                    json!({"subnet_id": subnets[1], "ip_address": format!("2001:db8::{}", 10 + i)}),
                );
            }
            let port = server.post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "name": format!("vm-{name}{i}"),
                    "device_owner": "compute:nova", "binding:host_id": host, "device_id": format!("vm-{name}{i}"), "fixed_ips": fixed}}),
            );
            vms.push((
                port["port"]["mac_address"].as_str().unwrap().to_string(),
                ip,
            ));
        }
        nets.push(Net {
            name,
            id: net,
            vlan,
            subnets,
            vms,
        });
    }
    let net_ids: BTreeSet<String> = nets.iter().map(|n| n.id.clone()).collect();

    let up = poll_every(Duration::from_secs(120), Duration::from_millis(250), || {
        (reference.own_syncs_completed() >= 1 && converged(&dir, &nets)).then_some(())
    });
    assert!(
        up.is_some(),
        "{}",
        context("neutron-dhcp-agent did not serve the networks", &reference)
    );
    tag_dhcp_ports(&dir, &nets);
    let agent_id = record["id"].as_str().unwrap().to_string();
    assert_eq!(record["binary"], "neutron-dhcp-agent");
    assert_eq!(hosted_networks(&server, &agent_id), net_ids);
    eprintln!(
        "[{:>5.1}s] neutron-dhcp-agent serves {} networks; agent {agent_id}",
        t_start.elapsed().as_secs_f64(),
        nets.len()
    );

    // The renewing client: network a's first VM.
    let (renew_mac, renew_ip) = nets[0].vms[0].clone();
    let mut renewer = Renewer::start(&bridge, nets[0].vlan, &renew_mac);
    let first = renewer.bound(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "{}",
            context(
                "the renewing client got no lease from neutron-dhcp-agent",
                &reference
            )
        )
    });
    assert_eq!(first.get("ip"), renew_ip);
    // The other networks serve too (one client, moved between VLANs).
    for n in &nets[1..] {
        let c = Client::on_ovs(&bridge, n.vlan);
        let lease = v4_lease(&c, &n.vms[0].0);
        assert_eq!(
            lease.as_ref().map(|l| l.get("ip")),
            Some(n.vms[0].1.as_str()),
            "{}",
            context(
                &format!("network {} not served by neutron-dhcp-agent", n.name),
                &reference
            )
        );
    }
    // Let the reference finish whatever follows its sync (ready ports,
    // port status updates and the reloads they cause): files stable for 5 s.
    let quiet = poll_every(Duration::from_secs(60), Duration::from_millis(100), || {
        let a = files_of(&dir, &nets);
        std::thread::sleep(Duration::from_secs(5));
        (files_of(&dir, &nets) == a).then_some(())
    });
    assert!(
        quiet.is_some(),
        "neutron-dhcp-agent kept rewriting its files"
    );
    let before: Vec<HostState> = nets.iter().map(|n| host_state(&dir, &n.id)).collect();
    for (n, s) in nets.iter().zip(&before) {
        assert!(
            s.dnsmasq.is_some() && s.netns_inode.is_some(),
            "{}: {s:?}",
            n.name
        );
        // What is compared below is really there.
        assert!(s.link.contains("link/ether"), "{}: {s:?}", n.name);
        assert!(
            s.addrs.iter().any(|a| a.contains(" inet ")),
            "{}: {s:?}",
            n.name
        );
        assert!(
            s.routes.iter().any(|r| r.starts_with("default via")),
            "{}: {s:?}",
            n.name
        );
        assert!(
            s.ovs.contains(&format!(" {} ", n.vlan)),
            "{}: {s:?}",
            n.name
        );
        assert!(
            FILES.iter().all(|f| !s.files[*f].is_empty()),
            "{}: {s:?}",
            n.name
        );
        assert!(
            s.file_ids.values().all(Option::is_some),
            "{}: {s:?}",
            n.name
        );
        if n.subnets.len() > 1 {
            assert!(
                s.addrs.iter().any(|a| a.contains(" inet6 2001:db8::")),
                "{}: {s:?}",
                n.name
            );
            assert!(
                s.routes
                    .iter()
                    .filter(|r| r.starts_with("default via"))
                    .count()
                    == 2,
                "{}: {s:?}",
                n.name
            );
        }
    }
    eprintln!(
        "network c before the switch: dnsmasq {:?}, device {}, addresses {:?}, routes {:?}, OVS {}",
        before[2].dnsmasq, before[2].link, before[2].addrs, before[2].routes, before[2].ovs
    );
    // The record as the reference keeps it once it serves the networks.
    let pre = dhcp_agent(&server, &host).expect("the agent record");
    assert_eq!(pre["id"], record["id"]);
    assert_eq!(pre["alive"], true);

    // ---- 2. The switch, with the client renewing every second throughout.
    let phase = Arc::new(Mutex::new("neutron-dhcp-agent".to_string()));
    let renewals = RenewLoop::start(renewer, phase.clone());
    std::thread::sleep(Duration::from_secs(3));
    let set_phase = |p: &str| {
        if let Ok(mut g) = phase.lock() {
            *g = p.to_string();
        }
    };
    // The agent record is watched once a second through the whole switch:
    // it must stay the same record and alive all along.
    let watching = AtomicBool::new(true);
    let (leasehold, after_record, after, record_samples) = std::thread::scope(|sc| {
        let watcher = sc.spawn(|| {
            let mut samples = Vec::new();
            while watching.load(Ordering::SeqCst) {
                samples.push(
                    dhcp_agent(&server, &host).map(|a| (a["id"].clone(), a["alive"].clone())),
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        });
        // Stops the watcher also when an assertion fails in between.
        let _unwatch = StoreFalseOnDrop(&watching);
        set_phase("no agent");
        let t_switch = Instant::now();
        // SIGTERM as systemd sends it; oslo.service's graceful shutdown has been
        // seen to take longer than the launcher's 15 s on a loaded machine, and
        // then SIGKILL follows (as systemd's would): either way dnsmasq stays.
        let clean_exit = reference.stop();
        eprintln!(
            "[{:>5.1}s] neutron-dhcp-agent stopped {}",
            t_start.elapsed().as_secs_f64(),
            if clean_exit {
                "on SIGTERM"
            } else {
                "by SIGKILL 15 s after SIGTERM"
            }
        );
        for (n, s) in nets.iter().zip(&before) {
            assert_eq!(
                dnsmasq(&dir, &n.id),
                s.dnsmasq,
                "{}: dnsmasq must outlive the reference agent",
                n.name
            );
        }
        std::thread::sleep(Duration::from_secs(2));
        set_phase("Leasehold starting");
        let t_leasehold = Instant::now();
        let leasehold = Agent::start(Kind::Leasehold, &setup, &dir).unwrap();
        let synced = poll_every(Duration::from_secs(60), Duration::from_millis(50), || {
            (leasehold.own_syncs_completed() >= 1).then(|| t_leasehold.elapsed())
        })
        .unwrap_or_else(|| {
            panic!(
                "{}",
                context("Leasehold did not complete its first sync", &leasehold)
            )
        });
        set_phase("Leasehold synced");
        // The same record, reported by Leasehold now: its start flag moves started_at.
        let after_record = poll_every(Duration::from_secs(30), Duration::from_millis(500), || {
            dhcp_agent(&server, &host)
                .filter(|a| a["alive"] == true && a["started_at"] != pre["started_at"])
        })
        .unwrap_or_else(|| {
            panic!(
                "{}",
                context(
                    "Leasehold's state report did not reach the agent record",
                    &leasehold
                )
            )
        });
        assert_eq!(
            after_record["id"], record["id"],
            "the agent record must stay the same"
        );
        assert_eq!(
            after_record["configurations"], pre["configurations"],
            "Leasehold reports what the reference reported"
        );
        assert_eq!(after_record["agent_type"], "DHCP agent");
        assert_eq!(after_record["host"], host.as_str());
        assert_eq!(after_record["binary"], "neutron-dhcp-agent");
        assert_eq!(hosted_networks(&server, &agent_id), net_ids);
        eprintln!(
            "[{:>5.1}s] Leasehold's first full sync done {:.2} s after its start ({:.1} s after SIGTERM to the reference); agent record {} kept, configurations {}",
            t_start.elapsed().as_secs_f64(),
            synced.as_secs_f64(),
            (t_leasehold - t_switch).as_secs_f64() + synced.as_secs_f64(),
            agent_id,
            after_record["configurations"]
        );
        // Whatever Leasehold does after its sync (ready ports, state reports)
        // happens while the client keeps renewing.
        std::thread::sleep(Duration::from_secs(5));
        let after: Vec<HostState> = nets.iter().map(|n| host_state(&dir, &n.id)).collect();
        watching.store(false, Ordering::SeqCst);
        let samples = watcher.join().expect("record watcher");
        (leasehold, after_record, after, samples)
    });
    assert!(
        record_samples.len() >= 5
            && record_samples
                .iter()
                .all(|s| s.as_ref() == Some(&(record["id"].clone(), Value::Bool(true)))),
        "the agent record did not stay the same and alive through the switch: {record_samples:?}"
    );
    let (mut renewer, renewals) = renewals.finish();

    let mut problems = Vec::new();
    for ((n, b), a) in nets.iter().zip(&before).zip(&after) {
        problems.extend(compare(n, b, a, &renew_mac));
    }
    let own = leasehold.own_log();
    assert!(
        problems.is_empty(),
        "the switch changed the host:\n{}\n--- Leasehold log\n{}",
        problems.join("\n"),
        tail(&own, 80)
    );
    assert_eq!(
        own.matches("adopted running dnsmasq").count(),
        nets.len(),
        "every dnsmasq adopted once:\n{}",
        tail(&own, 80)
    );
    assert_eq!(
        own.matches("changed=false").count(),
        nets.len(),
        "no file rewritten at adoption:\n{}",
        tail(&own, 80)
    );
    // The one legitimate difference did happen: dnsmasq moved the renewing
    // client's expiry (and nothing else, as compare_leases checked).
    assert_ne!(
        before[0].leases, after[0].leases,
        "the renewals moved no expiry"
    );
    eprintln!(
        "network a's leases before the switch:\n{}after (dnsmasq's own rewrite on renewal):\n{}",
        before[0].leases, after[0].leases
    );
    for (i, f) in config.iter().enumerate() {
        assert_eq!(
            std::fs::read(f).unwrap(),
            config_bytes[i],
            "{} was changed",
            f.display()
        );
    }

    // Every renewal answered, with the same address; none refused.
    let mut by_phase: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for r in &renewals {
        let e = by_phase.entry(r.phase.clone()).or_default();
        e.0 += 1;
        e.1 = e.1.max(r.took);
    }
    eprintln!("renewals by phase (count, slowest): {by_phase:?}");
    for r in &renewals {
        let ev = r.event.as_ref().unwrap_or_else(|| {
            panic!(
                "a renewal during \"{}\" was not answered in 10 s: {renewals:?}",
                r.phase
            )
        });
        assert_eq!(
            ev.event, "renew",
            "renewal during \"{}\" refused or lost: {ev:?}\nall: {renewals:?}",
            r.phase
        );
        assert_eq!(ev.get("ip"), renew_ip, "{ev:?}");
        assert!(
            r.took < Duration::from_secs(3),
            "renewal during \"{}\" took {:?}",
            r.phase,
            r.took
        );
    }
    for p in ["neutron-dhcp-agent", "no agent", "Leasehold synced"] {
        assert!(
            by_phase.get(p).is_some_and(|(n, _)| *n >= 1),
            "no renewal during \"{p}\": {by_phase:?}"
        );
    }
    assert!(renewals.len() >= 8, "only {} renewals", renewals.len());
    eprintln!(
        "[{:>5.1}s] switch: no change on the host, {} renewals answered",
        t_start.elapsed().as_secs_f64(),
        renewals.len()
    );

    // ---- 3. Leasehold serves changes: a new dual-stack port, a subnet change.
    let c = &nets[2];
    let new_port = server.post(
        "/v2.0/ports",
        json!({"port": {"network_id": c.id, "name": "vm-c-new", "device_owner": "compute:nova", "binding:host_id": host, "device_id": "vm-c-new",
            "fixed_ips": [{"subnet_id": c.subnets[0], "ip_address": "198.51.100.20"},
                          {"subnet_id": c.subnets[1], "ip_address": "2001:db8::20"}]}}),
    );
    let new_mac = new_port["port"]["mac_address"]
        .as_str()
        .unwrap()
        .to_string();
    let in_hosts = poll_every(Duration::from_secs(20), Duration::from_millis(50), || {
        read(&dir, &c.id, "host").contains(&new_mac).then_some(())
    });
    assert!(
        in_hosts.is_some(),
        "{}",
        context("the new port is not in the hosts file", &leasehold)
    );
    let client = Client::on_ovs(&bridge, c.vlan);
    let lease = v4_lease(&client, &new_mac);
    assert_eq!(
        lease.as_ref().map(|l| l.get("ip")),
        Some("198.51.100.20"),
        "{}",
        context("the new port got no IPv4 lease from Leasehold", &leasehold)
    );
    let v6 = v6_lease(&client);
    assert!(
        v6.contains("iaaddr 2001:db8::20 "),
        "no DHCPv6 lease for the new port:\n{v6}\n{}",
        context("", &leasehold)
    );
    assert!(v6.contains("dhcp6.name-servers 2001:db8::53"), "{v6}");

    let a = &nets[0];
    server.put(
        &format!("/v2.0/subnets/{}", a.subnets[0]),
        json!({"subnet": {"dns_nameservers": ["198.51.100.53", "198.51.100.54"],
            "host_routes": [{"destination": "203.0.113.0/24", "nexthop": "198.51.100.254"}]}}),
    );
    let opts = poll_every(Duration::from_secs(20), Duration::from_millis(50), || {
        let o = read(&dir, &a.id, "opts");
        (o.contains("198.51.100.53,198.51.100.54") && o.contains("203.0.113.0/24,198.51.100.254"))
            .then_some(o)
    })
    .unwrap_or_else(|| {
        panic!(
            "{}\n{}",
            read(&dir, &a.id, "opts"),
            context("the subnet change is not in opts", &leasehold)
        )
    });
    // The renewing client sees it on its next renewal, from the same dnsmasq.
    let r = poll_every(Duration::from_secs(15), Duration::from_millis(500), || {
        let r = renewer.renew("after the subnet change", Duration::from_secs(5));
        r.event
            .filter(|e| e.event == "renew" && e.get("dns").contains("198.51.100.54"))
    })
    .unwrap_or_else(|| {
        panic!(
            "opts:\n{opts}\n{}",
            context("renewal did not bring the new DNS server", &leasehold)
        )
    });
    assert_eq!(r.get("ip"), renew_ip);
    assert!(
        r.get("staticroutes")
            .contains("203.0.113.0/24 198.51.100.254"),
        "{r:?}"
    );
    for (n, b) in nets.iter().zip(&before) {
        assert_eq!(
            dnsmasq(&dir, &n.id),
            b.dnsmasq,
            "{}: a port or subnet change is a reload, not a restart",
            n.name
        );
    }
    eprintln!(
        "[{:>5.1}s] Leasehold served a new dual-stack port and a subnet change",
        t_start.elapsed().as_secs_f64()
    );

    // ---- 4. The way back: neutron-dhcp-agent with the same files.
    // What Leasehold wrote for the changes, to hold against what the
    // reference writes for the same networks when it takes them back.
    let written_by_leasehold = files_of(&dir, &nets);
    let mut leasehold = leasehold;
    assert!(
        leasehold.stop(),
        "Leasehold did not exit on SIGTERM within 15 s"
    );
    for (n, b) in nets.iter().zip(&before) {
        assert_eq!(
            dnsmasq(&dir, &n.id),
            b.dnsmasq,
            "{}: dnsmasq must outlive Leasehold",
            n.name
        );
    }
    let reference = Agent::start(Kind::Reference, &setup, &dir).unwrap();
    let back = poll_every(Duration::from_secs(120), Duration::from_millis(250), || {
        (reference.own_syncs_completed() >= 1 && converged(&dir, &nets)).then_some(())
    });
    assert!(
        back.is_some(),
        "{}",
        context(
            "neutron-dhcp-agent did not take the networks back",
            &reference
        )
    );
    let back_record = poll_every(Duration::from_secs(30), Duration::from_millis(500), || {
        dhcp_agent(&server, &host)
            .filter(|a| a["alive"] == true && a["started_at"] != after_record["started_at"])
    })
    .unwrap_or_else(|| {
        panic!(
            "{}",
            context(
                "the reference's state report did not reach the record",
                &reference
            )
        )
    });
    assert_eq!(back_record["id"], record["id"]);
    // The reference restarts every dnsmasq at start and writes every file
    // anew from the same server state: what Leasehold wrote (the new
    // dual-stack port, the new DNS server and host route included), opts
    // and interface byte for byte. host and addn_hosts hold the same lines,
    // but their order legitimately differs: an agent writes the ports in
    // its network cache's order, and the reference, like Leasehold, appends
    // a port created later to the end of its cached list, while after a
    // restart it takes the server's order (the database's, here not the
    // order of creation). So those two are compared as sets of lines here,
    // and Leasehold's order is checked to be the running reference's: the
    // lines from before the switch, then the new port's.
    let rewritten = files_of(&dir, &nets);
    let sorted = |b: &[u8]| -> Vec<String> {
        let mut l: Vec<String> = String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    for ((n, ours), theirs) in nets.iter().zip(&written_by_leasehold).zip(&rewritten) {
        for f in ["host", "addn_hosts", "opts", "interface"] {
            let same = match f {
                "host" | "addn_hosts" => sorted(&ours[f]) == sorted(&theirs[f]),
                _ => ours[f] == theirs[f],
            };
            assert!(
                same,
                "{}: {f} as Leasehold wrote it:\n{}\nas neutron-dhcp-agent writes it:\n{}",
                n.name,
                String::from_utf8_lossy(&ours[f]),
                String::from_utf8_lossy(&theirs[f])
            );
        }
    }
    for f in ["host", "addn_hosts"] {
        let (old, new) = (&before[2].files[f], &written_by_leasehold[2][f]);
        assert!(
            new.starts_with(old)
                && String::from_utf8_lossy(&new[old.len()..])
                    .lines()
                    .all(|l| l.contains("198-51-100-20") || l.contains("2001-db8--20")),
            "c: {f} written by Leasehold is not the old lines followed by the new port's:\n{}\n---\n{}",
            String::from_utf8_lossy(old),
            String::from_utf8_lossy(new)
        );
    }
    assert_eq!(hosted_networks(&server, &agent_id), net_ids);
    let b = &nets[1];
    let port = server.post(
        "/v2.0/ports",
        json!({"port": {"network_id": b.id, "name": "vm-b-back", "device_owner": "compute:nova", "binding:host_id": host, "device_id": "vm-b-back",
            "fixed_ips": [{"subnet_id": b.subnets[0], "ip_address": "203.0.113.30"}]}}),
    );
    let mac = port["port"]["mac_address"].as_str().unwrap().to_string();
    let in_hosts = poll_every(Duration::from_secs(120), Duration::from_millis(100), || {
        read(&dir, &b.id, "host").contains(&mac).then_some(())
    });
    assert!(
        in_hosts.is_some(),
        "{}",
        context(
            "the port made after the way back is not in the hosts file",
            &reference
        )
    );
    let client_b = Client::on_ovs(&bridge, b.vlan);
    let lease = v4_lease(&client_b, &mac);
    assert_eq!(
        lease.as_ref().map(|l| l.get("ip")),
        Some("203.0.113.30"),
        "{}",
        context(
            "neutron-dhcp-agent did not serve a new port after the way back",
            &reference
        )
    );
    let restarted = nets
        .iter()
        .zip(&before)
        .filter(|(n, b)| dnsmasq(&dir, &n.id) != b.dnsmasq)
        .count();
    eprintln!(
        "[{:>5.1}s] way back: neutron-dhcp-agent serves again ({restarted} of {} dnsmasq restarted by it, as it does on every start)",
        t_start.elapsed().as_secs_f64(),
        nets.len()
    );
    drop(client_b);
    drop(client);
    drop(renewer);
    drop(reference);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
