//! The RabbitMQ transport against the real oslo.messaging library on a private vhost.

mod support;

use std::time::Duration;

use leasehold_agent::notification::Notification;
use leasehold_agent::rabbit::url::TransportUrl;
use leasehold_agent::rabbit::{LinkEvent, QueueOptions, Rabbit, RabbitPluginApi, RabbitSettings};
use leasehold_agent::server_api::{PluginApi, RpcError};
use leasehold_core::model::Id;
use leasehold_testkit::rabbit::{privileged_or_skip, OsloPeer, Vhost};
use serde_json::json;
use tokio::sync::{mpsc, watch};

const HOST: &str = "lh-test-host";

fn settings(url: &str) -> RabbitSettings {
    RabbitSettings {
        url: TransportUrl::parse(url).unwrap(),
        host: HOST.into(),
        control_exchange: "neutron".into(),
        rpc_timeout: Duration::from_secs(10),
        queues: QueueOptions::default(),
        heartbeat: 60,
    }
}

fn network() -> serde_json::Value {
    json!({"id": "net-1", "project_id": "p", "admin_state_up": true, "mtu": 1450,
           "subnets": [{"id": "sub-1", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1", "enable_dhcp": true}],
           "non_local_subnets": [],
           "ports": [{"id": "port-1", "mac_address": "fa:16:3e:00:00:01", "device_owner": "compute:nova",
                      "fixed_ips": [{"subnet_id": "sub-1", "ip_address": "198.51.100.5"}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_casts_fanout_and_reconnect_with_real_oslo_messaging() {
    if !privileged_or_skip("rabbit_oslo") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let vhost = Vhost::create();
    let mut peer = OsloPeer::start(&vhost.url());
    peer.command(json!({"set_network": network()}));

    let (events_tx, mut events) = mpsc::channel(16);
    let (links_tx, mut links) = mpsc::channel(4);
    let (_stop_tx, stop) = watch::channel(false);
    let rabbit = Rabbit::start(settings(&vhost.url()), events_tx, links_tx, stop);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), links.recv())
            .await
            .unwrap(),
        Some(LinkEvent::Connected)
    );
    let api = RabbitPluginApi::new(
        rabbit.clone(),
        HOST.into(),
        Duration::from_secs(10),
        Duration::from_secs(60),
    );

    // Calls reach the oslo RPC server with neutron-dhcp-agent's arguments and versions.
    let net = api
        .get_network_info(&Id::new("net-1").unwrap())
        .await
        .unwrap()
        .expect("the network");
    assert_eq!(net.ports.len(), 1);
    assert_eq!(
        peer.wait_call("get_network_info", Duration::from_secs(5))
            .unwrap(),
        json!({"network_id": "net-1", "host": HOST})
    );
    let active = api.get_active_networks_info().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        peer.wait_call("get_active_networks_info", Duration::from_secs(5))
            .unwrap(),
        json!({"host": HOST, "enable_dhcp_filter": false})
    );
    assert!(api
        .get_network_info(&Id::new("gone").unwrap())
        .await
        .unwrap()
        .is_none());
    api.dhcp_ready_on_ports(&[Id::new("port-1").unwrap()])
        .await
        .unwrap();
    assert_eq!(
        peer.wait_call("dhcp_ready_on_ports", Duration::from_secs(5))
            .unwrap(),
        json!({"port_ids": ["port-1"]})
    );
    let port = api
        .create_dhcp_port(json!({"port": {"name": "", "admin_state_up": true, "device_id": "dhcpX-net-1", "network_id": "net-1", "project_id": "p", "fixed_ips": [{"subnet_id": "sub-1"}]}}))
        .await
        .unwrap()
        .expect("a port");
    assert_eq!(port.fixed_ips[0].ip_address.to_string(), "198.51.100.2");

    // Server exceptions come back classified by class name.
    match api.get_network_info(&Id::new("missing-1").unwrap()).await {
        Err(RpcError::Remote { exc_type, .. }) => assert_eq!(exc_type, "NetworkNotFound"),
        other => panic!("expected a remote NetworkNotFound, got {other:?}"),
    }

    // State reports go to q-reports-plugin with the double-nested agent_state.
    let reply = api.report_state(json!({"binary": "neutron-dhcp-agent", "host": HOST, "agent_type": "DHCP agent", "topic": "dhcp_agent"}), Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply, json!("new"));
    let args = peer
        .wait_call("report_state", Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        args["agent_state"]["agent_state"]["binary"],
        "neutron-dhcp-agent"
    );
    assert!(args["time"].as_str().is_some());

    // Casts to dhcp_agent.<host> and fanouts arrive as notifications.
    peer.command(json!({"cast": "port_create_end", "host": HOST, "payload": {"port": network()["ports"][0].clone().as_object().unwrap().clone().into_iter().chain([("network_id".to_string(), json!("net-1"))]).collect::<serde_json::Map<_, _>>(), "priority": 5}}));
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event.notification, Notification::PortCreateEnd { .. }),
        "{event:?}"
    );
    assert_eq!(event.priority, 5);
    peer.command(
        json!({"fanout": "network_delete_end", "payload": {"network_id": "net-1", "priority": 2}}),
    );
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event.notification, Notification::NetworkDeleteEnd { .. }),
        "{event:?}"
    );

    // A hostile cast is dropped and the next one still arrives.
    peer.command(json!({"cast": "network_create_end", "host": HOST, "payload": {"network": {"id": "../../etc"}}}));
    peer.command(json!({"cast": "network_create_end", "host": HOST, "payload": {"network": {"id": "net-2"}, "priority": 0}}));
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.notification,
        Notification::NetworkCreateEnd {
            network_id: Id::new("net-2").unwrap()
        }
    );

    // The broker drops our connection: the transport reconnects by itself and says so.
    assert!(vhost.close_connections() >= 1);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), links.recv())
            .await
            .unwrap(),
        Some(LinkEvent::Reconnected)
    );
    assert!(api
        .get_network_info(&Id::new("net-1").unwrap())
        .await
        .unwrap()
        .is_some());
    peer.command(json!({"cast": "network_create_end", "host": HOST, "payload": {"network": {"id": "net-3"}, "priority": 0}}));
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.notification,
        Notification::NetworkCreateEnd {
            network_id: Id::new("net-3").unwrap()
        }
    );
}
