//! The two agents under test, run the same way: same server, same host
//! name, same interface driver (openvswitch on the private userspace OVS),
//! each with a state directory of its own, stopped and cleaned after use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use leasehold_testkit::neutron::NeutronServer;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Which agent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// leasehold-agent (release build next to this binary).
    Leasehold,
    /// neutron-dhcp-agent from the pinned venv.
    Reference,
}

impl Kind {
    /// Its name in the table.
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
}

/// A running agent with its own state directory.
pub struct Agent {
    /// Which one.
    pub kind: Kind,
    /// Config, state, log.
    pub dir: PathBuf,
    child: Option<Child>,
}

fn leasehold_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("leasehold-agent")
}

impl Agent {
    /// Writes the config (once per directory) and starts the agent.
    pub fn start(kind: Kind, setup: &Setup<'_>, dir: &Path) -> Result<Agent> {
        std::fs::create_dir_all(dir)?;
        let ini = dir.join("dhcp_agent.ini");
        let state = dir.join("state");
        let mut text = format!(
            "[DEFAULT]\ntransport_url = {url}\nhost = {host}\nstate_path = {state}\n\
             interface_driver = openvswitch\ndebug = False\n",
            url = setup.server.vhost.url(),
            host = setup.host,
            state = state.display(),
        );
        if kind == Kind::Leasehold {
            text.push_str("metrics_listen = 127.0.0.1:0\n");
        } else {
            text.push_str(&format!("log_file = {}\n", dir.join("agent.log").display()));
        }
        text.push_str(&format!(
            "[AGENT]\nreport_interval = 5\nroot_helper =\n[OVS]\nintegration_bridge = {}\novsdb_connection = {}\n",
            setup.bridge, setup.ovsdb
        ));
        if kind == Kind::Reference {
            // No sudo here: every privsep context runs the venv's helper directly.
            let helper = format!(
                "{} --config-file {}",
                setup.venv.join("bin/privsep-helper").display(),
                ini.display()
            );
            text.push_str(&format!(
                "[oslo_concurrency]\nlock_path = {}\n",
                dir.join("lock").display()
            ));
            for section in [
                "privsep",
                "privsep_dhcp_release",
                "privsep_ovs_vsctl",
                "privsep_namespace",
                "privsep_conntrack",
                "privsep_link",
            ] {
                text.push_str(&format!("[{section}]\nhelper_command = {helper}\n"));
            }
        }
        std::fs::write(&ini, text)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(match kind {
                Kind::Leasehold => "agent.log",
                Kind::Reference => "agent.stderr",
            }))?;
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            setup.venv.join("bin").display()
        );
        let mut cmd = match kind {
            Kind::Leasehold => {
                let mut c = Command::new(leasehold_binary());
                c.env("RUST_LOG", "info,netlink_packet_route=error");
                c
            }
            Kind::Reference => Command::new(setup.venv.join("bin/neutron-dhcp-agent")),
        };
        let child = cmd
            .arg("--config-file")
            .arg(&ini)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        Ok(Agent {
            kind,
            dir: dir.to_path_buf(),
            child: Some(child),
        })
    }

    /// The agent's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// The state directory's dhcp dir.
    pub fn confs(&self) -> PathBuf {
        self.dir.join("state/dhcp")
    }

    /// How many "synchronizing state complete" lines the log has.
    pub fn syncs_completed(&self) -> usize {
        self.log()
            .to_ascii_lowercase()
            .matches("synchronizing state complete")
            .count()
    }

    /// SIGTERM, then SIGKILL after 15 s; dnsmasq is left running (as on a
    /// real agent restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // The reference's privsep daemons outlive it for a moment; they were
        // started with our config file, which names them.
        for pid in pids_with_cmdline(&self.dir.join("dhcp_agent.ini").display().to_string()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
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
        leasehold_testkit::sh_quiet(&["ip", "netns", "del", &format!("qdhcp-{net}")]);
    }
    // Every port on the bridge is one an agent plugged: the bridge is ours.
    if let Ok(out) = Command::new("ovs-vsctl")
        .args(["--timeout=10", "list-ports", bridge])
        .output()
    {
        for port in String::from_utf8_lossy(&out.stdout).lines() {
            leasehold_testkit::sh_quiet(&[
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
