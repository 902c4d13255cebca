//! The Debian package: built by packaging/build-deb.sh, unpacked into a
//! throwaway root, and the binary in it runs.

use std::path::Path;
use std::process::Command;

#[test]
fn the_package_installs_into_a_throwaway_root_and_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(repo.join("packaging/build-deb.sh"))
        .arg(env!("CARGO_BIN_EXE_leasehold-agent"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let info = Command::new("dpkg-deb")
        .args(["--info", &deb])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("Package: leasehold-agent"));

    let root = tempfile::tempdir().unwrap();
    let x = Command::new("dpkg")
        .args(["-x", &deb])
        .arg(root.path())
        .status()
        .unwrap();
    assert!(x.success());
    for f in [
        "usr/bin/leasehold-agent",
        "lib/systemd/system/leasehold-agent.service",
        "usr/share/man/man1/leasehold-agent.1.gz",
        "usr/share/doc/leasehold-agent/examples/standalone/agent.ini",
    ] {
        assert!(root.path().join(f).exists(), "{f} missing from the package");
    }
    let v = Command::new(root.path().join("usr/bin/leasehold-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(v.status.success());
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("leasehold-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let unit = std::fs::read_to_string(
        root.path()
            .join("lib/systemd/system/leasehold-agent.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
}
