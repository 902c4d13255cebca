//! Test support for Leasehold's privileged tests: DHCP clients in namespaces
//! of their own, attached to a bridge or a peer namespace, running the real
//! busybox `udhcpc`. Everything made here is removed on drop. [`ovs`] runs a
//! private userspace Open vSwitch for tests that need one; [`agents`] runs
//! Leasehold and the reference neutron-dhcp-agent the same way.
#![allow(clippy::missing_panics_doc)]

pub mod agents;
pub mod neutron;
pub mod ovs;
pub mod rabbit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository's root (testkit/ is one level down): the Python helpers
/// and pinned requirements live in `agent/tests/support/`.
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A path in the read-only reference folder beside the repository
/// (`../shared`, or `$LEASEHOLD_SHARED`): wire samples, golden vectors.
pub fn shared(path: &str) -> PathBuf {
    let base = std::env::var_os("LEASEHOLD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared"));
    base.join(path)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call: `<prefix><pid><n>`, at most 15 bytes.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut name = format!("{prefix}{}x{n}", std::process::id() % 1_000_000);
    name.truncate(15);
    name
}

/// Whether privileged tests can run; in CI (`CI=true`) a non-root run fails.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: privileged test must run as root in CI");
    }
    eprintln!("skipping {test}: needs root (namespaces, veth, dnsmasq)");
    false
}

/// Runs a command; panics with its output on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failure (cleanup).
pub fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// Keeps a root-namespace device layer 2 only: no IPv6, no ARP answers for
/// the host's addresses (best effort: the device may not do IPv6).
pub fn isolate_l2(dev: &str) {
    sh_quiet(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
    ]);
    sh_quiet(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.{dev}.arp_ignore=8"),
    ]);
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(timeout, Duration::from_millis(50), f)
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub fn poll_every<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// What the DHCP client was told, from its script's environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lease {
    /// `bound`, `renew`, `deconfig`, `leasefail`, `nak`.
    pub event: String,
    /// The variables udhcpc passes (`ip`, `router`, `dns`, `domain`, `mtu`, …).
    pub vars: BTreeMap<String, String>,
}

impl Lease {
    /// One variable, empty when absent.
    pub fn get(&self, k: &str) -> &str {
        self.vars.get(k).map(String::as_str).unwrap_or("")
    }
}

/// A DHCP client host: its own namespace, one veth end inside it.
#[derive(Debug)]
pub struct Client {
    /// The client namespace.
    pub ns: String,
    /// The device inside it.
    pub dev: String,
    /// The other end of the veth pair, in the root namespace (bridge mode).
    pub peer: Option<String>,
    /// The Open vSwitch port the device is (OVS mode).
    pub ovs_port: Option<String>,
    dir: tempfile::TempDir,
}

impl Client {
    fn new_ns() -> (String, String, tempfile::TempDir) {
        let ns = format!("lhtest-{}", unique_name("c"));
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        (
            ns,
            unique_name("lhc"),
            tempfile::tempdir().expect("tempdir"),
        )
    }

    /// A client whose veth peer is enslaved to `bridge` in the root namespace,
    /// the peer kept layer-2 only (no IPv6, no ARP answers).
    pub fn on_bridge(bridge: &str) -> Client {
        let (ns, dev, dir) = Self::new_ns();
        let peer = unique_name("lhp");
        sh(&[
            "ip", "link", "add", &peer, "type", "veth", "peer", "name", &dev, "netns", &ns,
        ]);
        let client = Client {
            ns,
            dev,
            peer: Some(peer.clone()),
            ovs_port: None,
            dir,
        };
        isolate_l2(&peer);
        sh(&["ip", "link", "set", &peer, "master", bridge]);
        sh(&["ip", "link", "set", &peer, "up"]);
        client.up();
        client
    }

    /// A client whose veth peer `peer_dev` is put into namespace `peer_ns`.
    pub fn facing(peer_ns: &str, peer_dev: &str) -> Client {
        let (ns, dev, dir) = Self::new_ns();
        sh(&[
            "ip", "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", peer_dev,
            "netns", peer_ns,
        ]);
        let client = Client {
            ns,
            dev,
            peer: None,
            ovs_port: None,
            dir,
        };
        client.up();
        client
    }

    /// A client whose device is an internal port of Open vSwitch bridge
    /// `bridge` (of the private OVS, see [`ovs`]) on access VLAN `tag`,
    /// moved into the client namespace. Internal ports need no checksum
    /// workaround on the userspace datapath, unlike veth.
    pub fn on_ovs(bridge: &str, tag: u16) -> Client {
        let (ns, dev, dir) = Self::new_ns();
        ovs::vsctl(&[
            "add-port",
            bridge,
            &dev,
            &format!("tag={tag}"),
            "--",
            "set",
            "Interface",
            &dev,
            "type=internal",
        ]);
        let client = Client {
            ns,
            ovs_port: Some(dev.clone()),
            dev,
            peer: None,
            dir,
        };
        let sys = std::path::Path::new("/sys/class/net").join(&client.dev);
        wait_for(Duration::from_secs(10), || sys.exists().then_some(()))
            .unwrap_or_else(|| panic!("OVS internal port {} did not appear", client.dev));
        sh(&["ip", "link", "set", &client.dev, "netns", &client.ns]);
        client.up();
        client
    }

    fn up(&self) {
        // No DAD wait before DHCPv6, no stray SLAAC traffic of our own.
        sh_quiet(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.accept_dad=0", self.dev),
        ]);
        sh(&[
            "ip", "netns", "exec", &self.ns, "ip", "link", "set", &self.dev, "up",
        ]);
    }

    /// Runs a command inside the client namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Sets the client device's MAC (the port's MAC it should be served as).
    pub fn set_mac(&self, mac: &str) {
        self.exec(&["ip", "link", "set", &self.dev, "down"]);
        self.exec(&["ip", "link", "set", &self.dev, "address", mac]);
        self.exec(&["ip", "link", "set", &self.dev, "up"]);
    }

    fn script(&self) -> PathBuf {
        let script = self.dir.path().join("udhcpc.sh");
        if !script.exists() {
            let log = self.dir.path().join("events.log");
            let text = format!("#!/bin/sh\n{{ echo \"EVENT=$1\"; env | grep -E '^(ip|subnet|router|dns|domain|mtu|lease|serverid|staticroutes|hostname|opt[0-9]+)='; echo END; }} >> {}\n", log.display());
            std::fs::write(&script, text).expect("script written");
            sh(&["chmod", "755", script.to_str().expect("utf-8 path")]);
        }
        script
    }

    /// Runs `udhcpc` once (`-q`: exit after a lease) with `tries` discover
    /// attempts `timeout_s` apart; returns the lease it bound, if any.
    pub fn udhcpc_once(&self, tries: u32, timeout_s: u32) -> Option<Lease> {
        let script = self.script();
        let log = self.dir.path().join("events.log");
        let _ = std::fs::remove_file(&log);
        let status = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "udhcpc", "-f", "-q", "-n", "-i", &self.dev, "-s",
            ])
            .arg(&script)
            .args([
                "-t",
                &tries.to_string(),
                "-T",
                &timeout_s.to_string(),
                "-A",
                "1",
                "-O",
                "mtu",
                "-O",
                "staticroutes",
            ])
            .output()
            .ok()?;
        let _ = status;
        let text = std::fs::read_to_string(&log).ok()?;
        parse_events(&text)
            .into_iter()
            .rev()
            .find(|l| l.event == "bound")
    }
}

/// The events a client script logged (`EVENT=<name>`, the variables, `END`),
/// in order.
pub fn parse_events(text: &str) -> Vec<Lease> {
    let mut out = Vec::new();
    let mut cur = Lease::default();
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("EVENT=") {
            cur = Lease {
                event: e.to_string(),
                ..Default::default()
            };
        } else if line == "END" {
            out.push(std::mem::take(&mut cur));
        } else if let Some((k, v)) = line.split_once('=') {
            cur.vars.insert(k.to_string(), v.to_string());
        }
    }
    out
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(port) = &self.ovs_port {
            sh_quiet(&["ovs-vsctl", "--timeout=10", "--if-exists", "del-port", port]);
        }
        if let Some(peer) = &self.peer {
            sh_quiet(&["ip", "link", "del", peer]);
        }
        sh_quiet(&["ip", "netns", "pids", &self.ns]);
        sh_quiet(&["ip", "netns", "del", &self.ns]);
    }
}

/// `dhclient -6 -1` on `dev` in namespace `ns`, once its link-local address
/// is usable (DAD is expected off): the lease file it wrote, or `None` when
/// it got no lease within `timeout_s`. dhclient is stopped again. Its files
/// go to `dir`.
pub fn dhclient6_once(ns: &str, dev: &str, dir: &Path, timeout_s: u32) -> Option<String> {
    wait_for(Duration::from_secs(10), || {
        let out = sh(&[
            "ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", dev, "scope", "link",
        ]);
        (out.contains("fe80::") && !out.contains("tentative")).then_some(())
    })?;
    let lease_file = dir.join("dhclient6.leases");
    let pid_file = dir.join("dhclient6.pid");
    // Bound, dhclient forks into the background and writes its pid file;
    // without a lease, timeout ends it.
    let bound = Command::new("timeout")
        .arg(timeout_s.to_string())
        .args([
            "ip",
            "netns",
            "exec",
            ns,
            "dhclient",
            "-6",
            "-1",
            "-sf",
            "/bin/true",
        ])
        .arg("-lf")
        .arg(&lease_file)
        .arg("-pf")
        .arg(&pid_file)
        .arg(dev)
        .status()
        .is_ok_and(|s| s.success());
    kill_pid_file(&pid_file);
    bound.then(|| std::fs::read_to_string(&lease_file).unwrap_or_default())
}

/// SIGKILLs the process whose pid `pid_file` holds, if it names one (for
/// cleanups: a missing file or a gone process is fine).
pub fn kill_pid_file(pid_file: &Path) {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_script_events() {
        let events = parse_events(
            "EVENT=deconfig\nEND\nEVENT=bound\nip=198.51.100.5\nrouter=198.51.100.1\nEND\n",
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].get("ip"), "198.51.100.5");
        assert!(unique_name("averyverylongprefix").len() <= 15);
    }
}
