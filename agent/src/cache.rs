//! The networks this agent serves, as last configured (Neutron's `NetworkCache`).
//!
//! A network is cached only once its DHCP is enabled (or as a placeholder for
//! a config directory found at start). Ports are updated in place by port
//! events, so later decisions see them. Deleted port ids are remembered for a
//! day so that a late `port_update_end` for them is recognised as stale.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use leasehold_core::model::{Id, Network, Port};

/// How long a deleted port id is remembered (`DELETED_PORT_MAX_AGE`).
pub const DELETED_PORT_MAX_AGE: Duration = Duration::from_secs(86400);

/// Counts for state reports (`get_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheState {
    /// Cached networks.
    pub networks: usize,
    /// Their subnets, local and non-local.
    pub subnets: usize,
    /// Their ports.
    pub ports: usize,
}

/// The cache: networks by id, with subnet and port lookups.
#[derive(Debug, Default)]
pub struct NetworkCache {
    networks: HashMap<Id, Network>,
    subnet_lookup: HashMap<Id, Id>,
    port_lookup: HashMap<Id, Id>,
    deleted_ports: HashMap<Id, Instant>,
}

impl NetworkCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `net`, replacing any previous copy and its lookups.
    pub fn put(&mut self, net: Network) {
        self.remove(&net.id);
        for s in net.subnets.iter().chain(&net.non_local_subnets) {
            self.subnet_lookup.insert(s.id.clone(), net.id.clone());
        }
        for p in &net.ports {
            self.port_lookup.insert(p.id.clone(), net.id.clone());
        }
        self.networks.insert(net.id.clone(), net);
    }

    /// Forgets a network and its lookups; returns it if it was cached.
    pub fn remove(&mut self, network_id: &Id) -> Option<Network> {
        let net = self.networks.remove(network_id)?;
        for s in net.subnets.iter().chain(&net.non_local_subnets) {
            if self.subnet_lookup.get(&s.id) == Some(network_id) {
                self.subnet_lookup.remove(&s.id);
            }
        }
        for p in &net.ports {
            if self.port_lookup.get(&p.id) == Some(network_id) {
                self.port_lookup.remove(&p.id);
            }
        }
        Some(net)
    }

    /// The cached network.
    pub fn get_network_by_id(&self, network_id: &Id) -> Option<&Network> {
        self.networks.get(network_id)
    }

    /// The ids of all cached networks.
    pub fn get_network_ids(&self) -> Vec<Id> {
        self.networks.keys().cloned().collect()
    }

    /// The network a subnet (local or non-local) belongs to.
    pub fn get_network_by_subnet_id(&self, subnet_id: &Id) -> Option<&Network> {
        self.subnet_lookup
            .get(subnet_id)
            .and_then(|n| self.networks.get(n))
    }

    /// The network a port belongs to.
    pub fn get_network_by_port_id(&self, port_id: &Id) -> Option<&Network> {
        self.port_lookup
            .get(port_id)
            .and_then(|n| self.networks.get(n))
    }

    /// A cached port.
    pub fn get_port_by_id(&self, port_id: &Id) -> Option<&Port> {
        self.get_network_by_port_id(port_id)
            .and_then(|n| n.ports.iter().find(|p| &p.id == port_id))
    }

    /// Replaces the port with the same id in its network, or appends it.
    /// Returns false (and stores nothing) if the network is not cached.
    pub fn put_port(&mut self, network_id: &Id, port: Port) -> bool {
        if !self.networks.contains_key(network_id) {
            return false;
        }
        // A port never moves between networks, but keep the lookups honest if
        // a server ever says otherwise.
        if let Some(other) = self.port_lookup.get(&port.id).cloned() {
            if &other != network_id {
                if let Some(n) = self.networks.get_mut(&other) {
                    n.ports.retain(|p| p.id != port.id);
                }
            }
        }
        self.port_lookup.insert(port.id.clone(), network_id.clone());
        let Some(net) = self.networks.get_mut(network_id) else {
            return false;
        };
        net.put_port(port);
        true
    }

    /// Removes a port from its network; returns it if it was cached.
    pub fn remove_port(&mut self, port_id: &Id) -> Option<Port> {
        let network_id = self.port_lookup.remove(port_id)?;
        let net = self.networks.get_mut(&network_id)?;
        let pos = net.ports.iter().position(|p| &p.id == port_id)?;
        Some(net.ports.remove(pos))
    }

    /// Port ids of the given networks, or of all networks for `None`.
    pub fn get_port_ids(&self, network_ids: Option<&HashSet<Id>>) -> Vec<Id> {
        self.networks
            .values()
            .filter(|n| network_ids.is_none_or(|ids| ids.contains(&n.id)))
            .flat_map(|n| n.ports.iter().map(|p| p.id.clone()))
            .collect()
    }

    /// Counts of networks, subnets (local and non-local) and ports.
    pub fn get_state(&self) -> CacheState {
        let mut state = CacheState {
            networks: self.networks.len(),
            ..CacheState::default()
        };
        for n in self.networks.values() {
            state.subnets += n.subnets.len() + n.non_local_subnets.len();
            state.ports += n.ports.len();
        }
        state
    }

    /// True if a port message is older than what we have: the cached copy
    /// has a higher `revision_number` (absent counts as 0), or the port was
    /// deleted.
    pub fn is_port_message_stale(&self, port: &Port) -> bool {
        if self.deleted_ports.contains_key(&port.id) {
            return true;
        }
        match self.get_port_by_id(&port.id) {
            Some(cached) => cached.revision_number.unwrap_or(0) > port.revision_number.unwrap_or(0),
            None => false,
        }
    }

    /// Remembers a deleted port id, now.
    pub fn add_to_deleted_ports(&mut self, port_id: Id) {
        self.add_to_deleted_ports_at(port_id, Instant::now());
    }

    /// Remembers a deleted port id with the time it was deleted.
    pub fn add_to_deleted_ports_at(&mut self, port_id: Id, at: Instant) {
        self.deleted_ports.entry(port_id).or_insert(at);
    }

    /// Forgets deleted port ids older than [`DELETED_PORT_MAX_AGE`] at `now`;
    /// returns how many were forgotten.
    pub fn cleanup_deleted_ports(&mut self, now: Instant) -> usize {
        let before = self.deleted_ports.len();
        self.deleted_ports
            .retain(|_, at| now.saturating_duration_since(*at) < DELETED_PORT_MAX_AGE);
        before - self.deleted_ports.len()
    }

    /// How many deleted port ids are remembered.
    pub fn deleted_ports_len(&self) -> usize {
        self.deleted_ports.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn port(pid: &str, ip: &str, rev: Option<u64>) -> Port {
        let mut v = json!({"id": pid, "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}]});
        if let Some(r) = rev {
            v["revision_number"] = json!(r);
        }
        serde_json::from_value(v).unwrap()
    }

    fn net(nid: &str, ports: Vec<Port>) -> Network {
        serde_json::from_value(json!({
            "id": nid,
            "subnets": [{"id": format!("{nid}-s1"), "cidr": "198.51.100.0/24", "ip_version": 4}],
            "non_local_subnets": [{"id": format!("{nid}-s2"), "cidr": "203.0.113.0/24", "ip_version": 4}],
            "ports": ports,
        }))
        .unwrap()
    }

    #[test]
    fn put_and_lookups() {
        let mut c = NetworkCache::new();
        c.put(net("n1", vec![port("p1", "198.51.100.5", None)]));
        assert_eq!(
            c.get_network_by_subnet_id(&id("n1-s1")).unwrap().id,
            id("n1")
        );
        assert_eq!(
            c.get_network_by_subnet_id(&id("n1-s2")).unwrap().id,
            id("n1")
        );
        assert_eq!(c.get_network_by_port_id(&id("p1")).unwrap().id, id("n1"));
        assert_eq!(c.get_port_by_id(&id("p1")).unwrap().id, id("p1"));
        assert_eq!(
            c.get_state(),
            CacheState {
                networks: 1,
                subnets: 2,
                ports: 1
            }
        );
        // A put replaces the lookups of the old copy.
        c.put(net("n1", vec![port("p2", "198.51.100.6", None)]));
        assert!(c.get_port_by_id(&id("p1")).is_none());
        assert!(c.get_port_by_id(&id("p2")).is_some());
        assert!(c.remove(&id("n1")).is_some());
        assert!(c.get_network_by_subnet_id(&id("n1-s1")).is_none());
        assert!(c.get_network_by_port_id(&id("p2")).is_none());
        assert_eq!(c.get_state(), CacheState::default());
    }

    #[test]
    fn put_port_replaces_or_appends_and_needs_the_network() {
        let mut c = NetworkCache::new();
        assert!(!c.put_port(&id("n1"), port("p1", "198.51.100.5", None)));
        c.put(net("n1", vec![port("p1", "198.51.100.5", Some(1))]));
        assert!(c.put_port(&id("n1"), port("p1", "198.51.100.7", Some(2))));
        assert!(c.put_port(&id("n1"), port("p2", "198.51.100.8", None)));
        let n = c.get_network_by_id(&id("n1")).unwrap();
        assert_eq!(n.ports.len(), 2);
        assert_eq!(n.ports[0].fixed_ips[0].ip_address.text(), "198.51.100.7");
        assert_eq!(c.remove_port(&id("p1")).unwrap().id, id("p1"));
        assert!(c.remove_port(&id("p1")).is_none());
        assert_eq!(c.get_port_ids(None), vec![id("p2")]);
        let only: HashSet<Id> = [id("other")].into();
        assert!(c.get_port_ids(Some(&only)).is_empty());
    }

    #[test]
    fn stale_update_ignored() {
        let mut c = NetworkCache::new();
        c.put(net("n1", vec![port("p1", "198.51.100.5", Some(5))]));
        assert!(c.is_port_message_stale(&port("p1", "198.51.100.5", Some(4))));
        assert!(c.is_port_message_stale(&port("p1", "198.51.100.5", None)));
        assert!(!c.is_port_message_stale(&port("p1", "198.51.100.5", Some(5))));
        assert!(!c.is_port_message_stale(&port("p1", "198.51.100.5", Some(6))));
        assert!(!c.is_port_message_stale(&port("p9", "198.51.100.9", Some(1))));
    }

    #[test]
    fn update_of_deleted_port_ignored_until_cleanup() {
        let mut c = NetworkCache::new();
        let t0 = Instant::now();
        c.add_to_deleted_ports_at(id("p1"), t0);
        c.add_to_deleted_ports_at(id("p2"), t0 + Duration::from_secs(3600));
        assert!(c.is_port_message_stale(&port("p1", "198.51.100.5", Some(99))));
        assert_eq!(c.cleanup_deleted_ports(t0 + Duration::from_secs(86399)), 0);
        assert_eq!(c.cleanup_deleted_ports(t0 + Duration::from_secs(86400)), 1);
        assert!(!c.is_port_message_stale(&port("p1", "198.51.100.5", Some(99))));
        assert!(c.is_port_message_stale(&port("p2", "198.51.100.5", Some(99))));
        assert_eq!(c.deleted_ports_len(), 1);
    }
}
