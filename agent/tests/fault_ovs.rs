//! ovsdb-server restarted while the agent's ports are plugged, with the
//! agent in `file://` mode on the Open vSwitch driver (the private userspace
//! OVS of `leasehold_testkit::ovs`). A network added while the database is
//! down is served once it is back; the plugged ones never stop.

mod fault_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fault_support::{alive, tail, Net, Standalone};
use leasehold_testkit::ovs::{self, port_tag};
use leasehold_testkit::{privileged, unique_name, wait_for, Client};

/// The ovsdb-server this test started again; stopped on drop.
struct Ovsdb(Child);

impl Drop for Ovsdb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the private ovsdb-server (SIGTERM) and waits until it is gone.
fn stop_ovsdb(rundir: &Path) {
    let pid: i32 = std::fs::read_to_string(rundir.join("ovsdb-server.pid"))
        .expect("ovsdb-server pid file")
        .trim()
        .parse()
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM ovsdb-server");
    assert!(
        wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(())).is_some(),
        "ovsdb-server {pid} did not stop"
    );
}

/// Starts ovsdb-server again on the same database and socket.
fn start_ovsdb(rundir: &Path) -> Ovsdb {
    let d = |n: &str| -> PathBuf { rundir.join(n) };
    let _ = std::fs::remove_file(d("ovsdb-server.pid"));
    let child = Command::new("ovsdb-server")
        .arg(d("conf.db"))
        .arg(format!("--remote=punix:{}", d("db.sock").display()))
        .arg(format!("--unixctl={}", d("ovsdb-server.ctl").display()))
        .arg(format!("--log-file={}", d("ovsdb-server.log").display()))
        .arg(format!("--pidfile={}", d("ovsdb-server.pid").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ovsdb-server starts");
    let up = wait_for(Duration::from_secs(10), || {
        Command::new("ovs-vsctl")
            .args(["--timeout=2", "show"])
            .output()
            .ok()
            .filter(|o| o.status.success())
    });
    assert!(up.is_some(), "ovsdb-server did not come back");
    Ovsdb(child)
}

/// The network's DHCP port tag once the agent moved it off the dead VLAN.
fn tag_of(s: &Standalone, net: &Net) -> u16 {
    wait_for(Duration::from_secs(30), || {
        let dev = std::fs::read_to_string(s.conf_dir(&net.id).join("interface")).ok()?;
        let tag: u16 = port_tag(dev.trim()).parse().ok()?;
        (tag != 4095).then_some(tag)
    })
    .unwrap_or_else(|| panic!("{} never tagged:\n{}", net.id, tail(&s.log(), 30)))
}

#[test]
fn fault_ovsdb_restarted_while_ports_plugged() {
    if !privileged("fault_ovsdb_restarted") {
        return;
    }
    let rundir = ovs::ovs().rundir.clone();
    let bridge = unique_name("lhfint");
    ovs::netdev_bridge(&bridge);
    struct DelBridge(String);
    impl Drop for DelBridge {
        fn drop(&mut self) {
            ovs::del_bridge(&self.0);
        }
    }
    let _bridge_guard = DelBridge(bridge.clone());

    let mut s = Standalone::on_ovs(&bridge, "");
    let a = Net::new(0xb0, 1);
    let b = Net::new(0xb1, 1);
    s.write(&[&a]);
    s.start();
    s.assert_converged(&[&a], Duration::from_secs(40));
    let tag_a = tag_of(&s, &a);
    let client_a = Client::on_ovs(&bridge, tag_a);
    s.assert_lease_with(&a, 0, &client_a);

    // The database goes away; a network is added meanwhile.
    eprintln!("fault_ovsdb: served; stopping ovsdb-server");
    stop_ovsdb(&rundir);
    s.write(&[&a, &b]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(s.alive(), "the agent died:\n{}", tail(&s.log(), 30));
    // (Not checked: a lease while the database is away. This machine's
    // userspace datapath stops forwarding DHCP then, with or without the
    // agent doing anything; a kernel datapath keeps its flows.)
    eprintln!("fault_ovsdb: starting ovsdb-server again");
    let _ovsdb = start_ovsdb(&rundir);

    s.assert_converged(&[&a, &b], Duration::from_secs(40));
    assert!(s.alive(), "the agent died:\n{}", tail(&s.log(), 30));
    let dev_a = std::fs::read_to_string(s.conf_dir(&a.id).join("interface")).unwrap();
    assert_eq!(
        port_tag(dev_a.trim()),
        tag_a.to_string(),
        "A's port kept its tag"
    );
    s.assert_lease_with(&a, 0, &client_a);
    let tag_b = tag_of(&s, &b);
    let client_b = Client::on_ovs(&bridge, tag_b);
    s.assert_lease_with(&b, 0, &client_b);
}
