//! Memory at a size too large for the whole sync suite (1,000 networks):
//! the DHCP ports are made once by a Leasehold sync that is not timed, then
//! each agent syncs as after a node reboot (DHCP ports on the server,
//! nothing local) and its RSS is read once the sync has settled. Both
//! agents are measured after the same kind of sync; the reboot sync's time
//! comes out of it too.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::agents::{clean, Agent, Kind, Setup};
use crate::stage::Stage;
use crate::sync::{
    agent_rss, create_networks, delete_dhcp_ports, keep_log, purge_agent_queues, push_memory_rows,
    wait_converged, Net, SETTLE,
};
use crate::table::{mib, secs, Row, Table};

/// One agent's figures.
struct Figures {
    /// Start to converged after a node reboot, seconds.
    reboot: f64,
    /// RSS of the agent process, KiB.
    rss: u64,
    /// RSS with helper processes, KiB.
    rss_total: u64,
}

/// Starts `kind` on a node with nothing local, waits until it serves every
/// network, reads its memory, stops it and removes what it made.
fn synced_once(kind: Kind, setup: &Setup<'_>, nets: &[Net], dir: &Path) -> Result<Figures> {
    let ids: Vec<String> = nets.iter().map(|n| n.id.clone()).collect();
    let timeout = Duration::from_secs(120 + 3 * nets.len() as u64);
    purge_agent_queues(setup);
    let result = (|| {
        let start = Instant::now();
        let mut agent = Agent::start(kind, setup, dir)?;
        let (reboot, _) = wait_converged(&agent, nets, 1, start, timeout)?;
        std::thread::sleep(SETTLE);
        let (rss, rss_total) = agent_rss(&agent);
        // With LEASEHOLD_AGENT_RUST_LOG=info,leasehold_agent::memory=debug
        // Leasehold's log has its heap figures after the sync.
        keep_log(&agent, "memory");
        agent.stop();
        Ok(Figures {
            reboot,
            rss,
            rss_total,
        })
    })();
    clean(dir, &ids, &setup.bridge);
    result
}

/// Adds the memory rows (and the reboot sync's time) for `n` networks.
pub fn run(table: &mut Table, venv: &Path, n: usize, which: &[Kind]) -> Result<()> {
    let stage = Stage::start("memory", venv)?;
    let setup = stage.setup();
    let t = Instant::now();
    let nets = create_networks(&stage.server, &setup.host, n);
    eprintln!(
        "memory {n}: {} networks made in {}",
        nets.len(),
        secs(t.elapsed().as_secs_f64())
    );
    // The DHCP ports, once, so that neither agent's figure includes making them.
    delete_dhcp_ports(&stage.server)?;
    let t = Instant::now();
    synced_once(
        Kind::Leasehold,
        &setup,
        &nets,
        &stage.work.path().join("dhcp-ports"),
    )?;
    eprintln!(
        "  DHCP ports made by a first sync in {}",
        secs(t.elapsed().as_secs_f64())
    );
    let mut figs: BTreeMap<&str, Figures> = BTreeMap::new();
    for &kind in which {
        match synced_once(kind, &setup, &nets, &stage.work.path().join(kind.name())) {
            Ok(f) => {
                eprintln!(
                    "  {}: synced in {}, RSS {} ({} with helpers)",
                    kind.name(),
                    secs(f.reboot),
                    mib(f.rss as f64),
                    mib(f.rss_total as f64)
                );
                figs.insert(kind.name(), f);
            }
            Err(e) => eprintln!("  {} failed: {e:#}", kind.name()),
        }
    }
    let ours = figs.get(Kind::Leasehold.name());
    let theirs = figs.get(Kind::Reference.name());
    let both = |g: fn(&Figures) -> f64| (ours.map(g), theirs.map(g));
    push_memory_rows(
        table,
        &format!("{n} networks (after a node-reboot sync)"),
        ours.map(|f| (f.rss, f.rss_total)),
        theirs.map(|f| (f.rss, f.rss_total)),
    );
    let (o, t) = both(|f| f.reboot);
    table.push(Row::lower_is_better(
        format!("full sync after a node reboot, {n} networks (DHCP ports exist on the server, nothing local)"),
        o,
        t,
        secs,
        "≥ 10× faster",
        Some(10.0),
    ));
    Ok(())
}
