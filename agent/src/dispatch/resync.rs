//! Resync requests and the loop that turns them into syncs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use leasehold_core::model::Id;
use tokio::sync::watch;

use super::{bump, lock, Dispatcher};

impl Dispatcher {
    /// Asks for a resync of one network, or of all (`None`). The resync loop
    /// runs it within `resync_throttle`..`resync_interval`.
    pub fn schedule_resync(&self, reason: impl Into<String>, network_id: Option<Id>) {
        let reason = reason.into();
        tracing::debug!(network = ?network_id, %reason, "resync scheduled");
        bump(&self.counters.resyncs_scheduled);
        lock(&self.resync_reasons)
            .entry(network_id)
            .or_default()
            .push(reason);
        self.resync_wake.notify_one();
    }

    /// Copies of the pending resync reasons, by network (`None`: all).
    pub fn pending_resyncs(&self) -> HashMap<Option<Id>, Vec<String>> {
        lock(&self.resync_reasons).clone()
    }

    /// Takes the pending reasons and, if there were any, syncs the networks
    /// they name (all, if one is `None`). Returns whether a sync ran.
    pub async fn resync_once(&self) -> bool {
        let reasons = std::mem::take(&mut *lock(&self.resync_reasons));
        if reasons.is_empty() {
            return false;
        }
        for (net, r) in &reasons {
            let net = net.as_ref().map_or("*", |n| n.as_str());
            tracing::info!(network = net, reasons = ?r, "resync");
        }
        let keys: Vec<Option<Id>> = reasons.into_keys().collect();
        // Failures schedule their own resync; nothing more to do here.
        let _ = self.sync_keys(keys).await;
        true
    }

    /// Waits for a resync request (at most `resync_interval`), keeps
    /// `resync_throttle` between two, and runs what is pending.
    pub(super) async fn resync_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last: Option<Instant> = None;
        loop {
            let woken = tokio::select! {
                _ = super::stopped(&mut shutdown) => return,
                r = tokio::time::timeout(self.config.resync_interval, self.resync_wake.notified()) => r.is_ok(),
            };
            if woken {
                if let Some(t) = last {
                    let since = t.elapsed();
                    if since < self.config.resync_throttle {
                        tokio::select! {
                            _ = super::stopped(&mut shutdown) => return,
                            _ = tokio::time::sleep(self.config.resync_throttle - since) => {}
                        }
                    }
                }
                last = Some(Instant::now());
            }
            self.resync_once().await;
        }
    }
}
