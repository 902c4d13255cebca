//! The dnsmasq `DhcpDriver`: files on disk, one dnsmasq per network in its
//! namespace, adoption of what an earlier agent left running, reloads,
//! lease release, and the monitor registration.
//!
//! ## Reloading around the dnsmasq 2.90 SIGHUP crash
//!
//! dnsmasq 2.90 frees a `dhcp-host` config twice while re-reading
//! `--dhcp-hostsfile` on SIGHUP once that file has held a line with
//! `set:<tag>` (every port with extra_dhcp_opts has one), and dies. Neutron
//! then serves no DHCP on that network until its 60 s check respawns it.
//!
//! Decision: avoid the trigger instead of only absorbing it. `dnsmasq
//! --version` is probed once; on an affected version (2.90) a reload whose
//! old *or* new `host` file contains `set:` is done as a quick controlled
//! restart — SIGTERM, wait for the exit on the pidfd (a few ms), spawn with
//! the same argv — instead of SIGHUP. The lease file persists across it, so
//! clients keep their addresses and renewals are ACKed. Client requests that
//! arrive in the 10–20 ms without a listener are held on a socket sharing
//! port 67 and re-sent to the new process ([`process::PacketHold`]), so no
//! client waits out a retransmission. Every other reload is a plain SIGHUP. As a second line, the monitor watches each dnsmasq by
//! pidfd and respawns one that dies for any reason within milliseconds.
//! `dnsmasq_reload_by_restart = auto | always | never` overrides the probe.
//!
//! A reload whose rendered files are byte-identical to those on disk sends
//! nothing at all: dnsmasq would re-read the same data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use leasehold_core::async_trait;
use leasehold_core::driver::{DhcpDevice, DhcpDriver, DriverContext, DriverError};
use leasehold_core::model::{Id, Network};
use leasehold_core::options::{OptionSpec, Options};
use tokio::sync::OnceCell;

use crate::config::{DnsmasqConfig, OPTIONS};
use crate::files;
use crate::monitor::{ChildAction, Counters, MonitorConfig, ProcessMonitor};
use crate::process::{self, ProcessError, ProcessSpec, Running, STOP_TIMEOUT};
use crate::release;
use crate::render::{render_all, Rendered, RuntimeFacts};

/// The service name in `PROCESS_TAG` and kill script names.
pub const SERVICE: &str = "dnsmasq";

/// Options of the process side, besides the renderer's.
pub const PROCESS_OPTIONS: &[OptionSpec] = &[OptionSpec::choice(
    "DEFAULT",
    "dnsmasq_reload_by_restart",
    &["auto", "always", "never"],
    "auto",
    "Leasehold: reload dnsmasq by a quick restart instead of SIGHUP; auto = only on dnsmasq 2.90 when a host line has set:<tag> (it crashes on SIGHUP then).",
)];

/// When a reload restarts dnsmasq instead of sending SIGHUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadByRestart {
    /// On an affected dnsmasq version, when a host file has `set:` lines.
    Auto,
    /// Every reload.
    Always,
    /// Never (SIGHUP always; the monitor absorbs crashes).
    Never,
}

/// Facts probed from the installed dnsmasq, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsmasqProbe {
    /// `(major, minor)` from `dnsmasq --version`, if it could be read.
    pub version: Option<(u32, u32)>,
    /// Whether `dnsmasq --test --dhcp-host=tag:foo` is accepted.
    pub host_tag_support: bool,
}

impl DnsmasqProbe {
    /// Runs the two probes (blocking, about 10 ms).
    pub fn run() -> Self {
        let version = std::process::Command::new("dnsmasq")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
        let host_tag_support = std::process::Command::new("dnsmasq")
            .args(["--test", "--dhcp-host=tag:foo"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        DnsmasqProbe {
            version,
            host_tag_support,
        }
    }

    /// Whether this version crashes on SIGHUP after `set:` host lines.
    pub fn sighup_crashes_on_set_tags(&self) -> bool {
        self.version == Some((2, 90))
    }
}

/// `Dnsmasq version 2.90  Copyright …` → `(2, 90)`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version").nth(1)?.split_whitespace().next()?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Process-side settings of the driver.
#[derive(Clone, Debug)]
pub struct ProcessSettings {
    /// `<kill_scripts_path>`; its `dnsmasq-kill` is used for signals if present.
    pub kill_scripts_path: Option<PathBuf>,
    /// `dnsmasq_reload_by_restart`.
    pub reload_by_restart: ReloadByRestart,
}

impl ProcessSettings {
    /// Reads the settings (and the monitor's) from the options; undeclared
    /// options take Neutron's defaults.
    pub fn from_options(options: &Options) -> Result<(Self, MonitorConfig), DriverError> {
        let reload = match options
            .get_str("DEFAULT", "dnsmasq_reload_by_restart")?
            .as_deref()
        {
            Some("always") => ReloadByRestart::Always,
            Some("never") => ReloadByRestart::Never,
            _ => ReloadByRestart::Auto,
        };
        let kill_scripts_path = options
            .get_str("AGENT", "kill_scripts_path")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let action = match options
            .get_str("AGENT", "check_child_processes_action")?
            .as_deref()
        {
            Some("exit") => ChildAction::Exit,
            _ => ChildAction::Respawn,
        };
        let interval = options
            .get_int("AGENT", "check_child_processes_interval")?
            .unwrap_or(60);
        let monitor = MonitorConfig {
            action,
            interval: (interval > 0).then(|| std::time::Duration::from_secs(interval as u64)),
        };
        Ok((
            ProcessSettings {
                kill_scripts_path,
                reload_by_restart: reload,
            },
            monitor,
        ))
    }
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            kill_scripts_path: None,
            reload_by_restart: ReloadByRestart::Auto,
        }
    }
}

/// The dnsmasq DHCP driver.
#[derive(Debug)]
pub struct DnsmasqDriver {
    config: DnsmasqConfig,
    settings: ProcessSettings,
    monitor: ProcessMonitor,
    probe: OnceCell<DnsmasqProbe>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DriverError {
    let context = context.into();
    move |e| DriverError::io(context, e)
}

fn proc_err(e: ProcessError) -> DriverError {
    match e {
        ProcessError::Io { context, source } => DriverError::Io { context, source },
        ProcessError::Namespace { namespace, source } => DriverError::Missing {
            what: format!("namespace {namespace}"),
            hint: format!("{source}; the interface driver makes it before enable"),
        },
        other => DriverError::Failed(other.to_string()),
    }
}

fn join_err(e: tokio::task::JoinError) -> DriverError {
    DriverError::Failed(format!("blocking task failed: {e}"))
}

/// What was written by [`DnsmasqDriver::write_reload_files`].
struct Written {
    changed: bool,
    set_tags: bool,
}

impl DnsmasqDriver {
    /// A driver over `config`, reporting to `monitor`. Makes this process a
    /// child subreaper (see [`process::become_subreaper`]).
    pub fn new(config: DnsmasqConfig, settings: ProcessSettings, monitor: ProcessMonitor) -> Self {
        if let Err(e) = process::become_subreaper() {
            tracing::warn!("cannot become a child subreaper ({e}); dead dnsmasq may linger as zombies until PID 1 reaps them");
        }
        DnsmasqDriver {
            config,
            settings,
            monitor,
            probe: OnceCell::new(),
        }
    }

    /// A driver built from the options (the renderer's config), with `settings`.
    pub fn from_options(
        options: &Options,
        settings: ProcessSettings,
        monitor: ProcessMonitor,
    ) -> Result<Self, DriverError> {
        Ok(Self::new(
            DnsmasqConfig::from_options(options)?,
            settings,
            monitor,
        ))
    }

    /// The monitor this driver registers its processes with.
    pub fn monitor(&self) -> &ProcessMonitor {
        &self.monitor
    }

    /// The installed dnsmasq's probed facts (probed on first use).
    pub async fn probe(&self) -> DnsmasqProbe {
        self.probe
            .get_or_init(|| async {
                tokio::task::spawn_blocking(DnsmasqProbe::run)
                    .await
                    .unwrap_or(DnsmasqProbe {
                        version: None,
                        host_tag_support: false,
                    })
            })
            .await
            .clone()
    }

    /// `<dhcp_confs>`, absolute and normalised as Neutron makes it.
    pub fn confs_dir(&self) -> PathBuf {
        let p = &self.config.dhcp_confs;
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        normalize(&abs)
    }

    /// `<dhcp_confs>/<network_id>`.
    pub fn conf_dir(&self, network_id: &Id) -> PathBuf {
        self.confs_dir().join(network_id.as_str())
    }

    fn spec(&self, network_id: &Id, namespace: Option<String>, argv: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            uuid: network_id.to_string(),
            service: SERVICE.into(),
            namespace,
            pid_file: self.conf_dir(network_id).join("pid"),
            argv,
            kill_script: self
                .settings
                .kill_scripts_path
                .as_ref()
                .map(|d| d.join(format!("{SERVICE}-kill"))),
        }
    }

    async fn render(
        &self,
        network: &Network,
        device: &DhcpDevice,
    ) -> Result<Rendered, DriverError> {
        let dir = self.conf_dir(&network.id);
        let probe = self.probe().await;
        let facts = RuntimeFacts {
            interface_name: device.interface_name.clone(),
            dhcp_interface_ips: device
                .interface_ips
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            dnsmasq_host_tag_support: Some(probe.host_tag_support),
            interface_driver_bridged: Some(device.bridged),
            existing_leases_file: dir
                .join("leases")
                .exists()
                .then(|| release::read_leases_file(&dir.join("leases"))),
            pid_file: Some(dir.join("pid").display().to_string()),
            conf_dir: Some(dir.display().to_string()),
        };
        let rendered = render_all(network, &self.config, &facts);
        for w in &rendered.warnings {
            tracing::warn!(network = %network.id, "{w}");
        }
        if rendered.cmdline.is_empty() {
            // The renderer refuses a configuration that fails its checks.
            let why: Vec<String> = rendered.warnings.iter().map(|w| w.to_string()).collect();
            return Err(DriverError::Failed(format!(
                "network {}: no dnsmasq command line: {}",
                network.id,
                why.join("; ")
            )));
        }
        Ok(rendered)
    }

    /// Writes host, addn_hosts and opts where they differ from the disk.
    fn write_reload_files(dir: &Path, r: &Rendered) -> Result<Written, DriverError> {
        let old_host = std::fs::read_to_string(dir.join("host")).unwrap_or_default();
        let mut changed = false;
        for (name, content) in [
            ("host", &r.hosts),
            ("addn_hosts", &r.addn_hosts),
            ("opts", &r.opts),
        ] {
            let path = dir.join(name);
            changed |= files::write_if_changed(&path, content.as_bytes())
                .map_err(io(format!("writing {}", path.display())))?;
        }
        Ok(Written {
            changed,
            set_tags: old_host.contains("set:") || r.hosts.contains("set:"),
        })
    }

    /// Whether a reload of a process whose host files carry `set:` (or not)
    /// must be a restart.
    async fn reload_needs_restart(&self, set_tags: bool) -> bool {
        match self.settings.reload_by_restart {
            ReloadByRestart::Always => true,
            ReloadByRestart::Never => false,
            ReloadByRestart::Auto => set_tags && self.probe().await.sighup_crashes_on_set_tags(),
        }
    }

    /// Makes a running dnsmasq re-read its files: SIGHUP, or the controlled
    /// restart of the module comment. Returns the pid now serving.
    async fn reload_running(
        &self,
        spec: &ProcessSpec,
        running: Running,
        set_tags: bool,
    ) -> Result<i32, DriverError> {
        let counters = self.monitor.counters();
        if self.reload_needs_restart(set_tags).await {
            // Unregister first so the exit is not taken for a crash.
            self.monitor.unregister(&spec.uuid);
            let hold = match self.iface_of(spec) {
                Some(iface) => process::PacketHold::open(spec.namespace.as_deref(), &iface)
                    .map_err(|e| tracing::warn!("no packet hold during the restart: {e}"))
                    .ok(),
                None => None,
            };
            process::stop(spec, &running, STOP_TIMEOUT)
                .await
                .map_err(proc_err)?;
            let spawned = self.spawn(spec.clone()).await;
            if let Some(hold) = hold {
                match tokio::task::spawn_blocking(move || hold.release()).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::debug!(
                            handed_over = n,
                            "requests held during the restart re-sent"
                        );
                        Counters::add(&counters.held_requests, n as u64);
                    }
                    Ok(Err(e)) => tracing::warn!("re-sending held requests: {e}"),
                    _ => {}
                }
            }
            let pid = spawned?;
            Counters::add(&counters.reload_restarts, 1);
            return Ok(pid);
        }
        let pid = running.pidfd.pid();
        if process::send_signal(spec, &running, libc::SIGHUP).map_err(proc_err)? {
            Counters::add(&counters.sighups, 1);
            Ok(pid)
        } else {
            // It died just now; start it again.
            self.spawn(spec.clone()).await
        }
    }

    /// The DHCP device of a network, from its `interface` file.
    fn iface_of(&self, spec: &ProcessSpec) -> Option<String> {
        let dir = spec.pid_file.parent()?;
        std::fs::read_to_string(dir.join("interface"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    async fn spawn(&self, spec: ProcessSpec) -> Result<i32, DriverError> {
        tokio::task::spawn_blocking(move || process::spawn(&spec))
            .await
            .map_err(join_err)?
            .map_err(proc_err)
    }

    /// Stops the network's process if one runs (never an unrelated pid).
    async fn stop_locked(&self, spec: &ProcessSpec) -> Result<(), DriverError> {
        self.monitor.unregister(&spec.uuid);
        match process::find_running(spec) {
            Some(running) => {
                let gone = process::stop(spec, &running, STOP_TIMEOUT)
                    .await
                    .map_err(proc_err)?;
                if !gone {
                    return Err(DriverError::Failed(format!(
                        "dnsmasq {} of network {} survived SIGKILL",
                        running.pidfd.pid(),
                        spec.uuid
                    )));
                }
            }
            None => {
                if let Some(pid) = spec.pid() {
                    tracing::debug!(network = %spec.uuid, pid, "stale pid file; the process is not ours or gone");
                }
            }
        }
        files::remove_if_exists(&spec.pid_file)
            .map_err(io(format!("removing {}", spec.pid_file.display())))
    }

    /// [`DhcpDriver::enable`] with the network's lock held.
    async fn enable_locked(
        &self,
        network: &Network,
        device: &DhcpDevice,
    ) -> Result<(), DriverError> {
        if !has_dhcp_subnet(network) {
            let spec = self.spec(&network.id, device.namespace.clone(), Vec::new());
            return self.stop_locked(&spec).await;
        }
        let dir = self.conf_dir(&network.id);
        files::ensure_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let iface_file = dir.join("interface");
        files::write_if_changed(&iface_file, device.interface_name.as_bytes())
            .map_err(io(format!("writing {}", iface_file.display())))?;
        let rendered = self.render(network, device).await?;
        let spec = self.spec(
            &network.id,
            device.namespace.clone(),
            rendered.cmdline.clone(),
        );

        if let Some(running) = process::find_running(&spec) {
            let pid = running.pidfd.pid();
            if process::cmdline(pid).as_ref() == Some(&spec.argv) {
                // Adoption: the same argv means the same files and flags; keep
                // the process and its in-memory leases.
                let written = Self::write_reload_files(&dir, &rendered)?;
                let pid = if written.changed {
                    self.reload_running(&spec, running, written.set_tags)
                        .await?
                } else {
                    pid
                };
                if self.monitor.registered_pid(&spec.uuid).is_none() {
                    Counters::add(&self.monitor.counters().adoptions, 1);
                    tracing::info!(pid, changed = written.changed, "adopted running dnsmasq");
                }
                self.ensure_registered(&spec, pid);
                return Ok(());
            }
            // Say what differs, so an operator sees why a migration restarted it.
            let running_argv = process::cmdline(pid).unwrap_or_default();
            let differs = spec
                .argv
                .iter()
                .zip(running_argv.iter().chain(std::iter::repeat(&String::new())))
                .find(|(ours, theirs)| ours != theirs)
                .map(|(ours, theirs)| format!("{theirs:?} where we would pass {ours:?}"))
                .unwrap_or_else(|| {
                    format!(
                        "{} arguments where we would pass {}",
                        running_argv.len(),
                        spec.argv.len()
                    )
                });
            tracing::info!(
                pid,
                differs,
                "running dnsmasq has another command line; restarting it"
            );
            self.stop_locked(&spec).await?;
        }

        // Fresh start: the bootstrap lease file, then the config files.
        let files_start = tokio::time::Instant::now();
        for (name, content) in [
            ("leases", &rendered.leases),
            ("host", &rendered.hosts),
            ("addn_hosts", &rendered.addn_hosts),
            ("opts", &rendered.opts),
        ] {
            let path = dir.join(name);
            files::write_atomic(&path, content.as_bytes())
                .map_err(io(format!("writing {}", path.display())))?;
        }
        let spawn_start = tokio::time::Instant::now();
        let pid = self.spawn(spec.clone()).await?;
        let ms =
            |from: tokio::time::Instant, to: tokio::time::Instant| (to - from).as_secs_f64() * 1e3;
        tracing::debug!(
            pid,
            files_ms = ms(files_start, spawn_start),
            spawn_ms = ms(spawn_start, tokio::time::Instant::now()),
            "dnsmasq started"
        );
        self.monitor.register(spec, pid);
        Ok(())
    }

    /// Writes the pid file of `spec` when a process of it runs that the file
    /// does not name ([`process::find_orphan`]); returns its pid.
    fn restore_orphan_pid_file(spec: &ProcessSpec) -> Option<i32> {
        let pid = process::find_orphan(spec)?;
        // The pid file lives in the network's directory, which may be gone.
        let written = spec
            .pid_file
            .parent()
            .map_or(Ok(()), files::ensure_dir)
            .and_then(|()| files::write_atomic(&spec.pid_file, format!("{pid}\n").as_bytes()));
        match written {
            Ok(()) => Some(pid),
            Err(e) => {
                tracing::warn!(pid, error = %e, "could not restore the pid file of a running dnsmasq");
                None
            }
        }
    }

    async fn disable_locked(&self, network_id: &Id, retain_port: bool) -> Result<(), DriverError> {
        let spec = self.spec(
            network_id,
            Some(leasehold_core::namespace_of(network_id)),
            Vec::new(),
        );
        if process::find_running(&spec).is_none() {
            // Else a dnsmasq running without its pid file outlives the network.
            if let Some(pid) = Self::restore_orphan_pid_file(&spec) {
                tracing::warn!(
                    pid,
                    "found this network's dnsmasq running without its pid file; stopping it"
                );
            }
        }
        let mut first_error = self.stop_locked(&spec).await.err();
        if !retain_port {
            let dir = self.conf_dir(network_id);
            if let Err(e) = files::remove_dir_if_exists(&dir) {
                let e = DriverError::io(format!("removing {}", dir.display()), e);
                tracing::error!(network = %network_id, "{e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn ensure_registered(&self, spec: &ProcessSpec, pid: i32) {
        if self.monitor.registered_pid(&spec.uuid) != Some(pid) {
            self.monitor.register(spec.clone(), pid);
        }
    }
}

/// Lexical normalisation as Python's `normpath`: drops `.` and folds `..`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn has_dhcp_subnet(network: &Network) -> bool {
    network.subnets.iter().any(|s| s.enable_dhcp)
}

/// Whether a directory name is a UUID (Neutron's `is_uuid_like` on conf dirs).
fn is_uuid_like(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[async_trait]
impl DhcpDriver for DnsmasqDriver {
    #[tracing::instrument(skip_all, fields(network = %network.id))]
    async fn enable(&self, network: &Network, device: &DhcpDevice) -> Result<(), DriverError> {
        let _guard = self.monitor.lock_network(network.id.as_str()).await;
        let Err(e) = self.enable_locked(network, device).await else {
            return Ok(());
        };
        // A dnsmasq of this network whose pid file is gone still holds the
        // namespace's DHCP and DNS sockets, so a new one cannot bind
        // ("Address already in use"). Give it its pid file back and try once
        // more: it is then adopted, or restarted if its argv differs.
        let spec = self.spec(&network.id, device.namespace.clone(), Vec::new());
        match Self::restore_orphan_pid_file(&spec) {
            Some(pid) => {
                tracing::warn!(pid, error = %e, "found this network's dnsmasq running without its pid file; taking it over");
                self.enable_locked(network, device).await
            }
            None => Err(e),
        }
    }

    #[tracing::instrument(skip_all, fields(network = %network_id))]
    async fn disable(&self, network_id: &Id, retain_port: bool) -> Result<(), DriverError> {
        let _guard = self.monitor.lock_network(network_id.as_str()).await;
        self.disable_locked(network_id, retain_port).await
    }

    #[tracing::instrument(skip_all, fields(network = %network.id))]
    async fn reload_allocations(
        &self,
        network: &Network,
        device: &DhcpDevice,
    ) -> Result<(), DriverError> {
        let guard = self.monitor.lock_network(network.id.as_str()).await;
        if !has_dhcp_subnet(network) {
            return self.disable_locked(&network.id, false).await;
        }
        let dir = self.conf_dir(&network.id);
        if !dir.join("interface").is_file() {
            tracing::debug!("no interface file: network not enabled, nothing to reload");
            return Ok(());
        }
        let rendered = self.render(network, device).await?;
        let spec = self.spec(
            &network.id,
            device.namespace.clone(),
            rendered.cmdline.clone(),
        );
        let running = process::find_running(&spec);

        // Release before the files change, as the reference does.
        if running.is_some() {
            let old_hosts = std::fs::read_to_string(dir.join("host")).unwrap_or_default();
            let leases_path = dir.join("leases");
            let leases = release::parse_leases(&release::read_leases_file(&leases_path));
            let releases = release::unused_leases(network, &old_hosts, &leases);
            if !releases.is_empty() {
                let ns = device.namespace.clone();
                let iface = device.interface_name.clone();
                let report = tokio::task::spawn_blocking(move || {
                    release::release_and_confirm(ns.as_deref(), &iface, &leases_path, releases)
                })
                .await
                .map_err(join_err)?;
                let c = self.monitor.counters();
                Counters::add(&c.releases_v4, report.sent_v4 as u64);
                Counters::add(&c.releases_v6, report.sent_v6 as u64);
            }
        }

        let written = Self::write_reload_files(&dir, &rendered)?;
        let pid = match running {
            Some(running) if written.changed => {
                self.reload_running(&spec, running, written.set_tags)
                    .await?
            }
            Some(running) => running.pidfd.pid(),
            None => {
                tracing::info!("dnsmasq not running; starting it");
                self.spawn(spec.clone()).await?
            }
        };
        self.ensure_registered(&spec, pid);
        drop(guard);
        Ok(())
    }

    async fn active(&self, network_id: &Id) -> bool {
        let spec = self.spec(network_id, None, Vec::new());
        spec.active_pid().is_some()
    }

    async fn existing_networks(&self) -> Result<Vec<Id>, DriverError> {
        let dir = self.confs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DriverError::io(format!("listing {}", dir.display()), e)),
        };
        let mut ids: Vec<Id> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_uuid_like(n))
            .filter_map(|n| Id::new(n).ok())
            .collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }
}

const ALL_LEN: usize = OPTIONS.len() + PROCESS_OPTIONS.len();

/// Every option the driver reads: the renderer's and the process side's.
pub static ALL_OPTIONS: [OptionSpec; ALL_LEN] = concat_options();

const fn concat_options() -> [OptionSpec; ALL_LEN] {
    let mut out = [PROCESS_OPTIONS[0]; ALL_LEN];
    let mut i = 0;
    while i < OPTIONS.len() {
        out[i] = OPTIONS[i];
        i += 1;
    }
    let mut j = 0;
    while j < PROCESS_OPTIONS.len() {
        out[i + j] = PROCESS_OPTIONS[j];
        j += 1;
    }
    out
}

/// The registry constructor: one driver per agent, on the agent-wide monitor.
pub fn create(ctx: &DriverContext<'_>) -> Result<Arc<dyn DhcpDriver>, DriverError> {
    let config = DnsmasqConfig::from_options(ctx.options)?;
    let (settings, monitor_config) = ProcessSettings::from_options(ctx.options)?;
    let monitor = ProcessMonitor::shared(monitor_config);
    Ok(Arc::new(DnsmasqDriver::new(config, settings, monitor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("Dnsmasq version 2.90  Copyright (c) 2000-2024 Simon Kelley\n"),
            Some((2, 90))
        );
        assert_eq!(parse_version("Dnsmasq version 2.91rc3  C"), Some((2, 91)));
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn normalizes_like_normpath() {
        assert_eq!(
            normalize(Path::new("/var/lib/./neutron/../neutron/dhcp/")),
            PathBuf::from("/var/lib/neutron/dhcp")
        );
    }

    #[test]
    fn uuid_like_names() {
        assert!(is_uuid_like("6ac4e2ac-6b58-4ac6-bd45-4ec4d3bd5f86"));
        assert!(!is_uuid_like("6ac4e2ac-6b58-4ac6-bd45-4ec4d3bd5f8"));
        assert!(!is_uuid_like("lost+found"));
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let mut o = Options::new();
        o.declare(PROCESS_OPTIONS);
        let (s, m) = ProcessSettings::from_options(&o).unwrap();
        assert_eq!(s.reload_by_restart, ReloadByRestart::Auto);
        assert_eq!(m, MonitorConfig::default());
        o.set(
            "DEFAULT",
            "dnsmasq_reload_by_restart",
            "never",
            leasehold_core::options::Origin::Program,
        );
        o.set(
            "AGENT",
            "check_child_processes_action",
            "exit",
            leasehold_core::options::Origin::Program,
        );
        o.set(
            "AGENT",
            "check_child_processes_interval",
            "0",
            leasehold_core::options::Origin::Program,
        );
        let (s, m) = ProcessSettings::from_options(&o).unwrap();
        assert_eq!(s.reload_by_restart, ReloadByRestart::Never);
        assert_eq!(m.action, ChildAction::Exit);
        assert_eq!(m.interval, None);
    }
}
