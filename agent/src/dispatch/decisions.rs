//! The per-event decisions (Neutron's §3.5 table) and the driver call.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use leasehold_core::model::{Id, Network, Port};
use tracing::Instrument;

use super::{bump, lock, ActionError, Dispatcher};
use crate::notification::Notification;
use crate::queue::Batch;

/// A driver action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Enable,
    Disable,
    Restart,
    Reload,
    CleanDevices,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Restart => "restart",
            Action::Reload => "reload_allocations",
            Action::CleanDevices => "clean_devices",
        }
    }
}

/// The driver work a run of port events adds up to, applied once.
#[derive(Debug, Default)]
struct Pending {
    /// `Some(Reload)` or `Some(Restart)`; a restart covers a reload.
    action: Option<Action>,
    ready: Vec<Id>,
    prio_ready: Vec<Id>,
}

impl Pending {
    fn add(&mut self, action: Action) {
        if self.action != Some(Action::Restart) {
            self.action = Some(action);
        }
    }
}

impl Dispatcher {
    /// Applies one batch; takes the sync lock shared, so no sync runs meanwhile.
    pub(super) async fn process_batch(&self, batch: Batch) {
        let span = tracing::info_span!("network", id = %batch.network_id);
        self.process_batch_inner(batch).instrument(span).await
    }

    async fn process_batch_inner(&self, batch: Batch) {
        let _shared = self.sync_lock.read().await;
        bump(&self.counters.batches);
        let net_id = batch.network_id;
        let mut pending = Pending::default();
        let mut applied = Vec::with_capacity(batch.events.len());
        for q in batch.events {
            tracing::debug!(network = %net_id, priority = q.event.priority, event = ?q.event.notification, "applying event");
            match q.event.notification {
                Notification::NetworkCreateEnd { network_id } => {
                    self.enable_dhcp_helper(&network_id).await
                }
                Notification::NetworkUpdateEnd {
                    network_id,
                    admin_state_up,
                } => {
                    if admin_state_up {
                        self.enable_dhcp_helper(&network_id).await
                    } else {
                        self.disable_dhcp_helper(&network_id).await
                    }
                }
                Notification::NetworkDeleteEnd { network_id } => {
                    self.disable_dhcp_helper(&network_id).await
                }
                Notification::SubnetUpdateEnd { network_id } => {
                    self.refresh_dhcp_helper(&network_id).await
                }
                Notification::SubnetDeleteEnd { subnet_id, .. } => {
                    let net = lock(&self.cache)
                        .get_network_by_subnet_id(&subnet_id)
                        .map(|n| n.id.clone());
                    if let Some(id) = net {
                        self.refresh_dhcp_helper(&id).await
                    }
                }
                Notification::PortCreateEnd { port, network_id } => {
                    self.port_create(*port, &network_id, &mut pending)
                }
                Notification::PortUpdateEnd { port, network_id } => {
                    self.port_update(*port, &network_id, &mut pending)
                }
                Notification::PortDeleteEnd {
                    port_id,
                    network_id,
                    ..
                } => self.port_delete(&port_id, &network_id, &mut pending).await,
                Notification::AgentUpdated { admin_state_up } => self.schedule_resync(
                    format!("Agent updated: admin_state_up={admin_state_up}"),
                    None,
                ),
            }
            applied.push(q.enqueued);
        }
        self.flush(&net_id, &mut pending).await;
        // Counted once the driver call covering them is done.
        let now = Instant::now();
        for t in applied {
            self.record_latency(now.saturating_duration_since(t));
            bump(&self.counters.events_processed);
        }
    }

    /// `_port_create`: resync on a duplicate IP, else reload with the port.
    fn port_create(&self, port: Port, net_id: &Id, pending: &mut Pending) {
        let duplicate = {
            let cache = lock(&self.cache);
            let Some(net) = cache.get_network_by_id(net_id) else {
                return;
            };
            let ips: HashSet<IpAddr> = port
                .fixed_ips
                .iter()
                .map(|f| *f.ip_address.value())
                .collect();
            net.ports.iter().any(|p| {
                (p.id != port.id || p.mac_address.value() != port.mac_address.value())
                    && p.fixed_ips
                        .iter()
                        .any(|f| ips.contains(f.ip_address.value()))
            })
        };
        if duplicate {
            self.schedule_resync(
                format!(
                    "Duplicate IP addresses found, Port {} is duplicated in the DHCP cache",
                    port.id
                ),
                Some(net_id.clone()),
            );
            return;
        }
        self.reload_allocations(port, net_id, true, pending);
    }

    /// `_port_update`: stale messages are dropped, an update is a create.
    fn port_update(&self, port: Port, net_id: &Id, pending: &mut Pending) {
        {
            let cache = lock(&self.cache);
            if cache.is_port_message_stale(&port) {
                tracing::debug!(port = %port.id, "stale port update ignored");
                return;
            }
            if cache.get_network_by_id(net_id).is_none() {
                return;
            }
        }
        self.reload_allocations(port, net_id, true, pending);
    }

    /// `reload_allocations(port, net, prio)`: caches the port and adds its
    /// driver work to `pending` (applied by `flush`).
    fn reload_allocations(&self, port: Port, net_id: &Id, prio: bool, pending: &mut Pending) {
        if !port.requires_dhcp_configuration() {
            return;
        }
        let mut action = Action::Reload;
        {
            let mut cache = lock(&self.cache);
            if port.device_id == self.dhcp_device_id(net_id) {
                let old = cache
                    .get_port_by_id(&port.id)
                    .map(|p| p.fixed_ips.clone())
                    .unwrap_or_default();
                let subnets = |f: &[leasehold_core::model::FixedIp]| -> HashSet<Id> {
                    f.iter().map(|x| x.subnet_id.clone()).collect()
                };
                let ips = |f: &[leasehold_core::model::FixedIp]| -> HashSet<IpAddr> {
                    f.iter().map(|x| *x.ip_address.value()).collect()
                };
                if subnets(&old) != subnets(&port.fixed_ips) {
                    // A subnet delete may be under way: let a resync sort it out.
                    drop(cache);
                    self.schedule_resync("Agent port was modified", Some(net_id.clone()));
                    return;
                }
                if ips(&old) != ips(&port.fixed_ips) {
                    action = Action::Restart;
                }
            }
            let port_id = port.id.clone();
            if !cache.put_port(net_id, port) {
                return;
            }
            if prio {
                pending.prio_ready.push(port_id);
            } else {
                pending.ready.push(port_id);
            }
        }
        pending.add(action);
    }

    /// `_port_delete`.
    async fn port_delete(&self, port_id: &Id, net_id: &Id, pending: &mut Pending) {
        let (port, net) = {
            let mut cache = lock(&self.cache);
            let port = cache.get_port_by_id(port_id).cloned();
            let net = cache.get_network_by_id(net_id).cloned();
            cache.add_to_deleted_ports(port_id.clone());
            (port, net)
        };
        let Some(port) = port else {
            // Not ours to know, but a device may be left over: clean it.
            self.flush(net_id, pending).await;
            if let Some(net) = net {
                self.call_driver(Action::CleanDevices, &net).await;
            }
            return;
        };
        let net = {
            let mut cache = lock(&self.cache);
            cache.remove_port(port_id);
            cache.get_network_by_id(net_id).cloned()
        };
        let Some(net) = net else {
            return;
        };
        if port.device_id == self.dhcp_device_id(net_id) {
            // Our own DHCP port went away: tear down, then let a resync
            // create or adopt a new one.
            self.flush(net_id, pending).await;
            self.call_driver(Action::Disable, &net).await;
            self.schedule_resync("Agent port was deleted", Some(net_id.clone()));
            return;
        }
        pending.add(Action::Reload);
    }

    /// Applies the driver work gathered from port events, once, on the
    /// network as cached now; then marks the ports ready (whether or not the
    /// driver call worked, as Neutron does: a failure schedules a resync)
    /// and updates the metadata proxy.
    async fn flush(&self, net_id: &Id, pending: &mut Pending) {
        let pending = std::mem::take(pending);
        let Some(action) = pending.action else {
            return;
        };
        let Some(net) = self.cached_network(net_id) else {
            return;
        };
        self.call_driver(action, &net).await;
        {
            let mut ready = lock(&self.ready);
            ready.extend(pending.prio_ready, true);
            ready.extend(pending.ready, false);
        }
        self.update_isolated_metadata_proxy(&net).await;
    }

    /// `safe_get_network_info`: `None` if the network is gone or the call
    /// failed (then a resync of it is scheduled).
    pub(super) async fn safe_get_network_info(&self, net_id: &Id) -> Option<Network> {
        match self.plugin.get_network_info(net_id).await {
            Ok(Some(net)) => Some(net),
            Ok(None) => {
                tracing::debug!(network = %net_id, "network has been deleted");
                None
            }
            Err(e) => {
                tracing::error!(network = %net_id, error = %e, "network info call failed");
                self.schedule_resync(e.to_string(), Some(net_id.clone()));
                None
            }
        }
    }

    /// `enable_dhcp_helper`.
    pub(super) async fn enable_dhcp_helper(&self, net_id: &Id) {
        if let Some(net) = self.safe_get_network_info(net_id).await {
            self.configure_dhcp_for_network(net).await;
        }
    }

    /// `configure_dhcp_for_network`: enable if the network is up and has a
    /// DHCP subnet; then cache the network and mark its ports ready.
    ///
    /// Deliberate difference (f): Neutron re-fetches the network after
    /// enabling it, so the cached copy holds the DHCP port just made. The
    /// enable returns that port, so it is put into the network we have
    /// instead: one RPC less per network, which is most of a full sync's
    /// server time saved after `create_dhcp_port`. Changes made on the
    /// server since our copy was read arrive as the notifications queued
    /// behind this sync. Multi-segment networks (one enable per segment)
    /// are still re-fetched.
    pub(super) async fn configure_dhcp_for_network(&self, net: Network) {
        if !net.admin_state_up {
            return;
        }
        if !net.subnets.iter().any(|s| s.enable_dhcp) {
            return;
        }
        let net = if net.segments.is_empty() {
            match self.enable_one(net).await {
                Some(net) => net,
                None => return,
            }
        } else {
            if !self.call_driver(Action::Enable, &net).await {
                return;
            }
            self.refetch_after_enable(net).await
        };
        self.update_isolated_metadata_proxy(&net).await;
        let ports: Vec<Id> = net.ports.iter().map(|p| p.id.clone()).collect();
        lock(&self.cache).put(net);
        lock(&self.ready).extend(ports, false);
    }

    /// Enables a single-segment network; on success returns it with the
    /// DHCP port the driver set up in its ports.
    async fn enable_one(&self, mut net: Network) -> Option<Network> {
        tracing::debug!(network = %net.id, action = "enable", "calling driver");
        bump(&self.counters.enables);
        match self.actions.enable(&net).await {
            Ok(Some(port)) => {
                net.put_port(port);
                Some(net)
            }
            Ok(None) => Some(net),
            Err(e) => {
                self.driver_failed(Action::Enable, &net, e);
                None
            }
        }
    }

    /// The network as the server has it now, or `net` if that cannot be read.
    async fn refetch_after_enable(&self, net: Network) -> Network {
        match self.plugin.get_network_info(&net.id).await {
            Ok(Some(fresh)) => fresh,
            Ok(None) => net,
            Err(e) => {
                // Deliberate difference (e): keep what we have, resync later.
                tracing::warn!(network = %net.id, error = %e, "re-fetch after enable failed");
                self.schedule_resync(e.to_string(), Some(net.id.clone()));
                net
            }
        }
    }

    /// `disable_dhcp_helper`: for a cached network, stop the metadata proxy
    /// and disable; forget it if that worked.
    pub(super) async fn disable_dhcp_helper(&self, net_id: &Id) {
        let Some(net) = self.cached_network(net_id) else {
            return;
        };
        // Unconditionally: the network's ports and subnets may be gone
        // already, so should_enable_metadata cannot be trusted here.
        self.metadata(&net, false).await;
        if self.call_driver(Action::Disable, &net).await {
            lock(&self.cache).remove(net_id);
        }
    }

    /// `refresh_dhcp_helper`: after a subnet change, reload if the ordered
    /// list of DHCP CIDRs is the same, restart if not, disable if none is left.
    pub(super) async fn refresh_dhcp_helper(&self, net_id: &Id) {
        let Some(old) = self.cached_network(net_id) else {
            return self.enable_dhcp_helper(net_id).await;
        };
        let Some(net) = self.safe_get_network_info(net_id).await else {
            return;
        };
        if !net.subnets.iter().any(|s| s.enable_dhcp) {
            return self.disable_dhcp_helper(net_id).await;
        }
        if dhcp_cidrs(&old) == dhcp_cidrs(&net) {
            self.call_driver(Action::Reload, &net).await;
            lock(&self.cache).put(net.clone());
        } else if self.call_driver(Action::Restart, &net).await {
            lock(&self.cache).put(net.clone());
        }
        lock(&self.ready).extend(net.ports.iter().map(|p| p.id.clone()), false);
        self.update_isolated_metadata_proxy(&net).await;
    }

    /// `call_driver`: one call, or one per segment group for a multi-segment
    /// network; true if all worked. Errors are logged and decide the resync.
    pub(super) async fn call_driver(&self, action: Action, net: &Network) -> bool {
        if action == Action::Reload && !self.config.bulk_reload_interval.is_zero() {
            tracing::debug!(network = %net.id, "reload deferred to the bulk reload");
            lock(&self.bulk_pending).insert(net.id.clone());
            return true;
        }
        self.call_driver_now(action, net).await
    }

    /// `call_driver` without the bulk deferral.
    pub(super) async fn call_driver_now(&self, action: Action, net: &Network) -> bool {
        if net.segments.is_empty() || net.subnets.is_empty() {
            return self.call_one(action, net).await;
        }
        // Group subnets by segment, in order of first appearance. Each call
        // gets its own copy (Neutron mutates the network instead: quirk (c)).
        let mut groups: Vec<(Option<Id>, Vec<leasehold_core::model::Subnet>)> = Vec::new();
        for s in &net.subnets {
            match groups.iter_mut().find(|(k, _)| *k == s.segment_id) {
                Some((_, g)) => g.push(s.clone()),
                None => groups.push((s.segment_id.clone(), vec![s.clone()])),
            }
        }
        let mut all = true;
        for (segment_id, subnets) in groups {
            let mut part = net.clone();
            part.subnets = subnets;
            part.segments = net
                .segments
                .iter()
                .filter(|seg| Some(&seg.id) == segment_id.as_ref())
                .cloned()
                .collect();
            all &= self.call_one(action, &part).await;
        }
        all
    }

    async fn call_one(&self, action: Action, net: &Network) -> bool {
        tracing::debug!(network = %net.id, action = action.name(), "calling driver");
        let a = &self.actions;
        let c = &self.counters;
        let result = match action {
            Action::Enable => {
                bump(&c.enables);
                a.enable(net).await.map(drop)
            }
            Action::Disable => {
                bump(&c.disables);
                a.disable(net).await
            }
            Action::Restart => {
                bump(&c.restarts);
                a.restart(net).await
            }
            Action::Reload => {
                bump(&c.reloads);
                a.reload_allocations(net).await
            }
            Action::CleanDevices => {
                bump(&c.clean_devices);
                a.clean_devices(net).await
            }
        };
        let Err(e) = result else {
            return true;
        };
        self.driver_failed(action, net, e);
        false
    }

    /// Counts and logs a failed driver call and schedules the resync it needs.
    fn driver_failed(&self, action: Action, net: &Network, e: ActionError) {
        bump(&self.counters.driver_failures);
        let action = action.name();
        match &e {
            ActionError::Conflict(_) => {
                // The notification that resolves the conflict will come.
                tracing::debug!(network = %net.id, action, error = %e, "conflict with the network's state, no resync");
            }
            ActionError::SubnetMismatch(_) => {
                tracing::debug!(network = %net.id, action, error = %e, "DHCP port subnets mismatch, resync");
                self.schedule_resync(e.to_string(), Some(net.id.clone()));
            }
            ActionError::Rpc(rpc) => {
                let exc = rpc.exc_type();
                // No resync on an IP allocation failure: a pool change or a
                // port delete will bring a notification that retries it.
                if exc != Some("IpAddressGenerationFailure") {
                    self.schedule_resync(e.to_string(), Some(net.id.clone()));
                }
                if exc == Some("NetworkNotFound") {
                    tracing::debug!(network = %net.id, action, "network removed from the agent or deleted");
                } else {
                    tracing::error!(network = %net.id, action, error = %e, "driver action failed");
                }
            }
            ActionError::Other(_) => {
                self.schedule_resync(e.to_string(), Some(net.id.clone()));
                tracing::error!(network = %net.id, action, error = %e, "driver action failed");
            }
        }
    }

    /// Applies the deferred reloads (`bulk_reload_interval`), skipping
    /// networks whose events are being applied (they go to the next round).
    /// `run` calls it every `bulk_reload_interval`.
    pub async fn bulk_reload_once(&self) {
        let ids = std::mem::take(&mut *lock(&self.bulk_pending));
        let _shared = self.sync_lock.read().await;
        for id in ids {
            let Some(net) = self.cached_network(&id) else {
                continue;
            };
            if !self.queue.try_claim(&id) {
                lock(&self.bulk_pending).insert(id);
                continue;
            }
            self.call_driver_now(Action::Reload, &net).await;
            self.queue.done(&id);
        }
    }

    pub(super) async fn bulk_reload_loop(
        self: std::sync::Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = super::stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(self.config.bulk_reload_interval) => {}
            }
            self.bulk_reload_once().await;
        }
    }
}

/// The ordered CIDRs of DHCP-enabled subnets, local then non-local.
fn dhcp_cidrs(net: &Network) -> Vec<leasehold_core::ipnet::IpNet> {
    net.subnets
        .iter()
        .chain(&net.non_local_subnets)
        .filter(|s| s.enable_dhcp)
        .map(|s| *s.cidr.value())
        .collect()
}
