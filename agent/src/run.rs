//! `leasehold-agent` (run): wires the configured transport, drivers and
//! dispatcher together and serves until SIGTERM.
//!
//! Start-up follows neutron-dhcp-agent: networks found on disk are cached as
//! placeholders, a full sync runs, then the first state report goes out and
//! notifications are handled. SIGTERM stops the agent and leaves dnsmasq and
//! the namespaces running, as the reference does, so a restart (or the
//! reference agent) adopts them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leasehold_core::model::MacAddress;
use leasehold_core::options::Origin;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::device::{DeviceManager, DeviceSettings, HostNet};
use crate::dispatch::{Dispatcher, DispatcherConfig, MetadataConfig};
use crate::embedded::vlan::VlanTagger;
use crate::embedded::watch::FileWatcher;
use crate::embedded::EmbeddedServer;
use crate::local::LocalNetworks;
use crate::rabbit::url::TransportUrl;
use crate::rabbit::{LinkEvent, Rabbit, RabbitPluginApi, RabbitSettings};
use crate::server_api::PluginApi;
use crate::setup::Loaded;

/// How the agent reaches its server.
enum Transport {
    /// `file:///path`: the embedded server.
    File(PathBuf),
    /// `rabbit://…`.
    Rabbit(TransportUrl),
}

/// `file:///abs/path`, or `file://rel/path` relative to the directory of the
/// config file that set it; anything else is a `rabbit://` URL.
fn transport(url: &str, origin: &Origin) -> anyhow::Result<Transport> {
    if let Some(path) = url.strip_prefix("file://") {
        anyhow::ensure!(
            !path.is_empty(),
            "transport_url {url}: no path after file://"
        );
        let path = PathBuf::from(path);
        if path.is_absolute() {
            return Ok(Transport::File(path));
        }
        let base = match origin {
            Origin::File { path: file, .. } => {
                file.parent().map(|d| d.to_path_buf()).unwrap_or_default()
            }
            _ => std::env::current_dir()?,
        };
        return Ok(Transport::File(base.join(path)));
    }
    Ok(Transport::Rabbit(TransportUrl::parse(url)?))
}

fn secs(
    options: &leasehold_core::options::Options,
    section: &str,
    name: &str,
    default: i64,
) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(
        options.get_int(section, name)?.unwrap_or(default).max(0) as u64,
    ))
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(
    loaded: Loaded,
    host_net: Arc<dyn HostNet>,
    log_control: Option<crate::logging::LogControl>,
) -> anyhow::Result<()> {
    let o = &loaded.options;
    let (url, origin) = o.raw("DEFAULT", "transport_url")?.filter(|(u, _)| !u.is_empty()).context(
        "[DEFAULT] transport_url is not set: use rabbit://user:pass@host:5672/ for a Neutron deployment, or file:///path/networks.json to run standalone",
    )?;
    let transport = transport(&url, &origin)?;
    let dhcp = loaded.dhcp_driver()?;
    let interface = loaded.interface_driver()?;
    let (events_tx, mut events) = mpsc::channel(4096);
    let (stop_tx, stop) = watch::channel(false);
    let (links_tx, mut links) = mpsc::channel(8);
    let (reread_tx, reread_rx) = mpsc::channel(1);

    let mut rabbit_api: Option<Arc<RabbitPluginApi>> = None;
    let mut watcher = None;
    let plugin: Arc<dyn PluginApi> = match &transport {
        Transport::File(path) => {
            let base_mac = o.str_or("DEFAULT", "base_mac", "fa:16:3e:00:00:00")?;
            let base = MacAddress::parse(&base_mac)
                .map_err(|e| anyhow::anyhow!("[DEFAULT] base_mac: {e}"))?;
            let server = Arc::new(EmbeddedServer::new(loaded.host.clone(), *base.value()));
            let mut w = FileWatcher::new(path.clone(), server.clone());
            // The first version is served through the initial full sync.
            if let Err(e) = w.reload() {
                tracing::error!("{e}; serving no networks until the file is fixed");
            }
            watcher = Some(w);
            tracing::info!(file = %path.display(), "embedded mode: serving networks from a file");
            server
        }
        Transport::Rabbit(url) => {
            let settings = RabbitSettings::from_options(url.clone(), loaded.host.clone(), o)?;
            let rabbit = Rabbit::start(settings.clone(), events_tx.clone(), links_tx, stop.clone());
            let api = Arc::new(RabbitPluginApi::new(
                rabbit,
                loaded.host.clone(),
                settings.rpc_timeout,
                secs(o, "DEFAULT", "rpc_response_max_timeout", 600)?,
            ));
            rabbit_api = Some(api.clone());
            api
        }
    };

    let metadata = MetadataConfig {
        enable_isolated_metadata: o.flag("DEFAULT", "enable_isolated_metadata")?,
        force_metadata: o.flag("DEFAULT", "force_metadata")?,
        enable_metadata_network: o.flag("DEFAULT", "enable_metadata_network")?,
    };
    let devices = DeviceManager::new(
        DeviceSettings {
            host: loaded.host.clone(),
            metadata_addresses: metadata.enable_isolated_metadata || metadata.force_metadata,
        },
        plugin.clone(),
        interface,
        host_net.clone(),
    );
    let proxy = crate::metadata_proxy::ProxySettings {
        state_path: o
            .str_or("DEFAULT", "state_path", "/var/lib/neutron")?
            .into(),
        external_pids: o
            .str_or("DEFAULT", "external_pids", "/var/lib/neutron/external/pids")?
            .into(),
        socket: o
            .str_or(
                "DEFAULT",
                "metadata_proxy_socket",
                "/var/lib/neutron/metadata_proxy",
            )?
            .into(),
        user: Some(o.str_or("DEFAULT", "metadata_proxy_user", "")?)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| nix::unistd::geteuid().to_string()),
        group: Some(o.str_or("DEFAULT", "metadata_proxy_group", "")?)
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| nix::unistd::getegid().to_string()),
        debug: o.flag("DEFAULT", "debug")?,
        haproxy: crate::metadata_proxy::find_haproxy(),
    };
    let mut actions =
        LocalNetworks::new(devices, dhcp.clone(), host_net).with_metadata_proxy(proxy);
    if matches!(transport, Transport::File(_)) {
        // No L2 agent moves the DHCP port off OVS's dead VLAN here: the agent does.
        let driver = &loaded.interface_entry()?.name;
        if let Some(tagger) = VlanTagger::for_driver(driver, o)? {
            actions = actions.with_vlan_tagger(tagger);
        }
    }
    let actions = Arc::new(actions);
    let mut config = DispatcherConfig::new(loaded.host.clone());
    config.metadata = metadata;
    config.num_sync_threads = o
        .get_int("DEFAULT", "num_sync_threads")?
        .unwrap_or(4)
        .max(1) as usize;
    config.resync_interval = secs(o, "DEFAULT", "resync_interval", 5)?;
    config.resync_throttle = secs(o, "DEFAULT", "resync_throttle", 1)?;
    config.bulk_reload_interval = secs(o, "DEFAULT", "bulk_reload_interval", 0)?;
    let dispatcher = Dispatcher::new(config, plugin.clone(), actions);

    let existing = dhcp.existing_networks().await.unwrap_or_else(|e| {
        tracing::warn!("cannot list networks on disk: {e}");
        Vec::new()
    });
    tracing::info!(networks = existing.len(), "networks found on disk");
    dispatcher.adopt_existing(existing);
    if let Err(e) = dispatcher.sync_state(None).await {
        tracing::error!("initial sync failed: {e}; a resync is scheduled");
    }
    let running = tokio::spawn({
        let d = dispatcher.clone();
        let stop = stop.clone();
        async move { d.run(stop).await }
    });
    if let Some(w) = watcher {
        tokio::spawn(w.run(events_tx.clone(), reread_rx, stop.clone()));
    }
    let rabbit_for_metrics = rabbit_api.clone();
    if let Some(api) = rabbit_api {
        let report_interval = o.get_float("AGENT", "report_interval")?.unwrap_or(30.0);
        if report_interval > 0.0 {
            let reporter = StateReporter {
                api,
                dispatcher: dispatcher.clone(),
                host: loaded.host.clone(),
                availability_zone: o.str_or("AGENT", "availability_zone", "nova")?,
                dhcp_driver: o.str_or(
                    "DEFAULT",
                    "dhcp_driver",
                    "neutron.agent.linux.dhcp.Dnsmasq",
                )?,
                lease_duration: o
                    .get_int("DEFAULT", "dhcp_lease_duration")?
                    .unwrap_or(86400),
                log_heartbeats: o.flag("AGENT", "log_agent_heartbeats")?,
                interval: Duration::from_secs_f64(report_interval),
            };
            tokio::spawn(reporter.run(stop.clone()));
        }
    }

    let metrics_listen = o.str_or("DEFAULT", "metrics_listen", "")?;
    if !metrics_listen.is_empty() {
        let addr: std::net::SocketAddr = metrics_listen
            .parse()
            .map_err(|e| anyhow::anyhow!("[DEFAULT] metrics_listen = {metrics_listen:?}: {e}"))?;
        let sources = crate::metrics::Sources {
            dispatcher: dispatcher.clone(),
            rpc: rabbit_for_metrics.clone(),
            dnsmasq: leasehold_dnsmasq::monitor::ProcessMonitor::shared_if_made(),
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, sources, stop).await {
                tracing::error!(%addr, "metrics endpoint failed: {e}");
            }
        });
    }
    // check_child_processes_action = exit: a dead dnsmasq stops the agent so a supervisor acts.
    let mut exit_requests = match leasehold_dnsmasq::monitor::ProcessMonitor::shared_if_made() {
        Some(m) => m.exit_requests(),
        None => watch::channel(None).1,
    };

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tracing::info!(host = %loaded.host, "agent running");
    let status = format!("serving {} networks", dispatcher.stats().cache.networks);
    crate::systemd::ready(&status);
    // The watchdog is fed from this loop, so a wedged loop is what it catches.
    let mut watchdog = crate::systemd::watchdog_interval().map(tokio::time::interval);
    loop {
        tokio::select! {
            _ = async { match watchdog.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => crate::systemd::watchdog(),
            Some(event) = events.recv() => dispatcher.handle(event),
            Some(link) = links.recv() => if link == LinkEvent::Reconnected {
                dispatcher.schedule_resync("transport reconnected", None);
            },
            _ = hup.recv() => {
                reload_configuration(&loaded, log_control.as_ref());
                let _ = reread_tx.try_send(());
            }
            Ok(()) = exit_requests.changed() => {
                if let Some(request) = exit_requests.borrow().clone() {
                    tracing::error!("exiting as check_child_processes_action = exit asks: {request:?}");
                    let _ = stop_tx.send(true);
                    anyhow::bail!("a child process died and check_child_processes_action = exit");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping; dnsmasq processes and namespaces are left running");
    crate::systemd::stopping();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    Ok(())
}

/// SIGHUP: re-reads the config files. The log level (`debug`) is applied at
/// once; every other changed option is named as needing a restart, because
/// changing drivers, paths or the transport under running networks is not safe.
fn reload_configuration(loaded: &Loaded, log_control: Option<&crate::logging::LogControl>) {
    let fresh = match crate::setup::load(&loaded.files) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("SIGHUP: configuration not reloaded: {e:#}");
            return;
        }
    };
    let mut needs_restart = Vec::new();
    for spec in fresh.options.specs() {
        let old = loaded
            .options
            .raw(spec.section, spec.name)
            .ok()
            .flatten()
            .map(|(v, _)| v);
        let new = fresh
            .options
            .raw(spec.section, spec.name)
            .ok()
            .flatten()
            .map(|(v, _)| v);
        if old == new {
            continue;
        }
        if spec.section == "DEFAULT" && spec.name == "debug" {
            let debug_on = fresh.options.flag("DEFAULT", "debug").unwrap_or(false);
            match log_control.map(|c| c.set_debug(debug_on)) {
                Some(Err(e)) => tracing::error!("SIGHUP: {e}"),
                _ => tracing::info!(debug = debug_on, "SIGHUP: log level changed"),
            }
        } else {
            needs_restart.push(format!("[{}] {}", spec.section, spec.name));
        }
    }
    if needs_restart.is_empty() {
        tracing::info!("SIGHUP: configuration re-read; networks file re-read");
    } else {
        tracing::warn!(
            "SIGHUP: changed options that take effect only after a restart: {}",
            needs_restart.join(", ")
        );
    }
}

/// Sends `report_state` every `report_interval`, with `start_flag` until the
/// first success, and resyncs when the server says the agent was revived.
struct StateReporter {
    api: Arc<RabbitPluginApi>,
    dispatcher: Arc<Dispatcher>,
    host: String,
    availability_zone: String,
    dhcp_driver: String,
    lease_duration: i64,
    log_heartbeats: bool,
    interval: Duration,
}

impl StateReporter {
    fn state(&self, start_flag: bool) -> serde_json::Value {
        let cache = self.dispatcher.stats().cache;
        let mut state = json!({
            "binary": "neutron-dhcp-agent",
            "host": self.host,
            "availability_zone": self.availability_zone,
            "topic": "dhcp_agent",
            "configurations": {
                "dhcp_driver": self.dhcp_driver,
                "dhcp_lease_duration": self.lease_duration,
                "log_agent_heartbeats": self.log_heartbeats,
                "networks": cache.networks,
                "subnets": cache.subnets,
                "ports": cache.ports,
            },
        });
        if let Some(m) = state.as_object_mut() {
            if start_flag {
                m.insert("start_flag".into(), json!(true));
            }
            m.insert("agent_type".into(), json!("DHCP agent"));
            m.insert("uuid".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        state
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut start_flag = true;
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match self
                .api
                .report_state(self.state(start_flag), self.interval)
                .await
            {
                Ok(reply) => {
                    start_flag = false;
                    if reply == json!("revived") {
                        self.dispatcher
                            .schedule_resync("Agent has just been revived", None);
                    }
                }
                Err(e) => tracing::warn!("state report failed: {e}"),
            }
        }
    }
}
