//! Privilege: dnsmasq runs unprivileged as the reference's does (no
//! `--user` on its command line, so dnsmasq drops root to its compiled-in
//! user); files and directories get the reference's modes; plugins are
//! loaded only from the configured paths and refused when they or their
//! directory are writable by others than root; credentials never show in
//! logs, `check-config` output or metrics.

mod fault_support;
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use fault_support::{Net, Standalone};
use leasehold_testkit::{privileged, wait_for};
use support::{agent, example_plugin, stderr, stdout, write_config};

/// `Uid:` of a process: real, effective, saved, filesystem.
fn uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line")
        .split_whitespace()
        .filter_map(|u| u.parse().ok())
        .collect()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

#[test]
fn fault_privilege_dnsmasq_unprivileged_and_reference_modes() {
    if !privileged("fault_privilege_dnsmasq") {
        return;
    }
    let mut s = Standalone::new("");
    let net = Net::new(0xa0, 1);
    s.write(&[&net]);
    s.start();
    s.assert_converged(&[&net], Duration::from_secs(40));
    let pid = s.dnsmasq(&net.id).expect("dnsmasq");
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .replace('\0', " ");
    assert!(
        !cmdline.contains("--user"),
        "the reference passes no --user: {cmdline}"
    );
    let ids = uids(pid);
    assert_eq!(ids.len(), 4);
    assert!(
        ids.iter().all(|u| *u != 0),
        "dnsmasq {pid} keeps root: Uid {ids:?}"
    );
    eprintln!("dnsmasq {pid} runs as uid {ids:?}");

    // Neutron: ensure_dir 0755, replace_file 0644.
    let dir = s.conf_dir(&net.id);
    assert_eq!(mode(&dir), 0o755, "{}", dir.display());
    for f in ["host", "addn_hosts", "opts", "interface", "leases"] {
        assert_eq!(mode(&dir.join(f)), 0o644, "{f}");
    }
    s.assert_lease(&net, 0);
}

#[test]
fn fault_privilege_plugins_only_from_configured_safe_paths() {
    if !privileged("fault_privilege_plugins") {
        return;
    }
    let so = example_plugin();
    // A plugin lying next to the config (or in the working directory) is not loaded.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(so, dir.path().join("libleasehold_example_plugin.so")).unwrap();
    let ini = write_config(dir.path(), "a.ini", "[DEFAULT]\ninterface_driver = null\n");
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
        .args(["drivers", "--config-file", ini.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("statichosts"), "{}", stdout(&out));

    // Configured, in a directory writable by others: refused, saying why.
    let open_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let copy = open_dir.path().join("plugin.so");
    std::fs::copy(so, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ini = write_config(
        dir.path(),
        "b.ini",
        &format!(
            "[DEFAULT]\ninterface_driver = null\ndriver_plugins = {}\n",
            copy.display()
        ),
    );
    let out = agent(&["drivers", "--config-file", ini.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("writable by group or others")
            && text.contains(&open_dir.path().display().to_string()),
        "{text}"
    );

    // Owned by another user: refused.
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(&copy, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = agent(&["drivers", "--config-file", ini.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("not root"), "{text}");

    // Root's own, in a root-only directory: loaded.
    nix::unistd::chown(&copy, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    let out = agent(&["drivers", "--config-file", ini.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("statichosts"), "{}", stdout(&out));
}

#[test]
fn fault_privilege_credentials_never_in_logs_check_config_or_metrics() {
    if !privileged("fault_privilege_credentials") {
        return;
    }
    const SECRET: &str = "Sup3r-s3cret-pw";
    let dir = tempfile::tempdir().unwrap();
    // A broker nobody listens on: the agent retries and logs about it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mport = metrics.local_addr().unwrap().port();
    drop(metrics);
    let ini = write_config(
        dir.path(),
        "dhcp_agent.ini",
        &format!(
            "[DEFAULT]\ntransport_url = rabbit://openstack:{SECRET}@127.0.0.1:{port},other:{SECRET}@127.0.0.1:{port}/vh\nstate_path = {}\ninterface_driver = null\nmetrics_listen = 127.0.0.1:{mport}\nrpc_response_timeout = 2\n[database]\nconnection = mysql+pymysql://neutron:{SECRET}@db/neutron\n[oslo_messaging_rabbit]\nssl_key_password = {SECRET}\n",
            dir.path().join("state").display()
        ),
    );
    let out = agent(&["check-config", "--config-file", ini.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !text.contains(SECRET),
        "check-config shows the secret:\n{text}"
    );
    assert!(text.contains("****"), "{text}");

    let log_path = dir.path().join("agent.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
        .args(["--config-file", ini.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut t = String::new();
        s.read_to_string(&mut t).ok()?;
        t.contains("leasehold_").then_some(t)
    };
    let m = wait_for(Duration::from_secs(20), scrape);
    // Let it fail to connect a few times.
    std::thread::sleep(Duration::from_secs(4));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let m = m.unwrap_or_else(|| panic!("no metrics:\n{log}"));
    assert!(!m.contains(SECRET), "metrics show the secret:\n{m}");
    assert!(
        log.contains("127.0.0.1"),
        "the agent logged nothing about its broker:\n{log}"
    );
    assert!(!log.contains(SECRET), "the log shows the secret:\n{log}");
}
