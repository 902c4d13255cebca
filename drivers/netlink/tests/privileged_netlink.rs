//! Privileged tests on real namespaces, veth pairs, addresses and routes.
//! Run as root; with CI=true a non-root run fails instead of skipping.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use leasehold_netlink::{
    checksum_offload, disable_checksum_offload, isolate_l2, sysctl_get, sysctl_set, Handle,
    IpVersion, LinkChange, Netns,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether privileged tests may run here; panics in CI when they cannot.
fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("privileged tests must run as root in CI");
    }
    eprintln!("skipping: privileged test needs root");
    false
}

/// A unique short tag: pid and a counter.
fn tag() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A namespace deleted on drop (with everything in it).
struct TestNs(String);

impl TestNs {
    async fn new(prefix: &str) -> Self {
        let name = format!("lhnl-{prefix}-{}", tag());
        assert!(Netns::ensure(&name).await.unwrap(), "{name} was new");
        TestNs(name)
    }
    fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A root-namespace link deleted on drop.
struct RootLink(String);

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ip_netns_list() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Global addresses of a device as `ip -j addr` reads them back.
fn ip_addr_readback(ns: &str, dev: &str) -> BTreeSet<String> {
    let out = run(&["ip", "-n", ns, "-j", "addr", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

#[tokio::test]
async fn namespace_create_list_delete_visible_to_ip() {
    if !privileged() {
        return;
    }
    let name = format!("lhnl-life-{}", tag());
    assert!(!Netns::exists(&name));
    assert!(Netns::ensure(&name).await.unwrap());
    let _guard = TestNs(name.clone());
    assert!(Netns::exists(&name));
    assert!(
        !Netns::ensure(&name).await.unwrap(),
        "second ensure creates nothing"
    );
    assert!(Netns::list().unwrap().contains(&name));
    assert!(ip_netns_list().contains(&name), "ip netns list sees it");
    // lo is up and promote_secondaries on, as Neutron's ensure_namespace.
    let lo = run(&["ip", "-n", &name, "-j", "link", "show", "lo"]);
    assert!(lo.contains("\"UP\""), "{lo}");
    assert_eq!(
        sysctl_get(Some(&name), "net.ipv4.conf.all.promote_secondaries")
            .await
            .unwrap(),
        "1"
    );
    // One that iproute2 made is seen by us.
    let theirs = format!("lhnl-ip-{}", tag());
    run(&["ip", "netns", "add", &theirs]);
    let _theirs = TestNs(theirs.clone());
    assert!(Netns::exists(&theirs));
    assert!(Netns::delete(&theirs).await.unwrap());
    assert!(!ip_netns_list().contains(&theirs));

    assert!(Netns::delete(&name).await.unwrap());
    assert!(!Netns::exists(&name));
    assert!(
        !ip_netns_list().contains(&name),
        "ip netns list no longer sees it"
    );
    assert!(!Netns::delete(&name).await.unwrap(), "absent is fine");
}

#[tokio::test]
async fn stale_entries_are_replaced() {
    if !privileged() {
        return;
    }
    // An empty file where a namespace mount should be.
    let name = format!("lhnl-stale-{}", tag());
    std::fs::create_dir_all("/run/netns").unwrap();
    std::fs::write(Netns::path(&name), b"").unwrap();
    let _guard = TestNs(name.clone());
    assert!(!Netns::exists(&name), "an empty file is not a namespace");
    assert!(!Netns::list().unwrap().contains(&name));
    assert!(Netns::ensure(&name).await.unwrap(), "stale entry replaced");
    assert!(Netns::exists(&name));
    run(&["ip", "netns", "exec", &name, "true"]);

    // A namespace that was unmounted behind our back.
    let name2 = format!("lhnl-umnt-{}", tag());
    run(&["ip", "netns", "add", &name2]);
    let _guard2 = TestNs(name2.clone());
    run(&["umount", &Netns::path(&name2).to_string_lossy()]);
    assert!(!Netns::exists(&name2));
    assert!(Netns::ensure(&name2).await.unwrap());
    assert!(Netns::exists(&name2));
    let h = Handle::open(Some(&name2)).await.unwrap();
    assert!(h.link_exists("lo").await.unwrap());
}

#[tokio::test]
async fn veth_move_mac_mtu_up() {
    if !privileged() {
        return;
    }
    let ns = TestNs::new("veth").await;
    let t = tag();
    let (a, b) = (format!("lha{t}"), format!("lhb{t}"));
    let root = Handle::open(None).await.unwrap();
    // Both ends in the root namespace first, then one moved.
    root.add_veth(&a, &b, None).await.unwrap();
    let _ga = RootLink(a.clone());
    isolate_l2(None, &a).await.unwrap();
    isolate_l2(None, &b).await.unwrap();
    assert!(root.link_exists(&b).await.unwrap());
    root.set_netns(&b, Some(ns.name())).await.unwrap();
    assert!(!root.link_exists(&b).await.unwrap(), "moved away");

    let h = Handle::open(Some(ns.name())).await.unwrap();
    let mac = [0xfa, 0x16, 0x3e, 0x01, 0x02, 0x03];
    h.set_mac(&b, mac).await.unwrap();
    h.set_mtu(&b, 1450).await.unwrap();
    h.set_up(&b).await.unwrap();
    let link = h.link(&b).await.unwrap().expect("in the namespace");
    assert_eq!(link.mac, Some(mac));
    assert_eq!(link.mtu, Some(1450));
    assert!(link.up);
    assert_eq!(link.kind.as_deref(), Some("veth"));
    let shown = run(&["ip", "-n", ns.name(), "-j", "link", "show", &b]);
    assert!(
        shown.contains("fa:16:3e:01:02:03") && shown.contains("\"mtu\":1450"),
        "{shown}"
    );
    assert!(h.ensure_device_ready(&b).await.unwrap());
    assert!(!h.ensure_device_ready("nonesuch0").await.unwrap());
    assert!(h.list_links().await.unwrap().iter().any(|l| l.name == b));

    // Move, MAC, MTU and up in one request: the kernel moves first, then
    // applies the rest inside the namespace.
    let (e, f) = (format!("lhe{t}"), format!("lhf{t}"));
    root.add_veth(&e, &f, None).await.unwrap();
    let _ge = RootLink(e.clone());
    isolate_l2(None, &f).await.unwrap();
    let mac2 = [0xfa, 0x16, 0x3e, 0x04, 0x05, 0x06];
    let change = LinkChange::default()
        .into_namespace(ns.name())
        .mac(mac2)
        .mtu(Some(1400))
        .up();
    root.change_link(&f, &change).await.unwrap();
    assert!(!root.link_exists(&f).await.unwrap(), "moved away");
    let moved = h.link(&f).await.unwrap().expect("in the namespace");
    assert_eq!(
        (moved.mac, moved.mtu, moved.up),
        (Some(mac2), Some(1400), true)
    );
    let missing = root.change_link(&f, &change).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    // A refused value is named in the error (a multicast MAC).
    let refused = h
        .change_link(&f, &LinkChange::default().mac([0x01, 0, 0x5e, 0, 0, 1]))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("set MAC of")
            && refused.to_string().contains("01:00:5e:00:00:01"),
        "{refused}"
    );

    // Peer made directly in another namespace.
    let (c, d) = (format!("lhc{t}"), format!("lhd{t}"));
    root.add_veth(&c, &d, Some(ns.name())).await.unwrap();
    let _gc = RootLink(c.clone());
    isolate_l2(None, &c).await.unwrap();
    assert!(h.link_exists(&d).await.unwrap());
    assert!(!root.link_exists(&d).await.unwrap());
    assert!(root.delete_link(&c).await.unwrap());
    assert!(!h.link_exists(&d).await.unwrap(), "the peer went with it");
    assert!(!root.delete_link(&c).await.unwrap(), "absent is fine");

    // Checksum offload off (what a veth on the OVS userspace datapath needs).
    assert_eq!(
        checksum_offload(Some(ns.name()), &b).await.unwrap(),
        (true, true)
    );
    disable_checksum_offload(Some(ns.name()), &b).await.unwrap();
    assert_eq!(
        checksum_offload(Some(ns.name()), &b).await.unwrap(),
        (false, false)
    );
}

#[tokio::test]
async fn bridge_and_master() {
    if !privileged() {
        return;
    }
    let ns = TestNs::new("br").await;
    let t = tag();
    let h = Handle::open(Some(ns.name())).await.unwrap();
    let br = format!("lhbr{t}");
    h.add_bridge(&br).await.unwrap();
    h.add_veth(&format!("lhx{t}"), &format!("lhy{t}"), None)
        .await
        .unwrap();
    h.set_master(&format!("lhx{t}"), &br).await.unwrap();
    let brl = h.link(&br).await.unwrap().unwrap();
    assert_eq!(brl.kind.as_deref(), Some("bridge"));
    let x = h.link(&format!("lhx{t}")).await.unwrap().unwrap();
    assert_eq!(x.master, Some(brl.index));
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn init_l3_adds_and_removes_exactly() {
    if !privileged() {
        return;
    }
    let ns = TestNs::new("l3").await;
    let t = tag();
    let (dev, peer) = (format!("lhl{t}"), format!("lhp{t}"));
    let h = Handle::open(Some(ns.name())).await.unwrap();
    h.add_veth(&dev, &peer, None).await.unwrap();
    let mac = [0xfa, 0x16, 0x3e, 0xaa, 0xbb, 0xcc];
    h.set_mac(&dev, mac).await.unwrap();
    h.set_up(&dev).await.unwrap();
    h.set_up(&peer).await.unwrap();
    // Stale ones: another subnet, a wanted address with the wrong prefix, an
    // IPv6 one, and a dynamic (lifetime-limited) copy of a wanted address.
    for cidr in ["203.0.113.9/24", "198.51.100.5/25", "2001:db8::99/64"] {
        h.add_address(&dev, cidr.parse().unwrap()).await.unwrap();
    }
    run(&[
        "ip",
        "-n",
        ns.name(),
        "addr",
        "add",
        "198.51.100.6/24",
        "dev",
        &dev,
        "valid_lft",
        "300",
        "preferred_lft",
        "300",
    ]);
    assert!(h
        .addresses(&dev)
        .await
        .unwrap()
        .iter()
        .any(|a| a.cidr.to_string() == "198.51.100.6/24" && a.dynamic));

    let want = nets(&["198.51.100.5/24", "198.51.100.6/24", "2001:db8::5/64"]);
    h.init_l3(&dev, &want).await.unwrap();

    let addrs = h.addresses(&dev).await.unwrap();
    let global: BTreeSet<String> = addrs
        .iter()
        .filter(|a| a.scope == leasehold_netlink::Scope::Global)
        .map(|a| a.cidr.to_string())
        .collect();
    let expected: BTreeSet<String> = want.iter().map(|c| c.to_string()).collect();
    assert_eq!(global, expected);
    assert!(addrs
        .iter()
        .filter(|a| a.scope == leasehold_netlink::Scope::Global)
        .all(|a| !a.dynamic));
    assert_eq!(
        ip_addr_readback(ns.name(), &dev),
        expected,
        "ip -j addr agrees"
    );
    // Only the kernel's EUI-64 link-local remains besides them.
    let lla = format!("{}/64", leasehold_netlink::eui64_link_local(mac));
    let others: Vec<String> = addrs
        .iter()
        .filter(|a| a.scope != leasehold_netlink::Scope::Global)
        .map(|a| a.cidr.to_string())
        .collect();
    assert!(others.iter().all(|o| *o == lla), "{others:?}");

    // Again with fewer: only the removal happens; the rest is untouched.
    let fewer = nets(&["198.51.100.6/24"]);
    h.init_l3(&dev, &fewer).await.unwrap();
    assert_eq!(
        ip_addr_readback(ns.name(), &dev),
        BTreeSet::from(["198.51.100.6/24".to_string()])
    );
    // And to nothing.
    h.init_l3(&dev, &[]).await.unwrap();
    assert!(ip_addr_readback(ns.name(), &dev).is_empty());
    assert!(h
        .init_l3("nonesuch0", &fewer)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn default_and_onlink_routes() {
    if !privileged() {
        return;
    }
    let ns = TestNs::new("rt").await;
    let t = tag();
    let (dev, peer) = (format!("lhr{t}"), format!("lhq{t}"));
    let h = Handle::open(Some(ns.name())).await.unwrap();
    h.add_veth(&dev, &peer, None).await.unwrap();
    h.set_up(&dev).await.unwrap();
    h.set_up(&peer).await.unwrap();
    h.init_l3(&dev, &nets(&["198.51.100.5/24", "2001:db8::5/64"]))
        .await
        .unwrap();
    assert_eq!(h.default_gateway(IpVersion::V4).await.unwrap(), None);

    let gw: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    h.set_default_gateway(&dev, gw).await.unwrap();
    assert_eq!(h.default_gateway(IpVersion::V4).await.unwrap(), Some(gw));

    // A gateway outside the subnet: on-link route first, then the default.
    let outside: std::net::IpAddr = "203.0.113.1".parse().unwrap();
    h.add_onlink_route(&dev, outside).await.unwrap();
    h.set_default_gateway(&dev, outside).await.unwrap();
    assert_eq!(
        h.default_gateway(IpVersion::V4).await.unwrap(),
        Some(outside)
    );
    let shown = run(&["ip", "-n", ns.name(), "route", "show"]);
    assert!(
        shown.contains(&format!("default via 203.0.113.1 dev {dev}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("203.0.113.1 dev {dev}")) && shown.contains("scope link"),
        "{shown}"
    );
    assert_eq!(
        h.onlink_routes(&dev).await.unwrap(),
        vec!["203.0.113.1/32".parse::<IpNet>().unwrap()]
    );

    // IPv6.
    let gw6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
    h.set_default_gateway(&dev, gw6).await.unwrap();
    assert_eq!(h.default_gateway(IpVersion::V6).await.unwrap(), Some(gw6));

    // Back in the subnet; the old on-link route removed.
    h.set_default_gateway(&dev, gw).await.unwrap();
    assert!(h.del_onlink_route(&dev, outside).await.unwrap());
    assert!(!h.del_onlink_route(&dev, outside).await.unwrap());
    assert!(h.onlink_routes(&dev).await.unwrap().is_empty());
    assert_eq!(h.default_gateway(IpVersion::V4).await.unwrap(), Some(gw));

    assert!(h.del_default_gateway(IpVersion::V4).await.unwrap());
    assert!(h.del_default_gateway(IpVersion::V6).await.unwrap());
    assert_eq!(h.default_gateway(IpVersion::V4).await.unwrap(), None);
    assert_eq!(h.default_gateway(IpVersion::V6).await.unwrap(), None);
    assert!(!h.del_default_gateway(IpVersion::V4).await.unwrap());
}

#[tokio::test]
async fn sysctls_inside_a_namespace() {
    if !privileged() {
        return;
    }
    let ns = TestNs::new("sys").await;
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind").unwrap();
    let wanted_root = if root_before.trim() == "1" { "0" } else { "1" };
    sysctl_set(Some(ns.name()), "net.ipv4.ip_nonlocal_bind", wanted_root)
        .await
        .unwrap();
    let inside = run(&[
        "ip",
        "netns",
        "exec",
        ns.name(),
        "cat",
        "/proc/sys/net/ipv4/ip_nonlocal_bind",
    ]);
    assert_eq!(inside.trim(), wanted_root);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind").unwrap(),
        root_before,
        "the root namespace is untouched"
    );
    sysctl_set(Some(ns.name()), "net.ipv6.conf.default.accept_ra", "0")
        .await
        .unwrap();
    assert_eq!(
        sysctl_get(Some(ns.name()), "net.ipv6.conf.default.accept_ra")
            .await
            .unwrap(),
        "0"
    );
    let h = Handle::open(Some(ns.name())).await.unwrap();
    let t = tag();
    let dev = format!("lhs{t}");
    h.add_veth(&dev, &format!("lht{t}"), None).await.unwrap();
    isolate_l2(Some(ns.name()), &dev).await.unwrap();
    let key = leasehold_netlink::device_key("ipv4", &dev, "arp_ignore");
    assert_eq!(sysctl_get(Some(ns.name()), &key).await.unwrap(), "8");
    let key6 = leasehold_netlink::device_key("ipv6", &dev, "disable_ipv6");
    assert_eq!(sysctl_get(Some(ns.name()), &key6).await.unwrap(), "1");
    let err = sysctl_set(Some(ns.name()), "net.ipv4.no_such_key", "1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("net.ipv4.no_such_key") && err.to_string().contains(ns.name()),
        "{err}"
    );
    let err = Handle::open(Some("lhnl-no-such-ns")).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
