//! The two DHCP agents, run the same way: Leasehold and the reference
//! neutron-dhcp-agent from the pinned venv, against the same
//! [`NeutronServer`], with the same host name and the `openvswitch` interface
//! driver on the private userspace OVS ([`crate::ovs`]).
//!
//! Both read the *same* two files, as on a real node: `neutron.conf`
//! (transport, host, state_path, log_file, lock_path, and the privsep helper
//! commands: there is no sudo here, so every privsep context runs the venv's
//! helper directly) and `dhcp_agent.ini` (interface driver, `[AGENT]`,
//! `[OVS]`). Options one agent does not know are ignored by the reference
//! and noted by Leasehold. Both log to `<dir>/agent.log` (appended, one
//! after the other when they take turns); what they print before logging is
//! set up goes to `<dir>/agent.stderr`.
//!
//! Used by the bench (side-by-side figures) and by the migration test
//! (one agent handing over to the other in the same directory).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::neutron::NeutronServer;

/// Which agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// leasehold-agent (the binary [`Setup::leasehold`] names).
    Leasehold,
    /// neutron-dhcp-agent from the pinned venv.
    Reference,
}

impl Kind {
    /// Its name in tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Leasehold => "Leasehold",
            Kind::Reference => "neutron-dhcp-agent",
        }
    }
}

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
    /// The leasehold-agent binary (tests: `env!("CARGO_BIN_EXE_leasehold-agent")`).
    pub leasehold: PathBuf,
}

/// The config files of an agent directory, in `--config-file` order.
pub fn config_files(dir: &Path) -> [PathBuf; 2] {
    [dir.join("neutron.conf"), dir.join("dhcp_agent.ini")]
}

/// Writes `neutron.conf` and `dhcp_agent.ini` into `dir` (the same for both
/// agents); returns them in `--config-file` order.
pub fn write_config(setup: &Setup<'_>, dir: &Path) -> io::Result<[PathBuf; 2]> {
    std::fs::create_dir_all(dir)?;
    let files = config_files(dir);
    let [conf, ini] = &files;
    let helper = format!(
        "{} --config-file {} --config-file {}",
        setup.venv.join("bin/privsep-helper").display(),
        conf.display(),
        ini.display()
    );
    let mut neutron = format!(
        "[DEFAULT]\ntransport_url = {url}\nhost = {host}\nstate_path = {state}\ndebug = False\n\
         log_file = {log}\n[oslo_concurrency]\nlock_path = {lock}\n",
        url = setup.server.vhost.url(),
        host = setup.host,
        state = dir.join("state").display(),
        log = dir.join("agent.log").display(),
        lock = dir.join("lock").display(),
    );
    for section in [
        "privsep",
        "privsep_dhcp_release",
        "privsep_ovs_vsctl",
        "privsep_namespace",
        "privsep_conntrack",
        "privsep_link",
    ] {
        neutron.push_str(&format!("[{section}]\nhelper_command = {helper}\n"));
    }
    let agent = format!(
        "[DEFAULT]\ninterface_driver = openvswitch\nmetrics_listen = 127.0.0.1:0\n\
         [AGENT]\nreport_interval = 5\nroot_helper =\n\
         [OVS]\nintegration_bridge = {}\novsdb_connection = {}\n",
        setup.bridge, setup.ovsdb
    );
    std::fs::write(conf, neutron)?;
    std::fs::write(ini, agent)?;
    Ok(files)
}

/// A running agent in a directory of its own (config, state, log).
pub struct Agent {
    /// Which one.
    pub kind: Kind,
    /// Config, state, log.
    pub dir: PathBuf,
    child: Option<Child>,
    log_start: u64,
}

impl Agent {
    /// Starts the agent with the directory's config files, writing them
    /// first if they are not there yet.
    pub fn start(kind: Kind, setup: &Setup<'_>, dir: &Path) -> io::Result<Agent> {
        let files = config_files(dir);
        if !files.iter().all(|f| f.is_file()) {
            write_config(setup, dir)?;
        }
        let log_start = std::fs::metadata(dir.join("agent.log")).map_or(0, |m| m.len());
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.stderr"))?;
        let stdout = stderr.try_clone()?;
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            setup.venv.join("bin").display()
        );
        let mut cmd = match kind {
            Kind::Leasehold => {
                let mut c = Command::new(&setup.leasehold);
                // LEASEHOLD_AGENT_RUST_LOG: more detail for a look by hand.
                let filter = std::env::var("LEASEHOLD_AGENT_RUST_LOG")
                    .unwrap_or_else(|_| "info,netlink_packet_route=error".into());
                c.env("RUST_LOG", filter).env("NO_COLOR", "1");
                c
            }
            Kind::Reference => Command::new(setup.venv.join("bin/neutron-dhcp-agent")),
        };
        for f in &files {
            cmd.arg("--config-file").arg(f);
        }
        let child = cmd
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", kind.name())))?;
        Ok(Agent {
            kind,
            dir: dir.to_path_buf(),
            child: Some(child),
            log_start,
        })
    }

    /// The agent's pid (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the agent process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The directory's whole log (every agent that ran in it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// What this agent logged since it started (the log is shared by
    /// agents taking turns in the directory).
    pub fn own_log(&self) -> String {
        let all = std::fs::read(self.dir.join("agent.log")).unwrap_or_default();
        let from = (self.log_start as usize).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }

    /// What the agent printed outside its log (tracebacks, early errors).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.stderr")).unwrap_or_default()
    }

    /// The state directory's dhcp dir (`<state_path>/dhcp`).
    pub fn confs(&self) -> PathBuf {
        self.dir.join("state/dhcp")
    }

    /// How many "synchronizing state complete" lines the whole log has.
    pub fn syncs_completed(&self) -> usize {
        count_syncs(&self.log())
    }

    /// How many full syncs this agent has completed since it started.
    pub fn own_syncs_completed(&self) -> usize {
        count_syncs(&self.own_log())
    }

    /// SIGTERM, then SIGKILL after 15 s; dnsmasq is left running (as on a
    /// real agent restart). Returns whether the agent exited on SIGTERM
    /// (false also when it was not running).
    pub fn stop(&mut self) -> bool {
        let mut clean = false;
        if let Some(mut child) = self.child.take() {
            // The reference runs its work in a forked worker whose command
            // line no longer names the config; after a SIGKILL of the master
            // it would go on (consuming the agent's queues) until its own
            // graceful shutdown ends. Leasehold's children are dnsmasq.
            let helpers: Vec<(i32, u64)> = match self.kind {
                Kind::Reference => descendants(child.id() as i32)
                    .into_iter()
                    .filter(|p| comm(*p).as_deref() != Some("dnsmasq"))
                    .filter_map(|p| Some((p, start_time(p)?)))
                    .collect(),
                Kind::Leasehold => Vec::new(),
            };
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    clean = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            for (pid, started) in helpers {
                if start_time(pid) == Some(started) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            // The reference's privsep daemons outlive it for a moment; they
            // were started with our config file, which names them. Only
            // after a stop of our own: an agent already stopped must not hit
            // a successor started in the same directory.
            for pid in pids_with_cmdline(&config_files(&self.dir)[1].display().to_string()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        clean
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/proc/<pid>/stat` fields after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The start time of a live process (clock ticks since boot), to tell it
/// from a later one with the same pid.
fn start_time(pid: i32) -> Option<u64> {
    let f = stat_fields(pid)?;
    if matches!(f.first().map(String::as_str), Some("Z") | Some("X")) {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// The command name of a process.
fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
}

/// Every process below `pid` (children, their children, …).
fn descendants(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| Some((p, stat_fields(p)?.get(1)?.parse().ok()?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parents {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

fn count_syncs(log: &str) -> usize {
    log.to_ascii_lowercase()
        .matches("synchronizing state complete")
        .count()
}

/// Pids whose command line contains `needle` (not ours).
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Whether `pid` runs and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(after != 'Z' && after != 'X')
        })
        .unwrap_or(false)
}

/// Resident set size of `pid` in KiB (0 if gone).
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Removes everything an agent made for `networks`: dnsmasq (by the pid
/// file in its state dir), namespaces, and the OVS ports on our bridge.
pub fn clean(agent_dir: &Path, networks: &[String], bridge: &str) {
    let confs = agent_dir.join("state/dhcp");
    for net in networks {
        if let Some(pid) = std::fs::read_to_string(confs.join(net).join("pid"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(net.as_str()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        crate::sh_quiet(&["ip", "netns", "del", &format!("qdhcp-{net}")]);
    }
    // Every port on the bridge is one an agent plugged: the bridge is ours.
    if let Ok(out) = Command::new("ovs-vsctl")
        .args(["--timeout=10", "list-ports", bridge])
        .output()
    {
        for port in String::from_utf8_lossy(&out.stdout).lines() {
            crate::sh_quiet(&[
                "ovs-vsctl",
                "--timeout=10",
                "--if-exists",
                "del-port",
                bridge,
                port,
            ]);
        }
    }
    let _ = std::fs::remove_dir_all(agent_dir.join("state"));
}

/// CPU seconds used by `pid` and its reaped children (utime + stime +
/// cutime + cstime), 0 if gone.
pub fn cpu_seconds(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // Fields after the command: state is 3rd overall; utime..cstime are 14..17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = (11..15).filter_map(|i| f.get(i)?.parse::<f64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / hz
}

/// CPU seconds of every process whose working directory is `dir` (the
/// neutron-server's processes run in theirs).
pub fn cpu_seconds_in(dir: &Path) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir))
        .map(cpu_seconds)
        .sum()
}
