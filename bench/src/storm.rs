//! Event storm and lease release against a real neutron-server, the same for
//! both agents:
//!
//! 1. 1,000 port creates on one network, then 1,000 spread over 100 networks
//!    (10 each), sent by eight REST clients as fast as the server takes them:
//!    first one port per request, then again in bulk requests of 100 ports
//!    (Neutron's `{"ports": [...]}`), the server's fastest intake, whose
//!    events reach the agent in bursts.
//!    Clocked from outside: when each `port_create_end` reached the agent's
//!    queue (a queue of ours bound to the same routing key gets a copy) and
//!    when the port appeared in its network's hosts file (inotify). Reloads
//!    are counted as hosts-file rewrites (each is followed by a SIGHUP or,
//!    on dnsmasq 2.90 for Leasehold, a controlled restart).
//! 2. Lease release: dnsmasq of the 1,000-port network is started afresh
//!    (the agent writes a lease for every IPv4 allocation first, as Neutron
//!    does), then all 1,000 ports are deleted: time until dnsmasq's lease
//!    file holds none of their addresses.
//!
//! The one network has two IPv4 subnets (198.51.100.0/24, 203.0.113.0/24:
//! 500 ports, the most the test ranges hold) and 2001:db8::/64 with
//! DHCPv6-stateful for the other 500; dnsmasq only gets IPv4 leases from the
//! agent, so the release figure is about those 500.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use leasehold_testkit::neutron::NeutronServer;
use serde_json::{json, Value};

use crate::agents::{alive, clean, Agent, Kind, Setup};
use crate::observe::{EventClock, HostsWatch};
use crate::stage::Stage;
use crate::sync::{delete_dhcp_ports, dnsmasq_pid, purge_agent_queues};
use crate::table::{secs, Row, Table};
use crate::util::percentile;

/// REST clients sending at once.
const CLIENTS: usize = 8;
/// Ports per request in the bulk storms.
const BULK: usize = 100;
/// How big the storms are.
#[derive(Clone, Copy)]
pub struct Sizes {
    /// Ports per storm (1,000; `--quick`: 200).
    pub ports: usize,
    /// Networks of the spread storm (100; `--quick`: 20).
    pub spread: usize,
}

/// The networks of one agent's run.
struct Nets {
    /// The 1,000-port network of the single-create storm.
    one: DualStack,
    /// The 1,000-port network of the bulk storm.
    bulk_one: DualStack,
    /// The 100 networks of the spread storms (10 ports each from both).
    spread: Vec<String>,
}

/// A network with two IPv4 subnets and one DHCPv6-stateful subnet.
struct DualStack {
    id: String,
    /// v4 a, v4 b, v6.
    subnets: [String; 3],
}

impl DualStack {
    /// The network and `fixed_ips` of the `i`th port: half of the ports
    /// IPv4 (500, what the two /24s hold), half IPv6.
    fn target(&self, i: usize) -> (String, Value) {
        let [a, b, v6] = &self.subnets;
        let subnet = match i % 4 {
            0 => a,
            1 => b,
            _ => v6,
        };
        (self.id.clone(), json!([{ "subnet_id": subnet }]))
    }
}

fn id_of(v: &Value, kind: &str) -> String {
    v[kind]["id"].as_str().unwrap_or_default().to_string()
}

/// Runs `f(i)` for i in 0..n on `CLIENTS` threads.
fn parallel(n: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                f(i);
            });
        }
    });
}

fn make_networks(server: &NeutronServer, spread_count: usize) -> Nets {
    let subnet = |body: Value| {
        id_of(
            &server.post("/v2.0/subnets", json!({ "subnet": body })),
            "subnet",
        )
    };
    let dual_stack = |name: &str| {
        let id = id_of(
            &server.post("/v2.0/networks", json!({"network": {"name": name}})),
            "network",
        );
        let subnets = [
            subnet(json!({"network_id": id, "cidr": "198.51.100.0/24", "ip_version": 4})),
            subnet(json!({"network_id": id, "cidr": "203.0.113.0/24", "ip_version": 4})),
            subnet(
                json!({"network_id": id, "cidr": "2001:db8::/64", "ip_version": 6,
                "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}),
            ),
        ];
        DualStack { id, subnets }
    };
    let one = dual_stack("storm-one");
    let bulk_one = dual_stack("storm-bulk-one");
    let spread = Mutex::new(Vec::new());
    parallel(spread_count, |i| {
        let net = id_of(
            &server.post(
                "/v2.0/networks",
                json!({"network": {"name": format!("storm-{i}")}}),
            ),
            "network",
        );
        subnet(json!({"network_id": net, "cidr": "198.51.100.0/24", "ip_version": 4}));
        if let Ok(mut v) = spread.lock() {
            v.push(net);
        }
    });
    Nets {
        one,
        bulk_one,
        spread: spread.into_inner().unwrap_or_default(),
    }
}

/// A MAC of our own per port, so the clock can match events without
/// waiting for the server's reply.
fn mac(storm: usize, i: usize) -> String {
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        0x70 + storm,
        i >> 8,
        i & 0xff
    )
}

/// What one storm showed.
struct StormFigures {
    /// First request sent → last port in its hosts file.
    total: f64,
    /// Hosts-file rewrites per network: mean and most.
    rewrites_mean: f64,
    rewrites_max: usize,
    /// Event reached the queue → port in the hosts file, seconds.
    p50: f64,
    p99: f64,
    /// Ports with both timestamps.
    samples: usize,
    /// Creates per network.
    events_per_network: usize,
    /// Events that arrived while an earlier one on the same network was
    /// not yet applied (what coalescing could merge).
    pending: usize,
    /// Median time between consecutive events on one network, seconds.
    gap_p50: f64,
}

/// Sends `ports` creates, `batch` ports per request (`target(i)` gives
/// network and fixed_ips), and clocks them.
fn storm(
    setup: &Setup<'_>,
    agent: &Agent,
    nets: &[String],
    storm_no: usize,
    (ports, batch): (usize, usize),
    target: impl Fn(usize) -> (String, Value) + Sync,
) -> Result<StormFigures> {
    let clock = EventClock::start(&setup.server.vhost.url(), &setup.host)?;
    let watch = HostsWatch::start(&agent.confs(), nets)?;
    let port = |i: usize| {
        let (net, fixed_ips) = target(i);
        let mut port = json!({"network_id": net, "mac_address": mac(storm_no, i),
            "device_owner": "compute:nova", "binding:host_id": setup.host,
            "device_id": format!("storm-{storm_no}-{i}")});
        // No `fixed_ips` key: an address from each subnet ([] would mean none).
        if !fixed_ips.is_null() {
            port["fixed_ips"] = fixed_ips;
        }
        port
    };
    let start = Instant::now();
    if batch <= 1 {
        parallel(ports, |i| {
            setup.server.post("/v2.0/ports", json!({ "port": port(i) }));
        });
    } else {
        parallel(ports.div_ceil(batch), |r| {
            let list: Vec<Value> = (r * batch..ports.min((r + 1) * batch)).map(port).collect();
            setup.server.post("/v2.0/ports", json!({ "ports": list }));
        });
    }
    let sent = start.elapsed().as_secs_f64();
    let all = leasehold_testkit::wait_for(Duration::from_secs(300), || {
        (watch.appeared() >= ports).then_some(())
    });
    let seen = watch.finish();
    let events = clock.seen();
    drop(clock);
    if all.is_none() {
        bail!(
            "{}: only {} of {ports} ports reached the hosts files in 300 s (see {})",
            agent.kind.name(),
            seen.appeared.len(),
            agent.dir.display()
        );
    }
    let macs: Vec<String> = (0..ports).map(|i| mac(storm_no, i)).collect();
    let last = macs
        .iter()
        .filter_map(|m| seen.appeared.get(m))
        .max()
        .copied()
        .unwrap_or(start);
    let clocked = |i: usize| {
        let m = &macs[i];
        Some((*events.get(m)?, *seen.appeared.get(m)?))
    };
    let lat: Vec<f64> = (0..ports)
        .filter_map(clocked)
        .map(|(event, applied)| applied.saturating_duration_since(event).as_secs_f64())
        .collect();
    let mut per_network: BTreeMap<String, Vec<(Instant, Instant)>> = BTreeMap::new();
    for i in 0..ports {
        if let Some(pair) = clocked(i) {
            per_network.entry(target(i).0).or_default().push(pair);
        }
    }
    let (mut pending, mut gaps) = (0, Vec::new());
    for pairs in per_network.into_values() {
        let a = arrivals(pairs);
        pending += a.pending;
        gaps.extend(a.gaps);
    }
    let rewrites: Vec<usize> = nets
        .iter()
        .map(|n| seen.rewrites.get(n).copied().unwrap_or(0))
        .collect();
    eprintln!(
        "  {}: {ports} creates sent in {}, all applied after {}",
        agent.kind.name(),
        secs(sent),
        secs((last - start).as_secs_f64())
    );
    Ok(StormFigures {
        total: (last - start).as_secs_f64(),
        rewrites_mean: rewrites.iter().sum::<usize>() as f64 / nets.len().max(1) as f64,
        rewrites_max: rewrites.iter().copied().max().unwrap_or(0),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        samples: lat.len(),
        events_per_network: ports / nets.len().max(1),
        pending,
        gap_p50: percentile(&gaps, 0.5),
    })
}

/// How the events of one network met the agent.
struct Arrivals {
    /// Events that arrived while an earlier one was not yet applied: only
    /// these can share a reload with another.
    pending: usize,
    /// Seconds between consecutive arrivals.
    gaps: Vec<f64>,
}

/// `pairs`: (event reached the agent, applied) per port of one network.
fn arrivals(mut pairs: Vec<(Instant, Instant)>) -> Arrivals {
    pairs.sort();
    let mut pending = 0;
    let mut latest_applied: Option<Instant> = None;
    let mut gaps = Vec::new();
    for (i, &(event, applied)) in pairs.iter().enumerate() {
        if latest_applied.is_some_and(|a| a > event) {
            pending += 1;
        }
        latest_applied = latest_applied.max(Some(applied));
        if i > 0 {
            gaps.push((event - pairs[i - 1].0).as_secs_f64());
        }
    }
    Arrivals { pending, gaps }
}

/// IPv4 addresses in a dnsmasq lease file.
fn leased_v4(text: &str) -> HashSet<&str> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(2))
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

/// What the release showed.
struct ReleaseFigures {
    /// IPv4 leases dnsmasq held before the deletes.
    leases: usize,
    /// First delete sent → no lease left.
    total: f64,
    /// Last delete answered → no lease left.
    tail: f64,
}

/// Restarts the agent with the network's dnsmasq gone (so it starts with
/// a lease for every IPv4 port), deletes every port of the network, and
/// clocks until dnsmasq's lease file is empty of them.
fn lease_release(
    kind: Kind,
    setup: &Setup<'_>,
    mut agent: Agent,
    nets: &Nets,
    dir: &Path,
) -> Result<ReleaseFigures> {
    agent.stop();
    let confs = agent.confs();
    // Only this network's dnsmasq goes (the agent leaves them running when
    // it stops); everything else stays as it was.
    if let Some(pid) = dnsmasq_pid(&confs, &nets.one.id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        leasehold_testkit::wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(()));
    }
    let agent = Agent::start(kind, setup, dir)?;
    let lease_file = confs.join(&nets.one.id).join("leases");
    let ports = setup
        .server
        .get(&format!(
            "/v2.0/ports?network_id={}&device_owner=compute:nova&fields=id&fields=fixed_ips",
            nets.one.id
        ))
        .unwrap_or_default();
    let ports: Vec<(String, Vec<String>)> = ports["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let ips = p["fixed_ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["ip_address"].as_str().map(str::to_string))
                .collect();
            (p["id"].as_str().unwrap_or_default().to_string(), ips)
        })
        .collect();
    let v4: Vec<String> = ports
        .iter()
        .flat_map(|(_, ips)| ips.iter().filter(|ip| !ip.contains(':')).cloned())
        .collect();
    let ready = leasehold_testkit::wait_for(Duration::from_secs(300), || {
        let text = std::fs::read_to_string(&lease_file).ok()?;
        let held = leased_v4(&text);
        (agent.own_syncs_completed() >= 1 && v4.iter().all(|ip| held.contains(ip.as_str())))
            .then_some(())
    });
    if ready.is_none() {
        bail!(
            "{}: dnsmasq did not start with every IPv4 lease",
            kind.name()
        );
    }
    // Let the sync's own work settle before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    parallel(ports.len(), |i| {
        setup.server.delete(&format!("/v2.0/ports/{}", ports[i].0));
    });
    let deleted = Instant::now();
    let free = leasehold_testkit::wait_for(Duration::from_secs(600), || {
        let text = std::fs::read_to_string(&lease_file).ok()?;
        let held = leased_v4(&text);
        (!v4.iter().any(|ip| held.contains(ip.as_str()))).then(Instant::now)
    });
    drop(agent);
    let Some(free) = free else {
        bail!("{}: leases still held 600 s after the deletes", kind.name());
    };
    Ok(ReleaseFigures {
        leases: v4.len(),
        total: (free - start).as_secs_f64(),
        tail: free.saturating_duration_since(deleted).as_secs_f64(),
    })
}

/// One agent's figures.
struct Figures {
    one: StormFigures,
    spread: StormFigures,
    bulk_one: StormFigures,
    release: ReleaseFigures,
}

/// Deletes the networks and every port on them (no timing).
fn delete_networks(server: &NeutronServer, nets: &[String]) {
    let mut ports = Vec::new();
    for n in nets {
        let list = server
            .get(&format!("/v2.0/ports?network_id={n}&fields=id"))
            .unwrap_or_default();
        ports.extend(
            list["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["id"].as_str().map(str::to_string)),
        );
    }
    parallel(ports.len(), |i| {
        server.try_delete(&format!("/v2.0/ports/{}", ports[i]));
    });
    parallel(nets.len(), |i| {
        if !server.try_delete(&format!("/v2.0/networks/{}", nets[i])) {
            eprintln!("  cleanup: network {} could not be deleted", nets[i]);
        }
    });
}

fn measure(
    kind: Kind,
    setup: &Setup<'_>,
    work: &Path,
    sizes: Sizes,
    last: bool,
) -> Result<Figures> {
    let dir = work.join(match kind {
        Kind::Leasehold => "leasehold",
        Kind::Reference => "reference",
    });
    eprintln!(
        "storm: {}: making {} networks",
        kind.name(),
        sizes.spread + 1
    );
    let nets = make_networks(setup.server, sizes.spread);
    let mut all: Vec<String> = nets.spread.clone();
    all.push(nets.one.id.clone());
    all.push(nets.bulk_one.id.clone());
    delete_dhcp_ports(setup.server)?;
    purge_agent_queues(setup);
    let result = (|| {
        let agent = Agent::start(kind, setup, &dir)?;
        let up = leasehold_testkit::wait_for(Duration::from_secs(600), || {
            (agent.own_syncs_completed() >= 1
                && all
                    .iter()
                    .all(|n| agent.confs().join(n).join("host").exists()))
            .then_some(())
        });
        if up.is_none() {
            bail!("{} did not serve the {} networks", kind.name(), all.len());
        }
        std::thread::sleep(Duration::from_secs(3));
        let single = (sizes.ports, 1);
        // All ports on one dual-stack network.
        let on_one = |net: &DualStack, storm_no, mode| {
            storm(
                setup,
                &agent,
                std::slice::from_ref(&net.id),
                storm_no,
                mode,
                |i| net.target(i),
            )
        };
        let one = on_one(&nets.one, 0, single)?;
        // One port per network in turn: what arrives together is spread.
        let spread = storm(setup, &agent, &nets.spread, 1, single, |i| {
            (nets.spread[i % nets.spread.len()].clone(), Value::Null)
        })?;
        let bulk_one = on_one(&nets.bulk_one, 2, (sizes.ports, BULK))?;
        let release = lease_release(kind, setup, agent, &nets, &dir)?;
        eprintln!(
            "  {}: {} IPv4 leases released {} after the first delete, {} after the last",
            kind.name(),
            release.leases,
            secs(release.total),
            secs(release.tail)
        );
        Ok(Figures {
            one,
            spread,
            bulk_one,
            release,
        })
    })();
    if let Err(e) = &result {
        eprintln!("  {} failed: {e:#}", kind.name());
    }
    clean(&dir, &all, &setup.bridge);
    // The next agent starts from an empty server; after the last one the
    // whole server goes.
    if !last {
        eprintln!("storm: {}: deleting the networks", kind.name());
        delete_networks(setup.server, &all);
    }
    result
}

/// "mean / most (events that could share a reload; median gap)".
fn reloads(f: &StormFigures) -> String {
    format!(
        "{:.1} / {} ({} of {} events arrived with an earlier one pending; events {} apart)",
        f.rewrites_mean,
        f.rewrites_max,
        f.pending,
        f.samples,
        secs(f.gap_p50)
    )
}

/// The storm and release rows.
pub fn run(table: &mut Table, venv: &Path, sizes: Sizes, which: &[Kind]) -> Result<()> {
    let stage = Stage::start("storm", venv)?;
    let setup = stage.setup();
    let mut figs: BTreeMap<&str, Figures> = BTreeMap::new();
    for (i, &kind) in which.iter().enumerate() {
        if let Ok(f) = measure(kind, &setup, stage.work.path(), sizes, i + 1 == which.len()) {
            figs.insert(kind.name(), f);
        }
    }
    let ours = figs.get(Kind::Leasehold.name());
    let theirs = figs.get(Kind::Reference.name());
    let fmt = |f: Option<&Figures>, g: &dyn Fn(&Figures) -> String| {
        f.map(g).unwrap_or_else(|| "failed".into())
    };
    let ratio = |g: &dyn Fn(&Figures) -> f64| match (ours.map(g), theirs.map(g)) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    type Pick = fn(&Figures) -> &StormFigures;
    let on_one = format!("{} port creates on one network", sizes.ports);
    let spread = format!(
        "{} port creates over {} networks",
        sizes.ports, sizes.spread
    );
    let bulk_on_one = format!("{on_one}, in bulk requests of {BULK}");
    let storms: [(&str, Pick); 3] = [
        (&on_one, |f| &f.one),
        (&spread, |f| &f.spread),
        (&bulk_on_one, |f| &f.bulk_one),
    ];
    for (what, pick) in storms {
        table.push(Row::lower_is_better(
            format!("event storm, {what}: first create sent → all in the hosts files ({CLIENTS} REST clients)"),
            ours.map(|f| pick(f).total),
            theirs.map(|f| pick(f).total),
            secs,
            "faster",
            Some(1.0),
        ));
        let q = ratio(&|f| pick(f).rewrites_mean);
        table.push(Row {
            what: format!(
                "event storm, {what}: reloads (hosts-file rewrites) per network, mean / most (events that could coalesce; median gap between events)"
            ),
            ours: fmt(ours, &|f| reloads(pick(f))),
            theirs: fmt(theirs, &|f| reloads(pick(f))),
            ratio: q,
            goal: "bounded by coalescing, not one per event".into(),
            // At most one reload per two events on the busiest network.
            met: ours.map(|f| pick(f).rewrites_max * 2 <= pick(f).events_per_network),
        });
        let q = ratio(&|f| pick(f).p99);
        table.push(Row {
            what: format!("event storm, {what}: event reached the agent's queue → port in the hosts file, p50 / p99"),
            ours: fmt(ours, &|f| format!("{} / {} (n={})", secs(pick(f).p50), secs(pick(f).p99), pick(f).samples)),
            theirs: fmt(theirs, &|f| format!("{} / {} (n={})", secs(pick(f).p50), secs(pick(f).p99), pick(f).samples)),
            ratio: q,
            goal: "p99 < 50 ms".into(),
            met: ours.map(|f| pick(f).p99 < 0.05),
        });
    }
    let leases = ours.or(theirs).map_or(0, |f| f.release.leases);
    table.push(Row::lower_is_better(
        format!("lease release, {} ports deleted from one network ({leases} IPv4 leases): first delete sent → dnsmasq holds none of them", sizes.ports),
        ours.map(|f| f.release.total),
        theirs.map(|f| f.release.total),
        secs,
        "faster",
        Some(1.0),
    ));
    table.push(Row {
        // A tail near zero makes a ratio meaningless.
        ratio: None,
        ..Row::lower_is_better(
            "lease release: last delete answered → all leases free".into(),
            ours.map(|f| f.release.tail),
            theirs.map(|f| f.release.tail),
            secs,
            "-",
            None,
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_count_what_came_while_another_was_pending() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        // Applied at 5; the next arrives at 10 (idle), then one at 12 while
        // the one of 10 waits until 20, then one at 30 (idle).
        let a = arrivals(vec![
            (ms(12), ms(20)),
            (ms(0), ms(5)),
            (ms(10), ms(20)),
            (ms(30), ms(31)),
        ]);
        assert_eq!(a.pending, 1);
        let gaps: Vec<u64> = a.gaps.iter().map(|g| (g * 1000.0).round() as u64).collect();
        assert_eq!(gaps, vec![10, 2, 18]);
    }
}
