//! The agent's decision core: what to do with each notification, the full and
//! partial syncs with the server, resyncs, and the ready-ports push.
//!
//! It decides; it does not touch the system. Everything it does to a network
//! goes through [`NetworkActions`] (in production: the DeviceManager and the
//! DHCP driver); everything it asks the server goes through
//! [`PluginApi`].
//!
//! # Using it from the run loop
//!
//! ```text
//! let dispatcher = Dispatcher::new(config, plugin, actions);
//! dispatcher.adopt_existing(existing_network_ids);   // placeholders, as at Neutron's start
//! dispatcher.sync_state(None).await;                 // the initial full sync
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let running = tokio::spawn({ let d = dispatcher.clone(); async move { d.run(stop_rx).await } });
//! // for each decoded notification:
//! dispatcher.handle(event);
//! // on a `revived` state report, or after a transport reconnect:
//! dispatcher.schedule_resync("Agent has just been revived", None);
//! // for metrics and state reports:
//! let stats = dispatcher.stats();
//! // on SIGTERM:
//! stop_tx.send(true).ok(); running.await.ok();
//! ```
//!
//! [`Dispatcher::run`] runs, until the shutdown flag turns true (or its sender
//! is dropped): the queue workers, the resync loop, the ready-ports loop, the
//! deleted-ports cleanup and, if `bulk_reload_interval` is set, the bulk
//! reload loop. Batches being applied and a sync under way at shutdown are
//! finished first (wrap it in a timeout if that must be bounded).
//!
//! Tests and one-shot tools can drive it without `run`: [`Dispatcher::drain_queue`],
//! [`Dispatcher::resync_once`], [`Dispatcher::push_ready_ports_once`],
//! [`Dispatcher::bulk_reload_once`].
//!
//! # Deliberate differences from neutron-dhcp-agent
//!
//! (a) A full sync leaves alone a network whose state is unchanged: `enable`
//!     is called only for networks not cached yet or whose network info
//!     differs from the cached copy (see `sync.rs`). Partial syncs still
//!     re-enable the networks they name.
//! (b) Port events of one network that queue up while it is busy are applied
//!     together with one driver call (see [`crate::queue`]).
//! (c) Neutron's quirks are not copied: multi-segment calls work on copies of
//!     the network instead of mutating it, and there is no
//!     `_has_running_interfaces`.
//! (d) The ready-ports loop sends batch after batch while ports are waiting,
//!     instead of one batch of 64 per 0.2 s tick, and does not wait for syncs.
//! (e) A failure to re-fetch a network right after enabling it keeps the
//!     network info we had and schedules a resync of that network, instead of
//!     failing the whole sync (only multi-segment networks are re-fetched now).
//! (f) A network just enabled is cached with the DHCP port the enable
//!     returned instead of being fetched again (`get_network_info`): one
//!     RPC less per network in a sync. Changes since our copy was read come
//!     as the notifications queued behind the sync.

mod decisions;
mod metadata;
mod ready_ports;
mod resync;
mod sync;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use leasehold_core::driver::DriverError;
use leasehold_core::model::{Id, Network, Port};
use tokio::sync::{watch, RwLock};
use tokio::task::JoinSet;

use crate::cache::{CacheState, NetworkCache};
use crate::notification::{Event, Notification};
use crate::queue::WorkQueue;
use crate::server_api::{PluginApi, RpcError};

pub use metadata::{should_enable_metadata, MetadataConfig};
pub use ready_ports::{PushOutcome, ReadyPorts};
pub use sync::SyncError;

/// Why an action on a network failed; decides whether a resync follows.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    /// The network's state conflicts (e.g. no DHCP port could be had): no
    /// resync, a later notification will bring the fix.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The DHCP port's subnets do not match the network's: resync.
    #[error("subnet mismatch for port: {0}")]
    SubnetMismatch(String),
    /// A server call failed: resync, unless it is `IpAddressGenerationFailure`.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Anything else: resync.
    #[error("{0}")]
    Other(String),
}

impl From<DriverError> for ActionError {
    fn from(e: DriverError) -> Self {
        ActionError::Other(e.to_string())
    }
}

/// What the dispatcher can do to a network.
///
/// For a multi-segment network, the dispatcher calls `enable`, `disable`,
/// `restart`, `reload_allocations` and `clean_devices` once per group of
/// subnets sharing a `segment_id`, each time with a copy of the network whose
/// `subnets` is that group and whose `segments` holds only that segment
/// (empty when the group's segment is not among the network's segments).
#[async_trait]
pub trait NetworkActions: Send + Sync {
    /// Sets up the DHCP port and device and starts (or adopts) DHCP.
    /// Returns the DHCP port as the server last returned it (`None` when
    /// the network needs none), so the caller can cache the network
    /// without asking the server for it again.
    async fn enable(&self, net: &Network) -> Result<Option<Port>, ActionError>;
    /// Full teardown: DHCP stopped, device unplugged, `release_dhcp_port`.
    async fn disable(&self, net: &Network) -> Result<(), ActionError>;
    /// Stops DHCP and enables it again, keeping the port and namespace.
    async fn restart(&self, net: &Network) -> Result<(), ActionError>;
    /// Rewrites the host files and makes DHCP re-read them.
    async fn reload_allocations(&self, net: &Network) -> Result<(), ActionError>;
    /// Unplugs stale devices of the network.
    async fn clean_devices(&self, net: &Network) -> Result<(), ActionError>;
    /// Starts (`true`) or stops (`false`) the isolated metadata proxy.
    async fn metadata(&self, net: &Network, enable: bool) -> Result<(), ActionError>;
}

/// What the dispatcher needs from the configuration.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// `[DEFAULT] host`: names this agent's DHCP ports.
    pub host: String,
    /// Metadata options (§3.11).
    pub metadata: MetadataConfig,
    /// `num_sync_threads`: networks configured in parallel during a sync.
    pub num_sync_threads: usize,
    /// Networks whose events are applied in parallel (default 32,
    /// `num_sync_threads` × 8).
    pub max_parallel_networks: usize,
    /// `resync_interval`: longest wait between checks for pending resyncs.
    pub resync_interval: Duration,
    /// `resync_throttle`: shortest time between two resyncs.
    pub resync_throttle: Duration,
    /// `bulk_reload_interval`: defer reloads and apply them this often (zero: off).
    pub bulk_reload_interval: Duration,
    /// Pause of the ready-ports loop.
    pub ready_ports_interval: Duration,
    /// Most port ids per `dhcp_ready_on_ports` call.
    pub ready_ports_batch: usize,
    /// How often deleted port ids older than a day are forgotten.
    pub deleted_ports_cleanup_interval: Duration,
}

impl DispatcherConfig {
    /// Neutron's defaults for `host`.
    pub fn new(host: impl Into<String>) -> Self {
        DispatcherConfig {
            host: host.into(),
            metadata: MetadataConfig::default(),
            num_sync_threads: 4,
            max_parallel_networks: 32,
            resync_interval: Duration::from_secs(5),
            resync_throttle: Duration::from_secs(1),
            bulk_reload_interval: Duration::ZERO,
            ready_ports_interval: Duration::from_millis(200),
            ready_ports_batch: 64,
            deleted_ports_cleanup_interval: Duration::from_secs(3600),
        }
    }
}

/// A snapshot of counters and gauges, for metrics.
#[derive(Clone, Debug, Default)]
pub struct DispatcherStats {
    /// Notifications given to `handle`.
    pub events_received: u64,
    /// Of those, dropped before queueing (not DHCP-relevant, stale, no key).
    pub events_dropped: u64,
    /// Events applied.
    pub events_processed: u64,
    /// Batches applied (a batch is one event or a run of port events).
    pub batches: u64,
    /// Driver `enable` calls.
    pub enables: u64,
    /// Driver `disable` calls.
    pub disables: u64,
    /// Driver `restart` calls.
    pub restarts: u64,
    /// Driver `reload_allocations` calls.
    pub reloads: u64,
    /// Driver `clean_devices` calls.
    pub clean_devices: u64,
    /// Driver calls that failed.
    pub driver_failures: u64,
    /// `schedule_resync` calls.
    pub resyncs_scheduled: u64,
    /// `sync_state` runs.
    pub syncs: u64,
    /// Time spent in completed syncs.
    pub sync_time_total: Duration,
    /// Duration of the last completed sync.
    pub last_sync_time: Duration,
    /// Port ids reported ready to the server.
    pub ready_ports_sent: u64,
    /// Failed `dhcp_ready_on_ports` calls.
    pub ready_ports_failures: u64,
    /// Events waiting in the queue.
    pub queue_depth: usize,
    /// Port ids waiting to be reported ready.
    pub ready_ports_pending: usize,
    /// What is cached.
    pub cache: CacheState,
    /// Time from `handle` to applied, for the most recent events (up to 1024).
    pub latency_samples: Vec<Duration>,
}

const LATENCY_SAMPLES: usize = 1024;

#[derive(Debug, Default)]
struct Counters {
    events_received: AtomicU64,
    events_dropped: AtomicU64,
    events_processed: AtomicU64,
    batches: AtomicU64,
    enables: AtomicU64,
    disables: AtomicU64,
    restarts: AtomicU64,
    reloads: AtomicU64,
    clean_devices: AtomicU64,
    driver_failures: AtomicU64,
    resyncs_scheduled: AtomicU64,
    syncs: AtomicU64,
    sync_micros_total: AtomicU64,
    last_sync_micros: AtomicU64,
    ready_ports_sent: AtomicU64,
    ready_ports_failures: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // These locks are never held across an await or a call out; a panic
    // while holding one leaves consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The decision core. Create with [`Dispatcher::new`]; share the `Arc`.
pub struct Dispatcher {
    config: DispatcherConfig,
    plugin: Arc<dyn PluginApi>,
    actions: Arc<dyn NetworkActions>,
    cache: Mutex<NetworkCache>,
    ready: Mutex<ReadyPorts>,
    resync_reasons: Mutex<HashMap<Option<Id>, Vec<String>>>,
    resync_wake: tokio::sync::Notify,
    queue: WorkQueue,
    /// Handlers take it shared, `sync_state` exclusively: no handler runs
    /// while a sync runs.
    sync_lock: RwLock<()>,
    metadata_restarted: Mutex<HashSet<Id>>,
    bulk_pending: Mutex<BTreeSet<Id>>,
    counters: Counters,
    latency: Mutex<VecDeque<Duration>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("host", &self.config.host)
            .field("queue_depth", &self.queue.depth())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher with an empty cache.
    pub fn new(
        config: DispatcherConfig,
        plugin: Arc<dyn PluginApi>,
        actions: Arc<dyn NetworkActions>,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            config,
            plugin,
            actions,
            cache: Mutex::new(NetworkCache::new()),
            ready: Mutex::new(ReadyPorts::default()),
            resync_reasons: Mutex::new(HashMap::new()),
            resync_wake: tokio::sync::Notify::new(),
            queue: WorkQueue::new(),
            sync_lock: RwLock::new(()),
            metadata_restarted: Mutex::new(HashSet::new()),
            bulk_pending: Mutex::new(BTreeSet::new()),
            counters: Counters::default(),
            latency: Mutex::new(VecDeque::with_capacity(LATENCY_SAMPLES)),
        })
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &DispatcherConfig {
        &self.config
    }

    /// This agent's DHCP port device_id on a network:
    /// `dhcp<uuid5(NAMESPACE_DNS, short host)>-<network id>`.
    pub fn dhcp_device_id(&self, network_id: &Id) -> String {
        crate::device::agent_device_id(&self.config.host, network_id)
    }

    /// Caches placeholders (id only) for networks found on disk at start, so
    /// the first sync disables those the server no longer assigns.
    pub fn adopt_existing(&self, network_ids: impl IntoIterator<Item = Id>) {
        let mut cache = lock(&self.cache);
        for id in network_ids {
            cache.put(Network {
                id,
                project_id: String::new(),
                admin_state_up: true,
                mtu: None,
                subnets: Vec::new(),
                non_local_subnets: Vec::new(),
                ports: Vec::new(),
                segments: Vec::new(),
                network_type: None,
                segmentation_id: None,
            });
        }
    }

    /// Takes a notification: queues it, drops it, or (agent_updated)
    /// schedules a full resync. Never blocks.
    pub fn handle(&self, event: Event) {
        bump(&self.counters.events_received);
        let key = match &event.notification {
            Notification::AgentUpdated { admin_state_up } => {
                self.schedule_resync(
                    format!("Agent updated: admin_state_up={admin_state_up}"),
                    None,
                );
                return;
            }
            Notification::PortCreateEnd { port, network_id }
            | Notification::PortUpdateEnd { port, network_id } => {
                if !port.requires_dhcp_configuration() {
                    tracing::debug!(port = %port.id, owner = %port.device_owner, "port needs no DHCP configuration, ignored");
                    bump(&self.counters.events_dropped);
                    return;
                }
                if matches!(event.notification, Notification::PortUpdateEnd { .. })
                    && lock(&self.cache).is_port_message_stale(port)
                {
                    tracing::debug!(port = %port.id, "stale port update ignored");
                    bump(&self.counters.events_dropped);
                    return;
                }
                Some(network_id.clone())
            }
            Notification::SubnetDeleteEnd {
                subnet_id,
                network_id,
            } => network_id.clone().or_else(|| {
                lock(&self.cache)
                    .get_network_by_subnet_id(subnet_id)
                    .map(|n| n.id.clone())
            }),
            other => other.network_id().cloned(),
        };
        let Some(key) = key else {
            tracing::debug!(?event, "event for no known network, ignored");
            bump(&self.counters.events_dropped);
            return;
        };
        self.queue.push(key, event);
    }

    /// Applies every queued event now, in queue order, one batch at a time,
    /// without workers (tests and one-shot tools).
    pub async fn drain_queue(&self) {
        while let Some(batch) = self.queue.try_next() {
            let network_id = batch.network_id.clone();
            self.process_batch(batch).await;
            self.queue.done(&network_id);
        }
    }

    /// Counters and gauges.
    pub fn stats(&self) -> DispatcherStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DispatcherStats {
            events_received: get(&c.events_received),
            events_dropped: get(&c.events_dropped),
            events_processed: get(&c.events_processed),
            batches: get(&c.batches),
            enables: get(&c.enables),
            disables: get(&c.disables),
            restarts: get(&c.restarts),
            reloads: get(&c.reloads),
            clean_devices: get(&c.clean_devices),
            driver_failures: get(&c.driver_failures),
            resyncs_scheduled: get(&c.resyncs_scheduled),
            syncs: get(&c.syncs),
            sync_time_total: Duration::from_micros(get(&c.sync_micros_total)),
            last_sync_time: Duration::from_micros(get(&c.last_sync_micros)),
            ready_ports_sent: get(&c.ready_ports_sent),
            ready_ports_failures: get(&c.ready_ports_failures),
            queue_depth: self.queue.depth(),
            ready_ports_pending: lock(&self.ready).len(),
            cache: lock(&self.cache).get_state(),
            latency_samples: lock(&self.latency).iter().copied().collect(),
        }
    }

    /// Counts of what is cached (for state reports).
    pub fn cache_state(&self) -> CacheState {
        lock(&self.cache).get_state()
    }

    /// A copy of a cached network.
    pub fn cached_network(&self, network_id: &Id) -> Option<Network> {
        lock(&self.cache).get_network_by_id(network_id).cloned()
    }

    /// The ids of the cached networks, sorted.
    pub fn cached_network_ids(&self) -> Vec<Id> {
        let mut ids = lock(&self.cache).get_network_ids();
        ids.sort();
        ids
    }

    fn record_latency(&self, d: Duration) {
        let mut l = lock(&self.latency);
        if l.len() == LATENCY_SAMPLES {
            l.pop_front();
        }
        l.push_back(d);
    }

    /// Runs the workers and loops until `shutdown` turns true (or its sender
    /// is dropped). Batches being applied are finished before it returns.
    pub async fn run(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let mut loops = JoinSet::new();
        loops.spawn(self.clone().queue_loop(shutdown.clone()));
        loops.spawn(self.clone().resync_loop(shutdown.clone()));
        loops.spawn(self.clone().ready_ports_loop(shutdown.clone()));
        loops.spawn(self.clone().cleanup_loop(shutdown.clone()));
        if !self.config.bulk_reload_interval.is_zero() {
            loops.spawn(self.clone().bulk_reload_loop(shutdown));
        }
        while let Some(r) = loops.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "dispatcher loop ended abnormally");
            }
        }
    }

    async fn queue_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_parallel_networks.max(1),
        ));
        let mut running = JoinSet::new();
        loop {
            let permit = tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let batch = tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                b = self.queue.next() => b,
            };
            let me = self.clone();
            running.spawn(async move {
                let _done = Done(&me.queue, batch.network_id.clone());
                me.process_batch(batch).await;
                drop(permit);
            });
            while let Some(r) = running.try_join_next() {
                if let Err(e) = r {
                    tracing::error!(error = %e, "event handler panicked");
                }
            }
        }
        while let Some(r) = running.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "event handler panicked");
            }
        }
    }

    async fn cleanup_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(self.config.deleted_ports_cleanup_interval) => {}
            }
            let n = lock(&self.cache).cleanup_deleted_ports(std::time::Instant::now());
            if n > 0 {
                tracing::debug!(forgotten = n, "old deleted port ids forgotten");
            }
        }
    }
}

/// Marks a network's batch done even if its handler panics.
struct Done<'a>(&'a WorkQueue, Id);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done(&self.1);
    }
}

/// Resolves once the shutdown flag is true or its sender is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
