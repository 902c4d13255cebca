//! The per-event decision table (Neutron's §3.5), one test per row and per
//! applicable scenario of `test_agent.py`, over recording fakes.

#[path = "dispatch_fakes.rs"]
mod fakes;

use fakes::*;
use leasehold_agent::dispatch::{should_enable_metadata, ActionError, MetadataConfig};
use leasehold_agent::notification::Notification as N;

fn s(a: &str, n: &str) -> (String, String) {
    (a.to_string(), n.to_string())
}

#[tokio::test]
async fn network_create_end_enables_and_caches() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    rec.create_dhcp_ports();
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
    // Metadata not wanted by default: only stopped.
    assert_eq!(rec.count("metadata_off"), 1);
    assert_eq!(rec.count("metadata_on"), 0);
    // Fetched once, not again after enable (deliberate difference (f)):
    // the cached copy has the DHCP port the enable returned.
    assert_eq!(server.info_calls.lock().unwrap().len(), 1);
    let cached = d.cached_network(&id("net-a")).expect("cached");
    let mut cached_ports: Vec<&str> = cached.ports.iter().map(|p| p.id.as_str()).collect();
    cached_ports.sort();
    assert_eq!(cached_ports, vec!["net-a-dhcp", "net-a-p1"]);
    assert_eq!(names(&d.ready_ports().1), vec!["net-a-dhcp", "net-a-p1"]);
    assert!(d.pending_resyncs().is_empty());
}

#[tokio::test]
async fn network_update_admin_up_enables_and_down_disables() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    d.handle(ev(
        N::NetworkUpdateEnd {
            network_id: id("net-a"),
            admin_state_up: true,
        },
        1,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
    rec.clear();
    d.handle(ev(
        N::NetworkUpdateEnd {
            network_id: id("net-a"),
            admin_state_up: false,
        },
        1,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![s("metadata_off", "net-a"), s("disable", "net-a")]
    );
    assert!(d.cached_network(&id("net-a")).is_none());
}

#[tokio::test]
async fn network_delete_end_disables_known_network_only() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    d.handle(ev(
        N::NetworkDeleteEnd {
            network_id: id("net-a"),
        },
        2,
    ));
    d.handle(ev(
        N::NetworkDeleteEnd {
            network_id: id("net-x"),
        },
        2,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![s("metadata_off", "net-a"), s("disable", "net-a")]
    );
    assert!(d.cached_network(&id("net-a")).is_none());
}

#[tokio::test]
async fn disable_failure_keeps_network_cached_and_resyncs() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    rec.fail_next("disable", ActionError::Other("busy".into()));
    d.handle(ev(
        N::NetworkDeleteEnd {
            network_id: id("net-a"),
        },
        2,
    ));
    d.drain_queue().await;
    assert!(d.cached_network(&id("net-a")).is_some());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
}

#[tokio::test]
async fn enable_helper_isolated_network_restarts_metadata_proxy() {
    let mut cfg = config();
    cfg.metadata.enable_isolated_metadata = true;
    let (d, _server, rec) = setup_with(vec![simple_network("net-a")], cfg);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![
            s("enable", "net-a"),
            s("metadata_off", "net-a"),
            s("metadata_on", "net-a")
        ]
    );
    // The stop-first happens only the first time.
    rec.clear();
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![s("reload_allocations", "net-a"), s("metadata_on", "net-a")]
    );
}

#[tokio::test]
async fn enable_helper_non_isolated_and_ovn_networks_only_stop_metadata() {
    let router = port_owned(
        "router-if",
        "fa:16:3e:00:00:0a",
        &[("net-a-s1", "198.51.100.1")],
        "network:router_interface",
        "router-1",
    );
    let mut non_isolated = simple_network("net-a");
    non_isolated.ports.push(router);
    let mut ovn = simple_network("net-b");
    ovn.ports.push(port_owned(
        "ovnmeta",
        "fa:16:3e:00:00:0b",
        &[("net-b-s1", "198.51.100.2")],
        "network:distributed",
        "ovnmeta-net-b",
    ));
    let mut cfg = config();
    cfg.metadata.enable_isolated_metadata = true;
    let (d, _server, rec) = setup_with(vec![non_isolated, ovn], cfg);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-b"),
        },
        0,
    ));
    d.drain_queue().await;
    assert_eq!(rec.count("metadata_on"), 0);
    assert_eq!(rec.count("metadata_off"), 2);
    assert_eq!(rec.count("enable"), 2);
}

#[test]
fn should_enable_metadata_follows_neutron_order() {
    let net = simple_network("net-a");
    let off = MetadataConfig::default();
    let isolated = MetadataConfig {
        enable_isolated_metadata: true,
        ..off
    };
    let force = MetadataConfig {
        force_metadata: true,
        ..off
    };
    assert!(!should_enable_metadata(&off, &net));
    assert!(should_enable_metadata(&isolated, &net));
    assert!(should_enable_metadata(&force, &net));
    // No DHCP subnet: never.
    let no_dhcp = network("net-n", vec![subnet("s", "198.51.100.0/24", false)], vec![]);
    assert!(!should_enable_metadata(&force, &no_dhcp));
    // A metadata network (169.254.0.0/16) with a router on its gateway.
    let meta_net = network(
        "net-m",
        vec![subnet("ms", "169.254.10.0/24", true)],
        vec![port_owned(
            "r",
            "fa:16:3e:00:00:0c",
            &[("ms", "169.254.10.1")],
            "network:router_interface",
            "router-1",
        )],
    );
    assert!(!should_enable_metadata(&isolated, &meta_net));
    let meta = MetadataConfig {
        enable_metadata_network: true,
        ..isolated
    };
    assert!(should_enable_metadata(&meta, &meta_net));
}

#[tokio::test]
async fn enable_helper_down_network_does_nothing() {
    let mut net = simple_network("net-a");
    net.admin_state_up = false;
    let (d, _server, rec) = setup(vec![net]);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert!(d.cached_network(&id("net-a")).is_none());
}

#[tokio::test]
async fn enable_helper_null_network_does_nothing_and_no_resync() {
    let (d, server, rec) = setup(vec![]);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert_eq!(server.info_calls.lock().unwrap().len(), 1);
    assert!(rec.log().is_empty());
    assert!(d.pending_resyncs().is_empty());
}

#[tokio::test]
async fn enable_helper_without_dhcp_subnet_does_nothing() {
    let net = network(
        "net-a",
        vec![subnet("s1", "198.51.100.0/24", false)],
        vec![],
    );
    let (d, _server, rec) = setup(vec![net]);
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert!(d.cached_network(&id("net-a")).is_none());
}

#[tokio::test]
async fn enable_helper_rpc_exception_schedules_resync() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    server
        .info_errors
        .lock()
        .unwrap()
        .push_back(remote("DBError"));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
}

#[tokio::test]
async fn enable_helper_driver_failure_leaves_network_uncached() {
    let mut cfg = config();
    cfg.metadata.enable_isolated_metadata = true;
    let (d, _server, rec) = setup_with(vec![simple_network("net-a")], cfg);
    rec.fail_next("enable", ActionError::Other("dnsmasq failed".into()));
    d.handle(ev(
        N::NetworkCreateEnd {
            network_id: id("net-a"),
        },
        0,
    ));
    d.drain_queue().await;
    assert_eq!(rec.log(), vec![s("enable", "net-a")]);
    assert!(d.cached_network(&id("net-a")).is_none());
    assert!(d.ready_ports().1.is_empty());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
}

#[tokio::test]
async fn subnet_create_dhcp_disabled_reloads_then_dhcp_enabled_new_cidr_restarts() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let mut net = simple_network("net-a");
    net.subnets
        .push(serde_json::from_value(subnet("net-a-s2", "203.0.113.0/24", false)).unwrap());
    server.set(net.clone());
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
    rec.clear();
    net.subnets
        .push(serde_json::from_value(subnet("net-a-s3", "2001:db8::/64", true)).unwrap());
    server.set(net);
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("restart", "net-a")]);
    let cached = d.cached_network(&id("net-a")).unwrap();
    assert!(cached.subnets.iter().any(|s| s.id == id("net-a-s3")));
}

#[tokio::test]
async fn subnet_update_same_cidrs_reloads_caches_and_readies_all_ports() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let _ = d.ready_ports();
    while d.push_ready_ports_once().await != leasehold_agent::dispatch::PushOutcome::Idle {}
    let mut net = simple_network("net-a");
    net.ports.push(port(
        "net-a-p2",
        "fa:16:3e:00:00:02",
        &[("net-a-s1", "198.51.100.11")],
    ));
    server.set(net);
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
    assert_eq!(d.cached_network(&id("net-a")).unwrap().ports.len(), 2);
    assert_eq!(names(&d.ready_ports().1), vec!["net-a-p1", "net-a-p2"]);
}

#[tokio::test]
async fn subnet_update_toggling_dhcp_restarts_each_time() {
    let two = |first_dhcp: bool, second_dhcp: bool| {
        network(
            "net-a",
            vec![
                subnet("net-a-s1", "198.51.100.0/24", first_dhcp),
                subnet("net-a-s2", "203.0.113.0/24", second_dhcp),
            ],
            vec![],
        )
    };
    let (d, server, rec) = setup(vec![two(true, false)]);
    enabled(&d, &rec, "net-a").await;
    server.set(two(true, true));
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    server.set(two(false, true));
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.driver_log(),
        vec![s("restart", "net-a"), s("restart", "net-a")]
    );
}

#[tokio::test]
async fn subnet_update_for_uncached_network_enables_it() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("enable", "net-a")]);
}

#[tokio::test]
async fn subnet_delete_end_restarts_with_fresh_network() {
    let two = network(
        "net-a",
        vec![
            subnet("net-a-s1", "198.51.100.0/24", true),
            subnet("net-a-s2", "203.0.113.0/24", true),
        ],
        vec![],
    );
    let (d, server, rec) = setup(vec![two]);
    enabled(&d, &rec, "net-a").await;
    server.set(network(
        "net-a",
        vec![subnet("net-a-s1", "198.51.100.0/24", true)],
        vec![],
    ));
    // An old server without network_id: found through the cache.
    d.handle(ev(
        N::SubnetDeleteEnd {
            subnet_id: id("net-a-s2"),
            network_id: None,
        },
        4,
    ));
    d.drain_queue().await;
    let calls = rec.calls.lock().unwrap().clone();
    let restart: Vec<_> = calls.iter().filter(|c| c.action == "restart").collect();
    assert_eq!(restart.len(), 1);
    assert_eq!(restart[0].net.subnets.len(), 1);
    assert_eq!(d.cached_network(&id("net-a")).unwrap().subnets.len(), 1);
}

#[tokio::test]
async fn subnet_delete_end_of_unknown_subnet_does_nothing() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let before = server.info_calls.lock().unwrap().len();
    d.handle(ev(
        N::SubnetDeleteEnd {
            subnet_id: id("other"),
            network_id: Some(id("net-a")),
        },
        4,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert_eq!(server.info_calls.lock().unwrap().len(), before);
}

#[tokio::test]
async fn refresh_with_no_dhcp_subnet_left_disables() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    server.set(network(
        "net-a",
        vec![subnet("net-a-s1", "198.51.100.0/24", false)],
        vec![],
    ));
    d.handle(ev(
        N::SubnetUpdateEnd {
            network_id: id("net-a"),
        },
        3,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![s("metadata_off", "net-a"), s("disable", "net-a")]
    );
    assert!(d.cached_network(&id("net-a")).is_none());
}

#[tokio::test]
async fn port_create_end_reloads_with_priority_ready() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let p = port(
        "port-2",
        "fa:16:3e:00:00:02",
        &[("net-a-s1", "198.51.100.20")],
    );
    d.handle(ev(
        N::PortCreateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        5,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
    let calls = rec.calls.lock().unwrap().clone();
    assert!(calls[0].net.ports.iter().any(|p| p.id == id("port-2")));
    assert_eq!(names(&d.ready_ports().0), vec!["port-2"]);
    // The metadata proxy is updated after the reload.
    assert_eq!(rec.log().last().unwrap().0, "metadata_off");
}

#[tokio::test]
async fn port_update_end_reloads_with_priority_ready() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let p = port(
        "net-a-p1",
        "fa:16:3e:00:00:01",
        &[("net-a-s1", "198.51.100.99")],
    );
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
    let cached = d.cached_network(&id("net-a")).unwrap();
    assert_eq!(
        cached.ports[0].fixed_ips[0].ip_address.text(),
        "198.51.100.99"
    );
    assert_eq!(names(&d.ready_ports().0), vec!["net-a-p1"]);
}

#[tokio::test]
async fn port_events_for_uncached_network_do_nothing() {
    let (d, _server, rec) = setup(vec![]);
    let p = port("port-2", "fa:16:3e:00:00:02", &[("s", "198.51.100.20")]);
    for n in [
        N::PortCreateEnd {
            port: Box::new(p.clone()),
            network_id: id("net-a"),
        },
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
    ] {
        d.handle(ev(n, 6));
    }
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert!(d.pending_resyncs().is_empty());
}

#[tokio::test]
async fn ports_not_requiring_dhcp_are_dropped_before_queueing() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    for owner in [
        "network:dhcp",
        "network:floatingip",
        "network:router_ha_interface",
        "network:distributed",
    ] {
        let p = port_owned(
            "x",
            "fa:16:3e:00:00:09",
            &[("net-a-s1", "198.51.100.50")],
            owner,
            "d",
        );
        d.handle(ev(
            N::PortCreateEnd {
                port: Box::new(p),
                network_id: id("net-a"),
            },
            5,
        ));
    }
    assert_eq!(d.stats().queue_depth, 0);
    assert_eq!(d.stats().events_dropped, 4);
    d.drain_queue().await;
    assert!(rec.log().is_empty());
}

#[tokio::test]
async fn port_create_duplicate_ip_resyncs_without_driver_call() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    // Another port (different id) claims net-a-p1's address.
    let p = port(
        "port-dup",
        "fa:16:3e:00:00:02",
        &[("net-a-s1", "198.51.100.10")],
    );
    d.handle(ev(
        N::PortCreateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        5,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
    // Same id, different MAC: also a duplicate.
    let p = port(
        "net-a-p1",
        "fa:16:3e:00:00:03",
        &[("net-a-s1", "198.51.100.10")],
    );
    d.handle(ev(
        N::PortCreateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        5,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
}

#[tokio::test]
async fn port_create_same_id_and_mac_already_cached_reloads_without_resync() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    let p = port(
        "net-a-p1",
        "fa:16:3e:00:00:01",
        &[("net-a-s1", "198.51.100.10")],
    );
    d.handle(ev(
        N::PortCreateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        5,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
    assert!(d.pending_resyncs().is_empty());
}

fn own_port(
    d: &leasehold_agent::dispatch::Dispatcher,
    ips: &[(&str, &str)],
) -> leasehold_core::model::Port {
    // device_owner '' as in Neutron's tests: network:dhcp is filtered out earlier.
    port_owned(
        "dhcp-port",
        "fa:16:3e:00:00:dd",
        ips,
        "",
        &d.dhcp_device_id(&id("net-a")),
    )
}

async fn with_own_port() -> (
    std::sync::Arc<leasehold_agent::dispatch::Dispatcher>,
    std::sync::Arc<Recorder>,
) {
    let two = |d: &leasehold_agent::dispatch::Dispatcher| {
        network(
            "net-a",
            vec![
                subnet("net-a-s1", "198.51.100.0/24", true),
                subnet("net-a-s2", "203.0.113.0/24", true),
            ],
            vec![own_port(d, &[("net-a-s1", "198.51.100.2")])],
        )
    };
    let (d, server, rec) = setup(vec![]);
    server.set(two(&d));
    enabled(&d, &rec, "net-a").await;
    (d, rec)
}

#[tokio::test]
async fn own_port_ip_change_restarts() {
    let (d, rec) = with_own_port().await;
    let p = own_port(&d, &[("net-a-s1", "198.51.100.3")]);
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("restart", "net-a")]);
}

#[tokio::test]
async fn own_port_without_ip_change_reloads() {
    let (d, rec) = with_own_port().await;
    let p = own_port(&d, &[("net-a-s1", "198.51.100.2")]);
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
}

#[tokio::test]
async fn own_port_subnet_change_resyncs_without_driver_call() {
    let (d, rec) = with_own_port().await;
    let p = own_port(&d, &[("net-a-s2", "203.0.113.2")]);
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
    assert!(d.pending_resyncs()[&Some(id("net-a"))][0].contains("Agent port was modified"));
}

#[tokio::test]
async fn own_port_cache_miss_resyncs() {
    let (d, server, rec) = setup(vec![simple_network("net-a")]);
    let _ = server;
    enabled(&d, &rec, "net-a").await;
    let p = own_port(&d, &[("net-a-s1", "198.51.100.2")]);
    d.handle(ev(
        N::PortCreateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        5,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert_eq!(resync_keys(&d), vec!["net-a"]);
}

#[tokio::test]
async fn port_delete_of_cached_port_reloads_and_marks_it_deleted() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    d.handle(ev(
        N::PortDeleteEnd {
            port_id: id("net-a-p1"),
            network_id: id("net-a"),
            fixed_ips: vec!["198.51.100.10".parse().unwrap()],
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(
        rec.log(),
        vec![s("reload_allocations", "net-a"), s("metadata_off", "net-a")]
    );
    let calls = rec.calls.lock().unwrap().clone();
    let gone = |net: &leasehold_core::model::Network| {
        !net.ports.iter().any(|p| p.id.as_str() == "net-a-p1")
    };
    assert!(gone(&calls[0].net));
    assert!(gone(&d.cached_network(&id("net-a")).unwrap()));
    // A late update of the deleted port is stale.
    rec.clear();
    let p = port(
        "net-a-p1",
        "fa:16:3e:00:00:01",
        &[("net-a-s1", "198.51.100.10")],
    );
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    assert!(d.cached_network(&id("net-a")).unwrap().ports.is_empty());
}

#[tokio::test]
async fn port_delete_of_unknown_port_cleans_devices() {
    let (d, _server, rec) = setup(vec![simple_network("net-a")]);
    enabled(&d, &rec, "net-a").await;
    d.handle(ev(
        N::PortDeleteEnd {
            port_id: id("ghost"),
            network_id: id("net-a"),
            fixed_ips: vec![],
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.log(), vec![s("clean_devices", "net-a")]);
}

#[tokio::test]
async fn port_delete_of_own_port_disables_and_resyncs() {
    let (d, rec) = with_own_port().await;
    d.handle(ev(
        N::PortDeleteEnd {
            port_id: id("dhcp-port"),
            network_id: id("net-a"),
            fixed_ips: vec![],
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.log(), vec![s("disable", "net-a")]);
    assert_eq!(resync_keys(&d), vec!["net-a"]);
    assert!(d.pending_resyncs()[&Some(id("net-a"))][0].contains("Agent port was deleted"));
}

#[tokio::test]
async fn port_delete_on_deleted_network_does_nothing() {
    let (d, _server, rec) = setup(vec![]);
    d.handle(ev(
        N::PortDeleteEnd {
            port_id: id("p"),
            network_id: id("net-gone"),
            fixed_ips: vec![],
        },
        6,
    ));
    d.drain_queue().await;
    assert!(rec.log().is_empty());
}

#[tokio::test]
async fn stale_port_update_is_ignored() {
    let mut net = simple_network("net-a");
    net.ports[0].revision_number = Some(5);
    let (d, _server, rec) = setup(vec![net]);
    enabled(&d, &rec, "net-a").await;
    let mut p = port(
        "net-a-p1",
        "fa:16:3e:00:00:01",
        &[("net-a-s1", "198.51.100.77")],
    );
    p.revision_number = Some(4);
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p.clone()),
            network_id: id("net-a"),
        },
        6,
    ));
    assert_eq!(d.stats().events_dropped, 1);
    d.drain_queue().await;
    assert!(rec.log().is_empty());
    p.revision_number = Some(6);
    d.handle(ev(
        N::PortUpdateEnd {
            port: Box::new(p),
            network_id: id("net-a"),
        },
        6,
    ));
    d.drain_queue().await;
    assert_eq!(rec.driver_log(), vec![s("reload_allocations", "net-a")]);
}

#[tokio::test]
async fn agent_updated_schedules_full_resync() {
    let (d, _server, rec) = setup(vec![]);
    d.handle(ev(
        N::AgentUpdated {
            admin_state_up: true,
        },
        255,
    ));
    assert_eq!(d.stats().queue_depth, 0);
    assert_eq!(resync_keys(&d), vec!["*"]);
    assert!(rec.log().is_empty());
}

#[tokio::test]
async fn dhcp_device_id_uses_uuid5_of_short_host() {
    let (d, _server, _rec) = setup(vec![]);
    // uuid.uuid5(uuid.NAMESPACE_DNS, 'node-1') in Python.
    assert_eq!(
        d.dhcp_device_id(&id("net-a")),
        "dhcp9b3b6618-0449-5cf4-ba1a-1bd2727132bc-net-a"
    );
}
