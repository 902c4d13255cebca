//! The Linux bridge and null drivers on real namespaces, veth pairs and a
//! real bridge: a DHCP device in namespace A and a client in namespace B on
//! the same brq bridge must ping each other. Run as root; with CI=true a
//! non-root run fails instead of skipping.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use leasehold_core::driver::{DriverContext, InterfaceDriver, PlugSpec};
use leasehold_core::model::{Id, MacAddress};
use leasehold_core::options::Options;
use leasehold_core::registry::Registry;
use leasehold_linuxbridge::{bridge_name, root_device_name, BridgeDriver, NullDriver};
use leasehold_netlink::{device_key, isolate_l2, sysctl_get, Handle, Netns};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

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

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Everything one test makes, removed on drop.
struct Env {
    n: String,
    network: Id,
    port: Id,
    ns_a: String,
    ns_b: String,
}

impl Env {
    async fn new() -> Self {
        let n = format!(
            "{:06x}{:02x}",
            std::process::id() & 0xff_ffff,
            COUNTER.fetch_add(1, Ordering::SeqCst) & 0xff
        );
        let env = Env {
            network: Id::new(format!("{n}b-1111-4111-8111-111111111111")).unwrap(),
            port: Id::new(format!("{n}a-2222-4222-8222-222222222222")).unwrap(),
            ns_a: format!("lhlb-a-{n}"),
            ns_b: format!("lhlb-b-{n}"),
            n,
        };
        Netns::ensure(&env.ns_b).await.unwrap();
        env
    }

    fn spec(&self, mtu: Option<u32>) -> PlugSpec {
        PlugSpec {
            network_id: self.network.clone(),
            port_id: self.port.clone(),
            device_name: BridgeDriver.device_name(&self.port),
            mac: MacAddress::parse("fa:16:3e:4c:00:01").unwrap(),
            namespace: Some(self.ns_a.clone()),
            mtu,
            bridge: None,
        }
    }

    fn dev(&self) -> String {
        BridgeDriver.device_name(&self.port)
    }

    fn tap(&self) -> String {
        root_device_name(&self.dev())
    }

    fn bridge(&self) -> String {
        bridge_name(&self.network)
    }

    fn client_root(&self) -> String {
        format!("lhc{}", self.n)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            quiet(&["ip", "netns", "delete", ns]);
        }
        for dev in [self.tap(), self.dev(), self.client_root(), self.bridge()] {
            quiet(&["ip", "link", "delete", &dev]);
        }
    }
}

/// A client in namespace B: a veth whose root end is on the bridge.
async fn client(env: &Env, addr: &str) {
    let root = Handle::open(None).await.unwrap();
    let inner = format!("lhd{}", env.n);
    root.add_veth(&env.client_root(), &inner, Some(&env.ns_b))
        .await
        .unwrap();
    isolate_l2(None, &env.client_root()).await.unwrap();
    root.set_master(&env.client_root(), &env.bridge())
        .await
        .unwrap();
    root.set_up(&env.client_root()).await.unwrap();
    let b = Handle::open(Some(&env.ns_b)).await.unwrap();
    b.set_up(&inner).await.unwrap();
    b.init_l3(&inner, &[addr.parse().unwrap()]).await.unwrap();
}

/// Pings until one answer comes, at most 5 tries: the switch may still be
/// applying a change (a new VLAN tag, flows being revalidated).
fn ping_eventually(ns: &str, addr: &str) -> bool {
    (0..5).any(|_| ping(ns, addr))
}

fn ping(ns: &str, addr: &str) -> bool {
    let out = run(&[
        "ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", addr,
    ]);
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    out.status.success()
}

#[tokio::test]
async fn plug_carries_traffic_replug_keeps_unplug_removes() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    let driver = BridgeDriver;
    driver.plug(&env.spec(Some(1400))).await.unwrap();

    // The namespace end: MAC, MTU, up.
    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    let dev = a.link(&env.dev()).await.unwrap().expect("ns- end in A");
    assert_eq!(dev.mac, Some([0xfa, 0x16, 0x3e, 0x4c, 0x00, 0x01]));
    assert_eq!(dev.mtu, Some(1400));
    assert!(dev.up);
    // The root end: on the bridge, MTU, up, layer 2 only; the bridge too.
    let root = Handle::open(None).await.unwrap();
    let br = root
        .link(&env.bridge())
        .await
        .unwrap()
        .expect("bridge made");
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.up);
    assert!(root.addresses(&env.bridge()).await.unwrap().is_empty());
    let tap = root
        .link(&env.tap())
        .await
        .unwrap()
        .expect("tap end in root");
    assert_eq!(tap.master, Some(br.index));
    assert_eq!(tap.mtu, Some(1400));
    assert!(tap.up);
    for dev in [env.tap(), env.bridge()] {
        assert_eq!(
            sysctl_get(None, &device_key("ipv6", &dev, "disable_ipv6"))
                .await
                .unwrap(),
            "1"
        );
        assert_eq!(
            sysctl_get(None, &device_key("ipv4", &dev, "arp_ignore"))
                .await
                .unwrap(),
            "8"
        );
    }

    // Traffic: A and B ping each other through brq.
    driver
        .init_l3(
            &env.dev(),
            &["198.51.100.2/24".parse().unwrap()],
            Some(&env.ns_a),
        )
        .await
        .unwrap();
    client(&env, "198.51.100.3/24").await;
    assert!(ping_eventually(&env.ns_a, "198.51.100.3"), "A pings B");
    assert!(ping_eventually(&env.ns_b, "198.51.100.2"), "B pings A");

    // Plug again: nothing recreated, MTU fixed.
    driver.plug(&env.spec(Some(1450))).await.unwrap();
    let again = a.link(&env.dev()).await.unwrap().unwrap();
    assert_eq!(again.index, dev.index, "same device");
    assert_eq!(again.mtu, Some(1450));
    assert_eq!(
        root.link(&env.tap()).await.unwrap().unwrap().index,
        tap.index
    );
    assert_eq!(
        root.link(&env.tap()).await.unwrap().unwrap().mtu,
        Some(1450)
    );

    driver.unplug(&env.dev(), Some(&env.ns_a)).await.unwrap();
    assert!(!a.link_exists(&env.dev()).await.unwrap());
    assert!(!root.link_exists(&env.tap()).await.unwrap());
    driver.unplug(&env.dev(), Some(&env.ns_a)).await.unwrap();
}

#[tokio::test]
async fn same_name_left_in_root_is_replaced() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    let root = Handle::open(None).await.unwrap();
    // A leftover veth with both our names in the root namespace.
    root.add_veth(&env.tap(), &env.dev(), None).await.unwrap();
    isolate_l2(None, &env.tap()).await.unwrap();
    isolate_l2(None, &env.dev()).await.unwrap();
    BridgeDriver.plug(&env.spec(None)).await.unwrap();
    assert!(
        !root.link_exists(&env.dev()).await.unwrap(),
        "no ns- device left in root"
    );
    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    assert!(a.link_exists(&env.dev()).await.unwrap());
    let tap = root.link(&env.tap()).await.unwrap().unwrap();
    let br = root.link(&env.bridge()).await.unwrap().unwrap();
    assert_eq!(tap.master, Some(br.index), "a new root end, on the bridge");
}

/// An agent killed after making the pair but before enslaving the root end
/// (found by `agent/tests/fault_local.rs`): the next plug finishes the job
/// instead of taking the device as plugged, and traffic flows.
#[tokio::test]
async fn plug_interrupted_before_enslaving_is_finished() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    Netns::ensure(&env.ns_a).await.unwrap();
    let root = Handle::open(None).await.unwrap();
    root.add_veth(&env.tap(), &env.dev(), Some(&env.ns_a))
        .await
        .unwrap();
    isolate_l2(None, &env.tap()).await.unwrap();
    BridgeDriver.plug(&env.spec(Some(1400))).await.unwrap();
    let tap = root.link(&env.tap()).await.unwrap().unwrap();
    let br = root.link(&env.bridge()).await.unwrap().unwrap();
    assert_eq!(
        tap.master,
        Some(br.index),
        "the root end is put on the bridge"
    );
    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    a.init_l3(&env.dev(), &["198.51.100.2/24".parse().unwrap()])
        .await
        .unwrap();
    client(&env, "198.51.100.3/24").await;
    assert!(ping_eventually(&env.ns_b, "198.51.100.2"));
}

#[tokio::test]
async fn failure_half_way_leaves_nothing() {
    if !privileged() {
        return;
    }
    let env = Env::new().await;
    // No veth takes an MTU this large: the plug fails after making the pair.
    let err = BridgeDriver
        .plug(&env.spec(Some(100_000)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&env.dev()) || err.to_string().contains(&env.tap()),
        "{err}"
    );
    let root = Handle::open(None).await.unwrap();
    assert!(!root.link_exists(&env.tap()).await.unwrap());
    assert!(
        !root.link_exists(&env.bridge()).await.unwrap(),
        "the bridge it made is gone"
    );
    let a = Handle::open(Some(&env.ns_a)).await.unwrap();
    assert!(!a.link_exists(&env.dev()).await.unwrap());
}

#[tokio::test]
async fn null_driver_plugs_nothing_and_registry_names() {
    if !privileged() {
        return;
    }
    leasehold_linuxbridge::link();
    let registry = Registry::builtin().unwrap();
    let options = Options::new();
    let ctx = DriverContext {
        options: &options,
        host: "test",
    };
    assert_eq!(
        registry
            .interface("neutron.agent.linux.interface.BridgeInterfaceDriver")
            .unwrap()
            .name,
        "linuxbridge"
    );
    let null = (registry
        .interface("neutron.agent.linux.interface.NullDriver")
        .unwrap()
        .create)(&ctx)
    .unwrap();
    let env = Env::new().await;
    let spec = env.spec(Some(1400));
    null.plug(&spec).await.unwrap();
    assert!(
        !Netns::exists(&env.ns_a),
        "nothing made, not even the namespace"
    );
    null.init_l3(
        &spec.device_name,
        &["198.51.100.2/24".parse().unwrap()],
        Some(&env.ns_b),
    )
    .await
    .unwrap();
    null.unplug(&spec.device_name, Some(&env.ns_a))
        .await
        .unwrap();
    // A device someone else made is still addressed.
    let b = Handle::open(Some(&env.ns_b)).await.unwrap();
    b.add_veth("lhnull0", "lhnull1", None).await.unwrap();
    NullDriver
        .init_l3(
            "lhnull0",
            &["203.0.113.4/24".parse().unwrap()],
            Some(&env.ns_b),
        )
        .await
        .unwrap();
    let addrs = b.addresses("lhnull0").await.unwrap();
    assert!(addrs.iter().any(|a| a.cidr.to_string() == "203.0.113.4/24"));
}
