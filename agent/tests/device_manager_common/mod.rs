//! The DeviceManager on the real host, shared by the Open vSwitch and Linux
//! bridge test binaries: the real NetlinkHost, the interface and DHCP drivers
//! from the registry (built from an agent.ini, as the agent builds them), and
//! the EmbeddedServer as the server that hands out the DHCP port.
//!
//! Every scenario is a function taking the [`Kind`] of switch; each test
//! binary calls them for its kind. Everything a scenario makes is removed by
//! [`Harness`]'s `Drop`, also when an assertion fails.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leasehold_agent::device::{DeviceManager, DeviceSettings, NetlinkHost};
use leasehold_agent::embedded::allocate::dhcp_port_id;
use leasehold_agent::embedded::networks_file::parse;
use leasehold_agent::embedded::EmbeddedServer;
use leasehold_agent::server_api::PluginApi;
use leasehold_agent::setup::{load, Loaded};
use leasehold_core::driver::{DhcpDriver, InterfaceDriver};
use leasehold_core::model::{Id, Mac, Network};
use leasehold_dnsmasq::monitor::ProcessMonitor;
use leasehold_linuxbridge::{bridge_name, root_device_name};
use leasehold_netlink::{eui64_link_local, Handle, IpVersion, Netns};
use leasehold_openvswitch::{OvsDriver, Settings};
use leasehold_testkit::ovs::{self, vsctl};
use leasehold_testkit::{kill_pid_file, sh, sh_quiet, Client};
use serde_json::json;

/// The switch the DHCP port is plugged into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `interface_driver = openvswitch` on the private userspace OVS.
    Ovs,
    /// `interface_driver = linuxbridge`.
    LinuxBridge,
}

/// The client port every scenario's network has.
pub const CLIENT_IP: &str = "198.51.100.10";
const BASE_MAC: Mac = Mac([0xfa, 0x16, 0x3e, 0, 0, 0]);

static COUNTER: AtomicUsize = AtomicUsize::new(0);
/// Access VLANs of the scenarios of one binary (one private OVS per binary).
static NEXT_TAG: AtomicU16 = AtomicU16::new(101);

/// A fresh integration bridge for one scenario. Names are unique on the
/// host, because the local port of a userspace bridge is a root-namespace
/// device of that name (another binary's private OVS may have a `br-int`).
pub fn integration_bridge() -> String {
    let name = leasehold_testkit::unique_name("lhint");
    ovs::netdev_bridge(&name);
    name
}

/// One scenario's network, agent configuration, server and drivers.
pub struct Harness {
    /// The switch.
    pub kind: Kind,
    /// agent.ini and the state directory.
    pub dir: tempfile::TempDir,
    /// The network's id (a UUID, as dnsmasq's directory listing wants).
    pub net_id: Id,
    /// The agent configuration the drivers were built from.
    pub loaded: Loaded,
    /// The server playing neutron-server.
    pub server: Arc<EmbeddedServer>,
    /// The manager under test.
    pub dm: DeviceManager,
    /// The interface driver from the registry.
    pub interface: Arc<dyn InterfaceDriver>,
    /// The dnsmasq driver from the registry.
    pub dhcp: Arc<dyn DhcpDriver>,
    /// The switch the device is on: the integration bridge, or `brq<net>`.
    pub bridge: String,
    /// The client port's MAC.
    pub client_mac: String,
    /// The network's MTU.
    pub mtu: u32,
}

impl Harness {
    /// A dual-stack network (v4 and DHCPv6-stateful, both with gateways),
    /// served by an EmbeddedServer; `integration_bridge` overrides the OVS
    /// bridge (a missing one, say).
    pub fn new(kind: Kind, integration_bridge_name: Option<&str>, mtu: u32) -> Harness {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::tempdir().expect("tempdir");
        let net_id = Id::new(uuid::Uuid::new_v4().to_string()).expect("uuid id");
        let bridge = match kind {
            // The private OVS is started first: the driver finds it through $OVS_RUNDIR.
            Kind::Ovs if ovs::ovs().rundir.exists() => integration_bridge_name
                .map(str::to_string)
                .unwrap_or_else(integration_bridge),
            Kind::Ovs => panic!("the private OVS has no run directory"),
            Kind::LinuxBridge => bridge_name(&net_id),
        };
        let driver = match kind {
            Kind::Ovs => "openvswitch",
            Kind::LinuxBridge => "linuxbridge",
        };
        let ini = dir.path().join("agent.ini");
        std::fs::write(
            &ini,
            format!(
                "[DEFAULT]\ninterface_driver = {driver}\nstate_path = {}\nhost = lh-dm-{}-{n}\nenable_isolated_metadata = True\n[AGENT]\ncheck_child_processes_interval = 0\n[OVS]\nintegration_bridge = {bridge}\n",
                dir.path().join("state").display(),
                std::process::id()
            ),
        )
        .expect("agent.ini written");
        let loaded = load(&[ini]).expect("configuration loads");
        let interface = loaded.interface_driver().expect("interface driver");
        let dhcp = loaded.dhcp_driver().expect("dnsmasq driver");
        let server = Arc::new(EmbeddedServer::new(loaded.host.clone(), BASE_MAC));
        let dm = DeviceManager::new(
            DeviceSettings {
                host: loaded.host.clone(),
                metadata_addresses: true,
            },
            server.clone(),
            interface.clone(),
            Arc::new(NetlinkHost),
        );
        let h = Harness {
            kind,
            dir,
            net_id,
            loaded,
            server,
            dm,
            interface,
            dhcp,
            bridge,
            client_mac: format!(
                "fa:16:3e:c1:{:02x}:{:02x}",
                std::process::id() % 256,
                n % 256
            ),
            mtu,
        };
        h.serve(true);
        h
    }

    /// Puts the network into the server, with or without its v6 subnet.
    pub fn serve(&self, with_v6: bool) {
        let mut subnets = vec![
            json!({"id": "dm-v4", "cidr": "198.51.100.0/24", "ip_version": 4,
            "gateway_ip": "198.51.100.1", "enable_dhcp": true}),
        ];
        if with_v6 {
            subnets.push(
                json!({"id": "dm-v6", "cidr": "2001:db8::/64", "ip_version": 6,
                "gateway_ip": "2001:db8::1", "enable_dhcp": true,
                "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}),
            );
        }
        let doc = json!({"networks": [{
            "id": self.net_id, "project_id": "dm", "mtu": self.mtu, "subnets": subnets,
            "ports": [{"id": format!("{}-vm", &self.net_id.as_str()[..8]), "mac_address": self.client_mac,
                       "device_owner": "compute:nova", "device_id": "vm-1",
                       "fixed_ips": [{"subnet_id": "dm-v4", "ip_address": CLIENT_IP}]}]
        }]});
        let file = parse(&doc.to_string()).expect("networks file parses");
        self.server.replace(&file);
    }

    /// The network as `get_network_info` returns it now.
    pub async fn fetch(&self) -> Network {
        self.server
            .get_network_info(&self.net_id)
            .await
            .expect("get_network_info")
            .expect("the network is served")
    }

    /// The id the server gives this agent's DHCP port.
    pub fn port_id(&self) -> Id {
        dhcp_port_id(&self.net_id, &self.dm.device_id(&self.net_id))
    }

    /// The device in the namespace.
    pub fn device_name(&self) -> String {
        self.interface.device_name(&self.port_id())
    }

    /// The root-namespace name that goes with the device: the OVS port (an
    /// internal port's name) or the veth's root end.
    pub fn root_name(&self) -> String {
        match self.kind {
            Kind::Ovs => self.device_name(),
            Kind::LinuxBridge => root_device_name(&self.device_name()),
        }
    }

    /// `qdhcp-<network>`.
    pub fn namespace(&self) -> String {
        format!("qdhcp-{}", self.net_id)
    }

    /// An OVS driver on the integration bridge, for tagging.
    pub fn ovs_driver(&self) -> OvsDriver {
        OvsDriver::new(Settings {
            integration_bridge: self.bridge.clone(),
            ..Settings::default()
        })
        .unwrap()
    }

    /// Whether the server still holds a DHCP port for the network.
    pub async fn server_has_port(&self) -> bool {
        self.server
            .get_dhcp_port(&self.port_id())
            .await
            .expect("get_dhcp_port")
            .is_some()
    }

    /// A DHCP client on the same switch as the device; for OVS an internal
    /// port on VLAN `tag` (the DHCP port must be given the same tag).
    pub fn client(&self, tag: u16) -> Client {
        let c = match self.kind {
            Kind::Ovs => Client::on_ovs(&self.bridge, tag),
            Kind::LinuxBridge => Client::on_bridge(&self.bridge),
        };
        c.set_mac(&self.client_mac);
        c
    }

    fn pid_file(&self) -> PathBuf {
        self.dir
            .path()
            .join("state/dhcp")
            .join(self.net_id.as_str())
            .join("pid")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A backstop for failed scenarios: a passing one has cleaned up.
        // The monitor lets go first, or it would respawn the dnsmasq killed
        // here into a namespace about to be deleted.
        if let Some(monitor) = ProcessMonitor::shared_if_made() {
            monitor.unregister(self.net_id.as_str());
        }
        kill_pid_file(&self.pid_file());
        let root = self.root_name();
        if self.kind == Kind::Ovs {
            sh_quiet(&[
                "ovs-vsctl",
                "--timeout=10",
                "--if-exists",
                "del-port",
                &root,
            ]);
            ovs::del_bridge(&self.bridge);
        }
        sh_quiet(&["ip", "link", "del", &root]);
        sh_quiet(&["ip", "link", "del", &self.device_name()]);
        sh_quiet(&["ip", "netns", "del", &self.namespace()]);
        let _ = std::fs::remove_file(Netns::path(&self.namespace()));
        if self.kind == Kind::LinuxBridge {
            sh_quiet(&["ip", "link", "del", &self.bridge]);
        }
    }
}

/// A fresh access VLAN for one scenario.
pub fn next_tag() -> u16 {
    NEXT_TAG.fetch_add(1, Ordering::SeqCst)
}

/// Every address on the device, all scopes, as text.
pub async fn addresses(ns: &str, dev: &str) -> BTreeSet<String> {
    Handle::open(Some(ns))
        .await
        .expect("namespace opens")
        .addresses(dev)
        .await
        .expect("addresses")
        .into_iter()
        .map(|a| a.cidr.to_string())
        .collect()
}

/// The device's addresses once they equal `want`, or after 5 s whatever
/// they are (the kernel adds the link-local address when the link comes up).
pub async fn addresses_settled(ns: &str, dev: &str, want: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = addresses(ns, dev).await;
        if &got == want || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn link_exists(ns: Option<&str>, dev: &str) -> bool {
    if ns.is_some_and(|n| !Netns::exists(n)) {
        return false;
    }
    Handle::open(ns)
        .await
        .expect("namespace opens")
        .link_exists(dev)
        .await
        .expect("link lookup")
}

/// The OVS ports of `bridge`.
pub fn ovs_ports(bridge: &str) -> Vec<String> {
    vsctl(&["list-ports", bridge])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The exact address set the device must have.
fn expected(v4: &str, v6: Option<&str>, mac: [u8; 6]) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = [
        format!("{v4}/24"),
        "169.254.169.254/32".to_string(),
        format!("{}/64", eui64_link_local(mac)),
    ]
    .into();
    if let Some(v6) = v6 {
        want.insert(format!("{v6}/64"));
        // Neutron adds the IPv6 metadata address when the network has a v6 subnet.
        want.insert("fe80::a9fe:a9fe/128".to_string());
    }
    want
}

fn fixed_ip(net: &Network, port: &Id, subnet: &str) -> Option<String> {
    let p = net.ports.iter().find(|p| &p.id == port)?;
    p.fixed_ips
        .iter()
        .find(|f| f.subnet_id.as_str() == subnet)
        .map(|f| f.ip_address.to_string())
}

/// Waits for `udhcpc` to bind and returns the address it got.
fn lease_ip(client: &Client) -> String {
    tokio::task::block_in_place(|| {
        client
            .udhcpc_once(10, 1)
            .map(|l| {
                assert_eq!(l.get("router"), "198.51.100.1", "{l:?}");
                l.get("ip").to_string()
            })
            .unwrap_or_default()
    })
}

/// The whole life of a dual-stack network's DHCP device: setup, the device
/// as it must be, a lease through it, an idempotent second setup, a lost
/// subnet, and destroy leaving nothing.
pub async fn lifecycle(kind: Kind) {
    let h = Harness::new(kind, None, 1400);
    let ns = h.namespace();
    let net = h.fetch().await;
    assert!(net.ports.iter().all(|p| p.device_owner != "network:dhcp"));

    let (net, device) = h.dm.setup(&net).await.expect("setup");
    let port =
        h.dm.own_port(&net)
            .expect("the DHCP port is in the network")
            .clone();
    assert_eq!(port.id, h.port_id());
    let dev = h.device_name();
    assert_eq!(device.interface_name, dev);
    assert_eq!(device.namespace.as_deref(), Some(ns.as_str()));
    let v4 = fixed_ip(&net, &port.id, "dm-v4").expect("a v4 address");
    let v6 = fixed_ip(&net, &port.id, "dm-v6").expect("a v6 address");
    assert!(h.server_has_port().await);

    // The namespace and the device: MAC, MTU, up, exactly these addresses.
    assert!(Netns::exists(&ns));
    let inner = Handle::open(Some(&ns)).await.unwrap();
    let link = inner
        .link(&dev)
        .await
        .unwrap()
        .expect("the device is in the namespace");
    let mac = port.mac_address.value().0;
    assert_eq!(link.mac, Some(mac));
    assert_eq!(link.mtu, Some(1400));
    assert!(link.up);
    let want = expected(&v4, Some(&v6), mac);
    assert_eq!(addresses_settled(&ns, &dev, &want).await, want);
    assert_eq!(
        inner.default_gateway(IpVersion::V4).await.unwrap(),
        Some("198.51.100.1".parse().unwrap())
    );
    assert_eq!(
        inner.default_gateway(IpVersion::V6).await.unwrap(),
        Some("2001:db8::1".parse().unwrap())
    );
    let devices: Vec<String> = inner
        .list_links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect();
    assert_eq!(devices, vec![dev.clone()]);
    let iface_uuid = match kind {
        Kind::Ovs => {
            assert!(ovs_ports(&h.bridge).contains(&dev));
            let get = |key: &str| vsctl(&["get", "Interface", &dev, key]);
            assert_eq!(get("external_ids:iface-id"), format!("\"{}\"", port.id));
            assert_eq!(get("external_ids:iface-status"), "active");
            assert_eq!(
                get("external_ids:attached-mac"),
                format!("\"{}\"", port.mac_address)
            );
            assert_eq!(get("type"), "internal");
            Some(get("_uuid"))
        }
        Kind::LinuxBridge => {
            let master = std::fs::read_link(format!("/sys/class/net/{}/master", h.root_name()))
                .expect("the root end is enslaved");
            assert!(master.ends_with(&h.bridge), "{master:?}");
            None
        }
    };

    // dnsmasq on that device serves a client on the same switch.
    let tag = next_tag();
    if kind == Kind::Ovs {
        h.ovs_driver().set_port_tag(&dev, tag).await.unwrap();
    }
    h.dhcp.enable(&net, &device).await.expect("dnsmasq starts");
    let client = h.client(tag);
    assert_eq!(lease_ip(&client), CLIENT_IP, "the client's lease");

    // Setup again: nothing changes, nothing is recreated.
    let again = h.fetch().await;
    let (net2, device2) = h.dm.setup(&again).await.expect("second setup");
    assert_eq!(device2, device);
    assert_eq!(h.dm.own_port(&net2), Some(&port));
    let link2 = inner.link(&dev).await.unwrap().expect("still there");
    assert_eq!(link2.index, link.index, "same device");
    assert_eq!(addresses(&ns, &dev).await, want);
    if let Some(uuid) = &iface_uuid {
        assert_eq!(
            &vsctl(&["get", "Interface", &dev, "_uuid"]),
            uuid,
            "same OVS port"
        );
        assert_eq!(ovs::port_tag(&dev), tag.to_string(), "the tag is kept");
    }

    // The port loses its v6 subnet: exactly the v6 addresses and route go.
    h.serve(false);
    let shrunk = h.fetch().await;
    let (net3, device3) = h.dm.setup(&shrunk).await.expect("setup without v6");
    let port3 = h.dm.own_port(&net3).unwrap().clone();
    assert_eq!(port3.id, port.id);
    assert_eq!(fixed_ip(&net3, &port.id, "dm-v4"), Some(v4.clone()));
    assert_eq!(port3.fixed_ips.len(), 1);
    assert_eq!(device3.interface_ips.len(), 1);
    assert_eq!(addresses(&ns, &dev).await, expected(&v4, None, mac));
    assert_eq!(inner.default_gateway(IpVersion::V6).await.unwrap(), None);
    assert_eq!(
        inner.default_gateway(IpVersion::V4).await.unwrap(),
        Some("198.51.100.1".parse().unwrap())
    );
    assert_eq!(inner.link(&dev).await.unwrap().unwrap().index, link.index);
    let served = h.server.get_dhcp_port(&port.id).await.unwrap().unwrap();
    assert_eq!(
        served.fixed_ips.len(),
        1,
        "the server's port lost its v6 address too"
    );

    // Destroy and delete the namespace: nothing is left.
    h.dhcp
        .disable(&h.net_id, false)
        .await
        .expect("dnsmasq stops");
    h.dm.destroy(&net3, Some(&dev)).await.expect("destroy");
    h.dm.delete_namespace(&h.net_id)
        .await
        .expect("namespace deleted");
    assert_nothing_left(&h).await;
    drop(client);
}

/// No device in the namespace or root, no OVS port, no namespace entry, no
/// DHCP port on the server.
pub async fn assert_nothing_left(h: &Harness) {
    let ns = h.namespace();
    assert!(!Netns::exists(&ns), "namespace gone");
    assert!(!Netns::path(&ns).exists(), "no /run/netns entry left");
    assert_no_devices(h).await;
    assert!(!h.server_has_port().await, "DHCP port released");
}

/// No device of the port in the root namespace or (if it exists) the
/// network's namespace, and no OVS port.
pub async fn assert_no_devices(h: &Harness) {
    let ns = h.namespace();
    assert!(!link_exists(None, &h.root_name()).await, "no root device");
    assert!(!link_exists(None, &h.device_name()).await, "no root device");
    assert!(
        !link_exists(Some(&ns), &h.device_name()).await,
        "no device in the namespace"
    );
    if h.kind == Kind::Ovs {
        let all = vsctl(&["--bare", "--columns=name", "list", "Port"]);
        assert!(
            !all.lines().any(|l| l.trim() == h.root_name()),
            "no OVS port left: {all}"
        );
    }
}

/// A stale `/run/netns` entry (a plain file, its namespace long gone) is
/// replaced by a live namespace and setup works.
pub async fn stale_netns_entry(kind: Kind) {
    let h = Harness::new(kind, None, 1400);
    let ns = h.namespace();
    std::fs::create_dir_all("/run/netns").unwrap();
    std::fs::write(Netns::path(&ns), b"").unwrap();
    assert!(!Netns::exists(&ns));

    let net = h.fetch().await;
    let (net, _) = h.dm.setup(&net).await.expect("setup over a stale entry");
    assert!(Netns::exists(&ns), "a live namespace now");
    assert!(link_exists(Some(&ns), &h.device_name()).await);
    h.dm.destroy(&net, Some(&h.device_name())).await.unwrap();
    h.dm.delete_namespace(&h.net_id).await.unwrap();
    assert_nothing_left(&h).await;
}

/// A device of the namespace device's name left in the root namespace (and,
/// for the Linux bridge, a root end without its peer) is replaced.
pub async fn same_name_in_root(kind: Kind) {
    let h = Harness::new(kind, None, 1400);
    let dev = h.device_name();
    let spare = leasehold_testkit::unique_name("lhsp");
    sh(&[
        "ip", "link", "add", &dev, "type", "veth", "peer", "name", &spare,
    ]);
    leasehold_testkit::isolate_l2(&dev);
    leasehold_testkit::isolate_l2(&spare);
    let old = Handle::open(None)
        .await
        .unwrap()
        .link_index(&dev)
        .await
        .unwrap();
    let orphan_root_end = (kind == Kind::LinuxBridge).then(|| {
        let tap = h.root_name();
        let peer = leasehold_testkit::unique_name("lhsq");
        sh(&[
            "ip", "link", "add", &tap, "type", "veth", "peer", "name", &peer,
        ]);
        leasehold_testkit::isolate_l2(&tap);
        leasehold_testkit::isolate_l2(&peer);
        peer
    });

    let net = h.fetch().await;
    let (net, _) =
        h.dm.setup(&net)
            .await
            .expect("setup over a same-name device");
    let ns = h.namespace();
    let inner = Handle::open(Some(&ns)).await.unwrap();
    let link = inner
        .link(&dev)
        .await
        .unwrap()
        .expect("the device is in the namespace");
    assert_ne!(link.index, old, "a new device");
    assert!(!link_exists(None, &spare).await, "the old veth is gone");
    if let Some(peer) = orphan_root_end {
        assert!(!link_exists(None, &peer).await, "the old root end is gone");
        let master = std::fs::read_link(format!("/sys/class/net/{}/master", h.root_name()))
            .expect("the new root end is enslaved");
        assert!(master.ends_with(&h.bridge));
    } else {
        assert!(
            !link_exists(None, &dev).await,
            "nothing of that name in root"
        );
        assert!(ovs_ports(&h.bridge).contains(&dev));
    }
    h.dm.destroy(&net, Some(&dev)).await.unwrap();
    h.dm.delete_namespace(&h.net_id).await.unwrap();
    assert_nothing_left(&h).await;
}

/// Plugging fails half way (an MTU the kernel refuses, after the device
/// was made): nothing is left and the DHCP port is given back.
pub async fn plug_fails_half_way(kind: Kind) {
    let h = Harness::new(kind, None, 100_000);
    let net = h.fetch().await;
    let err =
        h.dm.setup(&net)
            .await
            .expect_err("an MTU of 100000 cannot be set");
    assert!(err.to_string().contains("MTU"), "{err}");
    assert_no_devices(&h).await;
    assert!(!h.server_has_port().await, "DHCP port released");
    if kind == Kind::LinuxBridge {
        assert!(
            !Path::new("/sys/class/net").join(&h.bridge).exists(),
            "the bridge this plug made is gone too"
        );
    }
    h.dm.delete_namespace(&h.net_id).await.unwrap();
    assert!(!Netns::exists(&h.namespace()));
}

/// The integration bridge is missing: a clear error naming it, nothing
/// left behind, the DHCP port given back.
pub async fn missing_integration_bridge() {
    let missing = leasehold_testkit::unique_name("lhnobr");
    let h = Harness::new(Kind::Ovs, Some(&missing), 1400);
    let net = h.fetch().await;
    let err = h.dm.setup(&net).await.expect_err("no bridge, no plug");
    let text = err.to_string();
    assert!(
        text.contains(&missing),
        "the error names the bridge: {text}"
    );
    assert!(text.contains("missing"), "{text}");
    assert_no_devices(&h).await;
    assert!(!h.server_has_port().await, "DHCP port released");
    h.dm.delete_namespace(&h.net_id).await.unwrap();
    assert!(!Netns::exists(&h.namespace()));
}
