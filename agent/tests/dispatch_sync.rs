//! sync_state, resyncs, call_driver error handling, segments, ready ports
//! and bulk reloads, over recording fakes.

#[path = "dispatch_fakes.rs"]
mod fakes;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fakes::*;
use leasehold_agent::dispatch::{ActionError, PushOutcome};
use leasehold_agent::notification::Notification as N;
use leasehold_agent::server_api::RpcError;

fn s(a: &str, n: &str) -> (String, String) {
    (a.to_string(), n.to_string())
}

#[tokio::test]
async fn sync_state_disables_known_not_active_and_configures_new() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    d.adopt_existing([id("net-b")]);
    d.sync_state(None).await.unwrap();
    assert_eq!(
        rec.log(),
        vec![
            s("metadata_off", "net-b"),
            s("disable", "net-b"),
            s("enable", "net-a"),
            s("metadata_off", "net-a"),
        ]
    );
    assert_eq!(d.cached_network_ids(), vec![id("net-a")]);
    // Ready ports: the cache's ports after the sync.
    assert_eq!(names(&d.ready_ports().1), vec!["net-a-p1"]);
}

#[tokio::test]
async fn sync_state_placeholder_of_active_network_is_enabled() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    d.adopt_existing([id("net-a")]);
    d.sync_state(None).await.unwrap();
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
    assert_eq!(d.cached_network(&id("net-a")).unwrap().subnets.len(), 1);
}

#[tokio::test]
async fn full_sync_with_unchanged_networks_calls_no_enable_or_restart() {
    let mut with_disabled_subnet = simple_network("net-b");
    with_disabled_subnet
        .subnets
        .push(serde_json::from_value(subnet("net-b-s9", "203.0.113.0/24", false)).unwrap());
    with_disabled_subnet.ports.reverse();
    let (d, server, rec) = setup(vec![simple_network("net-a"), with_disabled_subnet]);
    d.sync_state(None).await.unwrap();
    assert_eq!(rec.count("enable"), 2);
    rec.clear();
    d.sync_state(None).await.unwrap();
    assert!(rec.log().is_empty(), "{:?}", rec.log());
    // A change on the server: only that network is enabled again.
    let mut changed = simple_network("net-a");
    changed.ports.push(port(
        "net-a-p2",
        "fa:16:3e:00:00:02",
        &[("net-a-s1", "198.51.100.11")],
    ));
    server.set(changed);
    d.sync_state(None).await.unwrap();
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
}

#[tokio::test]
async fn partial_sync_reenables_named_network_even_if_unchanged() {
    let (d, _server, rec) = setup(vec![simple_network("net-a"), simple_network("net-b")]);
    d.sync_state(None).await.unwrap();
    rec.clear();
    while d.push_ready_ports_once().await != PushOutcome::Idle {}
    d.sync_state(Some(vec![id("net-a")])).await.unwrap();
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
    // Ready ports of the named network only.
    assert_eq!(names(&d.ready_ports().1), vec!["net-a-p1"]);
}

#[tokio::test]
async fn partial_sync_configures_new_networks_and_disables_gone_ones() {
    let (d, server, rec) = setup(vec![simple_network("net-a"), simple_network("net-b")]);
    d.sync_state(None).await.unwrap();
    rec.clear();
    server.remove("net-b");
    server.set(simple_network("net-c"));
    d.sync_state(Some(vec![id("net-x")])).await.unwrap();
    assert_eq!(
        rec.driver_log(),
        vec![s("disable", "net-b"), s("enable", "net-c")]
    );
}

#[tokio::test]
async fn partial_sync_failure_resyncs_that_network() {
    let (d, server, _rec) = setup(vec![]);
    server
        .active_errors
        .lock()
        .unwrap()
        .push_back(remote("Oops"));
    assert!(d.sync_state(Some(vec![id("foo")])).await.is_err());
    assert_eq!(resync_keys(&d), vec!["foo"]);
}

#[tokio::test]
async fn full_sync_failure_schedules_full_resync() {
    let (d, server, _rec) = setup(vec![]);
    server
        .active_errors
        .lock()
        .unwrap()
        .push_back(RpcError::Timeout {
            method: "get_active_networks_info".into(),
            seconds: 60,
        });
    assert!(d.sync_state(None).await.is_err());
    assert_eq!(resync_keys(&d), vec!["*"]);
}

#[tokio::test]
async fn undecodable_active_network_is_kept_not_disabled() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    d.sync_state(None).await.unwrap();
    rec.clear();
    server.remove("net-a");
    server.undecodable.lock().unwrap().push("net-a".into());
    d.sync_state(None).await.unwrap();
    assert!(rec.log().is_empty());
    assert!(d.cached_network(&id("net-a")).is_some());
}

#[tokio::test]
async fn periodic_resync_helper_syncs_pending_networks_and_clears_them() {
    let (d, server, rec) = setup(vec![simple_network("a"), simple_network("b")]);
    d.schedule_resync("reason 1", Some(id("a")));
    d.schedule_resync("reason 2", Some(id("b")));
    assert!(d.resync_once().await);
    assert!(d.pending_resyncs().is_empty());
    assert_eq!(server.active_calls.load(Ordering::SeqCst), 1);
    assert_eq!(rec.count("enable"), 2);
    assert!(!d.resync_once().await);
}

#[tokio::test]
async fn revived_or_agent_updated_runs_a_full_resync() {
    let (d, server, rec) = setup(vec![simple_network("a")]);
    d.handle(ev(
        N::AgentUpdated {
            admin_state_up: true,
        },
        255,
    ));
    d.schedule_resync("Agent has just been revived", None);
    assert_eq!(resync_keys(&d), vec!["*"]);
    assert!(d.resync_once().await);
    assert_eq!(server.active_calls.load(Ordering::SeqCst), 1);
    assert_eq!(rec.driver_log(), vec![s("enable", "a")]);
}

#[tokio::test]
async fn resync_loop_runs_scheduled_resyncs() {
    let (d, server, rec) = setup(vec![simple_network("a")]);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let d = d.clone();
        async move { d.run(rx).await }
    });
    d.schedule_resync("test", Some(id("a")));
    eventually("resync ran", || rec.count("enable") == 1).await;
    assert_eq!(server.active_calls.load(Ordering::SeqCst), 1);
    // A failing sync is retried by the loop.
    server
        .active_errors
        .lock()
        .unwrap()
        .push_back(remote("Oops"));
    d.schedule_resync("again", None);
    eventually("failed sync retried", || {
        server.active_calls.load(Ordering::SeqCst) >= 3
    })
    .await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run stops")
        .unwrap();
}

async fn enabled_with_failure(err: ActionError) -> Vec<String> {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    rec.fail_next("reload_allocations", err);
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(rec.count("reload_allocations"), 1);
    resync_keys(&d)
}

#[tokio::test]
async fn call_driver_generic_failure_resyncs() {
    assert_eq!(
        enabled_with_failure(ActionError::Other("boom".into())).await,
        vec!["net-a"]
    );
}

#[tokio::test]
async fn call_driver_conflict_does_not_resync() {
    assert!(
        enabled_with_failure(ActionError::Conflict("no port".into()))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn call_driver_ip_address_generation_failure_does_not_resync() {
    assert!(
        enabled_with_failure(ActionError::Rpc(remote("IpAddressGenerationFailure")))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn call_driver_network_not_found_resyncs() {
    assert_eq!(
        enabled_with_failure(ActionError::Rpc(remote("NetworkNotFound"))).await,
        vec!["net-a"]
    );
}

#[tokio::test]
async fn call_driver_subnet_mismatch_resyncs() {
    assert_eq!(
        enabled_with_failure(ActionError::SubnetMismatch("port".into())).await,
        vec!["net-a"]
    );
}

#[tokio::test]
async fn call_driver_enable_with_segments_calls_once_per_segment_group() {
    let mut net = network(
        "net-a",
        vec![
            segment_subnet("sub-0a", "198.51.100.0/24", "seg0"),
            segment_subnet("sub-1", "203.0.113.0/24", "seg1"),
            segment_subnet("sub-0b", "2001:db8::/64", "seg0"),
        ],
        vec![],
    );
    net.segments = serde_json::from_value(serde_json::json!([
        {"id": "seg0", "network_type": "vlan", "segmentation_id": 100},
        {"id": "seg1", "network_type": "vlan", "segmentation_id": 101},
    ]))
    .unwrap();
    let (d, _server, rec) = setup(vec![net]);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    let calls: Vec<_> = rec
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.action == "enable")
        .cloned()
        .collect();
    assert_eq!(calls.len(), 2);
    let summary: Vec<(Vec<String>, Vec<String>)> = calls
        .iter()
        .map(|c| {
            (
                c.net.segments.iter().map(|s| s.id.to_string()).collect(),
                c.net.subnets.iter().map(|s| s.id.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (vec!["seg0".into()], vec!["sub-0a".into(), "sub-0b".into()]),
            (vec!["seg1".into()], vec!["sub-1".into()]),
        ]
    );
    // The cached network is whole: no mutation quirk.
    assert_eq!(d.cached_network(&id("net-a")).unwrap().subnets.len(), 3);
}

#[tokio::test]
async fn segment_group_failure_fails_the_call_but_all_groups_run() {
    let mut net = network(
        "net-a",
        vec![
            segment_subnet("sub-0", "198.51.100.0/24", "seg0"),
            segment_subnet("sub-1", "203.0.113.0/24", "seg1"),
        ],
        vec![],
    );
    net.segments =
        serde_json::from_value(serde_json::json!([{"id": "seg0"}, {"id": "seg1"}])).unwrap();
    let (d, _server, rec) = setup(vec![net]);
    rec.fail_next("enable", ActionError::Other("seg0 failed".into()));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert_eq!(rec.count("enable"), 2);
    assert!(d.cached_network(&id("net-a")).is_none());
}

fn many_ports(n: usize, prefix: &str) -> Vec<leasehold_core::model::Id> {
    (0..n).map(|i| id(&format!("{prefix}{i:03}"))).collect()
}

#[tokio::test]
async fn ready_ports_65_go_in_batches_of_64_then_1_priority_first() {
    let mut net = simple_network("net-a");
    net.ports.clear();
    for (i, pid) in many_ports(63, "p").iter().enumerate() {
        net.ports.push(port(
            pid.as_str(),
            "fa:16:3e:00:00:01",
            &[("net-a-s1", &format!("198.51.100.{}", i + 10))],
        ));
    }
    let (d, server, rec) = setup(vec![net]);
    // 63 normal ports from the enable...
    enabled(&d, &rec, "net-a").await;
    // ...and 2 priority ones from port creates.
    for (pid, ip) in [
        ("zz-prio-1", "198.51.100.200"),
        ("zz-prio-2", "198.51.100.201"),
    ] {
        d.handle(ev(
            N::PortCreateEnd {
                port: Box::new(port(pid, "fa:16:3e:00:00:02", &[("net-a-s1", ip)])),
                network_id: id("net-a"),
            },
            5,
        ));
    }
    d.drain_queue().await;
    assert_eq!(d.push_ready_ports_once().await, PushOutcome::Sent(64));
    assert_eq!(d.push_ready_ports_once().await, PushOutcome::Sent(1));
    assert_eq!(d.push_ready_ports_once().await, PushOutcome::Idle);
    let calls = server.ready_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 64);
    assert_eq!(calls[1].len(), 1);
    // Priority ports first (they sort after every p0xx, so only priority puts them in).
    assert_eq!(calls[0][0].as_str(), "zz-prio-1");
    assert_eq!(calls[0][1].as_str(), "zz-prio-2");
}

#[tokio::test]
async fn ready_ports_failure_resends_the_same_ids() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    server.ready_failures.store(1, Ordering::SeqCst);
    assert_eq!(d.push_ready_ports_once().await, PushOutcome::Failed);
    assert_eq!(names(&d.ready_ports().1), vec!["net-a-p1"]);
    assert_eq!(d.push_ready_ports_once().await, PushOutcome::Sent(1));
    let calls = server.ready_calls.lock().unwrap().clone();
    assert_eq!(calls, vec![vec![id("net-a-p1")], vec![id("net-a-p1")]]);
    assert_eq!(d.stats().ready_ports_failures, 1);
    assert_eq!(d.stats().ready_ports_sent, 1);
}

#[tokio::test]
async fn ready_ports_loop_sends_everything_while_running() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    server.ready_failures.store(2, Ordering::SeqCst);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn({
        let d = d.clone();
        async move { d.run(rx).await }
    });
    eventually("ready ports sent", || d.stats().ready_ports_sent == 1).await;
    assert_eq!(server.ready_calls.lock().unwrap().len(), 3);
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run stops when the sender is dropped")
        .unwrap();
}

#[tokio::test]
async fn bulk_reload_defers_reloads_to_one_call() {
    let mut cfg = config();
    cfg.bulk_reload_interval = Duration::from_secs(3600);
    let (d, _server, rec) = setup_with(vec![simple_network("net-a")], cfg);
    enabled(&d, &rec, "net-a").await;
    for (pid, ip) in [("q1", "198.51.100.21"), ("q2", "198.51.100.22")] {
        d.handle(ev(
            N::PortCreateEnd {
                port: Box::new(port(pid, "fa:16:3e:00:00:02", &[("net-a-s1", ip)])),
                network_id: id("net-a"),
            },
            5,
        ));
        d.drain_queue().await;
    }
    assert_eq!(rec.count("reload_allocations"), 0);
    d.bulk_reload_once().await;
    assert_eq!(rec.count("reload_allocations"), 1);
    let calls = rec.calls.lock().unwrap().clone();
    let reload = calls
        .iter()
        .find(|c| c.action == "reload_allocations")
        .unwrap();
    assert_eq!(reload.net.ports.len(), 3);
    d.bulk_reload_once().await;
    assert_eq!(rec.count("reload_allocations"), 1);
}
