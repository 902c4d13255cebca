//! `sync_state`: make the local DHCP state match what the server assigns.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use leasehold_core::model::{Id, Network};

use super::{bump, lock, Dispatcher};
use crate::server_api::RpcError;

/// A sync could not fetch the active networks; a resync is already scheduled.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sync failed: {0}")]
pub struct SyncError(#[from] pub RpcError);

impl Dispatcher {
    /// Syncs all networks (`None`) or the named ones. Holds the sync lock
    /// exclusively: no event is applied meanwhile. On failure a resync of
    /// the same networks is scheduled.
    pub async fn sync_state(&self, networks: Option<Vec<Id>>) -> Result<(), SyncError> {
        let keys = match networks {
            None => vec![None],
            Some(ids) => ids.into_iter().map(Some).collect(),
        };
        self.sync_keys(keys).await
    }

    /// The sync proper: a `None` key (or no key) means all networks.
    pub(super) async fn sync_keys(&self, keys: Vec<Option<Id>>) -> Result<(), SyncError> {
        let _exclusive = self.sync_lock.write().await;
        let started = std::time::Instant::now();
        bump(&self.counters.syncs);
        let only: Option<HashSet<Id>> = if keys.is_empty() || keys.iter().any(Option::is_none) {
            None
        } else {
            Some(keys.into_iter().flatten().collect())
        };
        tracing::info!(networks = ?only, "synchronizing state");
        let known: HashSet<Id> = lock(&self.cache).get_network_ids().into_iter().collect();

        let replies = match self.plugin.get_active_networks_info().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "unable to sync network state");
                match &only {
                    Some(ids) => {
                        for id in ids {
                            self.schedule_resync(e.to_string(), Some(id.clone()));
                        }
                    }
                    None => self.schedule_resync(e.to_string(), None),
                }
                return Err(SyncError(e));
            }
        };
        let mut active: Vec<Network> = Vec::with_capacity(replies.len());
        let mut active_ids: HashSet<Id> = HashSet::new();
        for reply in replies {
            match reply {
                Ok(net) => {
                    active_ids.insert(net.id.clone());
                    active.push(net);
                }
                Err((id, err)) => {
                    // Still assigned to us: keep what runs, but we cannot
                    // configure what we cannot read. A resync would fail the
                    // same way, so none is scheduled.
                    tracing::error!(network = ?id, error = %err, "active network could not be decoded");
                    if let Some(id) = id.and_then(|s| Id::new(s).ok()) {
                        active_ids.insert(id);
                    }
                }
            }
        }

        let mut gone: Vec<&Id> = known.difference(&active_ids).collect();
        gone.sort();
        for id in gone {
            self.disable_dhcp_helper(id).await;
        }

        let to_configure: Vec<Network> = active
            .into_iter()
            .filter(|net| match &only {
                None => true,
                Some(ids) => !known.contains(&net.id) || ids.contains(&net.id),
            })
            .filter(|net| {
                // Deliberate difference (a): a full sync leaves a network
                // whose state is unchanged alone. Partial syncs always
                // re-enable (they follow a failure or a lost DHCP port).
                if only.is_some() {
                    return true;
                }
                let cache = lock(&self.cache);
                match cache.get_network_by_id(&net.id) {
                    Some(cached) if same_state(cached, net) => {
                        tracing::debug!(network = %net.id, "unchanged, left alone");
                        false
                    }
                    _ => true,
                }
            })
            .collect();
        let progress = SyncProgress::new(to_configure.len());
        stream::iter(to_configure)
            .for_each_concurrent(self.config.num_sync_threads.max(1), |net| async {
                self.configure_dhcp_for_network(net).await;
                progress.one_done();
            })
            .await;

        // Ports created while we were away may be waiting for us.
        let ports = lock(&self.cache).get_port_ids(only.as_ref());
        lock(&self.ready).extend(ports, false);
        let elapsed = started.elapsed();
        self.counters.sync_micros_total.fetch_add(
            elapsed.as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.counters.last_sync_micros.store(
            elapsed.as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::info!(
            seconds = elapsed.as_secs_f64(),
            "synchronizing state complete"
        );
        if only.is_none() {
            crate::memory::log_heap("after a full sync");
            crate::memory::release_free_memory();
            crate::memory::log_heap("after trimming");
        }
        Ok(())
    }
}

/// Logs "n of N networks" at most every two seconds during a long sync.
struct SyncProgress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    last_log: std::sync::Mutex<std::time::Instant>,
}

impl SyncProgress {
    fn new(total: usize) -> Self {
        SyncProgress {
            total,
            done: Default::default(),
            last_log: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    fn one_done(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut last = lock(&self.last_log);
        if done == self.total || last.elapsed() >= std::time::Duration::from_secs(2) {
            *last = std::time::Instant::now();
            tracing::info!(
                "sync progress: {done} of {} networks configured",
                self.total
            );
        }
    }
}

/// True if a cached network and one from `get_active_networks_info` describe
/// the same DHCP state. The cached copy comes from `get_network_info`, which
/// leaves out DHCP-disabled subnets, so only DHCP-enabled subnets count;
/// ports are compared whatever their order.
fn same_state(cached: &Network, fresh: &Network) -> bool {
    normalized(cached) == normalized(fresh)
}

fn normalized(net: &Network) -> Network {
    let mut n = net.clone();
    n.subnets.retain(|s| s.enable_dhcp);
    n.non_local_subnets.retain(|s| s.enable_dhcp);
    n.subnets.sort_by(|a, b| a.id.cmp(&b.id));
    n.non_local_subnets.sort_by(|a, b| a.id.cmp(&b.id));
    n.ports.sort_by(|a, b| a.id.cmp(&b.id));
    n
}
