//! Many dnsmasq started at once from several threads, as a sync of many
//! networks does: every spawn succeeds. (Each spawn sweeps zombies named
//! dnsmasq; one sweep used to reap another spawn's foreground parent, whose
//! `wait` then failed with ECHILD — seen by the agent-SIGKILL fault test.)

use leasehold_dnsmasq::process::{self, ProcessSpec};
use leasehold_testkit::privileged;

#[test]
fn concurrent_spawns_all_succeed() {
    if !privileged("concurrent_spawns") {
        return;
    }
    process::become_subreaper().expect("subreaper");
    let dir = tempfile::tempdir().expect("tempdir");
    let specs: Vec<ProcessSpec> = (0..24)
        .map(|i| {
            let uuid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), i);
            let pid_file = dir.path().join(format!("{i}.pid"));
            ProcessSpec {
                argv: vec![
                    "dnsmasq".into(),
                    "--no-hosts".into(),
                    "--no-resolv".into(),
                    "--port=0".into(),
                    "--conf-file=/dev/null".into(),
                    format!("--pid-file={}", pid_file.display()),
                    format!("--dhcp-hostsfile={}/{uuid}/host", dir.path().display()),
                ],
                uuid,
                service: "dnsmasq".into(),
                namespace: None,
                pid_file,
                kill_script: None,
            }
        })
        .collect();
    let results: Vec<Result<i32, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(3)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|s| process::spawn(s).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    // Every daemon that came up, including those of a spawn that failed.
    for pid in specs.iter().filter_map(ProcessSpec::active_pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 24 spawns failed: {failed:?}",
        failed.len()
    );
}
