//! The isolated-metadata proxy: haproxy in the network's namespace, listening
//! on 169.254.169.254:80 and forwarding to the metadata agent's unix socket
//! with `X-Neutron-Network-ID`, as neutron-dhcp-agent runs it.
//!
//! Same files as the reference (`$state_path/ns-metadata-proxy/<net>.conf`,
//! pid file `$external_pids/<net>.pid.haproxy`) and the same configuration
//! text, so either agent finds and stops the other's proxy. When haproxy is
//! not installed, the agent says so once and serves DHCP without it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use leasehold_core::model::Id;
use leasehold_core::namespace_of;
use leasehold_dnsmasq::process::{cmdline, command_in_namespace, read_pid, Pidfd};

/// Settings from `[DEFAULT]` and `[metadata_haproxy]`.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `state_path`.
    pub state_path: PathBuf,
    /// `external_pids`.
    pub external_pids: PathBuf,
    /// `metadata_proxy_socket`.
    pub socket: PathBuf,
    /// `metadata_proxy_user` (or our uid).
    pub user: String,
    /// `metadata_proxy_group` (or our gid).
    pub group: String,
    /// `debug`: haproxy logs at debug instead of info.
    pub debug: bool,
    /// The haproxy binary, when installed.
    pub haproxy: Option<PathBuf>,
}

/// Why the proxy could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[error("metadata proxy of network {network}: {message}")]
pub struct ProxyError {
    /// The network.
    pub network: String,
    /// What went wrong.
    pub message: String,
}

/// haproxy's timeouts, `[metadata_haproxy]` defaults.
const TIMEOUTS: [(&str, u32); 5] = [
    ("timeout_http_request", 30),
    ("timeout_connect", 30),
    ("timeout_client", 32),
    ("timeout_server", 32),
    ("timeout_http_keep_alive", 30),
];

/// Finds haproxy on the usual paths.
pub fn find_haproxy() -> Option<PathBuf> {
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn user_name(spec: &str) -> String {
    // haproxy wants names; Neutron converts uids and gids the same way.
    match spec.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| spec.to_string()),
        Err(_) => spec.to_string(),
    }
}

fn group_name(spec: &str) -> String {
    match spec.parse::<u32>() {
        Ok(gid) => nix::unistd::Group::from_gid(gid.into())
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| spec.to_string()),
        Err(_) => spec.to_string(),
    }
}

/// The configuration text Neutron writes (no rate limiting, IPv4 listener).
pub fn config_text(settings: &ProxySettings, network: &Id, pid_file: &Path) -> String {
    let t = |name: &str| {
        TIMEOUTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or(30)
    };
    format!(
        "\nglobal\n    log         /dev/log local0 {level}\n    log-tag     haproxy-metadata-proxy-{network}\n    user        {user}\n    group       {group}\n    maxconn     1024\n    nbthread    2\n    pidfile     {pid}\n    daemon\n\ndefaults\n    log global\n    mode http\n    option httplog\n    option dontlognull\n    option http-server-close\n    option forwardfor\n    retries                 3\n    timeout http-request    {thr}s\n    timeout connect         {tc}s\n    timeout client          {tcl}s\n    timeout server          {ts}s\n    timeout http-keep-alive {tka}s\n\nlisten listener\n    bind 169.254.169.254:80\n    \n    server metadata {socket}\n\n    http-request del-header X-Neutron-Router-ID\n    http-request set-header X-Neutron-Network-ID {network}\n",
        level = if settings.debug { "debug" } else { "info" },
        user = user_name(&settings.user),
        group = group_name(&settings.group),
        pid = pid_file.display(),
        thr = t("timeout_http_request"),
        tc = t("timeout_connect"),
        tcl = t("timeout_client"),
        ts = t("timeout_server"),
        tka = t("timeout_http_keep_alive"),
        socket = settings.socket.display(),
    )
}

impl ProxySettings {
    fn config_path(&self, network: &Id) -> PathBuf {
        self.state_path
            .join("ns-metadata-proxy")
            .join(format!("{network}.conf"))
    }

    fn pid_file(&self, network: &Id) -> PathBuf {
        self.external_pids.join(format!("{network}.pid.haproxy"))
    }

    /// The running proxy of `network`: the pid file names a live haproxy whose
    /// command line names this network's config.
    fn running(&self, network: &Id) -> Option<i32> {
        let pid = read_pid(&self.pid_file(network))?;
        let argv = cmdline(pid)?;
        let ours = argv.first().is_some_and(|a| a.ends_with("haproxy"))
            && argv.iter().any(|a| a.contains(network.as_str()));
        ours.then_some(pid)
    }

    /// Starts the proxy (or keeps a running one whose configuration is current).
    pub async fn enable(&self, network: &Id) -> Result<(), ProxyError> {
        let err = |message: String| ProxyError {
            network: network.to_string(),
            message,
        };
        let Some(haproxy) = &self.haproxy else {
            return Err(err("haproxy is not installed".into()));
        };
        let cfg_path = self.config_path(network);
        let pid_file = self.pid_file(network);
        let wanted = config_text(self, network, &pid_file);
        if let Some(pid) = self.running(network) {
            if std::fs::read_to_string(&cfg_path).is_ok_and(|c| c == wanted) {
                return Ok(());
            }
            tracing::info!(network = %network, pid, "metadata proxy configuration changed; restarting it");
            self.disable(network).await?;
        }
        for dir in [cfg_path.parent(), pid_file.parent()].into_iter().flatten() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
        }
        leasehold_dnsmasq::files::write_atomic(&cfg_path, wanted.as_bytes())
            .map_err(|e| err(format!("writing {}: {e}", cfg_path.display())))?;
        let _ = std::fs::remove_file(&pid_file);
        let ns = namespace_of(network);
        let status = command_in_namespace(Some(&ns), Some(&format!("haproxy-{network}")), haproxy)
            .map_err(|e| err(e.to_string()))?
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| err(format!("running {}: {e}", haproxy.display())))?;
        if !status.status.success() {
            return Err(err(format!(
                "haproxy failed: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            )));
        }
        // haproxy daemonises and writes its pid file; wait for it briefly.
        for _ in 0..50 {
            if self.running(network).is_some() {
                tracing::info!(network = %network, "metadata proxy started");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(err("haproxy did not write its pid file".into()))
    }

    /// Stops the proxy (SIGTERM, SIGKILL after 5 s) and removes its configuration.
    pub async fn disable(&self, network: &Id) -> Result<(), ProxyError> {
        let err = |message: String| ProxyError {
            network: network.to_string(),
            message,
        };
        if let Some(pid) = self.running(network) {
            let fd = Pidfd::open(pid).map_err(|e| err(format!("pidfd of {pid}: {e}")))?;
            let _ = fd.signal(libc::SIGTERM);
            if !fd.wait_exit(Duration::from_secs(5)).await.unwrap_or(false) {
                tracing::warn!(network = %network, pid, "metadata proxy did not stop on SIGTERM; SIGKILL");
                let _ = fd.signal(libc::SIGKILL);
                let _ = fd.wait_exit(Duration::from_secs(5)).await;
            }
            fd.reap();
        }
        let _ = std::fs::remove_file(self.pid_file(network));
        let _ = std::fs::remove_file(self.config_path(network));
        Ok(())
    }
}
