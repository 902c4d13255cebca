//! The two agents under test, run the same way: the launcher lives in
//! [`leasehold_testkit::agents`] (shared with the migration test); this is
//! the bench's adapter, which runs the release `leasehold-agent` next to
//! this binary.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use anyhow::Result;
use leasehold_testkit::agents as kit;
use leasehold_testkit::neutron::NeutronServer;

pub use kit::{alive, clean, cpu_seconds, cpu_seconds_in, pids_with_cmdline, rss_kib, Kind};

/// What both agents share.
pub struct Setup<'a> {
    /// The server.
    pub server: &'a NeutronServer,
    /// The host name both report (so networks stay scheduled to "this" host).
    pub host: String,
    /// The integration bridge on the private OVS.
    pub bridge: String,
    /// `unix:<db.sock>` of the private OVS.
    pub ovsdb: String,
    /// The pinned venv.
    pub venv: PathBuf,
}

fn leasehold_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("leasehold-agent")
}

/// A running agent with its own state directory (the testkit's, started
/// with the bench's binary).
pub struct Agent(kit::Agent);

impl Agent {
    /// Writes the config (if the directory has none) and starts the agent.
    pub fn start(kind: Kind, setup: &Setup<'_>, dir: &Path) -> Result<Agent> {
        let setup = kit::Setup {
            server: setup.server,
            host: setup.host.clone(),
            bridge: setup.bridge.clone(),
            ovsdb: setup.ovsdb.clone(),
            venv: setup.venv.clone(),
            leasehold: leasehold_binary(),
        };
        Ok(Agent(kit::Agent::start(kind, &setup, dir)?))
    }
}

impl Deref for Agent {
    type Target = kit::Agent;
    fn deref(&self) -> &kit::Agent {
        &self.0
    }
}

impl DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut kit::Agent {
        &mut self.0
    }
}
