//! `leasehold-bench`: measures Leasehold against the reference
//! neutron-dhcp-agent in the same run on the same machine and prints a
//! markdown table of ratios. See `leasehold-bench --help`.

mod agents;
mod machine;
mod memory;
mod observe;
mod render;
mod stage;
mod storm;
mod sync;
mod table;
mod util;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Side-by-side benchmarks: Leasehold vs neutron-dhcp-agent (pinned venv).
#[derive(Parser)]
#[command(name = "leasehold-bench")]
struct Cli {
    /// Smaller sizes and fewer rounds, for a quick look.
    #[arg(long, global = true)]
    quick: bool,
    /// The venv with the pinned neutron (default: $LEASEHOLD_NEUTRON_VENV or target/neutron-venv).
    #[arg(long, global = true)]
    venv: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

/// Which measurements to run.
#[derive(Subcommand, Clone, Copy, PartialEq)]
enum What {
    /// Everything, in priority order.
    All,
    /// Render host/addn_hosts/opts: Leasehold's renderer vs neutron's Dnsmasq driver.
    Render,
    /// Full sync, restart and memory on a real neutron-server, vs the reference and a floor.
    Sync {
        /// Networks to make (each with one subnet and three ports).
        #[arg(long, default_value_t = 50)]
        networks: usize,
        /// Only Leasehold (and the floor), not the reference.
        #[arg(long)]
        leasehold_only: bool,
    },
    /// Memory (and the node-reboot sync) at a larger size than `sync`:
    /// each agent syncs the same networks once and its RSS is read.
    Memory {
        /// Networks to make (each with one subnet and three ports).
        #[arg(long, default_value_t = 1000)]
        networks: usize,
        /// Only Leasehold, not the reference.
        #[arg(long)]
        leasehold_only: bool,
    },
    /// Event storm (1,000 port creates on one network and over 100) and the
    /// lease release of 1,000 deleted ports, on a real neutron-server.
    Storm {
        /// Only Leasehold, not the reference.
        #[arg(long)]
        leasehold_only: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let venv = cli
        .venv
        .or_else(|| std::env::var_os("LEASEHOLD_NEUTRON_VENV").map(PathBuf::from))
        .unwrap_or_else(|| util::repo_root().join("target/neutron-venv"));
    let mut table = table::Table::default();
    let all = cli.what == What::All;
    if all || cli.what == What::Render {
        render::run(&mut table, &venv, cli.quick)?;
    }
    let both = [agents::Kind::Leasehold, agents::Kind::Reference];
    if all {
        let sizes: &[usize] = if cli.quick { &[20] } else { &[50, 200] };
        for &n in sizes {
            sync::run(&mut table, &venv, n, &both)?;
        }
    }
    if let What::Sync {
        networks,
        leasehold_only,
    } = cli.what
    {
        let which: &[agents::Kind] = if leasehold_only { &both[..1] } else { &both };
        sync::run(&mut table, &venv, networks, which)?;
    }
    if all {
        memory::run(&mut table, &venv, if cli.quick { 50 } else { 1000 }, &both)?;
    }
    if let What::Memory {
        networks,
        leasehold_only,
    } = cli.what
    {
        let which: &[agents::Kind] = if leasehold_only { &both[..1] } else { &both };
        memory::run(&mut table, &venv, networks, which)?;
    }
    let storm_sizes = if cli.quick {
        storm::Sizes {
            ports: 200,
            spread: 20,
        }
    } else {
        storm::Sizes {
            ports: 1000,
            spread: 100,
        }
    };
    if all {
        storm::run(&mut table, &venv, storm_sizes, &both)?;
    }
    if let What::Storm { leasehold_only } = cli.what {
        let which: &[agents::Kind] = if leasehold_only { &both[..1] } else { &both };
        storm::run(&mut table, &venv, storm_sizes, which)?;
    }
    println!("{}", machine::describe());
    println!();
    println!("{}", table.markdown());
    Ok(())
}
