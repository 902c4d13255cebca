//! The Open vSwitch driver against a real, private ovsdb-server and
//! ovs-vswitchd (userspace datapath): a DHCP device in namespace A and a
//! client internal port in namespace B on the same bridge must ping each
//! other. Run as root; with CI=true a non-root run fails instead of skipping.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use leasehold_core::driver::{DriverContext, DriverError, InterfaceDriver, PlugSpec};
use leasehold_core::model::{Id, MacAddress};
use leasehold_core::options::{Options, Origin};
use leasehold_core::registry::Registry;
use leasehold_netlink::{checksum_offload, isolate_l2, Handle, Netns};
use leasehold_openvswitch::{OvsDriver, Settings, OPTIONS};
use leasehold_testkit::ovs::{ovs, vsctl};

static COUNTER: AtomicUsize = AtomicUsize::new(0);
const MAC: &str = "fa:16:3e:0f:00:01";

fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("privileged tests must run as root in CI");
    }
    eprintln!("skipping: privileged test needs root");
    false
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One test's bridge, namespaces and ids; all removed on drop.
struct Env {
    n: String,
    bridge: String,
    network: Id,
    port: Id,
    ns_a: String,
    ns_b: String,
}

impl Env {
    /// Makes a fresh userspace bridge (layer 2 only) and namespace B.
    async fn new() -> Self {
        ovs();
        let n = format!(
            "{:06x}{:02x}",
            std::process::id() & 0xff_ffff,
            COUNTER.fetch_add(1, Ordering::SeqCst) & 0xff
        );
        let env = Env {
            bridge: format!("lhob{n}"),
            network: Id::new(format!("{n}b-1111-4111-8111-111111111111")).unwrap(),
            port: Id::new(format!("{n}c-2222-4222-8222-222222222222")).unwrap(),
            ns_a: format!("lhovs-a-{n}"),
            ns_b: format!("lhovs-b-{n}"),
            n,
        };
        vsctl(&[
            "add-br",
            &env.bridge,
            "--",
            "set",
            "Bridge",
            &env.bridge,
            "datapath_type=netdev",
        ]);
        isolate_l2(None, &env.bridge).await.unwrap();
        Netns::ensure(&env.ns_b).await.unwrap();
        env
    }

    fn settings(&self, veth: bool) -> Settings {
        Settings {
            integration_bridge: self.bridge.clone(),
            ovs_use_veth: veth,
            ..Settings::default()
        }
    }

    fn spec(&self, driver: &OvsDriver, mtu: Option<u32>) -> PlugSpec {
        PlugSpec {
            network_id: self.network.clone(),
            port_id: self.port.clone(),
            device_name: driver.device_name(&self.port),
            mac: MacAddress::parse(MAC).unwrap(),
            namespace: Some(self.ns_a.clone()),
            mtu,
            bridge: None,
        }
    }

    fn tap(&self) -> String {
        format!("tap{}", self.port.prefix(11))
    }

    fn client(&self) -> String {
        format!("lhoc{}", self.n)
    }

    /// A client in namespace B: an internal port on VLAN `tag`.
    async fn add_client(&self, addr: &str, tag: u16) {
        let c = self.client();
        vsctl(&[
            "add-port",
            &self.bridge,
            &c,
            &format!("tag={tag}"),
            "--",
            "set",
            "Interface",
            &c,
            "type=internal",
        ]);
        let root = Handle::open(None).await.unwrap();
        while !root.link_exists(&c).await.unwrap() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        root.set_netns(&c, Some(&self.ns_b)).await.unwrap();
        let b = Handle::open(Some(&self.ns_b)).await.unwrap();
        b.set_up(&c).await.unwrap();
        b.init_l3(&c, &[addr.parse().unwrap()]).await.unwrap();
    }

    fn ports(&self) -> Vec<String> {
        vsctl(&["list-ports", &self.bridge])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        quiet(&[
            "ovs-vsctl",
            "--timeout=10",
            "--if-exists",
            "del-br",
            &self.bridge,
        ]);
        for ns in [&self.ns_a, &self.ns_b] {
            quiet(&["ip", "netns", "delete", ns]);
        }
        let veth_root = format!("tap{}", self.port.prefix(11));
        quiet(&["ip", "link", "delete", &veth_root]);
    }
}

/// Pings until one answer comes, at most 5 tries: the switch may still be
/// applying a change (a new VLAN tag, flows being revalidated).
fn ping_eventually(ns: &str, addr: &str) -> bool {
    (0..5).any(|_| ping(ns, addr))
}

fn ping(ns: &str, addr: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "2", addr])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    out.status.success()
}

fn get(table: &str, row: &str, column: &str) -> String {
    vsctl(&["get", table, row, column])
}

/// Plug, read back, carry traffic, replug, unplug: shared by both modes.
async fn lifecycle(veth: bool) {
    let env = Env::new().await;
    let driver = OvsDriver::new(env.settings(veth)).unwrap();
    let spec = env.spec(&driver, Some(1400));
    let dev = spec.device_name.clone();
    driver.plug(&spec).await.unwrap();

    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    let link = a.link(&dev).await.unwrap().expect("device in A");
    assert_eq!(link.mac, Some([0xfa, 0x16, 0x3e, 0x0f, 0x00, 0x01]));
    assert_eq!(link.mtu, Some(1400));
    assert!(link.up);

    // OVSDB as Neutron leaves it: the port on the bridge, dead VLAN, ids.
    let tap = env.tap();
    assert!(env.ports().contains(&tap), "{:?}", env.ports());
    assert_eq!(
        get("Interface", &tap, "external_ids:iface-id"),
        format!("\"{}\"", env.port)
    );
    assert_eq!(
        get("Interface", &tap, "external_ids:iface-status"),
        "active"
    );
    assert_eq!(
        get("Interface", &tap, "external_ids:attached-mac"),
        format!("\"{MAC}\"")
    );
    assert_eq!(get("Port", &tap, "tag"), "4095");
    assert_eq!(get("Port", &tap, "vlan_mode"), "trunk");
    assert_eq!(get("Port", &tap, "trunks"), "[4095]");
    if veth {
        assert_eq!(get("Interface", &tap, "type"), "\"\"");
        assert_eq!(
            checksum_offload(Some(&env.ns_a), &dev).await.unwrap(),
            (false, false),
            "checksum offload off on the namespace end"
        );
        let root = Handle::open(None).await.unwrap();
        let t = root.link(&tap).await.unwrap().expect("root end");
        assert_eq!(t.mtu, Some(1400));
        assert!(t.up);
    } else {
        assert_eq!(get("Interface", &tap, "type"), "internal");
    }

    // Dead VLAN: nothing passes. A real tag: A and B ping each other.
    driver
        .init_l3(&dev, &["198.51.100.2/24".parse().unwrap()], Some(&env.ns_a))
        .await
        .unwrap();
    env.add_client("198.51.100.3/24", 7).await;
    assert!(
        !ping(&env.ns_a, "198.51.100.3"),
        "the dead VLAN carries nothing"
    );
    driver.set_port_tag(&tap, 7).await.unwrap();
    assert_eq!(get("Port", &tap, "tag"), "7");
    assert_eq!(get("Port", &tap, "trunks"), "[]");
    assert!(ping_eventually(&env.ns_a, "198.51.100.3"), "A pings B");
    assert!(ping_eventually(&env.ns_b, "198.51.100.2"), "B pings A");

    // Plug again: nothing recreated, only the MTU fixed.
    driver.plug(&env.spec(&driver, Some(1450))).await.unwrap();
    let again = a.link(&dev).await.unwrap().unwrap();
    assert_eq!(again.index, link.index, "same device");
    assert_eq!(again.mtu, Some(1450));
    assert_eq!(env.ports().iter().filter(|p| **p == tap).count(), 1);

    driver.unplug(&dev, Some(&env.ns_a)).await.unwrap();
    assert!(!env.ports().contains(&tap), "port gone");
    assert!(!a.link_exists(&dev).await.unwrap(), "device gone from A");
    let root = Handle::open(None).await.unwrap();
    assert!(
        !root.link_exists(&tap).await.unwrap(),
        "nothing left in root"
    );
    driver.unplug(&dev, Some(&env.ns_a)).await.unwrap();
}

#[tokio::test]
async fn internal_port_lifecycle_and_traffic() {
    if !privileged() {
        return;
    }
    lifecycle(false).await;
}

#[tokio::test]
async fn veth_mode_lifecycle_and_traffic() {
    if !privileged() {
        return;
    }
    lifecycle(true).await;
}

#[tokio::test]
async fn missing_bridge_is_a_clear_error() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    // The bridge is asked about only after the plug failed (veth mode has
    // made a veth by then): the error must still say what is missing, and
    // nothing may be left behind.
    for veth in [false, true] {
        let mut settings = env.settings(veth);
        settings.integration_bridge = format!("lhnobr{}", env.n);
        let driver = OvsDriver::new(settings).unwrap();
        let spec = env.spec(&driver, None);
        let err = driver.plug(&spec).await.unwrap_err();
        match &err {
            DriverError::Missing { what, .. } => {
                assert!(what.contains(&format!("lhnobr{}", env.n)), "{err}")
            }
            other => panic!("veth={veth}: expected Missing, got {other:?}"),
        }
        let root = Handle::open(None).await.unwrap();
        assert!(!root.link_exists(&env.tap()).await.unwrap(), "veth={veth}");
        if Netns::exists(&env.ns_a) {
            let inner = Handle::open(Some(&env.ns_a)).await.unwrap();
            assert!(
                !inner.link_exists(&spec.device_name).await.unwrap(),
                "veth={veth}: {} left in {}",
                spec.device_name,
                env.ns_a
            );
        }
    }
}

#[tokio::test]
async fn same_name_left_behind_is_replaced() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    let driver = OvsDriver::new(env.settings(false)).unwrap();
    let tap = env.tap();
    let root = Handle::open(None).await.unwrap();

    // A stale OVS internal port of that name, still in the root namespace.
    vsctl(&[
        "add-port",
        &env.bridge,
        &tap,
        "--",
        "set",
        "Interface",
        &tap,
        "type=internal",
    ]);
    while !root.link_exists(&tap).await.unwrap() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    isolate_l2(None, &tap).await.unwrap();
    let old = root.link(&tap).await.unwrap().unwrap().index;
    driver.plug(&env.spec(&driver, None)).await.unwrap();
    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    let new = a.link(&tap).await.unwrap().expect("in A");
    assert_ne!(new.index, old, "a new device");
    assert!(!root.link_exists(&tap).await.unwrap());
    assert_eq!(
        get("Interface", &tap, "external_ids:iface-id"),
        format!("\"{}\"", env.port)
    );
    driver.unplug(&tap, Some(&env.ns_a)).await.unwrap();

    // A plain (non-OVS) device of that name in the root namespace.
    root.add_veth(&tap, &format!("lhop{}", env.n), None)
        .await
        .unwrap();
    isolate_l2(None, &tap).await.unwrap();
    driver.plug(&env.spec(&driver, None)).await.unwrap();
    assert!(a.link_exists(&tap).await.unwrap());
    assert!(
        !root.link_exists(&format!("lhop{}", env.n)).await.unwrap(),
        "the old veth is gone"
    );
    assert_eq!(get("Interface", &tap, "type"), "internal");
}

#[tokio::test]
async fn failure_half_way_leaves_nothing() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    for veth in [false, true] {
        let driver = OvsDriver::new(env.settings(veth)).unwrap();
        let spec = env.spec(&driver, Some(100_000));
        let err = driver.plug(&spec).await.unwrap_err();
        assert!(err.to_string().contains("MTU"), "{err}");
        assert!(
            !env.ports().contains(&env.tap()),
            "no port left (veth={veth})"
        );
        let a = Handle::open(Some(&env.ns_a)).await.unwrap();
        assert!(
            !a.link_exists(&spec.device_name).await.unwrap(),
            "nothing in A (veth={veth})"
        );
        let root = Handle::open(None).await.unwrap();
        assert!(
            !root.link_exists(&env.tap()).await.unwrap(),
            "nothing in root (veth={veth})"
        );
    }
}

#[tokio::test]
async fn ovsdb_connection_option_is_honoured() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    leasehold_openvswitch::link();
    let entry = *Registry::builtin()
        .unwrap()
        .interface("neutron.agent.linux.interface.OVSInterfaceDriver")
        .unwrap();
    assert_eq!(entry.name, "openvswitch");

    // Explicitly the private socket: works.
    let mut options = Options::new();
    options.declare(&OPTIONS);
    options.set(
        "OVS",
        "integration_bridge",
        env.bridge.as_str(),
        Origin::Program,
    );
    options.set("OVS", "ovsdb_connection", ovs().db(), Origin::Program);
    let driver = (entry.create)(&DriverContext {
        options: &options,
        host: "t",
    })
    .unwrap();
    let spec = PlugSpec {
        device_name: driver.device_name(&env.port),
        ..env.spec(&OvsDriver::new(env.settings(false)).unwrap(), None)
    };
    driver.plug(&spec).await.unwrap();
    assert!(env.ports().contains(&env.tap()));
    driver
        .unplug(&spec.device_name, Some(&env.ns_a))
        .await
        .unwrap();

    // Explicitly somewhere nothing listens: the error says so, nothing is made.
    options.set(
        "OVS",
        "ovsdb_connection",
        "unix:/nonexistent/db.sock",
        Origin::Program,
    );
    options.set("OVS", "ovsdb_timeout", "1", Origin::Program);
    let driver = (entry.create)(&DriverContext {
        options: &options,
        host: "t",
    })
    .unwrap();
    let err = driver.plug(&spec).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("OVSDB at unix:/nonexistent/db.sock"),
        "{err}"
    );
    assert!(!env.ports().contains(&env.tap()));
}
