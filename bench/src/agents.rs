//! The two agents under test, run the same way: the launcher lives in
//! [`leasehold_testkit::agents`] (shared with the migration test); the bench
//! runs the release `leasehold-agent` next to its own binary.

use std::path::PathBuf;

pub use leasehold_testkit::agents::{
    alive, clean, cpu_seconds, cpu_seconds_in, pids_with_cmdline, rss_kib, Agent, Kind, Setup,
};

/// The release `leasehold-agent` built next to this binary.
pub fn leasehold_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("leasehold-agent")
}
