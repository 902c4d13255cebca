//! The per-network work queue.
//!
//! Every event is keyed by its network id. The queue hands out work one
//! network at a time: while a network's batch is being processed
//! ([`WorkQueue::try_next`] until [`WorkQueue::done`]) no other batch of that
//! network is handed out, so events of one network are applied in order, one
//! at a time; different networks run in parallel (the caller bounds how many).
//!
//! Order (Neutron's `DHCPResourceUpdate.__lt__`): two port events whose IP
//! sets intersect are ordered by arrival, whatever their priorities (so a
//! delete and a re-create of one IP stay in order); otherwise the lower
//! priority wins, then the earlier arrival.
//!
//! Coalescing (unlike Neutron): when the next event of a network is a port
//! event, the batch takes it and every other port event of that network that
//! goes before the network's next network or subnet event, in arrival order. The dispatcher applies each to the cache and
//! calls the driver once.
//! So port events that arrive while a reload runs end up in one next batch:
//! N events during a reload cost at most one more reload.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use leasehold_core::model::Id;
use tokio::sync::Notify;

use crate::notification::{Event, Notification};

/// An event waiting in the queue.
#[derive(Clone, Debug)]
pub struct QueuedEvent {
    /// The event.
    pub event: Event,
    /// Its queue key.
    pub network_id: Id,
    /// Arrival order (stands for Neutron's timestamp; strictly increasing).
    pub seq: u64,
    /// Arrival time, for latency figures.
    pub enqueued: Instant,
    /// The addresses of a port event (empty for other events).
    ips: Vec<IpAddr>,
}

impl QueuedEvent {
    /// True for port create, update and delete events.
    pub fn is_port(&self) -> bool {
        matches!(
            self.event.notification,
            Notification::PortCreateEnd { .. }
                | Notification::PortUpdateEnd { .. }
                | Notification::PortDeleteEnd { .. }
        )
    }

    /// Whether `self` goes before `other` (the `__lt__` rule).
    pub fn precedes(&self, other: &QueuedEvent) -> bool {
        if self.is_port() && other.is_port() && self.ips.iter().any(|ip| other.ips.contains(ip)) {
            return self.seq < other.seq;
        }
        (self.event.priority, self.seq) < (other.event.priority, other.seq)
    }
}

fn port_ips(n: &Notification) -> Vec<IpAddr> {
    match n {
        Notification::PortCreateEnd { port, .. } | Notification::PortUpdateEnd { port, .. } => port
            .fixed_ips
            .iter()
            .map(|f| *f.ip_address.value())
            .collect(),
        Notification::PortDeleteEnd { fixed_ips, .. } => fixed_ips.clone(),
        _ => Vec::new(),
    }
}

/// Work for one network: one event, or a run of port events.
#[derive(Debug)]
pub struct Batch {
    /// The network.
    pub network_id: Id,
    /// The events, in the order to apply them.
    pub events: Vec<QueuedEvent>,
}

#[derive(Debug, Default)]
struct State {
    pending: BTreeMap<Id, Vec<QueuedEvent>>,
    busy: HashSet<Id>,
    next_seq: u64,
    depth: usize,
}

/// The queue; shared by the producer (`handle`) and the workers.
#[derive(Debug, Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    wake: Notify,
}

/// Index of the event that goes first (a scan: the order is not transitive).
fn first_index(events: &[QueuedEvent]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, e) in events.iter().enumerate() {
        if best.is_none_or(|b| e.precedes(&events[b])) {
            best = Some(i);
        }
    }
    best
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this short lock leaves consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an event for `network_id`.
    pub fn push(&self, network_id: Id, event: Event) {
        {
            let mut s = self.lock();
            s.next_seq += 1;
            let q = QueuedEvent {
                ips: port_ips(&event.notification),
                event,
                network_id: network_id.clone(),
                seq: s.next_seq,
                enqueued: Instant::now(),
            };
            s.pending.entry(network_id).or_default().push(q);
            s.depth += 1;
        }
        self.wake.notify_one();
    }

    /// The next batch of a network that is not busy, if any; that network is
    /// busy until [`WorkQueue::done`].
    pub fn try_next(&self) -> Option<Batch> {
        let mut s = self.lock();
        let mut best: Option<(Id, usize)> = None;
        for (net, events) in &s.pending {
            if s.busy.contains(net) {
                continue;
            }
            let Some(i) = first_index(events) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((bn, bi)) => events[i].precedes(&s.pending[bn][*bi]),
            };
            if better {
                best = Some((net.clone(), i));
            }
        }
        let (net, i) = best?;
        let events = s.pending.get_mut(&net)?;
        let first = events.remove(i);
        let mut batch = Batch {
            network_id: net.clone(),
            events: Vec::new(),
        };
        let coalesce = first.is_port();
        batch.events.push(first);
        if coalesce {
            // Take every port event that goes before the network's first
            // non-port event (the same-IP rule never applies between a port
            // and a non-port event, so this is plain priority order).
            let barrier = events
                .iter()
                .filter(|e| !e.is_port())
                .map(|e| (e.event.priority, e.seq))
                .min();
            let (mut take, keep): (Vec<_>, Vec<_>) =
                std::mem::take(events).into_iter().partition(|e| {
                    e.is_port() && barrier.is_none_or(|b| (e.event.priority, e.seq) < b)
                });
            *events = keep;
            // Within the run, arrival order: all of it is applied with one
            // driver call, so priority no longer buys anything, and arrival
            // is the true order for events that touch the same port or IP.
            take.append(&mut batch.events);
            take.sort_by_key(|e| e.seq);
            batch.events = take;
        }
        if events.is_empty() {
            s.pending.remove(&net);
        }
        s.depth -= batch.events.len();
        s.busy.insert(net);
        Some(batch)
    }

    /// Waits for the next batch (cancel-safe: nothing is taken until it returns).
    pub async fn next(&self) -> Batch {
        loop {
            if let Some(b) = self.try_next() {
                return b;
            }
            // notify_one keeps a permit when nobody waits, so a push between
            // try_next and here is not lost.
            self.wake.notified().await;
        }
    }

    /// Marks the network's batch finished, so its next events can go.
    pub fn done(&self, network_id: &Id) {
        self.lock().busy.remove(network_id);
        self.wake.notify_one();
    }

    /// Marks a network busy for work that does not come from the queue
    /// (bulk reloads); false if it is busy already.
    pub fn try_claim(&self, network_id: &Id) -> bool {
        self.lock().busy.insert(network_id.clone())
    }

    /// Events waiting (not counting batches being processed).
    pub fn depth(&self) -> usize {
        self.lock().depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Notification;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn net_event(n: &str, priority: u8) -> Event {
        Event {
            notification: Notification::NetworkCreateEnd { network_id: id(n) },
            priority,
        }
    }

    fn delete_event(n: &str, port: &str, ip: &str, priority: u8) -> Event {
        Event {
            notification: Notification::PortDeleteEnd {
                port_id: id(port),
                network_id: id(n),
                fixed_ips: vec![ip.parse().unwrap()],
            },
            priority,
        }
    }

    #[test]
    fn busy_network_is_skipped_until_done() {
        let q = WorkQueue::new();
        q.push(id("a"), net_event("a", 0));
        q.push(id("a"), net_event("a", 0));
        q.push(id("b"), net_event("b", 5));
        let first = q.try_next().unwrap();
        assert_eq!(first.network_id, id("a"));
        let second = q.try_next().unwrap();
        assert_eq!(second.network_id, id("b"));
        assert!(q.try_next().is_none());
        assert_eq!(q.depth(), 1);
        q.done(&id("a"));
        assert_eq!(q.try_next().unwrap().network_id, id("a"));
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn port_runs_are_coalesced_but_stop_at_other_events() {
        let q = WorkQueue::new();
        q.push(id("a"), delete_event("a", "p1", "198.51.100.1", 255));
        q.push(id("a"), delete_event("a", "p2", "198.51.100.2", 255));
        q.push(id("a"), net_event("a", 255));
        q.push(id("a"), delete_event("a", "p3", "198.51.100.3", 255));
        let b = q.try_next().unwrap();
        assert_eq!(b.events.len(), 2);
        q.done(&id("a"));
        let b = q.try_next().unwrap();
        assert_eq!(b.events.len(), 1);
        assert!(!b.events[0].is_port());
        q.done(&id("a"));
        assert_eq!(q.try_next().unwrap().events.len(), 1);
    }
}
