//! Shared by the fault tests: the agent binary in `file://` mode over a
//! temporary state directory, networks described by the test, and the
//! check that the host equals what the server says — every network's
//! namespace, device, addresses, files and one dnsmasq, and nothing left of
//! networks that are gone.
#![allow(dead_code)]

pub mod private_rabbit;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leasehold_testkit::{sh_quiet, wait_for, Client};
use serde_json::{json, Value};

/// One network as the test's server describes it: one IPv4 subnet
/// (198.51.100.0/24, each network on its own bridge) and some ports.
#[derive(Clone, Debug)]
pub struct Net {
    /// The network's UUID.
    pub id: String,
    /// Ports: (MAC, IPv4 address).
    pub ports: Vec<(String, String)>,
}

impl Net {
    /// A fresh network with `ports` compute ports, MACs fa:16:3e:<tag>:…
    pub fn new(tag: u8, ports: u8) -> Net {
        let id = uuid::Uuid::new_v4().to_string();
        let ports = (0..ports)
            .map(|n| {
                (
                    format!(
                        "fa:16:3e:{tag:02x}:{:02x}:{n:02x}",
                        std::process::id() as u8
                    ),
                    format!("198.51.100.{}", 10 + n as u32),
                )
            })
            .collect();
        Net { id, ports }
    }

    /// Adds a port with the next address.
    pub fn add_port(&mut self, tag: u8) {
        let n = self.ports.len();
        self.ports.push((
            format!(
                "fa:16:3e:{tag:02x}:{:02x}:{n:02x}",
                std::process::id() as u8
            ),
            format!("198.51.100.{}", 10 + n),
        ));
    }

    /// The network dict of the networks file.
    pub fn json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(n, (mac, ip))| {
                json!({"id": format!("{}-p{n}", &self.id[..13]), "mac_address": mac,
                       "device_owner": "compute:nova", "device_id": format!("vm-{n}"),
                       "fixed_ips": [{"subnet_id": format!("{}-v4", &self.id[..8]), "ip_address": ip}]})
            })
            .collect();
        json!({"id": self.id, "project_id": "faults", "mtu": 1400, "admin_state_up": true,
               "subnets": [{"id": format!("{}-v4", &self.id[..8]), "cidr": "198.51.100.0/24", "ip_version": 4,
                            "gateway_ip": "198.51.100.1", "enable_dhcp": true, "dns_nameservers": ["198.51.100.53"]}],
               "ports": ports})
    }

    /// `qdhcp-<id>`.
    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.id)
    }

    /// `brq<id[:11]>`.
    pub fn bridge(&self) -> String {
        format!("brq{}", &self.id[..11])
    }
}

/// The agent binary in `file://` mode with the Linux bridge driver.
pub struct Standalone {
    /// Its working directory: agent.ini, networks.json, agent.log, state/.
    pub dir: tempfile::TempDir,
    /// `[DEFAULT] host`, unique per agent.
    pub host: String,
    /// The Open vSwitch bridge, when the driver is `openvswitch`.
    pub ovs_bridge: Option<String>,
    child: Option<Child>,
    /// Every network id this test ever described (for the leftover check and cleanup).
    known: Mutex<BTreeSet<String>>,
    /// Every root-namespace device the agent made (for the leftover check and cleanup).
    devices: Mutex<BTreeSet<String>>,
    /// Unmounted on drop (mounts a test put under the state directory).
    pub mounts: Mutex<Vec<PathBuf>>,
}

impl Standalone {
    /// A configuration with `resync_interval = 1` and `extra` appended to `[DEFAULT]`.
    pub fn new(extra: &str) -> Standalone {
        Self::with_transport("file://networks.json", extra)
    }

    /// The same with another `transport_url` (a `rabbit://` one).
    pub fn with_transport(url: &str, extra: &str) -> Standalone {
        Self::configured(url, "linuxbridge", extra, "")
    }

    /// `file://` mode on the Open vSwitch `bridge` of the private OVS
    /// (`leasehold_testkit::ovs`).
    pub fn on_ovs(bridge: &str, extra: &str) -> Standalone {
        let tail = format!(
            "[OVS]\nintegration_bridge = {bridge}\novsdb_connection = {}\n",
            leasehold_testkit::ovs::ovs().db()
        );
        let mut s = Self::configured("file://networks.json", "openvswitch", extra, &tail);
        s.ovs_bridge = Some(bridge.to_string());
        s
    }

    /// Any transport and interface driver; `tail` is appended (more sections).
    pub fn configured(url: &str, driver: &str, extra: &str, tail: &str) -> Standalone {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!(
            "lh-fault-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        std::fs::write(
            dir.path().join("agent.ini"),
            format!(
                "[DEFAULT]\ntransport_url = {url}\nstate_path = {}\ninterface_driver = {driver}\nhost = {host}\nresync_interval = 1\nresync_throttle = 0\n{extra}\n[AGENT]\ncheck_child_processes_interval = 5\nreport_interval = 5\n{tail}",
                dir.path().join("state").display(),
            ),
        )
        .expect("agent.ini");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        Standalone {
            dir,
            host,
            ovs_bridge: None,
            child: None,
            known: Mutex::new(BTreeSet::new()),
            devices: Mutex::new(BTreeSet::new()),
            mounts: Mutex::new(Vec::new()),
        }
    }

    /// Writes the networks file (whole, then renamed).
    pub fn write(&self, nets: &[&Net]) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(nets.iter().map(|n| n.id.clone()));
        let doc = json!({"networks": nets.iter().map(|n| n.json()).collect::<Vec<_>>()});
        let tmp = self.dir.path().join(".networks.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&doc).expect("json")).expect("write");
        std::fs::rename(&tmp, self.dir.path().join("networks.json")).expect("rename");
    }

    /// Remembers an id the test made host state for outside the networks file.
    pub fn remember(&self, id: &str) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }

    /// Remembers a root-namespace device that must be gone once converged.
    pub fn remember_device(&self, dev: &str) {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dev.to_string());
    }

    /// Starts the agent binary; its log goes to agent.log (appended).
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
            .arg("--config-file")
            .arg(self.dir.path().join("agent.ini"))
            .env("RUST_LOG", "info,netlink_packet_route=error")
            // Relative paths, if any were followed, would land here and be seen.
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        self.child = Some(child);
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs the agent (dnsmasq, its children, live on).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator stops it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the agent process still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log().contains(text).then_some(())).is_some()
    }

    /// `<state>/dhcp`.
    pub fn confs(&self) -> PathBuf {
        self.dir.path().join("state/dhcp")
    }

    /// `<state>/dhcp/<id>`.
    pub fn conf_dir(&self, id: &str) -> PathBuf {
        self.confs().join(id)
    }

    /// Live (not zombie) dnsmasq processes whose command line names this
    /// network's config directory.
    pub fn dnsmasq_pids(&self, id: &str) -> Vec<i32> {
        self.pids_in(&dnsmasq_processes(), id)
    }

    /// The same from a list made once (a check of a thousand networks
    /// would otherwise read /proc a thousand times).
    fn pids_in(&self, procs: &[(i32, String)], id: &str) -> Vec<i32> {
        let needle = format!("{}/", self.conf_dir(id).display());
        procs
            .iter()
            .filter(|(_, cmd)| cmd.contains(&needle))
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// The pid in the network's pid file, if any.
    pub fn pid_file(&self, id: &str) -> Option<i32> {
        std::fs::read_to_string(self.conf_dir(id).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The one dnsmasq serving `id`, if exactly one runs and the pid file names it.
    pub fn dnsmasq(&self, id: &str) -> Option<i32> {
        match self.dnsmasq_pids(id).as_slice() {
            [pid] if self.pid_file(id) == Some(*pid) => Some(*pid),
            _ => None,
        }
    }

    /// What is wrong with the host compared with `nets` (the server's view);
    /// `Ok` when it matches exactly.
    pub fn check(&self, nets: &[&Net]) -> Result<(), String> {
        let mut problems = Vec::new();
        let procs = dnsmasq_processes();
        for net in nets {
            if let Err(p) = self.check_net(net, &procs) {
                problems.push(format!("network {}: {p}", net.id));
            }
        }
        // No leftovers of networks the server no longer has.
        let expected: BTreeSet<&str> = nets.iter().map(|n| n.id.as_str()).collect();
        let on_disk: BTreeSet<String> = std::fs::read_dir(self.confs())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        for extra in on_disk.iter().filter(|n| !expected.contains(n.as_str())) {
            problems.push(format!("leftover config dir {extra}"));
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for gone in known.iter().filter(|k| !expected.contains(k.as_str())) {
            if Path::new("/run/netns")
                .join(format!("qdhcp-{gone}"))
                .exists()
            {
                problems.push(format!("leftover namespace qdhcp-{gone}"));
            }
            let pids = self.pids_in(&procs, gone);
            if !pids.is_empty() {
                problems.push(format!("leftover dnsmasq {pids:?} of {gone}"));
            }
        }
        let live: BTreeSet<String> = nets
            .iter()
            .filter_map(|n| self.root_device(&n.id))
            .collect();
        let devices = self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for dev in devices.iter().filter(|d| !live.contains(*d)) {
            if Path::new("/sys/class/net").join(dev).exists() {
                problems.push(format!("leftover device {dev}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The root end (`tap…`) of the network's DHCP device, from its `interface` file.
    pub fn root_device(&self, id: &str) -> Option<String> {
        let iface = std::fs::read_to_string(self.conf_dir(id).join("interface")).ok()?;
        let iface = iface.trim();
        iface.strip_prefix("ns-").map(|s| format!("tap{s}"))
    }

    fn check_net(&self, net: &Net, procs: &[(i32, String)]) -> Result<(), String> {
        let dir = self.conf_dir(&net.id);
        for f in ["host", "addn_hosts", "opts", "leases", "pid", "interface"] {
            if !dir.join(f).is_file() {
                return Err(format!("no {f} file"));
            }
        }
        let host = std::fs::read_to_string(dir.join("host")).unwrap_or_default();
        for (mac, ip) in &net.ports {
            if !host
                .lines()
                .any(|l| l.starts_with(mac.as_str()) && l.ends_with(ip.as_str()))
            {
                return Err(format!("host file lacks {mac} {ip}:\n{host}"));
            }
        }
        let lines = host.lines().filter(|l| l.starts_with("fa:16:3e:")).count();
        // The DHCP port's own line too, when the server lists that port.
        if lines != net.ports.len() && lines != net.ports.len() + 1 {
            return Err(format!(
                "host file has {lines} lines for {} ports:\n{host}",
                net.ports.len()
            ));
        }
        let ns = net.namespace();
        if !Path::new("/run/netns").join(&ns).exists() {
            return Err(format!("no namespace {ns}"));
        }
        let iface = std::fs::read_to_string(dir.join("interface")).unwrap_or_default();
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "-4", "addr", "show", "dev", iface.trim()])
            .output()
            .map_err(|e| e.to_string())?;
        let addrs = String::from_utf8_lossy(&out.stdout);
        if !addrs.contains("198.51.100.") {
            return Err(format!("device {} has no address: {addrs:?}", iface.trim()));
        }
        if let Some(bridge) = &self.ovs_bridge {
            // The internal port is in the namespace; OVS must still have it.
            let out = Command::new("ovs-vsctl")
                .args(["--timeout=5", "port-to-br", iface.trim()])
                .output()
                .map_err(|e| e.to_string())?;
            let on = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if &on != bridge {
                return Err(format!("port {} is on {on:?}, not {bridge}", iface.trim()));
            }
        } else {
            let tap = self
                .root_device(&net.id)
                .ok_or("interface file names no ns- device")?;
            let master = std::fs::read_link(format!("/sys/class/net/{tap}/master"))
                .map_err(|e| format!("root device {tap}: {e}"))?;
            if !master.ends_with(net.bridge()) {
                return Err(format!("{tap} is on {}", master.display()));
            }
            self.devices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(tap);
        }
        let pids = self.pids_in(procs, &net.id);
        if pids.len() != 1 || self.pid_file(&net.id) != pids.first().copied() {
            return Err(format!(
                "dnsmasq processes {pids:?}, pid file {:?}",
                self.pid_file(&net.id)
            ));
        }
        Ok(())
    }

    /// Waits until the host matches `nets`; panics with the problems and the log.
    pub fn assert_converged(&self, nets: &[&Net], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.check(nets) {
                Ok(()) => return,
                Err(p) if Instant::now() >= deadline => {
                    panic!(
                        "host does not match the server:\n{p}\n--- agent log\n{}",
                        tail(&self.log(), 60)
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A client on the network's bridge with port `n`'s MAC gets exactly that port's address.
    pub fn assert_lease(&self, net: &Net, n: usize) {
        self.assert_lease_with(net, n, &Client::on_bridge(&net.bridge()));
    }

    /// The same with a client of the test's making (e.g. on an OVS VLAN).
    pub fn assert_lease_with(&self, net: &Net, n: usize, client: &Client) {
        // Only when it differs: a link flap of an OVS internal port needs
        // ovs-vswitchd to reconfigure, which it cannot without its database.
        let mac = client.exec(&["cat", &format!("/sys/class/net/{}/address", client.dev)]);
        if mac.trim() != net.ports[n].0 {
            client.set_mac(&net.ports[n].0);
        }
        let lease = client
            .udhcpc_once(10, 1)
            .unwrap_or_else(|| panic!("no lease on {}:\n{}", net.id, tail(&self.log(), 40)));
        assert_eq!(lease.get("ip"), net.ports[n].1, "{:?}", lease);
        assert_eq!(lease.get("router"), "198.51.100.1");
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every live dnsmasq on the host: (pid, command line joined by spaces).
pub fn dnsmasq_processes() -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.starts_with("dnsmasq ") || !alive(pid) {
            continue;
        }
        out.push((pid, cmd));
    }
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

impl Drop for Standalone {
    fn drop(&mut self) {
        self.stop();
        let state = format!("{}/", self.dir.path().join("state").display());
        for (pid, cmd) in dnsmasq_processes() {
            if cmd.contains(&state) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for m in self
            .mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
        {
            sh_quiet(&["umount", "-l", &m.display().to_string()]);
        }
        // One `ip -batch` for all: a load test leaves a thousand of each.
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut batch = String::new();
        for id in &known {
            batch.push_str(&format!("netns del qdhcp-{id}\n"));
        }
        for id in &known {
            batch.push_str(&format!("link del brq{}\n", &id[..11]));
        }
        for dev in self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            batch.push_str(&format!("link del {dev}\n"));
        }
        ip_batch(&batch);
        for id in &known {
            // A stale entry that was never a namespace.
            let _ = std::fs::remove_file(format!("/run/netns/qdhcp-{id}"));
        }
    }
}

/// Runs `ip -force -batch -` on `commands`, ignoring failures (cleanup).
fn ip_batch(commands: &str) {
    use std::io::Write as _;
    let Ok(mut child) = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(commands.as_bytes());
    }
    let _ = child.wait();
}
