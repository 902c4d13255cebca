//! neutron-server's `[DEFAULT]` options in neutron.conf: one notice for all,
//! from a list held to the pinned neutron; anything else still warns alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const LIST: &str = "agent/src/config/neutron_server_options.txt";
const SCRIPT: &str = "agent/tests/support/neutron_server_options.py";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate sits in the workspace")
        .to_path_buf()
}

fn names(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

#[test]
fn the_checked_in_list_is_the_pinned_neutrons() {
    let venv = leasehold_testkit::neutron::neutron_venv();
    let out = Command::new(venv.join("bin/python"))
        .args(["-W", "ignore"])
        .arg(repo().join(SCRIPT))
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{SCRIPT}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let checked_in = std::fs::read_to_string(repo().join(LIST)).unwrap();
    if generated != checked_in {
        let (new, old) = (names(&generated), names(&checked_in));
        panic!(
            "{LIST} is stale for the neutron in {}: missing {:?}, not neutron-server's (any more) {:?}.\n\
             Regenerate it: {}/bin/python {SCRIPT} > {LIST}",
            venv.display(),
            new.difference(&old).collect::<Vec<_>>(),
            old.difference(&new).collect::<Vec<_>>(),
            venv.display()
        );
    }
}

#[test]
fn neutron_conf_gives_one_notice_and_a_misspelling_still_warns() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("neutron.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\n\
         core_plugin = ml2\n\
         service_plugins = router,segments\n\
         auth_strategy = keystone\n\
         l3_ha = true\n\
         router_distributed = false\n\
         allow_automatic_dhcp_failover = true\n\
         dhcp_agents_per_network = 2\n\
         core_plugn = ml2\n\
         transport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
         [database]\n\
         connection = mysql+pymysql://neutron:secret@db/neutron\n",
    )
    .unwrap();
    let ini = dir.path().join("dhcp_agent.ini");
    std::fs::write(
        &ini,
        "[DEFAULT]\ninterface_driver = openvswitch\nenable_isolated_metadata = true\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
        .arg("check-config")
        .arg("--config-file")
        .arg(&conf)
        .arg("--config-file")
        .arg(&ini)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("of neutron-server ignored"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice:\n{stderr}");
    assert!(
        notices[0].contains(
            "7 options of neutron-server ignored: allow_automatic_dhcp_failover, auth_strategy, \
             core_plugin, dhcp_agents_per_network, l3_ha, router_distributed, service_plugins"
        ) && notices[0].contains(&conf.display().to_string()),
        "{stderr}"
    );
    // The misspelling is no server option: a warning of its own, with its line.
    assert!(
        stderr.contains(&format!(
            "{}:9: unknown option [DEFAULT] core_plugn, ignored",
            conf.display()
        )),
        "{stderr}"
    );
    let unknown = stderr.matches("unknown option").count();
    assert_eq!(unknown, 1, "{stderr}");
    assert!(
        stderr.contains("section [database] is not used by the DHCP agent"),
        "{stderr}"
    );
}
