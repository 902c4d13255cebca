//! Faults of the server side, with the agent binary on a `rabbit://`
//! transport and a neutron-server stand-in on the real oslo.messaging
//! (`agent/tests/support/oslo_peer.py`): the broker stopped for 30 s while
//! the server changes networks and ports (a private RabbitMQ node, never the
//! machine's shared one), and the server down when the agent starts.

mod fault_support;

use std::time::{Duration, Instant};

use fault_support::private_rabbit::PrivateRabbit;
use fault_support::{tail, Net, Standalone};
use leasehold_testkit::privileged;
use leasehold_testkit::rabbit::{OsloPeer, Vhost};
use serde_json::json;

/// RabbitMQ stopped for 30 s; meanwhile the server deletes a network,
/// adds a port to another and creates a third (its notifications are lost
/// with the broker). DHCP keeps serving through the outage; once the broker
/// is back the agent reconnects by itself and the host matches the server.
#[test]
fn fault_rabbitmq_stopped_30s_agent_reconnects_and_converges() {
    if !privileged("fault_rabbitmq_stopped") {
        return;
    }
    let started = Instant::now();
    let rabbit = PrivateRabbit::start();
    let mut peer = OsloPeer::start(&rabbit.url());
    let a = Net::new(0x80, 1);
    let mut b = Net::new(0x81, 1);
    let c = Net::new(0x82, 1);
    for n in [&a, &b] {
        peer.command(json!({"set_network": n.json()}));
    }
    let mut s = Standalone::with_transport(
        &rabbit.url(),
        "rpc_response_timeout = 5\nrpc_response_max_timeout = 10",
    );
    for n in [&a, &b, &c] {
        s.remember(&n.id);
    }
    s.start();
    s.assert_converged(&[&a, &b], Duration::from_secs(40));
    let connects = s.log().matches("connected to RabbitMQ").count();

    rabbit.stop();
    let down = Instant::now();
    b.add_port(0x81);
    peer.command(json!({"delete_network": a.id}));
    peer.command(json!({"set_network": b.json()}));
    peer.command(json!({"set_network": c.json()}));
    // DHCP is local: it keeps serving while the broker is away.
    s.assert_lease(&b, 0);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    assert!(
        s.alive(),
        "the agent died without its broker:\n{}",
        tail(&s.log(), 30)
    );
    rabbit.start_again();

    s.assert_converged(&[&b, &c], Duration::from_secs(45));
    assert!(
        s.log().matches("connected to RabbitMQ").count() > connects,
        "no reconnect logged:\n{}",
        tail(&s.log(), 30)
    );
    s.assert_lease(&b, 1);
    s.assert_lease(&c, 0);
    eprintln!("fault_rabbitmq_stopped: {:?} in all", started.elapsed());
}

/// The server is down when the agent starts: its calls time out, it keeps
/// retrying, and once the server is up it serves every network.
#[test]
fn fault_server_down_at_start_agent_serves_once_it_is_up() {
    if !privileged("fault_server_down_at_start") {
        return;
    }
    let vhost = Vhost::create();
    let a = Net::new(0x90, 1);
    let mut s = Standalone::with_transport(
        &vhost.url(),
        "rpc_response_timeout = 3\nrpc_response_max_timeout = 6",
    );
    s.remember(&a.id);
    s.start();
    assert!(
        s.wait_log("timed out", Duration::from_secs(30)),
        "no call timed out:\n{}",
        tail(&s.log(), 30)
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(s.alive(), "the agent gave up:\n{}", tail(&s.log(), 30));

    let mut peer = OsloPeer::start(&vhost.url());
    peer.command(json!({"set_network": a.json()}));
    s.assert_converged(&[&a], Duration::from_secs(45));
    s.assert_lease(&a, 0);
    assert!(peer
        .wait_call("report_state", Duration::from_secs(15))
        .is_some());
}
