//! The work queue: ordering (priority, arrival, the same-IP rule),
//! per-network serialisation, parallel networks, no handler during a sync,
//! and coalescing of port events.

#[path = "dispatch_fakes.rs"]
mod fakes;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fakes::*;
use leasehold_agent::notification::{Event, Notification as N};
use leasehold_agent::queue::WorkQueue;

fn create(pid: &str, ip: &str, priority: u8) -> Event {
    ev(
        N::PortCreateEnd {
            port: Box::new(port(pid, "fa:16:3e:00:00:02", &[("net-a-s1", ip)])),
            network_id: id("net-a"),
        },
        priority,
    )
}

fn delete(pid: &str, ip: &str, priority: u8) -> Event {
    ev(
        N::PortDeleteEnd {
            port_id: id(pid),
            network_id: id("net-a"),
            fixed_ips: vec![ip.parse().unwrap()],
        },
        priority,
    )
}

fn order(q: &WorkQueue) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    while let Some(b) = q.try_next() {
        out.push(b.events.iter().map(|e| e.seq).collect());
        q.done(&b.network_id);
    }
    out
}

#[test]
fn lower_priority_value_goes_first_across_networks() {
    let q = WorkQueue::new();
    q.push(
        id("n1"),
        ev(
            N::NetworkCreateEnd {
                network_id: id("n1"),
            },
            3,
        ),
    );
    q.push(
        id("n2"),
        ev(
            N::NetworkCreateEnd {
                network_id: id("n2"),
            },
            0,
        ),
    );
    q.push(
        id("n3"),
        ev(
            N::NetworkCreateEnd {
                network_id: id("n3"),
            },
            255,
        ),
    );
    q.push(
        id("n4"),
        ev(
            N::NetworkCreateEnd {
                network_id: id("n4"),
            },
            1,
        ),
    );
    assert_eq!(order(&q), vec![vec![2], vec![4], vec![1], vec![3]]);
}

#[test]
fn equal_priority_goes_by_arrival() {
    let q = WorkQueue::new();
    for n in ["n3", "n1", "n2"] {
        q.push(id(n), ev(N::NetworkCreateEnd { network_id: id(n) }, 6));
    }
    assert_eq!(order(&q), vec![vec![1], vec![2], vec![3]]);
}

fn on(e: Event, net: &str) -> Event {
    let mut e = e;
    match &mut e.notification {
        N::PortCreateEnd { network_id, .. } | N::PortDeleteEnd { network_id, .. } => {
            *network_id = id(net)
        }
        _ => {}
    }
    e
}

#[test]
fn port_events_sharing_an_ip_go_by_arrival_whatever_their_priority() {
    // A delete (6) then a create (5) of the same IP: the delete stays first.
    let q = WorkQueue::new();
    q.push(id("n1"), on(delete("old", "198.51.100.7", 6), "n1"));
    q.push(id("n2"), on(create("new", "198.51.100.7", 5), "n2"));
    assert_eq!(order(&q), vec![vec![1], vec![2]]);
    // Different IPs: priority wins.
    let q = WorkQueue::new();
    q.push(id("n1"), on(delete("old", "198.51.100.7", 6), "n1"));
    q.push(id("n2"), on(create("new", "198.51.100.8", 5), "n2"));
    assert_eq!(order(&q), vec![vec![2], vec![1]]);
}

#[test]
fn a_coalesced_run_is_in_arrival_order() {
    let q = WorkQueue::new();
    q.push(id("net-a"), delete("old", "198.51.100.7", 6));
    q.push(id("net-a"), create("other", "198.51.100.8", 6));
    q.push(id("net-a"), create("new", "198.51.100.7", 5));
    assert_eq!(order(&q), vec![vec![1, 2, 3]]);
}

#[test]
fn a_run_stops_at_the_networks_next_non_port_event() {
    // Old servers send no priority: everything is 255, so arrival decides.
    let q = WorkQueue::new();
    q.push(id("net-a"), create("p1", "198.51.100.7", 255));
    q.push(
        id("net-a"),
        ev(
            N::NetworkDeleteEnd {
                network_id: id("net-a"),
            },
            255,
        ),
    );
    q.push(id("net-a"), create("p2", "198.51.100.8", 255));
    assert_eq!(order(&q), vec![vec![1], vec![2], vec![3]]);
    // A subnet event (3) goes before port events (6) that arrived earlier.
    let q = WorkQueue::new();
    q.push(id("net-a"), create("p1", "198.51.100.7", 6));
    q.push(
        id("net-a"),
        ev(
            N::SubnetUpdateEnd {
                network_id: id("net-a"),
            },
            3,
        ),
    );
    q.push(id("net-a"), create("p2", "198.51.100.8", 6));
    assert_eq!(order(&q), vec![vec![2], vec![1, 3]]);
}

#[test]
fn network_events_are_not_coalesced_and_split_port_runs() {
    let q = WorkQueue::new();
    q.push(id("net-a"), create("p1", "198.51.100.7", 6));
    q.push(id("net-a"), create("p2", "198.51.100.8", 6));
    q.push(
        id("net-a"),
        ev(
            N::SubnetUpdateEnd {
                network_id: id("net-a"),
            },
            6,
        ),
    );
    q.push(
        id("net-a"),
        ev(
            N::SubnetUpdateEnd {
                network_id: id("net-a"),
            },
            6,
        ),
    );
    q.push(id("net-a"), create("p3", "198.51.100.9", 6));
    assert_eq!(order(&q), vec![vec![1, 2], vec![3], vec![4], vec![5]]);
}

#[tokio::test]
async fn dispatcher_applies_events_in_queue_order() {
    let (d, _server, rec) = setup(vec![
        simple_network("n1"),
        simple_network("n2"),
        simple_network("n3"),
    ]);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n1"),
        },
        3,
    ));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n2"),
        },
        6,
    ));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n3"),
        },
        0,
    ));
    d.drain_queue().await;
    let enables: Vec<String> = rec.driver_log().into_iter().map(|(_, n)| n).collect();
    assert_eq!(enables, vec!["n3", "n1", "n2"]);
}

async fn start(
    d: &Arc<leasehold_agent::dispatch::Dispatcher>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let d = d.clone();
    (tx, tokio::spawn(async move { d.run(rx).await }))
}

async fn stop(tx: tokio::sync::watch::Sender<bool>, run: tokio::task::JoinHandle<()>) {
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run stops")
        .unwrap();
}

#[tokio::test]
async fn one_network_is_served_one_event_at_a_time_and_networks_in_parallel() {
    let (d, _server, rec) = setup(vec![simple_network("n1"), simple_network("n2")]);
    enabled(&d, &rec, "n1").await;
    enabled(&d, &rec, "n2").await;
    rec.delay("reload_allocations", Duration::from_millis(100));
    let (tx, run) = start(&d).await;
    for _ in 0..3 {
        for n in ["n1", "n2"] {
            d.handle(ev(N::SubnetUpdateEnd { network_id: id(n) }, 3));
        }
    }
    eventually("all applied", || d.stats().events_processed == 2 + 6).await;
    assert_eq!(rec.count("reload_allocations"), 6);
    assert_eq!(rec.max_per_network.load(Ordering::SeqCst), 1);
    assert_eq!(rec.max_total.load(Ordering::SeqCst), 2);
    stop(tx, run).await;
}

#[tokio::test]
async fn parallelism_is_bounded() {
    let mut cfg = config();
    cfg.max_parallel_networks = 1;
    let (d, _server, rec) = setup_with(vec![simple_network("n1"), simple_network("n2")], cfg);
    rec.delay("enable", Duration::from_millis(50));
    let (tx, run) = start(&d).await;
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n1"),
        },
        0,
    ));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n2"),
        },
        0,
    ));
    eventually("both enabled", || {
        rec.count("enable") == 2 && d.stats().events_processed == 2
    })
    .await;
    assert_eq!(rec.max_total.load(Ordering::SeqCst), 1);
    stop(tx, run).await;
}

#[tokio::test]
async fn no_event_is_applied_while_a_sync_runs() {
    let (d, server, rec) = setup(vec![simple_network("n1"), simple_network("n2")]);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *server.active_gate.lock().unwrap() = Some(gate.clone());
    let (tx, run) = start(&d).await;
    let sync = tokio::spawn({
        let d = d.clone();
        async move { d.sync_state(Some(vec![id("n1")])).await }
    });
    eventually("sync started", || {
        server.active_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("n2"),
        },
        0,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rec.log().is_empty(),
        "applied during a sync: {:?}",
        rec.log()
    );
    gate.add_permits(1);
    sync.await.unwrap().unwrap();
    // The partial sync enables n1 and the new n2; then the event enables n2.
    eventually("event applied after the sync", || {
        d.stats().events_processed == 1
    })
    .await;
    assert_eq!(
        rec.driver_log(),
        vec![
            ("enable".to_string(), "n1".to_string()),
            ("enable".to_string(), "n2".to_string()),
            ("enable".to_string(), "n2".to_string())
        ]
    );
    stop(tx, run).await;
}

#[tokio::test]
async fn port_events_during_a_reload_coalesce_into_one_more_reload() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    while d.push_ready_ports_once().await != leasehold_agent::dispatch::PushOutcome::Idle {}
    let sent_before = d.stats().ready_ports_sent as usize;
    rec.delay("reload_allocations", Duration::from_millis(300));
    let (tx, run) = start(&d).await;
    d.handle(create("c000", "198.51.100.100", 5));
    eventually("first reload started", || {
        rec.count("reload_allocations") == 1
    })
    .await;
    let n = 20;
    for i in 1..=n {
        d.handle(create(
            &format!("c{i:03}"),
            &format!("198.51.100.{}", 100 + i),
            6,
        ));
    }
    eventually("all applied", || {
        d.stats().events_processed == 1 + 1 + n as u64
    })
    .await;
    let reloads = rec.count("reload_allocations");
    assert!(reloads <= 2, "{reloads} reloads for {} events", n + 1);
    assert_eq!(reloads, 2);
    // The second reload saw every port.
    let calls = rec.calls.lock().unwrap().clone();
    let last = calls
        .iter()
        .rev()
        .find(|c| c.action == "reload_allocations")
        .unwrap();
    assert_eq!(last.net.ports.len(), 1 + 1 + n);
    let stats = d.stats();
    assert_eq!(stats.reloads, 2);
    assert!(stats.latency_samples.len() > n);
    stop(tx, run).await;
    // Every port was marked ready (sent by the loop or still waiting).
    let (prio, normal) = d.ready_ports();
    let sent = d.stats().ready_ports_sent as usize - sent_before;
    assert_eq!(prio.len() + normal.len() + sent, 1 + n);
}

#[tokio::test]
async fn coalesced_batch_still_checks_duplicates_in_order() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    // Two different ports with one IP in one batch: the second one is a duplicate.
    d.handle(create("x1", "198.51.100.50", 6));
    d.handle(create("x2", "198.51.100.50", 6));
    d.drain_queue().await;
    assert_eq!(rec.count("reload_allocations"), 1);
    assert_eq!(resync_keys(&d), vec!["net-a"]);
    let (prio, _) = d.ready_ports();
    assert_eq!(names(&prio), vec!["x1"]);
}

#[tokio::test]
async fn own_port_delete_inside_a_batch_flushes_earlier_reloads_first() {
    let (d, server, rec) = setup(vec![]);
    let own = port_owned(
        "dhcp-port",
        "fa:16:3e:00:00:dd",
        &[("net-a-s1", "198.51.100.2")],
        "",
        &d.dhcp_device_id(&id("net-a")),
    );
    let mut net = simple_network("net-a");
    net.ports.push(own);
    server.set(net);
    enabled(&d, &rec, "net-a").await;
    d.handle(create("x1", "198.51.100.50", 6));
    d.handle(delete("dhcp-port", "198.51.100.2", 6));
    d.handle(create("x2", "198.51.100.51", 6));
    d.drain_queue().await;
    assert_eq!(d.stats().batches, 2);
    let driver: Vec<String> = rec.driver_log().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        driver,
        vec!["reload_allocations", "disable", "reload_allocations"]
    );
    assert_eq!(resync_keys(&d), vec!["net-a"]);
}
