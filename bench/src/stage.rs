//! What the server-side benchmarks share: a bridge on the private userspace
//! OVS, a real neutron-server, a work directory, and a DHCP agent
//! registered for the host (the server schedules networks only to a live one).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use leasehold_testkit::neutron::NeutronServer;

use crate::agents::{clean, leasehold_binary, Agent, Kind, Setup};

/// The stage of one benchmark; the bridge goes with it.
pub struct Stage {
    /// The server both agents talk to.
    pub server: NeutronServer,
    /// The host name both agents report.
    pub host: String,
    /// The integration bridge.
    pub bridge: String,
    ovsdb: String,
    venv: std::path::PathBuf,
    /// Agents' state directories go below it.
    pub work: tempfile::TempDir,
}

impl Stage {
    /// Starts everything for the benchmark `name` (`sync`, `storm`).
    pub fn start(name: &str, venv: &Path) -> Result<Stage> {
        let ovs = leasehold_testkit::ovs::ovs();
        let pid = std::process::id();
        let bridge = format!("lh{}{}", &name[..1], pid % 100_000);
        leasehold_testkit::ovs::netdev_bridge(&bridge);
        let host = format!("lh-{name}-{pid}");
        std::env::set_var("LEASEHOLD_NEUTRON_VENV", venv);
        eprintln!("{name}: starting neutron-server");
        let server = NeutronServer::start(&host);
        let work = tempfile::Builder::new()
            .prefix(&format!("leasehold-bench-{name}"))
            .tempdir()?;
        let stage = Stage {
            server,
            host,
            bridge,
            ovsdb: ovs.db(),
            venv: venv.to_path_buf(),
            work,
        };
        stage.register()?;
        Ok(stage)
    }

    /// What the agent launcher needs.
    pub fn setup(&self) -> Setup<'_> {
        Setup {
            server: &self.server,
            host: self.host.clone(),
            bridge: self.bridge.clone(),
            ovsdb: self.ovsdb.clone(),
            venv: self.venv.clone(),
            leasehold: leasehold_binary(),
        }
    }

    /// Runs Leasehold until the server lists a live DHCP agent for the host.
    fn register(&self) -> Result<()> {
        let setup = self.setup();
        let dir = self.work.path().join("register");
        let mut agent = Agent::start(Kind::Leasehold, &setup, &dir)?;
        let alive = leasehold_testkit::wait_for(Duration::from_secs(60), || {
            let agents = self.server.get("/v2.0/agents")?;
            agents["agents"]
                .as_array()?
                .iter()
                .any(|a| {
                    a["agent_type"] == "DHCP agent"
                        && a["host"] == self.host.as_str()
                        && a["alive"] == true
                })
                .then_some(())
        });
        agent.stop();
        clean(&dir, &[], &self.bridge);
        if alive.is_none() {
            bail!("the DHCP agent did not register; see {}", dir.display());
        }
        Ok(())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        leasehold_testkit::ovs::del_bridge(&self.bridge);
    }
}
