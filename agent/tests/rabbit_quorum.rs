//! Quorum queues against the real RabbitMQ, on a private vhost.
//!
//! A neutron-dhcp-agent run with `rabbit_quorum_queue = true` (played by the
//! real oslo.messaging) leaves its `dhcp_agent*` queues on the broker as
//! quorum queues. The agent that replaces it, given the same
//! `[oslo_messaging_rabbit]` options, must declare them exactly alike, or
//! the broker refuses it; and when its options disagree with the broker, it
//! must say which option, not retry in silence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use leasehold_agent::config::{self, RawConfig, AGENT_OPTIONS};
use leasehold_agent::notification::{Event, Notification};
use leasehold_agent::rabbit::url::TransportUrl;
use leasehold_agent::rabbit::{LinkEvent, Rabbit, RabbitPluginApi, RabbitSettings};
use leasehold_agent::server_api::PluginApi;
use leasehold_core::model::Id;
use leasehold_testkit::rabbit::{privileged_or_skip, OsloPeer, Vhost};
use serde_json::json;
use tokio::sync::{mpsc, watch};

const HOST: &str = "lh-quorum-host";

/// What a deployment with quorum queues has in every service's configuration.
const QUORUM_CONF: &str = "[oslo_messaging_rabbit]\n\
    rabbit_quorum_queue = true\n\
    rabbit_transient_quorum_queue = true\n\
    rabbit_quorum_delivery_limit = 10\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The transport settings the agent makes of these files.
fn settings(url: &str, files: &[PathBuf]) -> RabbitSettings {
    let (options, notices) = RawConfig::read(files).unwrap().resolve(AGENT_OPTIONS);
    assert!(notices.is_empty(), "every option is read: {notices:?}");
    config::validate(&options).unwrap();
    RabbitSettings::from_options(TransportUrl::parse(url).unwrap(), HOST.into(), &options).unwrap()
}

/// The agent's transport, started on `files`, with the receiving ends of
/// its channels and its stop switch.
struct Transport {
    rabbit: Rabbit,
    events: mpsc::Receiver<Event>,
    links: mpsc::Receiver<LinkEvent>,
    stop: watch::Sender<bool>,
}

fn start(vhost: &Vhost, files: &[PathBuf]) -> Transport {
    let (events_tx, events) = mpsc::channel(16);
    let (links_tx, links) = mpsc::channel(4);
    let (stop_tx, stop) = watch::channel(false);
    Transport {
        rabbit: Rabbit::start(settings(&vhost.url(), files), events_tx, links_tx, stop),
        events,
        links,
        stop: stop_tx,
    }
}

/// The vhost's queues: name -> (type, durable, arguments).
fn queues(vhost: &Vhost) -> BTreeMap<String, (String, String, String)> {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "-p", &vhost.name])
        .args(["name", "type", "durable", "arguments"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            (c.len() == 4 && c[0] != "name")
                .then(|| (c[0].into(), (c[1].into(), c[2].into(), c[3].into())))
        })
        .collect()
}

/// The agent's connections to the vhost still open on the broker.
fn agent_connections(vhost: &Vhost) -> usize {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "vhost", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{}\t", vhost.name)) && l.contains("leasehold-agent:"))
        .count()
}

/// A neutron-dhcp-agent on `HOST` with these options starts (declaring its
/// queues), then stops, as before a migration; one on another host keeps
/// running. Returns the peer, which also plays neutron-server.
fn old_agents_were_here(vhost: &Vhost, conf: &Path) -> OsloPeer {
    let mut peer = OsloPeer::start_with_config(&vhost.url(), &[conf]);
    peer.command(json!({"serve_agent": HOST}));
    peer.command(json!({"serve_agent": "other-host"}));
    peer.command(json!({"stop_agent": HOST}));
    let q = queues(vhost);
    for name in ["dhcp_agent".to_string(), format!("dhcp_agent.{HOST}")] {
        let (kind, durable, args) = q
            .get(&name)
            .unwrap_or_else(|| panic!("oslo.messaging left no queue {name}: {q:?}"));
        assert_eq!(
            (kind.as_str(), durable.as_str()),
            ("quorum", "true"),
            "{name}"
        );
        assert!(
            args.contains(r#"{"x-delivery-limit",10}"#),
            "{name}: {args}"
        );
    }
    peer
}

async fn next_link(links: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(20), links.recv())
        .await
        .expect("a link event within 20 s")
        .expect("the transport runs")
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_left_by_oslo_messaging_are_adopted() {
    if !privileged_or_skip("rabbit_quorum") {
        return;
    }
    init_logs();
    let vhost = Vhost::create();
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "neutron.conf", QUORUM_CONF);
    let mut peer = old_agents_were_here(&vhost, &conf);

    // The new agent reads the same file.
    let Transport {
        rabbit,
        mut events,
        mut links,
        stop: _stop,
    } = start(&vhost, std::slice::from_ref(&conf));
    match next_link(&mut links).await {
        LinkEvent::Connected => {}
        other => panic!("expected to connect, got {other:?}"),
    }

    // A cast to this host, through the quorum queue dhcp_agent.<host>.
    peer.command(json!({"cast": "network_create_end", "host": HOST,
                        "payload": {"network": {"id": "net-q"}, "priority": 0}}));
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the cast arrives")
        .unwrap();
    assert_eq!(
        event.notification,
        Notification::NetworkCreateEnd {
            network_id: Id::new("net-q").unwrap()
        }
    );
    // A fanout, through the durable fanout exchange the other agent keeps.
    peer.command(
        json!({"fanout": "network_delete_end", "payload": {"network_id": "net-q", "priority": 2}}),
    );
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the fanout arrives")
        .unwrap();
    assert!(
        matches!(event.notification, Notification::NetworkDeleteEnd { .. }),
        "{event:?}"
    );
    // A call, answered on the reply queue.
    let api = RabbitPluginApi::new(
        rabbit,
        HOST.into(),
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    assert!(api
        .get_network_info(&Id::new("net-absent").unwrap())
        .await
        .unwrap()
        .is_none());

    // Its own reply and fanout queues are quorum queues too, as oslo's.
    let q = queues(&vhost);
    let transient: Vec<_> = q
        .iter()
        .filter(|(name, _)| name.starts_with("reply_") || name.starts_with("dhcp_agent_fanout_"))
        .collect();
    assert!(transient.len() >= 2, "{q:?}");
    for (name, (kind, durable, args)) in transient {
        assert_eq!(
            (kind.as_str(), durable.as_str()),
            ("quorum", "true"),
            "{name}"
        );
        assert!(args.contains(r#"{"x-expires",1800000}"#), "{name}: {args}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_the_broker_disagrees_with_is_named() {
    if !privileged_or_skip("rabbit_quorum") {
        return;
    }
    init_logs();
    let vhost = Vhost::create();
    let dir = tempfile::tempdir().unwrap();
    let conf = write(dir.path(), "neutron.conf", QUORUM_CONF);
    let _peer = old_agents_were_here(&vhost, &conf);

    // Without the option: the durable control exchange is the first refusal.
    let without = write(dir.path(), "without.ini", "[DEFAULT]\n");
    let mut first = start(&vhost, &[without]);
    let links = &mut first.links;
    let LinkEvent::Refused(why) = next_link(links).await else {
        panic!("expected a refusal");
    };
    assert!(
        why.contains("exchange 'neutron'")
            && why.contains(
                "[oslo_messaging_rabbit] amqp_durable_queues = false, rabbit_quorum_queue = false"
            ),
        "{why}"
    );
    // It keeps trying, and leaves no connection open behind each refusal.
    assert!(matches!(next_link(links).await, LinkEvent::Refused(_)));
    assert!(matches!(next_link(links).await, LinkEvent::Refused(_)));
    let open = agent_connections(&vhost);
    assert!(open <= 1, "{open} connections left open after 3 refusals");
    first.stop.send(true).unwrap();

    // Durable but classic: now the queue's type is what the broker refuses.
    let durable = write(
        dir.path(),
        "durable.ini",
        "[oslo_messaging_rabbit]\namqp_durable_queues = true\n",
    );
    let mut second = start(&vhost, &[durable]);
    let LinkEvent::Refused(why) = next_link(&mut second.links).await else {
        panic!("expected a refusal");
    };
    assert!(
        why.contains("queue 'dhcp_agent'")
            && why.contains("[oslo_messaging_rabbit] rabbit_quorum_queue = false)")
            && why.contains("x-queue-type"),
        "{why}"
    );
}
