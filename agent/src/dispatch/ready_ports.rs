//! Ports whose DHCP is configured, to report with `dhcp_ready_on_ports`
//! (clears the server's provisioning block so the port can go ACTIVE).

use std::collections::BTreeSet;
use std::sync::Arc;

use leasehold_core::model::Id;
use tokio::sync::watch;

use super::{lock, Dispatcher};
use crate::server_api::RpcError;

/// The two sets of port ids: priority (port create/update events) and normal.
#[derive(Debug, Default)]
pub struct ReadyPorts {
    prio: BTreeSet<Id>,
    normal: BTreeSet<Id>,
}

impl ReadyPorts {
    /// Adds port ids to the priority or the normal set.
    pub fn extend(&mut self, ids: impl IntoIterator<Item = Id>, prio: bool) {
        if prio {
            self.prio.extend(ids);
        } else {
            self.normal.extend(ids);
        }
    }

    /// Takes up to `max` ids, priority ones first.
    pub fn take(&mut self, max: usize) -> (Vec<Id>, Vec<Id>) {
        let prio: Vec<Id> = take_from(&mut self.prio, max);
        let normal = take_from(&mut self.normal, max - prio.len());
        (prio, normal)
    }

    /// Puts ids back after a failed report.
    pub fn put_back(&mut self, prio: Vec<Id>, normal: Vec<Id>) {
        self.prio.extend(prio);
        self.normal.extend(normal);
    }

    /// Ids waiting in both sets.
    pub fn len(&self) -> usize {
        self.prio.len() + self.normal.len()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of the priority and normal sets.
    pub fn snapshot(&self) -> (Vec<Id>, Vec<Id>) {
        (
            self.prio.iter().cloned().collect(),
            self.normal.iter().cloned().collect(),
        )
    }
}

fn take_from(set: &mut BTreeSet<Id>, max: usize) -> Vec<Id> {
    let mut out = Vec::with_capacity(max.min(set.len()));
    while out.len() < max {
        match set.pop_first() {
            Some(id) => out.push(id),
            None => break,
        }
    }
    out
}

/// What one push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Nothing was waiting.
    Idle,
    /// This many ids were reported.
    Sent(usize),
    /// The call failed; the ids are back in their sets.
    Failed,
}

impl Dispatcher {
    /// Reports one batch of ready ports (up to `ready_ports_batch`, priority
    /// first); on failure the ids go back, so none is lost.
    pub async fn push_ready_ports_once(&self) -> PushOutcome {
        let (prio, normal) = lock(&self.ready).take(self.config.ready_ports_batch.max(1));
        if prio.is_empty() && normal.is_empty() {
            return PushOutcome::Idle;
        }
        let ids: Vec<Id> = prio.iter().chain(&normal).cloned().collect();
        match self.plugin.dhcp_ready_on_ports(&ids).await {
            Ok(()) => {
                tracing::info!(ports = ?ids, "DHCP configuration for ports is completed");
                self.counters
                    .ready_ports_sent
                    .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
                PushOutcome::Sent(ids.len())
            }
            Err(e) => {
                match e {
                    RpcError::Timeout { .. } => {
                        tracing::error!("timeout notifying the server of ports ready, retrying")
                    }
                    e => {
                        tracing::error!(error = %e, "failure notifying the server of ready DHCP ports, will retry")
                    }
                }
                super::bump(&self.counters.ready_ports_failures);
                lock(&self.ready).put_back(prio, normal);
                PushOutcome::Failed
            }
        }
    }

    /// Copies of the waiting priority and normal ready-port sets.
    pub fn ready_ports(&self) -> (Vec<Id>, Vec<Id>) {
        lock(&self.ready).snapshot()
    }

    /// Every `ready_ports_interval`, reports batches until none waits or a
    /// call fails (deliberate difference (d): not one batch per tick).
    pub(super) async fn ready_ports_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = super::stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(self.config.ready_ports_interval) => {}
            }
            while let PushOutcome::Sent(_) = self.push_ready_ports_once().await {
                if lock(&self.ready).is_empty() {
                    break;
                }
            }
        }
    }
}
