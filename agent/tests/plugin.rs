//! Dynamic driver plugins: the example plugin loads and works; wrong builds are refused.

mod support;

use std::path::{Path, PathBuf};

use leasehold_agent::drivers::builtin_registry;
use leasehold_core::driver::{DhcpDevice, DriverContext};
use leasehold_core::model::Network;
use leasehold_core::options::{OptionSpec, Options, Origin};
use leasehold_core::plugin::{load_plugin, PluginError, CORE_VERSION, PLUGIN_MAGIC};
use leasehold_core::registry::{Provenance, Registry};
use support::{agent, example_plugin, stderr, stdout, write_config};

/// Copies the plugin into a fresh private directory (plugins must not be
/// writable by others) and applies `patch` to its bytes.
fn patched_copy(dir: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(example_plugin()).unwrap();
    patch(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Offset of the header (its magic) in the library file.
fn header_offset(bytes: &[u8]) -> usize {
    bytes
        .windows(16)
        .position(|w| w == PLUGIN_MAGIC)
        .expect("the plugin carries the magic")
}

fn load_err(path: &Path) -> String {
    let mut registry = builtin_registry().unwrap();
    match load_plugin(path, &mut registry) {
        Ok(_) => panic!("{} loaded although it should not", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn example_plugin_loads_and_its_driver_is_used() {
    let mut registry = builtin_registry().unwrap();
    assert_eq!(load_plugin(example_plugin(), &mut registry).unwrap(), 1);
    let entry = registry.dhcp("example.StaticHostsDriver").unwrap();
    assert_eq!(entry.name, "statichosts");

    let state = tempfile::tempdir().unwrap();
    let mut options = Options::new();
    options.declare(&[OptionSpec::str(
        "DEFAULT",
        "state_path",
        Some("/var/lib/neutron"),
        "",
    )]);
    options.declare(entry.options);
    options.set(
        "DEFAULT",
        "state_path",
        state.path().to_str().unwrap(),
        Origin::Program,
    );
    let driver = (entry.create)(&DriverContext {
        options: &options,
        host: "test",
    })
    .unwrap();

    let (network, _) = Network::from_json_value(serde_json::json!({
        "id": "net-a",
        "subnets": [{"id": "s", "cidr": "198.51.100.0/24", "ip_version": 4}],
        "ports": [
            {"id": "p1", "mac_address": "fa:16:3e:00:00:01", "device_owner": "compute:nova",
             "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.5"}]},
            {"id": "p2", "mac_address": "fa:16:3e:00:00:02", "device_owner": "network:dhcp",
             "fixed_ips": [{"subnet_id": "s", "ip_address": "198.51.100.2"}]}
        ]
    }))
    .unwrap();
    let device = DhcpDevice {
        interface_name: "tap0".into(),
        namespace: None,
        bridged: true,
        interface_ips: Default::default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        driver.enable(&network, &device).await.unwrap();
        let hosts = std::fs::read_to_string(state.path().join("statichosts/net-a/hosts")).unwrap();
        assert_eq!(hosts, "198.51.100.5 fa:16:3e:00:00:01 host-p1\n");
        assert!(driver.active(&network.id).await);
        assert_eq!(
            driver.existing_networks().await.unwrap(),
            vec![network.id.clone()]
        );
        driver.disable(&network.id, false).await.unwrap();
        assert!(!driver.active(&network.id).await);
    });
}

#[test]
fn drivers_command_lists_the_plugin_driver() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(
        dir.path(),
        "a.ini",
        &format!(
            "[DEFAULT]\ndriver_plugins = {}\ndhcp_driver = statichosts\n",
            example_plugin().display()
        ),
    );
    let out = agent(&["drivers", "--config-file", conf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("statichosts"), "{text}");
    assert!(
        text.contains(&format!("plugin {}", example_plugin().display())),
        "{text}"
    );
    assert!(text.contains("dnsmasq"), "{text}");
    let out = agent(&["check-config", "--config-file", conf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The plugin's own option is declared, shown in its section and interpolated.
    assert!(
        stdout(&out)
            .contains("[statichosts]\noutput_dir = /var/lib/neutron/statichosts    # default"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn wrong_abi_version_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = patched_copy(dir.path(), "abi.so", |b| {
        let at = header_offset(b) + 16;
        b[at..at + 4].copy_from_slice(&99u32.to_ne_bytes());
    });
    let e = load_err(&path);
    assert!(
        e.contains("plugin ABI version \"99\"") && e.contains("needs \"1\""),
        "{e}"
    );
    assert!(e.contains("rebuild the plugin"), "{e}");
}

#[test]
fn wrong_core_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = patched_copy(dir.path(), "core.so", |b| {
        let at = header_offset(b) + 20;
        b[at..at + 32].fill(0);
        b[at..at + 5].copy_from_slice(b"9.9.9");
    });
    let e = load_err(&path);
    assert!(e.contains("leasehold-core version \"9.9.9\""), "{e}");
    assert!(e.contains(&format!("needs \"{CORE_VERSION}\"")), "{e}");
}

#[test]
fn wrong_rustc_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = patched_copy(dir.path(), "rustc.so", |b| {
        let at = header_offset(b) + 52;
        assert_eq!(&b[at..at + 6], b"rustc ");
        b[at..at + 128].fill(0);
        b[at..at + 18].copy_from_slice(b"rustc 1.60.0 (old)");
    });
    let e = load_err(&path);
    assert!(e.contains("rustc version \"rustc 1.60.0 (old)\""), "{e}");
}

#[test]
fn a_library_without_header_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let system_lib = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libm is installed");
    let path = dir.path().join("libm-copy.so");
    std::fs::copy(system_lib, &path).unwrap();
    let e = load_err(&path);
    assert!(e.contains("not a Leasehold plugin"), "{e}");
    let path = patched_copy(dir.path(), "magic.so", |b| {
        let at = header_offset(b);
        b[at] = b'X';
    });
    assert!(load_err(&path).contains("not a Leasehold plugin"));
}

#[test]
fn a_plugin_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = patched_copy(dir.path(), "open.so", |_| {});
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = load_err(&path);
    assert!(e.contains("writable by group or others"), "{e}");
}

#[test]
fn the_same_driver_twice_names_both_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let copy = patched_copy(dir.path(), "second.so", |_| {});
    let mut registry: Registry = builtin_registry().unwrap();
    load_plugin(example_plugin(), &mut registry).unwrap();
    let e = load_plugin(&copy, &mut registry).unwrap_err();
    assert!(matches!(e, PluginError::Registry { .. }));
    let text = e.to_string();
    assert!(
        text.contains(&format!("{}", Provenance::Plugin(example_plugin().into()))),
        "{text}"
    );
    assert!(text.contains(&copy.display().to_string()), "{text}");
}
