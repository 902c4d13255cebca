//! Full sync, restart and memory against a real neutron-server: N networks
//! (one subnet, a few ports each) are made through the REST API, then each
//! agent starts with an empty state directory and no DHCP port on the
//! server, and the clock runs until every network's dnsmasq is up with every
//! port in its hosts file and the agent logs that its sync is complete. Its
//! RSS is read; it is restarted with nothing changed (clock until converged
//! again; dnsmasq pids compared); then a node reboot is played (everything
//! local removed, the DHCP ports stay on the server) and timed the same way.
//! A shell loop doing only the bare namespace + OVS port + address + dnsmasq
//! work gives the floor.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use leasehold_testkit::neutron::NeutronServer;
use serde_json::json;

use crate::agents::{
    alive, clean, cpu_seconds, cpu_seconds_in, pids_with_cmdline, rss_kib, Agent, Kind, Setup,
};
use crate::stage::Stage;
use crate::table::{mib, secs, Row, Table};

/// How long after its sync an agent's memory is read: the first state
/// reports and any post-sync work settle first.
pub const SETTLE: Duration = Duration::from_secs(3);

/// Ports made per network (besides the DHCP port).
const PORTS_PER_NETWORK: usize = 3;

/// One created network: id and the MACs of its ports.
pub struct Net {
    /// Network id.
    pub id: String,
    /// Its ports' MACs, as the server gave them.
    pub macs: Vec<String>,
}

/// Makes `n` networks, four REST clients at a time.
/// Ports are bound to `host`, as a VM's port is (an unbound port reported
/// ready costs the server seconds of retries).
pub fn create_networks(server: &NeutronServer, host: &str, n: usize) -> Vec<Net> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let net = server.post(
                    "/v2.0/networks",
                    json!({"network": {"name": format!("bench-{i}")}}),
                );
                let id = net["network"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                server.post(
                    "/v2.0/subnets",
                    json!({"subnet": {"network_id": id, "cidr": "198.51.100.0/24", "ip_version": 4,
                        "gateway_ip": "198.51.100.1", "dns_nameservers": ["198.51.100.53"]}}),
                );
                let mut macs = Vec::new();
                for p in 0..PORTS_PER_NETWORK {
                    let port = server.post(
                        "/v2.0/ports",
                        json!({"port": {"network_id": id, "name": format!("vm-{i}-{p}"),
                            "device_owner": "compute:nova", "binding:host_id": host,
                            "device_id": format!("vm-{i}-{p}")}}),
                    );
                    macs.push(
                        port["port"]["mac_address"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                if let Ok(mut v) = out.lock() {
                    v.push(Net { id, macs });
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}

/// The dnsmasq pid serving `net` for this agent, if it runs.
pub fn dnsmasq_pid(confs: &Path, net: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(confs.join(net).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Network id → dnsmasq pid, when every network is served with all its ports.
fn converged(agent: &Agent, nets: &[Net]) -> Option<BTreeMap<String, i32>> {
    let confs = agent.confs();
    let mut pids = BTreeMap::new();
    for n in nets {
        let pid = dnsmasq_pid(&confs, &n.id)?;
        let hosts = std::fs::read_to_string(confs.join(&n.id).join("host")).ok()?;
        if !n.macs.iter().all(|m| hosts.contains(m.as_str())) {
            return None;
        }
        pids.insert(n.id.clone(), pid);
    }
    Some(pids)
}

/// Waits for convergence and `syncs` full syncs completed by this agent; time from `start`.
pub fn wait_converged(
    agent: &Agent,
    nets: &[Net],
    syncs: usize,
    start: Instant,
    timeout: Duration,
) -> Result<(f64, BTreeMap<String, i32>)> {
    loop {
        if agent.own_syncs_completed() >= syncs {
            if let Some(pids) = converged(agent, nets) {
                return Ok((start.elapsed().as_secs_f64(), pids));
            }
        }
        if start.elapsed() > timeout {
            let served = nets
                .iter()
                .filter(|n| dnsmasq_pid(&agent.confs(), &n.id).is_some())
                .count();
            bail!(
                "{} did not converge in {:?} ({served} of {} networks served); see {}",
                agent.kind.name(),
                timeout,
                nets.len(),
                agent.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// RSS of the agent: its own process, and with helper processes it
/// started (the reference's privsep daemons), dnsmasq excluded.
pub fn agent_rss(agent: &Agent) -> (u64, u64) {
    let Some(pid) = agent.pid() else {
        return (0, 0);
    };
    let own = rss_kib(pid as i32);
    let helpers: u64 = pids_with_cmdline(&agent.dir.join("dhcp_agent.ini").display().to_string())
        .into_iter()
        .filter(|&p| p != pid as i32)
        .map(rss_kib)
        .sum();
    (own, own + helpers)
}

/// One agent's figures.
pub struct Figures {
    /// Start to converged on a fresh node (the agent makes the DHCP ports), seconds.
    pub sync: f64,
    /// Start to converged after a node reboot (DHCP ports exist on the
    /// server, nothing exists locally), seconds.
    pub reboot: f64,
    /// Restart to converged, seconds.
    pub restart: f64,
    /// dnsmasq processes that were replaced across the restart.
    pub restarted: usize,
    /// RabbitMQ connections dropped → a port created then is served, seconds.
    pub reconnect: f64,
    /// dnsmasq processes replaced across the reconnect.
    pub reconnect_restarted: usize,
    /// RSS of the agent process, KiB.
    pub rss: u64,
    /// RSS with helper processes, KiB.
    pub rss_total: u64,
    /// CPU seconds of the agent (and helpers) during the fresh full sync.
    pub agent_cpu: f64,
    /// CPU seconds of the neutron-server during the fresh full sync.
    pub server_cpu: f64,
}

/// CPU seconds of the agent and the helper processes started with its config.
fn cpu_of_agent(agent: &Agent) -> f64 {
    agent.pid().map_or(0.0, |p| cpu_seconds(p as i32))
        + pids_with_cmdline(&agent.dir.join("dhcp_agent.ini").display().to_string())
            .into_iter()
            .filter(|&p| Some(p as u32) != agent.pid())
            .map(cpu_seconds)
            .sum::<f64>()
}

/// CPU seconds of ovsdb-server and ovs-vswitchd (the private OVS is the
/// only one on the host while the bench holds its lock).
fn ovs_cpu() -> f64 {
    ["ovsdb-server", "ovs-vswitchd"]
        .into_iter()
        .flat_map(pids_with_cmdline)
        .map(cpu_seconds)
        .sum()
}

/// Runs one agent through a fresh sync, memory, a restart and a node
/// reboot, then cleans up.
fn measure(kind: Kind, setup: &Setup<'_>, nets: &[Net], work: &Path) -> Result<Figures> {
    let dir = work.join(match kind {
        Kind::Leasehold => "leasehold",
        Kind::Reference => "reference",
    });
    let ids: Vec<String> = nets.iter().map(|n| n.id.clone()).collect();
    let timeout = Duration::from_secs(120 + 3 * nets.len() as u64);
    // Both agents start from the same server state: no DHCP port yet.
    delete_dhcp_ports(setup.server)?;
    purge_agent_queues(setup);
    let result = (|| {
        let server_cpu0 = cpu_seconds_in(setup.server.path());
        let start = Instant::now();
        let mut agent = Agent::start(kind, setup, &dir)?;
        let (sync, before) = wait_converged(&agent, nets, 1, start, timeout)?;
        // Where the time went: CPU of the agent (with its privsep helpers)
        // and of the server's processes during the sync.
        let agent_cpu = cpu_of_agent(&agent);
        let server_cpu = cpu_seconds_in(setup.server.path()) - server_cpu0;
        eprintln!(
            "  {} full sync: {} (agent CPU {agent_cpu:.2} s, neutron-server CPU {server_cpu:.2} s)",
            kind.name(),
            secs(sync)
        );
        std::thread::sleep(SETTLE);
        let (rss, rss_total) = agent_rss(&agent);
        agent.stop();

        let start = Instant::now();
        let mut agent = Agent::start(kind, setup, &dir)?;
        let (restart, after) = wait_converged(&agent, nets, 1, start, timeout)?;
        let restarted = before
            .iter()
            .filter(|(net, pid)| after.get(*net) != Some(pid))
            .count();
        eprintln!(
            "  {} restart: {}, {restarted} dnsmasq replaced",
            kind.name(),
            secs(restart)
        );
        let (reconnect, reconnect_restarted) = reconnect(&agent, setup, nets, &after)?;
        eprintln!(
            "  {} RabbitMQ connections dropped: a new port served after {}, {reconnect_restarted} dnsmasq replaced",
            kind.name(),
            secs(reconnect)
        );
        agent.stop();

        // A node reboot: processes, namespaces, ports on the bridge and the
        // state directory are gone; the server still has the DHCP ports.
        clean(&dir, &ids, &setup.bridge);
        purge_agent_queues(setup);
        let (server_cpu0, ovs_cpu0) = (cpu_seconds_in(setup.server.path()), ovs_cpu());
        let start = Instant::now();
        let agent = Agent::start(kind, setup, &dir)?;
        let (reboot, _) = wait_converged(&agent, nets, 1, start, timeout)?;
        eprintln!(
            "  {} after a node reboot: {} (agent CPU {:.2} s, neutron-server {:.2} s, OVS daemons {:.2} s)",
            kind.name(),
            secs(reboot),
            cpu_of_agent(&agent),
            cpu_seconds_in(setup.server.path()) - server_cpu0,
            ovs_cpu() - ovs_cpu0
        );
        // For a look at where a reboot sync's time goes (per-network log
        // lines with timestamps), outside the timed part.
        keep_log(&agent, "reboot");
        drop(agent);
        Ok(Figures {
            sync,
            reboot,
            restart,
            restarted,
            reconnect,
            reconnect_restarted,
            rss,
            rss_total,
            agent_cpu,
            server_cpu,
        })
    })();
    clean(&dir, &ids, &setup.bridge);
    result
}

/// With `LEASEHOLD_BENCH_KEEP_LOGS=<dir>`, keeps the agent's log as
/// `<dir>/<agent>-<what>.log`.
pub fn keep_log(agent: &Agent, what: &str) {
    if let Some(to) = std::env::var_os("LEASEHOLD_BENCH_KEEP_LOGS") {
        let to = Path::new(&to).join(format!("{}-{what}.log", agent.kind.name()));
        if let Err(e) = std::fs::write(&to, agent.own_log()) {
            eprintln!("  could not keep the log in {}: {e}", to.display());
        }
    }
}

/// Drops every connection of the vhost (the agent's and the server's: a
/// broker restart as the clients see it; the shared broker itself is not
/// restarted), then creates a port: seconds until it is in its network's
/// hosts file, and how many dnsmasq were replaced meanwhile.
fn reconnect(
    agent: &Agent,
    setup: &Setup<'_>,
    nets: &[Net],
    pids: &BTreeMap<String, i32>,
) -> Result<(f64, usize)> {
    let net = &nets[0].id;
    let mac = "fa:16:3e:7e:7e:7e";
    let start = Instant::now();
    setup.server.vhost.close_connections();
    let port = setup.server.post(
        "/v2.0/ports",
        json!({"port": {"network_id": net, "mac_address": mac, "device_owner": "compute:nova",
            "binding:host_id": setup.host,
            "device_id": "reconnect-probe"}}),
    );
    let hosts = agent.confs().join(net).join("host");
    let served = leasehold_testkit::wait_for(Duration::from_secs(180), || {
        std::fs::read_to_string(&hosts)
            .ok()?
            .contains(mac)
            .then(|| start.elapsed().as_secs_f64())
    });
    let replaced = pids
        .iter()
        .filter(|(n, pid)| dnsmasq_pid(&agent.confs(), n) != Some(**pid))
        .count();
    if let Some(id) = port["port"]["id"].as_str() {
        setup.server.delete(&format!("/v2.0/ports/{id}"));
    }
    match served {
        Some(t) => Ok((t, replaced)),
        None => bail!(
            "{}: the port made after the connections dropped was not served in 180 s",
            agent.kind.name()
        ),
    }
}

/// Deletes every DHCP port on the server (no agent runs meanwhile).
pub fn delete_dhcp_ports(server: &NeutronServer) -> Result<()> {
    let ports = server
        .get("/v2.0/ports?device_owner=network:dhcp&fields=id")
        .ok_or_else(|| anyhow::anyhow!("listing DHCP ports failed"))?;
    for p in ports["ports"].as_array().into_iter().flatten() {
        if let Some(id) = p["id"].as_str() {
            server.delete(&format!("/v2.0/ports/{id}"));
        }
    }
    Ok(())
}

/// Empties the agent's own queues on our vhost, so each agent starts with
/// the same backlog (none) rather than the notifications sent while no
/// agent ran.
pub fn purge_agent_queues(setup: &Setup<'_>) {
    let vhost = &setup.server.vhost.name;
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "-p", vhost, "name"])
        .output()
    else {
        return;
    };
    for q in String::from_utf8_lossy(&out.stdout).lines() {
        if q.starts_with("dhcp_agent") {
            leasehold_testkit::sh_quiet(&["rabbitmqctl", "-q", "purge_queue", "-p", vhost, q]);
        }
    }
}

/// The floor: the shell loop, timed, then cleaned.
fn floor(n: usize, bridge: &str) -> Result<f64> {
    let script = crate::util::repo_root().join("bench/reference/floor.sh");
    let prefix = format!("lhfl{}", std::process::id() % 100_000);
    let start = Instant::now();
    let st = Command::new("bash")
        .arg(&script)
        .args([&prefix, &n.to_string(), bridge])
        .status()?;
    let t = start.elapsed().as_secs_f64();
    Command::new("bash")
        .arg(&script)
        .args(["--clean", &prefix, &n.to_string(), bridge])
        .status()?;
    if !st.success() {
        bail!("floor loop failed");
    }
    Ok(t)
}

/// Everything for one size: adds sync, restart and memory rows.
pub fn run(table: &mut Table, venv: &Path, n: usize, which: &[Kind]) -> Result<()> {
    let stage = Stage::start("sync", venv)?;
    let setup = stage.setup();
    let (server, bridge) = (&stage.server, &stage.bridge);
    let t = Instant::now();
    let nets = create_networks(server, &setup.host, n);
    eprintln!(
        "sync {n}: {} networks with {PORTS_PER_NETWORK} ports each made in {}",
        nets.len(),
        secs(t.elapsed().as_secs_f64())
    );
    let floor_t = floor(n, bridge)?;
    eprintln!("  floor: {}", secs(floor_t));
    let mut figs: BTreeMap<&str, Figures> = BTreeMap::new();
    for &kind in which {
        match measure(kind, &setup, &nets, stage.work.path()) {
            Ok(f) => {
                figs.insert(kind.name(), f);
            }
            Err(e) => eprintln!("  {} failed: {e:#}", kind.name()),
        }
    }
    let ours = figs.get(Kind::Leasehold.name());
    let theirs = figs.get(Kind::Reference.name());
    let both = |g: fn(&Figures) -> f64| (ours.map(g), theirs.map(g));
    let (o, t) = both(|f| f.sync);
    table.push(Row::lower_is_better(
        format!("full sync, fresh node, {n} networks × {PORTS_PER_NETWORK} ports (agent makes the DHCP ports; start → all dnsmasq serving all ports, sync logged complete)"),
        o, t, secs, "≥ 10× faster", Some(10.0),
    ));
    let cpu = |f: Option<&Figures>| {
        f.map_or_else(
            || "failed".into(),
            |f| format!("{:.2} s / {:.2} s", f.agent_cpu, f.server_cpu),
        )
    };
    let (oc, tc) = both(|f| f.agent_cpu);
    table.push(Row {
        what: format!("full sync, fresh node, {n} networks: CPU of the agent (with privsep helpers) / of neutron-server meanwhile"),
        ours: cpu(ours),
        theirs: cpu(theirs),
        ..Row::lower_is_better(String::new(), oc, tc, secs, "-", None)
    });
    table.push(Row::lower_is_better(
        format!("full sync, fresh node, {n} networks: vs the shell-loop floor (no server work)"),
        o,
        Some(floor_t),
        secs,
        "no slower than the floor (≥ 1×)",
        Some(1.0),
    ));
    let (o, t) = both(|f| f.reboot);
    table.push(Row::lower_is_better(
        format!("full sync after a node reboot, {n} networks (DHCP ports exist on the server, nothing local)"),
        o, t, secs, "≥ 10× faster", Some(10.0),
    ));
    table.push(Row::lower_is_better(
        format!("full sync after a node reboot, {n} networks: vs the shell-loop floor"),
        o,
        Some(floor_t),
        secs,
        "no slower than the floor (≥ 1×)",
        Some(1.0),
    ));
    let (o, t) = both(|f| f.restart);
    table.push(Row::lower_is_better(
        format!("agent restart, {n} unchanged networks: time until converged"),
        o,
        t,
        secs,
        "faster",
        Some(1.0),
    ));
    table.push(Row::none_wanted(
        format!("agent restart, {n} unchanged networks: dnsmasq restarted"),
        ours.map(|f| f.restarted),
        theirs.map(|f| f.restarted),
    ));
    let (o, t) = both(|f| f.reconnect);
    table.push(Row::lower_is_better(
        format!("RabbitMQ connections of the vhost dropped (agent's and server's), {n} networks: a port created then is served after"),
        o, t, secs, "faster", Some(1.0),
    ));
    table.push(Row::none_wanted(
        format!("RabbitMQ connections dropped, {n} networks: dnsmasq restarted"),
        ours.map(|f| f.reconnect_restarted),
        theirs.map(|f| f.reconnect_restarted),
    ));
    push_memory_rows(
        table,
        &format!("{n} networks"),
        ours.map(|f| (f.rss, f.rss_total)),
        theirs.map(|f| (f.rss, f.rss_total)),
    );
    Ok(())
}

/// The two memory rows for `size` ("200 networks"): RSS of the agent
/// process, and with its helper processes; each side `(own, with helpers)` in KiB.
pub fn push_memory_rows(
    table: &mut Table,
    size: &str,
    ours: Option<(u64, u64)>,
    theirs: Option<(u64, u64)>,
) {
    let kib = |side: Option<(u64, u64)>, pick: fn((u64, u64)) -> u64| side.map(|s| pick(s) as f64);
    table.push(Row::lower_is_better(
        format!("memory, {size}: RSS of the agent process"),
        kib(ours, |s| s.0),
        kib(theirs, |s| s.0),
        mib,
        "≤ 1/5 (≥ 5×)",
        Some(5.0),
    ));
    table.push(Row::lower_is_better(
        format!("memory, {size}: RSS with helper processes (privsep daemons), dnsmasq excluded"),
        kib(ours, |s| s.1),
        kib(theirs, |s| s.1),
        mib,
        "≤ 1/5 (≥ 5×)",
        Some(5.0),
    ));
}
