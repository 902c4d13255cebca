//! The process monitor: notices a dead dnsmasq at once and respawns it (or
//! asks the agent to exit), as Neutron's ProcessMonitor does every 60 s.
//!
//! Each registered process is watched through a pidfd polled by tokio, so a
//! death is seen within milliseconds. `check_child_processes_interval` is
//! still honoured as a slow safety poll that also catches a process that died
//! while no watch was possible (e.g. a failed respawn). Respawning uses the
//! stored argv and does not rewrite the config files, like Neutron.
//!
//! Per-network locks live here too: the driver holds a network's lock for
//! each operation and the monitor takes it before respawning, so a respawn
//! never races a stop or a controlled restart. Each registration carries a
//! generation; a watcher whose generation is no longer current does nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{watch, OwnedMutexGuard};
use tokio::task::JoinHandle;

use crate::process::{self, Pidfd, ProcessSpec};

/// `[AGENT] check_child_processes_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildAction {
    /// Start the process again (`respawn`, the default).
    Respawn,
    /// Ask the agent to exit so a supervisor can act (`exit`).
    Exit,
}

/// How the monitor reacts and how often it polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// What to do with a dead process.
    pub action: ChildAction,
    /// Period of the safety poll (`check_child_processes_interval`); `None` = off.
    pub interval: Option<Duration>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            action: ChildAction::Respawn,
            interval: Some(Duration::from_secs(60)),
        }
    }
}

/// Counters for metrics; all monotonic.
#[derive(Debug, Default)]
pub struct Counters {
    /// Deaths of registered processes that nobody asked for.
    pub deaths: AtomicU64,
    /// Successful respawns after such deaths.
    pub respawns: AtomicU64,
    /// Respawns that failed.
    pub respawn_failures: AtomicU64,
    /// Deaths found by the slow poll rather than by a pidfd.
    pub found_by_poll: AtomicU64,
    /// Exit requests sent to the agent (`check_child_processes_action = exit`).
    pub exit_requests: AtomicU64,
    /// SIGHUPs sent by the driver.
    pub sighups: AtomicU64,
    /// Reloads done by a controlled restart (dnsmasq 2.90 workaround).
    pub reload_restarts: AtomicU64,
    /// Processes taken over from an earlier agent without a restart.
    pub adoptions: AtomicU64,
    /// Client requests held during controlled restarts and re-sent to the new dnsmasq.
    pub held_requests: AtomicU64,
    /// DHCPv4 releases sent.
    pub releases_v4: AtomicU64,
    /// DHCPv6 releases sent.
    pub releases_v6: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`Counters::deaths`].
    pub deaths: u64,
    /// See [`Counters::respawns`].
    pub respawns: u64,
    /// See [`Counters::respawn_failures`].
    pub respawn_failures: u64,
    /// See [`Counters::found_by_poll`].
    pub found_by_poll: u64,
    /// See [`Counters::exit_requests`].
    pub exit_requests: u64,
    /// See [`Counters::sighups`].
    pub sighups: u64,
    /// See [`Counters::reload_restarts`].
    pub reload_restarts: u64,
    /// See [`Counters::adoptions`].
    pub adoptions: u64,
    /// See [`Counters::held_requests`].
    pub held_requests: u64,
    /// See [`Counters::releases_v4`].
    pub releases_v4: u64,
    /// See [`Counters::releases_v6`].
    pub releases_v6: u64,
}

impl Counters {
    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            deaths: r(&self.deaths),
            respawns: r(&self.respawns),
            respawn_failures: r(&self.respawn_failures),
            found_by_poll: r(&self.found_by_poll),
            exit_requests: r(&self.exit_requests),
            sighups: r(&self.sighups),
            reload_restarts: r(&self.reload_restarts),
            adoptions: r(&self.adoptions),
            held_requests: r(&self.held_requests),
            releases_v4: r(&self.releases_v4),
            releases_v6: r(&self.releases_v6),
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why the agent is asked to exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitRequest {
    /// The process uuid (network id) whose process died.
    pub uuid: String,
    /// The service (`dnsmasq`).
    pub service: String,
}

struct Entry {
    spec: Arc<ProcessSpec>,
    pid: i32,
    generation: u64,
    watcher: Option<JoinHandle<()>>,
}

struct Inner {
    config: MonitorConfig,
    entries: Mutex<HashMap<String, Entry>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_generation: AtomicU64,
    counters: Counters,
    exit_tx: watch::Sender<Option<ExitRequest>>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

/// Watches registered processes; one per agent. Cheap to clone.
#[derive(Clone)]
pub struct ProcessMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMonitor")
            .field("config", &self.inner.config)
            .field("registered", &self.registered())
            .finish()
    }
}

static SHARED: OnceLock<ProcessMonitor> = OnceLock::new();

impl ProcessMonitor {
    /// A new monitor. Its tasks start on the first registration, on the
    /// tokio runtime of the caller.
    pub fn new(config: MonitorConfig) -> Self {
        let (exit_tx, _) = watch::channel(None);
        ProcessMonitor {
            inner: Arc::new(Inner {
                config,
                entries: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                next_generation: AtomicU64::new(1),
                counters: Counters::default(),
                exit_tx,
                poller: Mutex::new(None),
            }),
        }
    }

    /// The agent-wide monitor, made with `config` on the first call (later
    /// calls return it unchanged). The registry's constructor only returns a
    /// `dyn DhcpDriver`, so this is how the agent reaches the exit channel
    /// and the counters of the driver it built.
    pub fn shared(config: MonitorConfig) -> ProcessMonitor {
        SHARED.get_or_init(|| ProcessMonitor::new(config)).clone()
    }

    /// The agent-wide monitor if a driver has made it.
    pub fn shared_if_made() -> Option<ProcessMonitor> {
        SHARED.get().cloned()
    }

    /// Its configuration.
    pub fn config(&self) -> MonitorConfig {
        self.inner.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Becomes `Some` when a process died and the action is `exit`; the
    /// agent should then shut down (the library never exits the process).
    pub fn exit_requests(&self) -> watch::Receiver<Option<ExitRequest>> {
        self.inner.exit_tx.subscribe()
    }

    /// The uuids currently registered.
    pub fn registered(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner.entries).keys().cloned().collect();
        v.sort();
        v
    }

    /// The pid registered for `uuid`, if any.
    pub fn registered_pid(&self, uuid: &str) -> Option<i32> {
        lock(&self.inner.entries).get(uuid).map(|e| e.pid)
    }

    /// Takes the lock of one network; held for a whole driver operation.
    pub async fn lock_network(&self, uuid: &str) -> OwnedMutexGuard<()> {
        let m = lock(&self.inner.locks)
            .entry(uuid.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// Watches `pid` as the process of `spec` (replacing an earlier
    /// registration of the same uuid). Call after the process started.
    pub fn register(&self, spec: ProcessSpec, pid: i32) {
        self.ensure_poller();
        let uuid = spec.uuid.clone();
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let spec = Arc::new(spec);
        let watcher = match Pidfd::open(pid) {
            Ok(pidfd) => Some(tokio::spawn(watch_process(
                Arc::downgrade(&self.inner),
                uuid.clone(),
                generation,
                pidfd,
            ))),
            Err(e) => {
                tracing::warn!(%uuid, pid, "cannot watch by pidfd ({e}); relying on the poll");
                None
            }
        };
        let old = lock(&self.inner.entries).insert(
            uuid,
            Entry {
                spec,
                pid,
                generation,
                watcher,
            },
        );
        if let Some(w) = old.and_then(|e| e.watcher) {
            w.abort();
        }
    }

    /// Stops watching `uuid`; call before stopping its process.
    pub fn unregister(&self, uuid: &str) {
        if let Some(w) = lock(&self.inner.entries)
            .remove(uuid)
            .and_then(|e| e.watcher)
        {
            w.abort();
        }
    }

    fn ensure_poller(&self) {
        let Some(period) = self.inner.config.interval.filter(|d| !d.is_zero()) else {
            return;
        };
        let mut poller = lock(&self.inner.poller);
        if poller.is_none() {
            *poller = Some(tokio::spawn(poll_loop(Arc::downgrade(&self.inner), period)));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.poller).take() {
            p.abort();
        }
        for e in lock(&self.entries).values_mut() {
            if let Some(w) = e.watcher.take() {
                w.abort();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for one process to exit, then hands it to `on_death`.
async fn watch_process(inner: Weak<Inner>, uuid: String, generation: u64, pidfd: Pidfd) {
    let pid = pidfd.pid();
    let fd = pidfd.into_fd();
    // SAFETY: `fd` is an owned, valid pidfd that AsyncFd owns and closes.
    let afd = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%uuid, pid, "pidfd poll: {e}");
            return;
        }
    };
    if afd.readable().await.is_err() {
        return;
    }
    reap_pid(pid);
    if let Some(inner) = inner.upgrade() {
        on_death(ProcessMonitor { inner }, uuid, generation, false).await;
    }
}

fn reap_pid(pid: i32) {
    // Reaps only our own (reparented) child; ECHILD otherwise, harmlessly.
    // SAFETY: waitpid on one specific pid with WNOHANG.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
}

async fn poll_loop(inner: Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let monitor = ProcessMonitor { inner: strong };
        process::reap_zombie_children("dnsmasq");
        let snapshot: Vec<(String, u64, Arc<ProcessSpec>)> = lock(&monitor.inner.entries)
            .iter()
            .map(|(k, e)| (k.clone(), e.generation, e.spec.clone()))
            .collect();
        for (uuid, generation, spec) in snapshot {
            if spec.active_pid().is_none() {
                on_death(monitor.clone(), uuid, generation, true).await;
            }
        }
    }
}

/// A registered process died: respawn it or ask the agent to exit.
async fn on_death(monitor: ProcessMonitor, uuid: String, generation: u64, by_poll: bool) {
    let _guard = monitor.lock_network(&uuid).await;
    let spec = {
        let entries = lock(&monitor.inner.entries);
        match entries.get(&uuid) {
            Some(e) if e.generation == generation => e.spec.clone(),
            // Unregistered or re-registered meanwhile: the driver handled it.
            _ => return,
        }
    };
    if spec.active_pid().is_some() {
        // Someone (an operator, another agent) already started it again.
        if let Some(pid) = spec.pid() {
            monitor.register((*spec).clone(), pid);
        }
        return;
    }
    let c = &monitor.inner.counters;
    Counters::add(&c.deaths, 1);
    if by_poll {
        Counters::add(&c.found_by_poll, 1);
    }
    match monitor.inner.config.action {
        ChildAction::Exit => {
            tracing::error!(%uuid, service = %spec.service, "child process died; check_child_processes_action = exit: asking the agent to exit");
            Counters::add(&c.exit_requests, 1);
            monitor.unregister(&uuid);
            monitor.inner.exit_tx.send_replace(Some(ExitRequest {
                uuid,
                service: spec.service.clone(),
            }));
        }
        ChildAction::Respawn => {
            tracing::error!(%uuid, service = %spec.service, "child process died, respawning");
            let s = spec.clone();
            match tokio::task::spawn_blocking(move || process::spawn(&s)).await {
                Ok(Ok(pid)) => {
                    Counters::add(&c.respawns, 1);
                    monitor.register((*spec).clone(), pid);
                }
                Ok(Err(e)) => {
                    Counters::add(&c.respawn_failures, 1);
                    tracing::error!(%uuid, "respawn failed: {e}; the safety poll will retry");
                }
                Err(e) => {
                    Counters::add(&c.respawn_failures, 1);
                    tracing::error!(%uuid, "respawn task failed: {e}");
                }
            }
        }
    }
}
