//! Recording fakes for the dispatcher tests: a server that keeps networks in
//! memory and a NetworkActions that records every call. Included by the
//! `dispatch_*` tests with `#[path]`; as a test target of its own it has no tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use leasehold_agent::dispatch::{ActionError, Dispatcher, DispatcherConfig, NetworkActions};
use leasehold_agent::notification::{Event, Notification};
use leasehold_agent::server_api::{NetworkReply, PluginApi, RpcError};
use leasehold_core::model::{Id, Network, Port};
use serde_json::{json, Value};

/// An id from text.
pub fn id(s: &str) -> Id {
    Id::new(s).expect("test id")
}

/// A subnet dict.
pub fn subnet(sid: &str, cidr: &str, dhcp: bool) -> Value {
    let v6 = cidr.contains(':');
    let gw = if v6 {
        cidr.replace("::/64", "::1")
    } else {
        cidr.replace(".0/24", ".1")
    };
    json!({"id": sid, "cidr": cidr, "ip_version": if v6 { 6 } else { 4 },
           "enable_dhcp": dhcp, "gateway_ip": gw})
}

/// A subnet dict on a segment.
pub fn segment_subnet(sid: &str, cidr: &str, segment: &str) -> Value {
    let mut s = subnet(sid, cidr, true);
    s["segment_id"] = json!(segment);
    s
}

/// A compute port with one address per (subnet, ip).
pub fn port(pid: &str, mac: &str, ips: &[(&str, &str)]) -> Port {
    port_owned(pid, mac, ips, "compute:nova", "vm-1")
}

/// A port with a given owner and device id.
pub fn port_owned(pid: &str, mac: &str, ips: &[(&str, &str)], owner: &str, device: &str) -> Port {
    let fixed: Vec<Value> = ips
        .iter()
        .map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip}))
        .collect();
    serde_json::from_value(json!({"id": pid, "mac_address": mac, "fixed_ips": fixed,
        "device_owner": owner, "device_id": device}))
    .expect("test port")
}

/// A network dict.
pub fn network(nid: &str, subnets: Vec<Value>, ports: Vec<Port>) -> Network {
    serde_json::from_value(
        json!({"id": nid, "project_id": "proj", "admin_state_up": true,
        "subnets": subnets, "ports": ports}),
    )
    .expect("test network")
}

/// The usual test network: one DHCP subnet 198.51.100.0/24 and one VM port.
pub fn simple_network(nid: &str) -> Network {
    network(
        nid,
        vec![subnet(&format!("{nid}-s1"), "198.51.100.0/24", true)],
        vec![port(
            &format!("{nid}-p1"),
            "fa:16:3e:00:00:01",
            &[(&format!("{nid}-s1"), "198.51.100.10")],
        )],
    )
}

/// An event.
pub fn ev(notification: Notification, priority: u8) -> Event {
    Event {
        notification,
        priority,
    }
}

/// A fake neutron-server.
#[derive(Debug, Default)]
pub struct FakeServer {
    /// The networks assigned to this agent, as the server knows them.
    pub networks: Mutex<BTreeMap<Id, Network>>,
    /// Errors the next get_network_info calls raise.
    pub info_errors: Mutex<VecDeque<RpcError>>,
    /// Errors the next get_active_networks_info calls raise.
    pub active_errors: Mutex<VecDeque<RpcError>>,
    /// Networks that fail to decode in get_active_networks_info.
    pub undecodable: Mutex<Vec<String>>,
    /// Ids asked with get_network_info.
    pub info_calls: Mutex<Vec<Id>>,
    /// get_active_networks_info calls.
    pub active_calls: AtomicUsize,
    /// Each dhcp_ready_on_ports call.
    pub ready_calls: Mutex<Vec<Vec<Id>>>,
    /// How many dhcp_ready_on_ports calls fail next.
    pub ready_failures: AtomicUsize,
    /// When set, get_active_networks_info waits for it.
    pub active_gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
}

impl FakeServer {
    /// A server with these networks.
    pub fn with(nets: Vec<Network>) -> Arc<Self> {
        let s = FakeServer::default();
        for n in nets {
            s.networks.lock().unwrap().insert(n.id.clone(), n);
        }
        Arc::new(s)
    }

    /// Replaces or adds a network.
    pub fn set(&self, net: Network) {
        self.networks.lock().unwrap().insert(net.id.clone(), net);
    }

    /// Forgets a network.
    pub fn remove(&self, nid: &str) {
        self.networks.lock().unwrap().remove(&id(nid));
    }
}

/// A remote exception as the server would send it.
pub fn remote(exc: &str) -> RpcError {
    RpcError::Remote {
        method: "test".into(),
        exc_type: exc.into(),
        message: format!("{exc} raised"),
    }
}

#[async_trait]
impl PluginApi for FakeServer {
    async fn get_active_networks_info(&self) -> Result<Vec<NetworkReply>, RpcError> {
        self.active_calls.fetch_add(1, Ordering::SeqCst);
        let gate = self.active_gate.lock().unwrap().clone();
        if let Some(g) = gate {
            let _p = g.acquire().await;
        }
        if let Some(e) = self.active_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        let mut out: Vec<NetworkReply> = self
            .networks
            .lock()
            .unwrap()
            .values()
            .cloned()
            .map(Ok)
            .collect();
        for bad in self.undecodable.lock().unwrap().iter() {
            out.push(Err((
                Some(bad.clone()),
                leasehold_core::model::ModelError {
                    field: "subnets[0].cidr".into(),
                    message: "bad".into(),
                },
            )));
        }
        Ok(out)
    }

    async fn get_network_info(&self, network_id: &Id) -> Result<Option<Network>, RpcError> {
        self.info_calls.lock().unwrap().push(network_id.clone());
        if let Some(e) = self.info_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        // API 1.9: only DHCP-enabled subnets.
        Ok(self
            .networks
            .lock()
            .unwrap()
            .get(network_id)
            .cloned()
            .map(|mut n| {
                n.subnets.retain(|s| s.enable_dhcp);
                n
            }))
    }

    async fn create_dhcp_port(&self, _port: Value) -> Result<Option<Port>, RpcError> {
        Ok(None)
    }

    async fn update_dhcp_port(&self, _id: &Id, _port: Value) -> Result<Option<Port>, RpcError> {
        Ok(None)
    }

    async fn release_dhcp_port(&self, _net: &Id, _device: &str) -> Result<(), RpcError> {
        Ok(())
    }

    async fn get_dhcp_port(&self, _id: &Id) -> Result<Option<Port>, RpcError> {
        Ok(None)
    }

    async fn dhcp_ready_on_ports(&self, port_ids: &[Id]) -> Result<(), RpcError> {
        self.ready_calls.lock().unwrap().push(port_ids.to_vec());
        let failing = self
            .ready_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(RpcError::Timeout {
                method: "dhcp_ready_on_ports".into(),
                seconds: 60,
            });
        }
        Ok(())
    }
}

/// One recorded action call.
#[derive(Clone, Debug)]
pub struct Call {
    /// enable, disable, restart, reload_allocations, clean_devices, metadata_on, metadata_off.
    pub action: String,
    /// The network as passed.
    pub net: Network,
}

/// A NetworkActions that records calls, with scripted failures and delays.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every call, in order.
    pub calls: Mutex<Vec<Call>>,
    /// Errors the next calls of an action return.
    pub failures: Mutex<HashMap<String, VecDeque<ActionError>>>,
    /// How long each call of an action takes.
    pub delays: Mutex<HashMap<String, Duration>>,
    /// Calls running now, per network.
    pub in_flight: Mutex<HashMap<Id, usize>>,
    /// Most calls running at once on one network.
    pub max_per_network: AtomicUsize,
    /// Most calls running at once overall.
    pub max_total: AtomicUsize,
    total: AtomicUsize,
    create_dhcp_ports: AtomicBool,
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }

    /// The next call of `action` fails with `err`.
    pub fn fail_next(&self, action: &str, err: ActionError) {
        self.failures
            .lock()
            .unwrap()
            .entry(action.into())
            .or_default()
            .push_back(err);
    }

    /// Every call of `action` takes `d`.
    pub fn delay(&self, action: &str, d: Duration) {
        self.delays.lock().unwrap().insert(action.into(), d);
    }

    /// (action, network id) of every call.
    pub fn log(&self) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.action.clone(), c.net.id.to_string()))
            .collect()
    }

    /// (action, network id) of driver calls (not metadata).
    pub fn driver_log(&self) -> Vec<(String, String)> {
        self.log()
            .into_iter()
            .filter(|(a, _)| !a.starts_with("metadata"))
            .collect()
    }

    /// Driver calls of one action.
    pub fn count(&self, action: &str) -> usize {
        self.log().iter().filter(|(a, _)| a == action).count()
    }

    /// From now on `enable` makes a DHCP port `<net>-dhcp` (as on a
    /// network that had none on the server).
    pub fn create_dhcp_ports(&self) {
        self.create_dhcp_ports.store(true, Ordering::SeqCst);
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }

    async fn record(&self, action: &str, net: &Network) -> Result<(), ActionError> {
        self.calls.lock().unwrap().push(Call {
            action: action.into(),
            net: net.clone(),
        });
        {
            let mut f = self.in_flight.lock().unwrap();
            let n = f.entry(net.id.clone()).or_default();
            *n += 1;
            self.max_per_network.fetch_max(*n, Ordering::SeqCst);
            let t = self.total.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_total.fetch_max(t, Ordering::SeqCst);
        }
        let delay = self.delays.lock().unwrap().get(action).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        {
            let mut f = self.in_flight.lock().unwrap();
            if let Some(n) = f.get_mut(&net.id) {
                *n -= 1;
            }
            self.total.fetch_sub(1, Ordering::SeqCst);
        }
        let failure = self
            .failures
            .lock()
            .unwrap()
            .get_mut(action)
            .and_then(VecDeque::pop_front);
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl NetworkActions for Recorder {
    /// Like the real driver, returns the DHCP port it set up: the
    /// network's own, or with `create_dhcp_ports` a new one.
    async fn enable(&self, net: &Network) -> Result<Option<Port>, ActionError> {
        self.record("enable", net).await?;
        if self.create_dhcp_ports.load(Ordering::SeqCst) {
            let dhcp_id = format!("{}-dhcp", net.id);
            return Ok(Some(port_owned(
                &dhcp_id,
                "fa:16:3e:00:00:01",
                &[],
                "network:dhcp",
                "dhcp-fake",
            )));
        }
        Ok(net
            .ports
            .iter()
            .find(|p| p.device_owner == "network:dhcp")
            .cloned())
    }
    async fn disable(&self, net: &Network) -> Result<(), ActionError> {
        self.record("disable", net).await
    }
    async fn restart(&self, net: &Network) -> Result<(), ActionError> {
        self.record("restart", net).await
    }
    async fn reload_allocations(&self, net: &Network) -> Result<(), ActionError> {
        self.record("reload_allocations", net).await
    }
    async fn clean_devices(&self, net: &Network) -> Result<(), ActionError> {
        self.record("clean_devices", net).await
    }
    async fn metadata(&self, net: &Network, enable: bool) -> Result<(), ActionError> {
        self.record(
            if enable {
                "metadata_on"
            } else {
                "metadata_off"
            },
            net,
        )
        .await
    }
}

/// The host the tests run as.
pub const HOST: &str = "node-1.example.org";

/// A config with test-friendly timings.
pub fn config() -> DispatcherConfig {
    let mut c = DispatcherConfig::new(HOST);
    c.resync_interval = Duration::from_millis(200);
    c.resync_throttle = Duration::from_millis(20);
    c.ready_ports_interval = Duration::from_millis(20);
    c
}

/// A dispatcher over the fakes.
pub fn setup_with(
    nets: Vec<Network>,
    cfg: DispatcherConfig,
) -> (Arc<Dispatcher>, Arc<FakeServer>, Arc<Recorder>) {
    let server = FakeServer::with(nets);
    let rec = Recorder::new();
    let d = Dispatcher::new(cfg, server.clone(), rec.clone());
    (d, server, rec)
}

/// A dispatcher over the fakes, default test config.
pub fn setup(nets: Vec<Network>) -> (Arc<Dispatcher>, Arc<FakeServer>, Arc<Recorder>) {
    setup_with(nets, config())
}

/// Enables a network through a network_create_end and forgets the calls.
pub async fn enabled(d: &Dispatcher, rec: &Recorder, nid: &str) {
    d.handle(ev(
        Notification::NetworkCreateEnd {
            network_id: id(nid),
        },
        0,
    ));
    d.drain_queue().await;
    assert!(d.cached_network(&id(nid)).is_some(), "{nid} enabled");
    rec.clear();
}

/// Waits (up to 10 s) for a condition.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The pending resync keys, sorted, `*` for all.
pub fn resync_keys(d: &Dispatcher) -> Vec<String> {
    let mut k: Vec<String> = d
        .pending_resyncs()
        .keys()
        .map(|k| k.as_ref().map_or("*".to_string(), |i| i.to_string()))
        .collect();
    k.sort();
    k
}

/// Port ids as strings, sorted.
pub fn names(ids: &[Id]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    v.sort();
    v
}
