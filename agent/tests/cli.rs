//! The command line: drivers, check-config, --version, bad configuration.

mod support;

use support::{agent, stderr, stdout, write_config};

#[test]
fn version_prints_the_package_version() {
    let out = agent(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("leasehold-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn drivers_lists_builtins_with_neutron_aliases() {
    let out = agent(&["drivers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "dnsmasq",
        "neutron.agent.linux.dhcp.Dnsmasq",
        "openvswitch",
        "neutron.agent.linux.interface.OVSInterfaceDriver",
        "linuxbridge",
        "neutron.agent.linux.interface.BridgeInterfaceDriver",
        "null",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    let dhcp_part = text.split("Interface drivers").next().unwrap();
    assert!(
        dhcp_part.contains("dnsmasq") && !dhcp_part.contains("openvswitch"),
        "{text}"
    );
}

#[test]
fn check_config_prints_effective_values_with_origins_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(dir.path(), "neutron.conf", "[DEFAULT]\ntransport_url = rabbit://openstack:s3cret@127.0.0.1:5672/\nstate_path = /srv/neutron\n[database]\nconnection = mysql+pymysql://x:y@h/n\n");
    let b = write_config(dir.path(), "dhcp_agent.ini", "[DEFAULT]\ninterface_driver = linuxbridge\nhost = net-node-1\n[AGENT]\nreport_interval = 10\n");
    let out = agent(&[
        "check-config",
        "--config-file",
        a.to_str().unwrap(),
        "--config-file",
        b.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("# host: net-node-1"), "{text}");
    assert!(text.contains("# interface_driver: linuxbridge"), "{text}");
    assert!(text.contains("# dhcp_driver: dnsmasq"), "{text}");
    assert!(
        text.contains("transport_url = rabbit://openstack:****@127.0.0.1:5672/"),
        "{text}"
    );
    assert!(!text.contains("s3cret") && !stderr(&out).contains("s3cret"));
    assert!(
        text.contains("dhcp_confs = /srv/neutron/dhcp    # default"),
        "{text}"
    );
    assert!(
        text.contains(&format!("report_interval = 10    # {}:5", b.display())),
        "{text}"
    );
    assert!(text.contains("section [database] is not used"), "{text}");
}

#[test]
fn unknown_driver_lists_the_available_names() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(dir.path(), "a.ini", "[DEFAULT]\ninterface_driver = ovn\n");
    let out = agent(&["check-config", "--config-file", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown interface driver \"ovn\""), "{err}");
    for name in [
        "openvswitch",
        "linuxbridge",
        "null",
        "neutron.agent.linux.interface.OVSInterfaceDriver",
    ] {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

#[test]
fn bad_value_names_file_section_option_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(
        dir.path(),
        "a.ini",
        "[DEFAULT]\n# comment\ndhcp_broadcast_reply = perhaps\n",
    );
    let out = agent(&["check-config", "--config-file", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:3: [DEFAULT] dhcp_broadcast_reply = \"perhaps\"",
            a.display()
        )),
        "{err}"
    );
}

#[test]
fn unknown_option_warns_but_runs() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(dir.path(), "a.ini", "[DEFAULT]\ndhcp_frobnicate = 1\n");
    let out = agent(&["check-config", "--config-file", a.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown option [DEFAULT] dhcp_frobnicate"),
        "{}",
        stderr(&out)
    );
}
